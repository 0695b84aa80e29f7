//! Credit transfers the gateway sends: a settlement's fiat payouts, refunds
//! of bank-transfer payments, and money the reconciliation desk sends back.
//!
//! A transfer is queued (`pending`) in the transaction that decides it,
//! with its money already moved to where it waits: `payouts_in_transit`
//! (payout), `clearing:bank_transfer` (refund), `refunds_payable` (desk).
//! `epg bank payouts export` (or the node, into `bank.outbox_dir`) writes
//! every pending transfer into pain.001.001.09 files, one per payout
//! account and execution date, and marks them `in_transit` in the same
//! transaction that stores the file's content; the file is then written
//! out (again by the next run if that failed — same content, same MsgId,
//! which banks deduplicate). The statement debit of a transfer
//! (EndToEndId) books it `paid`; a pain.002 rejection, or a return after
//! it was paid, books it `failed` with its money back: to the merchant's
//! `available` for a payout (the next batch pays it again), to suspense
//! with an exception for the others.
//!
//! Creditor accounts are sealed (`Purpose::BankAccounts`) and shown masked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};

use super::exceptions::{Exception, Kind, NewException};
use super::{BankError, pain001};
use crate::crypto::Sealer;
use crate::db::Db;
use crate::ids::{BankTransferId, MerchantId, PaymentId};
use crate::ledger::{self, AccountRef, Entry, EntryKind, MerchantAccount};
use crate::money::{Amount, AssetCode, Currency};

/// Where a transfer goes, as sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditorAccount {
    /// IBAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// BIC of its bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    /// ABA routing number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_number: Option<String>,
    /// Account number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
}

impl CreditorAccount {
    /// The masked form.
    pub fn masked(&self) -> String {
        match (&self.iban, &self.account_number) {
            (Some(iban), _) => super::exceptions::mask_account(iban),
            (None, Some(number)) => super::exceptions::mask_account(number),
            _ => "****".into(),
        }
    }
}

fn seal(sealer: &Sealer, account: &CreditorAccount, context: &str) -> Result<Vec<u8>, BankError> {
    let json = serde_json::to_vec(account)
        .map_err(|e| sealing_failed("bank details cannot be sealed", e))?;
    Ok(sealer.seal(&json, context.as_bytes()))
}

fn open_sealed(
    sealer: &Sealer,
    sealed: &[u8],
    context: &str,
) -> Result<CreditorAccount, BankError> {
    let json = sealer
        .open(sealed, context.as_bytes())
        .map_err(|e| sealing_failed("sealed bank details cannot be opened", e))?;
    serde_json::from_slice(&json)
        .map_err(|e| sealing_failed("sealed bank details cannot be read", e))
}

fn sealing_failed(
    what: &'static str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> BankError {
    BankError::Sealed {
        what,
        source: source.into(),
    }
}

/// What a merchant's sealed bank account is bound to (also used by
/// [`crate::rotation`] to re-seal it).
pub(crate) fn merchant_context(merchant: &MerchantId, currency: &str) -> String {
    format!("merchant_bank_account:{merchant}:{currency}")
}

/// Sets where `merchant`'s payouts in `currency` go; returns the masked
/// account.
pub async fn set_merchant_account(
    pool: &Db,
    sealer: &Sealer,
    merchant: &MerchantId,
    currency: &str,
    holder: &str,
    account: &CreditorAccount,
) -> Result<String, BankError> {
    let context = merchant_context(merchant, currency);
    let masked = account.masked();
    sqlx::query(
        r#"INSERT INTO merchant_bank_accounts (merchant_id, currency, holder, sealed, masked)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (merchant_id, currency) DO UPDATE
               SET holder = $3, sealed = $4, masked = $5, updated_at = now()"#,
    )
    .bind(merchant.as_str())
    .bind(currency)
    .bind(holder)
    .bind(seal(sealer, account, &context)?)
    .bind(&masked)
    .execute(pool)
    .await?;
    Ok(masked)
}

/// A merchant's payout accounts, masked: (currency, holder, masked).
pub async fn merchant_accounts(
    pool: &Db,
    merchant: &MerchantId,
) -> Result<Vec<(String, String, String)>, BankError> {
    Ok(sqlx::query_as(
        "SELECT currency, holder, masked FROM merchant_bank_accounts WHERE merchant_id = $1 ORDER BY currency",
    )
    .bind(merchant.as_str())
    .fetch_all(pool)
    .await?)
}

/// Whether a fiat payout of `merchant` in `currency` goes through the
/// gateway's bank: a payout account for the currency and the merchant's
/// bank account in it.
pub async fn can_pay_out(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    currency: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        r#"SELECT EXISTS (SELECT 1 FROM bank_accounts WHERE payout AND currency = $2)
              AND EXISTS (SELECT 1 FROM merchant_bank_accounts WHERE merchant_id = $1 AND currency = $2)"#,
    )
    .bind(merchant.as_str())
    .bind(currency)
    .fetch_one(conn)
    .await
}

/// Queues the bank transfer of a fiat payout, inside the settlement's
/// transaction, when the gateway has a payout account for its currency
/// and the merchant a bank account; `false` (nothing queued) otherwise.
pub async fn queue_payout(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    payout: &str,
    currency: &str,
    amount: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        r#"INSERT INTO bank_transfers_out (id, kind, payout_id, merchant_id, account_id, currency,
               amount, creditor_name, creditor_sealed, creditor_masked)
           SELECT $1, 'payout', $2, $3, a.id, $4, $5, m.holder,
                  -- The merchant's sealed account, bound to its own context:
                  -- `creditor_sealed` of a payout opens with that context.
                  m.sealed, m.masked
             FROM bank_accounts a, merchant_bank_accounts m
            WHERE a.payout AND a.currency = $4 AND m.merchant_id = $3 AND m.currency = $4"#,
    )
    .bind(BankTransferId::generate().as_str())
    .bind(payout)
    .bind(merchant.as_str())
    .bind(currency)
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Queues the desk's return of `exception`'s money to its sender.
pub async fn queue_return(
    conn: &mut PgConnection,
    exception: &Exception,
    name: &str,
    iban: &str,
    sealer: &Sealer,
) -> Result<String, BankError> {
    let id = BankTransferId::generate();
    let account = CreditorAccount {
        iban: Some(iban.to_owned()),
        bic: None,
        routing_number: None,
        account_number: None,
    };
    let from = payout_account(conn, &exception.currency)
        .await?
        .unwrap_or_else(|| exception.account_id.clone());
    sqlx::query(
        r#"INSERT INTO bank_transfers_out (id, kind, exception_id, merchant_id, payment_id,
               account_id, currency, amount, creditor_name, creditor_sealed, creditor_masked)
           VALUES ($1, 'return', $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
    )
    .bind(id.as_str())
    .bind(&exception.id)
    .bind(&exception.merchant_id)
    .bind(&exception.payment_id)
    .bind(from)
    .bind(&exception.currency)
    .bind(exception.amount)
    .bind(name)
    .bind(seal(sealer, &account, id.as_str())?)
    .bind(account.masked())
    .execute(conn)
    .await?;
    Ok(id.to_string())
}

async fn payout_account(
    conn: &mut PgConnection,
    currency: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM bank_accounts WHERE payout AND currency = $1")
        .bind(currency)
        .fetch_optional(conn)
        .await
}

/// Queues the refund of a bank-transfer payment to the account it was paid
/// from (called by the processor with the refund operation's key; a
/// repeated key queues nothing more).
pub async fn queue_refund(
    pool: &Db,
    sealer: &Sealer,
    key: &str,
    reference: &str,
    amount: i64,
) -> Result<(), BankError> {
    let mut tx = pool.begin().await?;
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM bank_transfers_out WHERE refund_key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
    if known.is_some() {
        return Ok(());
    }
    let payer: Option<(String, String, String, Option<String>, String)> = sqlx::query_as(
        r#"SELECT r.payment_id, p.merchant_id, p.currency, t.counterparty_iban,
                  coalesce(t.counterparty_name, 'Payer')
             FROM bank_references r JOIN payments p ON p.id = r.payment_id
             JOIN bank_transactions t ON t.payment_id = r.payment_id
            WHERE r.reference = $1 AND t.counterparty_iban IS NOT NULL
            ORDER BY t.entry_id LIMIT 1"#,
    )
    .bind(reference)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((payment, merchant, currency, Some(iban), name)) = payer else {
        return Err(BankError::state(
            "payer_account_unknown",
            "The bank statements do not say which account paid this payment; it cannot be refunded by transfer.",
        ));
    };
    let id = BankTransferId::generate();
    let account = CreditorAccount {
        iban: Some(iban),
        bic: None,
        routing_number: None,
        account_number: None,
    };
    let from = payout_account(&mut tx, &currency).await?.ok_or_else(|| {
        BankError::state(
            "payout_account_missing",
            format!("No [[bank.accounts]] with payout = true for {currency}."),
        )
    })?;
    sqlx::query(
        r#"INSERT INTO bank_transfers_out (id, kind, refund_key, merchant_id, payment_id, account_id,
               currency, amount, creditor_name, creditor_sealed, creditor_masked)
           VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (refund_key) DO NOTHING"#,
    )
    .bind(id.as_str())
    .bind(key)
    .bind(merchant)
    .bind(payment)
    .bind(from)
    .bind(currency)
    .bind(amount)
    .bind(name)
    .bind(seal(sealer, &account, id.as_str())?)
    .bind(account.masked())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A transfer row, as the import books it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Transfer {
    /// `btr_…` (EndToEndId).
    pub id: String,
    /// `payout` / `refund` / `return`.
    pub kind: String,
    /// The payout.
    pub payout_id: Option<String>,
    /// The merchant.
    pub merchant_id: Option<String>,
    /// The payment.
    pub payment_id: Option<String>,
    /// Debtor account (ours).
    pub account_id: String,
    /// Currency.
    pub currency: String,
    /// Smallest units.
    pub amount: i64,
    /// Status.
    pub status: String,
    /// Creditor, masked.
    pub creditor_masked: String,
    /// Creditor name.
    pub creditor_name: String,
}

const TRANSFER_COLUMNS: &str = "id, kind, payout_id, merchant_id, payment_id, account_id, currency, \
    amount, status, creditor_masked, creditor_name";

/// The transfer with EndToEndId `id`, locked.
pub async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<Transfer>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM bank_transfers_out WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The ledger account a transfer's money waits in until its debit.
pub fn transit_account(transfer: &Transfer) -> AccountRef {
    match transfer.kind.as_str() {
        "payout" => AccountRef::payouts_in_transit(),
        "refund" => AccountRef::clearing("bank_transfer"),
        _ => AccountRef::refunds_payable(),
    }
}

fn asset(currency: &str) -> Result<AssetCode, BankError> {
    Currency::parse(currency)
        .map(AssetCode::fiat)
        .map_err(|e| BankError::invalid("currency", e.to_string()))
}

async fn set_status(
    conn: &mut PgConnection,
    transfer: &Transfer,
    status: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bank_transfers_out SET status = $2, failure_reason = $3, updated_at = now() WHERE id = $1",
    )
    .bind(&transfer.id)
    .bind(status)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    if let Some(payout) = &transfer.payout_id {
        sqlx::query("UPDATE payouts SET status = $2 WHERE id = $1")
            .bind(payout)
            .bind(status)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The transfer's debit was booked (`cash` entry written by the caller).
pub async fn paid(conn: &mut PgConnection, transfer: &Transfer) -> Result<(), BankError> {
    set_status(conn, transfer, "paid", None).await?;
    Ok(())
}

/// The transfer failed: rejected before it left (`returned = false`: its
/// money is still in transit) or returned after it was paid (`true`: it is
/// back in the bank; the caller booked the cash into `bank:<account>` and
/// passes that entry's counter account here as `from`). Its money goes back
/// to the merchant (payout) or to suspense with an exception.
pub async fn failed(
    conn: &mut PgConnection,
    transfer: &Transfer,
    reason: &str,
    from: AccountRef,
    source: Option<(i64, i16)>,
) -> Result<(), BankError> {
    let asset = asset(&transfer.currency)?;
    let amount = Amount::from_minor(transfer.amount);
    let key = format!("{}:failed", transfer.id);
    if transfer.kind == "payout" {
        let merchant = transfer
            .merchant_id
            .as_deref()
            .and_then(|m| MerchantId::parse(m).ok())
            .ok_or_else(|| BankError::state("transfer_corrupt", "a payout without its merchant"))?;
        ledger::post(
            conn,
            &Entry::new(key, EntryKind::PAYOUT_FAILURE)
                .source(transfer.payout_id.clone().unwrap_or_default())
                .description(format!("bank: {reason}"))
                .transfer(
                    from,
                    AccountRef::merchant(&merchant, MerchantAccount::Available),
                    &asset,
                    amount,
                ),
        )
        .await?;
    } else {
        ledger::post(
            conn,
            &Entry::new(key, EntryKind::custom("bank_transfer_failed"))
                .source(transfer.id.clone())
                .description(format!("bank: {reason}"))
                .transfer(from, AccountRef::suspense(), &asset, amount),
        )
        .await?;
        let merchant = transfer
            .merchant_id
            .as_deref()
            .and_then(|m| MerchantId::parse(m).ok());
        let payment = transfer
            .payment_id
            .as_deref()
            .and_then(|p| PaymentId::parse(p).ok());
        super::exceptions::open(
            conn,
            &NewException {
                kind: Kind::TransferFailed,
                account_id: &transfer.account_id,
                currency: &transfer.currency,
                amount: transfer.amount,
                merchant_id: merchant.as_ref(),
                payment_id: payment.as_ref(),
                source,
                counterparty_name: Some(&transfer.creditor_name),
                counterparty_iban: None,
                remittance: None,
                detail: format!(
                    "our {} transfer {} to {} failed ({reason}); its money is back in suspense",
                    transfer.kind, transfer.id, transfer.creditor_masked
                ),
            },
        )
        .await?;
    }
    set_status(conn, transfer, "failed", Some(reason)).await?;
    Ok(())
}

/// A pain.001 written.
#[derive(Debug, Clone)]
pub struct Exported {
    /// GrpHdr/MsgId.
    pub message_id: String,
    /// The debtor account.
    pub account_id: String,
    /// Transfers in it.
    pub transfers: usize,
    /// Where it was written.
    pub path: PathBuf,
}

#[derive(Debug, sqlx::FromRow)]
struct PendingRow {
    id: String,
    kind: String,
    payout_id: Option<String>,
    merchant_id: Option<String>,
    currency: String,
    amount: i64,
    creditor_name: String,
    creditor_sealed: Vec<u8>,
}

/// Exports every pending transfer into pain.001 files in `dir`, one per
/// payout account, executed on `execution_date`; also writes out files
/// exported earlier whose writing did not finish.
pub async fn export(
    pool: &Db,
    sealer: &Sealer,
    execution_date: Date,
    dir: &Path,
) -> Result<Vec<Exported>, BankError> {
    let accounts = super::config::registered(pool).await?;
    for account in &accounts {
        let mut tx = pool.begin().await?;
        let rows: Vec<PendingRow> = sqlx::query_as(
            r#"SELECT id, kind, payout_id, merchant_id, currency, amount, creditor_name, creditor_sealed
                 FROM bank_transfers_out WHERE account_id = $1 AND status = 'pending'
                ORDER BY created_at, id FOR UPDATE SKIP LOCKED"#,
        )
        .bind(&account.id)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for row in &rows {
            let context = match (&row.kind[..], &row.merchant_id) {
                ("payout", Some(m)) => format!("merchant_bank_account:{m}:{}", row.currency),
                _ => row.id.clone(),
            };
            let creditor = open_sealed(sealer, &row.creditor_sealed, &context)?;
            lines.push(pain001::Line {
                end_to_end_id: row.id.clone(),
                amount: i128::from(row.amount),
                creditor_name: row.creditor_name.clone(),
                creditor,
                remittance: match &row.payout_id {
                    Some(p) => format!("E-PG payout {p}"),
                    None => format!("E-PG {} {}", row.kind, row.id),
                },
            });
        }
        let now = OffsetDateTime::now_utc();
        let message_id = format!(
            "EPG{}{}",
            now.unix_timestamp(),
            crate::ids::random_base62(8).to_uppercase()
        );
        let xml = pain001::write(&pain001::File {
            message_id: message_id.clone(),
            created_at: now,
            execution_date,
            debtor: account.clone(),
            lines,
        })
        .map_err(|e| sealing_failed("the pain.001 file cannot be written", e))?;
        let file_id: i64 = sqlx::query_scalar(
            r#"INSERT INTO bank_files (direction, kind, name, sha256, message_id, content, booked)
               VALUES ('out', 'pain.001', $1, $2, $3, $4, $5) RETURNING id"#,
        )
        .bind(format!("pain001_{message_id}.xml"))
        .bind(crate::crypto::sha256(xml.as_bytes()).to_vec())
        .bind(&message_id)
        .bind(&xml)
        .bind(i32::try_from(rows.len()).unwrap_or(i32::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        sqlx::query(
            r#"UPDATE bank_transfers_out SET status = 'in_transit', file_id = $2, execution_date = $3,
                   updated_at = now() WHERE id = ANY($1)"#,
        )
        .bind(&ids)
        .bind(file_id)
        .bind(execution_date)
        .execute(&mut *tx)
        .await?;
        let payouts: Vec<String> = rows.iter().filter_map(|r| r.payout_id.clone()).collect();
        sqlx::query("UPDATE payouts SET status = 'in_transit' WHERE id = ANY($1)")
            .bind(&payouts)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    deliver(pool, dir).await
}

/// Writes the pain.001 files not written yet into `dir`.
async fn deliver(pool: &Db, dir: &Path) -> Result<Vec<Exported>, BankError> {
    let io = |path: &Path, source| BankError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let due: Vec<(i64, String, String, String)> = sqlx::query_as(
        r#"SELECT f.id, f.name, f.message_id, f.content FROM bank_files f
            WHERE f.direction = 'out' AND f.delivered_at IS NULL ORDER BY f.id"#,
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for (id, name, message_id, content) in due {
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}.partial"));
        std::fs::write(&partial, content.as_bytes()).map_err(|e| io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| io(&path, e))?;
        sqlx::query("UPDATE bank_files SET delivered_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        let (account_id, transfers): (String, i64) = sqlx::query_as(
            "SELECT min(account_id), count(*) FROM bank_transfers_out WHERE file_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        out.push(Exported {
            message_id,
            account_id,
            transfers: usize::try_from(transfers).unwrap_or(0),
            path,
        });
    }
    Ok(out)
}

/// The transfers of the pain.001 `message_id`, for a pain.002.
pub async fn of_message(
    conn: &mut PgConnection,
    message_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        r#"SELECT t.id FROM bank_transfers_out t JOIN bank_files f ON f.id = t.file_id
            WHERE f.direction = 'out' AND f.message_id = $1 ORDER BY t.id"#,
    )
    .bind(message_id)
    .fetch_all(conn)
    .await
}
