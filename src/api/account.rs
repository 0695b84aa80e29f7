//! `GET /v1/account`: the calling merchant.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde::Serialize;

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, Json, unix};
use crate::merchants::Merchant;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/account", get(retrieve).post(update))
}

#[derive(Serialize)]
struct Account {
    object: &'static str,
    id: String,
    name: String,
    payment_method_types: Vec<String>,
    payouts: Payouts,
    livemode: bool,
    created: i64,
}

#[derive(Serialize)]
struct Payouts {
    schedule: String,
    crypto_address: Option<String>,
}

/// `POST /v1/account`: what a merchant may change about itself. The payout
/// address is not here: changing where money goes needs a second factor.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateAccount {
    name: Option<String>,
    payouts: Option<UpdatePayouts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePayouts {
    schedule: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let merchant = state.merchants.get(&caller.merchant_id).await?;
    Ok(axum::Json(view(&state, merchant)))
}

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
