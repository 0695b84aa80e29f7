//! Two-phase transfers: open a hold, then post, void or expire it.

use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::entry::{Phase, Row, content_hash, replay, validate_rows, write};
use super::{AccountRef, Entry, EntryKind, LedgerError, Posted, TxnId};
use crate::money::{Amount, AssetCode};

/// Where a hold is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum HoldStatus {
    /// Open: its amount is reserved.
    Pending,
    /// Posted, fully or partly.
    Posted,
    /// Released by [`void_hold`].
    Voided,
    /// Released by [`expire_holds`].
    Expired,
}

crate::names!(HoldStatus);

/// A hold to open: `amount` reserved from `debit` towards `credit`.
#[derive(Debug, Clone)]
pub struct NewHold {
    header: Entry,
    debit: AccountRef,
    credit: AccountRef,
    asset: AssetCode,
    amount: Amount,
    expires_at: Option<OffsetDateTime>,
}

impl NewHold {
    /// A hold under `key` (also the key of the entry that opens it). A card
    /// authorization holds from `clearing/card` to the merchant's `pending`;
    /// reserving merchant funds holds from its `available`.
    pub fn new(
        key: impl Into<String>,
        kind: EntryKind,
        debit: AccountRef,
        credit: AccountRef,
        asset: &AssetCode,
        amount: Amount,
    ) -> Self {
        Self {
            header: Entry::new(key, kind),
            debit,
            credit,
            asset: asset.clone(),
            amount,
            expires_at: None,
        }
    }

    /// The object it belongs to (`pay_…`).
    #[must_use]
    pub fn source(mut self, id: impl Into<String>) -> Self {
        self.header = self.header.source(id);
        self
    }

    /// When [`expire_holds`] may release it.
    #[must_use]
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its key (that of the entry that opened it).
    pub key: String,
    /// The entry that opened it.
    pub opened: TxnId,
    /// The account whose pending debits it raised.
    pub debit: AccountRef,
    /// The account whose pending credits it raised.
    pub credit: AccountRef,
    /// The asset.
    pub asset: AssetCode,
    /// The amount held.
    pub amount: Amount,
    /// Pending, posted, voided or expired.
    pub status: HoldStatus,
    /// How much was posted, once posted.
    pub posted_amount: Option<Amount>,
    /// When it may expire.
    pub expires_at: Option<OffsetDateTime>,
    /// The entry that closed it.
    pub closed: Option<TxnId>,
    /// The object it belongs to.
    pub source: Option<String>,
}

fn amount(d: rust_decimal::Decimal) -> Result<Amount, LedgerError> {
    Amount::try_from(d).map_err(|e| LedgerError::Invalid(format!("stored amount {e}")))
}

/// Opens a hold in the caller's transaction: the debit account's pending
/// debits and the credit account's pending credits grow by `amount` (a
/// floor counts pending debits, so held funds cannot be spent twice).
/// Idempotent by key, like [`super::post`].
#[tracing::instrument(skip_all, fields(key = %hold.header.key()))]
pub async fn open_hold(conn: &mut PgConnection, hold: &NewHold) -> Result<Hold, LedgerError> {
    hold.header.validate_header()?;
    if !hold.amount.is_positive() {
        return Err(LedgerError::Invalid(format!(
            "a hold amount must be positive, got {}",
            hold.amount
        )));
    }
    if hold.debit == hold.credit {
        return Err(LedgerError::Invalid(
            "a hold needs two different accounts".into(),
        ));
    }
    let rows = [
        Row {
            account: hold.debit.clone(),
            asset: hold.asset.clone(),
            amount: hold.amount,
            phase: Phase::PendingDebit,
            fee: false,
        },
        Row {
            account: hold.credit.clone(),
            asset: hold.asset.clone(),
            amount: hold.amount.negated(),
            phase: Phase::PendingCredit,
            fee: false,
        },
    ];
    validate_rows(&rows, 2)?;
    let hash = content_hash(&json!({
        "op": "hold",
        "entry": hold.header.canonical(),
        "debit": hold.debit.to_string(),
        "credit": hold.credit.to_string(),
        "asset": hold.asset.as_str(),
        "amount": hold.amount.to_string(),
        "expires_at": hold.expires_at.map(OffsetDateTime::unix_timestamp_nanos).map(|n| n.to_string()),
    }));
    let posted = write(conn, &hold.header, &rows, &hash).await?;
    if !posted.replayed {
        sqlx::query!(
            r#"INSERT INTO ledger_holds (entry_id, debit_account_id, credit_account_id, asset,
                                         amount, expires_at)
               VALUES ($1, ledger_account_id($2, $3, $4, $5), ledger_account_id($6, $7, $8, $5),
                       $5, $9::numeric, $10)"#,
            posted.seq,
            hold.debit.owner(),
            hold.debit.kind(),
            hold.debit.qualifier(),
            hold.asset.as_str(),
            hold.credit.owner(),
            hold.credit.kind(),
            hold.credit.qualifier(),
            hold.amount.to_decimal(),
            hold.expires_at,
        )
        .execute(&mut *conn)
        .await?;
    }
    get_hold(conn, hold.header.key()).await
}

/// The hold opened under `key`.
pub async fn get_hold(conn: &mut PgConnection, key: &str) -> Result<Hold, LedgerError> {
    let row = sqlx::query!(
        r#"SELECT e.public_id, e.source, h.asset, h.amount, h.status, h.posted_amount,
                  h.expires_at, ce.public_id AS "closed?",
                  d.owner AS debit_owner, d.kind AS debit_kind, d.qualifier AS debit_qualifier,
                  c.owner AS credit_owner, c.kind AS credit_kind,
                  c.qualifier AS credit_qualifier
             FROM ledger_holds h
             JOIN ledger_entries e ON e.id = h.entry_id
             JOIN ledger_accounts d ON d.id = h.debit_account_id
             JOIN ledger_accounts c ON c.id = h.credit_account_id
             LEFT JOIN ledger_entries ce ON ce.id = h.closed_entry_id
            WHERE e.key = $1"#,
        key
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| LedgerError::HoldNotFound(key.to_owned()))?;
    let account = |owner: &str, kind: &str, qualifier: &str| {
        AccountRef::from_row(owner, kind, qualifier)
            .ok_or_else(|| LedgerError::Invalid(format!("unknown account {owner}/{kind}")))
    };
    Ok(Hold {
        key: key.to_owned(),
        opened: TxnId(row.public_id),
        debit: account(&row.debit_owner, &row.debit_kind, &row.debit_qualifier)?,
        credit: account(&row.credit_owner, &row.credit_kind, &row.credit_qualifier)?,
        asset: AssetCode::parse(&row.asset)?,
        amount: amount(row.amount)?,
        status: row
            .status
            .parse()
            .map_err(|e| LedgerError::Invalid(format!("hold status: {e}")))?,
        posted_amount: row.posted_amount.map(amount).transpose()?,
        expires_at: row.expires_at,
        closed: row.closed.map(TxnId),
        source: row.source,
    })
}

/// Posts hold `hold_key`: `amount` of it (all when `None`) becomes a
/// posted transfer between its two accounts and the rest is released, in
/// `entry`, which names the step (key, kind, source) and may carry postings
/// of its own, e.g. the fee. Idempotent by the entry's key.
#[tracing::instrument(skip_all, fields(hold = hold_key, key = %entry.key()))]
pub async fn post_hold(
    conn: &mut PgConnection,
    hold_key: &str,
    amount: Option<Amount>,
    entry: &Entry,
) -> Result<Posted, LedgerError> {
    close(conn, hold_key, entry, Close::Post(amount)).await
}

/// Releases hold `hold_key` entirely, in an entry under `key`.
#[tracing::instrument(skip_all, fields(hold = hold_key, key))]
pub async fn void_hold(
    conn: &mut PgConnection,
    hold_key: &str,
    key: &str,
) -> Result<Posted, LedgerError> {
    let hold = get_hold(conn, hold_key).await?;
    let mut entry = Entry::new(key, EntryKind::HOLD_VOID);
    if let Some(source) = hold.source {
        entry = entry.source(source);
    }
    close(conn, hold_key, &entry, Close::Void).await
}

/// Releases up to `limit` pending holds whose `expires_at` is at or before
/// `now`, oldest first, in the caller's transaction, and returns them.
/// Holds another transaction is closing are skipped (`FOR UPDATE SKIP
/// LOCKED`), so background workers on several nodes never collide.
#[tracing::instrument(skip_all)]
pub async fn expire_holds(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Hold>, LedgerError> {
    let due = sqlx::query!(
        r#"SELECT e.key, e.public_id, e.source FROM ledger_holds h
             JOIN ledger_entries e ON e.id = h.entry_id
            WHERE h.status = 'pending' AND h.expires_at <= $1
            ORDER BY h.expires_at, h.id
            LIMIT $2
              FOR UPDATE OF h SKIP LOCKED"#,
        now,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut expired = Vec::with_capacity(due.len());
    for hold in due {
        let mut entry = Entry::new(format!("expiry:{}", hold.public_id), EntryKind::HOLD_EXPIRY);
        if let Some(source) = hold.source {
            entry = entry.source(source);
        }
        close(conn, &hold.key, &entry, Close::Expire).await?;
        expired.push(get_hold(conn, &hold.key).await?);
    }
    Ok(expired)
}

#[derive(Debug, Clone, Copy)]
enum Close {
    Post(Option<Amount>),
    Void,
    Expire,
}

async fn close(
    conn: &mut PgConnection,
    hold_key: &str,
    entry: &Entry,
    how: Close,
) -> Result<Posted, LedgerError> {
    entry.validate_header()?;
    if !matches!(how, Close::Post(_)) && !entry.postings().is_empty() {
        return Err(LedgerError::Invalid(
            "releasing a hold takes no postings".into(),
        ));
    }
    // Lock the hold first: whoever closes it second then sees its new
    // state (and, under the same key, the first one's entry).
    let locked = sqlx::query_scalar!(
        r#"SELECT h.id FROM ledger_holds h JOIN ledger_entries e ON e.id = h.entry_id
            WHERE e.key = $1 FOR UPDATE OF h"#,
        hold_key
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| LedgerError::HoldNotFound(hold_key.to_owned()))?;
    let (op, requested, status) = match how {
        Close::Post(amount) => ("post_hold", amount, HoldStatus::Posted),
        Close::Void => ("void_hold", None, HoldStatus::Voided),
        Close::Expire => ("expire_hold", None, HoldStatus::Expired),
    };
    let hash = content_hash(&json!({
        "op": op,
        "hold": hold_key,
        "amount": requested.map(|a| a.to_string()),
        "entry": entry.canonical(),
    }));
    if let Some(posted) = replay(conn, entry.key(), &hash).await? {
        return Ok(posted);
    }
    let hold = get_hold(conn, hold_key).await?;
    if hold.status != HoldStatus::Pending {
        return Err(LedgerError::HoldNotPending {
            key: hold_key.to_owned(),
            status: hold.status,
        });
    }
    let leg = |account: &AccountRef, amount: Amount, phase: Phase| Row {
        account: account.clone(),
        asset: hold.asset.clone(),
        amount,
        phase,
        fee: false,
    };
    let mut rows = vec![
        leg(&hold.debit, hold.amount.negated(), Phase::PendingDebit),
        leg(&hold.credit, hold.amount, Phase::PendingCredit),
    ];
    let posted_amount = match how {
        Close::Post(amount) => {
            let amount = amount.unwrap_or(hold.amount);
            if !amount.is_positive() {
                return Err(LedgerError::Invalid(format!(
                    "the amount to post must be positive, got {amount}; void the hold instead"
                )));
            }
            if amount > hold.amount {
                return Err(LedgerError::HoldExceeded {
                    key: hold_key.to_owned(),
                    held: hold.amount,
                    requested: amount,
                });
            }
            rows.push(leg(&hold.debit, amount, Phase::Posted));
            rows.push(leg(&hold.credit, amount.negated(), Phase::Posted));
            Some(amount)
        }
        Close::Void | Close::Expire => None,
    };
    rows.extend(entry.postings().iter().map(Row::from));
    validate_rows(&rows, 2)?;
    let posted = write(conn, entry, &rows, &hash).await?;
    if posted.replayed {
        return Ok(posted);
    }
    sqlx::query!(
        r#"UPDATE ledger_holds SET status = $2::text, posted_amount = $3, closed_entry_id = $4
            WHERE id = $1"#,
        locked,
        status as HoldStatus,
        posted_amount.map(Amount::to_decimal),
        posted.seq,
    )
    .execute(&mut *conn)
    .await?;
    Ok(posted)
}
