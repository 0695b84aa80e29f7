//! Processing fees: per merchant, payment method and asset.
//!
//! A fee is `percent_bps` basis points of the amount plus a `fixed` amount
//! of the asset's smallest unit, optionally capped by `max_fee`:
//!
//! ```text
//! fee = min( round_half_up(amount × percent_bps / 10 000) + fixed, max_fee, amount )
//! ```
//!
//! computed exactly in `i128` (an amount is below 10^28 and basis points at
//! most 10 000, so the product stays below 10^32). Rounding is half up, to
//! the nearest smallest unit with halves rounded away from zero, as card
//! schemes and most processors state it: 2.9 % of $0.50 is 1.45 ¢ → 1 ¢,
//! of $0.70 it is 2.03 ¢ → 2 ¢, of $1.50 it is 4.35 ¢ → 4 ¢, of $0.10 it is
//! 0.29 ¢ → 0 ¢, and 0.5 ¢ → 1 ¢. A fee never exceeds the amount it is
//! taken from, so a payment never makes a merchant's balance go down.
//!
//! The schedule lives in `ledger_fee_schedules`. For a merchant, method
//! and asset the first row found wins, in this order: the merchant's row for
//! the asset, the merchant's row for any asset, the default row for the
//! asset, the default row for any asset; with none, the fee is zero. Rows
//! for "any asset" carry no fixed part (a fixed amount needs a unit). That
//! precedence is the SQL function `ledger_fee_rule`, so a statement that
//! books a payment can read the rule with the payment it locks.
//!
//! The fee is posted as its own pair of postings, flagged `fee`, debiting
//! the merchant and crediting `fee_revenue` ([`super::Entry::fee`]).

use sqlx::PgConnection;

use super::LedgerError;
use crate::ids::MerchantId;
use crate::money::{Amount, AssetCode};

/// A schedule row's columns as stored: basis points, fixed part, cap.
pub type StoredFeeRule = (i32, rust_decimal::Decimal, Option<rust_decimal::Decimal>);

/// One schedule row: basis points, fixed part, cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRule {
    /// Hundredths of a percent of the amount (290 = 2.9 %), 0 to 10 000.
    pub percent_bps: u32,
    /// Added to every fee, in the asset's smallest unit.
    pub fixed: Amount,
    /// The largest fee, if capped.
    pub max_fee: Option<Amount>,
}

impl FeeRule {
    /// No fee.
    pub const ZERO: FeeRule = FeeRule {
        percent_bps: 0,
        fixed: Amount::ZERO,
        max_fee: None,
    };

    /// A rule, checked: basis points at most 10 000, amounts >= 0.
    pub fn new(
        percent_bps: u32,
        fixed: Amount,
        max_fee: Option<Amount>,
    ) -> Result<Self, LedgerError> {
        if percent_bps > 10_000 {
            return Err(LedgerError::Invalid(format!(
                "percent_bps must be 0 to 10000, got {percent_bps}"
            )));
        }
        if fixed.is_negative() || max_fee.is_some_and(Amount::is_negative) {
            return Err(LedgerError::Invalid(
                "fee amounts must not be negative".into(),
            ));
        }
        Ok(Self {
            percent_bps,
            fixed,
            max_fee,
        })
    }

    /// A rule as `ledger_fee_rule` returns it; `None` (no row) is no fee.
    /// For statements that read the rule together with something else.
    pub fn from_stored(row: Option<StoredFeeRule>) -> Result<Self, LedgerError> {
        let Some((percent_bps, fixed, max_fee)) = row else {
            return Ok(Self::ZERO);
        };
        Ok(Self {
            percent_bps: u32::try_from(percent_bps)
                .map_err(|_| LedgerError::Invalid("stored negative basis points".into()))?,
            fixed: stored(fixed)?,
            max_fee: max_fee.map(stored).transpose()?,
        })
    }

    /// The fee on `amount` (see the module documentation for the rule).
    /// Zero for an amount <= 0.
    pub fn fee_for(&self, amount: Amount) -> Amount {
        let base = amount.units();
        if base <= 0 {
            return Amount::ZERO;
        }
        // base < 10^28 and bps <= 10^4: no overflow.
        let percent = (base * i128::from(self.percent_bps) + 5_000) / 10_000;
        let mut fee = percent + self.fixed.units();
        if let Some(max) = self.max_fee {
            fee = fee.min(max.units());
        }
        Amount::new(fee.min(base)).unwrap_or(amount)
    }
}

fn stored(d: rust_decimal::Decimal) -> Result<Amount, LedgerError> {
    Amount::try_from(d).map_err(|e| LedgerError::Invalid(format!("stored fee {e}")))
}

/// The rule for `merchant` paying with `method` in `asset` (the
/// precedence is the SQL function `ledger_fee_rule`'s, see the module
/// documentation).
pub async fn fee_rule(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    method: &str,
    asset: &AssetCode,
) -> Result<FeeRule, LedgerError> {
    let row = sqlx::query!(
        r#"SELECT percent_bps AS "percent_bps!", fixed AS "fixed!", max_fee
             FROM ledger_fee_rule($1, $2, $3)"#,
        merchant.as_str(),
        method,
        asset.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    FeeRule::from_stored(row.map(|r| (r.percent_bps, r.fixed, r.max_fee)))
}

/// Sets the rule for `merchant` (`None`: the default schedule), `method`
/// and `asset` (`None`: any asset, percentage only), replacing any.
pub async fn set_fee_rule(
    conn: &mut PgConnection,
    merchant: Option<&MerchantId>,
    method: &str,
    asset: Option<&AssetCode>,
    rule: &FeeRule,
) -> Result<(), LedgerError> {
    let rule = FeeRule::new(rule.percent_bps, rule.fixed, rule.max_fee)?;
    if asset.is_none() && (!rule.fixed.is_zero() || rule.max_fee.is_some()) {
        return Err(LedgerError::Invalid(
            "a rule for any asset has no fixed part and no cap".into(),
        ));
    }
    let bps = i32::try_from(rule.percent_bps)
        .map_err(|_| LedgerError::Invalid("percent_bps out of range".into()))?;
    sqlx::query!(
        r#"INSERT INTO ledger_fee_schedules (merchant_id, method, asset, percent_bps, fixed, max_fee)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (merchant_id, method, asset) DO UPDATE
              SET percent_bps = EXCLUDED.percent_bps, fixed = EXCLUDED.fixed,
                  max_fee = EXCLUDED.max_fee, updated_at = now()"#,
        merchant.map(MerchantId::as_str),
        method,
        asset.map(AssetCode::as_str),
        bps,
        rule.fixed.to_decimal(),
        rule.max_fee.map(Amount::to_decimal),
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(bps: u32, fixed: i64, max: Option<i64>) -> FeeRule {
        FeeRule::new(bps, Amount::from_minor(fixed), max.map(Amount::from_minor)).unwrap()
    }

    fn fee(r: &FeeRule, amount: i64) -> i128 {
        r.fee_for(Amount::from_minor(amount)).units()
    }

    #[test]
    fn percent_rounds_half_up() {
        let card = rule(290, 0, None);
        assert_eq!(fee(&card, 50), 1); // 1.45
        assert_eq!(fee(&card, 70), 2); // 2.03
        assert_eq!(fee(&card, 150), 4); // 4.35
        assert_eq!(fee(&card, 10), 0); // 0.29
        assert_eq!(fee(&rule(50, 0, None), 100), 1); // 0.5 exactly
        assert_eq!(fee(&rule(50, 0, None), 300), 2); // 1.5 exactly
        assert_eq!(fee(&card, 10_000), 290);
    }

    #[test]
    fn fixed_cap_and_amount_bound() {
        let card = rule(290, 30, None);
        assert_eq!(fee(&card, 1000), 59);
        assert_eq!(fee(&card, 10), 10, "never more than the amount");
        assert_eq!(fee(&card, 0), 0);
        assert_eq!(fee(&card, -100), 0);
        let ach = rule(80, 0, Some(500));
        assert_eq!(fee(&ach, 10_000), 80);
        assert_eq!(fee(&ach, 10_000_000), 500);
        assert_eq!(fee(&rule(10_000, 0, None), 1234), 1234);
    }

    #[test]
    fn exact_for_huge_token_amounts() {
        let crypto = rule(100, 0, None);
        let amount = Amount::new(10_i128.pow(27) + 50).unwrap();
        assert_eq!(crypto.fee_for(amount).units(), 10_i128.pow(25) + 1); // +0.5 rounds up
        assert_eq!(
            rule(10_000, 0, None).fee_for(Amount::MAX).units(),
            Amount::MAX.units()
        );
    }

    #[test]
    fn invalid_rules_are_refused() {
        assert!(FeeRule::new(10_001, Amount::ZERO, None).is_err());
        assert!(FeeRule::new(1, Amount::from_minor(-1), None).is_err());
    }
}
