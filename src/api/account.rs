//! `GET /v1/account`: the calling merchant.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, unix};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/account", get(retrieve))
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

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
) -> Result<axum::Json<impl Serialize>, ApiError> {
    let merchant = state.merchants.get(&caller.merchant_id).await?;
    Ok(axum::Json(Account {
        object: "account",
        id: merchant.id.to_string(),
        name: merchant.name,
        payment_method_types: merchant.payment_method_types,
        payouts: Payouts {
            schedule: merchant.payout_schedule,
            crypto_address: merchant.payout_address,
        },
        livemode: state.config.mode == crate::config::Mode::Live,
        created: unix(merchant.created_at),
    }))
}
