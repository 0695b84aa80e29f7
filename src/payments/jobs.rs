//! Background work of the payments side: uncaptured authorizations are
//! voided after their time-to-live (7 days by default), unpaid vouchers
//! expire, and processor operations whose node died or lost its answer
//! are resumed (see [`super::operations`]).
//!
//! Expiry claims one payment at a time with `FOR UPDATE SKIP LOCKED`, so
//! any number of nodes can run it on one database: a payment being expired
//! by one node is skipped by the others. A void is a processor call, so it
//! is an operation of its own, committed before the call and booked after
//! it: one payment's failure never undoes the voids the processor already
//! made for others.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::model::Status;
use super::{PaymentError, Payments, store};

/// Most payments claimed per pass.
const MAX_PER_PASS: usize = 1000;

/// Expires everything due at `now`; returns how many payments this pass
/// canceled (a void left to the processor's late answer is not counted).
pub async fn expire_due(payments: &Payments, now: OffsetDateTime) -> Result<usize, PaymentError> {
    let mut total = 0;
    // Bounded by claims, not by successes: a payment whose void fails before
    // its operation commits is claimed again, and must not spin the pass.
    for _ in 0..MAX_PER_PASS {
        let mut tx = payments.pool().begin().await?;
        let Some(mut payment) = store::claim_expired(&mut tx, now, 1).await?.pop() else {
            return Ok(total);
        };
        if payment.status == Status::RequiresCapture {
            // Commits the void operation, calls the processor, books it. A
            // processor that does not answer leaves the operation pending
            // for the reconciler; the pass goes on with the next payment.
            let id = payment.id.clone();
            match payments.void(tx, payment, "expired".into(), None).await {
                Ok(voided) if voided.status == Status::Canceled => total += 1,
                // Canceled by another node's answer meanwhile: counted there.
                Ok(_) => {}
                // The claim's snapshot predates another node's void of this
                // payment (that node released the row between committing its
                // operation and booking it): the payment is that node's.
                Err(PaymentError::Busy { .. }) => {}
                Err(e) => {
                    tracing::warn!(payment = %id, error = %crate::telemetry::ErrorChain(&e), "void of an expired authorization failed");
                }
            }
        } else {
            payments
                .cancel_locked(&mut tx, &mut payment, "expired".into())
                .await?;
            tx.commit().await?;
            total += 1;
        }
    }
    Ok(total)
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
                match payments.resume_stale().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(resumed = n, "resumed processor operations"),
                    Err(e) => tracing::warn!(error = %e, "resuming processor operations failed"),
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
