//! Anchoring: after batches commit, the log's latest checkpoint is anchored
//! in `SettlementAnchor` (with the previous root), confirmed to the chain's
//! depth, and every batch it covers records where it was anchored and
//! announces `settlement.anchored`.
//!
//! Only the newest checkpoint is anchored when several batches settled in
//! between: the contract needs a growing size, and consistency proofs link
//! any two checkpoints, so nothing is lost by skipping the ones in between.
//!
//! A reorg deeper than the confirmation depth can take an anchor away after
//! the batches were marked. Every pass first looks at the recent confirmed
//! anchors again: the batches of one the chain no longer has go back to
//! unanchored, in the transaction that retires it, and are anchored again
//! (with the newest checkpoint, announced again), so their proof bundles
//! never point at an orphaned transaction.
//!
//! The contract also limits how many leaves one anchor may add (its
//! `maxGrowth`): a backlog beyond that is anchored in steps, each at the
//! largest size within reach, recorded as a checkpoint of its own.

use super::{SettlementError, batch};
use crate::db::Db;
use crate::ids::{MerchantId, SettlementId};
use crate::telemetry::ErrorChain;
use crate::transparency::TransparencyLog;
use crate::transparency::anchor::{self, Anchorer, anchor_checkpoint};

/// Anchors the latest checkpoint if some batch is not anchored yet (or its
/// anchor was reorged away), and marks the batches it covers; returns how
/// many batches were marked.
pub async fn anchor_pending(pool: &Db, anchorer: &Anchorer) -> Result<usize, SettlementError> {
    unmark_orphaned(pool, anchorer).await?;
    let pending = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM settlements WHERE anchored_at IS NULL AND leaf_count > 0"#
    )
    .fetch_one(pool)
    .await?;
    if pending == 0 {
        return Ok(0);
    }
    let checkpoint = {
        let mut conn = pool.acquire().await?;
        TransparencyLog::latest_checkpoint(&mut conn).await?
    };
    let Some(checkpoint) = checkpoint else {
        return Ok(0);
    };
    anchor_steps_below(pool, anchorer, &checkpoint).await?;
    let record = anchor_checkpoint(pool, anchorer, checkpoint.tree_size)
        .await
        .map_err(|e| {
            SettlementError::NotConfigured(format!("anchoring failed: {}", ErrorChain(&e)))
        })?;
    let size = i64::try_from(checkpoint.tree_size)
        .map_err(|_| SettlementError::Corrupt("tree size beyond i64".into()))?;
    let mut tx = pool.begin().await?;
    let covered = sqlx::query!(
        r#"UPDATE settlements
              SET checkpoint_size = $1, checkpoint_root = $2, anchor_chain_id = $3,
                  anchor_contract = $4, anchor_tx_hash = $5, anchor_block = $6, anchored_at = now()
            WHERE anchored_at IS NULL AND first_leaf + leaf_count <= $1 AND leaf_count > 0
        RETURNING id AS "id: SettlementId", merchant_id AS "merchant_id: MerchantId""#,
        size,
        &checkpoint.root[..],
        i64::try_from(record.chain_id).unwrap_or(i64::MAX),
        record.contract.to_string(),
        record.tx_hash.to_string(),
        i64::try_from(record.block_number).unwrap_or(i64::MAX),
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &covered {
        let settlement = batch::load(pool, &row.merchant_id, &row.id)
            .await?
            .ok_or_else(|| SettlementError::Corrupt(format!("{} vanished", row.id)))?;
        // `load` reads committed state; the anchor fields are this
        // transaction's, so fill them in for the event.
        let settlement = super::Settlement {
            checkpoint: Some((size, checkpoint.root.to_vec())),
            anchor: Some((
                i64::try_from(record.chain_id).unwrap_or(i64::MAX),
                record.contract.to_string(),
                record.tx_hash.to_string(),
                i64::try_from(record.block_number).unwrap_or(i64::MAX),
            )),
            ..settlement
        };
        let contents = super::contents(pool, &row.id).await?;
        batch::announce_anchored(&mut tx, &settlement, &contents).await?;
    }
    tx.commit().await?;
    Ok(covered.len())
}

/// Puts the batches of every recent anchor a reorg took away back to
/// unanchored, retiring the anchor in the same transaction.
async fn unmark_orphaned(pool: &Db, anchorer: &Anchorer) -> Result<(), SettlementError> {
    let failed = |e: anchor::AnchorError| {
        SettlementError::NotConfigured(format!("checking anchors again failed: {}", ErrorChain(&e)))
    };
    let orphaned = anchor::orphaned_anchors(pool, anchorer)
        .await
        .map_err(failed)?;
    if orphaned.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for o in &orphaned {
        anchor::retire(&mut tx, o).await.map_err(failed)?;
        let batches = sqlx::query!(
            r#"UPDATE settlements
                  SET checkpoint_size = NULL, checkpoint_root = NULL, anchor_chain_id = NULL,
                      anchor_contract = NULL, anchor_tx_hash = NULL, anchor_block = NULL,
                      anchored_at = NULL
                WHERE anchor_tx_hash = $1"#,
            o.tx_hash.to_string(),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tracing::error!(tree_size = o.tree_size, tx = %o.tx_hash, block = o.block_number,
            batches, "a reorg deeper than the confirmations took a checkpoint's anchor away; anchoring again");
    }
    tx.commit().await?;
    Ok(())
}

/// Anchors checkpoints at the contract's reach, one after the other, until
/// `checkpoint` is within it (nothing when it already is).
async fn anchor_steps_below(
    pool: &Db,
    anchorer: &Anchorer,
    checkpoint: &crate::transparency::Checkpoint,
) -> Result<(), SettlementError> {
    let failed = |e: crate::transparency::anchor::AnchorError| {
        SettlementError::NotConfigured(format!("anchoring failed: {}", ErrorChain(&e)))
    };
    let mut previous = 0;
    loop {
        let reach = anchorer.reach().await.map_err(failed)?;
        // A reach that stopped growing (the contract is full) is for
        // anchor_checkpoint to report.
        if checkpoint.tree_size <= reach || reach <= previous {
            return Ok(());
        }
        tracing::info!(
            latest = checkpoint.tree_size,
            reach,
            "the log grew beyond one anchor's limit; anchoring a step"
        );
        let step = {
            let log = TransparencyLog::new(checkpoint.origin.clone())?;
            let mut conn = pool.acquire().await?;
            log.checkpoint_at_size(&mut conn, reach).await?
        };
        anchor_checkpoint(pool, anchorer, step.tree_size)
            .await
            .map_err(failed)?;
        previous = reach;
    }
}
