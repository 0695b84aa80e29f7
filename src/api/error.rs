//! The API's one error type and its JSON shape (docs/api.md, "Errors").
//!
//! Handlers return `Result<_, ApiError>`; lower layers' errors convert into
//! it. A fault of the node itself (database down, a bug) is logged in full
//! and answered with a generic 500 that leaks nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `error.type` values of docs/api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// Bad input or a request not allowed in the object's state.
    InvalidRequestError,
    /// Missing, malformed, unknown or revoked key.
    AuthenticationError,
    /// A card (or other method) was declined.
    CardError,
    /// `Idempotency-Key` misuse.
    IdempotencyError,
    /// Too many requests.
    RateLimitError,
    /// The node's own fault.
    ApiError,
}

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Broad category.
    pub kind: ErrorType,
    /// Machine-readable code (`parameter_invalid`, `resource_missing`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request parameter at fault, dotted (`shipping.address.city`).
    pub param: Option<String>,
    /// Why the issuer declined, for card errors.
    pub decline_code: Option<String>,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
    /// The payment a decline concerns, as Stripe's `payment_intent`.
    pub payment: Option<Box<crate::payments::model::PaymentObject>>,
    /// The request failed in a way that leaves unknown whether its writes
    /// committed (the database connection broke). The idempotency layer
    /// then keeps the key claimed instead of releasing it, so a retry
    /// cannot run the request a second time before its lease has passed.
    pub outcome_unknown: bool,
}

/// Marks a response whose request may or may not have committed.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeUnknown;

/// Every error response: `{"error": {…}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct Body<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorObject<'a> {
    #[serde(rename = "type")]
    kind: ErrorType,
    /// Machine-readable code, e.g. `parameter_invalid`, `parameter_missing`, `parameter_unknown`, `invalid_json`, `resource_missing`, `route_missing`, `api_key_invalid`, `secret_key_required`, `card_declined`, `idempotency_key_reused`, `rate_limit`, `internal_error`.
    code: &'a str,
    /// Human-readable explanation.
    message: &'a str,
    /// The request parameter at fault, dotted (`shipping.address.city`, `payment_method_types[1]`), or `body` for a body that is not valid JSON. Absent when no parameter is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    param: Option<&'a str>,
    /// Why the issuer declined (card errors), e.g. `insufficient_funds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    decline_code: Option<&'a str>,
    /// On a 402: the payment the decline concerns, as the caller may see it (the checkout view for a publishable key).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::payments::model::PaymentObject>, nullable = false)]
    payment: Option<&'a crate::payments::model::PaymentObject>,
}

impl ApiError {
    fn new(status: StatusCode, kind: ErrorType, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            message,
            param: None,
            decline_code: None,
            retry_after: None,
            payment: None,
            outcome_unknown: false,
        }
    }

    /// 400: `param` is invalid.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            "parameter_invalid",
            message.into(),
        )
        .with_param(param)
    }

    /// 400: a required `param` is absent.
    pub fn missing_param(param: impl Into<String>) -> Self {
        let param = param.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            "parameter_missing",
            format!("Missing required parameter: {param}."),
        )
        .with_param(param)
    }

    /// 400: `param` is not a known parameter.
    pub fn unknown_param(param: impl Into<String>) -> Self {
        let param = param.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            "parameter_unknown",
            format!("Received unknown parameter: {param}."),
        )
        .with_param(param)
    }

    /// 400 with a custom code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            code,
            message.into(),
        )
    }

    /// 401.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::AuthenticationError,
            code,
            message.into(),
        )
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorType::InvalidRequestError,
            code,
            message.into(),
        )
    }

    /// 404, identical whether the object does not exist or belongs to
    /// another merchant.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequestError,
            "resource_missing",
            format!("No such {what}: '{id}'"),
        )
    }

    /// 404 for an unknown route.
    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequestError,
            "route_missing",
            format!("Unrecognized request URL ({method}: {path})."),
        )
    }

    /// 405.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::InvalidRequestError,
            "method_not_allowed",
            format!("{method} is not allowed on {path}."),
        )
    }

    /// 409: the object is not in a state that allows this.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorType::InvalidRequestError,
            code,
            message.into(),
        )
    }

    /// 400 `idempotency_error`.
    pub fn idempotency(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::IdempotencyError,
            "idempotency_key_reused",
            message.into(),
        )
    }

    /// 409 for a request whose twin under the same idempotency key still runs.
    /// `Retry-After: 1`: the twin usually ends within a second or two.
    pub fn idempotency_in_progress() -> Self {
        let mut err = Self::new(
            StatusCode::CONFLICT,
            ErrorType::IdempotencyError,
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed; retry later.".into(),
        );
        err.retry_after = Some(1);
        err
    }

    /// 413.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::InvalidRequestError,
            "payload_too_large",
            "The request body is larger than this node accepts.".into(),
        )
        .with_param("body")
    }

    /// 429.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::RateLimitError,
            "rate_limit",
            "Too many requests with this key; slow down.".into(),
        );
        err.retry_after = Some(retry_after);
        err
    }

    /// 429 with a code of its own, for a budget other than a key's rate.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::RateLimitError,
            code,
            message.into(),
        );
        err.retry_after = Some(retry_after);
        err
    }

    /// 503 when the node cannot serve right now (e.g. timeout).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::retry_shortly("service_unavailable", message.into())
    }

    /// 503 `code` with `Retry-After`: nothing was done, and the same
    /// request a moment later should go through.
    fn retry_shortly(code: &'static str, message: String) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            code,
            message,
        );
        err.retry_after = Some(DATABASE_RETRY_AFTER_SECS);
        err
    }

    /// 500. The cause is logged here, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::internal_response()
    }

    /// 500 for an error: the log line carries it with every cause under
    /// it, so a 5xx says why.
    pub fn internal_error(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %crate::telemetry::ErrorChain(cause), "internal error");
        Self::internal_response()
    }

    fn internal_response() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::ApiError,
            "internal_error",
            "An internal error occurred; it has been logged. Retry with the same Idempotency-Key."
                .into(),
        )
    }

    /// Names the parameter at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: ErrorObject {
                kind: self.kind,
                code: self.code,
                message: &self.message,
                param: self.param.as_deref(),
                decline_code: self.decline_code.as_deref(),
                payment: self.payment.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.outcome_unknown {
            response.extensions_mut().insert(OutcomeUnknown);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"epg\""),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::of_database(&e, &e)
    }
}

impl ApiError {
    /// 503 `database_unavailable` with `Retry-After`: the database is
    /// restarting, failing over or out of reach. Not the node's bug, and the
    /// client's retry (same `Idempotency-Key`) completes the request once.
    pub fn database_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::retry_shortly(
            "database_unavailable",
            "The database is unavailable (restarting or failing over); retry shortly with the same Idempotency-Key."
                .into(),
        )
    }

    /// 503 `database_conflict` with `Retry-After`: the database rolled the
    /// request's transaction back to break a deadlock (or a serialization
    /// race) with another request on the same rows. Nothing was written,
    /// and the node retries its own bookings first, so this reaches a
    /// client only under heavy contention; its retry (same
    /// `Idempotency-Key`) runs the request again.
    pub fn database_conflict(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "transaction rolled back by a conflict");
        Self::retry_shortly(
            "database_conflict",
            "Another request was changing the same records and this one was rolled back; nothing was changed. Retry with the same Idempotency-Key."
                .into(),
        )
    }

    /// The API error of database error `db`, logged as `cause` (`db`
    /// itself, or the failure it caused): 503 when the database is
    /// unavailable or rolled the transaction back in a conflict, else 500;
    /// marked when the request's commit may have happened.
    fn of_database(db: &sqlx::Error, cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut err = if crate::db::is_unavailable(db) {
            ApiError::database_unavailable(&cause)
        } else if crate::db::is_conflict(db) {
            ApiError::database_conflict(&cause)
        } else {
            ApiError::internal_error(cause)
        };
        err.outcome_unknown = commit_may_have_happened(db);
        err
    }

    /// The API error of a lower layer's failure: 503 when a database error
    /// in its chain of causes says the database is unavailable or rolled
    /// the transaction back in a conflict, else 500.
    pub fn from_failure(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(db) = c.downcast_ref::<sqlx::Error>() {
                return ApiError::of_database(db, e);
            }
            cause = c.source();
        }
        ApiError::internal_error(e)
    }
}

/// A failover with pg_auto_failover takes a few seconds; one second keeps
/// well-behaved clients from hammering the node meanwhile.
const DATABASE_RETRY_AFTER_SECS: u64 = 1;

/// Whether, after `e`, the database may have committed what the request
/// sent: the connection broke, so its last COMMIT may have run or not.
fn commit_may_have_happened(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::PoolClosed
    )
}

impl From<crate::merchants::MerchantError> for ApiError {
    fn from(e: crate::merchants::MerchantError) -> Self {
        use crate::merchants::MerchantError as E;
        match e {
            E::NotFound(what) => ApiError::not_found("object", &what),
            E::Invalid { param, message } => ApiError::invalid_param(param, message),
            E::Database(e) => ApiError::from(e),
        }
    }
}

impl From<crate::payments::PaymentError> for ApiError {
    fn from(e: crate::payments::PaymentError) -> Self {
        ApiError::from_payment(e, crate::payments::Audience::Merchant, false)
    }
}

impl ApiError {
    /// The API error of a payments failure; a decline carries the payment
    /// as `audience` may see it.
    pub fn from_payment(
        e: crate::payments::PaymentError,
        audience: crate::payments::Audience,
        livemode: bool,
    ) -> Self {
        use crate::payments::PaymentError as E;
        match e {
            E::Invalid { param, message } => ApiError::invalid_param(param, message),
            E::Refused {
                code,
                param,
                message,
            } => {
                let err = ApiError::bad_request(code, message);
                match param {
                    Some(param) => err.with_param(param),
                    None => err,
                }
            }
            E::NotFound { kind, id } => ApiError::not_found(kind, &id),
            E::State { code, message } => ApiError::conflict(code, message),
            E::Busy { message } => ApiError::conflict("payment_operation_in_progress", message),
            E::Unavailable {
                code,
                param,
                message,
            } => ApiError::conflict(code, message).with_param(param),
            E::Declined { decline, payment } => {
                let mut err = Self::new(
                    StatusCode::PAYMENT_REQUIRED,
                    ErrorType::CardError,
                    "card_declined",
                    decline.message.clone(),
                );
                err.code = match decline.code.as_str() {
                    "risk_blocked" => "risk_blocked",
                    "authentication_failed" => "authentication_failed",
                    "card_declined" => "card_declined",
                    _ => "payment_failed",
                };
                err.decline_code = decline.decline_code;
                if audience == crate::payments::Audience::Checkout && err.code == "risk_blocked" {
                    // See `payments::model::browser_error`.
                    err.code = "card_declined";
                    err.decline_code = Some("generic_decline".into());
                    err.message = "Your card was declined.".into();
                }
                err.payment = Some(Box::new(payment.to_api(audience, livemode)));
                err
            }
            E::Connector(e) => {
                tracing::error!(error = %crate::telemetry::ErrorChain(&e), "processor failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorType::ApiError,
                    "processor_unavailable",
                    "The payment processor could not be reached; retry with the same Idempotency-Key.".into(),
                )
            }
            E::Ledger(message) => ApiError::internal(&message),
            e @ E::Booking(_) => ApiError::from_failure(&e),
            e @ (E::Amount(_) | E::Money(_) | E::Unexpected { .. }) => ApiError::internal_error(&e),
            E::Database(e) => ApiError::from(e),
        }
    }
}
