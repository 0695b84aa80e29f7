//! The calls to a payment's processor, each framed by an operation (see
//! [`super::operations`]): commit the intent, call with the operation's id
//! as idempotency key, then book the answer in a transaction of its own.
//!
//! The `finish_*` functions are the only places an answer is booked, for
//! the request that made the call and for whoever resumes it later
//! ([`Payments::resume`]): each locks the payment, then the operation, and
//! does nothing if the operation is no longer pending, so an answer is
//! booked once however many times it arrives.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::model::{CaptureMethod, LastError, NextAction, Payment, Status};
use super::operations::{self, Kind, NewOperation, Operation};
use super::{PaymentError, Payments, postings, store};
use crate::events::EventType;
use crate::ids::{MerchantId, OperationId, PaymentId};
use crate::ledger;
use crate::methods::{
    Answer, Authorization, Captured, Connector, CustomerAction, Decline, ProcessorEvent,
};

/// Operations the reconciler resumes per pass.
const RESUME_BATCH: i64 = 50;

type Tx = crate::db::DbTx;

/// How long a retry waits for the reconciler to finish resuming the
/// operation the retry would take over, and how often it looks.
const RECONCILER_WAIT: Duration = Duration::from_secs(3);
const RECONCILER_POLL: Duration = Duration::from_millis(50);

impl Payments {
    /// The connector of a confirmed payment's method.
    pub(super) fn connector_of(&self, payment: &Payment) -> Result<&dyn Connector, PaymentError> {
        payment
            .method
            .and_then(|m| self.connectors().get(m))
            .ok_or_else(|| {
                PaymentError::state(
                    "payment_method_unavailable",
                    "The processor of this payment's method is not configured on this node.",
                )
            })
    }

    /// Locks `payment` and its operation `op` for booking an answer; `None`
    /// when the operation was finished already (by a concurrent request or
    /// the reconciler), with the payment as it is.
    async fn lock_for_answer(&self, op: &Operation) -> Result<(Tx, Payment, bool), PaymentError> {
        let mut tx = self.pool().begin().await?;
        let payment = store::lock(&mut tx, &op.merchant_id, &op.payment_id)
            .await?
            .ok_or_else(|| not_found(&op.payment_id))?;
        let current = operations::lock(&mut tx, &op.id).await?;
        Ok((tx, payment, current.status == operations::Status::Pending))
    }

    /// Books the processor's answer to an authorization or a challenge,
    /// again if a conflict rolls the booking back.
    pub(super) async fn finish_authorization(
        &self,
        op: &Operation,
        authorization: Authorization,
    ) -> Result<Payment, PaymentError> {
        // The processor events that follow run once the booking committed,
        // outside the retried transaction.
        let (payment, followups) = super::conflicts::retrying("authorization", || {
            self.book_authorization(op, authorization.clone())
        })
        .await?;
        self.apply_followups(&payment, followups).await?;
        Ok(payment)
    }

    /// One try at booking an authorization's answer: the payment, and the
    /// processor events that follow it when this try booked it.
    async fn book_authorization(
        &self,
        op: &Operation,
        authorization: Authorization,
    ) -> Result<(Payment, Vec<ProcessorEvent>), PaymentError> {
        let succeeded = !matches!(authorization, Authorization::Declined(_));
        let mut tx = self.pool().begin().await?;
        // Finishing only a pending operation both decides who books the
        // answer (under the payment's lock) and books the operation's end;
        // the lock and the finish are one statement.
        let (mut payment, finished, fee) = store::lock_and_finish(
            &mut tx,
            &op.merchant_id,
            &op.payment_id,
            &op.id,
            if succeeded {
                operations::Status::Succeeded
            } else {
                operations::Status::Failed
            },
        )
        .await?
        .ok_or_else(|| not_found(&op.payment_id))?;
        if !finished {
            tx.rollback().await?;
            return Ok((payment, Vec::new()));
        }
        let mut followups = Vec::new();
        let event = match authorization {
            Authorization::Declined(decline) => {
                return Ok((self.fail(tx, payment, decline).await?, Vec::new()));
            }
            Authorization::Approved {
                reference,
                captured,
            } => {
                payment.processor_reference = Some(reference);
                payment.next_action = None;
                match captured {
                    Some(captured) => {
                        // Captured with the authorization: nothing is held.
                        let fee = ledger::FeeRule::from_stored(fee)?;
                        postings::capture_at_authorization(&mut tx, &payment, &fee).await?;
                        payment.amount_received = payment.amount;
                        payment.amount_capturable = 0;
                        payment.status = Status::Succeeded;
                        payment.expires_at = None;
                        followups = captured.followups;
                        EventType::PaymentSucceeded
                    }
                    None => {
                        payment.amount_capturable = payment.amount;
                        payment.hold_id = Some(
                            postings::authorize(
                                &mut tx,
                                &payment,
                                OffsetDateTime::now_utc() + self.authorization_ttl(),
                            )
                            .await?,
                        );
                        payment.status = Status::RequiresCapture;
                        payment.expires_at =
                            Some(OffsetDateTime::now_utc() + self.authorization_ttl());
                        // Stripe announces an uncaptured authorization as
                        // amount_capturable_updated; the closest of our
                        // events is that the payment is being processed.
                        EventType::PaymentProcessing
                    }
                }
            }
            Authorization::ActionRequired { reference, action } => {
                payment.processor_reference = Some(reference);
                payment.expires_at = match &action {
                    CustomerAction::DisplayVoucher { expires_at, .. } => Some(*expires_at),
                    _ => None,
                };
                payment.next_action = Some(super::service::next_action(&action));
                payment.status = Status::RequiresAction;
                EventType::PaymentRequiresAction
            }
            Authorization::Pending { reference, action } => {
                payment.processor_reference = Some(reference);
                payment.next_action = action.as_ref().map(super::service::next_action);
                payment.status = Status::Processing;
                EventType::PaymentProcessing
            }
        };
        // The payment's new state and its event: one statement.
        self.save_and_announce(&mut tx, &payment, event).await?;
        tx.commit().await?;
        Ok((payment, followups))
    }

    /// Answers a 3-D Secure one-time-code challenge.
    pub async fn answer_challenge(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        code: &str,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let mut tx = self.pool().begin().await?;
        let payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Challenge, request_key)
            .await?
        {
            tx.rollback().await?;
            // The retry carries the code the reconciler does not have.
            return self
                .call_again(op, |key, payment| async move {
                    let connector = self.connector_of(&payment)?;
                    let reference = payment.processor_reference.clone().unwrap_or_default();
                    let capture = payment.capture_method == CaptureMethod::Automatic;
                    Ok(connector
                        .answer_challenge(key.as_str(), &reference, code, capture)
                        .await?)
                })
                .await;
        }
        let pending_otp = payment.status == Status::RequiresAction
            && payment
                .next_action
                .as_ref()
                .is_some_and(|a| *a == NextAction::OtpChallenge);
        if !pending_otp {
            return Err(unexpected_state(&payment, "answer a challenge for"));
        }
        let connector = self.connector_of(&payment)?;
        let op = self
            .begin(
                &mut tx,
                &payment,
                Kind::Challenge,
                payment.amount,
                None,
                request_key,
            )
            .await?;
        tx.commit().await?;
        let reference = payment.processor_reference.clone().unwrap_or_default();
        let capture = payment.capture_method == CaptureMethod::Automatic;
        let authorization = connector
            .answer_challenge(op.id.as_str(), &reference, code, capture)
            .await?;
        self.finish_authorization(&op, authorization).await
    }

    /// Captures `amount` (default: all) of an authorization; the rest is
    /// released.
    pub async fn capture(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        amount: Option<i64>,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let mut tx = self.pool().begin().await?;
        let payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Capture, request_key)
            .await?
        {
            tx.rollback().await?;
            return self.replay(op).await;
        }
        if payment.status != Status::RequiresCapture {
            return Err(unexpected_state(&payment, "capture"));
        }
        let amount = amount.unwrap_or(payment.amount_capturable);
        if amount <= 0 {
            return Err(PaymentError::invalid(
                "amount_to_capture",
                "amount_to_capture must be a positive integer",
            ));
        }
        if amount > payment.amount_capturable {
            return Err(PaymentError::invalid(
                "amount_to_capture",
                format!(
                    "amount_to_capture must be at most the authorized amount ({})",
                    payment.amount_capturable
                ),
            ));
        }
        let connector = self.connector_of(&payment)?;
        let op = self
            .begin(&mut tx, &payment, Kind::Capture, amount, None, request_key)
            .await?;
        tx.commit().await?;
        let reference = payment.processor_reference.clone().unwrap_or_default();
        let captured = connector
            .capture(op.id.as_str(), &reference, amount)
            .await?;
        self.finish_capture(&op, captured).await
    }

    /// Books a capture the processor made, again if a conflict rolls the
    /// booking back.
    async fn finish_capture(
        &self,
        op: &Operation,
        captured: Captured,
    ) -> Result<Payment, PaymentError> {
        let (payment, booked) =
            super::conflicts::retrying("capture", || self.book_capture_answer(op)).await?;
        if booked {
            self.apply_followups(&payment, captured.followups).await?;
        }
        Ok(payment)
    }

    /// One try at booking a capture: the payment, and whether this try
    /// booked it (not when the operation was finished already).
    async fn book_capture_answer(&self, op: &Operation) -> Result<(Payment, bool), PaymentError> {
        let (mut tx, mut payment, pending) = self.lock_for_answer(op).await?;
        if !pending {
            tx.rollback().await?;
            return Ok((payment, false));
        }
        operations::finish(&mut tx, &op.id, operations::Status::Succeeded).await?;
        book_capture(&mut tx, &mut payment, op.amount).await?;
        self.announce(&mut tx, &payment, EventType::PaymentSucceeded)
            .await?;
        tx.commit().await?;
        Ok((payment, true))
    }

    /// Cancels a payment that has not succeeded; an authorization is voided
    /// at the processor first.
    pub async fn cancel(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        reason: Option<String>,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let mut tx = self.pool().begin().await?;
        let mut payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        for kind in [Kind::Void, Kind::Cancel] {
            if let Some(op) = self
                .earlier_request(&mut tx, merchant, kind, request_key)
                .await?
            {
                tx.rollback().await?;
                return self.replay(op).await;
            }
        }
        if !matches!(
            payment.status,
            Status::RequiresPaymentMethod
                | Status::RequiresAction
                | Status::RequiresCapture
                | Status::Failed
        ) {
            return Err(unexpected_state(&payment, "cancel"));
        }
        let reason = reason.unwrap_or_else(|| "requested_by_customer".into());
        if payment.status != Status::RequiresCapture {
            // Nothing is held at the processor: one transaction.
            self.begin(&mut tx, &payment, Kind::Cancel, 0, None, request_key)
                .await?;
            self.cancel_locked(&mut tx, &mut payment, reason).await?;
            tx.commit().await?;
            return Ok(payment);
        }
        self.void(tx, payment, reason, request_key).await
    }

    /// Voids the authorization of a locked payment in `requires_capture`
    /// (commits `tx` with the operation first), then cancels it.
    pub(super) async fn void(
        &self,
        mut tx: Tx,
        payment: Payment,
        reason: String,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let connector = self.connector_of(&payment)?;
        // The payment is canceled, with this reason, once the processor has
        // released the authorization.
        let op = self
            .begin(&mut tx, &payment, Kind::Void, 0, Some(&reason), request_key)
            .await?;
        tx.commit().await?;
        let reference = payment.processor_reference.clone().unwrap_or_default();
        connector.void(op.id.as_str(), &reference).await?;
        self.finish_void(&op).await
    }

    /// Books a void the processor made: the payment is canceled (again if
    /// a conflict rolls the booking back).
    async fn finish_void(&self, op: &Operation) -> Result<Payment, PaymentError> {
        super::conflicts::retrying("void", || self.book_void(op)).await
    }

    async fn book_void(&self, op: &Operation) -> Result<Payment, PaymentError> {
        let (mut tx, mut payment, pending) = self.lock_for_answer(op).await?;
        if !pending {
            tx.rollback().await?;
            return Ok(payment);
        }
        operations::finish(&mut tx, &op.id, operations::Status::Succeeded).await?;
        let reason = op
            .reason
            .clone()
            .unwrap_or_else(|| "requested_by_customer".into());
        self.cancel_locked(&mut tx, &mut payment, reason).await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// Cancels a locked payment that holds nothing at the processor (or
    /// whose hold the processor has released): the ledger hold is voided
    /// and the event recorded.
    pub(super) async fn cancel_locked(
        &self,
        conn: &mut PgConnection,
        payment: &mut Payment,
        reason: String,
    ) -> Result<(), PaymentError> {
        if payment.status == Status::RequiresCapture {
            postings::void(conn, payment).await?;
            payment.amount_capturable = 0;
        }
        payment.status = Status::Canceled;
        payment.next_action = None;
        payment.expires_at = None;
        payment.cancellation_reason = Some(reason);
        store::update(conn, payment).await?;
        self.announce(conn, payment, EventType::PaymentCanceled)
            .await
    }

    /// Starts an operation on a locked payment.
    pub(super) async fn begin(
        &self,
        conn: &mut PgConnection,
        payment: &Payment,
        kind: Kind,
        amount: i64,
        reason: Option<&str>,
        request_key: Option<&str>,
    ) -> Result<Operation, PaymentError> {
        operations::begin(
            conn,
            &NewOperation {
                merchant_id: &payment.merchant_id,
                payment_id: &payment.id,
                kind,
                refund_id: None,
                amount,
                reason,
                idempotency_key: request_key,
            },
            self.operation_lease(),
        )
        .await
    }

    /// The operation an earlier request with the same `Idempotency-Key`
    /// started, if there was one.
    pub(super) async fn earlier_request(
        &self,
        conn: &mut PgConnection,
        merchant: &MerchantId,
        kind: Kind,
        request_key: Option<&str>,
    ) -> Result<Option<Operation>, PaymentError> {
        match request_key {
            Some(key) => operations::by_request(conn, merchant, kind, key).await,
            None => Ok(None),
        }
    }

    /// Answers a retried request: finishes its operation if it is still
    /// pending (its answer was lost), then returns the payment as it is.
    pub(super) async fn replay(&self, op: Operation) -> Result<Payment, PaymentError> {
        if op.status == operations::Status::Pending {
            return self.resume(op).await;
        }
        let payment = store::get(self.pool(), &op.merchant_id, &op.payment_id)
            .await?
            .ok_or_else(|| not_found(&op.payment_id))?;
        if op.status == operations::Status::Failed
            && let Some(error) = &payment.last_error
            && op.kind != Kind::Refund
        {
            // The retry gets what the first request got: the decline.
            return Err(PaymentError::Declined {
                decline: Decline {
                    code: error.code.clone(),
                    decline_code: error.decline_code.clone().flatten(),
                    message: error.message.clone(),
                },
                payment: Box::new(payment),
            });
        }
        Ok(payment)
    }

    /// Answers a retry of the request that started authorization `op`: its
    /// outcome when it ended ([`Self::replay`]); when it is still pending
    /// (its call failed on the way, its answer was lost, its node died), by
    /// making the call again with what the retry carries: `call`
    /// gets the operation's key (the processor answers a key it saw as it
    /// did the first time, and acts once) and the payment. The reconciler
    /// cannot do this (the card's security code and the challenge's code
    /// are never stored) and gives such an authorization up; the retry
    /// takes the operation over first so that the two never overlap.
    pub(super) async fn call_again<F, Fut>(
        &self,
        op: Operation,
        call: F,
    ) -> Result<Payment, PaymentError>
    where
        F: FnOnce(OperationId, Payment) -> Fut,
        Fut: Future<Output = Result<Authorization, PaymentError>>,
    {
        if op.status != operations::Status::Pending {
            return self.replay(op).await;
        }
        let mut waited = Duration::ZERO;
        let mut conn = loop {
            let mut conn = self.pool().acquire().await?;
            match operations::take_over(&mut conn, &op.id, self.operation_lease()).await? {
                None => break conn,
                // The reconciler is resuming it: one question to the
                // processor and a booking, whose outcome is the answer.
                Some(operations::Status::Pending) if waited < RECONCILER_WAIT => {
                    drop(conn);
                    tokio::time::sleep(RECONCILER_POLL).await;
                    waited += RECONCILER_POLL;
                }
                Some(operations::Status::Pending) => return Err(operations::in_progress()),
                // Finished since it was read: its outcome is the answer.
                Some(status) => {
                    drop(conn);
                    return self.replay(Operation { status, ..op }).await;
                }
            }
        };
        let payment = store::get(&mut *conn, &op.merchant_id, &op.payment_id)
            .await?
            .ok_or_else(|| not_found(&op.payment_id))?;
        drop(conn);
        let authorization = call(op.id.clone(), payment).await?;
        self.finish_authorization(&op, authorization).await
    }

    /// Completes a pending operation whose answer was lost: asks the
    /// processor what it answered to the operation's key, and books that;
    /// a call that never reached the processor is made again when it can
    /// be (capture, void, refund), and otherwise (an authorization needs
    /// the card's security code, which is never stored) given up as failed.
    pub async fn resume(&self, op: Operation) -> Result<Payment, PaymentError> {
        let payment = store::get(self.pool(), &op.merchant_id, &op.payment_id)
            .await?
            .ok_or_else(|| not_found(&op.payment_id))?;
        let connector = self.connector_of(&payment)?;
        let reference = payment.processor_reference.clone().unwrap_or_default();
        let answer = connector.recover(op.id.as_str()).await?;
        match (op.kind, answer) {
            (Kind::Authorize | Kind::Challenge, Some(Answer::Authorization { authorization })) => {
                self.finish_authorization(&op, authorization).await
            }
            (Kind::Authorize | Kind::Challenge, _) => self.abandon(&op).await,
            (Kind::Capture, Some(Answer::Captured { captured })) => {
                self.finish_capture(&op, captured).await
            }
            (Kind::Capture, _) => {
                let captured = connector
                    .capture(op.id.as_str(), &reference, op.amount)
                    .await?;
                self.finish_capture(&op, captured).await
            }
            (Kind::Void, _) => {
                connector.void(op.id.as_str(), &reference).await?;
                self.finish_void(&op).await
            }
            (Kind::Refund, _) => {
                connector
                    .refund(op.id.as_str(), &reference, op.amount)
                    .await?;
                super::refunds::finish(self, &op).await?;
                store::get(self.pool(), &op.merchant_id, &op.payment_id)
                    .await?
                    .ok_or_else(|| not_found(&op.payment_id))
            }
            (Kind::Cancel, _) => Ok(payment),
        }
    }

    /// An authorization whose call never reached the processor: the
    /// attempt failed, and the customer may confirm again.
    async fn abandon(&self, op: &Operation) -> Result<Payment, PaymentError> {
        let (mut tx, mut payment, pending) = self.lock_for_answer(op).await?;
        if !pending {
            tx.rollback().await?;
            return Ok(payment);
        }
        operations::finish(&mut tx, &op.id, operations::Status::Failed).await?;
        payment.status = Status::Failed;
        payment.next_action = None;
        payment.last_error = Some(LastError {
            decline_code: None,
            ..LastError::card_error(
                "processing_error",
                None,
                "The payment could not be processed; please try again.",
            )
        });
        store::update(&mut tx, &payment).await?;
        self.announce(&mut tx, &payment, EventType::PaymentFailed)
            .await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// Resumes operations whose lease ran out; returns how many.
    pub async fn resume_stale(&self) -> Result<usize, PaymentError> {
        let mut conn = self.pool().acquire().await?;
        let stale =
            operations::claim_stale(&mut conn, RESUME_BATCH, self.operation_lease()).await?;
        drop(conn);
        let count = stale.len();
        for op in stale {
            let id = op.id.clone();
            if let Err(e) = self.resume(op).await {
                // Still pending: the next pass tries again after the lease.
                tracing::warn!(operation = %id, error = %e, "could not resume a processor operation");
            }
        }
        Ok(count)
    }

    /// Records a decline: the payment becomes `failed` with the error, the
    /// event is written, and the caller gets [`PaymentError::Declined`].
    pub(super) async fn fail(
        &self,
        mut tx: Tx,
        mut payment: Payment,
        decline: Decline,
    ) -> Result<Payment, PaymentError> {
        payment.status = Status::Failed;
        payment.next_action = None;
        payment.last_error = Some(LastError::card_error(
            &decline.code,
            decline.decline_code.clone(),
            &decline.message,
        ));
        self.save_and_announce(&mut tx, &payment, EventType::PaymentFailed)
            .await?;
        tx.commit().await?;
        Err(PaymentError::Declined {
            decline,
            payment: Box::new(payment),
        })
    }

    /// Processor events that follow a capture (the sandbox's dispute card).
    pub(super) async fn apply_followups(
        &self,
        payment: &Payment,
        followups: Vec<ProcessorEvent>,
    ) -> Result<(), PaymentError> {
        for event in followups {
            if let ProcessorEvent::DisputeOpened { reason } = event {
                super::disputes::open(self, payment, &reason).await?;
            }
        }
        Ok(())
    }
}

/// Posts a capture the processor made, on a locked payment.
async fn book_capture(
    conn: &mut PgConnection,
    payment: &mut Payment,
    amount: i64,
) -> Result<(), PaymentError> {
    postings::capture(conn, payment, amount).await?;
    payment.amount_received = amount;
    payment.amount_capturable = 0;
    payment.status = Status::Succeeded;
    payment.expires_at = None;
    store::update(conn, payment).await?;
    Ok(())
}

pub(super) fn not_found(id: &PaymentId) -> PaymentError {
    PaymentError::NotFound {
        kind: "payment",
        id: id.to_string(),
    }
}

pub(super) fn unexpected_state(payment: &Payment, action: &str) -> PaymentError {
    PaymentError::state(
        "payment_unexpected_state",
        format!(
            "You cannot {action} this payment because it has a status of {}.",
            payment.status
        ),
    )
}
