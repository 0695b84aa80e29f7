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

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

pub use batch::run;

use crate::ids::{MerchantId, SettlementId};
use crate::ledger::LedgerError;
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
    /// Per-asset totals.
    pub totals: Value,
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

impl Settlement {
    /// The API object (`"object": "settlement"`), with its items.
    pub fn to_api(&self, items: &[Value]) -> Value {
        json!({
            "id": self.id,
            "object": "settlement",
            "period": {
                "start": self.period_start.unix_timestamp(),
                "end": self.period_end.unix_timestamp(),
            },
            "totals": self.totals,
            "items": items,
            "leaves": { "first": self.first_leaf, "count": self.leaf_count },
            "checkpoint": self.checkpoint.as_ref().map(|(size, root)| json!({
                "tree_size": size,
                "root": format!("0x{}", hex::encode(root)),
            })),
            "anchor": self.anchor.as_ref().map(|(chain_id, contract, tx, block)| json!({
                "chain_id": chain_id,
                "contract": contract,
                "tx_hash": tx,
                "block_number": block,
            })),
            "status": if self.anchor.is_some() { "anchored" } else { "settled" },
            "created": self.created_at.unix_timestamp(),
        })
    }
}

/// One settlement of `merchant`, with its items as API objects.
pub async fn get(
    pool: &PgPool,
    merchant: &MerchantId,
    id: &SettlementId,
) -> Result<(Settlement, Vec<Value>), SettlementError> {
    let settlement = batch::load(pool, merchant, id)
        .await?
        .ok_or_else(|| SettlementError::NotFound(id.to_string()))?;
    let items = batch::items(pool, id).await?;
    Ok((settlement, items))
}

/// A page of a merchant's settlements, newest first.
pub async fn list(
    pool: &PgPool,
    merchant: &MerchantId,
    starting_after: Option<&SettlementId>,
    limit: i64,
) -> Result<(Vec<Settlement>, bool), SettlementError> {
    let mut rows = batch::list(pool, merchant, starting_after, limit + 1).await?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, has_more))
}
