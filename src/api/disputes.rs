//! `/v1/disputes/{id}`: retrieve, submit evidence, close (concede).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, Json};
use crate::ids::DisputeId;
use crate::payments::disputes::{self, DisputeObject, Outcome};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/disputes/{id}", get(retrieve))
        .route("/v1/disputes/{id}/evidence", post(evidence))
        .route("/v1/disputes/{id}/close", post(close))
}

/// Parses a dispute id from the path.
pub fn dispute_id(raw: &str) -> Result<DisputeId, ApiError> {
    DisputeId::parse(raw).map_err(|_| ApiError::not_found("dispute", raw))
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<DisputeObject>, ApiError> {
    let dispute = disputes::get(&state.pool, &caller.merchant_id, &dispute_id(&id)?).await?;
    Ok(axum::Json(dispute.to_api()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceBody {
    evidence: Map<String, Value>,
    /// Send to the network now (default); `false` saves a draft.
    submit: Option<bool>,
}

#[tracing::instrument(skip_all)]
async fn evidence(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<EvidenceBody>,
) -> Result<axum::Json<DisputeObject>, ApiError> {
    let dispute = disputes::submit_evidence(
        &state.payments,
        &caller.merchant_id,
        &dispute_id(&id)?,
        body.evidence,
        body.submit.unwrap_or(true),
    )
    .await?;
    Ok(axum::Json(dispute.to_api()))
}

#[tracing::instrument(skip_all)]
async fn close(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(_): Json<super::NoParams>,
) -> Result<axum::Json<DisputeObject>, ApiError> {
    // Closing is conceding: the cardholder keeps the money.
    let dispute = disputes::resolve(
        &state.payments,
        &caller.merchant_id,
        &dispute_id(&id)?,
        Outcome::Lost,
    )
    .await?;
    Ok(axum::Json(dispute.to_api()))
}
