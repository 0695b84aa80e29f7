//! The names of the domain's unit enums (statuses, kinds, reasons).
//!
//! A name is declared once, by the enum's serde attributes
//! (`#[serde(rename_all = "snake_case")]`), next to the `sqlx::Type` that
//! stores it in a text column: [`names!`] derives `Display` and `FromStr`
//! from serde, so what the API shows, what the database holds and what a
//! filter parses cannot drift apart the way hand-written `as_str`/`parse`
//! pairs could.

use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer};

/// A name that no variant has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name `{0}`")]
pub struct UnknownName(pub String);

/// The serde name of a unit variant (empty for anything else, which the
/// enums given to [`names!`] never are).
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// The variant named `name`.
pub fn from_name<T: DeserializeOwned>(name: &str) -> Result<T, UnknownName> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.into_deserializer();
    T::deserialize(de).map_err(|_| UnknownName(name.to_owned()))
}

/// `Display` and `FromStr` of unit enums, through their serde names.
#[macro_export]
macro_rules! names {
    ($($t:ty),+ $(,)?) => {$(
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(&$crate::names::name_of(self))
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                $crate::names::from_name(s)
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Sample {
        RequiresAction,
        Paid,
    }
    names!(Sample);

    #[test]
    fn names_round_trip_through_serde() {
        assert_eq!(Sample::RequiresAction.to_string(), "requires_action");
        assert_eq!("paid".parse::<Sample>(), Ok(Sample::Paid));
        assert_eq!(
            "Paid".parse::<Sample>(),
            Err(super::UnknownName("Paid".into()))
        );
        assert!("".parse::<Sample>().is_err());
    }
}
