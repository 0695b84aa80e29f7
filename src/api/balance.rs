//! `GET /v1/balance` and `GET /v1/balance_transactions[/{id}]`: the calling
//! merchant's money, read from the ledger.
//!
//! Amounts are written as docs/api.md says: fiat as integers of the smallest
//! unit, crypto as decimal strings of base units, with the asset's symbol as
//! `currency` and its `chain_id` alongside. `pending` includes authorized,
//! uncaptured holds on their way to the merchant; `reserved` (not in
//! Stripe's shape, added) is the merchant's reserve.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, Query, unix};
use crate::ledger::{self, BalanceTransaction, LedgerError, Page, TxnId};
use crate::money::{Amount, Asset};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/balance", get(retrieve))
        .route("/v1/balance_transactions", get(list))
        .route("/v1/balance_transactions/{id}", get(retrieve_transaction))
}

/// An amount of one asset.
#[derive(Serialize)]
struct Funds {
    amount: Value,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_id: Option<u64>,
}

impl Funds {
    fn new(asset: &Asset, amount: Amount) -> Self {
        Self {
            amount: amount.to_api_json(asset.is_crypto()),
            currency: asset.code.symbol().to_owned(),
            chain_id: asset.chain_id(),
        }
    }
}

#[derive(Serialize)]
struct Balance {
    object: &'static str,
    available: Vec<Funds>,
    pending: Vec<Funds>,
    reserved: Vec<Funds>,
    livemode: bool,
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
) -> Result<axum::Json<Balance>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let balances = ledger::merchant_balances(&mut conn, &caller.merchant_id).await?;
    let funds = |pick: fn(&ledger::MerchantBalance) -> Amount| {
        balances
            .iter()
            .map(|b| Funds::new(&b.asset, pick(b)))
            .collect()
    };
    Ok(axum::Json(Balance {
        object: "balance",
        available: funds(|b| b.available),
        pending: funds(|b| b.pending),
        reserved: funds(|b| b.reserved),
        livemode: state.config.mode == crate::config::Mode::Live,
    }))
}

#[derive(Serialize)]
struct Transaction {
    id: TxnId,
    object: &'static str,
    amount: Value,
    currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_id: Option<u64>,
    fee: Value,
    net: Value,
    #[serde(rename = "type")]
    kind: String,
    status: &'static str,
    source: Option<String>,
    description: Option<String>,
    created: i64,
}

impl From<BalanceTransaction> for Transaction {
    fn from(t: BalanceTransaction) -> Self {
        let crypto = t.asset.is_crypto();
        Self {
            id: t.id,
            object: "balance_transaction",
            amount: t.amount.to_api_json(crypto),
            currency: t.asset.code.symbol().to_owned(),
            chain_id: t.asset.chain_id(),
            fee: t.fee.to_api_json(crypto),
            net: t.net.to_api_json(crypto),
            kind: t.kind,
            status: t.status,
            source: t.source,
            description: t.description,
            created: unix(t.created_at),
        }
    }
}

#[derive(Serialize)]
struct List {
    object: &'static str,
    url: &'static str,
    data: Vec<Transaction>,
    has_more: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

/// A cursor that is not one of the merchant's transactions, malformed or
/// unknown, is a 400 naming its parameter, as on every list.
fn cursor(param: &'static str, id: &str) -> Result<TxnId, ApiError> {
    TxnId::parse(id).map_err(|_| unknown_cursor(param, id))
}

fn unknown_cursor(param: &str, id: &str) -> ApiError {
    ApiError::invalid_param(param, format!("No such balance transaction: '{id}'"))
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 10,
        Some(s) => s
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_param("limit", "limit must be an integer from 1 to 100.")
            })?,
    };
    let (page, param) = match (&params.starting_after, &params.ending_before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "ending_before",
                "starting_after and ending_before cannot be used together",
            ));
        }
        (Some(id), None) => (Page::After(cursor("starting_after", id)?), "starting_after"),
        (None, Some(id)) => (Page::Before(cursor("ending_before", id)?), "ending_before"),
        (None, None) => (Page::First, ""),
    };
    let mut conn = state.pool.acquire().await?;
    let listed = ledger::balance_transactions(&mut conn, &caller.merchant_id, limit, &page)
        .await
        .map_err(|e| match e {
            LedgerError::UnknownTransaction(id) => unknown_cursor(param, &id),
            other => other.into(),
        })?;
    Ok(axum::Json(List {
        object: "list",
        url: "/v1/balance_transactions",
        data: listed.data.into_iter().map(Transaction::from).collect(),
        has_more: listed.has_more,
    }))
}

#[tracing::instrument(skip_all)]
async fn retrieve_transaction(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<Transaction>, ApiError> {
    let not_found = || ApiError::not_found("balance transaction", &id);
    let txn = TxnId::parse(&id).map_err(|_| not_found())?;
    let mut conn = state.pool.acquire().await?;
    let found = ledger::balance_transaction(&mut conn, &caller.merchant_id, &txn)
        .await
        .map_err(|e| match e {
            LedgerError::UnknownTransaction(_) => not_found(),
            other => other.into(),
        })?;
    Ok(axum::Json(found.into()))
}

impl From<LedgerError> for ApiError {
    /// What a ledger refusal means to an API client; faults of the node are
    /// logged and answered with a 500.
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InsufficientFunds(_) => ApiError::bad_request(
                "balance_insufficient",
                "The merchant's balance is too low for this operation.",
            ),
            LedgerError::UnknownAsset(message) => ApiError::invalid_param("currency", message),
            LedgerError::HoldNotPending { status, .. } => ApiError::conflict(
                "authorization_closed",
                format!("The authorization was already {status}."),
            ),
            LedgerError::HoldExceeded { held, .. } => ApiError::invalid_param(
                "amount",
                format!("The amount exceeds the {held} authorized."),
            ),
            LedgerError::UnknownTransaction(id) => ApiError::not_found("balance transaction", &id),
            LedgerError::Retryable(e) => {
                tracing::warn!(error = %e, "ledger transaction conflict");
                ApiError::unavailable("A conflicting update was in progress; retry the request.")
            }
            other => ApiError::from_failure(&other),
        }
    }
}
