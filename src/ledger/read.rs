//! Reading balances and a merchant's balance transactions.

use rust_decimal::Decimal;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{AccountRef, LedgerError, TxnId};
use crate::ids::MerchantId;
use crate::money::{Amount, Asset, AssetCode};

fn amount(d: Decimal) -> Result<Amount, LedgerError> {
    Amount::try_from(d).map_err(|e| LedgerError::Invalid(format!("stored amount {e}")))
}

/// One account's balance: the sum of its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountBalance {
    /// Sum of posted postings: debits minus credits.
    pub posted: Amount,
    /// Held amounts on the debit side (promised away, for a
    /// credit-normal account).
    pub pending_debits: Amount,
    /// Held amounts on the credit side (on their way in).
    pub pending_credits: Amount,
}

impl AccountBalance {
    /// Credits minus debits: the balance of a credit-normal account (a
    /// merchant's, `fee_revenue`).
    pub fn credit_balance(&self) -> Amount {
        self.posted.negated()
    }

    /// What a credit-normal account can still be debited by: its credit
    /// balance less what holds promise away (negative if it is in debt,
    /// which only accounts without a floor can be).
    pub fn spendable(&self) -> i128 {
        self.posted.negated().units() - self.pending_debits.units()
    }
}

/// The balance of `account` in `asset` (zero if it was never used).
pub async fn account_balance(
    conn: &mut PgConnection,
    account: &AccountRef,
    asset: &AssetCode,
) -> Result<AccountBalance, LedgerError> {
    let row = sqlx::query!(
        r#"SELECT coalesce(sum(b.posted), 0) AS "posted!",
                  coalesce(sum(b.pending_debits), 0) AS "pending_debits!",
                  coalesce(sum(b.pending_credits), 0) AS "pending_credits!"
             FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
            WHERE a.owner = $1 AND a.kind = $2 AND a.qualifier = $3 AND a.asset = $4"#,
        account.owner(),
        account.kind(),
        account.qualifier(),
        asset.as_str(),
    )
    .fetch_one(conn)
    .await?;
    Ok(AccountBalance {
        posted: amount(row.posted)?,
        pending_debits: amount(row.pending_debits)?,
        pending_credits: amount(row.pending_credits)?,
    })
}

/// A merchant's balance in one asset, as `GET /v1/balance` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantBalance {
    /// The asset.
    pub asset: Asset,
    /// The `available` account, less what holds promise away from it and
    /// less what the merchant owes (`receivable`): what can be paid out or
    /// refunded now; negative when the merchant owes more than it has.
    pub available: Amount,
    /// The `pending` account (less holds out of it), plus holds on their
    /// way into any of the merchant's accounts (authorized, not captured).
    pub pending: Amount,
    /// The `reserve` account, less holds out of it.
    pub reserved: Amount,
}

/// Every asset `merchant` has a balance in, by asset code.
pub async fn merchant_balances(
    conn: &mut PgConnection,
    merchant: &MerchantId,
) -> Result<Vec<MerchantBalance>, LedgerError> {
    let rows = sqlx::query!(
        r#"SELECT a.asset, s.kind AS asset_kind, s.scale, s.chain_id, s.token_address,
                  coalesce(sum(-b.posted - b.pending_debits)
                           FILTER (WHERE a.kind IN ('available', 'receivable')), 0)
                    AS "available!",
                  coalesce(sum(-b.posted - b.pending_debits)
                           FILTER (WHERE a.kind = 'pending'), 0)
                    + coalesce(sum(b.pending_credits), 0) AS "pending!",
                  coalesce(sum(-b.posted - b.pending_debits)
                           FILTER (WHERE a.kind = 'reserve'), 0) AS "reserved!"
             FROM ledger_accounts a
             JOIN ledger_balances b ON b.account_id = a.id
             JOIN assets s ON s.code = a.asset
            WHERE a.owner = $1
            GROUP BY a.asset, s.kind, s.scale, s.chain_id, s.token_address
            ORDER BY a.asset"#,
        merchant.as_str(),
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(MerchantBalance {
                asset: Asset::from_row(
                    &r.asset,
                    &r.asset_kind,
                    r.scale,
                    r.chain_id,
                    r.token_address.as_deref(),
                )?,
                available: amount(r.available)?,
                pending: amount(r.pending)?,
                reserved: amount(r.reserved)?,
            })
        })
        .collect()
}

/// One journal entry as a merchant sees it (Stripe's balance transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceTransaction {
    /// `txn_…`.
    pub id: TxnId,
    /// The entry kind (`payment`, `refund`, …).
    pub kind: String,
    /// The asset.
    pub asset: Asset,
    /// Gross change of the merchant's balance, fees excluded: credits to
    /// its accounts minus debits (> 0 money in, < 0 money out).
    pub amount: Amount,
    /// Fees it was charged (< 0 when a fee was returned).
    pub fee: Amount,
    /// `amount - fee`.
    pub net: Amount,
    /// `available` if it touched the merchant's available balance (or
    /// what it owes), otherwise `pending`.
    pub status: &'static str,
    /// The object it belongs to.
    pub source: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// When it was written.
    pub created_at: OffsetDateTime,
}

pub use crate::page::{Listed, Page};

struct TxnRow {
    entry_id: i64,
    public_id: String,
    kind: String,
    source: Option<String>,
    description: Option<String>,
    created_at: OffsetDateTime,
    asset: String,
    asset_kind: String,
    scale: i16,
    chain_id: Option<i64>,
    token_address: Option<String>,
    amount: Decimal,
    fee: Decimal,
    available: bool,
}

impl TxnRow {
    fn into_transaction(self) -> Result<BalanceTransaction, LedgerError> {
        let amount = amount(self.amount)?;
        let fee = self::amount(self.fee)?;
        Ok(BalanceTransaction {
            id: TxnId(self.public_id),
            kind: self.kind,
            asset: Asset::from_row(
                &self.asset,
                &self.asset_kind,
                self.scale,
                self.chain_id,
                self.token_address.as_deref(),
            )?,
            net: amount
                .checked_sub(fee)
                .ok_or_else(|| LedgerError::Invalid("net amount out of range".into()))?,
            amount,
            fee,
            status: if self.available {
                "available"
            } else {
                "pending"
            },
            source: self.source,
            description: self.description,
            created_at: self.created_at,
        })
    }
}

/// The entry behind `id`, if `merchant` has posted postings in it.
async fn entry_seq(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &TxnId,
) -> Result<i64, LedgerError> {
    sqlx::query_scalar!(
        r#"SELECT e.id FROM ledger_entries e
            WHERE e.public_id = $1
              AND EXISTS (SELECT 1 FROM ledger_postings p
                           WHERE p.entry_id = e.id AND p.owner = $2 AND p.owner <> ''
                             AND p.phase = 'posted')"#,
        id.as_str(),
        merchant.as_str(),
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| LedgerError::UnknownTransaction(id.to_string()))
}

/// A page of `merchant`'s balance transactions, newest first; `limit` is
/// 1 to 100. A cursor that is not one of the merchant's transactions is
/// [`LedgerError::UnknownTransaction`].
pub async fn balance_transactions(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    limit: u8,
    page: &Page<TxnId>,
) -> Result<Listed<BalanceTransaction>, LedgerError> {
    let limit = usize::from(limit.clamp(1, 100));
    let fetch = i64::try_from(limit + 1).unwrap_or(101);
    let (rows, backwards) = match page {
        Page::Before(id) => {
            let seq = entry_seq(conn, merchant, id).await?;
            (newer(conn, merchant, seq, fetch).await?, true)
        }
        Page::After(id) => {
            let seq = entry_seq(conn, merchant, id).await?;
            (older(conn, merchant, Some(seq), fetch).await?, false)
        }
        Page::First => (older(conn, merchant, None, fetch).await?, false),
    };
    let has_more = rows.len() > limit;
    let mut data = rows
        .into_iter()
        .take(limit)
        .map(TxnRow::into_transaction)
        .collect::<Result<Vec<_>, _>>()?;
    if backwards {
        data.reverse();
    }
    Ok(Listed { data, has_more })
}

/// One of `merchant`'s balance transactions.
pub async fn balance_transaction(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &TxnId,
) -> Result<BalanceTransaction, LedgerError> {
    let seq = entry_seq(conn, merchant, id).await?;
    older(conn, merchant, Some(seq.saturating_add(1)), 1)
        .await?
        .into_iter()
        .find(|r| r.entry_id == seq)
        .ok_or_else(|| LedgerError::UnknownTransaction(id.to_string()))?
        .into_transaction()
}

/// Most balance transactions [`transactions_of_sources`] answers: a payment
/// with this many postings is not one a page can show anyway.
pub const MAX_SOURCE_TRANSACTIONS: i64 = 1000;

/// `merchant`'s balance transactions whose source is one of `sources` (a
/// payment and its refunds, say), oldest first, however old they are.
/// Sources of another merchant give nothing.
pub async fn transactions_of_sources(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    sources: &[&str],
) -> Result<Vec<BalanceTransaction>, LedgerError> {
    let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
    let rows = sqlx::query_as!(
        TxnRow,
        r#"SELECT t.entry_id AS "entry_id!", e.public_id, e.kind, e.source, e.description,
                  e.created_at, t.asset AS "asset!", s.kind AS asset_kind, s.scale, s.chain_id,
                  s.token_address, t.amount AS "amount!", t.fee AS "fee!",
                  t.available AS "available!"
             FROM (SELECT p.entry_id, p.asset,
                          coalesce(-sum(p.amount) FILTER (WHERE NOT p.fee), 0) AS amount,
                          coalesce(sum(p.amount) FILTER (WHERE p.fee), 0) AS fee,
                          bool_or(a.kind IN ('available', 'receivable')) AS available
                     FROM ledger_entries x
                     JOIN ledger_postings p ON p.entry_id = x.id
                     JOIN ledger_accounts a ON a.id = p.account_id
                    WHERE x.source = ANY ($2::text[])
                      AND p.owner = $1 AND p.owner <> '' AND p.phase = 'posted'
                    GROUP BY p.entry_id, p.asset) t
             JOIN ledger_entries e ON e.id = t.entry_id
             JOIN assets s ON s.code = t.asset
            ORDER BY t.entry_id, t.asset
            LIMIT $3"#,
        merchant.as_str(),
        &sources,
        MAX_SOURCE_TRANSACTIONS,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(TxnRow::into_transaction).collect()
}

/// Transactions before entry `before` (all when `None`), newest first.
async fn older(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<TxnRow>, LedgerError> {
    Ok(sqlx::query_as!(
        TxnRow,
        r#"SELECT t.entry_id AS "entry_id!", e.public_id, e.kind, e.source, e.description,
                  e.created_at, t.asset AS "asset!", s.kind AS asset_kind, s.scale, s.chain_id,
                  s.token_address, t.amount AS "amount!", t.fee AS "fee!",
                  t.available AS "available!"
             FROM (SELECT p.entry_id, p.asset,
                          coalesce(-sum(p.amount) FILTER (WHERE NOT p.fee), 0) AS amount,
                          coalesce(sum(p.amount) FILTER (WHERE p.fee), 0) AS fee,
                          bool_or(a.kind IN ('available', 'receivable')) AS available
                     FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                    WHERE p.owner = $1 AND p.owner <> '' AND p.phase = 'posted'
                      AND ($2::bigint IS NULL OR p.entry_id < $2)
                    GROUP BY p.entry_id, p.asset
                    ORDER BY p.entry_id DESC, p.asset
                    LIMIT $3) t
             JOIN ledger_entries e ON e.id = t.entry_id
             JOIN assets s ON s.code = t.asset
            ORDER BY t.entry_id DESC, t.asset"#,
        merchant.as_str(),
        before,
        limit,
    )
    .fetch_all(conn)
    .await?)
}

/// Transactions after entry `after`, oldest first.
async fn newer(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    after: i64,
    limit: i64,
) -> Result<Vec<TxnRow>, LedgerError> {
    Ok(sqlx::query_as!(
        TxnRow,
        r#"SELECT t.entry_id AS "entry_id!", e.public_id, e.kind, e.source, e.description,
                  e.created_at, t.asset AS "asset!", s.kind AS asset_kind, s.scale, s.chain_id,
                  s.token_address, t.amount AS "amount!", t.fee AS "fee!",
                  t.available AS "available!"
             FROM (SELECT p.entry_id, p.asset,
                          coalesce(-sum(p.amount) FILTER (WHERE NOT p.fee), 0) AS amount,
                          coalesce(sum(p.amount) FILTER (WHERE p.fee), 0) AS fee,
                          bool_or(a.kind IN ('available', 'receivable')) AS available
                     FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                    WHERE p.owner = $1 AND p.owner <> '' AND p.phase = 'posted'
                      AND p.entry_id > $2
                    GROUP BY p.entry_id, p.asset
                    ORDER BY p.entry_id, p.asset
                    LIMIT $3) t
             JOIN ledger_entries e ON e.id = t.entry_id
             JOIN assets s ON s.code = t.asset
            ORDER BY t.entry_id, t.asset"#,
        merchant.as_str(),
        after,
        limit,
    )
    .fetch_all(conn)
    .await?)
}
