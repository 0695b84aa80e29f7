//! Sweeping deposit addresses into the treasury (issue 17).
//!
//! Per chain with a `DepositFactory` and a hot wallet, every
//! `sweep_interval_secs` the sweeper looks, per asset, for deposit addresses
//! whose confirmed, unswept deposits reach the asset's `sweep_min_units`
//! (dust is left until more arrives: sweeping it would cost more gas than
//! it is worth), and queues one hot-wallet send per batch of up to
//! `sweep_batch` of them: `sweep(salts, token)` or `sweepNative(salts)` of the
//! factory. The send then goes through the sender like a refund (nonce row,
//! write-ahead signing, fee bumps, confirmations), and its gas is booked to
//! `network_fees:<chain>`. When it is confirmed, [`on_chain_finished`] books
//! what it moved from `deposits:<chain>` to `treasury:<chain>`; a reverted
//! sweep books nothing and its addresses are swept again later.
//!
//! An address is in at most one open sweep. A sweep moves the address's
//! whole on-chain balance, which may include deposits not yet confirmed:
//! those stay booked in `deposits:<chain>` until the next sweep of the
//! address books them (moving nothing more on-chain). `epg reconcile chain`
//! counts deposit addresses and treasury together, so it stays exact
//! throughout.

use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolCall;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::ChainConfig;
use super::contracts::DepositFactory;
use super::deposits::ERC20_ORDINALS;
use super::sender::{self, ChainSend, NewSweep, SendOutcome};
use super::watcher::SinkError;
use super::watcher::store::{hex0x, int8};
use crate::db::Db;
use crate::ids::ChainSendId;
use crate::ledger::{self, AccountRef, Entry, EntryKind};
use crate::money::Amount;

/// Most addresses one sweep transaction may move (the gas of 200 ERC-20
/// deposits is about 9M, well within a block).
pub const MAX_BATCH: u32 = 200;

/// Errors of a sweep round.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored value is not what it should be.
    #[error("{0}")]
    Corrupt(String),
}

/// An address with confirmed deposits the node has not swept.
#[derive(Debug, Clone)]
struct Due {
    address: String,
    salt: B256,
    unswept: Amount,
}

/// One round on `chain`: queues the sweeps that are due; returns them.
pub async fn plan(pool: &Db, chain: &ChainConfig) -> Result<Vec<ChainSendId>, SweepError> {
    let Some(factory) = chain.deposit_factory else {
        return Ok(Vec::new());
    };
    let mut tx = pool.begin().await?;
    // One planner per chain at a time, on any node.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtext('epg.sweep'), $1::int4)",
        i32::try_from(chain.chain_id % (1 << 31)).unwrap_or(0),
    )
    .execute(&mut *tx)
    .await?;
    let batch = usize::try_from(chain.sweep_batch.clamp(1, MAX_BATCH)).unwrap_or(50);
    let mut queued = Vec::new();
    for asset in &chain.assets {
        let code = asset
            .asset_code(chain.chain_id)
            .map_err(|e| SweepError::Corrupt(e.to_string()))?;
        let token = asset.token();
        let threshold = i128::from(asset.sweep_min_units.unwrap_or(0)).max(1);
        let due: Vec<Due> = due(&mut tx, chain.chain_id, token, code.as_str())
            .await?
            .into_iter()
            .filter(|d| d.unswept.units() >= threshold)
            .collect();
        for group in due.chunks(batch) {
            let salts: Vec<B256> = group.iter().map(|d| d.salt).collect();
            let input = if token == Address::ZERO {
                DepositFactory::sweepNativeCall { salts }.abi_encode()
            } else {
                DepositFactory::sweepCall { salts, token }.abi_encode()
            };
            let total = group
                .iter()
                .try_fold(Amount::ZERO, |sum, d| sum.checked_add(d.unswept))
                .ok_or_else(|| SweepError::Corrupt("sweep total overflows".into()))?;
            // An object id as the ledger wants sources: `sw_` and 24
            // alphanumerics.
            let random = ChainSendId::generate();
            let object_id = format!("sw_{}", random.as_str().trim_start_matches("cs_"));
            let id = sender::queue_sweep(
                &mut tx,
                &NewSweep {
                    chain_id: chain.chain_id,
                    object_id: &object_id,
                    asset: &code,
                    token,
                    factory,
                    amount: total,
                    input: &input,
                },
            )
            .await?;
            for d in group {
                sqlx::query!(
                    r#"INSERT INTO deposit_sweeps (send_id, chain_id, deposit_address, asset, amount)
                       VALUES ($1, $2, $3, $4, $5)"#,
                    id.as_str(),
                    int8(chain.chain_id)?,
                    d.address,
                    code.as_str(),
                    d.unswept.to_decimal(),
                )
                .execute(&mut *tx)
                .await?;
            }
            tracing::info!(chain_id = chain.chain_id, send = %id, asset = %code, addresses = group.len(), amount = %total, "deposit sweep queued");
            queued.push(id);
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// Addresses of `token` with confirmed deposits not yet swept (nor in an
/// open sweep), and how much.
async fn due(
    conn: &mut PgConnection,
    chain_id: u64,
    token: Address,
    asset: &str,
) -> Result<Vec<Due>, SweepError> {
    let rows = sqlx::query!(
        r#"SELECT c.deposit_address AS "address!", c.deposit_salt AS "salt!",
                  sum(t.amount) - coalesce((
                      SELECT sum(s.amount) FROM deposit_sweeps s JOIN chain_sends cs ON cs.id = s.send_id
                       WHERE s.chain_id = c.chain_id AND s.deposit_address = c.deposit_address
                         AND s.asset = $3 AND cs.status <> 'failed'), 0) AS "unswept!"
             FROM crypto_payments c
             JOIN chain_transfers t ON t.chain_id = c.chain_id AND t.router = c.deposit_address
                  AND t.token = $2 AND t.status = 'confirmed' AND t.tx_log_ordinal >= $4
            WHERE c.chain_id = $1 AND c.deposit_address IS NOT NULL
              AND NOT EXISTS (
                  SELECT 1 FROM deposit_sweeps s JOIN chain_sends cs ON cs.id = s.send_id
                   WHERE s.chain_id = c.chain_id AND s.deposit_address = c.deposit_address
                     AND cs.status IN ('queued', 'sent'))
            GROUP BY c.chain_id, c.deposit_address, c.deposit_salt
            ORDER BY c.deposit_address"#,
        int8(chain_id)?,
        hex0x(token.as_slice()),
        asset,
        i32::try_from(ERC20_ORDINALS).unwrap_or(i32::MAX),
    )
    .fetch_all(conn)
    .await?;
    let mut due = Vec::new();
    for row in rows {
        if row.unswept <= Decimal::ZERO {
            continue;
        }
        let salt = B256::from_str(&row.salt)
            .map_err(|_| SweepError::Corrupt(format!("deposit salt {}", row.salt)))?;
        let unswept = Amount::try_from(row.unswept)
            .map_err(|_| SweepError::Corrupt(format!("unswept amount at {}", row.address)))?;
        due.push(Due {
            address: row.address,
            salt,
            unswept,
        });
    }
    Ok(due)
}

/// Books the end of sweep `send`, inside the sender's transaction: what it
/// moved leaves `deposits:<chain>` for `treasury:<chain>`. A reverted
/// sweep moved nothing; its addresses become due again.
pub async fn on_chain_finished(
    conn: &mut PgConnection,
    send: &ChainSend,
    outcome: SendOutcome,
) -> Result<(), SinkError> {
    if outcome == SendOutcome::Reverted {
        tracing::warn!(send = %send.id, "deposit sweep reverted; its addresses will be swept again");
        return Ok(());
    }
    let entry = Entry::new(
        format!("{}:swept", send.object_id),
        EntryKind::custom("deposit_sweep"),
    )
    .transfer(
        AccountRef::treasury(send.chain_id),
        AccountRef::deposits(send.chain_id),
        &send.asset,
        send.amount,
    );
    ledger::post(conn, &entry).await.map_err(SinkError::from)?;
    Ok(())
}

/// Starts a sweeper per chain that has a deposit factory and a hot wallet.
pub fn spawn_all(
    jobs: &mut JoinSet<()>,
    chains: &[ChainConfig],
    sendable: &[u64],
    pool: &Db,
    shutdown: &CancellationToken,
) {
    for chain in chains {
        if chain.deposit_factory.is_none() || !sendable.contains(&chain.chain_id) {
            continue;
        }
        let (chain, pool, stop) = (chain.clone(), pool.clone(), shutdown.clone());
        jobs.spawn(async move {
            let every = Duration::from_secs(chain.sweep_interval_secs.max(1));
            loop {
                match plan(&pool, &chain).await {
                    Ok(queued) if !queued.is_empty() => {
                        tracing::info!(chain_id = chain.chain_id, sweeps = queued.len(), "deposit sweeps queued");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(chain_id = chain.chain_id, error = %e, "deposit sweep round failed"),
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }
}
