//! Card disputes: opened by the card network (the sandbox, in test mode),
//! answered with evidence, closed (conceded) by the merchant or resolved
//! by the network. The disputed funds are withdrawn from the merchant when
//! the dispute opens and reinstated if it is won.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::types::Json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::model::{Payment, Status};
use super::{PaymentError, Payments, postings, store};
use crate::db::Db;
use crate::events::{self, EventType};
use crate::ids::{DisputeId, MerchantId, PaymentId};
use crate::methods::MethodType;

/// Evidence fields a merchant may submit (Stripe's text fields).
pub const EVIDENCE_FIELDS: [&str; 10] = [
    "product_description",
    "customer_name",
    "customer_email_address",
    "customer_communication",
    "receipt",
    "shipping_tracking_number",
    "shipping_carrier",
    "refund_policy",
    "cancellation_policy",
    "uncategorized_text",
];

/// Longest evidence text.
pub const MAX_EVIDENCE_LEN: usize = 20_000;

/// A dispute.
#[derive(Debug, Clone)]
pub struct Dispute {
    /// `dp_…`.
    pub id: DisputeId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// The disputed payment.
    pub payment_id: PaymentId,
    /// Disputed amount.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Where the dispute is.
    pub status: DisputeStatus,
    /// Network reason.
    pub reason: String,
    /// Submitted evidence, by field of [`EVIDENCE_FIELDS`].
    pub evidence: BTreeMap<String, String>,
    /// Creation.
    pub created_at: OffsetDateTime,
}

/// Where a dispute is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DisputeStatus {
    /// Opened; the merchant may add evidence and submit it.
    NeedsResponse,
    /// Evidence submitted; the network decides.
    UnderReview,
    /// Decided for the merchant, who keeps the money.
    Won,
    /// Conceded by the merchant or decided for the cardholder.
    Lost,
}

crate::names!(DisputeStatus);

impl DisputeStatus {
    /// Whether the dispute is still undecided.
    pub fn is_open(self) -> bool {
        matches!(self, Self::NeedsResponse | Self::UnderReview)
    }
}

/// `"dispute"`: what the object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeObjectName {
    /// A dispute.
    Dispute,
}

/// A card chargeback, as the API answers it and events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Dispute)]
pub struct DisputeObject {
    /// Unique identifier, `dp_…`.
    #[schema(value_type = String, pattern = "^dp_[A-Za-z0-9]{24}$")]
    pub id: DisputeId,
    /// Always `dispute`.
    #[schema(schema_with = dispute_object_name)]
    pub object: DisputeObjectName,
    /// Disputed amount, in the currency's smallest unit.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// Lower-case ISO 4217.
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
    /// The disputed payment, `pay_…`.
    #[schema(value_type = String, pattern = "^pay_[A-Za-z0-9]{24}$")]
    pub payment: PaymentId,
    /// Where the dispute is.
    pub status: DisputeStatus,
    /// The network's reason (`fraudulent`, …).
    pub reason: String,
    /// The evidence added so far, by field (`product_description`,
    /// `customer_name`, `receipt`, …).
    pub evidence: BTreeMap<String, String>,
    /// Creation time (Unix seconds).
    pub created: i64,
}

crate::object_name_schema!(dispute_object_name, "dispute");

impl Dispute {
    /// The API object.
    pub fn to_api(&self) -> DisputeObject {
        DisputeObject {
            id: self.id.clone(),
            object: DisputeObjectName::Dispute,
            amount: self.amount,
            currency: self.currency.clone(),
            payment: self.payment_id.clone(),
            status: self.status,
            reason: self.reason.clone(),
            evidence: self.evidence.clone(),
            created: self.created_at.unix_timestamp(),
        }
    }
}

/// How a dispute ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The merchant keeps the money.
    Won,
    /// The cardholder gets it back.
    Lost,
}

/// Opens a dispute on a succeeded card payment.
pub async fn open(
    payments: &Payments,
    payment: &Payment,
    reason: &str,
) -> Result<Dispute, PaymentError> {
    let mut tx = payments.pool().begin().await?;
    let mut payment = store::lock(&mut tx, &payment.merchant_id, &payment.id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: payment.id.to_string(),
        })?;
    if payment.status != Status::Succeeded || payment.method != Some(MethodType::Card) {
        return Err(PaymentError::state(
            "payment_not_disputable",
            "Only succeeded card payments can be disputed.",
        ));
    }
    let amount = payment.refundable();
    if amount <= 0 {
        return Err(PaymentError::state(
            "payment_not_disputable",
            "A fully refunded payment cannot be disputed.",
        ));
    }
    let dispute = Dispute {
        id: DisputeId::generate(),
        merchant_id: payment.merchant_id.clone(),
        payment_id: payment.id.clone(),
        amount,
        currency: payment.currency.clone(),
        status: DisputeStatus::NeedsResponse,
        reason: reason.to_owned(),
        evidence: BTreeMap::new(),
        created_at: OffsetDateTime::now_utc(),
    };
    let inserted = sqlx::query!(
        r#"INSERT INTO disputes (id, merchant_id, payment_id, amount, currency, status, reason, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT DO NOTHING"#,
        dispute.id.as_str(),
        dispute.merchant_id.as_str(),
        dispute.payment_id.as_str(),
        amount,
        dispute.currency,
        dispute.status as DisputeStatus,
        dispute.reason,
        dispute.created_at,
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(PaymentError::state(
            "dispute_already_open",
            "This payment has already been disputed.",
        ));
    }
    postings::dispute_opened(&mut tx, &payment, &dispute.id, amount).await?;
    payment.amount_disputed += amount;
    store::update(&mut tx, &payment).await?;
    events::record(
        &mut tx,
        &dispute.merchant_id,
        EventType::DisputeCreated,
        &dispute.to_api(),
    )
    .await?;
    tx.commit().await?;
    Ok(dispute)
}

/// Whether `payment` has a dispute that is not closed.
pub async fn is_open(
    conn: &mut sqlx::PgConnection,
    payment: &PaymentId,
) -> Result<bool, PaymentError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM disputes WHERE payment_id = $1
                   AND status IN ('needs_response', 'under_review')) AS "open!""#,
        payment.as_str()
    )
    .fetch_one(conn)
    .await?)
}

/// Opens a dispute on a payment of `merchant` (test helper).
pub async fn open_for(
    payments: &Payments,
    merchant: &MerchantId,
    payment: &PaymentId,
) -> Result<Dispute, PaymentError> {
    let payment = payments.get(merchant, payment).await?;
    open(payments, &payment, "fraudulent").await
}

async fn lock(
    conn: &mut sqlx::PgConnection,
    merchant: &MerchantId,
    id: &DisputeId,
) -> Result<Dispute, PaymentError> {
    let row = sqlx::query!(
        r#"SELECT payment_id AS "payment_id: PaymentId", amount, currency,
                  status AS "status: DisputeStatus", reason,
                  evidence AS "evidence: Json<BTreeMap<String, String>>", created_at
           FROM disputes WHERE id = $1 AND merchant_id = $2 FOR UPDATE"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| PaymentError::NotFound {
        kind: "dispute",
        id: id.to_string(),
    })?;
    Ok(Dispute {
        id: id.clone(),
        merchant_id: merchant.clone(),
        payment_id: row.payment_id,
        amount: row.amount,
        currency: row.currency,
        status: row.status,
        reason: row.reason,
        evidence: row.evidence.0,
        created_at: row.created_at,
    })
}

/// One dispute of `merchant`.
pub async fn get(
    pool: &Db,
    merchant: &MerchantId,
    id: &DisputeId,
) -> Result<Dispute, PaymentError> {
    let mut conn = pool.acquire().await?;
    // A plain read; FOR UPDATE in `lock` is harmless outside a transaction.
    lock(&mut conn, merchant, id).await
}

/// `merchant`'s newest disputes (at most `limit`), optionally of one
/// payment: what the dashboard lists.
pub async fn recent(
    pool: &Db,
    merchant: &MerchantId,
    payment: Option<&PaymentId>,
    limit: i64,
) -> Result<Vec<Dispute>, PaymentError> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: DisputeId", payment_id AS "payment_id: PaymentId", amount, currency,
                  status AS "status: DisputeStatus", reason,
                  evidence AS "evidence: Json<BTreeMap<String, String>>", created_at
           FROM disputes
           WHERE merchant_id = $1 AND ($2::text IS NULL OR payment_id = $2)
           ORDER BY created_at DESC, id DESC LIMIT $3"#,
        merchant.as_str(),
        payment.map(PaymentId::as_str),
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Dispute {
            id: row.id,
            merchant_id: merchant.clone(),
            payment_id: row.payment_id,
            amount: row.amount,
            currency: row.currency,
            status: row.status,
            reason: row.reason,
            evidence: row.evidence.0,
            created_at: row.created_at,
        })
        .collect())
}

/// Adds evidence; `submit` sends it to the network (`under_review`).
pub async fn submit_evidence(
    payments: &Payments,
    merchant: &MerchantId,
    id: &DisputeId,
    evidence: Map<String, Value>,
    submit: bool,
) -> Result<Dispute, PaymentError> {
    let mut texts = BTreeMap::new();
    for (key, value) in evidence {
        if !EVIDENCE_FIELDS.contains(&key.as_str()) {
            return Err(PaymentError::invalid(
                format!("evidence.{key}"),
                format!(
                    "unknown evidence field; expected one of {}",
                    EVIDENCE_FIELDS.join(", ")
                ),
            ));
        }
        match value {
            Value::String(text) if text.chars().count() <= MAX_EVIDENCE_LEN => {
                texts.insert(key, text);
            }
            _ => {
                return Err(PaymentError::invalid(
                    format!("evidence.{key}"),
                    format!("evidence must be text of at most {MAX_EVIDENCE_LEN} characters"),
                ));
            }
        }
    }
    let mut tx = payments.pool().begin().await?;
    let mut dispute = lock(&mut tx, merchant, id).await?;
    if dispute.status != DisputeStatus::NeedsResponse {
        return Err(PaymentError::state(
            "dispute_not_open",
            format!(
                "Evidence can only be added while the dispute needs a response (it is {}).",
                dispute.status
            ),
        ));
    }
    dispute.evidence.extend(texts);
    if submit {
        dispute.status = DisputeStatus::UnderReview;
    }
    sqlx::query!(
        r#"UPDATE disputes SET evidence = $2, status = $3,
               evidence_submitted_at = CASE WHEN $3 = 'under_review' THEN now() ELSE evidence_submitted_at END
           WHERE id = $1"#,
        id.as_str(),
        Json(&dispute.evidence) as _,
        dispute.status as DisputeStatus,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(dispute)
}

/// Ends a dispute: `Lost` when the merchant concedes (close) or the network
/// rules for the cardholder, `Won` when it rules for the merchant.
pub async fn resolve(
    payments: &Payments,
    merchant: &MerchantId,
    id: &DisputeId,
    outcome: Outcome,
) -> Result<Dispute, PaymentError> {
    let mut tx = payments.pool().begin().await?;
    let mut dispute = lock(&mut tx, merchant, id).await?;
    if !dispute.status.is_open() {
        return Err(PaymentError::state(
            "dispute_already_closed",
            format!("This dispute is already closed ({}).", dispute.status),
        ));
    }
    let mut payment = store::lock(&mut tx, merchant, &dispute.payment_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: dispute.payment_id.to_string(),
        })?;
    if outcome == Outcome::Won {
        // The merchant keeps it: refundable again. A lost dispute's amount
        // stays disputed, so it can never also be refunded.
        payment.amount_disputed -= dispute.amount;
        store::update(&mut tx, &payment).await?;
    }
    postings::dispute_closed(
        &mut tx,
        &payment,
        &dispute.id,
        dispute.amount,
        outcome == Outcome::Won,
    )
    .await?;
    dispute.status = match outcome {
        Outcome::Won => DisputeStatus::Won,
        Outcome::Lost => DisputeStatus::Lost,
    };
    sqlx::query!(
        "UPDATE disputes SET status = $2, closed_at = now() WHERE id = $1",
        id.as_str(),
        dispute.status as DisputeStatus
    )
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        merchant,
        EventType::DisputeClosed,
        &dispute.to_api(),
    )
    .await?;
    tx.commit().await?;
    Ok(dispute)
}
