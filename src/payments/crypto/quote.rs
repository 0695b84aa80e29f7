//! The request path: confirming a payment with `crypto` locks a quote and
//! answers the transfer to make (`next_action.crypto`).

use alloy::primitives::{B256, U256};
use alloy::providers::ProviderBuilder;
use rand::RngCore;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::types::Json;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::view::refresh_view;
use super::{CryptoMode, hex_lower};
use crate::chain::config::{AssetConfig, ChainConfig};
use crate::chain::contracts::DevPriceFeed;
use crate::chain::deposits;
use crate::chain::guard::QuoteRefusal;
use crate::events::EventType;
use crate::ids::{MerchantId, PaymentId};
use crate::methods::MethodType;
use crate::money::Currency;
use crate::payments::model::{CryptoInstructions, NextAction, Payment, Status};
use crate::payments::quote::{self, QuoteError};
use crate::payments::{PaymentError, Payments, store};

/// How long a quote holds.
pub const QUOTE_TTL: Duration = Duration::minutes(15);
/// Most decimals a price feed may report (Chainlink's are 8 or 18).
const MAX_FEED_DECIMALS: u8 = 36;

/// How a quote's rate was found (stored with the quote, `crypto_payments.rate`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
enum Rate {
    /// A stablecoin at par with its currency.
    Par,
    /// The asset's price feed.
    PriceFeed {
        /// The feed contract.
        feed: String,
        /// Its answer, in units of 10^-decimals.
        price: String,
        /// The answer's decimals.
        decimals: u8,
        /// The round read.
        round: String,
        /// When the round was updated (Unix seconds).
        updated_at: u64,
    },
}

/// A chain and asset a hosted checkout may offer for a payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CryptoOption {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Asset symbol.
    pub asset: String,
    /// The asset's decimals (to show amounts in whole units).
    pub decimals: u8,
    /// The token's contract; null for the native coin.
    #[schema(required = true)]
    pub token_address: Option<String>,
    /// The PaymentRouter a browser wallet calls.
    pub router_address: String,
    /// The factory of deposit addresses, when the chain has one.
    #[schema(required = true)]
    pub deposit_factory: Option<String>,
    /// Confirmations before a payment succeeds.
    pub confirmations_required: u64,
    /// What a wallet needs to add the chain (EIP-3085), when the node has
    /// a public RPC URL for it.
    #[schema(required = true)]
    pub add_chain: Option<AddChain>,
}

/// EIP-3085 `wallet_addEthereumChain` parameters.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddChain {
    /// Chain id, 0x-hex.
    pub chain_id: String,
    /// A display name.
    pub chain_name: String,
    /// The native coin.
    pub native_currency: NativeCurrency,
    /// Public RPC URLs.
    pub rpc_urls: Vec<String>,
}

/// The native coin of a chain to add (EIP-3085).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NativeCurrency {
    /// Its name.
    pub name: String,
    /// Its symbol.
    pub symbol: String,
    /// Its decimals.
    pub decimals: u8,
}

/// Base units owed for `payment`, and how the rate was found.
async fn quote_for(
    payment: &Payment,
    chain: &ChainConfig,
    asset: &AssetConfig,
) -> Result<(u128, Rate), PaymentError> {
    let currency = Currency::parse(&payment.currency).map_err(PaymentError::Money)?;
    let amount = u64::try_from(payment.amount).unwrap_or(0);
    let unavailable = |e: QuoteError| PaymentError::state("quote_unavailable", e.to_string());
    if asset.usd_peg {
        if payment.currency != "usd" {
            return Err(PaymentError::invalid(
                "payment_method.crypto.asset",
                format!(
                    "{} is pegged to usd; this payment is in {}",
                    asset.symbol, payment.currency
                ),
            ));
        }
        let units =
            quote::at_par(amount, currency.exponent(), asset.decimals).map_err(unavailable)?;
        return Ok((units, Rate::Par));
    }
    let Some(feed) = asset.price_feed else {
        return Err(PaymentError::invalid(
            "payment_method.crypto.asset",
            format!("{} has no price feed on this node", asset.symbol),
        ));
    };
    if payment.currency != "usd" {
        return Err(PaymentError::invalid(
            "payment_method.crypto.asset",
            format!(
                "{} is priced in usd; this payment is in {}",
                asset.symbol, payment.currency
            ),
        ));
    }
    let url = chain
        .http_url
        .parse()
        .map_err(|e| PaymentError::Unexpected {
            what: "the chain's http_url",
            source: Box::new(e),
        })?;
    let provider = ProviderBuilder::new().connect_http(url);
    let contract = DevPriceFeed::new(feed, &provider);
    // A feed states its own precision; assuming Chainlink's usual 8 would
    // misprice an 18-decimal feed by 10^10.
    let (round_call, decimals_call) = (contract.latestRoundData(), contract.decimals());
    let (round, decimals) = tokio::join!(round_call.call(), decimals_call.call());
    let round =
        round.map_err(|e| PaymentError::state("quote_unavailable", format!("price feed: {e}")))?;
    let decimals = decimals
        .map_err(|e| PaymentError::state("quote_unavailable", format!("price feed: {e}")))?;
    if decimals > MAX_FEED_DECIMALS {
        return Err(unavailable(QuoteError::BadPrice));
    }
    let updated_at = u64::try_from(round.updatedAt).unwrap_or(0);
    let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
    quote::check_fresh(updated_at, now, asset.max_feed_age_secs.unwrap_or(3600))
        .map_err(unavailable)?;
    let price = i128::try_from(round.answer).map_err(|_| unavailable(QuoteError::BadPrice))?;
    let units = quote::at_price(amount, currency.exponent(), asset.decimals, price, decimals)
        .map_err(unavailable)?;
    Ok((
        units,
        Rate::PriceFeed {
            feed: hex_lower(feed),
            price: price.to_string(),
            decimals,
            round: round.roundId.to_string(),
            updated_at,
        },
    ))
}

/// EIP-681 URI of the router call that pays.
fn eip681(chain: &ChainConfig, asset: &AssetConfig, units: u128, reference: &str) -> String {
    let router = hex_lower(chain.router);
    match asset.token_address {
        Some(token) => format!(
            "ethereum:{router}@{}/pay?address={}&uint256={units}&bytes32={reference}",
            chain.chain_id,
            hex_lower(token)
        ),
        None => format!(
            "ethereum:{router}@{}/payNative?bytes32={reference}&value={units}",
            chain.chain_id
        ),
    }
}

impl Payments {
    /// The chains and assets `payment` may be paid with now, as a hosted
    /// checkout offers them: each with its decimals (to show amounts in
    /// whole units) and the contracts a browser wallet calls. Empty when
    /// crypto is not among its methods.
    pub fn crypto_options(&self, payment: &Payment) -> Vec<CryptoOption> {
        if !payment.payment_method_types.iter().any(|t| t == "crypto") {
            return Vec::new();
        }
        let mut options = Vec::new();
        for chain in self.chains().0.iter() {
            for asset in &chain.assets {
                // Both pricing paths quote usd only (see quote_for).
                let priced =
                    (asset.usd_peg || asset.price_feed.is_some()) && payment.currency == "usd";
                let refused = self
                    .chain_status()
                    .and_then(|s| s.quote_refusal(chain.chain_id, &asset.symbol))
                    .is_some();
                if priced && !refused {
                    // What a wallet needs to add the chain it does not know
                    // (EIP-3085): only with a public RPC URL and a native
                    // coin to name.
                    let add_chain = chain.public_rpc_url.as_ref().and_then(|url| {
                        let native = chain.assets.iter().find(|a| a.token_address.is_none())?;
                        Some(AddChain {
                            chain_id: format!("{:#x}", chain.chain_id),
                            chain_name: format!("Chain {}", chain.chain_id),
                            native_currency: NativeCurrency {
                                name: native.symbol.to_uppercase(),
                                symbol: native.symbol.to_uppercase(),
                                decimals: native.decimals,
                            },
                            rpc_urls: vec![url.clone()],
                        })
                    });
                    options.push(CryptoOption {
                        chain_id: chain.chain_id,
                        asset: asset.symbol.clone(),
                        decimals: asset.decimals,
                        token_address: asset.token_address.map(hex_lower),
                        router_address: hex_lower(chain.router),
                        deposit_factory: chain.deposit_factory.map(hex_lower),
                        confirmations_required: chain.confirmations,
                        add_chain,
                    });
                }
            }
        }
        options
    }

    /// Confirms a payment with a crypto asset: locks a quote and answers
    /// the transfer to make. The quote records the request's
    /// `Idempotency-Key`, so that the same request retried after its answer
    /// was lost (its key's lease passed) answers the payment with that
    /// quote rather than `payment_unexpected_state`.
    pub async fn confirm_crypto(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        chain_id: u64,
        symbol: &str,
        mode: CryptoMode,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let chain = self.chains().get(chain_id).ok_or_else(|| {
            PaymentError::invalid(
                "payment_method.crypto.chain_id",
                format!("chain {chain_id} is not configured on this node"),
            )
        })?;
        let asset = chain.asset(symbol).ok_or_else(|| {
            PaymentError::invalid(
                "payment_method.crypto.asset",
                format!("{symbol} is not an asset of chain {chain_id}"),
            )
        })?;
        // The chain's own contracts are not as configured (chain::guard).
        if let Some(refusal) = self
            .chain_status()
            .and_then(|s| s.quote_refusal(chain_id, symbol))
        {
            let (param, reason) = match refusal {
                QuoteRefusal::Chain(reason) => ("payment_method.crypto.chain_id", reason),
                QuoteRefusal::Asset(reason) => ("payment_method.crypto.asset", reason),
            };
            return Err(PaymentError::Unavailable {
                code: "chain_unavailable",
                param,
                message: format!("Crypto payments on chain {chain_id} are suspended: {reason}."),
            });
        }
        let mut tx = self.pool().begin().await?;
        let mut payment =
            store::lock(&mut tx, merchant, id)
                .await?
                .ok_or_else(|| PaymentError::NotFound {
                    kind: "payment",
                    id: id.to_string(),
                })?;
        if payment.method == Some(MethodType::Crypto)
            && payment.status != Status::RequiresPaymentMethod
            && let Some(key) = request_key
            && quoted_by(&mut tx, &payment.id, key).await?
        {
            // A retry of the request that made the quote: its answer.
            tx.rollback().await?;
            return self.get(merchant, id).await;
        }
        let requote = payment.status == Status::RequiresAction
            && payment.method == Some(MethodType::Crypto)
            && quote_lapsed_unpaid(&mut tx, &payment.id).await?;
        if !requote
            && !matches!(
                payment.status,
                Status::RequiresPaymentMethod | Status::Failed
            )
        {
            return Err(PaymentError::state(
                "payment_unexpected_state",
                format!(
                    "You cannot confirm this payment because it has a status of {}.",
                    payment.status
                ),
            ));
        }
        if !payment.payment_method_types.iter().any(|t| t == "crypto") {
            return Err(PaymentError::invalid(
                "payment_method.type",
                "crypto is not among this payment's payment_method_types",
            ));
        }
        let deposit = chain.deposit_factory.map(|factory| {
            let salt = deposits::salt(payment.id.as_str());
            (deposits::address(factory, salt), salt)
        });
        if mode == CryptoMode::Deposit && deposit.is_none() {
            return Err(PaymentError::invalid(
                "payment_method.crypto.mode",
                format!("chain {chain_id} has no deposit addresses on this node"),
            ));
        }
        let (units, rate) = quote_for(&payment, chain, asset).await?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let reference = format!("{}", B256::from(bytes));
        let expires_at = OffsetDateTime::now_utc() + QUOTE_TTL;
        let code = asset.asset_code(chain_id).map_err(PaymentError::Money)?;
        sqlx::query!(
            r#"INSERT INTO crypto_payments (payment_id, merchant_id, chain_id, asset, token, router,
                   reference, expected, rate, expires_at, confirmations, deposit_address,
                   deposit_salt, mode, confirm_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               ON CONFLICT (payment_id) DO UPDATE SET chain_id = $3, asset = $4, token = $5,
                   router = $6, reference = $7, expected = $8, rate = $9, expires_at = $10,
                   confirmations = $11, received = 0, confirmed = 0, exception = NULL,
                   deposit_address = $12, deposit_salt = $13, mode = $14, confirm_key = $15"#,
            payment.id.as_str(),
            merchant.as_str(),
            i64::try_from(chain_id).unwrap_or(i64::MAX),
            code.as_str(),
            hex_lower(asset.token()),
            hex_lower(chain.router),
            reference,
            Decimal::from_str_exact(&units.to_string()).map_err(|e| {
                PaymentError::Unexpected {
                    what: "the quoted units as a decimal",
                    source: Box::new(e),
                }
            })?,
            Json(&rate) as _,
            expires_at,
            i64::try_from(chain.confirmations).unwrap_or(i64::MAX),
            deposit.map(|(address, _)| hex_lower(address)),
            deposit.map(|(_, salt)| format!("{salt}")),
            mode as CryptoMode,
            request_key,
        )
        .execute(&mut *tx)
        .await?;
        payment.method = Some(MethodType::Crypto);
        payment.card = None;
        payment.last_error = None;
        payment.status = Status::RequiresAction;
        payment.expires_at = Some(expires_at);
        let deposit_address = deposit.map(|(address, _)| address);
        let deposit_uri = deposit_address
            .map(|d| deposits::uri(chain_id, asset.token_address, d, U256::from(units)));
        // In deposit mode the address is the only instruction: the router
        // fields are null and `uri` pays the address.
        let (router_address, uri) = match mode {
            CryptoMode::Any => (
                Some(hex_lower(chain.router)),
                eip681(chain, asset, units, &reference),
            ),
            CryptoMode::Deposit => (None, deposit_uri.clone().unwrap_or_default()),
        };
        payment.next_action = Some(NextAction::CryptoTransfer {
            crypto: CryptoInstructions {
                chain_id,
                asset: asset.symbol.clone(),
                token_address: asset.token_address.map(hex_lower),
                router_address,
                amount: units.to_string(),
                payment_reference: reference,
                uri,
                mode,
                deposit_address: deposit_address.map(hex_lower),
                deposit_uri,
                expires_at: expires_at.unix_timestamp(),
                confirmations_required: chain.confirmations,
            },
        });
        store::update(&mut tx, &payment).await?;
        payment.crypto = refresh_view(&mut tx, &payment.id).await?;
        self.announce(&mut tx, &payment, EventType::PaymentRequiresAction)
            .await?;
        tx.commit().await?;
        Ok(payment)
    }
}

/// Whether the payment's current quote was made by the request with
/// Idempotency-Key `key`.
async fn quoted_by(
    conn: &mut sqlx::PgConnection,
    payment: &PaymentId,
    key: &str,
) -> Result<bool, PaymentError> {
    let made = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM crypto_payments
                           WHERE payment_id = $1 AND confirm_key = $2) AS "made!""#,
        payment.as_str(),
        key,
    )
    .fetch_one(conn)
    .await?;
    Ok(made)
}

/// Whether the payment's quote has lapsed with nothing sent to it, by the
/// chain's clock as its watcher has seen it (as the expiry job decides):
/// only then may the customer ask for a new quote without a transfer made
/// on time arriving for a reference that no longer exists.
async fn quote_lapsed_unpaid(
    conn: &mut sqlx::PgConnection,
    payment: &PaymentId,
) -> Result<bool, PaymentError> {
    let lapsed = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM crypto_payments c
                            JOIN chain_cursors cur ON cur.chain_id = c.chain_id
                           WHERE c.payment_id = $1 AND c.received = 0
                             AND cur.block_timestamp > c.expires_at
                             AND NOT EXISTS (SELECT 1 FROM crypto_bookings b
                                              WHERE b.payment_id = c.payment_id))
           AS "lapsed!""#,
        payment.as_str()
    )
    .fetch_one(conn)
    .await?;
    Ok(lapsed)
}
