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

/// Entries kept before the oldest half is dropped (one per merchant and
/// currency that confirmed lately).
const CAPACITY: usize = 10_000;

/// A merchant and a currency.
type Key = (MerchantId, String);

/// A median (`None`: too little history) and when it was computed.
type Kept = (Option<i64>, Instant);

/// Medians by merchant and currency, with when each was computed.
#[derive(Debug, Default)]
pub struct Medians {
    entries: Mutex<HashMap<Key, Kept>>,
}

impl Medians {
    /// The median of `merchant` in `currency` if one fresh enough is kept
    /// (`Some(None)`: kept, and there was too little history for one).
    pub fn get(&self, merchant: &MerchantId, currency: &str, now: Instant) -> Option<Option<i64>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(merchant.clone(), currency.to_owned()))
            .filter(|(_, at)| now.saturating_duration_since(*at) < MAX_AGE)
            .map(|(median, _)| *median)
    }

    /// Keeps `median`, computed at `at`.
    pub fn put(&self, merchant: &MerchantId, currency: &str, median: Option<i64>, at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            // Stale entries would be recomputed anyway; dropping them bounds
            // the memory a node spends on merchants that stopped confirming.
            entries.retain(|_, (_, kept)| at.saturating_duration_since(*kept) < MAX_AGE);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert((merchant.clone(), currency.to_owned()), (median, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_is_used_until_it_is_too_old() {
        let medians = Medians::default();
        let merchant = MerchantId::generate();
        let t0 = Instant::now();
        assert_eq!(medians.get(&merchant, "usd", t0), None);
        medians.put(&merchant, "usd", Some(1500), t0);
        assert_eq!(medians.get(&merchant, "usd", t0), Some(Some(1500)));
        assert_eq!(medians.get(&merchant, "eur", t0), None);
        assert_eq!(medians.get(&merchant, "usd", t0 + MAX_AGE), None);
        medians.put(&merchant, "eur", None, t0);
        assert_eq!(medians.get(&merchant, "eur", t0), Some(None));
    }
}
