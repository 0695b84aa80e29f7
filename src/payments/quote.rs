//! Quotes: how many base units of a crypto asset pay a fiat amount.
//!
//! Everything is integer arithmetic on base units, rounded up, so the
//! customer never pays less than the price: a stablecoin at par scales the
//! minor units to the token's decimals; other assets divide by a
//! Chainlink-style price (answer with `feed_decimals` decimals, fiat per
//! whole asset unit).

/// Why no quote can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The price is zero or negative.
    #[error("the price feed answered a non-positive price")]
    BadPrice,
    /// The price is older than allowed.
    #[error("the price feed is stale: last updated {age_secs} s ago (limit {limit_secs} s)")]
    Stale {
        /// Seconds since the feed's `updatedAt`.
        age_secs: u64,
        /// The configured limit.
        limit_secs: u64,
    },
    /// Numbers out of range (absurd decimals).
    #[error("the quote does not fit the arithmetic range")]
    Overflow,
}

fn pow10(exp: u32) -> Result<u128, QuoteError> {
    10u128.checked_pow(exp).ok_or(QuoteError::Overflow)
}

fn div_ceil(n: u128, d: u128) -> Result<u128, QuoteError> {
    if d == 0 {
        return Err(QuoteError::Overflow);
    }
    Ok(n.div_ceil(d))
}

/// Base units of a stablecoin at par for `amount` minor units of a
/// currency with `fiat_scale` decimals.
pub fn at_par(amount: u64, fiat_scale: u8, token_decimals: u8) -> Result<u128, QuoteError> {
    let amount = u128::from(amount);
    if token_decimals >= fiat_scale {
        amount
            .checked_mul(pow10(u32::from(token_decimals - fiat_scale))?)
            .ok_or(QuoteError::Overflow)
    } else {
        div_ceil(amount, pow10(u32::from(fiat_scale - token_decimals))?)
    }
}

/// Base units of an asset with `asset_decimals` for `amount` minor units,
/// at `price` (fiat per whole asset unit, with `feed_decimals` decimals).
pub fn at_price(
    amount: u64,
    fiat_scale: u8,
    asset_decimals: u8,
    price: i128,
    feed_decimals: u8,
) -> Result<u128, QuoteError> {
    let price = u128::try_from(price)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(QuoteError::BadPrice)?;
    // units = amount * 10^asset_decimals * 10^feed_decimals / (price * 10^fiat_scale),
    // in 256 bits: an 18-decimal asset priced by an 18-decimal feed
    // already needs 10^36 before the amount multiplies it.
    use alloy::primitives::U256;
    let pow = |exp: u8| U256::from(10u8).checked_pow(U256::from(exp));
    let numerator = pow(asset_decimals)
        .zip(pow(feed_decimals))
        .and_then(|(a, f)| U256::from(amount).checked_mul(a)?.checked_mul(f))
        .ok_or(QuoteError::Overflow)?;
    let denominator = pow(fiat_scale)
        .and_then(|f| U256::from(price).checked_mul(f))
        .filter(|d| !d.is_zero())
        .ok_or(QuoteError::Overflow)?;
    let units = numerator.div_ceil(denominator);
    u128::try_from(units).map_err(|_| QuoteError::Overflow)
}

pub fn check_fresh(updated_at: u64, now: u64, limit_secs: u64) -> Result<(), QuoteError> {
    let age_secs = now.saturating_sub(updated_at);
    if age_secs > limit_secs {
        Err(QuoteError::Stale {
            age_secs,
            limit_secs,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn stablecoins_scale_exactly() {
        // $12.34 = 12.34 USDC = 12,340,000 base units.
        assert_eq!(at_par(1234, 2, 6), Ok(12_340_000));
        // ¥500 in a 2-decimal token: 500.00.
        assert_eq!(at_par(500, 0, 2), Ok(50_000));
        // A 3-decimal currency into a 2-decimal token rounds up.
        assert_eq!(at_par(1001, 3, 2), Ok(101));
    }

    #[test]
    fn eth_at_3000_dollars() {
        // $30.00 at $3,000.00000000 per ETH = 0.01 ETH.
        assert_eq!(
            at_price(3000, 2, 18, 300_000_000_000, 8),
            Ok(10_000_000_000_000_000)
        );
        // $10.00 at $3,000: 1/300 ETH, rounded up to the wei.
        assert_eq!(
            at_price(1000, 2, 18, 300_000_000_000, 8),
            Ok(3_333_333_333_333_334)
        );
        // The same from a feed with 18 decimals (beyond u128 midway).
        assert_eq!(
            at_price(3000, 2, 18, 3_000 * 10i128.pow(18), 18),
            Ok(10_000_000_000_000_000)
        );
        assert_eq!(at_price(1000, 2, 18, 0, 8), Err(QuoteError::BadPrice));
        assert_eq!(at_price(1000, 2, 18, -5, 8), Err(QuoteError::BadPrice));
    }

    #[test]
    fn staleness() {
        assert!(check_fresh(1000, 1300, 300).is_ok());
        assert_eq!(
            check_fresh(1000, 1301, 300),
            Err(QuoteError::Stale {
                age_secs: 301,
                limit_secs: 300
            })
        );
    }

    proptest! {
        /// The quote always pays at least the price, and one base unit less
        /// would not.
        #[test]
        fn quotes_are_the_least_sufficient_amount(
            amount in 1u64..100_000_000,
            price in 1i128..10_000_000_000_000,
        ) {
            let units = at_price(amount, 2, 18, price, 8).unwrap();
            // value(units) = units * price / 10^(18+8) in dollars; compare in
            // cents * 10^24 to stay integral.
            let paid = units * u128::try_from(price).unwrap();
            let owed = u128::from(amount) * 10u128.pow(24);
            prop_assert!(paid >= owed);
            prop_assert!((units - 1) * u128::try_from(price).unwrap() < owed);
        }
    }
}
