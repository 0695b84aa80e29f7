//! The risk screening of a confirmation: the signals from the database
//! (velocity, the merchant's history and threshold, read with the attempt
//! in one statement with the payment's lock:
//! [`super::store::lock_and_record_attempt`]), the score
//! of [`super::risk`], and whether it blocks the payment.

use super::cards::SANDBOX_CARD_COUNTRY;
use super::model::Payment;
use super::risk::{self, RiskSignals};
use super::store::RiskCounts;
use crate::methods::Decline;

/// The outcome of a screening.
#[derive(Debug)]
pub enum Verdict {
    /// Go on to the processor.
    Pass,
    /// Blocked by the merchant's threshold.
    Blocked(Decline),
}

/// Scores `payment` (its score and reasons are set on it) and compares the
/// score with the merchant's threshold.
pub fn screen(
    payment: &mut Payment,
    counts: &RiskCounts,
    billing_country: Option<String>,
) -> Verdict {
    let assessment = risk::assess(&RiskSignals {
        card_attempts_last_hour: counts.card,
        email_attempts_last_hour: counts.email,
        ip_attempts_last_hour: counts.ip,
        amount: payment.amount,
        merchant_median_amount: counts.median,
        card_country: payment
            .card
            .as_ref()
            .map(|_| SANDBOX_CARD_COUNTRY.to_owned()),
        billing_country,
        shipping_country: payment.shipping.as_ref().map(|s| s.address.country.clone()),
    });
    payment.risk_score = Some(i16::from(assessment.score));
    payment.risk_reasons = Some(assessment.reasons);
    if i16::from(assessment.score) >= counts.threshold {
        // The score and reasons are on the payment for the merchant; the
        // message, which reaches browsers, does not help a tester learn
        // what tripped the check.
        return Verdict::Blocked(Decline {
            code: "risk_blocked".into(),
            decline_code: None,
            message: "The payment was blocked by the merchant's risk checks.".into(),
        });
    }
    Verdict::Pass
}
