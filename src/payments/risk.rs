//! Risk scoring before authorization: a deterministic score from 0 to 100
//! with the reasons that produced it.
//!
//! The rules are additive and explainable on purpose: a merchant who sees
//! `risk_blocked` can read why, and the same inputs always give the same
//! score. Signals come from the payments table (velocity, the merchant's
//! history) and the request (countries).

use serde::{Deserialize, Serialize};

/// What the scorer looks at.
#[derive(Debug, Clone, Default)]
pub struct RiskSignals {
    /// Confirmation attempts with the same card fingerprint in the last
    /// hour, on any of the merchant's payments, this one included: a card
    /// tester retrying one payment with card after card is counted too.
    pub card_attempts_last_hour: i64,
    /// Attempts with the same customer email in the last hour, this one included.
    pub email_attempts_last_hour: i64,
    /// Attempts from the same client address in the last hour, this one included.
    pub ip_attempts_last_hour: i64,
    /// This payment's amount (minor units).
    pub amount: i64,
    /// Median amount of the merchant's succeeded payments in this currency,
    /// when there are enough of them to mean something.
    pub merchant_median_amount: Option<i64>,
    /// Issuing country of the card (ISO 3166-1 alpha-2).
    pub card_country: Option<String>,
    /// Billing address country.
    pub billing_country: Option<String>,
    /// Shipping address country.
    pub shipping_country: Option<String>,
}

/// One reason that added to the score (stored with the payment, shown in
/// its `risk.reasons`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiskReason {
    /// Machine-readable code, e.g. `card_velocity` or `card_country_mismatch`.
    pub code: String,
    /// Points it added to the score.
    pub points: u8,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    /// 0 (no concern) to 100.
    pub score: u8,
    /// Why, largest first.
    pub reasons: Vec<RiskReason>,
}

/// Prior successful payments needed before the amount rule applies.
pub const MIN_HISTORY: i64 = 5;

/// Velocity counts at or above this score the same as any larger count
/// (the highest rule is "more than 30 from one address"), so the database
/// counts no further.
pub const COUNTS_ENOUGH: i64 = 31;

/// Scores `signals`.
pub fn assess(signals: &RiskSignals) -> RiskAssessment {
    let mut reasons = Vec::new();
    let mut add = |code: &str, points| {
        reasons.push(RiskReason {
            code: code.to_owned(),
            points,
        });
    };

    // The counts include the attempt being scored, hence `>` rather than
    // `>=`: the fourth use of a card within the hour is the first suspect.
    match signals.card_attempts_last_hour {
        n if n > 6 => add("card_velocity_high", 50),
        n if n > 3 => add("card_velocity", 30),
        _ => {}
    }
    match signals.email_attempts_last_hour {
        n if n > 10 => add("email_velocity_high", 35),
        n if n > 5 => add("email_velocity", 20),
        _ => {}
    }
    match signals.ip_attempts_last_hour {
        n if n > 30 => add("ip_velocity_high", 30),
        n if n > 10 => add("ip_velocity", 15),
        _ => {}
    }
    if let Some(median) = signals.merchant_median_amount.filter(|m| *m > 0) {
        if signals.amount > median.saturating_mul(10) {
            add("amount_far_above_history", 35);
        } else if signals.amount > median.saturating_mul(5) {
            add("amount_above_history", 20);
        }
    }
    let differs = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if differs(&signals.card_country, &signals.shipping_country) {
        add("card_country_mismatch", 25);
    }
    if differs(&signals.billing_country, &signals.shipping_country) {
        add("billing_country_mismatch", 15);
    }

    reasons.sort_by(|a, b| b.points.cmp(&a.points).then(a.code.cmp(&b.code)));
    let total: u32 = reasons.iter().map(|r| u32::from(r.points)).sum();
    RiskAssessment {
        score: u8::try_from(total.min(100)).unwrap_or(100),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_beyond_counts_enough_change_nothing() {
        let at = |n: i64| {
            assess(&RiskSignals {
                card_attempts_last_hour: n,
                email_attempts_last_hour: n,
                ip_attempts_last_hour: n,
                amount: 1000,
                ..Default::default()
            })
        };
        assert_eq!(at(COUNTS_ENOUGH), at(COUNTS_ENOUGH * 100));
    }

    #[test]
    fn a_clean_payment_scores_zero() {
        let a = assess(&RiskSignals {
            amount: 1000,
            merchant_median_amount: Some(900),
            card_country: Some("US".into()),
            shipping_country: Some("us".into()),
            ..Default::default()
        });
        assert_eq!(a.score, 0);
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn signals_add_up_and_cap_at_100() {
        let a = assess(&RiskSignals {
            card_attempts_last_hour: 7,
            email_attempts_last_hour: 12,
            ip_attempts_last_hour: 40,
            amount: 1_000_000,
            merchant_median_amount: Some(1000),
            card_country: Some("US".into()),
            billing_country: Some("FR".into()),
            shipping_country: Some("BR".into()),
        });
        assert_eq!(a.score, 100);
        assert_eq!(a.reasons[0].code, "card_velocity_high");
        assert_eq!(a.reasons.len(), 6);
    }

    #[test]
    fn each_rule_has_its_threshold() {
        let base = RiskSignals {
            amount: 5001,
            merchant_median_amount: Some(1000),
            ..Default::default()
        };
        assert_eq!(assess(&base).score, 20);
        let far = RiskSignals {
            amount: 10_001,
            ..base.clone()
        };
        assert_eq!(assess(&far).score, 35);
        let velocity = RiskSignals {
            card_attempts_last_hour: 4,
            ..Default::default()
        };
        assert_eq!(assess(&velocity).score, 30);
        let first_reuses = RiskSignals {
            card_attempts_last_hour: 3,
            ..Default::default()
        };
        assert_eq!(assess(&first_reuses).score, 0);
        let mismatch = RiskSignals {
            card_country: Some("US".into()),
            shipping_country: Some("DE".into()),
            ..Default::default()
        };
        assert_eq!(assess(&mismatch).reasons[0].code, "card_country_mismatch");
    }
}
