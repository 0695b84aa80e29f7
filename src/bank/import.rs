//! Importing a bank file: parse, check it is for this gateway, then book
//! it in one transaction (all of it or nothing), serialised per account.
//!
//! Each booked entry is inserted under the bank's identity of it
//! (`bank_entries_identity`: account, booking date, bank reference) with
//! `ON CONFLICT DO NOTHING`: an entry already there — the same file again,
//! or a camt.054 entry the camt.053 reports again — is counted as known and
//! books nothing. Each of its transactions then gets one cash entry on
//! `bank:<account>` (key `bank:<entry id>:<seq>`) and its effect:
//!
//! | transaction | cash entry | effect |
//! |---|---|---|
//! | credit with a payment's RF (else its exact amount, if only one payment fits) | bank → suspense | the payment is paid from suspense, or held (underpaid), or left (late) |
//! | credit matching nothing | bank → suspense | `unmatched_credit` exception |
//! | credit returning one of our transfers | bank → merchant / suspense | transfer `failed` |
//! | debit of one of our transfers (EndToEndId) | transit → bank | transfer `paid` |
//! | debit with a return reason for a payment | clearing / suspense → bank | payment reversed |
//! | other debit | bank_suspense → bank | `unmatched_debit` exception |

use sqlx::PgConnection;
use time::Date;

use super::exceptions::{self, Kind, NewException};
use super::messages::{self, AccountId, BankFile, Direction, Report, StatusReport, Transaction};
use super::rf::CreditorReference;
use super::transfers;
use super::xml::Refusal;
use super::{BankAccount, BankError};
use crate::db::Db;
use crate::ids::PaymentId;
use crate::ledger::{self, AccountRef, Entry, EntryKind};
use crate::money::{Amount, AssetCode, Currency};
use crate::payments::bank as pay;

/// What importing a file did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `camt.053`, `camt.054`, `pain.002`.
    pub kind: String,
    /// GrpHdr/MsgId.
    pub message_id: String,
    /// Entries booked now (transfers rejected, for a pain.002).
    pub booked: usize,
    /// Entries booked by an earlier import.
    pub known: usize,
    /// Entries the bank has not booked yet (skipped).
    pub pending: usize,
    /// One line per transaction booked, for people.
    pub lines: Vec<String>,
}

/// A transaction's facts, for exceptions.
#[derive(Debug, Clone, Copy)]
pub struct TxSource<'a> {
    /// Sender or receiver.
    pub counterparty_name: Option<&'a str>,
    /// Their IBAN.
    pub counterparty_iban: Option<&'a str>,
    /// Remittance information.
    pub remittance: &'a str,
}

/// Imports the file `name` with content `bytes`.
pub async fn import(
    pool: &Db,
    name: &str,
    bytes: &[u8],
    livemode: Option<bool>,
) -> Result<Outcome, BankError> {
    let text = std::str::from_utf8(bytes).map_err(|e| Refusal {
        line: 0,
        field: "(file)".into(),
        reason: format!("the file is not UTF-8 text: {e}"),
    })?;
    let file = messages::parse(text)?;
    let accounts = super::config::registered(pool).await?;
    let livemode = match livemode {
        Some(mode) => mode,
        None => {
            sqlx::query_scalar("SELECT coalesce(bool_or(livemode), false) FROM bank_accounts")
                .fetch_one(pool)
                .await?
        }
    };
    let sha = crate::crypto::sha256(bytes).to_vec();
    match file {
        BankFile::Report(report) => {
            import_report(pool, name, &sha, &report, &accounts, livemode).await
        }
        BankFile::Status(status) => import_status(pool, name, &sha, &status).await,
    }
}

fn account_of<'a>(
    accounts: &'a [BankAccount],
    report: &messages::AccountReport,
) -> Result<&'a BankAccount, Refusal> {
    let found = accounts.iter().find(|a| match &report.account {
        AccountId::Iban(iban) => a.iban.as_deref() == Some(iban.as_str()),
        AccountId::Other(number) => a.account_number.as_deref() == Some(number.as_str()),
    });
    let account = found.ok_or_else(|| {
        let shown = match &report.account {
            AccountId::Iban(i) | AccountId::Other(i) => i.clone(),
        };
        Refusal::at(
            &report.node,
            Some("Acct/Id"),
            format!("{shown} is not one of this gateway's bank accounts ([[bank.accounts]])"),
        )
    })?;
    let currency = account.currency.to_ascii_uppercase();
    if let Some(c) = &report.currency
        && *c != currency
    {
        return Err(Refusal::at(
            &report.node,
            Some("Acct/Ccy"),
            format!("{c}, the account is in {currency}"),
        ));
    }
    for entry in &report.entries {
        if entry.currency != currency {
            return Err(Refusal::at(
                &entry.node,
                Some("Amt/@Ccy"),
                format!("{}, the account is in {currency}", entry.currency),
            ));
        }
    }
    Ok(account)
}

async fn record_file(
    conn: &mut PgConnection,
    kind: &str,
    name: &str,
    sha: &[u8],
    message_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO bank_files (direction, kind, name, sha256, message_id) VALUES ('in', $1, $2, $3, $4) RETURNING id",
    )
    .bind(kind)
    .bind(name)
    .bind(sha)
    .bind(message_id)
    .fetch_one(conn)
    .await
}

fn units(amount: i128) -> Result<i64, BankError> {
    i64::try_from(amount)
        .map_err(|_| BankError::invalid("amount", "an amount too large for a payment"))
}

async fn import_report(
    pool: &Db,
    name: &str,
    sha: &[u8],
    report: &Report,
    accounts: &[BankAccount],
    livemode: bool,
) -> Result<Outcome, BankError> {
    let mut targets = Vec::new();
    for account_report in &report.accounts {
        targets.push(account_of(accounts, account_report)?);
    }
    let mut tx = pool.begin().await?;
    let mut ids: Vec<&str> = targets.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('epg.bank:' || $1, 0))")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let file_id = record_file(
        &mut tx,
        &report.kind.to_string(),
        name,
        sha,
        &report.message_id,
    )
    .await?;
    let mut outcome = Outcome {
        kind: report.kind.to_string(),
        message_id: report.message_id.clone(),
        ..Outcome::default()
    };
    for (account_report, account) in report.accounts.iter().zip(&targets) {
        let asset = AssetCode::fiat(
            Currency::parse(&account.currency)
                .map_err(|e| BankError::invalid("currency", e.to_string()))?,
        );
        if let (Some(opening), Some(closing)) = (account_report.opening, account_report.closing) {
            statement(
                &mut tx,
                account,
                &asset,
                &account_report.id,
                file_id,
                opening,
                closing,
            )
            .await?;
        }
        for entry in &account_report.entries {
            if !entry.booked {
                outcome.pending += 1;
                continue;
            }
            let (Some(date), Some(bank_ref)) = (entry.booking_date, entry.bank_ref.as_deref())
            else {
                continue;
            };
            let entry_id: Option<i64> = sqlx::query_scalar(
                r#"INSERT INTO bank_entries (account_id, booking_date, bank_ref, file_id, direction, amount, value_date)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT ON CONSTRAINT bank_entries_identity DO NOTHING RETURNING id"#,
            )
            .bind(&account.id)
            .bind(date)
            .bind(bank_ref)
            .bind(file_id)
            .bind(entry.direction.to_string())
            .bind(rust_decimal::Decimal::from_i128_with_scale(entry.amount, 0))
            .bind(entry.value_date)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(entry_id) = entry_id else {
                outcome.known += 1;
                continue;
            };
            outcome.booked += 1;
            for (i, t) in entry.transactions.iter().enumerate() {
                let seq = i16::try_from(i + 1).unwrap_or(i16::MAX);
                let line = book(
                    &mut tx,
                    account,
                    &asset,
                    entry.direction,
                    entry_id,
                    seq,
                    t,
                    livemode,
                )
                .await?;
                outcome
                    .lines
                    .push(format!("{} {bank_ref}/{seq}: {line}", date));
            }
        }
    }
    sqlx::query("UPDATE bank_files SET booked = $2, known = $3, pending = $4 WHERE id = $1")
        .bind(file_id)
        .bind(i32::try_from(outcome.booked).unwrap_or(i32::MAX))
        .bind(i32::try_from(outcome.known).unwrap_or(i32::MAX))
        .bind(i32::try_from(outcome.pending).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Records a statement's balances; the first statement of an account sets
/// its opening balance in the ledger (less what earlier notifications of
/// that day or later already booked).
#[allow(clippy::too_many_arguments)]
async fn statement(
    conn: &mut PgConnection,
    account: &BankAccount,
    asset: &AssetCode,
    statement_id: &str,
    file_id: i64,
    opening: messages::Balance,
    closing: messages::Balance,
) -> Result<(), BankError> {
    sqlx::query(
        r#"INSERT INTO bank_statements (account_id, statement_id, file_id, opening_date, opening_balance,
               closing_date, closing_balance)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT ON CONSTRAINT bank_statements_once DO NOTHING"#,
    )
    .bind(&account.id)
    .bind(statement_id)
    .bind(file_id)
    .bind(opening.date)
    .bind(rust_decimal::Decimal::from_i128_with_scale(opening.amount, 0))
    .bind(closing.date)
    .bind(rust_decimal::Decimal::from_i128_with_scale(closing.amount, 0))
    .execute(&mut *conn)
    .await?;
    let has_opening: bool = sqlx::query_scalar(
        "SELECT opening_date IS NOT NULL FROM bank_accounts WHERE id = $1 FOR UPDATE",
    )
    .bind(&account.id)
    .fetch_one(&mut *conn)
    .await?;
    if has_opening {
        return Ok(());
    }
    sqlx::query("UPDATE bank_accounts SET opening_date = $2, opening_balance = $3 WHERE id = $1")
        .bind(&account.id)
        .bind(opening.date)
        .bind(rust_decimal::Decimal::from_i128_with_scale(
            opening.amount,
            0,
        ))
        .execute(&mut *conn)
        .await?;
    // Entries booked before this statement was read, dated before its
    // opening, are already part of its opening balance.
    let before: rust_decimal::Decimal = sqlx::query_scalar(
        r#"SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0)
             FROM bank_entries WHERE account_id = $1 AND booking_date < $2"#,
    )
    .bind(&account.id)
    .bind(opening.date)
    .fetch_one(&mut *conn)
    .await?;
    let before = before.trunc();
    let before = before.mantissa() / 10i128.pow(before.scale());
    let baseline = opening.amount - before;
    if baseline != 0 {
        let amount =
            Amount::new(baseline.abs()).map_err(|e| BankError::invalid("Bal", e.to_string()))?;
        let (debit, credit) = if baseline > 0 {
            (
                AccountRef::bank(&account.id),
                AccountRef::bank_opening(&account.id),
            )
        } else {
            (
                AccountRef::bank_opening(&account.id),
                AccountRef::bank(&account.id),
            )
        };
        ledger::post(
            conn,
            &Entry::new(
                format!("bank:{}:opening", account.id),
                EntryKind::custom("bank_opening"),
            )
            .description(format!(
                "opening balance of {} on {}",
                account.id, opening.date
            ))
            .transfer(debit, credit, asset, amount),
        )
        .await?;
    }
    Ok(())
}

/// The payment a credit is for: the first RF reference of its remittance
/// information that names one, else the only open payment of its amount.
async fn match_payment(
    conn: &mut PgConnection,
    currency: &str,
    t: &Transaction,
) -> Result<(Option<PaymentId>, &'static str), BankError> {
    for reference in CreditorReference::find_all(&t.remittance) {
        let found: Option<PaymentId> =
            sqlx::query_scalar("SELECT payment_id FROM bank_references WHERE reference = $1")
                .bind(reference.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_some() {
            return Ok((found, "reference"));
        }
    }
    let candidates = pay::open_with_amount(conn, currency, units(t.amount)?).await?;
    if candidates.len() == 1 {
        return Ok((candidates.into_iter().next(), "amount"));
    }
    Ok((None, "none"))
}

/// Posts the cash entry of a transaction; returns its ledger entry id.
#[allow(clippy::too_many_arguments)]
async fn cash(
    conn: &mut PgConnection,
    key: &str,
    kind: &'static str,
    debit: AccountRef,
    credit: AccountRef,
    asset: &AssetCode,
    amount: Amount,
    source: Option<&str>,
) -> Result<i64, BankError> {
    let mut entry =
        Entry::new(key.to_owned(), EntryKind::custom(kind)).transfer(debit, credit, asset, amount);
    if let Some(source) = source {
        entry = entry.source(source.to_owned());
    }
    Ok(ledger::post(conn, &entry).await?.seq)
}

#[allow(clippy::too_many_arguments)]
async fn record_tx(
    conn: &mut PgConnection,
    entry_id: i64,
    seq: i16,
    t: &Transaction,
    booking: &str,
    payment: Option<&str>,
    transfer: Option<&str>,
    ledger_entry: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"INSERT INTO bank_transactions (entry_id, seq, amount, end_to_end_id, remittance,
               counterparty_name, counterparty_iban, return_reason, booking, payment_id, transfer_id,
               ledger_entry_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"#,
    )
    .bind(entry_id)
    .bind(seq)
    .bind(rust_decimal::Decimal::from_i128_with_scale(t.amount, 0))
    .bind(&t.end_to_end_id)
    .bind(&t.remittance)
    .bind(&t.counterparty_name)
    .bind(&t.counterparty_iban)
    .bind(&t.return_reason)
    .bind(booking)
    .bind(payment)
    .bind(transfer)
    .bind(ledger_entry)
    .execute(conn)
    .await?;
    Ok(())
}

/// Books one transaction; returns a line for people.
#[allow(clippy::too_many_arguments)]
async fn book(
    conn: &mut PgConnection,
    account: &BankAccount,
    asset: &AssetCode,
    direction: Direction,
    entry_id: i64,
    seq: i16,
    t: &Transaction,
    livemode: bool,
) -> Result<String, BankError> {
    let key = format!("bank:{entry_id}:{seq}");
    let amount = Amount::new(t.amount).map_err(|e| BankError::invalid("Amt", e.to_string()))?;
    let bank = AccountRef::bank(&account.id);
    let shown = format!(
        "{} {} {}",
        direction,
        super::decimal(t.amount, super::exponent(&account.currency)),
        account.currency.to_ascii_uppercase()
    );
    let source = TxSource {
        counterparty_name: t.counterparty_name.as_deref(),
        counterparty_iban: t.counterparty_iban.as_deref(),
        remittance: &t.remittance,
    };
    let exception = |kind: Kind, detail: String| NewException {
        kind,
        account_id: &account.id,
        currency: &account.currency,
        amount: i64::try_from(t.amount).unwrap_or(i64::MAX),
        merchant_id: None,
        payment_id: None,
        source: Some((entry_id, seq)),
        counterparty_name: t.counterparty_name.as_deref(),
        counterparty_iban: t.counterparty_iban.as_deref(),
        remittance: Some(&t.remittance),
        detail,
    };
    // One of our transfers: its debit, or its return.
    if let Some(e2e) = t.end_to_end_id.as_deref()
        && let Some(transfer) = transfers::lock(conn, e2e).await?
    {
        match (direction, transfer.status.as_str()) {
            (Direction::Debit, "in_transit") if i128::from(transfer.amount) == t.amount => {
                let id = cash(
                    conn,
                    &key,
                    "bank_transfer_sent",
                    transfers::transit_account(&transfer),
                    bank,
                    asset,
                    amount,
                    Some(&transfer.id),
                )
                .await?;
                record_tx(
                    conn,
                    entry_id,
                    seq,
                    t,
                    "transfer_sent",
                    transfer.payment_id.as_deref(),
                    Some(&transfer.id),
                    id,
                )
                .await?;
                transfers::paid(conn, &transfer).await?;
                return Ok(format!("{shown}: {} {} paid", transfer.kind, transfer.id));
            }
            (Direction::Credit, "paid") if i128::from(transfer.amount) == t.amount => {
                let reason = t.return_reason.clone().unwrap_or_else(|| "returned".into());
                transfers::failed(
                    conn,
                    &transfer,
                    &reason,
                    bank.clone(),
                    Some((entry_id, seq)),
                )
                .await?;
                let id: i64 = sqlx::query_scalar("SELECT id FROM ledger_entries WHERE key = $1")
                    .bind(format!("{}:failed", transfer.id))
                    .fetch_one(&mut *conn)
                    .await?;
                record_tx(
                    conn,
                    entry_id,
                    seq,
                    t,
                    "transfer_returned",
                    transfer.payment_id.as_deref(),
                    Some(&transfer.id),
                    id,
                )
                .await?;
                return Ok(format!(
                    "{shown}: {} {} returned ({reason}), failed",
                    transfer.kind, transfer.id
                ));
            }
            _ => {}
        }
    }
    match direction {
        Direction::Credit => {
            let (payment, how) = match_payment(conn, &account.currency, t).await?;
            let id = cash(
                conn,
                &key,
                "bank_credit",
                bank,
                AccountRef::suspense(),
                asset,
                amount,
                None,
            )
            .await?;
            let Some(payment) = payment else {
                record_tx(conn, entry_id, seq, t, "unmatched", None, None, id).await?;
                let opened = exceptions::open(
                    conn,
                    &exception(
                        Kind::UnmatchedCredit,
                        "no RF reference of a payment, and no single open payment of this amount"
                            .into(),
                    ),
                )
                .await?;
                return Ok(format!(
                    "{shown}: matched nothing, in suspense ({})",
                    opened.id
                ));
            };
            let (paid, credited) = pay::credit(conn, &payment, units(t.amount)?, livemode).await?;
            let booking = match credited {
                pay::Credited::Succeeded { .. } => "payment",
                pay::Credited::Underpaid { .. } => "partial",
                pay::Credited::Late => "late",
            };
            record_tx(
                conn,
                entry_id,
                seq,
                t,
                booking,
                Some(payment.as_str()),
                None,
                id,
            )
            .await?;
            if credited == pay::Credited::Late {
                let mut new = exception(
                    Kind::PaidLate,
                    format!("{payment} is {} and takes no more money", paid.status),
                );
                new.merchant_id = Some(&paid.merchant_id);
                new.payment_id = Some(&paid.id);
                let opened = exceptions::open(conn, &new).await?;
                return Ok(format!(
                    "{shown}: {payment} (by {how}) paid late, in suspense ({})",
                    opened.id
                ));
            }
            exceptions::after_credit(
                conn,
                &account.id,
                &paid,
                &credited,
                Some((&source, (entry_id, seq))),
            )
            .await?;
            Ok(match credited {
                pay::Credited::Succeeded { surplus: 0 } => {
                    format!("{shown}: {payment} (by {how}) succeeded")
                }
                pay::Credited::Succeeded { surplus } => {
                    format!("{shown}: {payment} (by {how}) succeeded, overpaid by {surplus}")
                }
                _ => format!("{shown}: {payment} (by {how}) underpaid, held in suspense"),
            })
        }
        Direction::Debit => {
            if let Some(reason) = t.return_reason.as_deref() {
                let (payment, _) = match_payment(conn, &account.currency, t).await?;
                if let Some(payment) = payment
                    && let Some((returned, how)) =
                        pay::returned(conn, &payment, units(t.amount)?, reason, livemode).await?
                {
                    let from = match how {
                        pay::Returned::Reversed => AccountRef::clearing("bank_transfer"),
                        pay::Returned::FromSuspense => AccountRef::suspense(),
                    };
                    let id = cash(
                        conn,
                        &key,
                        "bank_return",
                        from,
                        bank,
                        asset,
                        amount,
                        Some(returned.id.as_str()),
                    )
                    .await?;
                    record_tx(
                        conn,
                        entry_id,
                        seq,
                        t,
                        "payment_return",
                        Some(payment.as_str()),
                        None,
                        id,
                    )
                    .await?;
                    return Ok(format!(
                        "{shown}: {payment} returned by the bank ({reason})"
                    ));
                }
            }
            let id = cash(
                conn,
                &key,
                "bank_debit",
                AccountRef::bank_suspense(),
                bank,
                asset,
                amount,
                None,
            )
            .await?;
            record_tx(conn, entry_id, seq, t, "unmatched_debit", None, None, id).await?;
            let opened = exceptions::open(
                conn,
                &exception(
                    Kind::UnmatchedDebit,
                    "a debit no transfer or return of ours explains".into(),
                ),
            )
            .await?;
            Ok(format!("{shown}: unexplained debit ({})", opened.id))
        }
    }
}

async fn import_status(
    pool: &Db,
    name: &str,
    sha: &[u8],
    status: &StatusReport,
) -> Result<Outcome, BankError> {
    let mut tx = pool.begin().await?;
    let ours = transfers::of_message(&mut tx, &status.original_message_id).await?;
    if ours.is_empty() {
        return Err(Refusal::at(
            &status.node,
            Some("OrgnlGrpInfAndSts/OrgnlMsgId"),
            format!(
                "{} is not a pain.001 this node sent",
                status.original_message_id
            ),
        )
        .into());
    }
    let rejected: Vec<(String, String)> = match &status.group_rejected {
        Some(reason) => ours.iter().map(|id| (id.clone(), reason.clone())).collect(),
        None => status.rejected.clone(),
    };
    for (id, _) in &rejected {
        if !ours.contains(id) {
            return Err(Refusal::at(
                &status.node,
                Some("OrgnlPmtInfAndSts/TxInfAndSts/OrgnlEndToEndId"),
                format!("{id} is not a transfer of {}", status.original_message_id),
            )
            .into());
        }
    }
    record_file(&mut tx, "pain.002", name, sha, &status.message_id).await?;
    let mut outcome = Outcome {
        kind: "pain.002".into(),
        message_id: status.message_id.clone(),
        ..Outcome::default()
    };
    for (id, reason) in &rejected {
        let Some(transfer) = transfers::lock(&mut tx, id).await? else {
            continue;
        };
        if transfer.status != "in_transit" {
            outcome.known += 1;
            continue;
        }
        let transit = transfers::transit_account(&transfer);
        transfers::failed(&mut tx, &transfer, reason, transit, None).await?;
        outcome.booked += 1;
        outcome.lines.push(format!(
            "{} {id} rejected ({reason}): failed, money back",
            transfer.kind
        ));
    }
    tx.commit().await?;
    Ok(outcome)
}

/// The date a sample statement is booked on.
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}
