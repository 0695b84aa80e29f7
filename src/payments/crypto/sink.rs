//! The watcher's sink: applying detected, confirmed and removed transfers
//! to crypto payments, their ledger postings and events.

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::hex_lower;
use super::view::refresh_view;
use crate::chain::deposits;
use crate::chain::watcher::{SinkError, Transfer, TransferSink};
use crate::events::EventType;
use crate::ids::{MerchantId, PaymentId};
use crate::ledger::AccountRef;
use crate::money::{Amount, AssetCode};
use crate::payments::model::{LastError, Payment, Status};
use crate::payments::{PaymentError, Payments, postings, store};

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
    deposit_address: Option<String>,
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
                  c.received, c.confirmed, c.expires_at, c.deposit_address
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
    /// router or its deposit address, its token. The reference alone is
    /// not enough: every chain's native coin is token 0x0.
    fn pays(&self, t: &Transfer) -> bool {
        let to = hex_lower(t.router);
        u64::try_from(self.chain_id).is_ok_and(|id| id == t.chain_id)
            && (self.router == to || self.deposit_address.as_ref() == Some(&to))
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
            receiving(t),
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
                receiving(t),
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
            payment.last_error = Some(LastError::later(
                "chain_reorg",
                "A chain reorganization deeper than the confirmation depth removed a transfer of this payment; the funds were taken back.",
            ));
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

/// The account money of `t` landed in: the treasury for the router, the
/// chain's unswept deposits for a deposit address.
fn receiving(t: &Transfer) -> AccountRef {
    if deposits::is_deposit(t.tx_log_ordinal) {
        AccountRef::deposits(t.chain_id)
    } else {
        AccountRef::treasury(t.chain_id)
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
