//! Processor operations: the node's side of every call to a processor.
//!
//! A call to a processor is a side effect outside the database, so it can
//! never be part of a database transaction. Instead each call is framed by
//! two: the first commits a `pending` operation (and whatever the call
//! needs reserved, such as a refund's amount), the call carries the
//! operation's id as its idempotency key, and the second books the answer
//! and finishes the operation, once (the row lock and the `pending` status
//! decide who finishes). If the node dies, times out or loses the second
//! COMMIT in between, the operation stays pending with a lease; after the
//! lease anyone may resume it — a retried request or the reconciler job —
//! by asking the processor what it answered to that key
//! ([`crate::methods::Connector::recover`]): the processor acts once, and
//! the books follow it once.
//!
//! A merchant's `Idempotency-Key` is stored with the operation it started
//! (`UNIQUE (merchant, kind, key)`), so a retry finds it even when the
//! saved HTTP response was lost.

use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

use super::PaymentError;
use crate::ids::{MerchantId, OperationId, PaymentId, RefundId};

/// What an operation asks of the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Kind {
    /// Authorize (and capture, for automatic capture) at confirmation.
    Authorize,
    /// Answer a 3-D Secure challenge.
    Challenge,
    /// Capture an authorization.
    Capture,
    /// Release an authorization.
    Void,
    /// Cancel a payment that holds nothing at the processor (no call; kept
    /// for the request's Idempotency-Key).
    Cancel,
    /// Refund.
    Refund,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Status {
    /// Committed; the processor may or may not have been called.
    Pending,
    /// The processor did it and the books say so.
    Succeeded,
    /// The processor refused, or never got the call and it cannot be made again.
    Failed,
}

/// An operation row.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `pop_…`: the processor call's idempotency key.
    pub id: OperationId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// The payment it acts on.
    pub payment_id: PaymentId,
    /// What it asks.
    pub kind: Kind,
    /// The refund it pays (kind `refund`).
    pub refund_id: Option<RefundId>,
    /// Amount the call moves (capture, refund), else the payment's amount.
    pub amount: i64,
    /// Why the payment is voided or canceled.
    pub reason: Option<String>,
    /// Where it stands.
    pub status: Status,
}

/// A new operation.
#[derive(Debug)]
pub struct NewOperation<'a> {
    /// Owner.
    pub merchant_id: &'a MerchantId,
    /// The payment.
    pub payment_id: &'a PaymentId,
    /// What it asks.
    pub kind: Kind,
    /// The refund it pays.
    pub refund_id: Option<&'a RefundId>,
    /// Amount.
    pub amount: i64,
    /// Why (void, cancel).
    pub reason: Option<&'a str>,
    /// The request's Idempotency-Key.
    pub idempotency_key: Option<&'a str>,
}

struct Row {
    id: OperationId,
    merchant_id: MerchantId,
    payment_id: PaymentId,
    kind: Kind,
    refund_id: Option<RefundId>,
    amount: i64,
    reason: Option<String>,
    status: Status,
}

impl From<Row> for Operation {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            merchant_id: r.merchant_id,
            payment_id: r.payment_id,
            kind: r.kind,
            refund_id: r.refund_id,
            amount: r.amount,
            reason: r.reason,
            status: r.status,
        }
    }
}

/// Starts an operation, `pending` under a lease of `lease` (or already
/// `succeeded` for a `cancel`, which calls nobody). Fails with
/// [`PaymentError::Busy`] while another state-changing operation
/// of the payment is pending.
pub async fn begin(
    conn: &mut PgConnection,
    new: &NewOperation<'_>,
    lease: Duration,
) -> Result<Operation, PaymentError> {
    let id = OperationId::generate();
    let status = if new.kind == Kind::Cancel {
        Status::Succeeded
    } else {
        Status::Pending
    };
    let inserted = sqlx::query!(
        r#"INSERT INTO payment_operations
               (id, merchant_id, payment_id, kind, refund_id, amount, reason, idempotency_key,
                status, locked_until, finished_at)
           VALUES ($1::text, $2, $3, $4::text, $5, $6::bigint, $7, $8::text, $9::text, $10,
                   CASE WHEN $9::text = 'pending' THEN NULL ELSE now() END)
           ON CONFLICT DO NOTHING"#,
        id.as_str(),
        new.merchant_id.as_str(),
        new.payment_id.as_str(),
        new.kind as Kind,
        new.refund_id.map(RefundId::as_str),
        new.amount,
        new.reason,
        new.idempotency_key,
        status as Status,
        OffsetDateTime::now_utc() + lease,
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(in_progress());
    }
    Ok(Operation {
        id,
        merchant_id: new.merchant_id.clone(),
        payment_id: new.payment_id.clone(),
        kind: new.kind,
        refund_id: new.refund_id.cloned(),
        amount: new.amount,
        reason: new.reason.map(str::to_owned),
        status,
    })
}

/// The answer to a request on a payment that has an operation in flight.
pub fn in_progress() -> PaymentError {
    PaymentError::Busy {
        message: "Another operation on this payment is being processed; retry in a moment.".into(),
    }
}

/// Takes pending operation `id` over for a retry of the request that
/// started it, for `lease`: from that request (which may have died or may
/// still be waiting for the processor; the call under the same key is
/// answered once either way), never from the reconciler while its lease
/// runs (it may be giving the call up). `None` when taken; else the
/// operation's status (still `Pending`: the reconciler holds it).
pub async fn take_over(
    conn: &mut PgConnection,
    id: &OperationId,
    lease: Duration,
) -> Result<Option<Status>, PaymentError> {
    let row = sqlx::query!(
        r#"WITH taken AS (
               UPDATE payment_operations SET locked_until = $2
                WHERE id = $1 AND status = 'pending' AND (resumed = 0 OR locked_until < now())
            RETURNING id)
           SELECT status AS "status: Status", EXISTS (SELECT 1 FROM taken) AS "taken!"
             FROM payment_operations WHERE id = $1"#,
        id.as_str(),
        OffsetDateTime::now_utc() + lease,
    )
    .fetch_one(conn)
    .await?;
    Ok((!row.taken).then_some(row.status))
}

/// The operation a request with `idempotency_key` started, if any.
pub async fn by_request(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    kind: Kind,
    idempotency_key: &str,
) -> Result<Option<Operation>, PaymentError> {
    Ok(sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: OperationId", merchant_id AS "merchant_id: MerchantId",
                  payment_id AS "payment_id: PaymentId", kind AS "kind: Kind",
                  refund_id AS "refund_id: RefundId", amount, reason, status AS "status: Status"
             FROM payment_operations
            WHERE merchant_id = $1 AND kind = $2 AND idempotency_key = $3"#,
        merchant.as_str(),
        kind as Kind,
        idempotency_key,
    )
    .fetch_optional(conn)
    .await?
    .map(Operation::from))
}

/// Locks operation `id` (the caller holds the payment's row lock first).
pub async fn lock(conn: &mut PgConnection, id: &OperationId) -> Result<Operation, PaymentError> {
    sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: OperationId", merchant_id AS "merchant_id: MerchantId",
                  payment_id AS "payment_id: PaymentId", kind AS "kind: Kind",
                  refund_id AS "refund_id: RefundId", amount, reason, status AS "status: Status"
             FROM payment_operations WHERE id = $1 FOR UPDATE"#,
        id.as_str(),
    )
    .fetch_optional(conn)
    .await?
    .map(Operation::from)
    .ok_or_else(|| PaymentError::NotFound {
        kind: "operation",
        id: id.to_string(),
    })
}

/// Records the outcome of a pending operation.
pub async fn finish(
    conn: &mut PgConnection,
    id: &OperationId,
    status: Status,
) -> Result<(), PaymentError> {
    sqlx::query!(
        "UPDATE payment_operations SET status = $2::text, finished_at = now()
          WHERE id = $1 AND status = 'pending'",
        id.as_str(),
        status as Status,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Finishes operation `id` with `status` if it is still pending; whether it
/// was (false: a concurrent request or the reconciler finished it first).
/// The caller holds the payment's row lock.
pub async fn finish_pending(
    conn: &mut PgConnection,
    id: &OperationId,
    status: Status,
) -> Result<bool, PaymentError> {
    let done = sqlx::query!(
        "UPDATE payment_operations SET status = $2::text, finished_at = now()
          WHERE id = $1 AND status = 'pending'",
        id.as_str(),
        status as Status,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes over up to `limit` pending operations whose lease ran out (their
/// node died, timed out, or lost its answer), leasing them for `lease`.
pub async fn claim_stale(
    conn: &mut PgConnection,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Operation>, PaymentError> {
    Ok(sqlx::query_as!(
        Row,
        r#"UPDATE payment_operations o
              SET locked_until = $2, resumed = resumed + 1
            WHERE o.id IN (SELECT id FROM payment_operations
                            WHERE status = 'pending' AND locked_until < now()
                            ORDER BY locked_until LIMIT $1
                            FOR UPDATE SKIP LOCKED)
        RETURNING o.id AS "id: OperationId", o.merchant_id AS "merchant_id: MerchantId",
                  o.payment_id AS "payment_id: PaymentId", o.kind AS "kind: Kind",
                  o.refund_id AS "refund_id: RefundId", o.amount, o.reason,
                  o.status AS "status: Status""#,
        limit,
        OffsetDateTime::now_utc() + lease,
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Operation::from)
    .collect())
}
