//! `/v1/refunds`: create, retrieve, list (optionally of one payment).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SecretKey;
use super::error::ApiError;
use super::idempotency::RequestKey;
use super::payments::payment_id;
use super::{AppState, Json, Query};
use crate::ids::{PaymentId, RefundId};
use crate::metadata::Metadata;
use crate::payments::refunds::{self, NewRefund, RefundObject};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/refunds", post(create).get(list))
        .route("/v1/refunds/{id}", get(retrieve))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    payment: String,
    amount: Option<i64>,
    reason: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    crypto_destination: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    request_key: RequestKey,
    Json(body): Json<CreateBody>,
) -> Result<axum::Json<RefundObject>, ApiError> {
    let payment = PaymentId::parse(&body.payment).map_err(|_| {
        ApiError::invalid_param("payment", format!("No such payment: '{}'", body.payment))
    })?;
    let crypto_destination = body
        .crypto_destination
        .as_deref()
        .map(|s| {
            crate::chain::parse_address(s)
                .map_err(|message| ApiError::invalid_param("crypto_destination", message))
        })
        .transpose()?;
    let metadata =
        Metadata::parse(body.metadata).map_err(|e| ApiError::invalid_param(e.param, e.message))?;
    let refund = refunds::create(
        &state.payments,
        &caller.merchant_id,
        NewRefund {
            payment,
            amount: body.amount,
            reason: body.reason,
            metadata,
            crypto_destination,
        },
        request_key.as_deref(),
    )
    .await
    .map_err(|e| match e {
        // Another merchant's payment is exactly as unknown as a missing one.
        crate::payments::PaymentError::NotFound {
            kind: "payment",
            id,
        } => {
            let mut err = ApiError::not_found("payment", &id);
            err.param = Some("payment".into());
            err
        }
        other => other.into(),
    })?;
    Ok(axum::Json(refund.to_api()))
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<RefundObject>, ApiError> {
    let id = RefundId::parse(&id).map_err(|_| ApiError::not_found("refund", &id))?;
    let refund = refunds::get(&state.pool, &caller.merchant_id, &id).await?;
    Ok(axum::Json(refund.to_api()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    payment: Option<String>,
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = super::list::limit(query.limit)?;
    let payment = query.payment.as_deref().map(payment_id).transpose()?;
    let cursors = super::list::Cursors::parse(
        query.starting_after.as_deref(),
        query.ending_before.as_deref(),
        "refund",
        RefundId::parse,
    )?;
    let refunds = refunds::list(
        &state.pool,
        &caller.merchant_id,
        payment.as_ref(),
        &cursors.into_page(),
        limit,
    )
    .await?;
    let data: Vec<RefundObject> = refunds.data.iter().map(|r| r.to_api()).collect();
    Ok(axum::Json(json!({
        "object": "list",
        "url": "/v1/refunds",
        "data": data,
        "has_more": refunds.has_more,
    })))
}
