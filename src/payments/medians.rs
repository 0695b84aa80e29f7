//! The merchant's median succeeded amount per currency, kept a while per
//! node for the risk score.
//!
//! The median reads up to a thousand of the merchant's latest succeeded
//! payments; computed on every confirmation it was the costliest statement
//! of a card payment (issue 19: about a third of the database's time at 8
//! connections, ~1,000 buffers per confirmation). It is a statistic that
//! moves slowly with the merchant's history, so a value up to [`MAX_AGE`]
//! old scores a payment as well as a fresh one. Nothing else is cached
//! here: the velocity counts and the merchant's threshold are read in the
//! same statement as the attempt, always current.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::MerchantId;

/// How long a median is used before the next confirmation recomputes it.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Merchants kept before the stale ones are dropped (those that confirmed
/// lately).
const CAPACITY: usize = 10_000;

/// A currency, its median (`None`: too little history) and when it was
/// computed.
type Kept = (String, Option<i64>, Instant);

/// Medians by merchant, then currency, with when each was computed.
#[derive(Debug, Default)]
pub struct Medians {
    entries: Mutex<HashMap<MerchantId, Vec<Kept>>>,
}

impl Medians {
    /// The medians of `merchant` fresh enough to use, by currency
    /// (`None`: there was too little history for one). The confirmation
    /// asks the database for the median of any other currency.
    pub fn kept(&self, merchant: &MerchantId, now: Instant) -> Vec<(String, Option<i64>)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(merchant).map_or_else(Vec::new, |kept| {
            kept.iter()
                .filter(|(_, _, at)| fresh(*at, now))
                .map(|(currency, median, _)| (currency.clone(), *median))
                .collect()
        })
    }

    /// Keeps `median` of `merchant` in `currency`, computed at `at`.
    pub fn put(&self, merchant: &MerchantId, currency: &str, median: Option<i64>, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(merchant) {
            // Stale entries would be recomputed anyway; dropping them bounds
            // the memory a node spends on merchants that stopped confirming.
            entries.retain(|_, kept| kept.iter().any(|(_, _, kept)| fresh(*kept, at)));
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        let kept = entries.entry(merchant.clone()).or_default();
        kept.retain(|(c, _, _)| c != currency);
        kept.push((currency.to_owned(), median, at));
    }
}

fn fresh(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) < MAX_AGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_is_used_until_it_is_too_old() {
        let medians = Medians::default();
        let merchant = MerchantId::generate();
        let t0 = Instant::now();
        assert!(medians.kept(&merchant, t0).is_empty());
        medians.put(&merchant, "usd", Some(1500), t0);
        assert_eq!(
            medians.kept(&merchant, t0),
            [("usd".to_owned(), Some(1500))]
        );
        assert!(medians.kept(&MerchantId::generate(), t0).is_empty());
        assert!(medians.kept(&merchant, t0 + MAX_AGE).is_empty());
        medians.put(&merchant, "eur", None, t0);
        medians.put(&merchant, "usd", Some(1700), t0 + MAX_AGE / 2);
        assert_eq!(
            medians.kept(&merchant, t0 + MAX_AGE / 2),
            [("eur".to_owned(), None), ("usd".to_owned(), Some(1700))]
        );
        assert_eq!(
            medians.kept(&merchant, t0 + MAX_AGE),
            [("usd".to_owned(), Some(1700))]
        );
    }
}
