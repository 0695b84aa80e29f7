//! `/v1/refunds`: create, retrieve, list (optionally of one payment).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RefundCreateParams)]
struct CreateBody {
    /// The payment to refund's id (`pay_` and 24 letters or digits).
    #[schema(pattern = "^pay_[A-Za-z0-9]{24}$")]
    payment: String,
    /// In the smallest unit. Default: all that is left. The refunds of a payment never sum to more than was captured, even under concurrent requests.
    #[schema(minimum = 1, format = Int64)]
    #[serde(default, deserialize_with = "super::extract::integral_opt")]
    amount: Option<i64>,
    #[schema(value_type = Option<RefundReason>)]
    reason: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::metadata_schema)]
    metadata: BTreeMap<String, String>,
    /// Required for crypto payments, refused for others: the address the node's hot wallet pays the refund to (0x and 40 hex digits; mixed case must carry a valid EIP-55 checksum). The refund is `pending` until its transaction has the chain's confirmations.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    crypto_destination: Option<String>,
}

/// Why the merchant refunds.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

#[utoipa::path(
    post,
    path = "/v1/refunds",
    operation_id = "createRefund",
    tag = "Refunds",
    summary = "Refund a payment",
    description = "Refunds all that is left of a succeeded payment, or `amount` of it. Many partial refunds are allowed; their sum never exceeds the captured amount, even under concurrent requests.",
    security(("secretKey" = [])),
    request_body(content = CreateBody, example = json!({"payment": "pay_4eC39HqLyjWDarjtT1zdp7dc", "amount": 500, "reason": "requested_by_customer"})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::refunds::RefundObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 502, response = crate::api::openapi::BadGateway),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/refunds/{id}",
    operation_id = "retrieveRefund",
    tag = "Refunds",
    summary = "Retrieve a refund",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The refund's id (`re_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::refunds::RefundObject),
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
) -> Result<axum::Json<RefundObject>, ApiError> {
    let id = RefundId::parse(&id).map_err(|_| ApiError::not_found("refund", &id))?;
    let refund = refunds::get(&state.pool, &caller.merchant_id, &id).await?;
    Ok(axum::Json(refund.to_api()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the refunds of this payment (`pay_…`).
    payment: Option<String>,
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(re_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(re_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
}

crate::list_of!(
    /// A `list` of `Refund` objects.
    pub RefundList,
    crate::payments::refunds::RefundObject
);

#[utoipa::path(
    get,
    path = "/v1/refunds",
    operation_id = "listRefunds",
    tag = "Refunds",
    summary = "List refunds",
    description = "The merchant's refunds, newest first.",
    security(("secretKey" = [])),
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = RefundList),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
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
) -> Result<axum::Json<RefundList>, ApiError> {
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
    Ok(axum::Json(RefundList::new(
        "/v1/refunds",
        data,
        refunds.has_more,
    )))
}
