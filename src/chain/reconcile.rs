//! `epg reconcile chain`: the node's records against the chain itself.
//!
//! Three checks per chain:
//!
//! 1. **Every confirmed transfer** (`chain_transfers`, status `confirmed`)
//!    against its receipt: the transaction exists and succeeded, in the
//!    recorded block, which is canonical, and its log at the recorded index
//!    is the router's `PaymentReceived` with the same reference, payer,
//!    token and amount.
//! 2. **Every finished hot-wallet send** (`chain_sends`, refunds, payouts
//!    and deposit sweeps) against its receipt: sent from the treasury, in
//!    the recorded canonical block, succeeded exactly when recorded
//!    `confirmed`, with the recorded gas fee, and (refunds and payouts)
//!    moving the recorded amount to the recorded address (the token's
//!    `Transfer` log, or the transaction's value for the native coin).
//! 3. **The treasury per asset** against the ledger. The treasury may have
//!    held funds before the node started watching, so what is compared is
//!    the *change* of its on-chain balance since the watcher's start
//!    (balance after block `start_block - 1` → balance after the
//!    *confirmed horizon*, the highest block whose payments are all
//!    confirmed: `cursor - confirmations + 1`) with the ledger's posted
//!    balance of `treasury:<chain_id>` in that asset (debits minus credits:
//!    crypto receipts debit it, refunds, payouts and gas paid from it credit
//!    it). The database side is read in one snapshot, so the cursor and the
//!    ledger agree with each other; the chain side is read at fixed blocks.
//!    Money sent to the treasury outside the router, or spent from it
//!    without a ledger posting, shows up here — that is the point. Sends
//!    the hot wallet finished in blocks above the horizon are taken out of
//!    the ledger side, since the chain side does not see them yet.
//!
//!    The balance before the start block needs that block's state, which
//!    only an archive node keeps. Each clean run therefore records a
//!    checkpoint (both sides at its horizon's block); a run against an
//!    endpoint that cannot serve the start block's state compares the
//!    change since the newest checkpoint still canonical instead, and
//!    says so. A checkpoint is only written by a run that found nothing.
//!
//!    Deposit addresses (issue 17) hold the treasury's money until they
//!    are swept: their balances at the horizon are added to the chain side,
//!    and the ledger's `deposits:<chain_id>` to the ledger side, so the
//!    books compare equal before and after a sweep.
//!
//! Every mismatch is a [`Discrepancy`]; the command exits non-zero if there
//! is one.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolEvent;
use futures::future::try_join_all;
use sqlx::PgConnection;

use super::config::ChainConfig;
use super::contracts::{DevStablecoin, PaymentRouter};
use super::deposits;
use super::rpc::{ChainRpc, RpcError};
use super::watcher::store::{self, hex0x, int8};
use super::watcher::{Transfer, TransferStatus};
use crate::db::Db;
use crate::ledger::{AccountRef, account_balance};
use crate::money::AssetCode;

/// Why reconciliation could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The chain could not be read.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The database could not be read.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The ledger could not be read.
    #[error("ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Nothing to reconcile against.
    #[error("{0}")]
    Setup(String),
    /// A configured asset has no ledger code.
    #[error("asset of the chain")]
    Asset(#[source] crate::money::MoneyError),
}

/// An asset of a chain to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAsset {
    /// Symbol (`usdc`).
    pub symbol: String,
    /// Token (zero: the native coin).
    pub token: Address,
}

/// One chain to reconcile.
#[derive(Debug, Clone)]
pub struct Target {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Reads from the chain.
    pub rpc: ChainRpc,
    /// The router whose logs are expected.
    pub router: Address,
    /// Whose balances are compared.
    pub treasury: Address,
    /// Confirmation depth.
    pub confirmations: u64,
    /// The assets to compare.
    pub assets: Vec<TargetAsset>,
}

impl Target {
    /// The chain as configured.
    pub fn from_config(chain: &ChainConfig) -> Result<Self, ReconcileError> {
        Ok(Self {
            chain_id: chain.chain_id,
            rpc: ChainRpc::new(&chain.http_url, chain.rpc_timeout())?,
            router: chain.router,
            treasury: chain.treasury,
            confirmations: chain.confirmations,
            assets: chain
                .assets
                .iter()
                .map(|a| TargetAsset {
                    symbol: a.symbol.clone(),
                    token: a.token(),
                })
                .collect(),
        })
    }

    /// The chain behind `rpc_url`, as its watcher last recorded it in the
    /// database (router, treasury, confirmations, assets).
    pub async fn from_database(pool: &Db, rpc_url: &str) -> Result<Self, ReconcileError> {
        let rpc = ChainRpc::new(rpc_url, std::time::Duration::from_secs(30))?;
        let chain_id = rpc.chain_id().await?;
        let row = sqlx::query!(
            "SELECT router, treasury, confirmations, assets FROM chain_cursors WHERE chain_id = $1",
            int8(chain_id)?,
        )
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| {
            ReconcileError::Setup(format!(
                "no watcher has recorded chain {chain_id} in this database"
            ))
        })?;
        let bad = |what: &str| ReconcileError::Setup(format!("chain_cursors: bad {what}"));
        let assets = row
            .assets
            .as_array()
            .ok_or_else(|| bad("assets"))?
            .iter()
            .map(|a| {
                let symbol = a["symbol"].as_str().ok_or_else(|| bad("asset symbol"))?;
                let token = a["token"]
                    .as_str()
                    .and_then(|t| Address::from_str(t).ok())
                    .ok_or_else(|| bad("asset token"))?;
                Ok(TargetAsset {
                    symbol: symbol.to_owned(),
                    token,
                })
            })
            .collect::<Result<Vec<_>, ReconcileError>>()?;
        Ok(Self {
            chain_id,
            rpc,
            router: Address::from_str(&row.router).map_err(|_| bad("router"))?,
            treasury: Address::from_str(&row.treasury).map_err(|_| bad("treasury"))?,
            confirmations: u64::try_from(row.confirmations).map_err(|_| bad("confirmations"))?,
            assets,
        })
    }
}

/// Something the chain and the node disagree about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    /// The chain.
    pub chain_id: u64,
    /// What disagrees (`transfer 0x…:0`, `treasury usdc:31337`).
    pub subject: String,
    /// How.
    pub problem: String,
}

/// What reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// What was compared and agreed, one line each.
    pub checked: Vec<String>,
    /// What did not.
    pub discrepancies: Vec<Discrepancy>,
}

impl Report {
    /// Whether nothing disagrees.
    pub fn is_ok(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.checked {
            writeln!(f, "ok    {line}")?;
        }
        for d in &self.discrepancies {
            writeln!(
                f,
                "DISCREPANCY chain {} {}: {}",
                d.chain_id, d.subject, d.problem
            )?;
        }
        if self.is_ok() {
            writeln!(f, "no discrepancy")
        } else {
            writeln!(f, "{} discrepancies", self.discrepancies.len())
        }
    }
}

/// The database side of one chain, read in one snapshot.
struct Snapshot {
    cursor: Option<u64>,
    start_block: u64,
    confirmed: Vec<Transfer>,
    /// Per asset: ledger posted balance of the treasury (base units).
    ledger: Vec<(TargetAsset, AssetCode, i128)>,
    /// Finished hot-wallet sends.
    sends: Vec<FinishedSend>,
    /// Every deposit address of the chain.
    deposit_addresses: Vec<Address>,
}

/// A hot-wallet send that ended, as recorded.
struct FinishedSend {
    id: String,
    /// A sweep of deposit addresses: it moves money between two things
    /// both counted on the chain side, so only its gas is seen there.
    sweep: bool,
    token: Address,
    to: Address,
    amount: U256,
    confirmed: bool,
    tx_hash: B256,
    block_number: u64,
    block_hash: B256,
    gas_fee: U256,
}

async fn finished_sends(
    conn: &mut PgConnection,
    chain_id: u64,
) -> Result<Vec<FinishedSend>, ReconcileError> {
    let rows = sqlx::query!(
        r#"SELECT id, purpose, token, to_address, amount::text AS "amount!", status,
                  tx_hash AS "tx_hash!", block_number AS "block_number!",
                  block_hash AS "block_hash!", gas_fee::text AS "gas_fee!"
             FROM chain_sends
            WHERE chain_id = $1 AND status IN ('confirmed', 'failed')
              AND purpose IN ('refund', 'payout', 'sweep')
            ORDER BY block_number, id"#,
        int8(chain_id)?,
    )
    .fetch_all(conn)
    .await?;
    let bad = |what: &str, v: &str| ReconcileError::Setup(format!("chain_sends: bad {what} {v}"));
    rows.into_iter()
        .map(|r| {
            Ok(FinishedSend {
                token: Address::from_str(&r.token).map_err(|_| bad("token", &r.token))?,
                to: Address::from_str(&r.to_address).map_err(|_| bad("address", &r.to_address))?,
                amount: U256::from_str(&r.amount).map_err(|_| bad("amount", &r.amount))?,
                confirmed: r.status == "confirmed",
                tx_hash: B256::from_str(&r.tx_hash).map_err(|_| bad("hash", &r.tx_hash))?,
                block_number: u64::try_from(r.block_number)
                    .map_err(|_| bad("block", &r.block_number.to_string()))?,
                block_hash: B256::from_str(&r.block_hash)
                    .map_err(|_| bad("hash", &r.block_hash))?,
                gas_fee: U256::from_str(&r.gas_fee).map_err(|_| bad("gas fee", &r.gas_fee))?,
                sweep: r.purpose == "sweep",
                id: r.id,
            })
        })
        .collect()
}

async fn snapshot(pool: &Db, target: &Target) -> Result<Snapshot, ReconcileError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query!(
        "SELECT block_number, start_block FROM chain_cursors WHERE chain_id = $1",
        int8(target.chain_id)?,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (cursor, start_block) = match row {
        Some(r) => (
            r.block_number.and_then(|n| u64::try_from(n).ok()),
            u64::try_from(r.start_block).unwrap_or(0),
        ),
        None => (None, 0),
    };
    let confirmed = store::confirmed_transfers(&mut tx, target.chain_id).await?;
    let sends = finished_sends(&mut tx, target.chain_id).await?;
    let mut ledger = Vec::new();
    for asset in &target.assets {
        let code =
            AssetCode::chain(&asset.symbol, target.chain_id).map_err(ReconcileError::Asset)?;
        let balance = treasury_posted(&mut tx, target.chain_id, &code).await?;
        ledger.push((asset.clone(), code, balance));
    }
    let deposit_addresses = sqlx::query_scalar!(
        r#"SELECT deposit_address AS "address!" FROM crypto_payments
            WHERE chain_id = $1 AND deposit_address IS NOT NULL ORDER BY deposit_address"#,
        int8(target.chain_id)?,
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|a| {
        Address::from_str(a)
            .map_err(|_| ReconcileError::Setup(format!("crypto_payments: bad deposit address {a}")))
    })
    .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(Snapshot {
        cursor,
        start_block,
        confirmed,
        ledger,
        sends,
        deposit_addresses,
    })
}

async fn treasury_posted(
    conn: &mut PgConnection,
    chain_id: u64,
    asset: &AssetCode,
) -> Result<i128, ReconcileError> {
    // Unswept deposits are the treasury's too: the chain side counts the
    // deposit addresses' balances with the treasury's.
    let treasury = account_balance(conn, &AccountRef::treasury(chain_id), asset).await?;
    let deposits = account_balance(conn, &AccountRef::deposits(chain_id), asset).await?;
    Ok(treasury.posted.units() + deposits.posted.units())
}

/// Reconciles every target.
pub async fn reconcile(pool: &Db, targets: &[Target]) -> Result<Report, ReconcileError> {
    let mut report = Report::default();
    for target in targets {
        reconcile_chain(pool, target, &mut report).await?;
    }
    Ok(report)
}

async fn reconcile_chain(
    pool: &Db,
    target: &Target,
    report: &mut Report,
) -> Result<(), ReconcileError> {
    let chain_id = target.chain_id;
    let actual = target.rpc.chain_id().await?;
    if actual != chain_id {
        return Err(ReconcileError::Setup(format!(
            "{} serves chain {actual}, expected chain {chain_id}",
            target.rpc.endpoint()
        )));
    }
    let snap = snapshot(pool, target).await?;
    let mut found = Vec::new();

    for chunk in snap.confirmed.chunks(16) {
        let checked = try_join_all(chunk.iter().map(|t| check_transfer(target, t))).await?;
        for (t, problem) in chunk.iter().zip(checked) {
            if let Some(problem) = problem {
                found.push(Discrepancy {
                    chain_id,
                    subject: format!("transfer {}:{} (id {})", t.tx_hash, t.log_index, t.id),
                    problem,
                });
            }
        }
    }
    report.checked.push(format!(
        "chain {chain_id}: {} confirmed transfers checked against their receipts",
        snap.confirmed.len()
    ));
    for chunk in snap.sends.chunks(16) {
        let checked = try_join_all(chunk.iter().map(|s| check_send(target, s))).await?;
        for (s, problem) in chunk.iter().zip(checked) {
            if let Some(problem) = problem {
                found.push(Discrepancy {
                    chain_id,
                    subject: format!("send {} ({})", s.id, s.tx_hash),
                    problem,
                });
            }
        }
    }
    report.checked.push(format!(
        "chain {chain_id}: {} hot-wallet sends checked against their receipts",
        snap.sends.len()
    ));

    let horizon = snap
        .cursor
        .and_then(|c| (c + 1).checked_sub(target.confirmations));
    let baseline = snap.start_block.saturating_sub(1);
    match horizon {
        Some(horizon) if horizon >= baseline => {
            let mut reached = Vec::new();
            for (asset, code, ledger) in &snap.ledger {
                let after = balance(target, asset.token, horizon).await?;
                // Deposit addresses are fresh CREATE2 addresses: before the
                // node quoted them they held nothing, so all they hold now
                // is change.
                let at_deposits =
                    deposit_balances(target, asset.token, &snap.deposit_addresses, horizon).await?;
                let chain_side = after.saturating_add(at_deposits);
                // What the ledger booked for sends the horizon does not cover.
                let unseen: U256 = snap.sends.iter().filter(|s| s.block_number > horizon).fold(
                    U256::ZERO,
                    |sum, s| {
                        let moved = if s.confirmed && !s.sweep && s.token == asset.token {
                            s.amount
                        } else {
                            U256::ZERO
                        };
                        let gas = if asset.token == Address::ZERO {
                            s.gas_fee
                        } else {
                            U256::ZERO
                        };
                        sum.saturating_add(moved).saturating_add(gas)
                    },
                );
                let ledger_side = i128::try_from(unseen)
                    .ok()
                    .and_then(|u| ledger.checked_add(u))
                    .unwrap_or(i128::MAX);
                let transfers: U256 = snap
                    .confirmed
                    .iter()
                    .filter(|t| t.token == asset.token && t.status == TransferStatus::Confirmed)
                    .fold(U256::ZERO, |sum, t| sum.saturating_add(t.amount));
                // From the start when the endpoint still has the state
                // before it; else from the newest checkpoint a clean run
                // left on a block that is still canonical.
                let from = match balance(target, asset.token, baseline).await {
                    Ok(before) => Ok(Baseline {
                        what: format!("blocks {baseline} → {horizon}"),
                        chain_side: before,
                        ledger_side: 0,
                    }),
                    Err(unread) => match checkpoint(pool, target, code, horizon).await? {
                        Some(cp) => Ok(Baseline {
                            what: format!(
                                "blocks {} → {horizon}, from the checkpoint a clean reconciliation left at block {} (the endpoint has no state at the start block {baseline}: {})",
                                cp.block_number, cp.block_number, unread.message
                            ),
                            chain_side: cp.chain_side,
                            ledger_side: cp.ledger_side,
                        }),
                        None => Err(unread),
                    },
                };
                let from = match from {
                    Ok(from) => from,
                    Err(unread) => {
                        found.push(Discrepancy {
                            chain_id,
                            subject: format!("treasury {code}"),
                            problem: format!(
                                "not compared: the endpoint has no state at the start block {baseline} ({}), and no clean reconciliation left a checkpoint on a block still canonical; reconcile against an archive node, or run `epg reconcile chain` regularly so that it keeps checkpoints",
                                unread.message
                            ),
                        });
                        continue;
                    }
                };
                let change = signed_difference(chain_side, from.chain_side);
                let booked = ledger_side.checked_sub(from.ledger_side);
                let line = format!(
                    "chain {chain_id} treasury {code}: on-chain change {} ({}; {at_deposits} at {} deposit addresses), ledger {}, confirmed transfers {transfers}",
                    change.map_or_else(|| "beyond 128 bits".to_owned(), |c| c.to_string()),
                    from.what,
                    snap.deposit_addresses.len(),
                    booked.map_or_else(|| "beyond 128 bits".to_owned(), |b| b.to_string()),
                );
                if change.is_some() && change == booked {
                    report.checked.push(line);
                    reached.push((code.clone(), chain_side, ledger_side));
                } else {
                    found.push(Discrepancy {
                        chain_id,
                        subject: format!("treasury {code}"),
                        problem: line,
                    });
                }
            }
            // Only a run that found nothing wrong vouches for a checkpoint.
            if found.is_empty()
                && !reached.is_empty()
                && let Some(header) = target.rpc.header(horizon).await?
            {
                for (code, chain_side, ledger_side) in &reached {
                    record_checkpoint(pool, chain_id, code, &header, *chain_side, *ledger_side)
                        .await?;
                }
            }
        }
        _ => report.checked.push(format!(
            "chain {chain_id}: no confirmed horizon yet (cursor {:?}); treasury not compared",
            snap.cursor
        )),
    }
    report.discrepancies.extend(found);
    Ok(())
}

/// Where a treasury comparison starts: what each side held then.
struct Baseline {
    what: String,
    chain_side: U256,
    ledger_side: i128,
}

/// Checkpoints kept per chain and asset (the newest).
const CHECKPOINTS_KEPT: i64 = 64;

/// A checkpoint left by a clean run.
struct Checkpoint {
    block_number: u64,
    chain_side: U256,
    ledger_side: i128,
}

/// The newest checkpoint of `asset` at or below `horizon` whose block is
/// still canonical.
async fn checkpoint(
    pool: &Db,
    target: &Target,
    asset: &AssetCode,
    horizon: u64,
) -> Result<Option<Checkpoint>, ReconcileError> {
    let rows = sqlx::query!(
        r#"SELECT block_number, block_hash, chain_side::text AS "chain_side!",
                  ledger_side::text AS "ledger_side!"
             FROM chain_reconcile_checkpoints
            WHERE chain_id = $1 AND asset = $2 AND block_number <= $3
            ORDER BY block_number DESC"#,
        int8(target.chain_id)?,
        asset.as_str(),
        int8(horizon)?,
    )
    .fetch_all(pool)
    .await?;
    let bad =
        |what: &str| ReconcileError::Setup(format!("chain_reconcile_checkpoints: bad {what}"));
    for row in rows {
        let number = u64::try_from(row.block_number).map_err(|_| bad("block"))?;
        let hash = B256::from_str(&row.block_hash).map_err(|_| bad("hash"))?;
        if target.rpc.header(number).await?.map(|h| h.hash) != Some(hash) {
            continue;
        }
        return Ok(Some(Checkpoint {
            block_number: number,
            chain_side: U256::from_str(&row.chain_side).map_err(|_| bad("chain side"))?,
            ledger_side: row.ledger_side.parse().map_err(|_| bad("ledger side"))?,
        }));
    }
    Ok(None)
}

/// Records what both sides held at `block` after a clean comparison, and
/// keeps the newest [`CHECKPOINTS_KEPT`].
async fn record_checkpoint(
    pool: &Db,
    chain_id: u64,
    asset: &AssetCode,
    block: &super::rpc::BlockHeader,
    chain_side: U256,
    ledger_side: i128,
) -> Result<(), ReconcileError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO chain_reconcile_checkpoints
             (chain_id, asset, block_number, block_hash, chain_side, ledger_side)
         VALUES ($1, $2, $3, $4, $5::text::numeric, $6::text::numeric)
         ON CONFLICT (chain_id, asset, block_number) DO UPDATE
            SET block_hash = EXCLUDED.block_hash, chain_side = EXCLUDED.chain_side,
                ledger_side = EXCLUDED.ledger_side, recorded_at = now()",
        int8(chain_id)?,
        asset.as_str(),
        int8(block.number)?,
        hex0x(block.hash.as_slice()),
        chain_side.to_string(),
        ledger_side.to_string(),
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM chain_reconcile_checkpoints
          WHERE chain_id = $1 AND asset = $2 AND block_number < ALL (
                SELECT block_number FROM chain_reconcile_checkpoints
                 WHERE chain_id = $1 AND asset = $2
                 ORDER BY block_number DESC LIMIT $3)",
        int8(chain_id)?,
        asset.as_str(),
        CHECKPOINTS_KEPT,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn balance(target: &Target, token: Address, block: u64) -> Result<U256, RpcError> {
    if token == Address::ZERO {
        target.rpc.native_balance(target.treasury, block).await
    } else {
        target
            .rpc
            .token_balance(token, target.treasury, block)
            .await
    }
}

/// What `addresses` hold of `token` after block `block`, summed.
async fn deposit_balances(
    target: &Target,
    token: Address,
    addresses: &[Address],
    block: u64,
) -> Result<U256, RpcError> {
    let mut sum = U256::ZERO;
    for chunk in addresses.chunks(16) {
        let balances = try_join_all(chunk.iter().map(|a| async move {
            if token == Address::ZERO {
                target.rpc.native_balance(*a, block).await
            } else {
                target.rpc.token_balance(token, *a, block).await
            }
        }))
        .await?;
        sum = balances.into_iter().fold(sum, U256::saturating_add);
    }
    Ok(sum)
}

/// `after - before` as a signed 128-bit number, if it fits.
fn signed_difference(after: U256, before: U256) -> Option<i128> {
    if after >= before {
        i128::try_from(after - before).ok()
    } else {
        i128::try_from(before - after).ok().map(|d| -d)
    }
}

/// What is wrong with a finished send on the chain, if anything.
async fn check_send(target: &Target, s: &FinishedSend) -> Result<Option<String>, RpcError> {
    let Some(receipt) = target.rpc.receipt(s.tx_hash).await? else {
        return Ok(Some("the transaction is not on the chain".into()));
    };
    if receipt.from != target.treasury {
        return Ok(Some(format!("sent by {}, not the treasury", receipt.from)));
    }
    if receipt.block_hash != Some(s.block_hash) {
        return Ok(Some(format!(
            "recorded in block {}, the chain has it in block {:?}",
            s.block_number, receipt.block_number
        )));
    }
    if target.rpc.header(s.block_number).await?.map(|h| h.hash) != Some(s.block_hash) {
        return Ok(Some(format!(
            "block {} is no longer canonical",
            s.block_number
        )));
    }
    if receipt.status() != s.confirmed {
        return Ok(Some(format!(
            "recorded {}, the transaction {}",
            if s.confirmed { "confirmed" } else { "failed" },
            if receipt.status() {
                "succeeded"
            } else {
                "reverted"
            }
        )));
    }
    let fee = U256::from(receipt.gas_used).saturating_mul(U256::from(receipt.effective_gas_price));
    if fee != s.gas_fee {
        return Ok(Some(format!("gas fee {fee} ≠ recorded {}", s.gas_fee)));
    }
    if !s.confirmed || s.sweep {
        return Ok(None);
    }
    if s.token == Address::ZERO {
        let Some(tx) = target.rpc.transaction(s.tx_hash).await? else {
            return Ok(Some("the transaction is not on the chain".into()));
        };
        use alloy::consensus::Transaction as _;
        if tx.to() != Some(s.to) || tx.value() != s.amount {
            return Ok(Some(format!(
                "sends {} to {:?}, recorded {} to {}",
                tx.value(),
                tx.to(),
                s.amount,
                s.to
            )));
        }
        return Ok(None);
    }
    let paid = receipt.logs().iter().any(|log| {
        log.inner.address == s.token
            && DevStablecoin::Transfer::decode_log(&log.inner).is_ok_and(|e| {
                e.data.from == target.treasury && e.data.to == s.to && e.data.value == s.amount
            })
    });
    Ok((!paid).then(|| format!("no Transfer of {} to {} in its logs", s.amount, s.to)))
}

/// What is wrong with a confirmed transfer on the chain, if anything.
async fn check_transfer(target: &Target, t: &Transfer) -> Result<Option<String>, RpcError> {
    if t.tx_log_ordinal >= deposits::NATIVE_ORDINALS {
        // Found by balance difference (its "transaction" is the block):
        // the block must still be canonical; the balance itself is
        // counted with the treasury below.
        let canonical = target.rpc.header(t.block_number).await?;
        return Ok((canonical.map(|h| h.hash) != Some(t.block_hash))
            .then(|| format!("block {} is no longer canonical", t.block_number)));
    }
    let Some(receipt) = target.rpc.receipt(t.tx_hash).await? else {
        return Ok(Some("the transaction is not on the chain".into()));
    };
    if !receipt.status() {
        return Ok(Some("the transaction failed (reverted)".into()));
    }
    if receipt.block_hash != Some(t.block_hash) {
        return Ok(Some(format!(
            "recorded in block {} ({}), the chain has it in block {:?} ({:?})",
            t.block_number,
            hex0x(t.block_hash.as_slice()),
            receipt.block_number,
            receipt.block_hash
        )));
    }
    let canonical = target.rpc.header(t.block_number).await?;
    if canonical.map(|h| h.hash) != Some(t.block_hash) {
        return Ok(Some(format!(
            "block {} is no longer canonical",
            t.block_number
        )));
    }
    let Some(log) = receipt
        .logs()
        .iter()
        .find(|l| l.log_index == Some(t.log_index))
    else {
        return Ok(Some(format!("no log at index {}", t.log_index)));
    };
    if deposits::is_deposit(t.tx_log_ordinal) {
        let transfer = DevStablecoin::Transfer::decode_log(&log.inner).ok();
        return Ok(match transfer {
            Some(e)
                if log.inner.address == t.token
                    && e.data.from == t.payer
                    && e.data.to == t.router
                    && e.data.value == t.amount =>
            {
                None
            }
            _ => Some(format!(
                "log {} is not a Transfer of {} {} from {} to the deposit address {}",
                t.log_index, t.amount, t.token, t.payer, t.router
            )),
        });
    }
    if log.inner.address != target.router {
        return Ok(Some(format!(
            "log {} was emitted by {}, not the router {}",
            t.log_index, log.inner.address, target.router
        )));
    }
    let Ok(event) = PaymentRouter::PaymentReceived::decode_log(&log.inner) else {
        return Ok(Some(format!("log {} is not PaymentReceived", t.log_index)));
    };
    let e = event.data;
    let mut differences = Vec::new();
    if e.r#ref != t.reference {
        differences.push(format!("reference {} ≠ recorded {}", e.r#ref, t.reference));
    }
    if e.payer != t.payer {
        differences.push(format!("payer {} ≠ recorded {}", e.payer, t.payer));
    }
    if e.token != t.token {
        differences.push(format!("token {} ≠ recorded {}", e.token, t.token));
    }
    if e.amount != t.amount {
        differences.push(format!("amount {} ≠ recorded {}", e.amount, t.amount));
    }
    Ok((!differences.is_empty()).then(|| differences.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_signed() {
        assert_eq!(signed_difference(U256::from(5u8), U256::from(3u8)), Some(2));
        assert_eq!(
            signed_difference(U256::from(3u8), U256::from(5u8)),
            Some(-2)
        );
        assert_eq!(signed_difference(U256::MAX, U256::ZERO), None);
    }
}
