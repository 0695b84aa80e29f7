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
use utoipa::{IntoParams, ToSchema};

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
#[derive(Serialize, ToSchema)]
struct Funds {
    #[schema(schema_with = super::openapi::amount_schema)]
    amount: Value,
    /// Lower-case ISO 4217 code, or the crypto asset's symbol.
    currency: String,
    /// Crypto assets only: the chain's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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

/// The merchant's money, per currency or asset.
#[derive(Serialize, ToSchema)]
struct Balance {
    #[schema(schema_with = balance_object)]
    object: &'static str,
    /// Paid out at the next payout. Negative while the merchant owes more than it holds.
    available: Vec<Funds>,
    /// On its way (including authorized, uncaptured payments).
    pending: Vec<Funds>,
    /// The merchant's reserve.
    reserved: Vec<Funds>,
    livemode: bool,
}

crate::object_name_schema!(balance_object, "balance");
crate::object_name_schema!(transaction_object, "balance_transaction");
crate::object_name_schema!(list_object, "list");

#[utoipa::path(
    get,
    path = "/v1/balance",
    operation_id = "retrieveBalance",
    tag = "Balance",
    summary = "Retrieve the balance",
    description = "Per currency / asset: `available`, `pending` (and `reserved`).",
    security(("secretKey" = [])),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = Balance),
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

/// One movement of the merchant's money in the ledger, linked to its source object.
#[derive(Serialize, ToSchema)]
#[schema(as = BalanceTransaction)]
struct Transaction {
    /// `txn_` and 24 letters or digits.
    #[schema(value_type = String, pattern = "^txn_[A-Za-z0-9]{24}$")]
    id: TxnId,
    #[schema(schema_with = transaction_object)]
    object: &'static str,
    #[schema(schema_with = super::openapi::amount_schema)]
    amount: Value,
    /// Lower-case ISO 4217 code, or the crypto asset's symbol.
    currency: String,
    /// Crypto assets only: the chain's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    chain_id: Option<u64>,
    #[schema(schema_with = super::openapi::amount_schema)]
    fee: Value,
    #[schema(schema_with = super::openapi::amount_schema)]
    net: Value,
    /// What moved the money: `payment`, `refund`, `dispute`, `payout`, …
    #[serde(rename = "type")]
    kind: String,
    /// `available` if it moved the available balance, otherwise `pending`.
    #[schema(value_type = TransactionStatus)]
    status: &'static str,
    /// The id of the object it belongs to (`pay_…`, `re_…`, `dp_…`).
    #[schema(required = true)]
    source: Option<String>,
    #[schema(required = true)]
    description: Option<String>,
    /// Unix seconds.
    created: i64,
}

/// Which balance a transaction moved.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum TransactionStatus {
    Available,
    Pending,
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

/// A page of balance transactions, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = BalanceTransactionList)]
struct List {
    #[schema(schema_with = list_object)]
    object: &'static str,
    /// The list's path.
    url: &'static str,
    data: Vec<Transaction>,
    /// Whether more items follow this page.
    has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<String>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(txn_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(txn_[A-Za-z0-9]{24})?$")]
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

#[utoipa::path(
    get,
    path = "/v1/balance_transactions",
    operation_id = "listBalanceTransactions",
    tag = "Balance",
    summary = "List balance transactions",
    description = "The merchant's ledger movements, newest first, each linked to its source object.",
    security(("secretKey" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = List),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
    // An empty cursor is no cursor, as in every list.
    let nonempty = |c: &Option<String>| c.clone().filter(|c| !c.is_empty());
    let (page, param) = match (
        nonempty(&params.starting_after),
        nonempty(&params.ending_before),
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "ending_before",
                "starting_after and ending_before cannot be used together",
            ));
        }
        (Some(id), None) => (
            Page::After(cursor("starting_after", &id)?),
            "starting_after",
        ),
        (None, Some(id)) => (Page::Before(cursor("ending_before", &id)?), "ending_before"),
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

#[utoipa::path(
    get,
    path = "/v1/balance_transactions/{id}",
    operation_id = "retrieveBalanceTransaction",
    tag = "Balance",
    summary = "Retrieve a balance transaction",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The transaction's id (`txn_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = Transaction),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
