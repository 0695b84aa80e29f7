//! The hosted checkout's languages: one message catalogue per language
//! (`static/i18n/checkout.<tag>.json`), and the choice among them from
//! `?locale=` or, failing that, the browser's `Accept-Language`.

/// A language the checkout is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    /// English (the default).
    En,
    /// Simplified Chinese.
    ZhCn,
}

const EN: &str = include_str!("../../static/i18n/checkout.en.json");
const ZH_CN: &str = include_str!("../../static/i18n/checkout.zh-CN.json");

impl Locale {
    /// Every language, default first.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::ZhCn];

    /// The BCP 47 tag (the page's `lang`).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
        }
    }

    /// The language a tag names, if the checkout has it: `zh`, `zh-CN`,
    /// `zh-Hans…` are Simplified Chinese; `en…` English.
    fn from_tag(tag: &str) -> Option<Self> {
        let tag = tag.trim().to_ascii_lowercase();
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        match primary {
            "en" => Some(Locale::En),
            // Traditional-script and Hong Kong/Taiwan variants are not
            // Simplified Chinese; they get English rather than the wrong script.
            "zh" if !(tag.contains("hant") || tag.ends_with("-tw") || tag.ends_with("-hk")) => {
                Some(Locale::ZhCn)
            }
            _ => None,
        }
    }

    /// `?locale=` when it names a language of the checkout, else the
    /// browser's most preferred one the checkout has, else English.
    pub fn negotiate(asked: Option<&str>, accept_language: Option<&str>) -> Self {
        if let Some(locale) = asked.and_then(Self::from_tag) {
            return locale;
        }
        let mut ranges: Vec<(u16, usize, &str)> = accept_language
            .unwrap_or_default()
            .split(',')
            .enumerate()
            .filter_map(|(i, item)| {
                let mut parts = item.split(';');
                let tag = parts.next()?.trim();
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1000), quality)?;
                (q > 0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        // Highest quality first; equal ones in the order sent.
        ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges
            .into_iter()
            .find_map(|(_, _, tag)| Self::from_tag(tag))
            .unwrap_or(Locale::En)
    }

    /// The catalogue as JSON safe to embed in the page's inert
    /// `<script type="application/json">` block.
    pub fn catalogue_json(self) -> String {
        let raw = match self {
            Locale::En => EN,
            Locale::ZhCn => ZH_CN,
        };
        raw.trim().replace('<', "\\u003c")
    }
}

/// A quality value (`0`, `0.8`, `1.000`) in thousandths; `None` if malformed.
fn quality(raw: &str) -> Option<u16> {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = whole.parse().ok()?;
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    let q = whole.checked_mul(1000)?.checked_add(fraction)?;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn locale_parameter_then_accept_language() {
        assert_eq!(Locale::negotiate(Some("zh-CN"), Some("en")), Locale::ZhCn);
        assert_eq!(
            Locale::negotiate(Some("xx"), Some("zh-CN,en;q=0.5")),
            Locale::ZhCn
        );
        assert_eq!(
            Locale::negotiate(None, Some("fr, en;q=0.4, zh;q=0.6")),
            Locale::ZhCn
        );
        assert_eq!(Locale::negotiate(None, Some("zh-TW, en;q=0.1")), Locale::En);
        assert_eq!(Locale::negotiate(None, Some("zh;q=0, de")), Locale::En);
        assert_eq!(Locale::negotiate(None, Some("zh-Hans-CN")), Locale::ZhCn);
        assert_eq!(Locale::negotiate(None, Some("zh;q=abc, en")), Locale::En);
        assert_eq!(Locale::negotiate(None, None), Locale::En);
    }

    fn keys(json: &str) -> BTreeSet<String> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn every_catalogue_has_every_message() {
        let en = keys(EN);
        assert!(en.len() > 50);
        for locale in Locale::ALL {
            let json = locale.catalogue_json();
            assert!(!json.contains('<'));
            assert_eq!(keys(&json), en, "{}", locale.tag());
        }
    }
}
