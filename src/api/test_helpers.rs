//! `/v1/test/…`: the sandbox processors' side of things, driven by hand
//! (docs/api.md, "Test mode"). Routed only in test mode.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

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

/// What the sandbox processor was asked for a payment, by idempotency key,
/// and how many times each key came: a merchant (or a test) can see that
/// a retried request charged, captured or refunded once.
#[tracing::instrument(skip_all)]
async fn processor_calls(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(payment): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = payment_id(&payment)?;
    // Another merchant's payment is a 404 here too.
    state.payments.get(&caller.merchant_id, &id).await?;
    let calls = crate::methods::memory::Remembering::calls_of(&state.pool, id.as_str()).await?;
    Ok(axum::Json(serde_json::json!({
        "object": "list",
        "data": calls,
        "has_more": false,
    })))
}

/// Settles the caller's merchant now and, when anchoring is configured,
/// anchors the checkpoint before answering, so the proof can be fetched
/// right away.
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
) -> Result<axum::Json<Value>, ApiError> {
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
    ($name:ident, $method:expr, $event:expr) => {
        #[tracing::instrument(skip_all)]
        async fn $name(
            State(state): State<AppState>,
            SecretKey(caller): SecretKey,
            Path(payment): Path<String>,
            Json(_): Json<super::NoParams>,
        ) -> Result<axum::Json<Value>, ApiError> {
            apply(&state, &caller, &payment, $method, $event).await
        }
    };
}

helper!(
    bank_clear,
    MethodType::BankTransfer,
    ProcessorEvent::Succeeded
);
helper!(
    bank_return,
    MethodType::BankTransfer,
    ProcessorEvent::Reversed {
        reason: "bank_return".into()
    }
);
helper!(
    voucher_pay,
    MethodType::CashVoucher,
    ProcessorEvent::Succeeded
);
helper!(check_clear, MethodType::Check, ProcessorEvent::Succeeded);
helper!(
    check_bounce,
    MethodType::Check,
    ProcessorEvent::Reversed {
        reason: "check_bounce".into()
    }
);
helper!(
    ewallet_approve,
    MethodType::Ewallet,
    ProcessorEvent::Succeeded
);
helper!(
    ewallet_decline,
    MethodType::Ewallet,
    ProcessorEvent::Failed(Decline {
        code: "payment_declined".into(),
        decline_code: Some("customer_declined".into()),
        message: "The customer declined the payment in their e-wallet.".into(),
    })
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenDisputeBody {
    payment: String,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: String,
}

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
