//! Payment persistence. Every read is scoped to a merchant: another
//! merchant's payment is simply not found.

use std::collections::BTreeMap;

use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::model::{
    CaptureMethod, CardDetails, CryptoView, Customer, LastError, NextAction, Payment, Shipping,
    Status,
};
use super::risk::RiskReason;
use crate::db::Db;
use crate::events::EventType;
use crate::ids::{MerchantId, PaymentId};
use crate::ledger::StoredFeeRule;
use crate::methods::MethodType;

/// A row of `payments` as the queries below select it: every part typed,
/// the JSONB ones through [`Json`]. The columns are named, not `*`: the
/// sealed card number and the velocity columns stay in the database.
#[derive(Debug)]
struct Row {
    id: PaymentId,
    merchant_id: MerchantId,
    amount: i64,
    currency: String,
    status: Status,
    capture_method: CaptureMethod,
    payment_method_types: Vec<String>,
    method: Option<MethodType>,
    description: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
    customer: Option<Json<Customer>>,
    shipping: Option<Json<Shipping>>,
    client_secret: String,
    next_action: Option<Json<NextAction>>,
    processor_reference: Option<String>,
    amount_capturable: i64,
    amount_received: i64,
    amount_refunded: i64,
    amount_disputed: i64,
    card: Option<Json<CardDetails>>,
    risk_score: Option<i16>,
    risk_reasons: Option<Json<Vec<RiskReason>>>,
    last_error: Option<Json<LastError>>,
    cancellation_reason: Option<String>,
    expires_at: Option<OffsetDateTime>,
    hold_id: Option<String>,
    crypto: Option<Json<CryptoView>>,
    return_url: Option<String>,
    created_at: OffsetDateTime,
}

/// A [`Row`] from a record of a statement whose payment columns are named
/// as [`Row`]'s fields but typed by `query!` (a CTE's columns, which need
/// their nullability stated, so `query_as!` cannot fill `Row` itself).
macro_rules! row_of {
    ($r:ident) => {
        Row {
            id: $r.id,
            merchant_id: $r.merchant_id,
            amount: $r.amount,
            currency: $r.currency,
            status: $r.status,
            capture_method: $r.capture_method,
            payment_method_types: $r.payment_method_types,
            method: $r.method,
            description: $r.description,
            metadata: $r.metadata,
            customer: $r.customer,
            shipping: $r.shipping,
            client_secret: $r.client_secret,
            next_action: $r.next_action,
            processor_reference: $r.processor_reference,
            amount_capturable: $r.amount_capturable,
            amount_received: $r.amount_received,
            amount_refunded: $r.amount_refunded,
            amount_disputed: $r.amount_disputed,
            card: $r.card,
            risk_score: $r.risk_score,
            risk_reasons: $r.risk_reasons,
            last_error: $r.last_error,
            cancellation_reason: $r.cancellation_reason,
            expires_at: $r.expires_at,
            hold_id: $r.hold_id,
            crypto: $r.crypto,
            return_url: $r.return_url,
            created_at: $r.created_at,
        }
    };
}

impl From<Row> for Payment {
    fn from(row: Row) -> Self {
        Payment {
            id: row.id,
            merchant_id: row.merchant_id,
            amount: row.amount,
            currency: row.currency,
            status: row.status,
            capture_method: row.capture_method,
            payment_method_types: row.payment_method_types,
            method: row.method,
            description: row.description,
            metadata: row.metadata.0,
            customer: row.customer.map(|Json(c)| c),
            shipping: row.shipping.map(|Json(s)| s),
            client_secret: row.client_secret,
            next_action: row.next_action.map(|Json(a)| a),
            processor_reference: row.processor_reference,
            amount_capturable: row.amount_capturable,
            amount_received: row.amount_received,
            amount_refunded: row.amount_refunded,
            amount_disputed: row.amount_disputed,
            card: row.card.map(|Json(c)| c),
            risk_score: row.risk_score,
            risk_reasons: row.risk_reasons.map(|Json(r)| r),
            last_error: row.last_error.map(|Json(e)| e),
            cancellation_reason: row.cancellation_reason,
            expires_at: row.expires_at,
            hold_id: row.hold_id,
            crypto: row.crypto.map(|Json(c)| c),
            return_url: row.return_url,
            created_at: row.created_at,
        }
    }
}

/// Card data kept with a payment: what may be shown, and the sealed number.
#[derive(Debug, Clone)]
pub struct StoredCard {
    /// Brand, last four, expiry, fingerprint, country.
    pub display: CardDetails,
    /// The full number, sealed with the cards subkey.
    pub sealed_number: Vec<u8>,
    /// Per-merchant keyed fingerprint, for velocity checks.
    pub fingerprint: String,
}

/// Inserts a new payment.
/// Stores a new payment, with the `Idempotency-Key` of the request that
/// made it. `false` when that key already made a payment of the merchant
/// (nothing is written): see [`by_request`].
pub async fn insert(
    db: impl sqlx::PgExecutor<'_>,
    p: &Payment,
    request_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        r#"INSERT INTO payments (id, merchant_id, amount, currency, status, capture_method,
               payment_method_types, description, metadata, customer, shipping, client_secret,
               customer_email, created_at, return_url, idempotency_key)
           VALUES ($1::text, $2, $3::bigint, $4::text, $5::text, $6::text, $7, $8, $9, $10, $11,
                   $12, $13, $14, $15::text, $16::text)
           ON CONFLICT (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
           DO NOTHING"#,
        p.id.as_str(),
        p.merchant_id.as_str(),
        p.amount,
        p.currency,
        p.status as Status,
        p.capture_method as CaptureMethod,
        &p.payment_method_types,
        p.description,
        Json(&p.metadata) as _,
        p.customer.as_ref().map(Json) as _,
        p.shipping.as_ref().map(Json) as _,
        p.client_secret,
        p.customer
            .as_ref()
            .and_then(|c| c.email.as_deref())
            .map(str::to_lowercase),
        p.created_at,
        p.return_url,
        request_key,
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The id of the payment an earlier request with this `Idempotency-Key`
/// made for `merchant`.
pub async fn by_request(
    db: impl sqlx::PgExecutor<'_>,
    merchant: &MerchantId,
    key: &str,
) -> Result<Option<PaymentId>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id: PaymentId" FROM payments
           WHERE merchant_id = $1 AND idempotency_key = $2"#,
        merchant.as_str(),
        key
    )
    .fetch_optional(db)
    .await
}

/// One payment of `merchant`, on the pool or on a connection the caller
/// holds.
pub async fn get(
    db: impl sqlx::PgExecutor<'_>,
    merchant: &MerchantId,
    id: &PaymentId,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: PaymentId", merchant_id AS "merchant_id: MerchantId", amount,
                  currency, status AS "status: Status",
                  capture_method AS "capture_method: CaptureMethod", payment_method_types,
                  method AS "method: MethodType", description,
                  metadata AS "metadata: Json<BTreeMap<String, String>>",
                  customer AS "customer: Json<Customer>", shipping AS "shipping: Json<Shipping>",
                  client_secret, next_action AS "next_action: Json<NextAction>",
                  processor_reference, amount_capturable, amount_received, amount_refunded,
                  amount_disputed, card AS "card: Json<CardDetails>", risk_score,
                  risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                  last_error AS "last_error: Json<LastError>", cancellation_reason, expires_at,
                  hold_id, crypto AS "crypto: Json<CryptoView>", return_url, created_at
           FROM payments WHERE id = $1 AND merchant_id = $2"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(db)
    .await
    .map(|row| row.map(Payment::from))
}

/// A payment by its client secret (browser checkout). The payment is
/// found by id and its secret compared in constant time here, not by SQL,
/// whose comparison stops at the first differing byte.
pub async fn get_by_client_secret(
    pool: &Db,
    id: &PaymentId,
    client_secret: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    let payment = sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: PaymentId", merchant_id AS "merchant_id: MerchantId", amount, currency,
           status AS "status: Status", capture_method AS "capture_method: CaptureMethod",
           payment_method_types, method AS "method: MethodType", description,
           metadata AS "metadata: Json<BTreeMap<String, String>>",
           customer AS "customer: Json<Customer>", shipping AS "shipping: Json<Shipping>",
           client_secret, next_action AS "next_action: Json<NextAction>", processor_reference,
           amount_capturable, amount_received, amount_refunded, amount_disputed,
           card AS "card: Json<CardDetails>", risk_score,
           risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
           last_error AS "last_error: Json<LastError>", cancellation_reason, expires_at, hold_id,
           crypto AS "crypto: Json<CryptoView>", return_url, created_at
           FROM payments WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(pool)
    .await?
    .map(Payment::from);
    Ok(payment.filter(|p| p.client_secret_matches(Some(client_secret))))
}

/// Locks a payment of `merchant` for the rest of the transaction; every
/// state change goes through here, so two requests on one payment run one
/// after the other.
pub async fn lock(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &PaymentId,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id AS "id: PaymentId", merchant_id AS "merchant_id: MerchantId", amount,
                  currency, status AS "status: Status",
                  capture_method AS "capture_method: CaptureMethod", payment_method_types,
                  method AS "method: MethodType", description,
                  metadata AS "metadata: Json<BTreeMap<String, String>>",
                  customer AS "customer: Json<Customer>", shipping AS "shipping: Json<Shipping>",
                  client_secret, next_action AS "next_action: Json<NextAction>",
                  processor_reference, amount_capturable, amount_received, amount_refunded,
                  amount_disputed, card AS "card: Json<CardDetails>", risk_score,
                  risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                  last_error AS "last_error: Json<LastError>", cancellation_reason, expires_at,
                  hold_id, crypto AS "crypto: Json<CryptoView>", return_url, created_at
           FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(conn)
    .await
    .map(|row| row.map(Payment::from))
}

/// [`lock`], then finishes operation `op` with `status` if it is still
/// pending (as [`super::operations::finish_pending`]), in one statement: the
/// payment, whether this caller finished the operation (false: a
/// concurrent request or the reconciler did first), and the fee rule of
/// the payment's merchant, method and asset (`ledger_fee_rule`; `None`:
/// no fee), which a booking would otherwise ask for in a round trip of its
/// own. The payment's row is locked before the operation's, the order every
/// writer follows: the operation's update reads the locked payment
/// (`EXISTS (SELECT 1 FROM p)`), so it runs after the payment's lock is
/// held.
pub async fn lock_and_finish(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &PaymentId,
    op: &crate::ids::OperationId,
    status: super::operations::Status,
) -> Result<Option<(Payment, bool, Option<StoredFeeRule>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH p AS (
               SELECT id, merchant_id, amount, currency, status, capture_method,
                      payment_method_types, method, description, metadata, customer, shipping,
                      client_secret, next_action, processor_reference, amount_capturable,
                      amount_received, amount_refunded, amount_disputed, card, risk_score,
                      risk_reasons, last_error, cancellation_reason, expires_at, hold_id,
                      crypto, return_url, created_at
                 FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE
           ), finished AS (
               UPDATE payment_operations SET status = $4::text, finished_at = now()
                WHERE id = $3 AND status = 'pending' AND EXISTS (SELECT 1 FROM p)
               RETURNING 1
           )
           SELECT id AS "id!: PaymentId", merchant_id AS "merchant_id!: MerchantId",
                  amount AS "amount!", currency AS "currency!", status AS "status!: Status",
                  capture_method AS "capture_method!: CaptureMethod",
                  payment_method_types AS "payment_method_types!",
                  method AS "method?: MethodType", description AS "description?",
                  metadata AS "metadata!: Json<BTreeMap<String, String>>",
                  customer AS "customer?: Json<Customer>",
                  shipping AS "shipping?: Json<Shipping>", client_secret AS "client_secret!",
                  next_action AS "next_action?: Json<NextAction>",
                  processor_reference AS "processor_reference?",
                  amount_capturable AS "amount_capturable!",
                  amount_received AS "amount_received!", amount_refunded AS "amount_refunded!",
                  amount_disputed AS "amount_disputed!", card AS "card?: Json<CardDetails>",
                  risk_score AS "risk_score?",
                  risk_reasons AS "risk_reasons?: Json<Vec<RiskReason>>",
                  last_error AS "last_error?: Json<LastError>",
                  cancellation_reason AS "cancellation_reason?", expires_at AS "expires_at?",
                  hold_id AS "hold_id?", crypto AS "crypto?: Json<CryptoView>",
                  return_url AS "return_url?",
                  created_at AS "created_at!",
                  EXISTS (SELECT 1 FROM finished) AS "finished!",
                  fee.percent_bps AS "fee_percent_bps?", fee.fixed AS "fee_fixed?",
                  fee.max_fee AS "fee_max?"
             FROM p LEFT JOIN LATERAL
                  ledger_fee_rule(p.merchant_id, COALESCE(p.method::text, 'card'), p.currency)
                  fee ON true"#,
        id.as_str(),
        merchant.as_str(),
        op.as_str(),
        status as super::operations::Status,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let finished = r.finished;
        let fee = r
            .fee_percent_bps
            .zip(r.fee_fixed)
            .map(|(bps, fixed)| (bps, fixed, r.fee_max));
        let payment = Payment::from(row_of!(r));
        (payment, finished, fee)
    }))
}

/// Writes every mutable field of `p`.
pub async fn update(conn: &mut PgConnection, p: &Payment) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE payments SET status = $3::text, method = $4, next_action = $5,
               processor_reference = $6, amount_capturable = $7::bigint, amount_received = $8::bigint,
               amount_refunded = $9::bigint, card = $10, risk_score = $11::smallint, risk_reasons = $12,
               last_error = $13, cancellation_reason = $14, expires_at = $15, hold_id = $16,
               amount_disputed = $17::bigint, updated_at = now()
           WHERE id = $1 AND merchant_id = $2"#,
        p.id.as_str(),
        p.merchant_id.as_str(),
        p.status as Status,
        p.method as Option<MethodType>,
        p.next_action.as_ref().map(Json) as _,
        p.processor_reference,
        p.amount_capturable,
        p.amount_received,
        p.amount_refunded,
        p.card.as_ref().map(Json) as _,
        p.risk_score,
        p.risk_reasons.as_ref().map(Json) as _,
        p.last_error.as_ref().map(Json) as _,
        p.cancellation_reason,
        p.expires_at,
        p.hold_id,
        p.amount_disputed,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`update`] and the event announcing it ([`crate::events::record`]: the
/// event, its webhook deliveries and the `NOTIFY` sent at commit), in one
/// statement: a payment's state change and its event were two round trips
/// of every booking.
pub async fn update_announcing(
    conn: &mut PgConnection,
    p: &Payment,
    event_type: EventType,
    event: &crate::events::Draft,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH updated AS (
               UPDATE payments SET status = $3::text, method = $4, next_action = $5,
                      processor_reference = $6, amount_capturable = $7::bigint, amount_received = $8::bigint,
                      amount_refunded = $9::bigint, card = $10, risk_score = $11::smallint, risk_reasons = $12,
                      last_error = $13, cancellation_reason = $14, expires_at = $15,
                      hold_id = $16, amount_disputed = $17::bigint, updated_at = now()
                WHERE id = $1 AND merchant_id = $2
               RETURNING merchant_id
           ), ev AS (
               INSERT INTO events (id, merchant_id, type, data)
               SELECT $18::text, merchant_id, $19::text, jsonb_build_object('object', $20::jsonb)
                 FROM updated
               RETURNING id, merchant_id, type, object_id
           ), dl AS (
               INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id)
               SELECT epg_random_id('whd'), ev.merchant_id, ev.id, e.id
               FROM ev
               JOIN webhook_endpoints e ON e.merchant_id = ev.merchant_id
               WHERE e.status = 'enabled'
                 AND e.deleted_at IS NULL
                 AND (ev.type = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events))
               RETURNING 1
           )
           SELECT pg_notify($21, json_build_object(
                      'id', ev.id,
                      'merchant', ev.merchant_id,
                      'object', CASE WHEN length(ev.object_id) <= 256 THEN ev.object_id END,
                      'deliveries', (SELECT count(*) FROM dl)
                  )::text) AS "notified: ()"
           FROM ev"#,
        p.id.as_str(),
        p.merchant_id.as_str(),
        p.status as Status,
        p.method as Option<MethodType>,
        p.next_action.as_ref().map(Json) as _,
        p.processor_reference,
        p.amount_capturable,
        p.amount_received,
        p.amount_refunded,
        p.card.as_ref().map(Json) as _,
        p.risk_score,
        p.risk_reasons.as_ref().map(Json) as _,
        p.last_error.as_ref().map(Json) as _,
        p.cancellation_reason,
        p.expires_at,
        p.hold_id,
        p.amount_disputed,
        event.id.as_str(),
        event_type as EventType,
        &event.object,
        crate::events::CHANNEL,
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Writes a confirmation: every mutable field of `p`, the sealed card of a
/// card confirmation, the customer's IP (for velocity checks) and the
/// attempt [`lock_and_record_attempt`] recorded, in one statement. A
/// confirmation without a card leaves an earlier attempt's sealed number as
/// it was, as does one without an IP.
pub async fn update_confirmed(
    conn: &mut PgConnection,
    p: &Payment,
    card: Option<&StoredCard>,
    client_ip: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE payments SET status = $3::text, method = $4, next_action = $5,
               processor_reference = $6, amount_capturable = $7::bigint, amount_received = $8::bigint,
               amount_refunded = $9::bigint, card = $10, risk_score = $11::smallint, risk_reasons = $12,
               last_error = $13, cancellation_reason = $14, expires_at = $15, hold_id = $16,
               amount_disputed = $17::bigint, updated_at = now(),
               card_number_sealed = CASE WHEN $18::bool THEN $19 ELSE card_number_sealed END,
               card_fingerprint = CASE WHEN $18::bool THEN $20 ELSE card_fingerprint END,
               client_ip = COALESCE($21, client_ip),
               confirm_attempts = confirm_attempts + 1
           WHERE id = $1 AND merchant_id = $2"#,
        p.id.as_str(),
        p.merchant_id.as_str(),
        p.status as Status,
        p.method as Option<MethodType>,
        p.next_action.as_ref().map(Json) as _,
        p.processor_reference,
        p.amount_capturable,
        p.amount_received,
        p.amount_refunded,
        p.card.as_ref().map(Json) as _,
        p.risk_score,
        p.risk_reasons.as_ref().map(Json) as _,
        p.last_error.as_ref().map(Json) as _,
        p.cancellation_reason,
        p.expires_at,
        p.hold_id,
        p.amount_disputed,
        card.is_some(),
        card.map(|c| c.sealed_number.as_slice()),
        card.map(|c| c.fingerprint.as_str()),
        client_ip,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`update_confirmed`] and the start of the confirmation's authorization
/// (a `pending` operation, [`super::operations::begin`]) in one statement:
/// they were two round trips of every confirmation. `None` when the
/// payment already has an operation in flight (the operation's unique
/// index), as `begin` answers; the caller then rolls back.
pub async fn update_confirmed_and_begin(
    conn: &mut PgConnection,
    p: &Payment,
    card: Option<&StoredCard>,
    client_ip: Option<&str>,
    op: &super::operations::NewOperation<'_>,
    locked_until: OffsetDateTime,
) -> Result<Option<crate::ids::OperationId>, sqlx::Error> {
    let id = crate::ids::OperationId::generate();
    let inserted = sqlx::query!(
        r#"WITH confirmed AS (
               UPDATE payments SET status = $3::text, method = $4, next_action = $5,
                      processor_reference = $6, amount_capturable = $7::bigint, amount_received = $8::bigint,
                      amount_refunded = $9::bigint, card = $10, risk_score = $11::smallint, risk_reasons = $12,
                      last_error = $13, cancellation_reason = $14, expires_at = $15,
                      hold_id = $16, amount_disputed = $17::bigint, updated_at = now(),
                      card_number_sealed = CASE WHEN $18::bool THEN $19 ELSE card_number_sealed END,
                      card_fingerprint = CASE WHEN $18::bool THEN $20 ELSE card_fingerprint END,
                      client_ip = COALESCE($21, client_ip),
                      confirm_attempts = confirm_attempts + 1
                WHERE id = $1 AND merchant_id = $2
               RETURNING id, merchant_id
           )
           INSERT INTO payment_operations
                  (id, merchant_id, payment_id, kind, refund_id, amount, reason, idempotency_key,
                   status, locked_until, finished_at)
           SELECT $22::text, merchant_id, id, $23::text, NULL, $24::bigint, $25, $26::text, 'pending', $27,
                  NULL
             FROM confirmed
           ON CONFLICT DO NOTHING"#,
        p.id.as_str(),
        p.merchant_id.as_str(),
        p.status as Status,
        p.method as Option<MethodType>,
        p.next_action.as_ref().map(Json) as _,
        p.processor_reference,
        p.amount_capturable,
        p.amount_received,
        p.amount_refunded,
        p.card.as_ref().map(Json) as _,
        p.risk_score,
        p.risk_reasons.as_ref().map(Json) as _,
        p.last_error.as_ref().map(Json) as _,
        p.cancellation_reason,
        p.expires_at,
        p.hold_id,
        p.amount_disputed,
        card.is_some(),
        card.map(|c| c.sealed_number.as_slice()),
        card.map(|c| c.fingerprint.as_str()),
        client_ip,
        id.as_str(),
        op.kind as super::operations::Kind,
        op.amount,
        op.reason,
        op.idempotency_key,
        locked_until,
    )
    .execute(conn)
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(id))
}

/// A page of a merchant's payments, newest first.
pub async fn list(
    pool: &Db,
    merchant: &MerchantId,
    status: Option<Status>,
    starting_after: Option<&PaymentId>,
    ending_before: Option<&PaymentId>,
    limit: i64,
) -> Result<Vec<Payment>, sqlx::Error> {
    // Cursor pagination on (created_at, id), the order of the index.
    let rows = if let Some(before) = ending_before {
        let mut rows = sqlx::query_as!(
            Row,
            r#"SELECT p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId",
                      p.amount, p.currency, p.status AS "status: Status",
                      p.capture_method AS "capture_method: CaptureMethod",
                      p.payment_method_types, p.method AS "method: MethodType", p.description,
                      p.metadata AS "metadata: Json<BTreeMap<String, String>>",
                      p.customer AS "customer: Json<Customer>",
                      p.shipping AS "shipping: Json<Shipping>", p.client_secret,
                      p.next_action AS "next_action: Json<NextAction>", p.processor_reference,
                      p.amount_capturable, p.amount_received, p.amount_refunded,
                      p.amount_disputed, p.card AS "card: Json<CardDetails>", p.risk_score,
                      p.risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                      p.last_error AS "last_error: Json<LastError>", p.cancellation_reason,
                      p.expires_at, p.hold_id, p.crypto AS "crypto: Json<CryptoView>",
                      p.return_url, p.created_at
               FROM payments p, payments c
               WHERE c.id = $2 AND c.merchant_id = $1 AND p.merchant_id = $1
                 AND ($3::text IS NULL OR p.status = $3)
                 AND (p.created_at, p.id) > (c.created_at, c.id)
               ORDER BY p.created_at ASC, p.id ASC LIMIT $4"#,
            merchant.as_str(),
            before.as_str(),
            status as Option<Status>,
            limit
        )
        .fetch_all(pool)
        .await?;
        rows.reverse();
        rows
    } else {
        sqlx::query_as!(
            Row,
            r#"SELECT p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId",
                      p.amount, p.currency, p.status AS "status: Status",
                      p.capture_method AS "capture_method: CaptureMethod",
                      p.payment_method_types, p.method AS "method: MethodType", p.description,
                      p.metadata AS "metadata: Json<BTreeMap<String, String>>",
                      p.customer AS "customer: Json<Customer>",
                      p.shipping AS "shipping: Json<Shipping>", p.client_secret,
                      p.next_action AS "next_action: Json<NextAction>", p.processor_reference,
                      p.amount_capturable, p.amount_received, p.amount_refunded,
                      p.amount_disputed, p.card AS "card: Json<CardDetails>", p.risk_score,
                      p.risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                      p.last_error AS "last_error: Json<LastError>", p.cancellation_reason,
                      p.expires_at, p.hold_id, p.crypto AS "crypto: Json<CryptoView>",
                      p.return_url, p.created_at
               FROM payments p
               WHERE p.merchant_id = $1
                 AND ($2::text IS NULL OR p.status = $2)
                 AND ($3::text IS NULL OR (p.created_at, p.id) <
                      (SELECT c.created_at, c.id FROM payments c WHERE c.id = $3 AND c.merchant_id = $1))
               ORDER BY p.created_at DESC, p.id DESC LIMIT $4"#,
            merchant.as_str(),
            status as Option<Status>,
            starting_after.map(PaymentId::as_str),
            limit
        )
        .fetch_all(pool)
        .await?
    };
    Ok(rows.into_iter().map(Payment::from).collect())
}

/// Whether a cursor id names a payment of `merchant`.
pub async fn exists(pool: &Db, merchant: &MerchantId, id: &PaymentId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1 AND merchant_id = $2) AS "e!""#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_one(pool)
    .await
}

/// Counts for the risk scorer: attempts in the last hour by the same card,
/// email and client address (the current one included, each counted up to
/// [`super::risk::COUNTS_ENOUGH`]: beyond it no score changes), the median
/// of succeeded amounts, and the merchant's threshold.
#[derive(Debug, Default)]
pub struct RiskCounts {
    /// Same card fingerprint.
    pub card: i64,
    /// Same email.
    pub email: i64,
    /// Same client address.
    pub ip: i64,
    /// Median succeeded amount in the currency, with at least `min_history` samples.
    pub median: Option<i64>,
    /// The merchant's risk threshold.
    pub threshold: i16,
}

/// One confirmation attempt, as the velocity rules see it (the customer's
/// email is the payment's own, read by the statement).
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The method tried.
    pub method: MethodType,
    /// The card's fingerprint, for cards.
    pub card_fingerprint: Option<&'a str>,
    /// Where the request came from.
    pub client_ip: Option<&'a str>,
}

/// What [`lock_and_record_attempt`] found.
#[derive(Debug)]
pub struct LockedAttempt {
    /// The payment, locked.
    pub payment: Payment,
    /// The risk counts; `None` when the payment reached its attempts (no
    /// attempt was recorded).
    pub counts: Option<RiskCounts>,
    /// Another confirmation of the payment committed while the statement
    /// waited for its lock. The counts are read as of the statement's
    /// start, so they miss that confirmation's attempt: the caller rolls
    /// back and asks again, as a lock taken by a statement of its own
    /// followed by the counts in the next would have seen it.
    pub raced: bool,
}

/// Locks payment `id` of `merchant`, records an attempt on it unless it
/// already had `max` of them, and gathers the [`RiskCounts`] of the
/// confirmation, in one statement (the lock and the attempt were two round
/// trips of every confirmation). `None` when there is no such payment.
/// The caller checks that the payment may be confirmed before it uses the
/// counts, and rolls back if not, which takes the attempt back; it counts
/// the attempt on the payment in its confirmation update
/// ([`update_confirmed`]) and commits both before calling the processor,
/// so a declined, blocked or failed confirmation still counts. The
/// customer's email is the one the payment was created with
/// (`customer_email`, lower-cased then).
///
/// A card is counted under every fingerprint it may have at rest
/// (`fingerprints`: the current master key's and those of keys a rotation
/// is replacing). Each count stops at `COUNTS_ENOUGH` rows: one address
/// sending thousands of confirmations an hour (a busy shop behind one
/// proxy, a load test) made every confirmation scan all of them. The
/// counts include this attempt, which the statement's own snapshot does
/// not see: it is added once to each count it matches.
///
/// The median of the merchant's recent succeeded amounts reads up to a
/// thousand payments; it is computed only when the payment's currency is
/// not one of `kept_medians` (the caller keeps medians a while,
/// [`super::medians`]), else `median` is `None`.
#[allow(clippy::too_many_arguments)]
pub async fn lock_and_record_attempt(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &PaymentId,
    attempt: &Attempt<'_>,
    fingerprints: &[String],
    max: i32,
    min_history: i64,
    kept_medians: &[String],
) -> Result<Option<LockedAttempt>, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH p AS (
               SELECT id, merchant_id, amount, currency, status, capture_method,
                      payment_method_types, method, description, metadata, customer, shipping,
                      client_secret, next_action, processor_reference, amount_capturable,
                      amount_received, amount_refunded, amount_disputed, card, risk_score,
                      risk_reasons, last_error, cancellation_reason, expires_at, hold_id,
                      crypto, return_url, created_at, confirm_attempts, customer_email
                 FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE
           ), attempt AS (
               INSERT INTO payment_attempts
                      (merchant_id, payment_id, method, card_fingerprint, customer_email,
                       client_ip)
               SELECT merchant_id, id, $3, $4, customer_email, $5 FROM p
                WHERE confirm_attempts < $6
               RETURNING 1
           )
           SELECT id AS "id!: PaymentId", merchant_id AS "merchant_id!: MerchantId",
                  amount AS "amount!", currency AS "currency!", status AS "status!: Status",
                  capture_method AS "capture_method!: CaptureMethod",
                  payment_method_types AS "payment_method_types!",
                  method AS "method?: MethodType", description AS "description?",
                  metadata AS "metadata!: Json<BTreeMap<String, String>>",
                  customer AS "customer?: Json<Customer>",
                  shipping AS "shipping?: Json<Shipping>", client_secret AS "client_secret!",
                  next_action AS "next_action?: Json<NextAction>",
                  processor_reference AS "processor_reference?",
                  amount_capturable AS "amount_capturable!",
                  amount_received AS "amount_received!", amount_refunded AS "amount_refunded!",
                  amount_disputed AS "amount_disputed!", card AS "card?: Json<CardDetails>",
                  risk_score AS "risk_score?",
                  risk_reasons AS "risk_reasons?: Json<Vec<RiskReason>>",
                  last_error AS "last_error?: Json<LastError>",
                  cancellation_reason AS "cancellation_reason?", expires_at AS "expires_at?",
                  hold_id AS "hold_id?", crypto AS "crypto?: Json<CryptoView>",
                  return_url AS "return_url?",
                  created_at AS "created_at!",
                  (SELECT count(*) FROM attempt) AS "recorded!",
                  least((SELECT count(*) FROM (SELECT 1 FROM payment_attempts a
                     WHERE a.merchant_id = $2 AND a.card_fingerprint = ANY($7)
                       AND a.created_at > now() - interval '1 hour' LIMIT $8) c)
                     + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END, $8) AS "card_attempts!",
                  least((SELECT count(*) FROM (SELECT 1 FROM payment_attempts a
                     WHERE a.merchant_id = $2 AND a.customer_email = p.customer_email
                       AND a.created_at > now() - interval '1 hour' LIMIT $8) e)
                     + CASE WHEN p.customer_email IS NULL THEN 0 ELSE 1 END, $8) AS "email_attempts!",
                  least((SELECT count(*) FROM (SELECT 1 FROM payment_attempts a
                     WHERE a.merchant_id = $2 AND a.client_ip = $5
                       AND a.created_at > now() - interval '1 hour' LIMIT $8) i)
                     + CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END, $8) AS "ip_attempts!",
                  CASE WHEN p.currency <> ALL($9) THEN (SELECT CASE WHEN count(*) >= $10
                            THEN percentile_disc(0.5) WITHIN GROUP (ORDER BY amount) END
                     FROM (SELECT s.amount FROM payments s
                            WHERE s.merchant_id = $2 AND s.currency = p.currency
                              AND s.status = 'succeeded'
                            ORDER BY s.created_at DESC LIMIT 1000) recent)
                  END AS "median",
                  (SELECT risk_threshold FROM merchants WHERE id = $2) AS "threshold!",
                  (SELECT s.confirm_attempts FROM payments s
                    WHERE s.id = $1 AND s.merchant_id = $2)
                    IS DISTINCT FROM p.confirm_attempts AS "raced!"
             FROM p"#,
        id.as_str(),
        merchant.as_str(),
        attempt.method as MethodType,
        attempt.card_fingerprint,
        attempt.client_ip,
        max,
        fingerprints,
        super::risk::COUNTS_ENOUGH,
        kept_medians,
        min_history,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LockedAttempt {
        counts: (r.recorded > 0).then_some(RiskCounts {
            card: r.card_attempts,
            email: r.email_attempts,
            ip: r.ip_attempts,
            median: r.median,
            threshold: r.threshold,
        }),
        raced: r.raced,
        payment: Payment::from(row_of!(r)),
    }))
}

/// Claims up to `limit` payments whose authorization, voucher or quote
/// expired, skipping rows another node holds, for the expiry job. A crypto
/// quote is due only once its chain's watcher has processed a block later
/// than `expires_at`: until then a transfer made on time may be in a block
/// it has not seen yet.
pub async fn claim_expired(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Payment>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId", p.amount,
                  p.currency, p.status AS "status: Status",
                  p.capture_method AS "capture_method: CaptureMethod", p.payment_method_types,
                  p.method AS "method: MethodType", p.description,
                  p.metadata AS "metadata: Json<BTreeMap<String, String>>",
                  p.customer AS "customer: Json<Customer>",
                  p.shipping AS "shipping: Json<Shipping>", p.client_secret,
                  p.next_action AS "next_action: Json<NextAction>", p.processor_reference,
                  p.amount_capturable, p.amount_received, p.amount_refunded, p.amount_disputed,
                  p.card AS "card: Json<CardDetails>", p.risk_score,
                  p.risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                  p.last_error AS "last_error: Json<LastError>", p.cancellation_reason,
                  p.expires_at, p.hold_id, p.crypto AS "crypto: Json<CryptoView>", p.return_url,
                  p.created_at
           FROM payments p
           WHERE p.status IN ('requires_capture', 'requires_action') AND p.expires_at <= $1
             -- A payment whose processor call is in flight is its
             -- operation's, until the operation is finished or resumed.
             AND NOT EXISTS (SELECT 1 FROM payment_operations o
                              WHERE o.payment_id = p.id AND o.status = 'pending'
                                AND o.kind <> 'refund')
             AND (p.method IS DISTINCT FROM 'crypto' OR p.status <> 'requires_action'
                  OR EXISTS (SELECT 1 FROM crypto_payments c
                               JOIN chain_cursors cur ON cur.chain_id = c.chain_id
                              WHERE c.payment_id = p.id
                                AND cur.block_timestamp > c.expires_at))
           ORDER BY p.expires_at LIMIT $2
           FOR UPDATE OF p SKIP LOCKED"#,
        now,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Payment::from).collect())
}

/// What the dashboard's payment list filters on; `None` fields do not
/// filter. `query` matches a payment id, customer email, card last four,
/// crypto transaction hash or RF creditor reference.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `succeeded`, …
    pub status: Option<String>,
    /// `card`, `crypto`, …
    pub method: Option<String>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_to: Option<OffsetDateTime>,
    /// Smallest amount (smallest unit).
    pub amount_min: Option<i64>,
    /// Largest amount.
    pub amount_max: Option<i64>,
    /// Free text (see above).
    pub query: Option<String>,
}

/// Payments of `merchant` matching `search`, newest first.
pub async fn search(
    pool: &Db,
    merchant: &MerchantId,
    search: &Search,
    limit: i64,
) -> Result<Vec<Payment>, sqlx::Error> {
    let query = search
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId", p.amount,
                  p.currency, p.status AS "status: Status",
                  p.capture_method AS "capture_method: CaptureMethod", p.payment_method_types,
                  p.method AS "method: MethodType", p.description,
                  p.metadata AS "metadata: Json<BTreeMap<String, String>>",
                  p.customer AS "customer: Json<Customer>",
                  p.shipping AS "shipping: Json<Shipping>", p.client_secret,
                  p.next_action AS "next_action: Json<NextAction>", p.processor_reference,
                  p.amount_capturable, p.amount_received, p.amount_refunded, p.amount_disputed,
                  p.card AS "card: Json<CardDetails>", p.risk_score,
                  p.risk_reasons AS "risk_reasons: Json<Vec<RiskReason>>",
                  p.last_error AS "last_error: Json<LastError>", p.cancellation_reason,
                  p.expires_at, p.hold_id, p.crypto AS "crypto: Json<CryptoView>", p.return_url,
                  p.created_at
           FROM payments p
           WHERE p.merchant_id = $1
             AND ($2::text IS NULL OR p.status = $2)
             AND ($3::text IS NULL OR p.method = $3)
             AND ($4::timestamptz IS NULL OR p.created_at >= $4)
             AND ($5::timestamptz IS NULL OR p.created_at < $5)
             AND ($6::bigint IS NULL OR p.amount >= $6)
             AND ($7::bigint IS NULL OR p.amount <= $7)
             AND ($8::text IS NULL
                  OR p.id = $8
                  OR lower(p.customer_email) = lower($8)
                  OR p.card->>'last4' = $8
                  OR EXISTS (SELECT 1 FROM bank_references r
                             WHERE r.payment_id = p.id AND r.reference = upper($8))
                  OR EXISTS (SELECT 1 FROM crypto_bookings b
                             JOIN chain_transfers t ON t.id = b.transfer_id
                             WHERE b.payment_id = p.id AND t.tx_hash = lower($8)))
           ORDER BY p.created_at DESC, p.id DESC LIMIT $9"#,
        merchant.as_str(),
        search.status.as_deref(),
        search.method.as_deref(),
        search.created_from,
        search.created_to,
        search.amount_min,
        search.amount_max,
        query,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Payment::from).collect())
}

/// Payments of one method and currency over a period, for the dashboard.
#[derive(Debug, Clone)]
pub struct MethodVolume {
    /// The method chosen (`None`: never confirmed).
    pub method: Option<String>,
    /// The currency.
    pub currency: String,
    /// Payments created.
    pub count: i64,
    /// Of which succeeded.
    pub succeeded: i64,
    /// Amount received by the succeeded ones (smallest unit).
    pub volume: i64,
}

/// Volume and success per method and currency of payments created since
/// `since`.
pub async fn volume_by_method(
    pool: &Db,
    merchant: &MerchantId,
    since: OffsetDateTime,
) -> Result<Vec<MethodVolume>, sqlx::Error> {
    sqlx::query_as!(
        MethodVolume,
        r#"SELECT method, currency, count(*) AS "count!",
                  count(*) FILTER (WHERE status = 'succeeded') AS "succeeded!",
                  coalesce(sum(amount_received) FILTER (WHERE status = 'succeeded'), 0)::bigint AS "volume!"
           FROM payments WHERE merchant_id = $1 AND created_at >= $2
           GROUP BY method, currency ORDER BY currency, method NULLS LAST"#,
        merchant.as_str(),
        since
    )
    .fetch_all(pool)
    .await
}

/// Succeeded volume per UTC day and currency since `since`.
pub async fn daily_volume(
    pool: &Db,
    merchant: &MerchantId,
    since: OffsetDateTime,
) -> Result<Vec<(time::Date, String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT (created_at AT TIME ZONE 'UTC')::date AS "day!", currency,
                  coalesce(sum(amount_received), 0)::bigint AS "volume!"
           FROM payments
           WHERE merchant_id = $1 AND created_at >= $2 AND status = 'succeeded'
           GROUP BY 1, 2 ORDER BY 1, 2"#,
        merchant.as_str(),
        since
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.day, r.currency, r.volume))
        .collect())
}
