//! How each money movement of a payment is booked in the ledger.
//!
//! Every function runs inside the caller's transaction and uses a key
//! derived from the payment (or refund, dispute) and the step, so a retried
//! step books nothing twice. Keys of chain transfers also carry the
//! transfer's generation (how often a reorg removed it before), so a
//! transfer a deep reorg took away and the chain then included again is
//! booked again instead of being taken for a replay.
//!
//! | step | debit | credit |
//! |---|---|---|
//! | card authorization (hold) | `clearing:card` | merchant `pending` |
//! | capture (posts the hold, rest released) + fee | `clearing:card`; merchant `pending` (fee) | merchant `pending`; `fee_revenue:card` |
//! | automatic capture (no hold) + fee | `clearing:card`; merchant `pending` (fee) | merchant `pending`; `fee_revenue:card` |
//! | money received (bank, voucher, check, e-wallet) + fee | `clearing:<method>`; merchant (fee) | merchant `pending`; `fee_revenue:<method>` |
//! | refund, bank return, check bounce | merchant `pending`, then `available`, then `receivable` | `clearing:<method>` |
//! | dispute opened (funds withdrawn) | merchant as for a refund | `disputes` |
//! | dispute won (funds reinstated) | `disputes` | merchant `pending` |
//! | dispute lost (funds go to the cardholder) | `disputes` | `clearing:card` |
//! | crypto received at a deposit address (confirmed) | `deposits:<chain>` | `suspense` |
//! | deposits swept to the treasury | `treasury:<chain>` | `deposits:<chain>` |
//! | crypto refund requested | merchant as for a refund | `refunds_payable` |
//! | crypto refund confirmed on-chain | `refunds_payable` | `treasury:<chain>` |
//! | crypto refund reverted on-chain | `refunds_payable` | merchant `pending` |
//!
//! Fees are kept on refunds and returns, as processors keep theirs.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::PaymentError;
use super::model::Payment;
use crate::ids::{DisputeId, RefundId};
use crate::ledger::{
    self, AccountRef, Entry, EntryKind, FeeRule, LedgerError, MerchantAccount, NewHold,
};
use crate::methods::MethodType;
use crate::money::{Amount, AssetCode, Currency};

impl From<LedgerError> for PaymentError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InsufficientFunds(message) => PaymentError::state(
                "balance_insufficient",
                format!("The merchant balance cannot cover this: {message}"),
            ),
            LedgerError::Database(e) => PaymentError::Database(e),
            other => PaymentError::Booking(other),
        }
    }
}

fn asset(payment: &Payment) -> Result<AssetCode, PaymentError> {
    let currency = Currency::parse(&payment.currency).map_err(PaymentError::Money)?;
    Ok(AssetCode::fiat(currency))
}

fn method(payment: &Payment) -> String {
    payment.method.unwrap_or(MethodType::Card).to_string()
}

fn pending(payment: &Payment) -> AccountRef {
    AccountRef::merchant(&payment.merchant_id, MerchantAccount::Pending)
}

/// Debits `amount` from the merchant: from `pending` as far as it goes,
/// then `available`, and whatever neither covers from `receivable` (a
/// negative balance the merchant owes, netted by the next settlement).
/// Refunds, returns and disputes can exceed what a merchant holds; the
/// floors of `pending` and `available` stay intact.
async fn withdraw(
    conn: &mut PgConnection,
    mut entry: Entry,
    payment: &Payment,
    asset: &AssetCode,
    amount: i128,
) -> Result<Entry, PaymentError> {
    let mut left = amount;
    for kind in [MerchantAccount::Pending, MerchantAccount::Available] {
        if left == 0 {
            break;
        }
        let account = AccountRef::merchant(&payment.merchant_id, kind);
        let balance = ledger::account_balance(conn, &account, asset).await?;
        let spendable = balance.spendable();
        let take = spendable.clamp(0, left);
        if take > 0 {
            entry = entry.debit(account, asset, Amount::new(take).map_err(ledger_amount)?);
            left -= take;
        }
    }
    if left > 0 {
        entry = entry.debit(
            AccountRef::merchant(&payment.merchant_id, MerchantAccount::Receivable),
            asset,
            Amount::new(left).map_err(ledger_amount)?,
        );
    }
    Ok(entry)
}

fn ledger_amount(e: crate::money::AmountError) -> PaymentError {
    PaymentError::Amount(e)
}

/// The fee of `amount` for this payment's merchant and method.
async fn fee(
    conn: &mut PgConnection,
    payment: &Payment,
    asset: &AssetCode,
    amount: i64,
) -> Result<Amount, PaymentError> {
    let rule = ledger::fee_rule(conn, &payment.merchant_id, &method(payment), asset).await?;
    Ok(rule.fee_for(Amount::from_minor(amount)))
}

/// Opens the authorization hold; returns its key.
pub(super) async fn authorize(
    conn: &mut PgConnection,
    payment: &Payment,
    expires_at: OffsetDateTime,
) -> Result<String, PaymentError> {
    let asset = asset(payment)?;
    let key = format!("{}:authorize", payment.id);
    let hold = NewHold::new(
        key.clone(),
        EntryKind::AUTHORIZATION,
        AccountRef::clearing(&method(payment)),
        pending(payment),
        &asset,
        Amount::from_minor(payment.amount),
    )
    .source(payment.id.as_str())
    .expires_at(expires_at);
    ledger::open_hold(conn, &hold).await?;
    Ok(key)
}

/// Posts `amount` of the hold (the rest is released) and charges the fee.
pub(super) async fn capture(
    conn: &mut PgConnection,
    payment: &Payment,
    amount: i64,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let hold = payment
        .hold_id
        .clone()
        .ok_or_else(|| PaymentError::Ledger("capture of a payment without a hold".into()))?;
    let fee = fee(conn, payment, &asset, amount).await?;
    let entry = Entry::new(format!("{}:capture", payment.id), EntryKind::PAYMENT)
        .source(payment.id.as_str())
        .fee(pending(payment), &asset, fee);
    ledger::post_hold(conn, &hold, Some(Amount::from_minor(amount)), &entry).await?;
    Ok(())
}

/// Books an authorization that the processor captured at once (automatic
/// capture): the amount and its fee in one entry, under the key a capture
/// of a hold would use. Opening a hold only to post it in the same
/// transaction wrote two entries, the hold row and its closing, and read
/// the hold back three times; the balances end the same.
pub(super) async fn capture_at_authorization(
    conn: &mut PgConnection,
    payment: &Payment,
    fee_rule: &FeeRule,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let fee = fee_rule.fee_for(Amount::from_minor(payment.amount));
    let entry = Entry::new(format!("{}:capture", payment.id), EntryKind::PAYMENT)
        .source(payment.id.as_str())
        .transfer(
            AccountRef::clearing(&method(payment)),
            pending(payment),
            &asset,
            Amount::from_minor(payment.amount),
        )
        .fee(pending(payment), &asset, fee);
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Releases the authorization hold.
pub(super) async fn void(conn: &mut PgConnection, payment: &Payment) -> Result<(), PaymentError> {
    if let Some(hold) = &payment.hold_id {
        ledger::void_hold(conn, hold, &format!("{}:void", payment.id)).await?;
    }
    Ok(())
}

/// Books money that arrived for an asynchronous method, with its fee.
pub(super) async fn receive(
    conn: &mut PgConnection,
    payment: &Payment,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let fee = fee(conn, payment, &asset, payment.amount).await?;
    let mut entry = Entry::new(format!("{}:receive", payment.id), EntryKind::PAYMENT)
        .source(payment.id.as_str())
        .transfer(
            AccountRef::clearing(&method(payment)),
            pending(payment),
            &asset,
            Amount::from_minor(payment.amount),
        );
    entry = entry.fee(pending(payment), &asset, fee);
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Takes back money that had arrived (bank return, check bounce).
pub(super) async fn reverse_receipt(
    conn: &mut PgConnection,
    payment: &Payment,
    amount: i64,
    reason: &str,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let entry = Entry::new(
        format!("{}:{reason}", payment.id),
        EntryKind::PAYMENT_REVERSAL,
    )
    .source(payment.id.as_str())
    .credit(
        AccountRef::clearing(&method(payment)),
        &asset,
        Amount::from_minor(amount),
    );
    let entry = withdraw(conn, entry, payment, &asset, i128::from(amount)).await?;
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Books a refund.
pub(super) async fn refund(
    conn: &mut PgConnection,
    payment: &Payment,
    refund: &RefundId,
    amount: i64,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let entry = Entry::new(format!("{refund}:refund"), EntryKind::REFUND)
        .source(refund.as_str())
        .credit(
            AccountRef::clearing(&method(payment)),
            &asset,
            Amount::from_minor(amount),
        );
    let entry = withdraw(conn, entry, payment, &asset, i128::from(amount)).await?;
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Withdraws the disputed amount from the merchant.
pub(super) async fn dispute_opened(
    conn: &mut PgConnection,
    payment: &Payment,
    dispute: &DisputeId,
    amount: i64,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let entry = Entry::new(format!("{dispute}:opened"), EntryKind::DISPUTE)
        .source(dispute.as_str())
        .credit(AccountRef::disputes(), &asset, Amount::from_minor(amount));
    let entry = withdraw(conn, entry, payment, &asset, i128::from(amount)).await?;
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Closes a dispute: the disputed amount leaves `disputes` for the
/// merchant (won: reinstated) or the processor (lost: it goes to the
/// cardholder).
pub(super) async fn dispute_closed(
    conn: &mut PgConnection,
    payment: &Payment,
    dispute: &DisputeId,
    amount: i64,
    won: bool,
) -> Result<(), PaymentError> {
    let asset = asset(payment)?;
    let (step, to) = if won {
        ("won", pending(payment))
    } else {
        ("lost", AccountRef::clearing(&method(payment)))
    };
    let entry = Entry::new(format!("{dispute}:{step}"), EntryKind::DISPUTE)
        .source(dispute.as_str())
        .transfer(
            AccountRef::disputes(),
            to,
            &asset,
            Amount::from_minor(amount),
        );
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// One inclusion of a chain transfer: the row id, and how many times a
/// reorg removed it before (`Transfer::removals` when it is detected or
/// confirmed). A transfer removed by a deep reorg and mined again is a new
/// generation, booked under keys of its own: under the old keys the ledger
/// would take the new booking for a replay of the old one (same content)
/// and post nothing, or refuse it (other content) and stall the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inclusion {
    /// The chain.
    pub chain_id: u64,
    /// `chain_transfers.id`.
    pub transfer_id: i64,
    /// Removals before this inclusion.
    pub generation: u32,
}

impl Inclusion {
    /// `chain:<chain>:<transfer>:<step>`, with `:g<n>` from the second
    /// generation on (the first keeps the key it always had).
    fn key(self, step: &str) -> String {
        let base = format!("chain:{}:{}:{step}", self.chain_id, self.transfer_id);
        match self.generation {
            0 => base,
            n => format!("{base}:g{n}"),
        }
    }
}

/// A confirmed on-chain transfer: it is in the chain's treasury, held in
/// suspense until it is attributed (a complete payment) or decided on
/// (late, wrong asset, unknown reference).
pub(super) async fn crypto_received(
    conn: &mut PgConnection,
    into: AccountRef,
    inclusion: Inclusion,
    asset: &AssetCode,
    amount: Amount,
    payment: Option<&str>,
) -> Result<(), PaymentError> {
    let mut entry = Entry::new(
        inclusion.key("received"),
        EntryKind::custom("crypto_received"),
    )
    .transfer(into, AccountRef::suspense(), asset, amount);
    if let Some(payment) = payment {
        entry = entry.source(payment);
    }
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// A crypto payment whose confirmed transfers reached its quote: the quote
/// goes to the merchant (less the fee), an overpayment's surplus to
/// `refunds_payable`. Keyed by the inclusion whose confirmation completed
/// it: a payment a deep reorg took back completes again with another.
pub(super) async fn crypto_completed(
    conn: &mut PgConnection,
    payment: &Payment,
    by: Inclusion,
    asset: &AssetCode,
    amounts: CryptoAmounts,
) -> Result<(), PaymentError> {
    let CryptoAmounts {
        confirmed,
        expected,
        surplus,
    } = amounts;
    let rule = ledger::fee_rule(conn, &payment.merchant_id, "crypto", asset).await?;
    let fee = rule.fee_for(expected);
    let mut entry = Entry::new(
        format!(
            "{}:crypto_complete:{}:g{}",
            payment.id, by.transfer_id, by.generation
        ),
        EntryKind::PAYMENT,
    )
    .source(payment.id.as_str())
    .debit(AccountRef::suspense(), asset, confirmed)
    .credit(pending(payment), asset, expected)
    .fee(pending(payment), asset, fee);
    if surplus.is_positive() {
        entry = entry.credit(AccountRef::refunds_payable(), asset, surplus);
    }
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// Amounts of a completed crypto payment, in base units of its asset.
#[derive(Debug, Clone, Copy)]
pub(super) struct CryptoAmounts {
    /// Confirmed in total.
    pub confirmed: Amount,
    /// The quote.
    pub expected: Amount,
    /// `confirmed - expected`.
    pub surplus: Amount,
}

/// A confirmed transfer a deep reorg removed: it never reached the
/// treasury. Taken back from the merchant when it completed a payment,
/// else from suspense. `inclusion` is the one reversed (its generation is
/// the removals before this one).
pub(super) async fn crypto_reversed(
    conn: &mut PgConnection,
    from: AccountRef,
    inclusion: Inclusion,
    asset: &AssetCode,
    amount: Amount,
    completed: Option<&Payment>,
) -> Result<(), PaymentError> {
    let entry = Entry::new(inclusion.key("reversed"), EntryKind::CHAIN_REVERSAL)
        .credit(from, asset, amount);
    let entry = match completed {
        Some(payment) => {
            withdraw(
                conn,
                entry.source(payment.id.as_str()),
                payment,
                asset,
                amount.units(),
            )
            .await?
        }
        None => entry.debit(AccountRef::suspense(), asset, amount),
    };
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// A crypto refund was requested: the asset leaves the merchant for
/// `refunds_payable`, owed to the customer until the hot wallet's transfer
/// is confirmed.
pub(super) async fn crypto_refund(
    conn: &mut PgConnection,
    payment: &Payment,
    refund: &RefundId,
    asset: &AssetCode,
    units: Amount,
) -> Result<(), PaymentError> {
    let entry = Entry::new(format!("{refund}:refund"), EntryKind::REFUND)
        .source(refund.as_str())
        .credit(AccountRef::refunds_payable(), asset, units);
    let entry = withdraw(conn, entry, payment, asset, units.units()).await?;
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// The refund's transfer is confirmed: it left the treasury.
pub(super) async fn crypto_refund_sent(
    conn: &mut PgConnection,
    refund: &RefundId,
    chain_id: u64,
    asset: &AssetCode,
    units: Amount,
) -> Result<(), PaymentError> {
    let entry = Entry::new(format!("{refund}:sent"), EntryKind::custom("refund_sent"))
        .source(refund.as_str())
        .transfer(
            AccountRef::refunds_payable(),
            AccountRef::treasury(chain_id),
            asset,
            units,
        );
    ledger::post(conn, &entry).await?;
    Ok(())
}

/// The refund's transfer reverted: the asset goes back to the merchant.
pub(super) async fn crypto_refund_failed(
    conn: &mut PgConnection,
    payment: &Payment,
    refund: &RefundId,
    asset: &AssetCode,
    units: Amount,
) -> Result<(), PaymentError> {
    let entry = Entry::new(format!("{refund}:failed"), EntryKind::REFUND_FAILURE)
        .source(refund.as_str())
        .transfer(
            AccountRef::refunds_payable(),
            pending(payment),
            asset,
            units,
        );
    ledger::post(conn, &entry).await?;
    Ok(())
}
