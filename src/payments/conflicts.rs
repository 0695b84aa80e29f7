//! Bookings run again when PostgreSQL rolls them back in a conflict.
//!
//! A deadlock (40P01) or a serialization failure (40001) rolls the whole
//! transaction back: nothing of it was written, and the ledger asks its
//! caller to run the transaction again ([`crate::ledger::LedgerError::Retryable`]).
//! The bookings of a processor's answer are where that matters most: the
//! answer is in hand and the operation pending, so running the booking
//! again finishes the payment now instead of leaving it to the reconciler
//! or answering the merchant an error for work that did happen.

use std::future::Future;
use std::time::Duration;

use super::PaymentError;

/// Tries of one booking, the first included.
const TRIES: u32 = 3;

impl PaymentError {
    /// Whether PostgreSQL rolled the transaction back in a conflict, so
    /// that running it again is safe and may succeed.
    pub fn is_conflict(&self) -> bool {
        match self {
            PaymentError::Database(e) => crate::db::is_conflict(e),
            PaymentError::Booking(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Runs `book` (one whole transaction) until it is not rolled back in a
/// conflict, [`TRIES`] times at most; the last failure is returned as is.
/// The pause before a retry lets the transaction that won finish, and
/// grows with each try so that two losers do not meet again at once.
pub(super) async fn retrying<T, F, Fut>(what: &'static str, mut book: F) -> Result<T, PaymentError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PaymentError>>,
{
    let mut tries = 1;
    loop {
        match book().await {
            Err(e) if e.is_conflict() && tries < TRIES => {
                tracing::info!(what, tries, error = %crate::telemetry::ErrorChain(&e), "booking rolled back in a conflict; running it again");
                let jitter = u64::from(rand::random::<u8>() % 8);
                tokio::time::sleep(Duration::from_millis(u64::from(tries) * 5 + jitter)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;

    use super::*;
    use crate::ledger::LedgerError;

    /// The ledger's retryable error; what it wraps does not decide.
    fn conflict() -> PaymentError {
        PaymentError::Booking(LedgerError::Retryable(sqlx::Error::PoolTimedOut))
    }

    #[tokio::test]
    async fn a_booking_rolled_back_in_a_conflict_runs_again() {
        let calls = Cell::new(0);
        let booked = retrying("test", || {
            calls.set(calls.get() + 1);
            let call = calls.get();
            async move {
                if call < TRIES {
                    Err(conflict())
                } else {
                    Ok(call)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(booked, TRIES);
        assert_eq!(calls.get(), TRIES);
    }

    #[tokio::test]
    async fn conflicts_are_tried_a_bounded_number_of_times() {
        let calls = Cell::new(0);
        let err = retrying("test", || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(conflict()) }
        })
        .await
        .unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(calls.get(), TRIES);
    }

    #[tokio::test]
    async fn other_failures_are_not_tried_again() {
        let calls = Cell::new(0);
        let err = retrying("test", || {
            calls.set(calls.get() + 1);
            async {
                Err::<(), _>(PaymentError::Booking(LedgerError::Refused(
                    "unbalanced".into(),
                )))
            }
        })
        .await
        .unwrap_err();
        assert!(!err.is_conflict());
        assert_eq!(calls.get(), 1);
        let database = PaymentError::Database(sqlx::Error::PoolTimedOut);
        assert!(!database.is_conflict());
    }
}
