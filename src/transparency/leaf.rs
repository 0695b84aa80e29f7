//! The canonical binary encoding of a settled item: the bytes a leaf of the
//! transparency log commits to.
//!
//! # Leaf encoding, version 1
//!
//! A leaf's *data* is the concatenation of these fields, with no padding;
//! integers are big-endian, and a `str8` is one length byte `n` (1 to 255)
//! followed by `n` bytes, each a visible ASCII character (0x21 to 0x7E: no
//! spaces, no controls, no UTF-8 beyond ASCII):
//!
//! | # | field           | encoding   | meaning |
//! |---|-----------------|------------|---------|
//! | 1 | `version`       | 1 byte     | `0x01` |
//! | 2 | `origin`        | `str8`     | the log's name, as in its checkpoints (e.g. `epg/31337/0x5fbd…0aa3`); binds the leaf to one log |
//! | 3 | `settlement_id` | `str8`     | the settlement batch (`st_…`) |
//! | 4 | `merchant_id`   | `str8`     | the merchant (`mer_…`) |
//! | 5 | `source_id`     | `str8`     | the settled object: payment `pay_…`, refund `re_…`, dispute `dp_…`, … |
//! | 6 | `kind`          | `str8`     | one of `payment`, `refund`, `fee`, `dispute`, `dispute_reversal`, `crypto_receipt`, `payout`, `adjustment` |
//! | 7 | `asset`         | `str8`     | lower-case ISO 4217 currency (`usd`) or crypto asset code (`usdc`, `eth`) as in the API |
//! | 8 | `amount`        | 32 bytes   | unsigned 256-bit integer in the asset's smallest unit (cents, token base units); the kind says which way the money went |
//! | 9 | `settled_at`    | 8 bytes    | unsigned 64-bit Unix time in seconds at which the batch settled |
//!
//! The leaf *entry* hashed into the tree is `data ‖ salt`, where `salt` is 32
//! random bytes drawn for this leaf alone, so
//! `leaf_hash = SHA-256(0x00 ‖ data ‖ salt)`. The salt keeps a leaf hash
//! from revealing its data: an inclusion proof for one payment discloses
//! only hashes of other leaves, which cannot be tested against guesses of
//! their amounts or ids without their salts.
//!
//! The encoding is canonical: every item has exactly one encoding, and a
//! decoder refuses any other bytes (unknown version, empty or over-long
//! string, a character outside 0x21–0x7E, unknown kind, missing or trailing
//! bytes). A later version changes the first byte; version 1 leaves stay
//! valid forever.

use alloy::primitives::U256;
use serde::{Deserialize, Serialize};

use super::merkle::{Hash, hash_leaf_parts};

/// The version byte of this encoding.
pub const LEAF_VERSION: u8 = 0x01;

/// Bytes of a leaf's salt.
pub const SALT_LEN: usize = 32;

/// Longest string field, in bytes.
pub const MAX_FIELD_LEN: usize = 255;

/// A leaf's random salt.
pub type Salt = [u8; SALT_LEN];

/// What kind of money movement a settled item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeafKind {
    /// A captured card or other traditional payment (credit to the merchant).
    Payment,
    /// A refund (debit).
    Refund,
    /// A fee the gateway charged (debit).
    Fee,
    /// Funds withdrawn for a dispute (debit).
    Dispute,
    /// Disputed funds returned after a won dispute (credit).
    DisputeReversal,
    /// An on-chain crypto payment received (credit).
    CryptoReceipt,
    /// A payout to the merchant (debit of the available balance).
    Payout,
    /// A manual adjustment; its direction is recorded in the settlement.
    Adjustment,
}

impl LeafKind {
    /// Every kind.
    pub const ALL: [LeafKind; 8] = [
        LeafKind::Payment,
        LeafKind::Refund,
        LeafKind::Fee,
        LeafKind::Dispute,
        LeafKind::DisputeReversal,
        LeafKind::CryptoReceipt,
        LeafKind::Payout,
        LeafKind::Adjustment,
    ];
}

// The name used in the encoding and in JSON is the serde name.
crate::names!(LeafKind);

/// One settled item, as the settlement job appends it to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafData {
    /// The settlement batch.
    pub settlement_id: String,
    /// The merchant whose money it is.
    pub merchant_id: String,
    /// The settled object (`pay_…`, `re_…`, …).
    pub source_id: String,
    /// What kind of movement.
    pub kind: LeafKind,
    /// Currency or asset code, lower case.
    pub asset: String,
    /// Amount in the asset's smallest unit; a decimal string in JSON.
    #[serde(with = "decimal_u256")]
    pub amount: U256,
    /// Unix seconds of the settlement.
    pub settled_at: u64,
}

/// A decoded leaf: which log it belongs to and what was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafEntry {
    /// Encoding version (1).
    pub version: u8,
    /// The log's origin.
    pub origin: String,
    /// The settled item.
    #[serde(flatten)]
    pub data: LeafData,
}

/// Why bytes are not a valid leaf, or an item cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The first byte names a version this code does not know.
    #[error("unknown leaf encoding version {0:#04x}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("leaf data ends inside `{0}`")]
    Truncated(&'static str),
    /// A string field is empty, too long or has a forbidden character.
    #[error("leaf field `{field}`: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The kind is not one of [`LeafKind`].
    #[error("unknown leaf kind `{0}`")]
    UnknownKind(String),
    /// Bytes follow the last field.
    #[error("{0} bytes after the last field of the leaf")]
    TrailingBytes(usize),
}

/// Checks a `str8` field's contents.
pub fn check_field(field: &'static str, value: &str) -> Result<(), LeafError> {
    let invalid = |reason: String| LeafError::InvalidField { field, reason };
    if value.is_empty() {
        return Err(invalid("empty".into()));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(invalid(format!(
            "{} bytes, at most {MAX_FIELD_LEN}",
            value.len()
        )));
    }
    if let Some(c) = value.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
        return Err(invalid(format!(
            "byte {c:#04x} is not a visible ASCII character"
        )));
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, field: &'static str, value: &str) -> Result<(), LeafError> {
    check_field(field, value)?;
    // check_field bounds the length to 255.
    let len = u8::try_from(value.len()).map_err(|_| LeafError::InvalidField {
        field,
        reason: "too long".into(),
    })?;
    out.push(len);
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

impl LeafEntry {
    /// A version-1 entry of `origin` for `data`.
    pub fn new(origin: impl Into<String>, data: LeafData) -> Self {
        Self {
            version: LEAF_VERSION,
            origin: origin.into(),
            data,
        }
    }

    /// The canonical bytes (without the salt).
    pub fn encode(&self) -> Result<Vec<u8>, LeafError> {
        if self.version != LEAF_VERSION {
            return Err(LeafError::UnknownVersion(self.version));
        }
        let d = &self.data;
        let mut out = Vec::with_capacity(160);
        out.push(LEAF_VERSION);
        put_str(&mut out, "origin", &self.origin)?;
        put_str(&mut out, "settlement_id", &d.settlement_id)?;
        put_str(&mut out, "merchant_id", &d.merchant_id)?;
        put_str(&mut out, "source_id", &d.source_id)?;
        put_str(&mut out, "kind", &d.kind.to_string())?;
        put_str(&mut out, "asset", &d.asset)?;
        out.extend_from_slice(&d.amount.to_be_bytes::<32>());
        out.extend_from_slice(&d.settled_at.to_be_bytes());
        Ok(out)
    }

    /// Parses canonical bytes (without the salt).
    pub fn decode(bytes: &[u8]) -> Result<Self, LeafError> {
        let mut r = Reader { rest: bytes };
        let version = r.take::<1>("version")?[0];
        if version != LEAF_VERSION {
            return Err(LeafError::UnknownVersion(version));
        }
        let origin = r.str8("origin")?;
        let settlement_id = r.str8("settlement_id")?;
        let merchant_id = r.str8("merchant_id")?;
        let source_id = r.str8("source_id")?;
        let kind_name = r.str8("kind")?;
        let kind = kind_name
            .parse::<LeafKind>()
            .map_err(|_| LeafError::UnknownKind(kind_name))?;
        let asset = r.str8("asset")?;
        let amount = U256::from_be_bytes(r.take::<32>("amount")?);
        let settled_at = u64::from_be_bytes(r.take::<8>("settled_at")?);
        if !r.rest.is_empty() {
            return Err(LeafError::TrailingBytes(r.rest.len()));
        }
        Ok(Self {
            version,
            origin,
            data: LeafData {
                settlement_id,
                merchant_id,
                source_id,
                kind,
                asset,
                amount,
                settled_at,
            },
        })
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], LeafError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(LeafError::Truncated(field))?;
        self.rest = tail;
        Ok(*head)
    }

    fn str8(&mut self, field: &'static str) -> Result<String, LeafError> {
        let len = usize::from(self.take::<1>(field)?[0]);
        if self.rest.len() < len {
            return Err(LeafError::Truncated(field));
        }
        let (value, tail) = self.rest.split_at(len);
        self.rest = tail;
        // Visible ASCII is valid UTF-8; check_field rejects everything else.
        let value = String::from_utf8(value.to_vec()).map_err(|_| LeafError::InvalidField {
            field,
            reason: "not ASCII".into(),
        })?;
        check_field(field, &value)?;
        Ok(value)
    }
}

/// `SHA-256(0x00 ‖ data ‖ salt)`: the hash of the leaf entry.
pub fn leaf_hash(data: &[u8], salt: &Salt) -> Hash {
    hash_leaf_parts(&[data, salt])
}

/// 32 bytes from the operating system's CSPRNG.
pub fn random_salt() -> Salt {
    use rand::RngCore;
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt
}

/// `U256` as a canonical decimal string (no sign, no leading zeros).
pub mod decimal_u256 {
    use alloy::primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as a decimal string.
    pub fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    /// Parses a canonical decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a decimal amount (digits only, no leading zeros, below 2^256)"
            ))
        })
    }

    /// Parses a canonical decimal string.
    pub fn parse(s: &str) -> Option<U256> {
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !canonical {
            return None;
        }
        U256::from_str_radix(s, 10).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> LeafEntry {
        LeafEntry::new(
            "epg/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3",
            LeafData {
                settlement_id: "st_0123456789abcdefghijABCD".into(),
                merchant_id: "mer_0123456789abcdefghijABCD".into(),
                source_id: "pay_0123456789abcdefghijABCD".into(),
                kind: LeafKind::Payment,
                asset: "usd".into(),
                amount: U256::from(1234u64),
                settled_at: 1_700_000_000,
            },
        )
    }

    #[test]
    fn known_encoding() {
        let bytes = sample().encode().unwrap();
        assert_eq!(bytes[0], 0x01);
        assert_eq!(usize::from(bytes[1]), sample().origin.len());
        // version + 6 strings with their length bytes + amount + time
        let strings: usize = [
            "epg/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3",
            "st_0123456789abcdefghijABCD",
            "mer_0123456789abcdefghijABCD",
            "pay_0123456789abcdefghijABCD",
            "payment",
            "usd",
        ]
        .iter()
        .map(|s| 1 + s.len())
        .sum();
        assert_eq!(bytes.len(), 1 + strings + 32 + 8);
        assert_eq!(
            &bytes[bytes.len() - 40..],
            &hex::decode(
                "00000000000000000000000000000000000000000000000000000000000004d2\
                 000000006553f100"
            )
            .unwrap()[..]
        );
        assert_eq!(LeafEntry::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn decoding_refuses_non_canonical_bytes() {
        let bytes = sample().encode().unwrap();
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(LeafEntry::decode(&v2), Err(LeafError::UnknownVersion(2)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            LeafEntry::decode(&trailing),
            Err(LeafError::TrailingBytes(1))
        );
        assert_eq!(
            LeafEntry::decode(&bytes[..bytes.len() - 1]),
            Err(LeafError::Truncated("settled_at"))
        );
        let mut space = bytes.clone();
        space[2] = b' ';
        assert!(matches!(
            LeafEntry::decode(&space),
            Err(LeafError::InvalidField {
                field: "origin",
                ..
            })
        ));
        let mut empty = vec![1u8, 0];
        empty.extend_from_slice(&bytes[2..]);
        assert!(LeafEntry::decode(&empty).is_err());
        assert!(LeafEntry::decode(&[]).is_err());
    }

    #[test]
    fn encoding_refuses_invalid_fields() {
        let mut e = sample();
        e.data.asset = "u sd".into();
        assert!(e.encode().is_err());
        let mut e = sample();
        e.data.source_id = "x".repeat(256);
        assert!(e.encode().is_err());
        let mut e = sample();
        e.origin = String::new();
        assert!(e.encode().is_err());
        let mut e = sample();
        e.data.merchant_id = "mér".into();
        assert!(e.encode().is_err());
    }

    #[test]
    fn json_shows_the_amount_as_a_decimal_string() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["amount"], "1234");
        assert_eq!(json["kind"], "payment");
        assert_eq!(json["version"], 1);
        let back: LeafEntry = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, sample());
        let mut bad = json;
        bad["amount"] = "01234".into();
        assert!(serde_json::from_value::<LeafEntry>(bad).is_err());
    }

    #[test]
    fn the_salt_changes_the_leaf_hash() {
        let data = sample().encode().unwrap();
        let a = random_salt();
        let b = random_salt();
        assert_ne!(a, b);
        assert_ne!(leaf_hash(&data, &a), leaf_hash(&data, &b));
        let mut entry = data.clone();
        entry.extend_from_slice(&a);
        assert_eq!(
            leaf_hash(&data, &a),
            super::super::merkle::hash_leaf(&entry)
        );
    }

    fn field() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[!-~]{1,255}").unwrap()
    }

    fn entry() -> impl Strategy<Value = LeafEntry> {
        (
            field(),
            field(),
            field(),
            field(),
            proptest::sample::select(LeafKind::ALL.to_vec()),
            field(),
            any::<[u8; 32]>(),
            any::<u64>(),
        )
            .prop_map(
                |(origin, settlement_id, merchant_id, source_id, kind, asset, amount, at)| {
                    LeafEntry::new(
                        origin,
                        LeafData {
                            settlement_id,
                            merchant_id,
                            source_id,
                            kind,
                            asset,
                            amount: U256::from_be_bytes(amount),
                            settled_at: at,
                        },
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(e in entry()) {
            let bytes = e.encode().unwrap();
            prop_assert_eq!(LeafEntry::decode(&bytes).unwrap(), e.clone());
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<LeafEntry>(&json).unwrap(), e);
        }

        #[test]
        fn decode_then_encode_is_identity(e in entry(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            // Any bytes that decode re-encode to themselves: one encoding per item.
            let mut bytes = e.encode().unwrap();
            let at = cut.index(bytes.len());
            bytes[at] ^= flip;
            if let Ok(decoded) = LeafEntry::decode(&bytes) {
                prop_assert_eq!(decoded.encode().unwrap(), bytes);
            }
        }
    }
}
