//! The shape of API keys: `sk_test_…` (secret) and `pk_test_…` (publishable).

use std::fmt;

use crate::config::Mode;
use crate::crypto::sha256;
use crate::ids::random_base62;

/// Length of the random part of a key (≈190 bits).
const SECRET_LEN: usize = 32;
/// Characters of the random part stored in clear to narrow the lookup.
pub(crate) const LOOKUP_LEN: usize = 8;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum KeyKind {
    /// Everything for its merchant.
    Secret,
    /// Only a payment's public checkout view and its confirmation.
    Publishable,
}

impl KeyKind {
    /// The prefix letters (`sk` / `pk`).
    fn letters(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk",
            KeyKind::Publishable => "pk",
        }
    }
}

crate::names!(KeyKind);

/// A key presented by a caller, split into its parts. Holding one proves
/// nothing yet: it must be found and its hash matched.
pub struct ApiKey {
    kind: KeyKind,
    mode: Mode,
    full: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}_{}_…)", self.kind.letters(), self.mode)
    }
}

impl ApiKey {
    /// Parses `sk_test_…` / `pk_live_…`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '_');
        let kind = match parts.next()? {
            "sk" => KeyKind::Secret,
            "pk" => KeyKind::Publishable,
            _ => return None,
        };
        let mode: Mode = parts.next()?.parse().ok()?;
        let random = parts.next()?;
        if random.len() != SECRET_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Self {
            kind,
            mode,
            full: s.to_owned(),
        })
    }

    /// Secret or publishable.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Test or live.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The clear prefix used to find candidate rows.
    pub fn lookup(&self) -> &str {
        let random_start = self.full.len() - SECRET_LEN;
        &self.full[random_start..random_start + LOOKUP_LEN]
    }

    /// SHA-256 of the whole key, as stored.
    pub fn hash(&self) -> [u8; 32] {
        sha256(self.full.as_bytes())
    }
}

/// A freshly generated key: the only moment its clear text exists.
pub struct NewKey {
    /// The full key, to show once.
    pub secret: String,
    /// Secret or publishable.
    pub kind: KeyKind,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({:?}, <redacted>)", self.kind)
    }
}

impl NewKey {
    /// A new random key of `kind` for `mode`.
    pub fn generate(kind: KeyKind, mode: Mode) -> Self {
        Self {
            secret: format!("{}_{}_{}", kind.letters(), mode, random_base62(SECRET_LEN)),
            kind,
        }
    }

    /// The parsed form (always succeeds for a generated key).
    pub fn parsed(&self) -> Option<ApiKey> {
        ApiKey::parse(&self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let key = NewKey::generate(KeyKind::Secret, Mode::Test);
        assert!(key.secret.starts_with("sk_test_"));
        let parsed = key.parsed().unwrap();
        assert_eq!(parsed.kind(), KeyKind::Secret);
        assert_eq!(parsed.lookup(), &key.secret[8..16]);
        assert_eq!(parsed.hash(), sha256(key.secret.as_bytes()));
        assert!(!format!("{parsed:?}").contains(&key.secret[8..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "sk_test_",
            "xk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sk_prod_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sk_test_aaaa",
            "sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
    }
}
