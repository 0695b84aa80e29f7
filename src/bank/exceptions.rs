//! The reconciliation desk: bank money that is not exactly a payment.
//!
//! An exception names the money at stake and where it waits: credits in
//! `suspense` (unmatched, late, the surplus of an overpayment, what an
//! underpayment has brought so far, a transfer of ours that came back),
//! unexplained debits in `bank_suspense`. Nothing leaves those accounts
//! except through an action of the desk, each one ledgered in the
//! transaction that resolves the exception:
//!
//! | action | credit money (suspense) | underpaid | unexplained debit |
//! |---|---|---|---|
//! | assign to a payment | counts towards the payment (may complete it) | — | — |
//! | refund to the sender | → `refunds_payable`, a credit transfer in the next pain.001 | the same, and the payment fails | — |
//! | write off (with a reason) | → `write_offs` (the gateway keeps it) | accepted short: the payment succeeds with what arrived | `write_offs` → cleared |
//!
//! Exceptions of a merchant's payment are announced to it
//! (`reconciliation_exception.created` / `.resolved`); the operator sees
//! all of them.

use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::BankError;
use crate::crypto::Sealer;
use crate::db::Db;
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PaymentId, ReconciliationExceptionId};
use crate::ledger::{self, AccountRef, Entry, EntryKind};
use crate::money::{Amount, AssetCode, Currency};
use crate::page::{Listed, Page};
use crate::payments::bank as pay;

/// Kinds of exception.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[schema(as = ReconciliationExceptionType)]
pub enum Kind {
    /// A credit that matched no payment.
    UnmatchedCredit,
    /// Less than the payment's amount has arrived.
    Underpaid,
    /// More than the amount arrived; the surplus is here.
    Overpaid,
    /// The payment no longer took money when this arrived.
    PaidLate,
    /// A debit nothing explains.
    UnmatchedDebit,
    /// A transfer of ours was rejected or returned; its money is here.
    TransferFailed,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::UnmatchedCredit,
        Kind::Underpaid,
        Kind::Overpaid,
        Kind::PaidLate,
        Kind::UnmatchedDebit,
        Kind::TransferFailed,
    ];
}

crate::names!(Kind);

/// Who acts at the desk.
#[derive(Debug, Clone)]
pub enum Desk {
    /// The operator (operator token, command line): every exception.
    Operator,
    /// A merchant: the exceptions of its own payments.
    Merchant(MerchantId),
}

impl Desk {
    fn who(&self) -> String {
        match self {
            Desk::Operator => "operator".into(),
            Desk::Merchant(m) => m.to_string(),
        }
    }
}

/// An exception row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Exception {
    /// `rex_…`.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// `open` / `resolved`.
    pub status: String,
    /// The bank account.
    pub account_id: String,
    /// Lower-case ISO 4217.
    pub currency: String,
    /// Smallest units.
    pub amount: i64,
    /// Ledger account the money waits in.
    pub held_in: String,
    /// The merchant concerned, if any.
    pub merchant_id: Option<String>,
    /// The payment concerned, if any.
    pub payment_id: Option<String>,
    /// The statement entry it comes from.
    pub entry_id: Option<i64>,
    /// Its transaction.
    pub seq: Option<i16>,
    /// Sender or receiver named by the bank.
    pub counterparty_name: Option<String>,
    /// Their IBAN.
    pub counterparty_iban: Option<String>,
    /// Remittance information.
    pub remittance: Option<String>,
    /// What happened.
    pub detail: String,
    /// How it was resolved.
    pub resolution: Option<String>,
    /// Why (a write-off's reason).
    pub resolution_reason: Option<String>,
    /// The payment it was assigned to.
    pub resolved_payment_id: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Opened.
    pub created_at: OffsetDateTime,
    /// Resolved.
    pub resolved_at: Option<OffsetDateTime>,
}

/// `DE89 **** 3000`: enough to recognise an account, not to use it.
pub fn mask_account(account: &str) -> String {
    let compact: String = account.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() <= 8 {
        return format!(
            "**** {}",
            compact.get(compact.len().saturating_sub(2)..).unwrap_or("")
        );
    }
    format!("{} **** {}", &compact[..4], &compact[compact.len() - 4..])
}

impl Exception {
    /// The API object (`"object": "reconciliation_exception"`), with the
    /// credit transfer that sent the money back, if one did, and the
    /// node's mode (`None` in an event's snapshot, as the event says it).
    pub fn to_api(&self, transfer: Option<&str>, livemode: Option<bool>) -> ExceptionObject {
        ExceptionObject {
            id: self.id.clone(),
            object: "reconciliation_exception",
            kind: self.kind,
            status: self.status.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            bank_account: self.account_id.clone(),
            held_in: self.held_in.clone(),
            merchant: self.merchant_id.clone(),
            payment: self.payment_id.clone(),
            counterparty: Counterparty {
                name: self.counterparty_name.clone(),
                account: self.counterparty_iban.as_deref().map(mask_account),
            },
            remittance_information: self.remittance.clone(),
            detail: self.detail.clone(),
            resolution: self.resolution.as_ref().map(|action| Resolution {
                action: action.clone(),
                reason: self.resolution_reason.clone(),
                payment: self.resolved_payment_id.clone(),
                transfer: transfer.map(str::to_owned),
                by: self.resolved_by.clone(),
            }),
            created: self.created_at.unix_timestamp(),
            resolved: self.resolved_at.map(OffsetDateTime::unix_timestamp),
            livemode,
        }
    }
}

/// Bank money that is not exactly a payment, as the API answers it and
/// events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReconciliationException)]
pub struct ExceptionObject {
    /// Unique identifier, `rex_…`.
    #[schema(pattern = "^rex_[A-Za-z0-9]{24}$")]
    pub id: String,
    /// Always `reconciliation_exception`.
    #[schema(schema_with = exception_object_name)]
    pub object: &'static str,
    /// What kind of exception.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// `open` or `resolved`.
    #[schema(schema_with = exception_statuses)]
    pub status: String,
    /// The money at stake, in the currency's smallest unit.
    pub amount: i64,
    /// Lower-case ISO 4217.
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
    /// The gateway's bank account (its configured id).
    pub bank_account: String,
    /// The ledger account the money waits in.
    #[schema(schema_with = held_in_accounts)]
    pub held_in: String,
    /// The merchant concerned (`mer_…`), if any.
    #[schema(required = true)]
    pub merchant: Option<String>,
    /// The payment concerned (`pay_…`), if any.
    #[schema(required = true)]
    pub payment: Option<String>,
    /// Who sent or received the money, as the bank named them.
    pub counterparty: Counterparty,
    /// The remittance information of the bank entry.
    #[schema(required = true)]
    pub remittance_information: Option<String>,
    /// What happened, for people.
    pub detail: String,
    /// How it was resolved; null while open.
    #[schema(required = true)]
    pub resolution: Option<Resolution>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// When it was resolved (Unix seconds); null while open.
    #[schema(required = true)]
    pub resolved: Option<i64>,
    /// Whether the node runs in live mode (in API answers; an event's
    /// snapshot leaves it to the event).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub livemode: Option<bool>,
}

/// The other side of an exception's bank entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReconciliationCounterparty)]
pub struct Counterparty {
    /// Their name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Their account, masked (`NL91 **** 4300`).
    #[schema(required = true)]
    pub account: Option<String>,
}

/// How an exception was resolved.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReconciliationResolution)]
pub struct Resolution {
    /// What was done.
    #[schema(schema_with = resolution_actions)]
    pub action: String,
    /// Why (a write-off's reason).
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The payment it was assigned to.
    #[schema(required = true)]
    pub payment: Option<String>,
    /// The credit transfer sending the money back (`btr_…`, its
    /// EndToEndId).
    #[schema(required = true)]
    pub transfer: Option<String>,
    /// Who resolved it (`operator` or a merchant id).
    #[schema(required = true)]
    pub by: Option<String>,
}

crate::object_name_schema!(exception_object_name, "reconciliation_exception");

fn string_enum(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

fn exception_statuses() -> utoipa::openapi::Object {
    string_enum(&["open", "resolved"])
}

/// The ledger accounts money of an exception waits in (`open`).
fn held_in_accounts() -> utoipa::openapi::Object {
    string_enum(&["suspense", "refunds_payable", "bank_suspense"])
}

/// The resolutions an exception may get ([`Action::resolution`], and a
/// returned or completed transfer's).
fn resolution_actions() -> utoipa::openapi::Object {
    string_enum(&[
        "assigned",
        "refunded",
        "written_off",
        "completed",
        "returned",
    ])
}

/// An exception to open.
#[derive(Debug, Clone)]
pub struct NewException<'a> {
    /// Kind.
    pub kind: Kind,
    /// Bank account.
    pub account_id: &'a str,
    /// Lower-case ISO 4217.
    pub currency: &'a str,
    /// Smallest units.
    pub amount: i64,
    /// The merchant concerned.
    pub merchant_id: Option<&'a MerchantId>,
    /// The payment concerned.
    pub payment_id: Option<&'a PaymentId>,
    /// The statement transaction.
    pub source: Option<(i64, i16)>,
    /// Sender or receiver.
    pub counterparty_name: Option<&'a str>,
    /// Their IBAN.
    pub counterparty_iban: Option<&'a str>,
    /// Remittance information.
    pub remittance: Option<&'a str>,
    /// What happened, for people.
    pub detail: String,
}

const COLUMNS: &str = "id, kind, status, account_id, currency, amount, held_in, merchant_id, \
    payment_id, entry_id, seq, counterparty_name, counterparty_iban, remittance, detail, \
    resolution, resolution_reason, resolved_payment_id, resolved_by, created_at, resolved_at";

async fn announce(
    conn: &mut PgConnection,
    exception: &Exception,
    event: EventType,
) -> Result<(), BankError> {
    if let Some(merchant) = exception
        .merchant_id
        .as_deref()
        .and_then(|m| MerchantId::parse(m).ok())
    {
        let transfer = transfer_of(conn, &exception.id).await?;
        events::record(
            conn,
            &merchant,
            event,
            &exception.to_api(transfer.as_deref(), None),
        )
        .await?;
    }
    Ok(())
}

async fn transfer_of(conn: &mut PgConnection, id: &str) -> Result<Option<String>, BankError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM bank_transfers_out WHERE exception_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Opens an exception (an open `underpaid` of the payment grows instead),
/// announcing it to its merchant.
pub async fn open(conn: &mut PgConnection, new: &NewException<'_>) -> Result<Exception, BankError> {
    let held_in = if new.kind == Kind::UnmatchedDebit {
        "bank_suspense"
    } else {
        "suspense"
    };
    if new.kind == Kind::Underpaid
        && let Some(payment) = new.payment_id
    {
        let grown: Option<Exception> = sqlx::query_as(&format!(
            "UPDATE reconciliation_exceptions SET amount = $2, detail = $3
              WHERE payment_id = $1 AND kind = 'underpaid' AND status = 'open' RETURNING {COLUMNS}"
        ))
        .bind(payment.as_str())
        .bind(new.amount)
        .bind(&new.detail)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(exception) = grown {
            announce(conn, &exception, EventType::ReconciliationExceptionCreated).await?;
            return Ok(exception);
        }
    }
    let exception: Exception = sqlx::query_as(&format!(
        r#"INSERT INTO reconciliation_exceptions (id, kind, account_id, currency, amount, held_in,
               merchant_id, payment_id, entry_id, seq, counterparty_name, counterparty_iban,
               remittance, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           RETURNING {COLUMNS}"#
    ))
    .bind(ReconciliationExceptionId::generate().as_str())
    .bind(new.kind.to_string())
    .bind(new.account_id)
    .bind(new.currency)
    .bind(new.amount)
    .bind(held_in)
    .bind(new.merchant_id.map(MerchantId::as_str))
    .bind(new.payment_id.map(PaymentId::as_str))
    .bind(new.source.map(|s| s.0))
    .bind(new.source.map(|s| s.1))
    .bind(new.counterparty_name)
    .bind(new.counterparty_iban)
    .bind(new.remittance)
    .bind(&new.detail)
    .fetch_one(&mut *conn)
    .await?;
    tracing::info!(exception = %exception.id, kind = %exception.kind, amount = exception.amount,
        "reconciliation exception opened");
    announce(conn, &exception, EventType::ReconciliationExceptionCreated).await?;
    Ok(exception)
}

/// Closes the open `underpaid` exception of a payment that was paid in
/// full after all.
pub async fn complete_underpaid(
    conn: &mut PgConnection,
    payment: &PaymentId,
) -> Result<(), BankError> {
    let closed: Option<Exception> = sqlx::query_as(&format!(
        r#"UPDATE reconciliation_exceptions SET status = 'resolved', resolution = 'completed',
               resolved_at = now(), resolved_by = 'bank'
            WHERE payment_id = $1 AND kind = 'underpaid' AND status = 'open' RETURNING {COLUMNS}"#
    ))
    .bind(payment.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(exception) = closed {
        announce(conn, &exception, EventType::ReconciliationExceptionResolved).await?;
    }
    Ok(())
}

/// Filters of a list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `open` / `resolved`.
    pub status: Option<String>,
    /// A kind.
    pub kind: Option<Kind>,
    /// A payment.
    pub payment: Option<PaymentId>,
    /// A bank account.
    pub bank_account: Option<String>,
}

fn scope(desk: &Desk) -> Option<String> {
    match desk {
        Desk::Operator => None,
        Desk::Merchant(m) => Some(m.to_string()),
    }
}

/// One exception the desk may see.
pub async fn get(
    pool: &Db,
    desk: &Desk,
    id: &str,
) -> Result<(Exception, Option<String>), BankError> {
    let mut conn = pool.acquire().await?;
    let exception = load(&mut conn, desk, id, false).await?;
    let transfer = transfer_of(&mut conn, id).await?;
    Ok((exception, transfer))
}

async fn load(
    conn: &mut PgConnection,
    desk: &Desk,
    id: &str,
    lock: bool,
) -> Result<Exception, BankError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reconciliation_exceptions
          WHERE id = $1 AND ($2::text IS NULL OR merchant_id = $2){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(scope(desk))
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| BankError::NotFound {
            kind: "reconciliation exception",
            id: id.to_owned(),
        })
}

/// A page of the exceptions the desk may see, newest first, and whether
/// more follow.
pub async fn list(
    pool: &Db,
    desk: &Desk,
    filter: &Filter,
    page: &Page<String>,
    limit: i64,
) -> Result<Listed<(Exception, Option<String>)>, BankError> {
    let mut conn = pool.acquire().await?;
    // The desk pages forwards only.
    let starting_after = page.cursor().map(String::as_str);
    if let Some(cursor) = starting_after {
        load(&mut conn, desk, cursor, false).await.map_err(|_| {
            BankError::invalid(
                "starting_after",
                format!("No such reconciliation exception: '{cursor}'"),
            )
        })?;
    }
    let rows: Vec<Exception> = sqlx::query_as(&format!(
        r#"SELECT {COLUMNS} FROM reconciliation_exceptions e
            WHERE ($1::text IS NULL OR e.merchant_id = $1)
              AND ($2::text IS NULL OR e.status = $2)
              AND ($3::text IS NULL OR e.kind = $3)
              AND ($4::text IS NULL OR e.payment_id = $4 OR e.resolved_payment_id = $4)
              AND ($5::text IS NULL OR e.account_id = $5)
              AND ($6::text IS NULL OR (e.created_at, e.id) <
                   (SELECT c.created_at, c.id FROM reconciliation_exceptions c WHERE c.id = $6))
            ORDER BY e.created_at DESC, e.id DESC LIMIT $7"#
    ))
    .bind(scope(desk))
    .bind(&filter.status)
    .bind(filter.kind.map(|k| k.to_string()))
    .bind(filter.payment.as_ref().map(PaymentId::as_str))
    .bind(&filter.bank_account)
    .bind(starting_after)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(0);
    let mut out = Vec::new();
    for e in rows.into_iter().take(usize::try_from(limit).unwrap_or(0)) {
        let transfer = transfer_of(&mut conn, &e.id).await?;
        out.push((e, transfer));
    }
    Ok(Listed {
        data: out,
        has_more,
    })
}

/// Open exceptions of every account, oldest first (for `epg reconcile bank`).
pub async fn open_of(pool: &Db, account: &str) -> Result<Vec<Exception>, BankError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM reconciliation_exceptions
          WHERE account_id = $1 AND status = 'open' ORDER BY created_at, id"
    ))
    .bind(account)
    .fetch_all(pool)
    .await?)
}

fn asset(currency: &str) -> Result<AssetCode, BankError> {
    Currency::parse(currency)
        .map(AssetCode::fiat)
        .map_err(|e| BankError::invalid("currency", e.to_string()))
}

/// What the desk does with an exception.
#[derive(Debug, Clone)]
pub enum Action {
    /// Count the money towards this payment.
    Assign(PaymentId),
    /// Send the money back to whoever sent it.
    Refund,
    /// Give up on it, with a reason.
    WriteOff(String),
}

impl Action {
    fn resolution(&self) -> &'static str {
        match self {
            Action::Assign(_) => "assigned",
            Action::Refund => "refunded",
            Action::WriteOff(_) => "written_off",
        }
    }
}

/// Resolves exception `id` with `action`, in one transaction with its
/// ledger entries and events. Repeating the action that resolved it
/// answers the exception as it is; another action is refused.
pub async fn act(
    pool: &Db,
    desk: &Desk,
    id: &str,
    action: Action,
    sealer: &Sealer,
    livemode: bool,
) -> Result<(Exception, Option<String>), BankError> {
    if let Action::WriteOff(reason) = &action
        && (reason.trim().is_empty() || reason.chars().count() > 500)
    {
        return Err(BankError::invalid(
            "reason",
            "a write-off needs a reason of 1 to 500 characters, not only whitespace",
        ));
    }
    let mut tx = pool.begin().await?;
    let exception = load(&mut tx, desk, id, true).await?;
    if exception.status == "resolved" {
        let same = exception.resolution.as_deref() == Some(action.resolution())
            && match &action {
                Action::Assign(p) => exception.resolved_payment_id.as_deref() == Some(p.as_str()),
                Action::WriteOff(r) => exception.resolution_reason.as_deref() == Some(r.trim()),
                Action::Refund => true,
            };
        if same {
            let transfer = transfer_of(&mut tx, id).await?;
            tx.rollback().await?;
            return Ok((exception, transfer));
        }
        return Err(BankError::state(
            "exception_resolved",
            format!(
                "This exception was already resolved ({}).",
                exception.resolution.as_deref().unwrap_or("resolved")
            ),
        ));
    }
    let kind = exception.kind;
    let asset = asset(&exception.currency)?;
    let amount = Amount::from_minor(exception.amount);
    let key = |step: &str| format!("{}:{step}", exception.id);
    let mut resolved_payment = None;
    let mut reason = None;
    match (&action, kind) {
        (Action::Assign(_), Kind::Underpaid | Kind::UnmatchedDebit) => {
            return Err(BankError::state(
                "exception_action_unavailable",
                format!("A {kind} exception cannot be assigned: refund it or write it off."),
            ));
        }
        (Action::Assign(target), _) => {
            let payment = pay::lock(&mut tx, target).await?;
            if let Desk::Merchant(m) = desk
                && &payment.merchant_id != m
            {
                return Err(BankError::invalid(
                    "payment",
                    format!("No such payment: '{target}'"),
                ));
            }
            if !pay::is_open(&payment) || payment.currency != exception.currency {
                return Err(BankError::invalid(
                    "payment",
                    format!(
                        "{target} is not a {} bank transfer payment waiting for its money",
                        exception.currency
                    ),
                ));
            }
            let (payment, credited) =
                pay::credit(&mut tx, target, exception.amount, livemode).await?;
            after_credit(&mut tx, &exception.account_id, &payment, &credited, None).await?;
            resolved_payment = Some(target.to_string());
        }
        (Action::Refund, Kind::UnmatchedDebit) => {
            return Err(BankError::state(
                "exception_action_unavailable",
                "Money that left the account cannot be refunded from here: write it off once explained.",
            ));
        }
        (Action::Refund, _) => {
            let Some(iban) = exception.counterparty_iban.clone() else {
                return Err(BankError::state(
                    "counterparty_unknown",
                    "The bank did not say which account this money came from; it cannot be sent back.",
                ));
            };
            if kind == Kind::Underpaid
                && let Some(payment) = exception
                    .payment_id
                    .as_deref()
                    .and_then(|p| PaymentId::parse(p).ok())
            {
                pay::give_back(&mut tx, &payment, livemode).await?;
            }
            ledger::post(
                &mut tx,
                &Entry::new(key("refund"), EntryKind::custom("bank_return_queued"))
                    .source(exception.id.as_str())
                    .transfer(
                        AccountRef::suspense(),
                        AccountRef::refunds_payable(),
                        &asset,
                        amount,
                    ),
            )
            .await?;
            super::transfers::queue_return(
                &mut tx,
                &exception,
                exception.counterparty_name.as_deref().unwrap_or("Sender"),
                &iban,
                sealer,
            )
            .await?;
        }
        (Action::WriteOff(why), Kind::Underpaid) => {
            let payment = exception
                .payment_id
                .as_deref()
                .and_then(|p| PaymentId::parse(p).ok())
                .ok_or_else(|| {
                    BankError::state("exception_corrupt", "an underpayment without its payment")
                })?;
            pay::accept_short(&mut tx, &payment, livemode).await?;
            reason = Some(why.trim().to_owned());
        }
        (Action::WriteOff(why), Kind::UnmatchedDebit) => {
            ledger::post(
                &mut tx,
                &Entry::new(key("write_off"), EntryKind::ADJUSTMENT)
                    .source(exception.id.as_str())
                    .description(why.trim())
                    .transfer(
                        AccountRef::write_offs(),
                        AccountRef::bank_suspense(),
                        &asset,
                        amount,
                    ),
            )
            .await?;
            reason = Some(why.trim().to_owned());
        }
        (Action::WriteOff(why), _) => {
            ledger::post(
                &mut tx,
                &Entry::new(key("write_off"), EntryKind::ADJUSTMENT)
                    .source(exception.id.as_str())
                    .description(why.trim())
                    .transfer(
                        AccountRef::suspense(),
                        AccountRef::write_offs(),
                        &asset,
                        amount,
                    ),
            )
            .await?;
            reason = Some(why.trim().to_owned());
        }
    }
    let exception: Exception = sqlx::query_as(&format!(
        r#"UPDATE reconciliation_exceptions SET status = 'resolved', resolution = $2,
               resolution_reason = $3, resolved_payment_id = $4, resolved_by = $5, resolved_at = now(),
               merchant_id = coalesce(merchant_id,
                   (SELECT merchant_id FROM payments WHERE id = $4))
            WHERE id = $1 RETURNING {COLUMNS}"#
    ))
    .bind(&exception.id)
    .bind(action.resolution())
    .bind(reason)
    .bind(resolved_payment)
    .bind(desk.who())
    .fetch_one(&mut *tx)
    .await?;
    announce(
        &mut tx,
        &exception,
        EventType::ReconciliationExceptionResolved,
    )
    .await?;
    let transfer = transfer_of(&mut tx, &exception.id).await?;
    tx.commit().await?;
    tracing::info!(exception = %exception.id, action = action.resolution(), by = %desk.who(),
        "reconciliation exception resolved");
    Ok((exception, transfer))
}

/// Opens what a credit to `payment` calls for: an overpayment's surplus,
/// an underpayment; closes an underpayment paid in full.
pub async fn after_credit(
    conn: &mut PgConnection,
    account: &str,
    payment: &crate::payments::Payment,
    credited: &pay::Credited,
    source: Option<(&super::import::TxSource<'_>, (i64, i16))>,
) -> Result<(), BankError> {
    let new = |kind: Kind, amount: i64, detail: String| NewException {
        kind,
        account_id: account,
        currency: &payment.currency,
        amount,
        merchant_id: Some(&payment.merchant_id),
        payment_id: Some(&payment.id),
        source: source.map(|s| s.1),
        counterparty_name: source.and_then(|s| s.0.counterparty_name),
        counterparty_iban: source.and_then(|s| s.0.counterparty_iban),
        remittance: source.map(|s| s.0.remittance),
        detail,
    };
    match credited {
        pay::Credited::Succeeded { surplus } => {
            complete_underpaid(conn, &payment.id).await?;
            if *surplus > 0 {
                open(
                    conn,
                    &new(
                        Kind::Overpaid,
                        *surplus,
                        format!(
                            "{} paid {} more than its amount; the surplus is in suspense",
                            payment.id, surplus
                        ),
                    ),
                )
                .await?;
            }
        }
        pay::Credited::Underpaid { held, expected } => {
            open(
                conn,
                &new(
                    Kind::Underpaid,
                    *held,
                    format!(
                        "{held} of {expected} received for {}; waiting for the rest",
                        payment.id
                    ),
                ),
            )
            .await?;
        }
        pay::Credited::Late => {}
    }
    Ok(())
}
