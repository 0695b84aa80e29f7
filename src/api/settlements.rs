//! `/v1/settlements` and the proof of a settled payment.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::SecretKey;
use super::error::ApiError;
use super::payments::payment_id;
use super::{AppState, Query};
use crate::ids::SettlementId;
use crate::settlement::{self, SettlementError, SettlementObject};
use crate::transparency::TransparencyError;
use crate::transparency::leaf::LeafKind;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/settlements", get(list))
        .route("/v1/settlements/{id}", get(retrieve))
        .route("/v1/payments/{id}/proof", get(proof))
}

impl From<SettlementError> for ApiError {
    fn from(e: SettlementError) -> Self {
        match e {
            SettlementError::NotFound(id) => ApiError::not_found("settlement", &id),
            SettlementError::NotConfigured(message) => {
                ApiError::conflict("settlement_not_configured", message)
            }
            other => ApiError::from_failure(&other),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<i64>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(st_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(st_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
}

crate::list_of!(
    /// A `list` of `Settlement` objects.
    pub SettlementList,
    SettlementObject
);

#[utoipa::path(
    get,
    path = "/v1/settlements",
    operation_id = "listSettlements",
    tag = "Settlements",
    summary = "List settlements",
    description = "The merchant's settlement batches, newest first, without their items.",
    security(("secretKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = SettlementList),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<SettlementList>, ApiError> {
    let limit = super::list::limit(query.limit)?;
    let cursors = super::list::Cursors::parse(
        query.starting_after.as_deref(),
        query.ending_before.as_deref(),
        "settlement",
        SettlementId::parse,
    )?;
    let param = cursors.param();
    let crate::page::Listed {
        data: settlements,
        has_more,
    } = settlement::list(
        &state.pool,
        &caller.merchant_id,
        &cursors.into_page(),
        limit,
    )
    .await
    .map_err(|e| match e {
        // A cursor that is not one of the caller's settlements, as payments.
        SettlementError::NotFound(id) => {
            ApiError::invalid_param(param, format!("No such settlement: '{id}'"))
        }
        other => other.into(),
    })?;
    // Items can run to thousands per batch: only the settlement itself
    // lists them; its payouts are a few and shown here too.
    let mut payouts = settlement::payouts_of(&state.pool, &settlements).await?;
    let data: Vec<SettlementObject> = settlements
        .iter()
        .map(|s| {
            s.to_api(&settlement::Contents {
                items: Vec::new(),
                payouts: payouts.remove(s.id.as_str()).unwrap_or_default(),
            })
        })
        .collect();
    Ok(axum::Json(SettlementList::new(
        "/v1/settlements",
        data,
        has_more,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/settlements/{id}",
    operation_id = "retrieveSettlement",
    tag = "Settlements",
    summary = "Retrieve a settlement",
    description = "A batch with its period, totals, items, checkpoint and anchor.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The settlement's id (`st_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::settlement::SettlementObject),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<SettlementObject>, ApiError> {
    let id = SettlementId::parse(&id).map_err(|_| ApiError::not_found("settlement", &id))?;
    let (settlement, contents) = settlement::get(&state.pool, &caller.merchant_id, &id).await?;
    Ok(axum::Json(settlement.to_api(&contents)))
}

#[utoipa::path(
    get,
    path = "/v1/payments/{id}/proof",
    operation_id = "retrievePaymentProof",
    tag = "Settlements",
    summary = "Proof bundle of a settled payment",
    description = "The leaf data and salt, leaf index, inclusion path, the anchored checkpoint and where it was anchored. 409 `payment_not_settled` before a settlement includes the payment, 409 `settlement_not_anchored` until its checkpoint is anchored. Verify it with `epg audit verify`.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::transparency::bundle::ProofBundle),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn proof(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<crate::transparency::bundle::ProofBundle>, ApiError> {
    let id = payment_id(&id)?;
    // The payment must be the caller's before anything about it is said.
    let payment = state.payments.get(&caller.merchant_id, &id).await?;
    let kind = if payment.method == Some(crate::methods::MethodType::Crypto) {
        LeafKind::CryptoReceipt
    } else {
        LeafKind::Payment
    };
    let bundle = crate::transparency::bundle::bundle_for_source(
        &state.pool,
        &caller.merchant_id,
        id.as_str(),
        Some(kind),
    )
    .await
    .map_err(|e| match e {
        TransparencyError::NotSettled { .. } => ApiError::conflict(
            "payment_not_settled",
            "This payment is not settled yet; its proof exists once a settlement includes it.",
        ),
        TransparencyError::NotAnchored { .. } => ApiError::conflict(
            "settlement_not_anchored",
            "This payment is settled but its checkpoint is not anchored on-chain yet; retry shortly.",
        ),
        other => ApiError::from_failure(&other),
    })?;
    Ok(axum::Json(bundle))
}
