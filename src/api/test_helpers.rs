//! `/v1/test/…`: the sandbox processors' side of things, driven by hand
//! (docs/api.md, "Test mode"). Routed only in test mode.

use crate::payments::model::PaymentObject;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;

use super::auth::SecretKey;
use super::disputes::dispute_id;
use super::error::ApiError;
use super::payments::payment_id;
use super::{AppState, Json};
use crate::methods::{Decline, MethodType, ProcessorEvent};
use crate::payments::disputes::{self, DisputeObject, Outcome};

/// Routes of the test helpers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/test/bank_transfers/{payment}/clear", post(bank_clear))
        .route(
            "/v1/test/bank_transfers/{payment}/return",
            post(bank_return),
        )
        .route("/v1/test/vouchers/{payment}/pay", post(voucher_pay))
        .route("/v1/test/checks/{payment}/clear", post(check_clear))
        .route("/v1/test/checks/{payment}/bounce", post(check_bounce))
        .route("/v1/test/ewallet/{payment}/approve", post(ewallet_approve))
        .route("/v1/test/ewallet/{payment}/decline", post(ewallet_decline))
        .route("/v1/test/disputes", post(open_dispute))
        .route("/v1/test/disputes/{id}/resolve", post(resolve_dispute))
        .route("/v1/test/settlements/run", post(run_settlement))
        .route(
            "/v1/test/payments/{payment}/processor_calls",
            get(processor_calls),
        )
}

crate::list_of!(
    /// The calls of a payment at the sandbox processor, oldest first (the
    /// whole list: `has_more` is false).
    pub ProcessorCallList,
    crate::methods::memory::RememberedCall
);

/// What the sandbox processor was asked for a payment, by idempotency key,
/// and how many times each key came: a merchant (or a test) can see that
/// a retried request charged, captured or refunded once.
#[utoipa::path(
    get,
    path = "/v1/test/payments/{payment}/processor_calls",
    operation_id = "listTestProcessorCalls",
    tag = "Test helpers",
    summary = "What the sandbox processor did for a payment",
    description = "Every call the sandbox processor received for the payment, by idempotency key, with how many times each key came: a retried or resumed request acts once at the processor. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = ProcessorCallList),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
    )
)]
#[tracing::instrument(skip_all)]
async fn processor_calls(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(payment): Path<String>,
) -> Result<axum::Json<ProcessorCallList>, ApiError> {
    let id = payment_id(&payment)?;
    // Another merchant's payment is a 404 here too.
    state.payments.get(&caller.merchant_id, &id).await?;
    let calls = crate::methods::memory::Remembering::calls_of(&state.pool, id.as_str()).await?;
    Ok(axum::Json(ProcessorCallList::new(
        format!("/v1/test/payments/{id}/processor_calls"),
        calls,
        false,
    )))
}

/// Settles the caller's merchant now and, when anchoring is configured,
/// anchors the checkpoint before answering, so the proof can be fetched
/// right away.
#[utoipa::path(
    post,
    path = "/v1/test/settlements/run",
    operation_id = "runTestSettlement",
    tag = "Test helpers",
    summary = "Settle now",
    description = "Settles the merchant's unsettled movements now and, when anchoring is configured, anchors the checkpoint before answering, so the proofs can be fetched right away. 409 `settlement_not_configured` without an anchor chain, 409 `nothing_to_settle` when there is nothing new. Test mode only.",
    security(("secretKey" = [])),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::settlement::SettlementObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn run_settlement(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Json(_): Json<super::NoParams>,
) -> Result<axum::Json<crate::settlement::SettlementObject>, ApiError> {
    let Some(ctx) = &state.settlement else {
        return Err(ApiError::conflict(
            "settlement_not_configured",
            "Settlement needs an anchor chain: set settlement.anchor_rpc_url and anchor_contract.",
        ));
    };
    let settled = crate::settlement::run(
        &state.pool,
        &ctx.log,
        &caller.merchant_id,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    let Some(settled) = settled else {
        return Err(ApiError::conflict(
            "nothing_to_settle",
            "There is nothing new to settle for this account.",
        ));
    };
    if let Some(anchorer) = &ctx.anchorer {
        crate::settlement::anchoring::anchor_pending(&state.pool, anchorer).await?;
    }
    let (settlement, contents) =
        crate::settlement::get(&state.pool, &caller.merchant_id, &settled.id).await?;
    Ok(axum::Json(settlement.to_api(&contents)))
}

async fn apply(
    state: &AppState,
    caller: &crate::merchants::Caller,
    payment: &str,
    method: MethodType,
    event: ProcessorEvent,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(payment)?;
    let payment = match state
        .payments
        .apply_processor_event(&caller.merchant_id, &id, method, event)
        .await
    {
        Ok(payment) => payment,
        // A declined e-wallet is the helper working as asked: answer the
        // failed payment, not an error.
        Err(crate::payments::PaymentError::Declined { payment, .. }) => *payment,
        Err(e) => return Err(e.into()),
    };
    Ok(axum::Json(state.payments.object(&payment)))
}

macro_rules! helper {
    ($(#[$attr:meta])* $name:ident, $method:expr, $event:expr) => {
        $(#[$attr])*
        #[tracing::instrument(skip_all)]
        async fn $name(
            State(state): State<AppState>,
            SecretKey(caller): SecretKey,
            Path(payment): Path<String>,
            Json(_): Json<super::NoParams>,
        ) -> Result<axum::Json<PaymentObject>, ApiError> {
            apply(&state, &caller, &payment, $method, $event).await
        }
    };
}

helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/bank_transfers/{payment}/clear",
    operation_id = "clearTestBankTransfer",
    tag = "Test helpers",
    summary = "Clear a bank transfer",
    description = "The awaited transfer arrives: the `processing` bank transfer payment `succeeded`. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    bank_clear,
    MethodType::BankTransfer,
    ProcessorEvent::Succeeded
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/bank_transfers/{payment}/return",
    operation_id = "returnTestBankTransfer",
    tag = "Test helpers",
    summary = "Return a bank transfer",
    description = "The bank returns the transfer: the payment `failed` (`bank_return`), funds taken back. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    bank_return,
    MethodType::BankTransfer,
    ProcessorEvent::Reversed {
        reason: "bank_return".into()
    }
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/vouchers/{payment}/pay",
    operation_id = "payTestVoucher",
    tag = "Test helpers",
    summary = "Pay a cash voucher",
    description = "The customer pays the voucher at a store: the payment `succeeded`. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    voucher_pay,
    MethodType::CashVoucher,
    ProcessorEvent::Succeeded
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/checks/{payment}/clear",
    operation_id = "clearTestCheck",
    tag = "Test helpers",
    summary = "Clear a check",
    description = "The check clears: the payment `succeeded`. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    check_clear,
    MethodType::Check,
    ProcessorEvent::Succeeded
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/checks/{payment}/bounce",
    operation_id = "bounceTestCheck",
    tag = "Test helpers",
    summary = "Bounce a check",
    description = "The check bounces: the payment `failed` (`check_bounce`), funds taken back. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    check_bounce,
    MethodType::Check,
    ProcessorEvent::Reversed {
        reason: "check_bounce".into()
    }
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/ewallet/{payment}/approve",
    operation_id = "approveTestEwallet",
    tag = "Test helpers",
    summary = "Approve an e-wallet payment",
    description = "The customer approves in their e-wallet: the payment `succeeded`. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    ewallet_approve,
    MethodType::Ewallet,
    ProcessorEvent::Succeeded
);
helper!(
    #[utoipa::path(
    post,
    path = "/v1/test/ewallet/{payment}/decline",
    operation_id = "declineTestEwallet",
    tag = "Test helpers",
    summary = "Decline an e-wallet payment",
    description = "The customer declines in their e-wallet: the payment `failed` (answered 200 with the failed payment, not 402). Test mode only.",
    security(("secretKey" = [])),
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<crate::api::NoParams>),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = crate::payments::model::PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
    ewallet_decline,
    MethodType::Ewallet,
    ProcessorEvent::Failed(Decline {
        code: "payment_declined".into(),
        decline_code: Some("customer_declined".into()),
        message: "The customer declined the payment in their e-wallet.".into(),
    })
);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestDisputeParams)]
struct OpenDisputeBody {
    /// The succeeded card payment to dispute's id (`pay_` and 24 letters or digits).
    #[schema(pattern = "^pay_[A-Za-z0-9]{24}$")]
    payment: String,
}

#[utoipa::path(
    post,
    path = "/v1/test/disputes",
    operation_id = "createTestDispute",
    tag = "Test helpers",
    summary = "Open a dispute",
    description = "The cardholder disputes a succeeded card payment: a `needs_response` dispute and `dispute.created`. Test mode only.",
    security(("secretKey" = [])),
    request_body(content = OpenDisputeBody, example = json!({"payment": "pay_4eC39HqLyjWDarjtT1zdp7dc"})),
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
async fn open_dispute(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Json(body): Json<OpenDisputeBody>,
) -> Result<axum::Json<DisputeObject>, ApiError> {
    let id = crate::ids::PaymentId::parse(&body.payment).map_err(|_| {
        ApiError::invalid_param("payment", format!("No such payment: '{}'", body.payment))
    })?;
    let dispute = disputes::open_for(&state.payments, &caller.merchant_id, &id).await?;
    Ok(axum::Json(dispute.to_api()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestDisputeResolveParams)]
struct ResolveBody {
    #[schema(value_type = DisputeOutcome)]
    outcome: String,
}

/// How the network decided.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum DisputeOutcome {
    Won,
    Lost,
}

#[utoipa::path(
    post,
    path = "/v1/test/disputes/{id}/resolve",
    operation_id = "resolveTestDispute",
    tag = "Test helpers",
    summary = "Resolve a dispute",
    description = "The network decides: `won` or `lost`. Test mode only.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The dispute's id (`dp_…`)."),
    ),
    request_body(content = ResolveBody, example = json!({"outcome": "won"})),
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
async fn resolve_dispute(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(body): Json<ResolveBody>,
) -> Result<axum::Json<DisputeObject>, ApiError> {
    let outcome = match body.outcome.as_str() {
        "won" => Outcome::Won,
        "lost" => Outcome::Lost,
        _ => {
            return Err(ApiError::invalid_param(
                "outcome",
                "outcome must be won or lost",
            ));
        }
    };
    let dispute = disputes::resolve(
        &state.payments,
        &caller.merchant_id,
        &dispute_id(&id)?,
        outcome,
    )
    .await?;
    Ok(axum::Json(dispute.to_api()))
}

/// The sandbox e-wallet's page, where `redirect_url` sends the customer.
/// A real wallet would ask them to approve; the sandbox's outcome is
/// decided by `/v1/test/ewallet/{payment}/approve` or `…/decline`.
pub fn sandbox_router() -> Router<AppState> {
    Router::new().route(
        "/sandbox/ewallet/{payment}",
        axum::routing::get(ewallet_page),
    )
}

#[utoipa::path(
    get,
    path = "/sandbox/ewallet/{payment}",
    operation_id = "sandboxEwalletPage",
    tag = "Test helpers",
    summary = "Sandbox e-wallet page (test mode)",
    description = "Where an e-wallet payment's `redirect_url` sends the customer in test mode. A real wallet would ask for approval here; in the sandbox the outcome is decided with `POST /v1/test/ewallet/{payment}/approve` or `…/decline`.",
    params(
        ("payment" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."))),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
async fn ewallet_page(Path(payment): Path<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let id = crate::ids::PaymentId::parse(&payment)
        .map(|id| id.to_string())
        .unwrap_or_else(|_| "an unknown payment".into());
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>E-PG sandbox e-wallet</title></head>\
         <body><h1>Sandbox e-wallet</h1><p>This is where a real e-wallet would ask the customer to approve \
         the payment {id}.</p><p>In test mode the merchant decides the outcome with \
         <code>POST /v1/test/ewallet/{id}/approve</code> or <code>…/decline</code>.</p></body></html>"
    );
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}
