//! `metadata` (docs/api.md): up to 50 string keys of at most 40 characters with
//! string values of at most 500, stored and returned as given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most keys.
pub const MAX_KEYS: usize = 50;
/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 40;
/// Longest value, in characters.
pub const MAX_VALUE_LEN: usize = 500;

/// Validated metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

/// Why metadata was refused: the dotted param and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    /// `metadata` or `metadata.<key>`.
    pub param: String,
    /// What is wrong.
    pub message: String,
}

impl Metadata {
    /// Checks the limits.
    pub fn parse(map: BTreeMap<String, String>) -> Result<Self, MetadataError> {
        if map.len() > MAX_KEYS {
            return Err(MetadataError {
                param: "metadata".into(),
                message: format!("metadata may have at most {MAX_KEYS} keys"),
            });
        }
        for (key, value) in &map {
            if key.is_empty() || key.chars().count() > MAX_KEY_LEN {
                return Err(MetadataError {
                    param: format!("metadata.{key}"),
                    message: format!("metadata keys must be 1 to {MAX_KEY_LEN} characters"),
                });
            }
            if value.chars().count() > MAX_VALUE_LEN {
                return Err(MetadataError {
                    param: format!("metadata.{key}"),
                    message: format!("metadata values must be at most {MAX_VALUE_LEN} characters"),
                });
            }
        }
        Ok(Self(map))
    }

    /// The pairs, checked.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Self::parse(map).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        let ok: BTreeMap<_, _> = (0..50)
            .map(|i| (format!("k{i}"), "v".repeat(500)))
            .collect();
        assert!(Metadata::parse(ok).is_ok());
        let too_many: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(Metadata::parse(too_many).unwrap_err().param, "metadata");
        let long_key = BTreeMap::from([("k".repeat(41), String::new())]);
        assert!(Metadata::parse(long_key).is_err());
        let long_value = BTreeMap::from([("order".to_owned(), "v".repeat(501))]);
        assert_eq!(
            Metadata::parse(long_value).unwrap_err().param,
            "metadata.order"
        );
    }
}
