//! Deposits found by the watcher: ERC-20 `Transfer` logs into deposit
//! addresses, and native coin found by balance difference (see
//! [`crate::chain::deposits`] for the addresses and their identities).
//!
//! # Which addresses are watched
//!
//! A deposit address is watched at every step from its first quote until
//! `deposit_watch_days` (per chain, default 7) after its latest quote
//! expired, paid or not: that covers the payment itself, a payer who pays
//! late or twice, and an exchange that takes days to process a withdrawal.
//! Then it is *retired*, so that the per-step cost follows the open
//! payments, not every address ever issued.
//!
//! A retired address still belongs to the treasury, and money sent to it
//! is still found, later:
//!
//! - ERC-20: every `deposit_rescan_secs` (default an hour) the watcher
//!   reads the `Transfer` logs into *every* deposit address of the chain
//!   (topic filters of [`TOPIC_FILTER_MAX`] addresses) over the blocks since
//!   the last rescan, up to the reorg window below its cursor, within its
//!   step's transaction. What the step already recorded is skipped; the
//!   rest is recorded and confirmed at once, and the payment side books it
//!   like any late money: to suspense, on the payment, visible to the
//!   merchant. It costs `ceil(addresses / 256) * ceil(blocks /
//!   max_block_range)` `eth_getLogs` per rescan, instead of that per step.
//! - Native coin has no log: coin sent to a retired address is found by
//!   `epg reconcile chain` only (the treasury line counts every deposit
//!   address's balance, so the difference shows there, with the number of
//!   addresses), and is swept once the operator books it.
//!
//! This is the rule of BTCPay's "monitoring expiration" (an invoice stops
//! following its address a while after it expired; its wallet still sees
//! the coins), made to credit the payment's suspense rather than a bare
//! wallet.
//!
//! # ERC-20
//!
//! Per configured token and block range, up to
//! [`TOPIC_FILTER_MAX`] watched addresses are asked for with a
//! topic filter on `to`; above that the token's every `Transfer` in the
//! range is read and matched against the addresses in memory. Either way
//! the logs are checked against the headers read for the step, as the
//! router's are.
//!
//! # Native coin
//!
//! A plain send leaves no log, and a contract (an exchange's hot wallet, a
//! smart-contract wallet) sending coin leaves no transaction to the
//! address either, so the watcher compares each watched address's balance
//! after the step's last block with its balance after the block before the
//! range, both read by block hash. A gain is one deposit, dated at the
//! range's last block. Limits, by design:
//!
//! - two payments into one address within one step are one deposit;
//! - a deposit and a sweep of the same address within one step net out
//!   (sweeps run on confirmed deposits only, and a step is one block when
//!   the watcher keeps up, so this needs a payment in the very block of a
//!   sweep);
//! - a deposit is dated at the end of the step's range: while the watcher
//!   catches up, it may look later (and so `late`) than it was;
//! - it costs two `eth_getBalance` per watched address per step;
//! - the endpoint must keep state for the range's first block (a full node
//!   keeps 128 blocks; a long catch-up needs an archive node).
//!
//! Traces (`debug_traceBlock`, `trace_block`) would give the sender and the
//! transaction, but few providers serve them, and the balance is what the
//! treasury will sweep.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::future::try_join_all;
use sqlx::PgConnection;

use super::StepError;
use super::store::{self, FoundLog};
use crate::chain::config::ChainConfig;
use crate::chain::contracts::DevStablecoin;
use crate::chain::deposits::{ERC20_ORDINALS, NATIVE_ORDINALS, RESCAN_ORDINALS, TOPIC_FILTER_MAX};
use crate::chain::rpc::{BlockHeader, ChainRpc};
use crate::db::Db;

/// Most blocks one step's rescan reads: a long backlog (a first rescan, a
/// node down for days) is read over several steps.
const RESCAN_MAX_RANGES: u64 = 16;

/// Concurrent balance reads.
const CONCURRENCY: usize = 16;

/// The deposit addresses of a chain watched at this step, with the
/// reference of their payment's current quote.
#[derive(Debug, Default)]
pub struct Watched {
    /// Addresses not retired (ERC-20 `Transfer` logs).
    pub all: HashMap<Address, B256>,
    /// Those of native-coin quotes (balance differences).
    pub native: BTreeMap<Address, B256>,
}

/// Loads the chain's deposit addresses not retired.
pub async fn watched(pool: &Db, chain: &ChainConfig) -> Result<Watched, StepError> {
    let rows = sqlx::query!(
        r#"SELECT deposit_address AS "address!", reference,
                  token = '0x0000000000000000000000000000000000000000' AS "native!"
             FROM crypto_payments
            WHERE chain_id = $1 AND deposit_address IS NOT NULL
              AND expires_at > now() - make_interval(days => $2)"#,
        store::int8(chain.chain_id)?,
        i32::try_from(chain.deposit_watch_days).unwrap_or(i32::MAX),
    )
    .fetch_all(pool)
    .await?;
    let mut watched = Watched::default();
    for row in rows {
        let (address, reference) = parse_row(&row.address, &row.reference)?;
        watched.all.insert(address, reference);
        if row.native {
            watched.native.insert(address, reference);
        }
    }
    Ok(watched)
}

fn parse_row(address: &str, reference: &str) -> Result<(Address, B256), StepError> {
    let bad = || StepError::BadChain(format!("crypto_payments: bad deposit row {address}"));
    Ok((
        Address::from_str(address).map_err(|_| bad())?,
        B256::from_str(reference).map_err(|_| bad())?,
    ))
}

/// What a step does about retired addresses.
#[derive(Debug)]
pub enum Rescan {
    /// The chain has no rescan yet: every address has been watched at
    /// every step up to `scanned_to` (the block before the step), so the
    /// rescans start there.
    Start {
        /// The block before the step.
        scanned_to: u64,
    },
    /// Read the `Transfer` logs into every deposit address in `from..=to`.
    Read {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
        /// Whether `to` is as far as a rescan may read now (else the next
        /// step reads on).
        complete: bool,
        /// Every deposit address of the chain.
        addresses: HashMap<Address, B256>,
    },
}

/// Whether the step reading `from..=end` rescans, and what.
pub async fn rescan(
    pool: &Db,
    chain: &ChainConfig,
    from: u64,
    end: u64,
) -> Result<Option<Rescan>, StepError> {
    let chain_id = store::int8(chain.chain_id)?;
    let row = sqlx::query!(
        r#"SELECT scanned_to, scanned_at <= now() - make_interval(secs => $2) AS "due!"
             FROM deposit_rescans WHERE chain_id = $1"#,
        chain_id,
        f64::from(u32::try_from(chain.deposit_rescan_secs).unwrap_or(u32::MAX)),
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(Some(Rescan::Start {
            scanned_to: from.saturating_sub(1),
        }));
    };
    let scanned_to = u64::try_from(row.scanned_to)
        .map_err(|_| StepError::BadChain("deposit_rescans: negative block".into()))?;
    // Only blocks the steps have read (so the rescan never finds what this
    // step is finding) and that are below the reorg window once this step
    // is done: what the rescan finds is final, and a reorg cannot take away
    // a block it has passed.
    let limit = from
        .saturating_sub(1)
        .min(end.saturating_sub(chain.reorg_window));
    if !row.due || limit <= scanned_to {
        return Ok(None);
    }
    let to = limit.min(
        scanned_to.saturating_add(
            chain
                .max_block_range
                .max(1)
                .saturating_mul(RESCAN_MAX_RANGES),
        ),
    );
    let rows = sqlx::query!(
        r#"SELECT deposit_address AS "address!", reference FROM crypto_payments
            WHERE chain_id = $1 AND deposit_address IS NOT NULL"#,
        chain_id,
    )
    .fetch_all(pool)
    .await?;
    let mut addresses = HashMap::with_capacity(rows.len());
    for row in rows {
        let (address, reference) = parse_row(&row.address, &row.reference)?;
        addresses.insert(address, reference);
    }
    Ok(Some(Rescan::Read {
        from: scanned_to + 1,
        to,
        complete: to == limit,
        addresses,
    }))
}

/// Records, in the step's transaction, how far the rescan got.
pub async fn record_rescan(
    conn: &mut PgConnection,
    chain_id: u64,
    rescan: &Rescan,
) -> Result<(), StepError> {
    let chain_id = store::int8(chain_id)?;
    match rescan {
        Rescan::Start { scanned_to } => {
            sqlx::query!(
                "INSERT INTO deposit_rescans (chain_id, scanned_to, scanned_at) VALUES ($1, $2, now())
                 ON CONFLICT (chain_id) DO NOTHING",
                chain_id,
                store::int8(*scanned_to)?,
            )
            .execute(conn)
            .await?;
        }
        Rescan::Read { to, complete, .. } => {
            sqlx::query!(
                "UPDATE deposit_rescans
                    SET scanned_to = $2, scanned_at = CASE WHEN $3 THEN now() ELSE scanned_at END
                  WHERE chain_id = $1",
                chain_id,
                store::int8(*to)?,
                complete,
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// `Transfer` logs of `token` into `addresses` in `from..=to`, by topic
/// filters of up to [`TOPIC_FILTER_MAX`] addresses (the rescan: few
/// matches over many blocks, where a busy token's every log would be many).
pub async fn rescan_logs(
    rpc: &ChainRpc,
    chain: &ChainConfig,
    token: Address,
    addresses: &HashMap<Address, B256>,
    from: u64,
    to: u64,
) -> Result<Vec<Log>, StepError> {
    let all: Vec<B256> = addresses.keys().map(|a| a.into_word()).collect();
    let base = Filter::new()
        .address(token)
        .event_signature(DevStablecoin::Transfer::SIGNATURE_HASH);
    let mut logs = Vec::new();
    for range in ranges(chain, from, to) {
        for topics in all.chunks(TOPIC_FILTER_MAX) {
            let filter = base
                .clone()
                .from_block(range.0)
                .to_block(range.1)
                .topic2(topics.to_vec());
            logs.extend(rpc.logs(&filter).await?);
        }
    }
    Ok(logs)
}

/// `from..=to` in ranges of at most `max_block_range` blocks.
fn ranges(chain: &ChainConfig, from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut chunk_from = from;
    while chunk_from <= to {
        let chunk_to = to.min(chunk_from.saturating_add(chain.max_block_range.max(1) - 1));
        out.push((chunk_from, chunk_to));
        if chunk_to == u64::MAX {
            break;
        }
        chunk_from = chunk_to + 1;
    }
    out
}

/// The deposits among `positioned` (the rescan's logs, checked by the
/// caller) that the watcher has not recorded: `recorded` holds the
/// `(transaction, log index)` of the deposits it has.
pub fn rescanned_deposits(
    chain: &ChainConfig,
    addresses: &HashMap<Address, B256>,
    positioned: Vec<(u64, u64, B256, BlockHeader, Log)>,
    recorded: &HashSet<(B256, u64)>,
) -> Result<Vec<(Address, FoundLog)>, StepError> {
    let mut found = Vec::new();
    for (number, log_index, tx_hash, block, log) in positioned {
        if recorded.contains(&(tx_hash, log_index)) {
            continue;
        }
        let Some(asset) = chain.asset_for_token(log.inner.address) else {
            continue;
        };
        let Ok(event) = DevStablecoin::Transfer::decode_log(&log.inner) else {
            continue;
        };
        let Some(reference) = addresses.get(&event.data.to) else {
            continue;
        };
        let Some(tx_log_ordinal) = u32::try_from(log_index)
            .ok()
            .filter(|i| *i < NATIVE_ORDINALS - RESCAN_ORDINALS)
            .map(|i| RESCAN_ORDINALS + i)
        else {
            return Err(StepError::BadChain(format!(
                "log index {log_index} in block {number} is beyond any block's"
            )));
        };
        found.push((
            event.data.to,
            FoundLog {
                tx_hash,
                tx_log_ordinal,
                log_index,
                block_number: number,
                block_hash: block.hash,
                block_timestamp: store::timestamp(block.timestamp)
                    .map_err(|e| StepError::BadChain(e.to_string()))?,
                reference: *reference,
                payer: event.data.from,
                token: log.inner.address,
                asset: Some(asset.symbol.clone()),
                amount: event.data.value,
            },
        ));
    }
    Ok(found)
}

/// The `(transaction, log index)` of the live deposits recorded in
/// `tx_hashes`.
pub async fn recorded(
    pool: &Db,
    chain_id: u64,
    tx_hashes: &[B256],
) -> Result<HashSet<(B256, u64)>, StepError> {
    if tx_hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let hashes: Vec<String> = tx_hashes
        .iter()
        .map(|h| store::hex0x(h.as_slice()))
        .collect();
    let rows = sqlx::query!(
        r#"SELECT tx_hash, log_index FROM chain_transfers
            WHERE chain_id = $1 AND tx_hash = ANY($2) AND status <> 'removed'
              AND tx_log_ordinal >= $3"#,
        store::int8(chain_id)?,
        &hashes,
        i32::try_from(ERC20_ORDINALS).unwrap_or(i32::MAX),
    )
    .fetch_all(pool)
    .await?;
    let mut out = HashSet::with_capacity(rows.len());
    for row in rows {
        let hash = B256::from_str(&row.tx_hash).map_err(|_| {
            StepError::BadChain(format!("chain_transfers: bad hash {}", row.tx_hash))
        })?;
        out.insert((hash, u64::try_from(row.log_index).unwrap_or(u64::MAX)));
    }
    Ok(out)
}

/// `Transfer` logs of `token` in `from..=to` that may be into a watched
/// address (the caller keeps only those that are): by topic filters of up
/// to [`TOPIC_FILTER_MAX`] receivers while the chain watches at most
/// `deposit_topic_filter_max` addresses, else token-wide.
pub async fn transfer_logs(
    rpc: &ChainRpc,
    chain: &ChainConfig,
    token: Address,
    watched: &Watched,
    from: u64,
    to: u64,
) -> Result<Vec<Log>, StepError> {
    if watched.all.is_empty() {
        return Ok(Vec::new());
    }
    let base = Filter::new()
        .address(token)
        .event_signature(DevStablecoin::Transfer::SIGNATURE_HASH);
    let by_topic =
        watched.all.len() <= usize::try_from(chain.deposit_topic_filter_max).unwrap_or(usize::MAX);
    let topics: Vec<B256> = if by_topic {
        watched.all.keys().map(|a| a.into_word()).collect()
    } else {
        Vec::new()
    };
    let mut logs = Vec::new();
    for (chunk_from, chunk_to) in ranges(chain, from, to) {
        let range = base.clone().from_block(chunk_from).to_block(chunk_to);
        if by_topic {
            for chunk in topics.chunks(TOPIC_FILTER_MAX) {
                logs.extend(rpc.logs(&range.clone().topic2(chunk.to_vec())).await?);
            }
        } else {
            logs.extend(rpc.logs(&range).await?);
        }
    }
    Ok(logs)
}

/// The ERC-20 deposits among `raw` (logs of configured tokens, positioned
/// and checked by the caller), in chain order, with their receivers.
pub fn erc20_deposits(
    chain: &ChainConfig,
    watched: &Watched,
    positioned: Vec<(u64, u64, B256, BlockHeader, Log)>,
) -> Result<Vec<(Address, FoundLog)>, StepError> {
    let mut ordinals: HashMap<B256, u32> = HashMap::new();
    let mut found = Vec::new();
    for (number, log_index, tx_hash, block, log) in positioned {
        let Some(asset) = chain.asset_for_token(log.inner.address) else {
            continue;
        };
        let Ok(event) = DevStablecoin::Transfer::decode_log(&log.inner) else {
            continue;
        };
        let Some(reference) = watched.all.get(&event.data.to) else {
            continue;
        };
        let ordinal = ordinals.entry(tx_hash).or_insert(ERC20_ORDINALS);
        let tx_log_ordinal = *ordinal;
        *ordinal += 1;
        found.push((
            event.data.to,
            FoundLog {
                tx_hash,
                tx_log_ordinal,
                log_index,
                block_number: number,
                block_hash: block.hash,
                block_timestamp: store::timestamp(block.timestamp)
                    .map_err(|e| StepError::BadChain(e.to_string()))?,
                reference: *reference,
                payer: event.data.from,
                token: log.inner.address,
                asset: Some(asset.symbol.clone()),
                amount: event.data.value,
            },
        ));
    }
    Ok(found)
}

/// Native-coin deposits between the block before the range (`before`) and
/// its last block (`end`): the watched addresses whose balance grew.
pub async fn native_deposits(
    rpc: &ChainRpc,
    chain: &ChainConfig,
    watched: &Watched,
    before: Option<B256>,
    end: &BlockHeader,
) -> Result<Vec<(Address, FoundLog)>, StepError> {
    let Some(asset) = chain.asset_for_token(Address::ZERO) else {
        return Ok(Vec::new());
    };
    let addresses: Vec<(&Address, &B256)> = watched.native.iter().collect();
    let mut found = Vec::new();
    for chunk in addresses.chunks(CONCURRENCY) {
        let reads = chunk.iter().map(|(address, _)| async move {
            let after = rpc.native_balance_at(**address, end.hash).await?;
            let prior = match before {
                Some(b) => rpc.native_balance_at(**address, b).await?,
                None => U256::ZERO,
            };
            Ok::<_, StepError>((after, prior))
        });
        let balances = try_join_all(reads).await?;
        for ((address, reference), (after, prior)) in chunk.iter().zip(balances) {
            if after <= prior {
                continue;
            }
            let k = u32::try_from(found.len()).unwrap_or(u32::MAX);
            found.push((
                **address,
                FoundLog {
                    tx_hash: end.hash,
                    tx_log_ordinal: NATIVE_ORDINALS.saturating_add(k),
                    log_index: u64::from(NATIVE_ORDINALS.saturating_add(k)),
                    block_number: end.number,
                    block_hash: end.hash,
                    block_timestamp: store::timestamp(end.timestamp)
                        .map_err(|e| StepError::BadChain(e.to_string()))?,
                    reference: **reference,
                    payer: Address::ZERO,
                    token: Address::ZERO,
                    asset: Some(asset.symbol.clone()),
                    amount: after - prior,
                },
            ));
        }
    }
    Ok(found)
}

/// Whether deposits are watched on `chain` at all.
pub fn enabled(chain: &ChainConfig) -> bool {
    chain.deposit_factory.is_some()
}
