//! Crypto payments: the quote at confirmation, and the payments side of the
//! chain watcher ([`PaymentsSink`]).
//!
//! Confirming with `crypto` locks a quote (fiat amount → base units of the
//! asset, stablecoins at par, ETH through the price feed) until
//! `expires_at`, draws an unguessable 32-byte reference, and answers
//! `next_action.crypto_transfer`. The watcher then reports each router
//! event carrying that reference:
//!
//! - detected on time → counted, the payment becomes `processing`
//!   (`payment.crypto_detected`);
//! - confirmed → booked from the chain's treasury into suspense; once the
//!   confirmed total reaches the quote, one entry moves it to the merchant
//!   (the surplus of an overpayment to `refunds_payable`) and the payment
//!   `succeeded`;
//! - late, in the wrong token, or with an unknown reference → held in
//!   suspense with an exception for the merchant's decision;
//! - removed by a reorg before confirmation → uncounted; after confirmation
//!   (deeper than the confirmation depth) → reversed in the ledger and
//!   reported as an exception.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::providers::ProviderBuilder;
use rand::RngCore;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

use super::model::{Payment, Status};
use super::quote::{self, QuoteError};
use super::{PaymentError, Payments, postings, store};
use crate::chain::config::{AssetConfig, ChainConfig};
use crate::chain::contracts::DevPriceFeed;
use crate::chain::guard::QuoteRefusal;
use crate::chain::watcher::{SinkError, Transfer, TransferSink};
use crate::events::EventType;
use crate::ids::{MerchantId, PaymentId};
use crate::money::{Amount, AssetCode, Currency};
use futures::future::BoxFuture;

/// How long a quote holds.
pub const QUOTE_TTL: Duration = Duration::minutes(15);
/// Most decimals a price feed may report (Chainlink's are 8 or 18).
const MAX_FEED_DECIMALS: u8 = 36;

/// The chains crypto payments may use.
#[derive(Debug, Clone, Default)]
pub struct Chains(pub Arc<Vec<ChainConfig>>);

impl Chains {
    fn get(&self, chain_id: u64) -> Option<&ChainConfig> {
        self.0.iter().find(|c| c.chain_id == chain_id)
    }
}

fn hex_lower(address: Address) -> String {
    format!("{address:#x}")
}

/// Base units owed for `payment`, and how the rate was found.
async fn quote_for(
    payment: &Payment,
    chain: &ChainConfig,
    asset: &AssetConfig,
) -> Result<(u128, Value), PaymentError> {
    let currency =
        Currency::parse(&payment.currency).map_err(|e| PaymentError::Ledger(e.to_string()))?;
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
        return Ok((units, json!({ "source": "par" })));
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
        .map_err(|e| PaymentError::Ledger(format!("chain {} url: {e}", chain.chain_id)))?;
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
        json!({
            "source": "price_feed",
            "feed": hex_lower(feed),
            "price": price.to_string(),
            "decimals": decimals,
            "round": round.roundId.to_string(),
            "updated_at": updated_at,
        }),
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
    pub fn crypto_options(&self, payment: &Payment) -> Vec<Value> {
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
                    options.push(json!({
                        "chain_id": chain.chain_id,
                        "asset": asset.symbol,
                        "decimals": asset.decimals,
                        "token_address": asset.token_address.map(hex_lower),
                        "router_address": hex_lower(chain.router),
                        "confirmations_required": chain.confirmations,
                    }));
                }
            }
        }
        options
    }

    /// Confirms a payment with a crypto asset: locks a quote and answers
    /// the transfer to make.
    pub async fn confirm_crypto(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        chain_id: u64,
        symbol: &str,
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
        let requote = payment.status == Status::RequiresAction
            && payment.method.as_deref() == Some("crypto")
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
                    payment.status.as_str()
                ),
            ));
        }
        if !payment.payment_method_types.iter().any(|t| t == "crypto") {
            return Err(PaymentError::invalid(
                "payment_method.type",
                "crypto is not among this payment's payment_method_types",
            ));
        }
        let (units, rate) = quote_for(&payment, chain, asset).await?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let reference = format!("{}", B256::from(bytes));
        let expires_at = OffsetDateTime::now_utc() + QUOTE_TTL;
        let code = asset
            .asset_code(chain_id)
            .map_err(|e| PaymentError::Ledger(e.to_string()))?;
        sqlx::query!(
            r#"INSERT INTO crypto_payments (payment_id, merchant_id, chain_id, asset, token, router,
                   reference, expected, rate, expires_at, confirmations)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (payment_id) DO UPDATE SET chain_id = $3, asset = $4, token = $5,
                   router = $6, reference = $7, expected = $8, rate = $9, expires_at = $10,
                   confirmations = $11, received = 0, confirmed = 0, exception = NULL"#,
            payment.id.as_str(),
            merchant.as_str(),
            i64::try_from(chain_id).unwrap_or(i64::MAX),
            code.as_str(),
            hex_lower(asset.token()),
            hex_lower(chain.router),
            reference,
            Decimal::from_str_exact(&units.to_string())
                .map_err(|e| PaymentError::Ledger(e.to_string()))?,
            rate,
            expires_at,
            i64::try_from(chain.confirmations).unwrap_or(i64::MAX),
        )
        .execute(&mut *tx)
        .await?;
        payment.method = Some("crypto".into());
        payment.card = None;
        payment.last_error = None;
        payment.status = Status::RequiresAction;
        payment.expires_at = Some(expires_at);
        payment.next_action = Some(json!({
            "type": "crypto_transfer",
            "crypto": {
                "chain_id": chain_id,
                "asset": asset.symbol,
                "token_address": asset.token_address.map(hex_lower),
                "router_address": hex_lower(chain.router),
                "amount": units.to_string(),
                "payment_reference": reference,
                "uri": eip681(chain, asset, units, &reference),
                "expires_at": expires_at.unix_timestamp(),
                "confirmations_required": chain.confirmations,
            },
        }));
        store::update(&mut tx, &payment).await?;
        payment.crypto = refresh_view(&mut tx, &payment.id).await?;
        self.announce(&mut tx, &payment, EventType::PaymentRequiresAction)
            .await?;
        tx.commit().await?;
        Ok(payment)
    }
}

/// Whether the payment's quote has lapsed with nothing sent to it, by the
/// chain's clock as its watcher has seen it (as the expiry job decides):
/// only then may the customer ask for a new quote without a transfer made
/// on time arriving for a reference that no longer exists.
async fn quote_lapsed_unpaid(
    conn: &mut PgConnection,
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

/// A crypto payment row, locked.
#[derive(Debug)]
struct Quote {
    payment_id: String,
    merchant_id: String,
    chain_id: i64,
    router: String,
    asset: String,
    token: String,
    expected: Decimal,
    received: Decimal,
    confirmed: Decimal,
    expires_at: OffsetDateTime,
}

/// Rewrites the payment's `crypto` view from the quote and its transfers;
/// returns it.
async fn refresh_view(
    conn: &mut PgConnection,
    payment: &PaymentId,
) -> Result<Option<Value>, PaymentError> {
    let view = sqlx::query_scalar!(
        r#"UPDATE payments p SET crypto = v.view FROM (
             SELECT jsonb_build_object(
               'chain_id', c.chain_id,
               'asset', split_part(c.asset, ':', 1),
               'token_address', CASE WHEN c.token = '0x0000000000000000000000000000000000000000'
                                     THEN NULL ELSE c.token END,
               'payment_reference', c.reference,
               'amount', c.expected::text,
               'amount_received', c.received::text,
               'amount_confirmed', c.confirmed::text,
               'expires_at', extract(epoch FROM c.expires_at)::bigint,
               'confirmations_required', c.confirmations,
               'confirmations', coalesce((
                   SELECT min(greatest(0, cur.block_number - t.block_number + 1))
                     FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
                     JOIN chain_cursors cur ON cur.chain_id = t.chain_id
                    WHERE b.payment_id = c.payment_id AND t.status <> 'removed'), 0),
               'exception', c.exception,
               'transfers', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                            'tx_hash', t.tx_hash, 'log_index', t.log_index,
                            'block_number', t.block_number, 'amount', t.amount::text,
                            'payer', t.payer, 'status', t.status, 'booking', b.booking)
                          ORDER BY t.id)
                     FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
                    WHERE b.payment_id = c.payment_id), '[]'::jsonb)
             ) AS view
             FROM crypto_payments c WHERE c.payment_id = $1
           ) v
           WHERE p.id = $1
           RETURNING p.crypto"#,
        payment.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(view.flatten())
}

/// Sets `crypto.confirmations` of each crypto payment to its depth now.
///
/// The stored view is rewritten only when a transfer moves, so between
/// detection and confirmation it would keep the depth seen at detection;
/// the watcher's cursor is the head it has processed, which gives the
/// depth at read time in one query for a whole page.
pub async fn live_confirmations(
    pool: &sqlx::PgPool,
    payments: &mut [Payment],
) -> Result<(), PaymentError> {
    let ids: Vec<String> = payments
        .iter()
        .filter(|p| p.crypto.is_some())
        .map(|p| p.id.as_str().to_owned())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let depths = sqlx::query!(
        r#"SELECT b.payment_id AS "payment_id!",
                  min(greatest(0, cur.block_number - t.block_number + 1)) AS "depth!"
             FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
             JOIN chain_cursors cur ON cur.chain_id = t.chain_id
            WHERE b.payment_id = ANY($1) AND t.status <> 'removed'
              AND cur.block_number IS NOT NULL
            GROUP BY b.payment_id"#,
        &ids
    )
    .fetch_all(pool)
    .await?;
    for row in depths {
        if let Some(Value::Object(view)) = payments
            .iter_mut()
            .find(|p| p.id.as_str() == row.payment_id)
            .and_then(|p| p.crypto.as_mut())
        {
            view.insert("confirmations".into(), json!(row.depth));
        }
    }
    Ok(())
}

/// The payments side of the chain watcher.
#[derive(Debug, Clone)]
pub struct PaymentsSink {
    payments: Payments,
}

impl PaymentsSink {
    /// A sink booking into `payments`.
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

fn dec(amount: Amount) -> Decimal {
    amount.to_decimal()
}

fn to_amount(d: Decimal) -> Result<Amount, SinkError> {
    Amount::try_from(d).map_err(SinkError::from)
}

async fn lock_quote(conn: &mut PgConnection, reference: &str) -> Result<Option<Quote>, SinkError> {
    Ok(sqlx::query_as!(
        Quote,
        r#"SELECT c.payment_id, c.merchant_id, c.chain_id, c.router, c.asset, c.token, c.expected,
                  c.received, c.confirmed, c.expires_at
             FROM crypto_payments c JOIN payments p ON p.id = c.payment_id
            WHERE c.reference = $1
              FOR UPDATE OF c, p"#,
        reference
    )
    .fetch_optional(conn)
    .await?)
}

impl Quote {
    /// Whether `t` is the transfer this quote asked for: its chain, its
    /// router, its token. The reference alone is not enough: every chain's
    /// native coin is token 0x0.
    fn pays(&self, t: &Transfer) -> bool {
        u64::try_from(self.chain_id).is_ok_and(|id| id == t.chain_id)
            && self.router == hex_lower(t.router)
            && self.token == hex_lower(t.token)
    }
}

async fn load_payment(conn: &mut PgConnection, quote: &Quote) -> Result<Payment, SinkError> {
    let merchant = MerchantId::parse(&quote.merchant_id).map_err(SinkError::from)?;
    let id = PaymentId::parse(&quote.payment_id).map_err(SinkError::from)?;
    store::lock(conn, &merchant, &id)
        .await?
        .ok_or_else(|| SinkError::msg(format!("payment {id} vanished")))
}

impl PaymentsSink {
    async fn on_detected(&self, conn: &mut PgConnection, t: &Transfer) -> Result<(), SinkError> {
        let reference = format!("{}", t.reference);
        let Some(quote) = lock_quote(conn, &reference).await? else {
            book(conn, t, None, "unmatched").await?;
            return Ok(());
        };
        let mut payment = load_payment(conn, &quote).await?;
        let bookable = t.ledger_amount().is_ok();
        let booking = if !quote.pays(t) {
            "wrong_asset"
        } else if !bookable {
            "unbookable"
        } else if t.block_timestamp > quote.expires_at
            || matches!(payment.status, Status::Canceled | Status::Succeeded)
        {
            "late"
        } else {
            "payment"
        };
        book(conn, t, Some(&payment.id), booking).await?;
        match booking {
            "payment" => {
                let amount = dec(t.ledger_amount()?);
                sqlx::query!(
                    "UPDATE crypto_payments SET received = received + $2 WHERE payment_id = $1",
                    quote.payment_id,
                    amount
                )
                .execute(&mut *conn)
                .await?;
                sqlx::query!(
                    "UPDATE crypto_bookings SET counted = true WHERE transfer_id = $1",
                    t.id
                )
                .execute(&mut *conn)
                .await?;
                if payment.status == Status::RequiresAction {
                    payment.status = Status::Processing;
                    payment.expires_at = None;
                    store::update(conn, &payment).await?;
                }
                payment.crypto = refresh_view(conn, &payment.id).await?;
                self.payments
                    .announce(conn, &payment, EventType::PaymentCryptoDetected)
                    .await?;
            }
            "late" => self.exception(conn, &mut payment, "paid_late").await?,
            // Real money of a configured asset, on the wrong chain or router
            // or in the wrong token: the merchant must decide. A token the
            // node does not know is worthless to it (anyone can mint one);
            // it stays listed on the payment without raising an exception,
            // so junk cannot mask the payment's real state.
            _ if t.asset.is_some() => {
                let exception = if booking == "unbookable" {
                    "unbookable"
                } else {
                    "wrong_asset"
                };
                self.exception(conn, &mut payment, exception).await?;
            }
            _ => {
                payment.crypto = refresh_view(conn, &payment.id).await?;
            }
        }
        Ok(())
    }

    async fn exception(
        &self,
        conn: &mut PgConnection,
        payment: &mut Payment,
        exception: &str,
    ) -> Result<(), SinkError> {
        sqlx::query!(
            "UPDATE crypto_payments SET exception = $2 WHERE payment_id = $1",
            payment.id.as_str(),
            exception
        )
        .execute(&mut *conn)
        .await?;
        payment.crypto = refresh_view(conn, &payment.id).await?;
        self.payments
            .announce(conn, payment, EventType::PaymentCryptoException)
            .await?;
        Ok(())
    }

    async fn on_confirmed(&self, conn: &mut PgConnection, t: &Transfer) -> Result<(), SinkError> {
        let Some(booking) = sqlx::query!(
            r#"SELECT payment_id, booking FROM crypto_bookings WHERE transfer_id = $1 FOR UPDATE"#,
            t.id
        )
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Err(SinkError::msg(format!(
                "transfer {} confirmed before detected",
                t.id
            )));
        };
        let Some(code) = t.asset_code() else {
            // A token this chain does not know cannot be booked in any
            // asset; it stays recorded in chain_transfers for the operator.
            sqlx::query!(
                "UPDATE crypto_bookings SET confirmed = true WHERE transfer_id = $1",
                t.id
            )
            .execute(&mut *conn)
            .await?;
            return Ok(());
        };
        let Ok(amount) = t.ledger_amount() else {
            // Too large for any account: recorded, never booked (see the
            // `unbookable` booking), so the watcher moves on.
            sqlx::query!(
                "UPDATE crypto_bookings SET booking = 'unbookable', confirmed = true WHERE transfer_id = $1",
                t.id
            )
            .execute(&mut *conn)
            .await?;
            return Ok(());
        };
        postings::crypto_received(
            conn,
            inclusion(t, t.removals),
            &code,
            amount,
            booking.payment_id.as_deref(),
        )
        .await
        .map_err(SinkError::from)?;
        sqlx::query!(
            "UPDATE crypto_bookings SET confirmed = true WHERE transfer_id = $1",
            t.id
        )
        .execute(&mut *conn)
        .await?;
        let Some(payment_id) = booking.payment_id.filter(|_| booking.booking == "payment") else {
            return Ok(());
        };
        let reference = format!("{}", t.reference);
        let Some(quote) = lock_quote(conn, &reference).await? else {
            return Ok(());
        };
        let confirmed = quote.confirmed + dec(amount);
        sqlx::query!(
            "UPDATE crypto_payments SET confirmed = $2 WHERE payment_id = $1",
            payment_id,
            confirmed
        )
        .execute(&mut *conn)
        .await?;
        let mut payment = load_payment(conn, &quote).await?;
        if payment.status != Status::Succeeded && confirmed >= quote.expected {
            let surplus = confirmed - quote.expected;
            let asset = AssetCode::parse(&quote.asset).map_err(SinkError::from)?;
            postings::crypto_completed(
                conn,
                &payment,
                inclusion(t, t.removals),
                &asset,
                postings::CryptoAmounts {
                    confirmed: to_amount(confirmed)?,
                    expected: to_amount(quote.expected)?,
                    surplus: to_amount(surplus)?,
                },
            )
            .await
            .map_err(SinkError::from)?;
            // A completion after a deep reorg took the money back: the
            // exception that reorg raised no longer holds.
            sqlx::query!(
                "UPDATE crypto_payments SET exception = NULL
                  WHERE payment_id = $1 AND exception = 'underpaid'",
                payment.id.as_str()
            )
            .execute(&mut *conn)
            .await?;
            payment.status = Status::Succeeded;
            payment.last_error = None;
            payment.amount_received = payment.amount;
            payment.next_action = None;
            payment.expires_at = None;
            store::update(conn, &payment).await?;
            payment.crypto = refresh_view(conn, &payment.id).await?;
            self.payments
                .announce(conn, &payment, EventType::PaymentSucceeded)
                .await?;
            if surplus > Decimal::ZERO {
                self.exception(conn, &mut payment, "overpaid").await?;
            }
        } else {
            payment.crypto = refresh_view(conn, &payment.id).await?;
        }
        Ok(())
    }

    async fn on_removed(
        &self,
        conn: &mut PgConnection,
        t: &Transfer,
        was_confirmed: bool,
    ) -> Result<(), SinkError> {
        let Some(booking) = sqlx::query!(
            r#"SELECT payment_id, booking, counted, confirmed FROM crypto_bookings
                WHERE transfer_id = $1 FOR UPDATE"#,
            t.id
        )
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(());
        };
        // The booking is forgotten; if the transfer comes back, `detected`
        // books it anew (it may be late by then).
        sqlx::query!("DELETE FROM crypto_bookings WHERE transfer_id = $1", t.id)
            .execute(&mut *conn)
            .await?;
        if booking.booking == "unbookable" {
            // Nothing was counted or booked for it.
            return Ok(());
        }
        let Ok(amount) = t.ledger_amount() else {
            return Ok(());
        };
        let reference = format!("{}", t.reference);
        let quote = match &booking.payment_id {
            Some(_) => lock_quote(conn, &reference).await?,
            None => None,
        };
        let completed = match &quote {
            Some(q) => load_payment(conn, q).await?.status == Status::Succeeded,
            None => false,
        };
        if was_confirmed
            && booking.confirmed
            && let Some(code) = t.asset_code()
        {
            let payment = match &quote {
                Some(q) if completed && booking.booking == "payment" => {
                    Some(load_payment(conn, q).await?)
                }
                _ => None,
            };
            // `t.removals` already counts this removal: the booking
            // reversed is the generation before it.
            postings::crypto_reversed(
                conn,
                inclusion(t, t.removals.saturating_sub(1)),
                &code,
                amount,
                payment.as_ref(),
            )
            .await
            .map_err(SinkError::from)?;
        }
        let Some(quote) = quote else { return Ok(()) };
        if booking.booking != "payment" {
            let mut payment = load_payment(conn, &quote).await?;
            payment.crypto = refresh_view(conn, &payment.id).await?;
            return Ok(());
        }
        let received = if booking.counted {
            quote.received - dec(amount)
        } else {
            quote.received
        };
        let confirmed = if booking.confirmed {
            quote.confirmed - dec(amount)
        } else {
            quote.confirmed
        };
        sqlx::query!(
            "UPDATE crypto_payments SET received = $2, confirmed = $3 WHERE payment_id = $1",
            quote.payment_id,
            received.max(Decimal::ZERO),
            confirmed.max(Decimal::ZERO),
        )
        .execute(&mut *conn)
        .await?;
        let mut payment = load_payment(conn, &quote).await?;
        if completed && was_confirmed {
            // Money the merchant was credited with never arrived.
            payment.status = Status::Failed;
            payment.last_error = Some(json!({
                "code": "chain_reorg",
                "message": "A chain reorganization deeper than the confirmation depth removed a transfer of this payment; the funds were taken back.",
            }));
            store::update(conn, &payment).await?;
            self.exception(conn, &mut payment, "underpaid").await?;
        } else if payment.status == Status::Processing && received <= Decimal::ZERO {
            payment.status = Status::RequiresAction;
            payment.expires_at = Some(quote.expires_at);
            store::update(conn, &payment).await?;
            payment.crypto = refresh_view(conn, &payment.id).await?;
        } else {
            payment.crypto = refresh_view(conn, &payment.id).await?;
        }
        Ok(())
    }
}

/// Generation `generation` of transfer `t` (see [`postings::Inclusion`]).
fn inclusion(t: &Transfer, generation: u32) -> postings::Inclusion {
    postings::Inclusion {
        chain_id: t.chain_id,
        transfer_id: t.id,
        generation,
    }
}

async fn book(
    conn: &mut PgConnection,
    t: &Transfer,
    payment: Option<&PaymentId>,
    booking: &str,
) -> Result<(), SinkError> {
    sqlx::query!(
        r#"INSERT INTO crypto_bookings (transfer_id, payment_id, booking) VALUES ($1, $2, $3)
           ON CONFLICT (transfer_id) DO UPDATE SET payment_id = $2, booking = $3,
               counted = false, confirmed = false, reversed = false"#,
        t.id,
        payment.map(PaymentId::as_str),
        booking
    )
    .execute(conn)
    .await?;
    Ok(())
}

impl TransferSink for PaymentsSink {
    fn detected<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.on_detected(conn, transfer))
    }

    fn confirmed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.on_confirmed(conn, transfer))
    }

    fn removed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
        was_confirmed: bool,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.on_removed(conn, transfer, was_confirmed))
    }
}

/// Marks quotes that expired underpaid (some funds confirmed, fewer than
/// owed) with the `underpaid` exception; returns how many. As for expiry,
/// only once the chain's watcher has seen a block later than the quote's
/// `expires_at`: the rest may have been paid on time in one it has not.
pub async fn flag_underpaid(
    payments: &Payments,
    now: OffsetDateTime,
) -> Result<usize, PaymentError> {
    let mut tx = payments.pool().begin().await?;
    let due = sqlx::query!(
        r#"SELECT c.payment_id AS "payment_id: PaymentId", c.merchant_id AS "merchant_id: MerchantId"
             FROM crypto_payments c JOIN payments p ON p.id = c.payment_id
            WHERE c.expires_at <= $1 AND c.exception IS NULL AND p.status = 'processing'
              AND c.received < c.expected
              AND EXISTS (SELECT 1 FROM chain_cursors cur
                           WHERE cur.chain_id = c.chain_id AND cur.block_timestamp > c.expires_at)
            FOR UPDATE OF c, p SKIP LOCKED"#,
        now
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &due {
        sqlx::query!(
            "UPDATE crypto_payments SET exception = 'underpaid' WHERE payment_id = $1",
            row.payment_id.as_str()
        )
        .execute(&mut *tx)
        .await?;
        if let Some(mut payment) = store::lock(&mut tx, &row.merchant_id, &row.payment_id).await? {
            payment.crypto = refresh_view(&mut tx, &payment.id).await?;
            payments
                .announce(&mut tx, &payment, EventType::PaymentCryptoException)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(due.len())
}
