//! Per-key token buckets: each key may sustain `rate` requests a second
//! with bursts up to `burst`. Exceeding it is a 429 with `Retry-After`.
//!
//! The buckets live in the node's memory, so with N nodes a key may reach
//! N times the rate; that is the usual trade for not putting a database
//! write on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::ids::ApiKeyId;
use crate::merchants::Caller;

/// Token arithmetic in thousandths of a token, to stay in integers.
const MILLI: u64 = 1000;
/// Above this many tracked keys, full (idle) buckets are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    milli_tokens: u64,
    refilled_at: Instant,
}

/// The buckets of every key seen by this node.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    burst: u64,
    buckets: Mutex<HashMap<ApiKeyId, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests a second sustained, `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: u64::from(rate.max(1)),
            burst: u64::from(burst.max(rate).max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; on refusal, the seconds until one is free.
    pub fn check(&self, key: &ApiKeyId, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > PRUNE_AT {
            let full = self.burst * MILLI;
            buckets.retain(|_, b| self.refilled(b, now) < full);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            milli_tokens: self.burst * MILLI,
            refilled_at: now,
        });
        bucket.milli_tokens = self.refilled(bucket, now);
        bucket.refilled_at = now;
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            Ok(())
        } else {
            let missing = MILLI - bucket.milli_tokens;
            // Milli-tokens accrue at `rate` per millisecond.
            let wait_ms = missing.div_ceil(self.rate);
            Err(wait_ms.div_ceil(1000).max(1))
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> u64 {
        let elapsed_ms =
            u64::try_from(now.duration_since(bucket.refilled_at).as_millis()).unwrap_or(u64::MAX);
        bucket
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(self.rate))
            .min(self.burst * MILLI)
    }
}

/// Middleware: runs after authentication, limits by key.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(caller) = req.extensions().get::<Caller>()
        && let Err(retry_after) = state.rate_limiter.check(&caller.key_id, Instant::now())
    {
        state.metrics.add("rate_limited", 1);
        return ApiError::rate_limited(retry_after).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(10, 20);
        let key = ApiKeyId::generate();
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.check(&key, t0).is_ok());
        }
        assert_eq!(limiter.check(&key, t0), Err(1));
        // 10/s: one token every 100 ms.
        assert!(limiter.check(&key, t0 + Duration::from_millis(100)).is_ok());
        assert!(
            limiter
                .check(&key, t0 + Duration::from_millis(100))
                .is_err()
        );
        // Other keys are unaffected.
        assert!(limiter.check(&ApiKeyId::generate(), t0).is_ok());
    }
}
