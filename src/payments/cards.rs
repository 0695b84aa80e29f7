//! Card data of a confirmation at rest: the number sealed under the cards
//! subkey (bound to the payment's id), the per-merchant fingerprint for
//! velocity checks, and what may be shown (brand, last four, expiry).

use super::model::CardDetails;
use super::store::StoredCard;
use crate::crypto::{Fingerprints, Sealer};
use crate::ids::{MerchantId, PaymentId};
use crate::methods::Card;

/// Card countries of the sandbox cards (all issued in the US, as Stripe's).
pub const SANDBOX_CARD_COUNTRY: &str = "US";

/// A card's fingerprints under the keys in use.
#[derive(Debug, Clone, Default)]
pub struct CardPrints {
    /// Under the current master key: what is stored.
    pub current: String,
    /// Under every key a card may still be stored with (a rotation may be
    /// under way): what velocity counts.
    pub candidates: Vec<String>,
}

/// The fingerprints of `card` for `merchant`.
pub fn prints(fingerprints: &Fingerprints, merchant: &MerchantId, card: &Card) -> CardPrints {
    let number = card.number.expose().as_bytes();
    CardPrints {
        current: fingerprints.of(merchant.as_str(), number),
        candidates: fingerprints.candidates(merchant.as_str(), number),
    }
}

/// What is shown of `card` on its payment.
pub fn display(card: &Card, fingerprint: &str) -> CardDetails {
    CardDetails {
        brand: card.number.brand().to_string(),
        last4: card.number.last4().to_string(),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        fingerprint: Some(fingerprint.to_owned()),
        country: Some(SANDBOX_CARD_COUNTRY.to_owned()),
    }
}

/// `card` as stored with payment `payment`: its number sealed, bound to the
/// payment so a sealed number cannot be moved to another row.
pub fn seal(sealer: &Sealer, payment: &PaymentId, card: &Card, fingerprint: &str) -> StoredCard {
    StoredCard {
        display: display(card, fingerprint),
        sealed_number: sealer.seal(card.number.expose().as_bytes(), payment.as_str().as_bytes()),
        fingerprint: fingerprint.to_owned(),
    }
}
