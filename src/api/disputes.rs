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

#[utoipa::path(
    get,
    path = "/v1/disputes/{id}",
    operation_id = "retrieveDispute",
    tag = "Disputes",
    summary = "Retrieve a dispute",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The dispute's id (`dp_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::disputes::DisputeObject),
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
) -> Result<axum::Json<DisputeObject>, ApiError> {
    let dispute = disputes::get(&state.pool, &caller.merchant_id, &dispute_id(&id)?).await?;
    Ok(axum::Json(dispute.to_api()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DisputeEvidenceParams)]
struct EvidenceBody {
    /// Free-form evidence (e.g. `{"product_description": "…", "shipping_tracking_number": "…"}`), merged into the dispute's.
    #[schema(schema_with = evidence_schema)]
    evidence: Map<String, Value>,
    /// Send to the network now (default `true`, the dispute becomes `under_review`); `false` saves a draft.
    submit: Option<bool>,
}

/// The evidence fields the payments subsystem takes, each text.
fn evidence_schema() -> utoipa::openapi::Object {
    use crate::payments::disputes::{EVIDENCE_FIELDS, MAX_EVIDENCE_LEN};
    let mut object = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Object)
        .description(Some(
            "Evidence (e.g. `{\"product_description\": \"…\", \"shipping_tracking_number\": \"…\"}`), merged into the dispute's.",
        ))
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
    for field in EVIDENCE_FIELDS {
        object = object.property(
            field,
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .max_length(Some(MAX_EVIDENCE_LEN)),
        );
    }
    object.build()
}

#[utoipa::path(
    post,
    path = "/v1/disputes/{id}/evidence",
    operation_id = "submitDisputeEvidence",
    tag = "Disputes",
    summary = "Submit evidence",
    description = "Adds evidence to a `needs_response` dispute and (unless `submit` is false) sends it: the dispute becomes `under_review`.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The dispute's id (`dp_…`)."),
    ),
    request_body(content = EvidenceBody, example = json!({"evidence": {"product_description": "Hardcover book", "shipping_tracking_number": "1Z999"}})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::disputes::DisputeObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/disputes/{id}/close",
    operation_id = "closeDispute",
    tag = "Disputes",
    summary = "Close (concede) a dispute",
    description = "Concedes: the dispute is `lost` and the cardholder keeps the money.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The dispute's id (`dp_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::disputes::DisputeObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
