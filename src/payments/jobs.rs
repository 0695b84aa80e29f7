//! Background expiry: uncaptured authorizations are voided after their
//! time-to-live (7 days by default), and unpaid vouchers expire.
//!
//! Each pass claims a batch with `FOR UPDATE SKIP LOCKED` in one
//! transaction, so any number of nodes can run it on one database: a
//! payment being expired by one node is skipped by the others, and a node
//! that dies mid-batch leaves its rows unexpired for the next pass.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{PaymentError, Payments, store};

/// Payments expired per transaction.
const BATCH: i64 = 100;

/// Expires everything due at `now`; returns how many payments it canceled.
pub async fn expire_due(payments: &Payments, now: OffsetDateTime) -> Result<usize, PaymentError> {
    let mut total = 0;
    loop {
        let mut tx = payments.pool().begin().await?;
        let due = store::claim_expired(&mut tx, now, BATCH).await?;
        if due.is_empty() {
            return Ok(total);
        }
        let count = due.len();
        for mut payment in due {
            payments
                .cancel_locked(&mut tx, &mut payment, "expired".into())
                .await?;
        }
        tx.commit().await?;
        total += count;
        if i64::try_from(count).unwrap_or(0) < BATCH {
            return Ok(total);
        }
    }
}

/// Runs [`expire_due`] every `every` until `shutdown`.
pub async fn run(payments: Payments, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = super::crypto::flag_underpaid(&payments, OffsetDateTime::now_utc()).await {
                    tracing::warn!(error = %e, "underpaid crypto check failed");
                }
                match expire_due(&payments, OffsetDateTime::now_utc()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired payments"),
                    Err(e) => tracing::warn!(error = %e, "payment expiry pass failed"),
                }
            }
        }
    }
}
