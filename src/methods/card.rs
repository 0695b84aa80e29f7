//! Card numbers, parsed at the edge: Luhn, brand, length, expiry, CVC.
//!
//! A [`CardNumber`] never prints its digits (`Debug` and `Display` show the
//! brand and last four), so it cannot leak through a log line.

use std::fmt;

use time::{Date, Month, OffsetDateTime};

/// Card networks we recognise by their issuer identification number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    /// Visa.
    Visa,
    /// Mastercard.
    Mastercard,
    /// American Express.
    Amex,
    /// Discover.
    Discover,
    /// JCB.
    Jcb,
    /// Diners Club.
    Diners,
    /// UnionPay.
    UnionPay,
}

crate::names!(Brand);

impl Brand {
    fn lengths(self) -> &'static [usize] {
        match self {
            Brand::Visa => &[13, 16, 19],
            Brand::Mastercard => &[16],
            Brand::Amex => &[15],
            Brand::Discover | Brand::Jcb => &[16, 17, 18, 19],
            Brand::Diners => &[14, 16, 17, 18, 19],
            Brand::UnionPay => &[16, 17, 18, 19],
        }
    }

    fn cvc_len(self) -> usize {
        if self == Brand::Amex { 4 } else { 3 }
    }

    /// The brand of a digit string, from its leading digits.
    fn detect(digits: &str) -> Option<Self> {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
        let (p1, p2, p3, p4, p6) = (prefix(1)?, prefix(2)?, prefix(3)?, prefix(4)?, prefix(6)?);
        Some(match () {
            () if p1 == 4 => Brand::Visa,
            () if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => Brand::Mastercard,
            () if p2 == 34 || p2 == 37 => Brand::Amex,
            () if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => Brand::Discover,
            () if (622_126..=622_925).contains(&p6) || p2 == 62 => Brand::UnionPay,
            () if (3528..=3589).contains(&p4) => Brand::Jcb,
            () if p2 == 36 || p2 == 38 || (300..=305).contains(&p3) => Brand::Diners,
            () => return None,
        })
    }
}

/// Why a card's details were refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Not digits of a plausible length, or the Luhn check fails.
    #[error("The card number is not a valid card number.")]
    InvalidNumber,
    /// Expiry month outside 1–12.
    #[error("The card's expiration month is invalid.")]
    InvalidExpiryMonth,
    /// Expiry year malformed.
    #[error("The card's expiration year is invalid.")]
    InvalidExpiryYear,
    /// The card has expired.
    #[error("The card has expired.")]
    Expired,
    /// CVC of the wrong length or not digits.
    #[error("The card's security code is invalid.")]
    InvalidCvc,
}

impl CardError {
    /// The request parameter at fault.
    pub fn param(&self) -> &'static str {
        match self {
            CardError::InvalidNumber => "payment_method.card.number",
            CardError::InvalidExpiryMonth | CardError::Expired => "payment_method.card.exp_month",
            CardError::InvalidExpiryYear => "payment_method.card.exp_year",
            CardError::InvalidCvc => "payment_method.card.cvc",
        }
    }

    /// Stripe's error code.
    pub fn code(&self) -> &'static str {
        match self {
            CardError::InvalidNumber => "invalid_number",
            CardError::InvalidExpiryMonth => "invalid_expiry_month",
            CardError::InvalidExpiryYear => "invalid_expiry_year",
            CardError::Expired => "expired_card",
            CardError::InvalidCvc => "invalid_cvc",
        }
    }
}

/// A card number that passed Luhn and the brand's length rules.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber {
    digits: String,
    brand: Brand,
}

impl CardNumber {
    /// Parses digits, allowing spaces and dashes between groups.
    pub fn parse(input: &str) -> Result<Self, CardError> {
        let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::InvalidNumber);
        }
        if !luhn(&digits) {
            return Err(CardError::InvalidNumber);
        }
        let brand = Brand::detect(&digits).ok_or(CardError::InvalidNumber)?;
        if !brand.lengths().contains(&digits.len()) {
            return Err(CardError::InvalidNumber);
        }
        Ok(Self { digits, brand })
    }

    /// The network.
    pub fn brand(&self) -> Brand {
        self.brand
    }

    /// The last four digits, which may be shown.
    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// The full digits: only for sealing and for the processor connector.
    pub fn expose(&self) -> &str {
        &self.digits
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({} •••• {})", self.brand, self.last4())
    }
}

/// The Luhn (mod 10) checksum.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// A validated card: number, expiry and CVC.
#[derive(Clone)]
pub struct Card {
    /// The number.
    pub number: CardNumber,
    /// 1–12.
    pub exp_month: u8,
    /// Four digits.
    pub exp_year: u16,
    cvc: String,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card")
            .field("number", &self.number)
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"***")
            .finish()
    }
}

impl Card {
    /// Validates a card as of `now`. Two-digit years are 20YY.
    pub fn parse(
        number: &str,
        exp_month: i64,
        exp_year: i64,
        cvc: &str,
        now: OffsetDateTime,
    ) -> Result<Self, CardError> {
        let number = CardNumber::parse(number)?;
        let exp_month = u8::try_from(exp_month)
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or(CardError::InvalidExpiryMonth)?;
        let exp_year = match exp_year {
            0..=99 => 2000 + exp_year,
            2000..=2199 => exp_year,
            _ => return Err(CardError::InvalidExpiryYear),
        };
        let exp_year = u16::try_from(exp_year).map_err(|_| CardError::InvalidExpiryYear)?;
        // A card is valid through the last day of its expiry month.
        let month = Month::try_from(exp_month).map_err(|_| CardError::InvalidExpiryMonth)?;
        let first_of_month = Date::from_calendar_date(i32::from(exp_year), month, 1)
            .map_err(|_| CardError::InvalidExpiryYear)?;
        let last_day = first_of_month.month().length(i32::from(exp_year));
        let end = first_of_month
            .replace_day(last_day)
            .map_err(|_| CardError::InvalidExpiryYear)?;
        if end < now.date() {
            return Err(CardError::Expired);
        }
        if cvc.len() != number.brand().cvc_len() && !(3..=4).contains(&cvc.len())
            || !cvc.bytes().all(|b| b.is_ascii_digit())
            || cvc.is_empty()
        {
            return Err(CardError::InvalidCvc);
        }
        Ok(Self {
            number,
            exp_month,
            exp_year,
            cvc: cvc.to_owned(),
        })
    }

    /// The CVC, for the processor only (never stored).
    pub fn cvc(&self) -> &str {
        &self.cvc
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    #[test]
    fn luhn_accepts_the_sandbox_numbers_and_refuses_a_typo() {
        for n in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "4000002760003184",
            "4000000000000259",
            "5555555555554444",
            "378282246310005",
        ] {
            assert!(luhn(n), "{n}");
        }
        assert!(!luhn("4242424242424241"));
    }

    #[test]
    fn brands_and_lengths() {
        assert_eq!(
            CardNumber::parse("4242 4242 4242 4242").unwrap().brand(),
            Brand::Visa
        );
        assert_eq!(
            CardNumber::parse("5555555555554444").unwrap().brand(),
            Brand::Mastercard
        );
        assert_eq!(
            CardNumber::parse("2223003122003222").unwrap().brand(),
            Brand::Mastercard
        );
        assert_eq!(
            CardNumber::parse("378282246310005").unwrap().brand(),
            Brand::Amex
        );
        assert_eq!(
            CardNumber::parse("6011111111111117").unwrap().brand(),
            Brand::Discover
        );
        assert_eq!(
            CardNumber::parse("3566002020360505").unwrap().brand(),
            Brand::Jcb
        );
        assert_eq!(
            CardNumber::parse("36227206271667").unwrap().brand(),
            Brand::Diners
        );
        assert_eq!(
            CardNumber::parse("6200000000000005").unwrap().brand(),
            Brand::UnionPay
        );
        // Luhn-valid but the wrong length for Amex.
        assert!(CardNumber::parse("3782822463100005").is_err());
        assert!(CardNumber::parse("4242-4242-4242-424x").is_err());
        assert!(CardNumber::parse("").is_err());
    }

    #[test]
    fn debug_never_shows_the_number() {
        let card = Card::parse("4242424242424242", 12, 2030, "123", NOW).unwrap();
        let debug = format!("{card:?}");
        assert!(!debug.contains("424242424242"), "{debug}");
        assert!(!debug.contains("123"), "{debug}");
        assert!(debug.contains("4242"));
    }

    #[test]
    fn expiry_runs_through_the_end_of_the_month() {
        assert!(Card::parse("4242424242424242", 11, 2026, "123", NOW).is_ok());
        assert_eq!(
            Card::parse("4242424242424242", 10, 2026, "123", NOW).unwrap_err(),
            CardError::Expired
        );
        assert!(Card::parse("4242424242424242", 1, 27, "123", NOW).is_ok());
        assert_eq!(
            Card::parse("4242424242424242", 13, 2030, "123", NOW).unwrap_err(),
            CardError::InvalidExpiryMonth
        );
        assert_eq!(
            Card::parse("4242424242424242", 1, 1999, "123", NOW).unwrap_err(),
            CardError::InvalidExpiryYear
        );
    }

    #[test]
    fn cvc_is_three_or_four_digits() {
        assert!(Card::parse("4242424242424242", 12, 2030, "1234", NOW).is_ok());
        for bad in ["", "12", "12345", "12a"] {
            assert_eq!(
                Card::parse("4242424242424242", 12, 2030, bad, NOW).unwrap_err(),
                CardError::InvalidCvc,
                "{bad}"
            );
        }
    }
}
