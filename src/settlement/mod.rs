//! Settlement: per merchant and period, the ledger movements not settled
//! yet become one batch.
//!
//! In one transaction a batch (1) takes every ledger entry of the merchant
//! that no batch has taken (`settlement_items.entry_id` is UNIQUE, so an
//! entry is settled once even with two nodes running), (2) appends one leaf
//! per settled item to the transparency log, (3) moves the merchant's
//! pending funds to available and nets what it owes (`receivable`), and
//! (4) pays out what is available: fiat as a payout record, crypto to the
//! merchant's payout address when one is set, sent by the hot wallet
//! ([`payouts`]). Anchoring the log's new
//! checkpoint on-chain happens after the commit ([`anchoring`]); the batch
//! records where once it is confirmed.

pub mod anchoring;
mod batch;
pub mod jobs;
pub mod payouts;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub use batch::run;

use crate::db::Db;
use crate::ids::{MerchantId, SettlementId};
use crate::ledger::LedgerError;
use crate::page::{Listed, Page};
use crate::transparency::TransparencyError;

/// Errors of settlement.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// No such settlement for this merchant.
    #[error("no such settlement: {0}")]
    NotFound(String),
    /// Settlement is not configured (no anchor chain).
    #[error("settlement is not configured: {0}")]
    NotConfigured(String),
    /// The ledger refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The transparency log refused.
    #[error(transparent)]
    Log(#[from] TransparencyError),
    /// Stored data is not what it should be.
    #[error("corrupt settlement data: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A settlement batch as stored.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// `st_…`.
    pub id: SettlementId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// Start of the period (the previous batch's end).
    pub period_start: OffsetDateTime,
    /// End of the period.
    pub period_end: OffsetDateTime,
    /// Totals by asset code.
    pub totals: BTreeMap<String, AssetTotals>,
    /// First leaf of the batch in the transparency log.
    pub first_leaf: i64,
    /// Number of leaves.
    pub leaf_count: i64,
    /// The anchored checkpoint covering it, once anchored.
    pub checkpoint: Option<(i64, Vec<u8>)>,
    /// Where it was anchored: chain id, contract, tx hash, block.
    pub anchor: Option<(i64, String, String, i64)>,
    /// Creation.
    pub created_at: OffsetDateTime,
}

/// One asset's totals in a settlement (stored in `settlements.totals`,
/// by asset code). Amounts are decimal strings of the asset's smallest
/// unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssetTotals {
    /// What the settled movements added up to, before fees.
    pub gross: String,
    /// Fees taken.
    pub fees: String,
    /// `gross - fees`.
    pub net: String,
    /// Moved from pending to available.
    pub made_available: String,
    /// Paid out by this batch.
    pub paid_out: String,
}

/// A settled ledger movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SettlementItem {
    /// The balance transaction, `txn_…`.
    pub balance_transaction: String,
    /// Its type (`payment`, `refund`, `payout`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The object it moved money for (`pay_…`, `re_…`, …), if any.
    #[schema(required = true)]
    pub source: Option<String>,
    /// Asset code (`usd`, `usdc:8453`, …).
    pub asset: String,
    /// Signed change of the merchant's balance, fees excluded, as a
    /// decimal string of the smallest unit.
    pub amount: String,
    /// Fee, as a decimal string of the smallest unit.
    pub fee: String,
    /// Index of its leaf in the transparency log.
    #[schema(required = true, minimum = 0)]
    pub leaf_index: Option<i64>,
}

/// Where a payout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Waiting for its bank file or its on-chain transfer.
    Pending,
    /// In a bank file, waiting for its debit in a statement.
    InTransit,
    /// The money left.
    Paid,
    /// It did not happen; the money is back in the merchant's balance.
    Failed,
}

crate::names!(PayoutStatus);

/// `"payout"`: what the object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutObjectName {
    /// A payout.
    Payout,
}

/// Money a settlement paid out: fiat as a record for the bank file
/// (`paid` when made), crypto as an on-chain transfer from the node's hot
/// wallet to the merchant's payout address (`pending` until the transfer
/// is confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Payout)]
pub struct PayoutObject {
    /// Unique identifier, `po_…`.
    #[schema(pattern = "^po_[A-Za-z0-9]{24}$")]
    pub id: String,
    /// Always `payout`.
    #[schema(schema_with = payout_object_name)]
    pub object: PayoutObjectName,
    /// Asset code.
    pub asset: String,
    /// Decimal string of the smallest unit.
    pub amount: String,
    /// `bank_account` (fiat) or the 0x address of a crypto payout.
    pub destination: String,
    /// Where the payout is.
    pub status: PayoutStatus,
    /// The transaction of a crypto payout, once sent.
    #[schema(required = true)]
    pub tx_hash: Option<String>,
    /// Creation time (Unix seconds).
    pub created: i64,
}

/// What a settlement object lists besides its totals.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// The settled ledger movements, each with its leaf.
    pub items: Vec<SettlementItem>,
    /// What the batch paid out: fiat records and on-chain transfers.
    pub payouts: Vec<PayoutObject>,
}

/// `"settlement"`: what the object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementObjectName {
    /// A settlement.
    Settlement,
}

/// Where a settlement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    /// Settled and in the transparency log, its checkpoint not yet anchored.
    Settled,
    /// A checkpoint covering it is anchored on-chain.
    Anchored,
}

/// A settlement batch: the merchant's ledger movements of a period,
/// appended to the transparency log and, once anchored, provable on-chain.
/// As the API answers it and events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Settlement)]
pub struct SettlementObject {
    /// Unique identifier, `st_…`.
    #[schema(value_type = String, pattern = "^st_[A-Za-z0-9]{24}$")]
    pub id: SettlementId,
    /// Always `settlement`.
    #[schema(schema_with = settlement_object_name)]
    pub object: SettlementObjectName,
    /// The period it settles.
    pub period: Period,
    /// Totals by asset code.
    pub totals: BTreeMap<String, AssetTotals>,
    /// The settled ledger movements.
    pub items: Vec<SettlementItem>,
    /// What it paid out: fiat records and on-chain transfers.
    pub payouts: Vec<PayoutObject>,
    /// Its leaves in the transparency log.
    pub leaves: Leaves,
    /// The anchored checkpoint covering it; null until anchored.
    #[schema(required = true)]
    pub checkpoint: Option<CheckpointRef>,
    /// Where the checkpoint was anchored; null until anchored.
    #[schema(required = true)]
    pub anchor: Option<Anchor>,
    /// `settled` or `anchored`.
    pub status: SettlementStatus,
    /// Creation time (Unix seconds).
    pub created: i64,
}

/// A settlement's period (Unix seconds).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SettlementPeriod)]
pub struct Period {
    /// Start: the previous settlement's end.
    pub start: i64,
    /// End.
    pub end: i64,
}

/// A settlement's leaves in the transparency log.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SettlementLeaves)]
pub struct Leaves {
    /// Index of the first.
    pub first: i64,
    /// How many.
    pub count: i64,
}

/// The checkpoint covering a settlement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointRef {
    /// Leaves in the tree it commits to.
    pub tree_size: i64,
    /// Its root, 0x-hex.
    pub root: String,
}

/// Where a checkpoint was anchored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SettlementAnchor)]
pub struct Anchor {
    /// EIP-155 chain id.
    pub chain_id: i64,
    /// The anchor contract.
    pub contract: String,
    /// The anchoring transaction.
    pub tx_hash: String,
    /// Its block.
    pub block_number: i64,
}

crate::object_name_schema!(payout_object_name, "payout");
crate::object_name_schema!(settlement_object_name, "settlement");

impl Settlement {
    /// The API object (`"object": "settlement"`).
    pub fn to_api(&self, contents: &Contents) -> SettlementObject {
        SettlementObject {
            id: self.id.clone(),
            object: SettlementObjectName::Settlement,
            period: Period {
                start: self.period_start.unix_timestamp(),
                end: self.period_end.unix_timestamp(),
            },
            totals: self.totals.clone(),
            items: contents.items.clone(),
            payouts: contents.payouts.clone(),
            leaves: Leaves {
                first: self.first_leaf,
                count: self.leaf_count,
            },
            checkpoint: self.checkpoint.as_ref().map(|(size, root)| CheckpointRef {
                tree_size: *size,
                root: format!("0x{}", hex::encode(root)),
            }),
            anchor: self
                .anchor
                .as_ref()
                .map(|(chain_id, contract, tx, block)| Anchor {
                    chain_id: *chain_id,
                    contract: contract.clone(),
                    tx_hash: tx.clone(),
                    block_number: *block,
                }),
            status: if self.anchor.is_some() {
                SettlementStatus::Anchored
            } else {
                SettlementStatus::Settled
            },
            created: self.created_at.unix_timestamp(),
        }
    }
}

/// One settlement of `merchant`, with its contents.
pub async fn get(
    pool: &Db,
    merchant: &MerchantId,
    id: &SettlementId,
) -> Result<(Settlement, Contents), SettlementError> {
    let settlement = batch::load(pool, merchant, id)
        .await?
        .ok_or_else(|| SettlementError::NotFound(id.to_string()))?;
    let contents = contents(pool, id).await?;
    Ok((settlement, contents))
}

async fn contents(pool: &Db, id: &SettlementId) -> Result<Contents, SettlementError> {
    Ok(Contents {
        items: batch::items(pool, id).await?,
        payouts: payouts::of_settlements(pool, &[id.as_str()])
            .await?
            .remove(id.as_str())
            .unwrap_or_default(),
    })
}

/// The payouts of each of `settlements` (a page of a list), by settlement.
pub async fn payouts_of(
    pool: &Db,
    settlements: &[Settlement],
) -> Result<std::collections::HashMap<String, Vec<PayoutObject>>, SettlementError> {
    let ids: Vec<&str> = settlements.iter().map(|s| s.id.as_str()).collect();
    payouts::of_settlements(pool, &ids).await
}

/// A page of a merchant's settlements, newest first: the page after
/// `starting_after` or, with `ending_before`, the page just before (newer
/// than) it, and whether more lie beyond it in that direction. A cursor
/// that is not one of the merchant's settlements is
/// [`SettlementError::NotFound`].
pub async fn list(
    pool: &Db,
    merchant: &MerchantId,
    page: &Page<SettlementId>,
    limit: i64,
) -> Result<Listed<Settlement>, SettlementError> {
    if let Some(cursor) = page.cursor()
        && batch::load(pool, merchant, cursor).await?.is_none()
    {
        return Err(SettlementError::NotFound(cursor.to_string()));
    }
    let limit_rows = usize::try_from(limit).unwrap_or(0);
    let (starting_after, ending_before) = page.bounds();
    let Some(before) = ending_before else {
        let rows = batch::list(pool, merchant, starting_after, limit + 1).await?;
        return Ok(Listed::from_rows(rows, limit_rows, false));
    };
    // The settlements newer than the cursor, nearest first, on
    // (created_at, id), the order of the index.
    let ids = sqlx::query_scalar!(
        r#"SELECT s.id AS "id: SettlementId" FROM settlements s, settlements c
            WHERE c.id = $2 AND c.merchant_id = $1 AND s.merchant_id = $1
              AND (s.created_at, s.id) > (c.created_at, c.id)
            ORDER BY s.created_at ASC, s.id ASC LIMIT $3"#,
        merchant.as_str(),
        before.as_str(),
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let ids = Listed::from_rows(ids, limit_rows, true);
    let mut rows = Vec::with_capacity(ids.data.len());
    for id in &ids.data {
        if let Some(s) = batch::load(pool, merchant, id).await? {
            rows.push(s);
        }
    }
    Ok(Listed {
        data: rows,
        has_more: ids.has_more,
    })
}
