//! Refunds: partial and many, never more in sum than was received.
//!
//! A refund locks its payment row, so concurrent refunds of one payment run
//! one after another and each sees what the previous ones took; the
//! `payments_refund_within_received` CHECK makes the database refuse an
//! over-refund even if this code were wrong.

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::model::{Payment, Status};
use super::{PaymentError, Payments, postings, store};
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PaymentId, RefundId};
use crate::metadata::Metadata;
use crate::methods::MethodType;

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
    /// `succeeded`, `pending`, `failed`.
    pub status: String,
    /// One of [`REASONS`].
    pub reason: Option<String>,
    /// Key-value pairs.
    pub metadata: Value,
    /// Creation.
    pub created_at: OffsetDateTime,
}

impl Refund {
    /// The API object.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "currency": self.currency,
            "payment": self.payment_id,
            "status": self.status,
            "reason": self.reason,
            "metadata": self.metadata,
            "created": self.created_at.unix_timestamp(),
        })
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
}

/// Refunds `request.amount` of a succeeded payment.
pub async fn create(
    payments: &Payments,
    merchant: &MerchantId,
    request: NewRefund,
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
                payment.status.as_str()
            ),
        ));
    }
    let method = payment.method.as_deref().and_then(MethodType::parse);
    if method == Some(MethodType::Crypto) {
        return Err(PaymentError::invalid(
            "crypto_destination",
            "crypto payments are refunded on-chain to a crypto_destination, which this node cannot send yet",
        ));
    }
    let remaining = payment.amount_received - payment.amount_refunded;
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
    let connector = method
        .and_then(|m| payments.connectors().get(m))
        .ok_or_else(|| {
            PaymentError::state("payment_not_refundable", "no processor for this payment")
        })?;
    connector
        .refund(
            payment.processor_reference.as_deref().unwrap_or_default(),
            amount,
        )
        .await?;

    let refund = Refund {
        id: RefundId::generate(),
        merchant_id: merchant.clone(),
        payment_id: payment.id.clone(),
        amount,
        currency: payment.currency.clone(),
        status: "succeeded".into(),
        reason: request.reason,
        metadata: request.metadata.to_json(),
        created_at: OffsetDateTime::now_utc(),
    };
    sqlx::query!(
        r#"INSERT INTO refunds (id, merchant_id, payment_id, amount, currency, status, reason, metadata, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        refund.id.as_str(),
        merchant.as_str(),
        payment.id.as_str(),
        amount,
        refund.currency,
        refund.status,
        refund.reason,
        refund.metadata,
        refund.created_at,
    )
    .execute(&mut *tx)
    .await?;
    postings::refund(&mut tx, &payment, &refund.id, amount).await?;
    payment.amount_refunded += amount;
    store::update(&mut tx, &payment).await?;
    events::record(
        &mut tx,
        merchant,
        EventType::RefundSucceeded,
        &refund.to_api(),
    )
    .await?;
    tx.commit().await?;
    Ok(refund)
}

/// One refund of `merchant`.
pub async fn get(
    pool: &PgPool,
    merchant: &MerchantId,
    id: &RefundId,
) -> Result<Refund, PaymentError> {
    let row = sqlx::query!(
        r#"SELECT payment_id AS "payment_id: PaymentId", amount, currency, status, reason, metadata, created_at
           FROM refunds WHERE id = $1 AND merchant_id = $2"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(pool)
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
        metadata: row.metadata,
        created_at: row.created_at,
    })
}

/// A merchant's refunds, newest first, optionally of one payment.
pub async fn list(
    pool: &PgPool,
    merchant: &MerchantId,
    payment: Option<&PaymentId>,
    starting_after: Option<&RefundId>,
    limit: i64,
) -> Result<(Vec<Refund>, bool), PaymentError> {
    let rows = sqlx::query!(
        r#"SELECT r.id AS "id: RefundId", r.payment_id AS "payment_id: PaymentId", r.amount,
                  r.currency, r.status, r.reason, r.metadata, r.created_at
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
    .await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    let refunds = rows
        .into_iter()
        .take(limit)
        .map(|row| Refund {
            id: row.id,
            merchant_id: merchant.clone(),
            payment_id: row.payment_id,
            amount: row.amount,
            currency: row.currency,
            status: row.status,
            reason: row.reason,
            metadata: row.metadata,
            created_at: row.created_at,
        })
        .collect();
    Ok((refunds, has_more))
}

/// What remains refundable of a payment (for views).
pub fn remaining(payment: &Payment) -> i64 {
    payment.amount_received - payment.amount_refunded
}
