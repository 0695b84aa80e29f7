//! Bank transfers paid through the gateway's own bank account (the
//! `iso20022` processor, [`crate::bank`]): the payments side of a
//! statement entry, as [`super::crypto::PaymentsSink`] is of a chain
//! transfer.
//!
//! The bank layer books every credit from `bank:<account>` into
//! `suspense` and then calls [`credit`] in the same transaction: the money
//! is held for the payment (`bank_payment_funds`) until it covers the
//! amount; then one entry moves it from suspense to the merchant (less the
//! fee), the payment `succeeded` and `payment.succeeded` is recorded — the
//! same end as the sandbox's clear helper. A surplus stays in suspense for
//! the reconciliation desk. A bank return reverses a succeeded payment as
//! [`super::Payments::apply_processor_event`] does.
//!
//! Every function runs in the caller's transaction and takes the mode the
//! payment objects are rendered in (these run from the command line too).

use sqlx::PgConnection;

use super::model::{Audience, LastError, Payment, Status};
use super::{PaymentError, postings, store};
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PaymentId};
use crate::ledger::{self, AccountRef, Entry, EntryKind, MerchantAccount};
use crate::methods::MethodType;
use crate::money::{Amount, AssetCode, Currency};

/// What a credit did to its payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credited {
    /// Paid in full: the payment succeeded; `surplus` (smallest units)
    /// stays in suspense.
    Succeeded {
        /// Paid beyond the amount.
        surplus: i64,
    },
    /// Not enough yet: `held` of `expected` has arrived.
    Underpaid {
        /// Held for the payment so far.
        held: i64,
        /// The payment's amount.
        expected: i64,
    },
    /// The payment no longer takes money (succeeded, canceled, failed):
    /// the credit stays in suspense.
    Late,
}

/// What a return did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// A succeeded payment was reversed: the merchant gave the money back
    /// to `clearing:bank_transfer`, from which the bank's debit is booked.
    Reversed,
    /// Money still held for the payment went back: the debit is booked
    /// from suspense.
    FromSuspense,
}

/// The payment `id` locked, whoever its merchant.
pub async fn lock(conn: &mut PgConnection, id: &PaymentId) -> Result<Payment, PaymentError> {
    let merchant: Option<String> =
        sqlx::query_scalar("SELECT merchant_id FROM payments WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let merchant = merchant
        .and_then(|m| MerchantId::parse(&m).ok())
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: id.to_string(),
        })?;
    store::lock(conn, &merchant, id)
        .await?
        .ok_or_else(|| PaymentError::NotFound {
            kind: "payment",
            id: id.to_string(),
        })
}

/// Whether `payment` still waits for a bank transfer.
pub fn is_open(payment: &Payment) -> bool {
    payment.status == Status::Processing && payment.method == Some(MethodType::BankTransfer)
}

fn asset(payment: &Payment) -> Result<AssetCode, PaymentError> {
    let currency = Currency::parse(&payment.currency).map_err(PaymentError::Money)?;
    Ok(AssetCode::fiat(currency))
}

fn amount(units: i64) -> Amount {
    Amount::from_minor(units)
}

async fn announce(
    conn: &mut PgConnection,
    payment: &Payment,
    event: EventType,
    livemode: bool,
) -> Result<(), PaymentError> {
    events::record(
        conn,
        &payment.merchant_id,
        event,
        &payment.to_api(Audience::Merchant, livemode),
    )
    .await?;
    Ok(())
}

/// Money held in suspense for `payment`.
pub async fn held(conn: &mut PgConnection, payment: &PaymentId) -> Result<i64, PaymentError> {
    Ok(
        sqlx::query_scalar("SELECT held FROM bank_payment_funds WHERE payment_id = $1")
            .bind(payment.as_str())
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

async fn set_held(
    conn: &mut PgConnection,
    payment: &PaymentId,
    held: i64,
) -> Result<(), PaymentError> {
    sqlx::query(
        r#"INSERT INTO bank_payment_funds (payment_id, held) VALUES ($1, $2)
           ON CONFLICT (payment_id) DO UPDATE SET held = $2"#,
    )
    .bind(payment.as_str())
    .bind(held)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves `held` from suspense to the merchant (less the fee) and marks the
/// payment succeeded with `received`, announcing it.
async fn complete(
    conn: &mut PgConnection,
    payment: &mut Payment,
    received: i64,
    key: &str,
    livemode: bool,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let pending = AccountRef::merchant(&payment.merchant_id, MerchantAccount::Pending);
    let rule = ledger::fee_rule(
        conn,
        &payment.merchant_id,
        &MethodType::BankTransfer.to_string(),
        &asset,
    )
    .await?;
    let fee = rule.fee_for(amount(received));
    let entry = Entry::new(key.to_owned(), EntryKind::PAYMENT)
        .source(payment.id.as_str())
        .transfer(
            AccountRef::suspense(),
            pending.clone(),
            &asset,
            amount(received),
        )
        .fee(pending, &asset, fee);
    ledger::post(conn, &entry).await?;
    payment.amount_received = received;
    payment.status = Status::Succeeded;
    payment.next_action = None;
    payment.expires_at = None;
    store::update(conn, payment).await?;
    announce(conn, payment, EventType::PaymentSucceeded, livemode).await
}

/// A credit of `units` for `payment`, already booked into suspense.
pub async fn credit(
    conn: &mut PgConnection,
    payment: &PaymentId,
    units: i64,
    livemode: bool,
) -> Result<(Payment, Credited), PaymentError> {
    let mut payment = lock(conn, payment).await?;
    if !is_open(&payment) {
        return Ok((payment, Credited::Late));
    }
    let held = held(conn, &payment.id).await? + units;
    if held < payment.amount {
        set_held(conn, &payment.id, held).await?;
        let expected = payment.amount;
        return Ok((payment, Credited::Underpaid { held, expected }));
    }
    set_held(conn, &payment.id, 0).await?;
    let expected = payment.amount;
    let key = format!("{}:bank_received", payment.id);
    complete(conn, &mut payment, expected, &key, livemode).await?;
    Ok((
        payment,
        Credited::Succeeded {
            surplus: held - expected,
        },
    ))
}

/// The desk accepts an underpayment: the payment succeeds with what
/// arrived.
pub async fn accept_short(
    conn: &mut PgConnection,
    payment: &PaymentId,
    livemode: bool,
) -> Result<Payment, PaymentError> {
    let mut payment = lock(conn, payment).await?;
    let held = held(conn, &payment.id).await?;
    if !is_open(&payment) || held <= 0 {
        return Err(PaymentError::state(
            "payment_unexpected_state",
            "Only a bank transfer payment still processing, with money held for it, can be accepted short.",
        ));
    }
    set_held(conn, &payment.id, 0).await?;
    let key = format!("{}:bank_accepted_short", payment.id);
    complete(conn, &mut payment, held, &key, livemode).await?;
    Ok(payment)
}

/// The desk sends an underpayment back: nothing is held any more and the
/// payment fails (the customer may confirm again). Returns what was held.
pub async fn give_back(
    conn: &mut PgConnection,
    payment: &PaymentId,
    livemode: bool,
) -> Result<i64, PaymentError> {
    let mut payment = lock(conn, payment).await?;
    let held = held(conn, &payment.id).await?;
    set_held(conn, &payment.id, 0).await?;
    if is_open(&payment) {
        payment.status = Status::Failed;
        payment.next_action = None;
        payment.last_error = Some(LastError::later(
            "bank_transfer_incomplete",
            "The transfer received was short of the amount and was sent back to the payer.",
        ));
        store::update(conn, &payment).await?;
        announce(conn, &payment, EventType::PaymentFailed, livemode).await?;
    }
    Ok(held)
}

/// The bank took back `units` received for `payment` (a debit with a
/// return reason). `None` when nothing of the payment is there to return.
pub async fn returned(
    conn: &mut PgConnection,
    payment: &PaymentId,
    units: i64,
    reason: &str,
    livemode: bool,
) -> Result<Option<(Payment, Returned)>, PaymentError> {
    let mut payment = lock(conn, payment).await?;
    if payment.status == Status::Succeeded
        && payment.method == Some(MethodType::BankTransfer)
        && payment.refundable() >= units
    {
        postings::reverse_receipt(conn, &payment, units, "bank_return").await?;
        payment.amount_refunded += units;
        payment.status = Status::Failed;
        payment.last_error = Some(LastError {
            decline_code: Some(Some(reason.to_owned())),
            ..LastError::later(
                "bank_return",
                &format!("The bank returned the transfer ({reason}); the funds were taken back."),
            )
        });
        store::update(conn, &payment).await?;
        announce(conn, &payment, EventType::PaymentFailed, livemode).await?;
        return Ok(Some((payment, Returned::Reversed)));
    }
    let held = held(conn, &payment.id).await?;
    if held >= units {
        set_held(conn, &payment.id, held - units).await?;
        return Ok(Some((payment, Returned::FromSuspense)));
    }
    Ok(None)
}

/// Open bank-transfer payments of `amount` in `currency` with nothing
/// received yet: the candidates of a credit whose reference matched none.
pub async fn open_with_amount(
    conn: &mut PgConnection,
    currency: &str,
    amount: i64,
) -> Result<Vec<PaymentId>, PaymentError> {
    let ids: Vec<PaymentId> = sqlx::query_scalar(
        r#"SELECT p.id FROM payments p
            WHERE p.status = 'processing' AND p.method = 'bank_transfer'
              AND p.currency = $1 AND p.amount = $2
              AND NOT EXISTS (SELECT 1 FROM bank_payment_funds f
                               WHERE f.payment_id = p.id AND f.held > 0)
            ORDER BY p.created_at LIMIT 2"#,
    )
    .bind(currency)
    .bind(amount)
    .fetch_all(conn)
    .await?;
    Ok(ids)
}
