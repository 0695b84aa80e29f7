//! Deposits found by the watcher: ERC-20 `Transfer` logs into deposit
//! addresses, and native coin found by balance difference (see
//! [`crate::chain::deposits`] for the addresses and their identities).
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
//! - it costs two `eth_getBalance` per watched address per step, so only
//!   addresses of native quotes that expired less than
//!   [`NATIVE_WATCH_DAYS`] days ago are watched; coin sent later is found
//!   by `epg reconcile chain` only;
//! - the endpoint must keep state for the range's first block (a full node
//!   keeps 128 blocks; a long catch-up needs an archive node).
//!
//! Traces (`debug_traceBlock`, `trace_block`) would give the sender and the
//! transaction, but few providers serve them, and the balance is what the
//! treasury will sweep.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::future::try_join_all;
use sqlx::PgPool;

use super::StepError;
use super::store::{self, FoundLog};
use crate::chain::config::ChainConfig;
use crate::chain::contracts::DevStablecoin;
use crate::chain::deposits::{ERC20_ORDINALS, NATIVE_ORDINALS, TOPIC_FILTER_MAX};
use crate::chain::rpc::{BlockHeader, ChainRpc};

/// Days after its quote expired that a native deposit address is still
/// watched by balance.
pub const NATIVE_WATCH_DAYS: i32 = 7;

/// Concurrent balance reads.
const CONCURRENCY: usize = 16;

/// The deposit addresses of a chain, with the reference of their payment's
/// current quote.
#[derive(Debug, Default)]
pub struct Watched {
    /// Every deposit address of the chain (ERC-20 `Transfer` logs).
    pub all: HashMap<Address, B256>,
    /// Addresses of native-coin quotes still watched by balance.
    pub native: BTreeMap<Address, B256>,
}

/// Loads the chain's deposit addresses.
pub async fn watched(pool: &PgPool, chain_id: u64) -> Result<Watched, StepError> {
    let rows = sqlx::query!(
        r#"SELECT deposit_address AS "address!", reference,
                  token = '0x0000000000000000000000000000000000000000'
                      AND expires_at > now() - make_interval(days => $2) AS "native!"
             FROM crypto_payments
            WHERE chain_id = $1 AND deposit_address IS NOT NULL"#,
        store::int8(chain_id)?,
        NATIVE_WATCH_DAYS,
    )
    .fetch_all(pool)
    .await?;
    let mut watched = Watched::default();
    for row in rows {
        let bad =
            || StepError::BadChain(format!("crypto_payments: bad deposit row {}", row.address));
        let address = Address::from_str(&row.address).map_err(|_| bad())?;
        let reference = B256::from_str(&row.reference).map_err(|_| bad())?;
        watched.all.insert(address, reference);
        if row.native {
            watched.native.insert(address, reference);
        }
    }
    Ok(watched)
}

/// `Transfer` logs of `token` in `from..=to` that may be into a watched
/// address (the caller keeps only those that are).
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
    let mut logs = Vec::new();
    let mut chunk_from = from;
    while chunk_from <= to {
        let chunk_to = to.min(chunk_from.saturating_add(chain.max_block_range.max(1) - 1));
        let range = base.clone().from_block(chunk_from).to_block(chunk_to);
        if watched.all.len() <= TOPIC_FILTER_MAX {
            let topics: Vec<B256> = watched.all.keys().map(|a| a.into_word()).collect();
            logs.extend(rpc.logs(&range.topic2(topics)).await?);
        } else {
            logs.extend(rpc.logs(&range).await?);
        }
        chunk_from = chunk_to.saturating_add(1);
        if chunk_to == u64::MAX {
            break;
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
