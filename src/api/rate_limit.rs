//! Token buckets: per API key, each key may sustain `rate` requests a
//! second with bursts up to `burst`; per client address, the same for the
//! public routes (checkout, live streams, the transparency log) and for
//! failed authentications. Exceeding a budget is a 429 with `Retry-After`.
//!
//! The buckets live in the node's memory, so with N nodes a key may reach
//! N times the rate; that is the usual trade for not putting a database
//! write on every request.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::ids::ApiKeyId;
use crate::merchants::Caller;

/// Token arithmetic in millionths of a token, to stay in integers.
const MICRO: u64 = 1_000_000;
/// Above this many tracked keys, full (idle) buckets are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    micro_tokens: u64,
    refilled_at: Instant,
}

/// The buckets of every key (API key, client address) seen by this node.
#[derive(Debug)]
pub struct RateLimiter<K = ApiKeyId> {
    /// Micro-tokens gained per millisecond.
    refill_per_ms: u64,
    burst: u64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `rate` requests a second sustained, `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self::with_refill(
            u64::from(rate.max(1)) * (MICRO / 1000),
            u64::from(burst.max(rate).max(1)),
        )
    }

    /// `per_minute` requests a minute sustained, `burst` at once.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_refill(
            (u64::from(per_minute.max(1)) * MICRO / 60_000).max(1),
            u64::from(burst.max(1)),
        )
    }

    fn with_refill(refill_per_ms: u64, burst: u64) -> Self {
        Self {
            refill_per_ms,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; on refusal, the seconds until one is free.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        self.with_bucket(key, now, |bucket| {
            if bucket.micro_tokens >= MICRO {
                bucket.micro_tokens -= MICRO;
                true
            } else {
                false
            }
        })
    }

    /// Whether `key` has a token, without taking it.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), u64> {
        self.with_bucket(key, now, |bucket| bucket.micro_tokens >= MICRO)
    }

    fn with_bucket(
        &self,
        key: &K,
        now: Instant,
        take: impl FnOnce(&mut Bucket) -> bool,
    ) -> Result<(), u64> {
        // A poisoned lock means a thread panicked mid-update; failing open
        // would switch every limit off for the life of the process, so the
        // node refuses instead (and says when to retry).
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(1);
        };
        if buckets.len() > PRUNE_AT {
            let full = self.burst * MICRO;
            buckets.retain(|_, b| self.refilled(b, now) < full);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            micro_tokens: self.burst * MICRO,
            refilled_at: now,
        });
        bucket.micro_tokens = self.refilled(bucket, now);
        bucket.refilled_at = now;
        if take(bucket) {
            Ok(())
        } else {
            let missing = MICRO.saturating_sub(bucket.micro_tokens);
            let wait_ms = missing.div_ceil(self.refill_per_ms);
            Err(wait_ms.div_ceil(1000).max(1))
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> u64 {
        let elapsed_ms =
            u64::try_from(now.duration_since(bucket.refilled_at).as_millis()).unwrap_or(u64::MAX);
        bucket
            .micro_tokens
            .saturating_add(elapsed_ms.saturating_mul(self.refill_per_ms))
            .min(self.burst * MICRO)
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

/// Middleware of the public routes: limits by client address.
pub async fn limit_public(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = super::client_ip::of(&req);
    if let Err(retry_after) = state.public_limiter.check(&ip, Instant::now()) {
        state.metrics.add("rate_limited_public", 1);
        return ApiError::rate_limited(retry_after).into_response();
    }
    next.run(req).await
}

/// The client addresses that sent too many bad keys lately.
pub type FailedAuthLimiter = RateLimiter<IpAddr>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate() {
        let limiter: RateLimiter = RateLimiter::new(10, 20);
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

    #[test]
    fn per_minute_budgets_refill_slowly() {
        let limiter: RateLimiter<u8> = RateLimiter::per_minute(6, 2);
        let t0 = Instant::now();
        assert!(limiter.check(&1, t0).is_ok());
        assert!(limiter.peek(&1, t0).is_ok());
        assert!(limiter.check(&1, t0).is_ok());
        assert_eq!(limiter.peek(&1, t0), Err(10));
        assert!(limiter.check(&1, t0 + Duration::from_secs(9)).is_err());
        assert!(limiter.check(&1, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_poisoned_rate_limit_lock_fails_closed() {
        let limiter: std::sync::Arc<RateLimiter<u8>> =
            std::sync::Arc::new(RateLimiter::new(10, 20));
        let poisoner = limiter.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.buckets.lock().unwrap();
            panic!("poison the buckets");
        })
        .join();
        assert!(limiter.buckets.is_poisoned());
        assert_eq!(limiter.check(&1, Instant::now()), Err(1));
    }
}
