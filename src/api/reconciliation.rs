//! `/v1/reconciliation/exceptions`: the reconciliation desk (list with
//! filters, retrieve, and the actions assign / refund / write off).
//!
//! Bank money that matched no payment belongs to no merchant yet, so the
//! desk is the operator's: the operator token (`Authorization: Bearer …`)
//! sees and acts on every exception. A merchant's secret key sees and acts
//! on the exceptions of its own payments only; another's is a 404.
//! Repeating an action that resolved an exception answers it as it is, so
//! retries are safe without an idempotency key.

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::client_ip::ClientIp;
use super::error::ApiError;
use super::{AppState, Json, Query};
use crate::bank::BankError;
use crate::bank::exceptions::{self, Action, Desk, ExceptionObject, Filter, Kind};
use crate::crypto::Purpose;
use crate::ids::PaymentId;
use crate::merchants::KeyKind;
use crate::page::{Listed, Page};

/// Routes of this resource (authenticated by [`DeskCaller`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reconciliation/exceptions", get(list))
        .route("/v1/reconciliation/exceptions/{id}", get(retrieve))
        .route("/v1/reconciliation/exceptions/{id}/assign", post(assign))
        .route("/v1/reconciliation/exceptions/{id}/refund", post(refund))
        .route(
            "/v1/reconciliation/exceptions/{id}/write_off",
            post(write_off),
        )
}

impl From<BankError> for ApiError {
    fn from(e: BankError) -> Self {
        match e {
            BankError::Invalid { param, message } => ApiError::invalid_param(param, message),
            BankError::State { code, message } => ApiError::conflict(code, message),
            BankError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            BankError::Payment(e) => ApiError::from(e),
            other => ApiError::from_failure(&other),
        }
    }
}

/// The operator (by its token) or a merchant (by a secret key).
#[derive(Debug)]
pub struct DeskCaller(pub Desk);

impl FromRequestParts<AppState> for DeskCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
                c.0
            });
        super::auth::refused_for_failures(state, ip)?;
        let header = parts.headers.get(header::AUTHORIZATION);
        let token = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let (Some(token), Some(expected)) =
            (token, state.config.security.operator_token.as_deref())
            && crate::crypto::constant_time_eq(token.as_bytes(), expected.as_bytes())
        {
            return Ok(DeskCaller(Desk::Operator));
        }
        match super::auth::resolve(state, header).await {
            Ok(caller) if caller.kind == KeyKind::Secret => {
                Ok(DeskCaller(Desk::Merchant(caller.merchant_id)))
            }
            Ok(_) => Err(ApiError::forbidden(
                "secret_key_required",
                "The reconciliation desk needs the operator token or a secret key (sk_…).",
            )),
            Err(err) => {
                super::auth::count_failure(state, ip, &err);
                Err(err)
            }
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `open` or `resolved`.
    #[param(inline, value_type = Option<ExceptionStatus>)]
    status: Option<String>,
    /// The kind of exception.
    #[serde(rename = "type")]
    #[param(value_type = Option<crate::bank::exceptions::Kind>)]
    kind: Option<String>,
    /// Exceptions of (or assigned to) this payment. Empty means any.
    #[param(pattern = "^(pay_[A-Za-z0-9]{24})?$")]
    payment: Option<String>,
    /// Exceptions of this bank account (its configured id).
    bank_account: Option<String>,
    /// 1–100, default 10.
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// An exception id: the page after it. Empty means none.
    #[param(pattern = "^(rex_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
}

/// Whether an exception is still open.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum ExceptionStatus {
    Open,
    Resolved,
}

fn object(
    state: &AppState,
    (exception, transfer): &(exceptions::Exception, Option<String>),
) -> ExceptionObject {
    exception.to_api(
        transfer.as_deref(),
        Some(state.config.mode == crate::config::Mode::Live),
    )
}

crate::list_of!(
    /// A `list` of `ReconciliationException` objects.
    pub ReconciliationExceptionList,
    ExceptionObject
);

#[utoipa::path(
    get,
    path = "/v1/reconciliation/exceptions",
    operation_id = "listReconciliationExceptions",
    tag = "Reconciliation",
    summary = "List reconciliation exceptions",
    description = "Newest first. Filters: `status`, `type`, `payment`, `bank_account`.",
    security(("operatorToken" = []), ("secretKey" = [])),
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ReconciliationExceptionList),
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
async fn list(
    State(state): State<AppState>,
    DeskCaller(desk): DeskCaller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ReconciliationExceptionList>, ApiError> {
    let limit = super::list::limit(q.limit)?;
    if let Some(status) = &q.status
        && status != "open"
        && status != "resolved"
    {
        return Err(ApiError::invalid_param(
            "status",
            "status must be open or resolved",
        ));
    }
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            k.parse::<Kind>().map_err(|_| {
                ApiError::invalid_param(
                    "type",
                    format!(
                        "type must be one of {}",
                        Kind::ALL.map(|k| k.to_string()).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let payment = q
        .payment
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| PaymentId::parse(p).map_err(|e| ApiError::invalid_param("payment", e.to_string())))
        .transpose()?;
    let filter = Filter {
        status: q.status,
        kind,
        payment,
        bank_account: q.bank_account,
    };
    // An empty cursor is no cursor, as in every list.
    let page = q
        .starting_after
        .filter(|c| !c.is_empty())
        .map_or(Page::First, Page::After);
    let Listed {
        data: rows,
        has_more,
    } = exceptions::list(&state.pool, &desk, &filter, &page, limit).await?;
    Ok(axum::Json(ReconciliationExceptionList::new(
        "/v1/reconciliation/exceptions",
        rows.iter().map(|r| object(&state, r)).collect(),
        has_more,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/reconciliation/exceptions/{id}",
    operation_id = "retrieveReconciliationException",
    tag = "Reconciliation",
    summary = "Retrieve a reconciliation exception",
    security(("operatorToken" = []), ("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The exception's id (`rex_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ExceptionObject),
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
async fn retrieve(
    State(state): State<AppState>,
    DeskCaller(desk): DeskCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<ExceptionObject>, ApiError> {
    let row = exceptions::get(&state.pool, &desk, &id).await?;
    Ok(axum::Json(object(&state, &row)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// The payment (`pay_` and 24 letters or digits).
    #[schema(pattern = "^pay_[A-Za-z0-9]{24}$")]
    payment: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WriteOffBody {
    /// Why the money is written off: up to 500 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

async fn act(
    state: &AppState,
    desk: &Desk,
    id: &str,
    action: Action,
) -> Result<axum::Json<ExceptionObject>, ApiError> {
    let row = exceptions::act(
        &state.pool,
        desk,
        id,
        action,
        &state.keys.sealer(Purpose::BankAccounts),
        state.config.mode == crate::config::Mode::Live,
    )
    .await?;
    Ok(axum::Json(object(state, &row)))
}

#[utoipa::path(
    post,
    path = "/v1/reconciliation/exceptions/{id}/assign",
    operation_id = "assignReconciliationException",
    tag = "Reconciliation",
    summary = "Assign to a payment",
    description = "Counts the money towards a bank-transfer payment still waiting for it (same currency); it may complete the payment, or leave it underpaid. Repeating the same assignment answers the exception as it is.",
    security(("operatorToken" = []), ("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The exception's id (`rex_…`)."),
    ),
    request_body(content = AssignBody),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ExceptionObject),
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
async fn assign(
    State(state): State<AppState>,
    DeskCaller(desk): DeskCaller,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<axum::Json<ExceptionObject>, ApiError> {
    let payment = PaymentId::parse(&body.payment).map_err(|_| {
        ApiError::invalid_param("payment", format!("No such payment: '{}'", body.payment))
    })?;
    act(&state, &desk, &id, Action::Assign(payment)).await
}

#[utoipa::path(
    post,
    path = "/v1/reconciliation/exceptions/{id}/refund",
    operation_id = "refundReconciliationException",
    tag = "Reconciliation",
    summary = "Refund to the sender",
    description = "Sends the money back to the account the bank named as its sender, in the next pain.001 file (`refunds_payable` meanwhile). An underpaid payment fails. 409 `counterparty_unknown` when the statement named no account.",
    security(("operatorToken" = []), ("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The exception's id (`rex_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ExceptionObject),
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
async fn refund(
    State(state): State<AppState>,
    DeskCaller(desk): DeskCaller,
    Path(id): Path<String>,
    Json(_): Json<super::NoParams>,
) -> Result<axum::Json<ExceptionObject>, ApiError> {
    act(&state, &desk, &id, Action::Refund).await
}

#[utoipa::path(
    post,
    path = "/v1/reconciliation/exceptions/{id}/write_off",
    operation_id = "writeOffReconciliationException",
    tag = "Reconciliation",
    summary = "Write off",
    description = "Gives up on the difference, with a reason: a credit's money goes to `write_offs`; an underpayment is accepted short (the payment succeeds with what arrived); an unexplained debit is cleared against `write_offs`.",
    security(("operatorToken" = []), ("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The exception's id (`rex_…`)."),
    ),
    request_body(content = WriteOffBody),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ExceptionObject),
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
async fn write_off(
    State(state): State<AppState>,
    DeskCaller(desk): DeskCaller,
    Path(id): Path<String>,
    Json(body): Json<WriteOffBody>,
) -> Result<axum::Json<ExceptionObject>, ApiError> {
    act(&state, &desk, &id, Action::WriteOff(body.reason)).await
}
