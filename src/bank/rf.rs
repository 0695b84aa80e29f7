//! ISO 11649 structured creditor references (`RF18 5390 0754 7034`).
//!
//! A reference is `RF`, two check digits and 1–21 letters or digits. The
//! check digits are those of ISO 7064 MOD 97-10, as for an IBAN: move `RF`
//! and the digits to the end, turn letters into numbers (A = 10 … Z = 35),
//! and the whole number is 1 modulo 97. A single mistyped character, and
//! almost every transposition, fails the check, so a garbled reference is
//! recognised as garbled instead of matching another payment.

use std::fmt;

/// A well-formed ISO 11649 reference, in its compact upper-case form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditorReference(String);

impl CreditorReference {
    /// The reference for `body` (1–21 letters or digits, any case).
    pub fn for_body(body: &str) -> Option<Self> {
        let body = body.to_ascii_uppercase();
        if body.is_empty() || body.len() > 21 || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let remainder = mod97(&format!("{body}RF00"))?;
        let check = 98 - remainder;
        Some(Self(format!("RF{check:02}{body}")))
    }

    /// Parses a reference as a payer may write it: spaces anywhere,
    /// any case. `None` unless the check digits hold.
    pub fn parse(text: &str) -> Option<Self> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        if compact.len() < 5 || compact.len() > 25 || !compact.starts_with("RF") {
            return None;
        }
        let (head, body) = compact.split_at(4);
        if !head[2..].bytes().all(|b| b.is_ascii_digit())
            || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        (mod97(&format!("{body}{head}"))? == 1).then_some(Self(compact))
    }

    /// Every valid reference in free text (remittance information), in
    /// order. Payers split references with spaces and change their case;
    /// each `RF` is tried with the characters after it, spaces skipped, at
    /// every length a reference can have, longest first.
    pub fn find_all(text: &str) -> Vec<Self> {
        let upper: Vec<char> = text.to_ascii_uppercase().chars().collect();
        let mut found: Vec<Self> = Vec::new();
        let mut i = 0;
        while i + 1 < upper.len() {
            if upper[i] == 'R'
                && upper[i + 1] == 'F'
                && (i == 0 || !upper[i - 1].is_ascii_alphanumeric())
            {
                let mut compact = String::new();
                for c in &upper[i..] {
                    if c.is_ascii_alphanumeric() {
                        compact.push(*c);
                    } else if *c != ' ' {
                        break;
                    }
                    if compact.len() == 25 {
                        break;
                    }
                }
                let hit = (5..=compact.len())
                    .rev()
                    .find_map(|n| Self::parse(&compact[..n]));
                if let Some(reference) = hit
                    && !found.contains(&reference)
                {
                    found.push(reference);
                }
            }
            i += 1;
        }
        found
    }

    /// The compact form (`RF18539007547034`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The printed form, in groups of four (`RF18 5390 0754 7034`).
    pub fn grouped(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for CreditorReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `digits` (letters as 10–35) modulo 97, computed piecewise so it never
/// overflows; `None` for a character that is neither.
pub(crate) fn mod97(text: &str) -> Option<u32> {
    let mut remainder: u32 = 0;
    for c in text.chars() {
        let value = c.to_digit(36)?;
        remainder = if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        };
    }
    Some(remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_example_is_valid_and_is_rebuilt_from_its_body() {
        // ISO 11649's own example.
        let reference = CreditorReference::parse("RF18 5390 0754 7034").unwrap();
        assert_eq!(reference.as_str(), "RF18539007547034");
        assert_eq!(reference.grouped(), "RF18 5390 0754 7034");
        assert_eq!(
            CreditorReference::for_body("539007547034").unwrap(),
            reference
        );
    }

    #[test]
    fn case_and_spaces_do_not_matter_but_one_wrong_character_does() {
        let reference = CreditorReference::for_body("EPG7K2Q9").unwrap();
        let loose = reference.grouped().to_lowercase();
        assert_eq!(CreditorReference::parse(&loose), Some(reference.clone()));
        let mut garbled = reference.as_str().to_owned();
        garbled.replace_range(6..7, if &garbled[6..7] == "7" { "8" } else { "7" });
        assert_eq!(CreditorReference::parse(&garbled), None);
    }

    #[test]
    fn references_are_found_in_free_text() {
        let a = CreditorReference::for_body("ORDER42").unwrap();
        let text = format!("Invoice 17, ref {} thanks", a.grouped().to_lowercase());
        assert_eq!(CreditorReference::find_all(&text), vec![a]);
        assert!(CreditorReference::find_all("RF00 nothing").is_empty());
        assert!(CreditorReference::find_all("SURFACE RF").is_empty());
    }

    #[test]
    fn bodies_that_cannot_be_references_are_refused() {
        assert!(CreditorReference::for_body("").is_none());
        assert!(CreditorReference::for_body("A-B").is_none());
        assert!(CreditorReference::for_body(&"1".repeat(22)).is_none());
    }
}
