//! `GET /v1/account`: the calling merchant.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, Json, unix};
use crate::merchants::Merchant;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/account", get(retrieve).post(update))
}

/// The calling merchant.
#[derive(Serialize, ToSchema)]
struct Account {
    #[schema(schema_with = account_object)]
    object: &'static str,
    /// The merchant's id (`mer_` and 24 letters or digits).
    #[schema(pattern = "^mer_[A-Za-z0-9]{24}$")]
    id: String,
    /// The merchant's name.
    name: String,
    /// Payment method types enabled for this merchant and offered by this node (the default of a new payment's `payment_method_types`).
    #[schema(value_type = Vec<crate::methods::MethodType>)]
    payment_method_types: Vec<String>,
    payouts: Payouts,
    /// Whether the node runs in live mode.
    livemode: bool,
    /// Unix seconds.
    created: i64,
}

crate::object_name_schema!(account_object, "account");

/// Payout settings.
#[derive(Serialize, ToSchema)]
struct Payouts {
    /// How often balances are paid out.
    #[schema(value_type = PayoutSchedule)]
    schedule: String,
    /// Where crypto payouts go (changed only with a second factor, not through the API).
    #[schema(required = true)]
    crypto_address: Option<String>,
}

/// `POST /v1/account`: what a merchant may change about itself. The payout
/// address is not here: changing where money goes needs a second factor.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccountUpdateParams)]
struct UpdateAccount {
    /// The merchant's new name: 1–200 characters, not only white space.
    #[schema(max_length = 200, pattern = r"[^ \t\n\f\r]")]
    name: Option<String>,
    payouts: Option<UpdatePayouts>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdatePayouts {
    #[schema(value_type = Option<PayoutSchedule>)]
    schedule: Option<String>,
}

/// When payouts are made.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum PayoutSchedule {
    Manual,
    Daily,
    Weekly,
}

#[utoipa::path(
    get,
    path = "/v1/account",
    operation_id = "retrieveAccount",
    tag = "Account",
    summary = "Retrieve the calling merchant",
    description = "The merchant of the key: its name, enabled payment method types, payout settings and creation time.",
    security(("secretKey" = [])),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = Account),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let merchant = state.merchants.get(&caller.merchant_id).await?;
    Ok(axum::Json(view(&state, merchant)))
}

#[utoipa::path(
    post,
    path = "/v1/account",
    operation_id = "updateAccount",
    tag = "Account",
    summary = "Update the calling merchant",
    description = "Changes the name and/or the payout schedule; absent fields are kept. (Added to the original contract.)",
    security(("secretKey" = [])),
    request_body(content = Option<UpdateAccount>, example = json!({"name": "Acme Books", "payouts": {"schedule": "daily"}})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = Account, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
async fn update(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Json(body): Json<UpdateAccount>,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let schedule = body.payouts.and_then(|p| p.schedule);
    let merchant = state
        .merchants
        .update(
            &caller.merchant_id,
            body.name.as_deref(),
            schedule.as_deref(),
        )
        .await?;
    Ok(axum::Json(view(&state, merchant)))
}

fn view(state: &AppState, merchant: Merchant) -> Account {
    Account {
        object: "account",
        id: merchant.id.to_string(),
        name: merchant.name,
        // What the merchant can take here: enabled for it and offered by
        // this node (a processor or a chain behind it).
        payment_method_types: state.payments.offered(&merchant.payment_method_types),
        payouts: Payouts {
            schedule: merchant.payout_schedule,
            crypto_address: merchant.payout_address,
        },
        livemode: state.config.mode == crate::config::Mode::Live,
        created: unix(merchant.created_at),
    }
}
