//! Prefixed object identifiers (`mer_…`, `pay_…`), as merchants see them.
//!
//! Every public object has an id made of a short type prefix and 24 random
//! base62 characters (≈143 bits), so ids are unguessable and a merchant can
//! tell what an id refers to at a glance. Ids are parsed at the edge: a
//! `MerchantId` can only hold a well-formed merchant id.

use std::fmt;

use rand::Rng;
use rand::distributions::Alphanumeric;

/// Length of the random part of an id.
const RANDOM_LEN: usize = 24;

/// Random base62 string of `len` characters from the OS-seeded CSPRNG.
pub fn random_base62(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Why a string is not a valid id of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an id of the form `{prefix}_…` with {RANDOM_LEN} letters or digits")]
pub struct InvalidId {
    /// The prefix that was expected, without the underscore.
    pub prefix: &'static str,
}

fn is_valid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|random| {
            random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The type prefix, without the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, random_base62(RANDOM_LEN)))
            }

            /// Parse an id received from outside.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if is_valid(s, $prefix) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidId { prefix: $prefix })
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A merchant: the tenant every other object belongs to.
    MerchantId,
    "mer"
);
define_id!(
    /// An API key (the key's public handle, never the secret itself).
    ApiKeyId,
    "key"
);
define_id!(
    /// A payment (`pay_…`).
    PaymentId,
    "pay"
);
define_id!(
    /// A refund (`re_…`).
    RefundId,
    "re"
);
define_id!(
    /// A call to a payment's processor (`pop_…`), committed before the call;
    /// its id is the call's idempotency key.
    OperationId,
    "pop"
);
define_id!(
    /// A dispute (`dp_…`).
    DisputeId,
    "dp"
);
define_id!(
    /// A settlement batch (`st_…`).
    SettlementId,
    "st"
);
define_id!(
    /// A payout (`po_…`).
    PayoutId,
    "po"
);
define_id!(
    /// An on-chain send from the hot wallet (`cs_…`): a crypto refund or payout.
    ChainSendId,
    "cs"
);
define_id!(
    /// An exception of the reconciliation desk (`rex_…`): bank money that
    /// matched no payment exactly.
    ReconciliationExceptionId,
    "rex"
);
define_id!(
    /// A credit transfer the gateway sends through its bank (`btr_…`); also
    /// the transfer's ISO 20022 EndToEndId.
    BankTransferId,
    "btr"
);
define_id!(
    /// A request, echoed in the `Request-Id` header and in every log line.
    RequestId,
    "req"
);
define_id!(
    /// An event of the outbox (`evt_…`): something that happened to an object.
    EventId,
    "evt"
);
define_id!(
    /// A merchant's webhook endpoint (`we_…`).
    WebhookEndpointId,
    "we"
);
define_id!(
    /// A dashboard user (`usr_…`).
    UserId,
    "usr"
);

define_id!(
    /// One event's delivery to one endpoint (`whd_…`), with its attempts.
    WebhookDeliveryId,
    "whd"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = MerchantId::generate();
        assert_eq!(MerchantId::parse(id.as_str()), Ok(id.clone()));
        assert!(id.as_str().starts_with("mer_"));
        assert_eq!(id.as_str().len(), 4 + RANDOM_LEN);
    }

    #[test]
    fn wrong_prefix_length_or_alphabet_is_refused() {
        let good = MerchantId::generate();
        let random = &good.as_str()[4..];
        assert!(MerchantId::parse(&format!("pay_{random}")).is_err());
        assert!(MerchantId::parse(&format!("mer_{}", &random[1..])).is_err());
        assert!(MerchantId::parse(&format!("mer_{}-", &random[1..])).is_err());
        assert!(MerchantId::parse("mer").is_err());
        assert!(MerchantId::parse("").is_err());
    }
}
