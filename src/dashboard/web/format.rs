//! How amounts, times and statuses look on the pages (and in CSV).

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A Unix time as RFC 3339 UTC.
pub fn time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// An API amount (integer, or decimal string for crypto) with its currency.
pub fn amount(value: &Value, currency: &str) -> String {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "?".to_owned(),
    };
    match crate::money::Currency::parse(currency) {
        Ok(c) => {
            let minor: i128 = text.parse().unwrap_or(0);
            format!(
                "{} {}",
                crate::money::Amount::new(minor)
                    .map(|a| a.to_major_string(c.exponent()))
                    .unwrap_or(text),
                currency.to_uppercase()
            )
        }
        Err(_) => format!("{text} {}", currency.to_uppercase()),
    }
}

/// A string field of an API object.
pub fn field<'a>(object: &'a Value, name: &str) -> &'a str {
    object.get(name).and_then(Value::as_str).unwrap_or("")
}
