//! [`Amount`]: an exact integer number of an asset's smallest units.

use std::fmt;

use rust_decimal::Decimal;

/// Largest magnitude an amount may have: 10^28 - 1 smallest units. That is
/// ten billion whole units of an 18-decimal token, and still fits
/// `rust_decimal` (96-bit mantissa, about 7.9 × 10^28), which carries
/// amounts to and from PostgreSQL `NUMERIC`.
pub const MAX_UNITS: i128 = 9_999_999_999_999_999_999_999_999_999;

/// Largest fiat amount the API accepts or writes as a JSON integer: 2^53 - 1,
/// the largest integer every JSON parser (JavaScript's included) holds
/// exactly.
pub const MAX_JSON_INTEGER: i128 = 9_007_199_254_740_991;

/// Why a value is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Negative where only amounts >= 0 make sense (every API input).
    #[error("must not be negative")]
    Negative,
    /// Beyond [`MAX_UNITS`] (or [`MAX_JSON_INTEGER`] for a JSON integer).
    #[error("is too large (at most {max})")]
    TooLarge {
        /// The bound that was exceeded.
        max: i128,
    },
    /// Not written as the expected integer or decimal.
    #[error("must be {expected}")]
    Malformed {
        /// What was expected.
        expected: &'static str,
    },
    /// More decimal places than the asset has.
    #[error("has more than {scale} decimal places")]
    TooPrecise {
        /// The asset's scale.
        scale: u8,
    },
}

/// An amount in an asset's smallest unit (cents, wei, USDC's 6-decimal
/// units): an `i128` kept within ±[`MAX_UNITS`], so sums of many amounts
/// never overflow and every value converts to [`Decimal`] exactly.
///
/// Amounts are signed because the ledger is: a posting is a debit (> 0) or
/// a credit (< 0). Everything parsed from the API is >= 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);
    /// The largest amount.
    pub const MAX: Amount = Amount(MAX_UNITS);

    /// `units` smallest units, if within ±[`MAX_UNITS`].
    pub fn new(units: i128) -> Result<Self, AmountError> {
        if units.abs() > MAX_UNITS {
            return Err(AmountError::TooLarge { max: MAX_UNITS });
        }
        Ok(Self(units))
    }

    /// An `i64` number of smallest units (always in range).
    pub fn from_minor(units: i64) -> Self {
        Self(i128::from(units))
    }

    /// Parses a decimal string of smallest units, as the API writes crypto
    /// amounts (`"12340000"`): digits only, no sign, no leading zero.
    pub fn parse_units(s: &str) -> Result<Self, AmountError> {
        const EXPECTED: &str = "a decimal string of smallest units, like \"12340000\"";
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !canonical {
            if s.starts_with('-') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit()) {
                return Err(AmountError::Negative);
            }
            return Err(AmountError::Malformed { expected: EXPECTED });
        }
        if s.len() > 28 {
            return Err(AmountError::TooLarge { max: MAX_UNITS });
        }
        let units = s
            .parse::<i128>()
            .map_err(|_| AmountError::Malformed { expected: EXPECTED })?;
        Self::new(units)
    }

    /// Parses an amount in whole units with up to `scale` decimals
    /// (`"12.34"` at scale 2 is 1234), for operators and configuration.
    /// Exact: a digit beyond the scale is an error, never rounded.
    pub fn parse_major(s: &str, scale: u8) -> Result<Self, AmountError> {
        const EXPECTED: &str = "a decimal number like \"12.34\"";
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        if whole.is_empty() || !digits(whole) || !digits(fraction) || s.ends_with('.') {
            return Err(AmountError::Malformed { expected: EXPECTED });
        }
        if fraction.len() > usize::from(scale) {
            return Err(AmountError::TooPrecise { scale });
        }
        let whole = whole.trim_start_matches('0');
        let padded = format!("{whole}{fraction:0<width$}", width = usize::from(scale));
        let padded = padded.trim_start_matches('0');
        if padded.is_empty() {
            return Ok(Self::ZERO);
        }
        if padded.len() > 28 {
            return Err(AmountError::TooLarge { max: MAX_UNITS });
        }
        Self::parse_units(padded)
    }

    /// The number of smallest units.
    pub fn units(self) -> i128 {
        self.0
    }

    /// Whole units with `scale` decimals, e.g. `12.34` or `-0.000000000000000001`.
    pub fn to_major_string(self, scale: u8) -> String {
        let digits = self.0.unsigned_abs().to_string();
        let scale = usize::from(scale);
        let sign = if self.0 < 0 { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{sign}{whole}.{fraction}")
    }

    /// `self + other`, or `None` beyond ±[`MAX_UNITS`].
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        Self::new(self.0.checked_add(other.0)?).ok()
    }

    /// `self - other`, or `None` beyond ±[`MAX_UNITS`].
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        Self::new(self.0.checked_sub(other.0)?).ok()
    }

    /// `-self` (always in range: the bound is symmetric).
    #[must_use]
    pub fn negated(self) -> Amount {
        Self(-self.0)
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether it is > 0.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Whether it is < 0.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The value for a PostgreSQL `NUMERIC` parameter.
    pub fn to_decimal(self) -> Decimal {
        match Decimal::try_from_i128_with_scale(self.0, 0) {
            Ok(d) => d,
            // |self.0| <= MAX_UNITS < 2^96, which Decimal always holds.
            Err(_) => unreachable!("an Amount always fits a Decimal"),
        }
    }

    /// The amount as the API writes it: a JSON integer for fiat, a decimal
    /// string of smallest units for crypto (whose amounts pass 2^53).
    /// A fiat amount beyond [`MAX_JSON_INTEGER`] (only a sum could be) is
    /// written as a string rather than rounded by the reader.
    pub fn to_api_json(self, crypto: bool) -> serde_json::Value {
        match i64::try_from(self.0) {
            Ok(n) if !crypto && self.0.abs() <= MAX_JSON_INTEGER => serde_json::Value::from(n),
            _ => serde_json::Value::String(self.0.to_string()),
        }
    }

    /// Parses an API amount: a non-negative JSON integer for fiat, a decimal
    /// string of smallest units for crypto.
    pub fn from_api_json(value: &serde_json::Value, crypto: bool) -> Result<Self, AmountError> {
        match (value, crypto) {
            (serde_json::Value::String(s), true) => Self::parse_units(s),
            (serde_json::Value::Number(n), false) => {
                if let Some(units) = n.as_u64() {
                    let units = i128::from(units);
                    if units > MAX_JSON_INTEGER {
                        return Err(AmountError::TooLarge {
                            max: MAX_JSON_INTEGER,
                        });
                    }
                    Ok(Self(units))
                } else if n.as_i64().is_some() {
                    Err(AmountError::Negative)
                } else {
                    Err(AmountError::Malformed {
                        expected: "an integer number of the currency's smallest unit",
                    })
                }
            }
            (_, true) => Err(AmountError::Malformed {
                expected: "a decimal string of smallest units, like \"12340000\"",
            }),
            (_, false) => Err(AmountError::Malformed {
                expected: "an integer number of the currency's smallest unit",
            }),
        }
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = AmountError;

    /// An integral `NUMERIC` read from PostgreSQL.
    fn try_from(d: Decimal) -> Result<Self, AmountError> {
        if !d.fract().is_zero() {
            return Err(AmountError::Malformed {
                expected: "an integer",
            });
        }
        let mut d = d;
        d.rescale(0);
        Self::new(d.mantissa())
    }
}

impl From<Amount> for Decimal {
    fn from(a: Amount) -> Decimal {
        a.to_decimal()
    }
}

impl fmt::Display for Amount {
    /// Smallest units, e.g. `1234`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_canonical_digits_only() {
        assert_eq!(Amount::parse_units("0"), Ok(Amount::ZERO));
        assert_eq!(Amount::parse_units("12340000").unwrap().units(), 12_340_000);
        for bad in ["", "01", "+1", "1.0", "1e3", " 1", "0x10", "١"] {
            assert!(
                matches!(Amount::parse_units(bad), Err(AmountError::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(Amount::parse_units("-5"), Err(AmountError::Negative));
        let max = MAX_UNITS.to_string();
        assert_eq!(Amount::parse_units(&max).unwrap().units(), MAX_UNITS);
        assert!(matches!(
            Amount::parse_units(&format!("{max}0")),
            Err(AmountError::TooLarge { .. })
        ));
        assert!(matches!(
            Amount::parse_units("10000000000000000000000000000"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn ten_to_the_27_is_exact_through_decimal() {
        let big = Amount::parse_units("1000000000000000000000000001").unwrap();
        assert_eq!(big.units(), 10_i128.pow(27) + 1);
        let d = big.to_decimal();
        assert_eq!(d.to_string(), "1000000000000000000000000001");
        assert_eq!(Amount::try_from(d), Ok(big));
        assert_eq!(Amount::try_from(Amount::MAX.to_decimal()), Ok(Amount::MAX));
        assert_eq!(
            Amount::try_from(Amount::MAX.negated().to_decimal()),
            Ok(Amount::MAX.negated())
        );
        // A NUMERIC read back with a scale, e.g. from a SUM, is still exact.
        assert_eq!(
            Amount::try_from(Decimal::new(123_400, 2)),
            Ok(Amount::from_minor(1234))
        );
        assert!(Amount::try_from(Decimal::new(12_345, 1)).is_err());
    }

    #[test]
    fn major_units_round_trip_at_every_scale() {
        assert_eq!(Amount::parse_major("12.34", 2).unwrap().units(), 1234);
        assert_eq!(Amount::parse_major("12", 2).unwrap().units(), 1200);
        assert_eq!(Amount::parse_major("0.5", 3).unwrap().units(), 500);
        assert_eq!(Amount::parse_major("500", 0).unwrap().units(), 500);
        assert_eq!(
            Amount::parse_major("1.000000000000000001", 18)
                .unwrap()
                .units(),
            10_i128.pow(18) + 1
        );
        assert_eq!(
            Amount::parse_major("12.345", 2),
            Err(AmountError::TooPrecise { scale: 2 })
        );
        for bad in ["", ".5", "5.", "1.2.3", "a", "1,5"] {
            assert!(Amount::parse_major(bad, 2).is_err(), "{bad:?}");
        }
        assert_eq!(Amount::parse_major("-1", 2), Err(AmountError::Negative));
        assert_eq!(Amount::from_minor(1234).to_major_string(2), "12.34");
        assert_eq!(Amount::from_minor(5).to_major_string(3), "0.005");
        assert_eq!(Amount::from_minor(-5).to_major_string(2), "-0.05");
        assert_eq!(Amount::from_minor(500).to_major_string(0), "500");
        assert_eq!(
            Amount::new(10_i128.pow(27)).unwrap().to_major_string(18),
            "1000000000.000000000000000000"
        );
    }

    #[test]
    fn checked_arithmetic_stays_in_range() {
        assert_eq!(Amount::MAX.checked_add(Amount::from_minor(1)), None);
        assert_eq!(
            Amount::MAX.negated().checked_sub(Amount::from_minor(1)),
            None
        );
        assert_eq!(
            Amount::from_minor(5).checked_sub(Amount::from_minor(7)),
            Some(Amount::from_minor(-2))
        );
    }

    #[test]
    fn api_json_forms() {
        use serde_json::json;
        assert_eq!(Amount::from_minor(1234).to_api_json(false), json!(1234));
        assert_eq!(Amount::from_minor(1234).to_api_json(true), json!("1234"));
        assert_eq!(Amount::MAX.to_api_json(false), json!(MAX_UNITS.to_string()));
        assert_eq!(
            Amount::from_api_json(&json!(1234), false),
            Ok(Amount::from_minor(1234))
        );
        assert_eq!(
            Amount::from_api_json(&json!(-1), false),
            Err(AmountError::Negative)
        );
        assert!(Amount::from_api_json(&json!(12.5), false).is_err());
        assert!(Amount::from_api_json(&json!("1234"), false).is_err());
        assert!(Amount::from_api_json(&json!(1234), true).is_err());
        assert!(Amount::from_api_json(&json!(9_007_199_254_740_992_u64), false).is_err());
        assert_eq!(
            Amount::from_api_json(&json!("1000000000000000000000000000"), true)
                .unwrap()
                .units(),
            10_i128.pow(27)
        );
    }
}
