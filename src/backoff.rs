//! Exponential back-off: the node's one way to wait longer after each
//! failure in a row (chain watchers and the hot wallet, webhook
//! deliveries, the webhook worker's claims, the event listener).

use std::time::Duration;

use rand::Rng;

/// Delays doubling from `base` with each failure in a row, never above
/// `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Back-off from `base` up to `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// [`Backoff::new`] in milliseconds, as configurations give them.
    pub const fn from_millis(base_ms: u64, cap_ms: u64) -> Self {
        Self::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(cap_ms),
        )
    }

    /// The delay after failure number `failures` in a row (1 for the
    /// first): `min(cap, base * 2^(failures - 1))`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(62);
        let ms = millis(self.base)
            .saturating_mul(1u64 << doublings)
            .min(millis(self.cap));
        Duration::from_millis(ms)
    }

    /// Uniform in `0..=delay(failures)` (at least up to a millisecond):
    /// "full jitter", so that many clients failing together do not come
    /// back together.
    pub fn jittered(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = millis(self.delay(failures)).max(1);
        Duration::from_millis(rng.gen_range(0..=ceiling))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let b = Backoff::from_millis(100, 1000);
        let delays: Vec<u64> = (0..=6).map(|n| millis(b.delay(n))).collect();
        assert_eq!(delays, [100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(1000));
        assert_eq!(
            Backoff::from_millis(u64::MAX, u64::MAX).delay(9),
            Duration::from_millis(u64::MAX)
        );
    }
}
