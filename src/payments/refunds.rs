//! Refunds: partial and many, never more in sum than was received.
//!
//! A refund locks its payment row, so concurrent refunds of one payment run
//! one after another and each sees what the previous ones took; the
//! `payments_refund_within_received` CHECK makes the database refuse an
//! over-refund even if this code were wrong.
//!
//! A crypto payment is refunded on-chain: the fiat amount asked for is
//! turned into the asset at the payment's own quote, the asset moves from
//! the merchant to `refunds_payable`, and the refund stays `pending` while
//! the hot wallet ([`crate::chain::sender`]) sends it; it ends `succeeded`
//! (`refund.succeeded`) once the transfer is confirmed, or `failed`
//! (`refund.failed`, money back to the merchant) if it reverts.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::model::{Payment, Status};
use super::operations::{self, Kind, NewOperation, Operation};
use super::{PaymentError, Payments, postings, store};
use crate::chain::sender::{self, ChainSend, NewSend, Purpose, SendOutcome};
use crate::db::Db;
use crate::events::{self, EventType};
use crate::ids::{MerchantId, OperationId, PaymentId, RefundId};
use crate::metadata::Metadata;
use crate::methods::MethodType;
use crate::money::{Amount, AssetCode};
use crate::page::{Listed, Page};

/// Why the merchant refunds (Stripe's reasons).
pub const REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];

/// A refund.
#[derive(Debug, Clone)]
pub struct Refund {
    /// `re_…`.
    pub id: RefundId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// The refunded payment.
    pub payment_id: PaymentId,
    /// Minor units.
    pub amount: i64,
    /// The payment's currency.
    pub currency: String,
    /// Where the refund is.
    pub status: RefundStatus,
    /// One of [`REASONS`].
    pub reason: Option<String>,
    /// Key-value pairs.
    pub metadata: BTreeMap<String, String>,
    /// On-chain refunds: chain, asset, base units, destination, transaction.
    pub crypto: Option<RefundCrypto>,
    /// Why a refund failed.
    pub failure_reason: Option<String>,
    /// Creation.
    pub created_at: OffsetDateTime,
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum RefundStatus {
    /// Under way: a processor refund whose answer is awaited, or a crypto
    /// refund until its transfer is confirmed on-chain.
    Pending,
    /// The money went back to the customer.
    Succeeded,
    /// It did not happen; the money is back in the merchant's balance.
    Failed,
}

crate::names!(RefundStatus);

/// The transfer of a crypto payment's refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundCrypto {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Asset symbol (`usdc`, `eth`, …).
    pub asset: String,
    /// Base units sent, as a decimal string.
    pub amount: String,
    /// The address the refund is sent to.
    pub destination: String,
    /// The transaction carrying it: the newest one signed while pending,
    /// the mined one once the refund ended; null before one is signed.
    #[schema(required = true)]
    pub transaction: Option<String>,
}

/// `"refund"`: what the object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundObjectName {
    /// A refund.
    Refund,
}

/// A partial or full refund of a succeeded payment, as the API answers it
/// and events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Refund)]
pub struct RefundObject {
    /// Unique identifier, `re_…`.
    #[schema(value_type = String, pattern = "^re_[A-Za-z0-9]{24}$")]
    pub id: RefundId,
    /// Always `refund`.
    #[schema(schema_with = refund_object_name)]
    pub object: RefundObjectName,
    /// Amount refunded, in the payment currency's smallest unit.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// The payment's currency (lower-case ISO 4217).
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
    /// The refunded payment, `pay_…`.
    #[schema(value_type = String, pattern = "^pay_[A-Za-z0-9]{24}$")]
    pub payment: PaymentId,
    /// Where the refund is.
    pub status: RefundStatus,
    /// Why the merchant refunded: `duplicate`, `fraudulent` or
    /// `requested_by_customer`; null when not given.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The merchant's key-value pairs.
    pub metadata: BTreeMap<String, String>,
    /// The on-chain transfer of a crypto payment's refund; null otherwise.
    #[schema(required = true)]
    pub crypto: Option<RefundCrypto>,
    /// Why the refund failed; null unless it did.
    #[schema(required = true)]
    pub failure_reason: Option<String>,
    /// Creation time (Unix seconds).
    pub created: i64,
}

crate::object_name_schema!(refund_object_name, "refund");

impl Refund {
    /// The API object.
    pub fn to_api(&self) -> RefundObject {
        RefundObject {
            id: self.id.clone(),
            object: RefundObjectName::Refund,
            amount: self.amount,
            currency: self.currency.clone(),
            payment: self.payment_id.clone(),
            status: self.status,
            reason: self.reason.clone(),
            metadata: self.metadata.clone(),
            crypto: self.crypto.clone(),
            failure_reason: self.failure_reason.clone(),
            created: self.created_at.unix_timestamp(),
        }
    }
}

/// A refund request, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewRefund {
    /// The payment.
    pub payment: PaymentId,
    /// Default: everything not yet refunded.
    pub amount: Option<i64>,
    /// One of [`REASONS`].
    pub reason: Option<String>,
    /// Key-value pairs.
    pub metadata: Metadata,
    /// Where a crypto payment's refund is sent.
    pub crypto_destination: Option<Address>,
}

/// Refunds `request.amount` of a succeeded payment.
///
/// A card (or other processor) refund is an operation (see
/// [`super::operations`]): the refund is committed `pending` with its
/// amount reserved, the processor is called with the operation's id as
/// idempotency key, and the refund is booked `succeeded` in a transaction
/// of its own. The request's `Idempotency-Key` is stored on the refund, so a
/// retry — even after a lost answer or a crash — returns the same refund
/// (finishing it first if needed) instead of making another.
pub async fn create(
    payments: &Payments,
    merchant: &MerchantId,
    request: NewRefund,
    request_key: Option<&str>,
) -> Result<Refund, PaymentError> {
    if let Some(reason) = &request.reason
        && !REASONS.contains(&reason.as_str())
    {
        return Err(PaymentError::invalid(
            "reason",
            format!("reason must be one of {}", REASONS.join(", ")),
        ));
    }
    let mut tx = payments.pool().begin().await?;
    if let Some(key) = request_key
        && let Some(earlier) = by_request(&mut tx, merchant, key).await?
    {
        tx.rollback().await?;
        return replay(payments, earlier, &request).await;
    }
    let mut payment = store::lock(&mut tx, merchant, &request.payment)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: request.payment.to_string(),
        })?;
    if payment.status != Status::Succeeded {
        return Err(PaymentError::state(
            "payment_not_refundable",
            format!(
                "This payment cannot be refunded because it has a status of {}; only succeeded payments can be.",
                payment.status
            ),
        ));
    }
    let method = payment.method;
    let destination = match (method, request.crypto_destination) {
        (Some(MethodType::Crypto), Some(address)) => Some(address),
        (Some(MethodType::Crypto), None) => {
            return Err(PaymentError::invalid(
                "crypto_destination",
                "a crypto payment is refunded on-chain: give the address to send it to",
            ));
        }
        (_, Some(_)) => {
            return Err(PaymentError::invalid(
                "crypto_destination",
                "only refunds of crypto payments are sent to an address",
            ));
        }
        (_, None) => None,
    };
    if super::disputes::is_open(&mut tx, &payment.id).await? {
        return Err(PaymentError::state(
            "charge_disputed",
            "This payment is disputed: the card network decides who gets the money back, so it cannot be refunded until the dispute closes.",
        ));
    }
    let remaining = payment.refundable();
    if remaining <= 0 {
        return Err(PaymentError::state(
            "payment_already_refunded",
            "This payment has already been refunded in full.",
        ));
    }
    let amount = request.amount.unwrap_or(remaining);
    if amount <= 0 {
        return Err(PaymentError::invalid(
            "amount",
            "amount must be a positive integer",
        ));
    }
    if amount > remaining {
        return Err(PaymentError::invalid(
            "amount",
            format!("amount ({amount}) is greater than what remains to refund ({remaining})"),
        ));
    }
    if let Some(destination) = destination {
        let refund = on_chain(
            payments,
            &mut tx,
            &mut payment,
            amount,
            destination,
            &request,
            request_key,
        )
        .await?;
        tx.commit().await?;
        return Ok(refund);
    }
    let connector = method
        .and_then(|m| payments.connectors().get(m))
        .ok_or_else(|| {
            PaymentError::state("payment_not_refundable", "no processor for this payment")
        })?;

    // The intent: the refund, pending, with its amount reserved.
    let refund = Refund {
        id: RefundId::generate(),
        merchant_id: merchant.clone(),
        payment_id: payment.id.clone(),
        amount,
        currency: payment.currency.clone(),
        status: RefundStatus::Pending,
        reason: request.reason,
        metadata: request.metadata.clone().into_map(),
        crypto: None,
        failure_reason: None,
        created_at: OffsetDateTime::now_utc(),
    };
    insert(&mut tx, &refund, request_key).await?;
    payment.amount_refunded += amount;
    store::update(&mut tx, &payment).await?;
    let op = operations::begin(
        &mut tx,
        &NewOperation {
            merchant_id: merchant,
            payment_id: &payment.id,
            kind: Kind::Refund,
            refund_id: Some(&refund.id),
            amount,
            reason: None,
            idempotency_key: None,
        },
        payments.operation_lease(),
    )
    .await?;
    tx.commit().await?;

    connector
        .refund(
            op.id.as_str(),
            payment.processor_reference.as_deref().unwrap_or_default(),
            amount,
        )
        .await?;
    finish(payments, &op).await
}

/// Books a refund the processor made (operation `op`); once, whoever calls,
/// and again if a conflict rolls the booking back.
pub(super) async fn finish(payments: &Payments, op: &Operation) -> Result<Refund, PaymentError> {
    super::conflicts::retrying("refund", || book(payments, op)).await
}

async fn book(payments: &Payments, op: &Operation) -> Result<Refund, PaymentError> {
    let refund_id = op
        .refund_id
        .clone()
        .ok_or_else(|| PaymentError::Ledger(format!("operation {} pays no refund", op.id)))?;
    let mut tx = payments.pool().begin().await?;
    let payment = store::lock(&mut tx, &op.merchant_id, &op.payment_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: op.payment_id.to_string(),
        })?;
    if operations::lock(&mut tx, &op.id).await?.status == operations::Status::Pending {
        postings::refund(&mut tx, &payment, &refund_id, op.amount).await?;
        sqlx::query!(
            "UPDATE refunds SET status = 'succeeded' WHERE id = $1 AND status = 'pending'",
            refund_id.as_str()
        )
        .execute(&mut *tx)
        .await?;
        operations::finish(&mut tx, &op.id, operations::Status::Succeeded).await?;
        let refund = get_on(&mut tx, &op.merchant_id, &refund_id).await?;
        events::record(
            &mut tx,
            &op.merchant_id,
            EventType::RefundSucceeded,
            &refund.to_api(),
        )
        .await?;
    }
    let refund = get_on(&mut tx, &op.merchant_id, &refund_id).await?;
    tx.commit().await?;
    Ok(refund)
}

/// The refund an earlier request with this `Idempotency-Key` made.
async fn by_request(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    key: &str,
) -> Result<Option<Refund>, PaymentError> {
    let id: Option<RefundId> = sqlx::query_scalar!(
        r#"SELECT id AS "id: RefundId" FROM refunds WHERE merchant_id = $1 AND idempotency_key = $2"#,
        merchant.as_str(),
        key
    )
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => Ok(Some(get_on(conn, merchant, &id).await?)),
        None => Ok(None),
    }
}

/// Answers a retry with the refund its first try made, finished first if
/// that try lost its answer. A key reused for another refund is refused.
async fn replay(
    payments: &Payments,
    earlier: Refund,
    request: &NewRefund,
) -> Result<Refund, PaymentError> {
    if earlier.payment_id != request.payment
        || request
            .amount
            .is_some_and(|amount| amount != earlier.amount)
    {
        return Err(PaymentError::refused(
            "idempotency_key_reused",
            "Idempotency-Key",
            format!(
                "This Idempotency-Key made refund {} of another payment or amount.",
                earlier.id
            ),
        ));
    }
    if earlier.status == RefundStatus::Pending && earlier.crypto.is_none() {
        let op = sqlx::query_scalar!(
            r#"SELECT id AS "id: OperationId" FROM payment_operations
                WHERE refund_id = $1 AND status = 'pending'"#,
            earlier.id.as_str()
        )
        .fetch_optional(payments.pool())
        .await?;
        if let Some(op) = op {
            let mut conn = payments.pool().acquire().await?;
            let op = operations::lock(&mut conn, &op).await?;
            drop(conn);
            payments.resume(op).await?;
        }
        let mut conn = payments.pool().acquire().await?;
        return get_on(&mut conn, &earlier.merchant_id, &earlier.id).await;
    }
    Ok(earlier)
}

/// One refund of `merchant`.
pub async fn get(pool: &Db, merchant: &MerchantId, id: &RefundId) -> Result<Refund, PaymentError> {
    let mut conn = pool.acquire().await?;
    let mut refund = get_on(&mut conn, merchant, id).await?;
    show_transactions(pool, std::slice::from_mut(&mut refund)).await?;
    Ok(refund)
}

/// Fills `crypto.transaction` of pending crypto refunds with the newest
/// transaction signed for it (a fee bump replaces it), so the customer can
/// be pointed at it before it is mined; once the refund ends, the stored
/// view names the mined transaction.
async fn show_transactions(pool: &Db, refunds: &mut [Refund]) -> Result<(), PaymentError> {
    let pending: Vec<String> = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Pending && r.crypto.is_some())
        .map(|r| r.id.as_str().to_owned())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    for (refund_id, tx_hash) in sender::newest_transactions(pool, Purpose::Refund, &pending).await?
    {
        if let Some(view) = refunds
            .iter_mut()
            .find(|r| r.id.as_str() == refund_id)
            .and_then(|r| r.crypto.as_mut())
        {
            view.transaction = Some(tx_hash);
        }
    }
    Ok(())
}

async fn get_on(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &RefundId,
) -> Result<Refund, PaymentError> {
    let row = sqlx::query!(
        r#"SELECT payment_id AS "payment_id: PaymentId", amount, currency,
                  status AS "status: RefundStatus", reason,
                  metadata AS "metadata: Json<BTreeMap<String, String>>",
                  crypto AS "crypto: Json<RefundCrypto>", failure_reason, created_at
           FROM refunds WHERE id = $1 AND merchant_id = $2"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| PaymentError::NotFound {
        kind: "refund",
        id: id.to_string(),
    })?;
    Ok(Refund {
        id: id.clone(),
        merchant_id: merchant.clone(),
        payment_id: row.payment_id,
        amount: row.amount,
        currency: row.currency,
        status: row.status,
        reason: row.reason,
        metadata: row.metadata.0,
        crypto: row.crypto.map(|Json(c)| c),
        failure_reason: row.failure_reason,
        created_at: row.created_at,
    })
}

/// A merchant's refunds, newest first, optionally of one payment: the page
/// after `starting_after` or, with `ending_before`, the page just before
/// (newer than) it, and whether more lie beyond it in that direction. A
/// cursor that is not one of the merchant's refunds is
/// [`PaymentError::Invalid`] naming the cursor's parameter.
pub async fn list(
    pool: &Db,
    merchant: &MerchantId,
    payment: Option<&PaymentId>,
    page: &Page<RefundId>,
    limit: i64,
) -> Result<Listed<Refund>, PaymentError> {
    struct Row {
        id: RefundId,
        payment_id: PaymentId,
        amount: i64,
        currency: String,
        status: RefundStatus,
        reason: Option<String>,
        metadata: Json<BTreeMap<String, String>>,
        crypto: Option<Json<RefundCrypto>>,
        failure_reason: Option<String>,
        created_at: OffsetDateTime,
    }
    if let Some(cursor) = page.cursor() {
        let known = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM refunds WHERE id = $1 AND merchant_id = $2) AS "e!""#,
            cursor.as_str(),
            merchant.as_str()
        )
        .fetch_one(pool)
        .await?;
        if !known {
            return Err(PaymentError::invalid(
                page.param(),
                format!("No such refund: '{cursor}'"),
            ));
        }
    }
    // Cursor pagination on (created_at, id), the order of the index; one
    // more row than the page tells whether more lie beyond it.
    let (starting_after, ending_before) = page.bounds();
    let rows = if let Some(before) = ending_before {
        sqlx::query_as!(
            Row,
            r#"SELECT r.id AS "id: RefundId", r.payment_id AS "payment_id: PaymentId", r.amount,
                      r.currency, r.status AS "status: RefundStatus", r.reason,
                      r.metadata AS "metadata: Json<BTreeMap<String, String>>",
                      r.crypto AS "crypto: Json<RefundCrypto>", r.failure_reason,
                      r.created_at
               FROM refunds r, refunds c
               WHERE c.id = $3 AND c.merchant_id = $1 AND r.merchant_id = $1
                 AND ($2::text IS NULL OR r.payment_id = $2)
                 AND (r.created_at, r.id) > (c.created_at, c.id)
               ORDER BY r.created_at ASC, r.id ASC LIMIT $4"#,
            merchant.as_str(),
            payment.map(PaymentId::as_str),
            before.as_str(),
            limit + 1,
        )
        .fetch_all(pool)
        .await?
    } else {
        sqlx::query_as!(
            Row,
            r#"SELECT r.id AS "id: RefundId", r.payment_id AS "payment_id: PaymentId", r.amount,
                      r.currency, r.status AS "status: RefundStatus", r.reason,
                      r.metadata AS "metadata: Json<BTreeMap<String, String>>",
                      r.crypto AS "crypto: Json<RefundCrypto>", r.failure_reason,
                      r.created_at
               FROM refunds r
               WHERE r.merchant_id = $1
                 AND ($2::text IS NULL OR r.payment_id = $2)
                 AND ($3::text IS NULL OR (r.created_at, r.id) <
                      (SELECT c.created_at, c.id FROM refunds c WHERE c.id = $3 AND c.merchant_id = $1))
               ORDER BY r.created_at DESC, r.id DESC LIMIT $4"#,
            merchant.as_str(),
            payment.map(PaymentId::as_str),
            starting_after.map(RefundId::as_str),
            limit + 1,
        )
        .fetch_all(pool)
        .await?
    };
    let limit = usize::try_from(limit).unwrap_or(0);
    // Fetched oldest first from an `ending_before` cursor.
    let mut refunds = Listed::from_rows(rows, limit, page.backwards()).map(|row| Refund {
        id: row.id,
        merchant_id: merchant.clone(),
        payment_id: row.payment_id,
        amount: row.amount,
        currency: row.currency,
        status: row.status,
        reason: row.reason,
        metadata: row.metadata.0,
        crypto: row.crypto.map(|Json(c)| c),
        failure_reason: row.failure_reason,
        created_at: row.created_at,
    });
    show_transactions(pool, &mut refunds.data).await?;
    Ok(refunds)
}

/// What remains refundable of a payment (for views).
pub fn remaining(payment: &Payment) -> i64 {
    payment.refundable()
}

async fn insert(
    conn: &mut PgConnection,
    refund: &Refund,
    request_key: Option<&str>,
) -> Result<(), PaymentError> {
    sqlx::query!(
        r#"INSERT INTO refunds (id, merchant_id, payment_id, amount, currency, status, reason,
                                metadata, crypto, created_at, idempotency_key)
           VALUES ($1::text, $2, $3, $4::bigint, $5, $6::text, $7::text, $8, $9, $10,
                   $11::text)"#,
        refund.id.as_str(),
        refund.merchant_id.as_str(),
        refund.payment_id.as_str(),
        refund.amount,
        refund.currency,
        refund.status as RefundStatus,
        refund.reason,
        Json(&refund.metadata) as _,
        refund.crypto.as_ref().map(Json) as _,
        refund.created_at,
        request_key,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Base units of the asset for `amount` of the payment's currency, at the
/// payment's quote. Computed as the difference of two cumulative floors,
/// so partial refunds never add up to more than the quote: the last one
/// gets the remainder.
fn units_for(expected: i128, payment_amount: i64, refunded: i64, amount: i64) -> i128 {
    let total = i128::from(payment_amount.max(1));
    let upto = |fiat: i64| expected * i128::from(fiat) / total;
    upto(refunded + amount) - upto(refunded)
}

/// Books a crypto refund and queues its on-chain transfer.
async fn on_chain(
    payments: &Payments,
    conn: &mut PgConnection,
    payment: &mut Payment,
    amount: i64,
    destination: Address,
    request: &NewRefund,
    request_key: Option<&str>,
) -> Result<Refund, PaymentError> {
    let quote = sqlx::query!(
        "SELECT chain_id, asset, expected FROM crypto_payments WHERE payment_id = $1",
        payment.id.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    let chain_id = u64::try_from(quote.chain_id).unwrap_or(0);
    if !payments.wallet_chains().contains(&chain_id) {
        return Err(PaymentError::state(
            "crypto_refund_unavailable",
            format!(
                "This node has no hot wallet on chain {chain_id}, so it cannot send refunds there."
            ),
        ));
    }
    if destination == Address::ZERO {
        return Err(PaymentError::invalid(
            "crypto_destination",
            "the zero address cannot receive a refund",
        ));
    }
    let asset = AssetCode::parse(&quote.asset).map_err(PaymentError::Money)?;
    let expected = Amount::try_from(quote.expected)
        .map_err(PaymentError::Amount)?
        .units();
    let units = units_for(expected, payment.amount, payment.amount_refunded, amount);
    let units = Amount::new(units).map_err(PaymentError::Amount)?;
    if !units.is_positive() {
        return Err(PaymentError::invalid(
            "amount",
            format!("{amount} is less than one base unit of {asset} at this payment's quote"),
        ));
    }
    let id = RefundId::generate();
    let refund = Refund {
        id: id.clone(),
        merchant_id: payment.merchant_id.clone(),
        payment_id: payment.id.clone(),
        amount,
        currency: payment.currency.clone(),
        status: RefundStatus::Pending,
        reason: request.reason.clone(),
        metadata: request.metadata.clone().into_map(),
        crypto: Some(RefundCrypto {
            chain_id,
            asset: asset.symbol().to_string(),
            amount: units.units().to_string(),
            destination: format!("{destination:#x}"),
            transaction: None,
        }),
        failure_reason: None,
        created_at: OffsetDateTime::now_utc(),
    };
    insert(conn, &refund, request_key).await?;
    postings::crypto_refund(conn, payment, &id, &asset, units).await?;
    sender::queue(
        conn,
        &NewSend {
            chain_id,
            purpose: Purpose::Refund,
            object_id: id.as_str(),
            merchant: &payment.merchant_id,
            asset: &asset,
            to: destination,
            amount: units,
        },
    )
    .await?;
    payment.amount_refunded += amount;
    store::update(conn, payment).await?;
    Ok(refund)
}

/// The hot wallet finished the transfer of a crypto refund: books it and
/// tells the merchant (inside the sender's transaction).
pub async fn on_chain_finished(
    conn: &mut PgConnection,
    send: &ChainSend,
    outcome: SendOutcome,
) -> Result<(), PaymentError> {
    let id = RefundId::parse(&send.object_id)
        .map_err(|_| PaymentError::Ledger(format!("send {} pays no refund", send.id)))?;
    let merchant = send
        .merchant_id
        .as_ref()
        .ok_or_else(|| PaymentError::Ledger(format!("send {} has no merchant", send.id)))?;
    let row = sqlx::query!(
        r#"SELECT payment_id AS "payment_id: PaymentId", amount, status AS "status: RefundStatus"
             FROM refunds
            WHERE id = $1 AND merchant_id = $2 FOR UPDATE"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    if row.status != RefundStatus::Pending {
        return Ok(());
    }
    let mut payment = store::lock(conn, merchant, &row.payment_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: row.payment_id.to_string(),
        })?;
    let tx_hash = send.tx_hash.map(|h| format!("{h:#x}"));
    let (status, failure, event) = match outcome {
        SendOutcome::Confirmed => {
            postings::crypto_refund_sent(conn, &id, send.chain_id, &send.asset, send.amount)
                .await?;
            (RefundStatus::Succeeded, None, EventType::RefundSucceeded)
        }
        SendOutcome::Reverted => {
            postings::crypto_refund_failed(conn, &payment, &id, &send.asset, send.amount).await?;
            // The refund did not happen: what it took can be refunded again.
            payment.amount_refunded -= row.amount;
            store::update(conn, &payment).await?;
            (
                RefundStatus::Failed,
                Some(
                    "The refund transaction reverted on-chain; the funds are back in the merchant balance.",
                ),
                EventType::RefundFailed,
            )
        }
    };
    sqlx::query!(
        r#"UPDATE refunds SET status = $2::text, failure_reason = $3,
                  crypto = jsonb_set(crypto, '{transaction}', to_jsonb($4::text))
            WHERE id = $1"#,
        id.as_str(),
        status as RefundStatus,
        failure,
        tx_hash,
    )
    .execute(&mut *conn)
    .await?;
    let refund = get_on(conn, merchant, &id).await?;
    events::record(conn, merchant, event, &refund.to_api()).await?;
    Ok(())
}
