//! The chain watcher: one task per configured chain that turns the
//! router's `PaymentReceived` logs into durable transfer records, exactly
//! once, across restarts and reorgs, and tells the payments side through a
//! [`TransferSink`].
//!
//! # How a step works
//!
//! The watcher advances in *steps*. A step reads the head, checks that the
//! chain still extends the cursor (the last processed block, persisted in
//! `chain_cursors`), reads a bounded block range after it from the RPC
//! endpoint, and then, in **one database transaction**: records the new
//! transfers (calling [`TransferSink::detected`]), stores the hashes of the
//! processed blocks that are within the reorg window, confirms transfers
//! whose block reached the confirmation depth ([`TransferSink::confirmed`])
//! and moves the cursor. The same transaction journals the administrative
//! logs of the chain's router and anchor read for the range, and after the
//! commit the contract guard judges their state at the new head
//! ([`crate::chain::guard`]). A step killed at any point leaves nothing behind,
//! and the next watcher (after a restart, on any node) redoes it from the
//! cursor: nothing is lost and nothing is counted twice. The cursor row is
//! locked and compared with the value the step started from, so two nodes
//! watching the same chain never both apply a block.
//!
//! Reads are checked for consistency before anything is written: the range
//! must link to the cursor by parent hash and, within the reorg window,
//! block to block; every log must carry the hash of the header read for its
//! block; and the range's last header is read again after the logs, so a
//! reorg during the reads aborts the step (it is retried) instead of mixing
//! two forks.
//!
//! # Reorgs
//!
//! A new block whose parent is not the cursor's block, or a head at or below
//! the cursor whose hash differs from the stored one, is a reorg. The
//! watcher walks back over the stored hashes (highest first) to the highest
//! block the canonical chain still has: the common ancestor. The next step
//! then, in one transaction, takes every live transfer above the ancestor,
//! forgets the dropped blocks, rescans from the ancestor to at least the old
//! cursor height, and sorts each dropped transfer out:
//!
//! - the new chain has the same transaction emitting the same payment (same
//!   identity, same reference, payer, token and amount): the row is *kept*
//!   and moved to its new block and log index, keeping its status, with no
//!   sink call;
//! - otherwise it is *removed* ([`TransferSink::removed`], with
//!   `was_confirmed` when it had been confirmed).
//!
//! A reorg that drops a block that had reached the confirmation depth is
//! *deep*: the watcher logs an error, counts it in the `deep_reorgs` metric
//! and journals it (`chain_reorgs.deep`), whether or not a transfer was in
//! it. A reorg deeper than the reorg window (no stored hash is canonical)
//! rewinds below the window and is treated as deep; transfers below it are
//! not re-verified — `epg reconcile chain` checks every confirmed one.
//!
//! # Identity of a transfer
//!
//! `(chain_id, tx_hash, tx_log_ordinal)`, the ordinal being the log's
//! position among the router's `PaymentReceived` logs of its transaction.
//! Neither the block nor the block-wide `log_index` is part of it: a
//! transaction re-included after a reorg keeps its hash but usually changes
//! both. Re-inclusion later than the rescan (after the transfer was
//! removed) brings the same row back to `detected` (its `removals` counter
//! says so). Hence one row, one payment, however often the chain changes
//! its mind.
//!
//! # Liveness
//!
//! New heads arrive by WebSocket subscription when `ws_url` is set, with
//! polling of `eth_blockNumber` every `poll_interval_ms` as fallback and
//! safety net. A failed step is retried after an exponential back-off
//! capped at `retry_cap_ms`; [`ChainStatus`] says meanwhile whether the
//! chain is healthy, lagging or unreachable (`/readyz` shows it).

pub mod deposits;
mod heads;
pub mod sink;
pub mod status;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolEvent;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use self::sink::{NoopSink, SinkError, Transfer, TransferSink, TransferStatus};
pub use self::status::{ChainHealth, ChainState, ChainStatus, HeadSource};
use self::store::{Cursor, FoundLog, ReorgRecord};
use super::config::ChainConfig;
use super::contracts::PaymentRouter;
use super::guard::{self, AdminLog, Guard, GuardError};
use super::rpc::{BlockHeader, ChainRpc, RpcError};
use crate::db::Db;
use crate::telemetry::metrics::Metrics;

/// Why a step did not complete. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The RPC endpoint failed or timed out.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The endpoint answered, but not as a node of the configured chain
    /// would (another chain id, a log without its position).
    #[error("{0}")]
    BadChain(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The payments side refused.
    #[error("payments side: {0}")]
    Sink(SinkError),
    /// The chain (or another node's watcher) moved while the step read it;
    /// the step is simply redone.
    #[error("chain moved during the step: {0}")]
    Raced(String),
}

impl From<GuardError> for StepError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::Rpc(e) => StepError::Rpc(e),
            GuardError::Raced(why) => StepError::Raced(why),
            GuardError::BadChain(why) => StepError::BadChain(why),
            GuardError::Database(e) => StepError::Database(e),
        }
    }
}

/// What one committed step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The head the step saw.
    pub head: u64,
    /// The cursor after the step.
    pub cursor: Option<u64>,
    /// Transfers newly detected (or detected again).
    pub detected: u32,
    /// Transfers confirmed.
    pub confirmed: u32,
    /// Transfers removed by a reorg.
    pub removed: u32,
    /// Transfers a reorg moved to a new block without removing them.
    pub kept: u32,
    /// Admin events of the router and anchor journalled ([`guard`]).
    pub admin_events: u32,
    /// The reorg handled, if any.
    pub reorg: Option<ReorgRecord>,
}

impl StepReport {
    /// Whether the cursor reached the head the step saw.
    pub fn caught_up(&self) -> bool {
        self.cursor.is_some_and(|c| c >= self.head)
    }
}

/// A reorg found by a step: the old cursor and the common ancestor.
#[derive(Debug, Clone, Copy)]
struct Reorg {
    old: Cursor,
    /// `None`: below the first block scanned.
    ancestor: Option<Cursor>,
    /// Whether the ancestor was found among the stored hashes (false: the
    /// reorg is deeper than the window).
    found: bool,
}

/// A range read from the chain, checked for consistency.
#[derive(Debug)]
struct Scan {
    /// The range's last block: the new cursor.
    end: BlockHeader,
    /// Headers to store (within the reorg window, and the last one).
    keep: Vec<BlockHeader>,
    /// The router's logs, in chain order.
    logs: Vec<FoundLog>,
    /// Deposits (ERC-20 first, in chain order, then native coin), by the
    /// deposit address they were paid into.
    deposits: Vec<(Address, FoundLog)>,
    /// The router's and the anchor's admin logs, in chain order.
    admin: Vec<AdminLog>,
    /// The rescan of retired deposit addresses done in this step (its
    /// finds are in `deposits`).
    rescan: Option<deposits::Rescan>,
}

/// A log with its position, in the block whose header the step read.
type Positioned = (u64, u64, B256, BlockHeader, alloy::rpc::types::Log);

/// `raw` in chain order, each checked against the header read for its
/// block (a log of another fork aborts the step).
fn position(
    raw: Vec<alloy::rpc::types::Log>,
    headers: &BTreeMap<u64, BlockHeader>,
) -> Result<Vec<Positioned>, StepError> {
    let raced = |why: String| StepError::Raced(why);
    let mut positioned = Vec::with_capacity(raw.len());
    for log in raw {
        let (Some(number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
            log.block_number,
            log.block_hash,
            log.transaction_hash,
            log.log_index,
        ) else {
            return Err(StepError::BadChain(
                "eth_getLogs returned a log without its block, transaction or index".into(),
            ));
        };
        if log.removed {
            return Err(raced(format!("log {tx_hash}:{log_index} was removed")));
        }
        let block = headers.get(&number).copied().ok_or_else(|| {
            raced(format!(
                "block {number} of log {tx_hash}:{log_index} is gone"
            ))
        })?;
        if block.hash != block_hash {
            return Err(raced(format!(
                "log {tx_hash}:{log_index} is in another block {number} than the header read"
            )));
        }
        positioned.push((number, log_index, tx_hash, block, log));
    }
    positioned.sort_by_key(|(number, index, ..)| (*number, *index));
    Ok(positioned)
}

/// The cursor as committed, and where scanning starts without one.
#[derive(Debug, Clone, Copy)]
struct Loaded {
    cursor: Option<Cursor>,
    start_block: u64,
}

/// Watches one chain. Build with [`Watcher::new`], then [`Watcher::run`]
/// (or drive it step by step with [`Watcher::step`] in tests).
pub struct Watcher {
    /// The chain and its policy.
    chain: ChainConfig,
    /// Reads from the chain.
    rpc: ChainRpc,
    /// Where transfers, blocks and the cursor live.
    pool: Db,
    /// The payments side.
    sink: Arc<dyn TransferSink>,
    /// `deep_reorgs` and the transfer counters.
    metrics: Arc<Metrics>,
    /// What `/readyz` reports.
    status: Arc<ChainStatus>,
    /// The committed cursor, re-read after a failed or raced step.
    loaded: Option<Loaded>,
    /// Whether the endpoint's chain id was checked since its last failure.
    chain_checked: bool,
    /// Reads and judges the contracts' own state after each new head.
    guard: Guard,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("chain_id", &self.chain.chain_id)
            .field("rpc", &self.rpc)
            .finish_non_exhaustive()
    }
}

/// Starts a watcher per chain on `jobs`, each stopping with `shutdown`.
pub fn spawn_all(
    jobs: &mut JoinSet<()>,
    chains: &[ChainConfig],
    pool: &Db,
    sink: &Arc<dyn TransferSink>,
    metrics: &Arc<Metrics>,
    status: &Arc<ChainStatus>,
    shutdown: &CancellationToken,
) {
    for chain in chains {
        let chain_id = chain.chain_id;
        match Watcher::new(
            chain.clone(),
            pool.clone(),
            sink.clone(),
            metrics.clone(),
            status.clone(),
        ) {
            Ok(watcher) => {
                jobs.spawn(watcher.run(shutdown.clone()));
            }
            Err(e) => {
                tracing::error!(chain_id, error = %e, "chain watcher not started");
                status.update(chain_id, |h| {
                    h.status = ChainState::Unreachable;
                    h.last_error = Some(e.to_string());
                });
            }
        }
    }
}

impl Watcher {
    /// A watcher of `chain` writing to `pool` and telling `sink`.
    pub fn new(
        chain: ChainConfig,
        pool: Db,
        sink: Arc<dyn TransferSink>,
        metrics: Arc<Metrics>,
        status: Arc<ChainStatus>,
    ) -> Result<Self, RpcError> {
        let rpc = ChainRpc::new(&chain.http_url, chain.rpc_timeout())?;
        status.update(chain.chain_id, |_| {});
        let guard = Guard::new(
            chain.clone(),
            rpc.clone(),
            pool.clone(),
            metrics.clone(),
            status.clone(),
        );
        Ok(Self {
            chain,
            rpc,
            pool,
            sink,
            metrics,
            status,
            loaded: None,
            chain_checked: false,
            guard,
        })
    }

    /// Follows the chain until `shutdown`. Safe to abort at any point.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let heads_stop = shutdown.child_token();
        // The subscription runs in this task (not a spawned one), so that
        // aborting the watcher stops it too.
        let heads = {
            let (chain, wake, status, stop) = (
                self.chain.clone(),
                wake.clone(),
                self.status.clone(),
                heads_stop.clone(),
            );
            async move {
                if let Some(ws) = chain.ws_url.clone() {
                    heads::follow(chain, ws, wake, status, stop).await;
                }
            }
        };
        let follow = async move {
            self.follow(wake, shutdown).await;
            heads_stop.cancel();
        };
        tokio::join!(follow, heads);
    }

    async fn follow(&mut self, wake: Arc<Notify>, shutdown: CancellationToken) {
        let chain_id = self.chain.chain_id;
        tracing::info!(
            chain_id,
            endpoint = self.rpc.endpoint(),
            "chain watcher started"
        );
        let mut failures = 0u32;
        let mut races = 0u32;
        loop {
            let outcome = tokio::select! {
                () = shutdown.cancelled() => break,
                outcome = self.step() => outcome,
            };
            match outcome {
                Ok(report) => {
                    failures = 0;
                    races = 0;
                    self.report_success(&report);
                    if report.caught_up() || report.cursor.is_none() {
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = wake.notified() => {}
                            () = tokio::time::sleep(self.chain.poll_interval()) => {}
                        }
                    }
                }
                Err(StepError::Raced(why)) if races < 3 => {
                    races += 1;
                    tracing::debug!(chain_id, %why, "step raced; redoing it");
                }
                Err(e) => {
                    races = 0;
                    failures = failures.saturating_add(1);
                    let delay = self.chain.retry_delay(failures);
                    self.report_failure(&e, failures);
                    tracing::warn!(chain_id, error = %e, failures, retry_in_ms = delay.as_millis(), "chain watcher step failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!(chain_id, "chain watcher stopped");
    }

    fn report_success(&self, report: &StepReport) {
        let max_lag = self.chain.max_lag_blocks;
        self.status.update(self.chain.chain_id, |h| {
            h.head = Some(report.head);
            h.cursor = report.cursor;
            let lag = report
                .cursor
                .map_or(u64::MAX, |c| report.head.saturating_sub(c));
            h.status = if lag > max_lag && report.head >= self.chain.start_block {
                ChainState::Lagging
            } else {
                ChainState::Healthy
            };
            h.consecutive_failures = 0;
            h.last_error = None;
            h.last_success_at = Some(OffsetDateTime::now_utc());
        });
    }

    fn report_failure(&mut self, error: &StepError, failures: u32) {
        let unreachable = matches!(error, StepError::Rpc(_) | StepError::BadChain(_));
        if unreachable {
            self.chain_checked = false;
            self.metrics.add("chain_rpc_failures", 1);
        }
        // Re-read the cursor: whatever failed, the database has the truth.
        self.loaded = None;
        self.status.update(self.chain.chain_id, |h| {
            h.status = if unreachable {
                ChainState::Unreachable
            } else {
                ChainState::Lagging
            };
            h.consecutive_failures = failures;
            h.last_error = Some(error.to_string());
        });
    }

    /// One step: from the committed cursor, handle a reorg if there is one
    /// and process the next range, in one transaction. Returns what it did;
    /// on error nothing was written.
    pub async fn step(&mut self) -> Result<StepReport, StepError> {
        let result = self.step_inner().await;
        if matches!(result, Err(StepError::Raced(_))) {
            self.loaded = None;
        }
        if let Ok(report) = &result {
            self.guard.check(report.head, report.reorg.is_some()).await;
        }
        result
    }

    async fn step_inner(&mut self) -> Result<StepReport, StepError> {
        let chain_id = self.chain.chain_id;
        if !self.chain_checked {
            let actual = self.rpc.chain_id().await?;
            if actual != chain_id {
                return Err(StepError::BadChain(format!(
                    "{} serves chain {actual}, configured as chain {chain_id}",
                    self.rpc.endpoint()
                )));
            }
            self.chain_checked = true;
        }
        let loaded = match self.loaded {
            Some(loaded) => loaded,
            None => {
                let mut conn = self.pool.acquire().await?;
                let (cursor, start_block) = store::ensure_cursor(&mut conn, &self.chain).await?;
                let loaded = Loaded {
                    cursor,
                    start_block,
                };
                self.loaded = Some(loaded);
                loaded
            }
        };
        let head = self.rpc.block_number().await?;
        self.status.update(chain_id, |h| {
            h.head = Some(head);
            h.cursor = loaded.cursor.map(|c| c.number);
        });

        let reorg = match loaded.cursor {
            Some(cursor) => self.find_reorg(cursor, head, loaded.start_block).await?,
            None => None,
        };
        let base = match &reorg {
            Some(r) => r.ancestor,
            None => loaded.cursor,
        };
        let from = base.map_or(loaded.start_block, |b| b.number.saturating_add(1));
        let mut end = head.min(from.saturating_add(self.chain.max_block_range.max(1) - 1));
        if let Some(r) = &reorg {
            // Rescan at least what was dropped, so that a transaction the
            // new chain includes again is kept rather than removed.
            end = end.max(head.min(r.old.number));
        }
        if reorg.is_none() && from > end {
            return Ok(StepReport {
                head,
                cursor: loaded.cursor.map(|c| c.number),
                ..StepReport::default()
            });
        }
        let scan = if from <= end {
            Some(self.scan(base, from, end, head).await?)
        } else {
            None
        };
        self.apply(loaded, reorg, scan, head).await
    }

    /// Whether the chain still extends `cursor`; if not, the reorg with its
    /// common ancestor.
    async fn find_reorg(
        &self,
        cursor: Cursor,
        head: u64,
        start_block: u64,
    ) -> Result<Option<Reorg>, StepError> {
        let chain_id = self.chain.chain_id;
        if head > cursor.number {
            let next = self.rpc.header(cursor.number + 1).await?.ok_or_else(|| {
                StepError::Raced(format!(
                    "block {} is gone (the endpoint's head was {head})",
                    cursor.number + 1
                ))
            })?;
            if next.parent_hash == cursor.hash {
                return Ok(None);
            }
        } else {
            let canonical = self
                .rpc
                .header(head)
                .await?
                .ok_or_else(|| StepError::Raced(format!("block {head} is gone")))?;
            let stored = if head == cursor.number {
                Some(cursor.hash)
            } else {
                let mut conn = self.pool.acquire().await?;
                store::block_hash(&mut conn, chain_id, head).await?
            };
            match stored {
                // Same chain; the endpoint is just not ahead of us.
                Some(hash) if hash == canonical.hash => return Ok(None),
                // Below what we keep: an endpoint far behind, not a reorg
                // we could judge; wait for it to catch up.
                None => return Ok(None),
                Some(_) => {}
            }
        }

        let top = head.min(cursor.number);
        let stored = {
            let mut conn = self.pool.acquire().await?;
            store::blocks_at_or_below(&mut conn, chain_id, top).await?
        };
        for chunk in stored.chunks(8) {
            let canonical = self.rpc.headers(chunk.iter().map(|(n, _)| *n)).await?;
            for (number, hash) in chunk {
                if canonical.get(number).is_some_and(|h| h.hash == *hash) {
                    return Ok(Some(Reorg {
                        old: cursor,
                        ancestor: Some(Cursor {
                            number: *number,
                            hash: *hash,
                        }),
                        found: true,
                    }));
                }
            }
        }
        // No stored block is canonical: the reorg is deeper than the
        // window. Rewind below everything kept.
        let lowest = stored.last().map_or(top.saturating_add(1), |(n, _)| *n);
        let ancestor = match lowest.checked_sub(1) {
            Some(n) if n >= start_block => {
                let header = self
                    .rpc
                    .header(n)
                    .await?
                    .ok_or_else(|| StepError::Raced(format!("block {n} is gone")))?;
                Some(Cursor {
                    number: n,
                    hash: header.hash,
                })
            }
            _ => None,
        };
        Ok(Some(Reorg {
            old: cursor,
            ancestor,
            found: false,
        }))
    }

    /// Reads `from..=end` (headers, logs) and checks it is one chain that
    /// extends `base`.
    async fn scan(
        &self,
        base: Option<Cursor>,
        from: u64,
        end: u64,
        head: u64,
    ) -> Result<Scan, StepError> {
        let raced = |why: String| StepError::Raced(why);
        // Blocks at or above `floor` are within the reorg window: all their
        // headers are read, linked and kept.
        let floor = head
            .saturating_sub(self.chain.reorg_window.saturating_sub(1))
            .max(from);
        let mut wanted: BTreeSet<u64> = if floor <= end {
            (floor..=end).collect()
        } else {
            BTreeSet::new()
        };
        wanted.insert(from);
        wanted.insert(end);
        let mut headers = self.rpc.headers(wanted.iter().copied()).await?;
        if let Some(missing) = wanted.iter().find(|n| !headers.contains_key(n)) {
            return Err(raced(format!(
                "block {missing} is gone (the endpoint's head was {head})"
            )));
        }
        let header = |headers: &BTreeMap<u64, BlockHeader>, n: u64| {
            headers
                .get(&n)
                .copied()
                .ok_or_else(|| raced(format!("block {n} is gone (not among the headers read)")))
        };
        if let Some(base) = base
            && header(&headers, from)?.parent_hash != base.hash
        {
            return Err(raced(format!("block {from} does not extend the cursor")));
        }
        // Linked block to block within the window only: both blocks of
        // each pair were read. (Starting at `floor` itself asked for the
        // unread block below it whenever the cursor was further behind
        // than the window — after any outage that long — and the step was
        // "raced" on every retry: the watcher never caught up again.)
        for n in floor.max(from).saturating_add(1)..=end {
            if header(&headers, n)?.parent_hash != header(&headers, n - 1)?.hash {
                return Err(raced(format!("block {n} does not extend block {}", n - 1)));
            }
        }

        let mut raw = Vec::new();
        let mut chunk_from = from;
        while chunk_from <= end {
            let chunk_to =
                end.min(chunk_from.saturating_add(self.chain.max_block_range.max(1) - 1));
            raw.extend(
                self.rpc
                    .payment_logs(self.chain.router, chunk_from, chunk_to)
                    .await?,
            );
            chunk_from = chunk_to.saturating_add(1);
            if chunk_to == u64::MAX {
                break;
            }
        }
        let (watched, rescan) = if deposits::enabled(&self.chain) {
            (
                deposits::watched(&self.pool, &self.chain).await?,
                deposits::rescan(&self.pool, &self.chain, from, end).await?,
            )
        } else {
            (deposits::Watched::default(), None)
        };
        let mut token_raw = Vec::new();
        for asset in &self.chain.assets {
            if let Some(token) = asset.token_address {
                token_raw.extend(
                    deposits::transfer_logs(&self.rpc, &self.chain, token, &watched, from, end)
                        .await?,
                );
            }
        }
        let mut rescan_raw = Vec::new();
        if let Some(deposits::Rescan::Read {
            from: rescan_from,
            to: rescan_to,
            addresses,
            ..
        }) = &rescan
        {
            for asset in &self.chain.assets {
                if let Some(token) = asset.token_address {
                    rescan_raw.extend(
                        deposits::rescan_logs(
                            &self.rpc,
                            &self.chain,
                            token,
                            addresses,
                            *rescan_from,
                            *rescan_to,
                        )
                        .await?,
                    );
                }
            }
        }
        let unread: BTreeSet<u64> = raw
            .iter()
            .chain(token_raw.iter())
            .chain(rescan_raw.iter())
            .filter_map(|l| l.block_number)
            .filter(|n| !headers.contains_key(n))
            .collect();
        if !unread.is_empty() {
            headers.extend(self.rpc.headers(unread).await?);
        }
        let admin = guard::scan(&self.rpc, &self.chain, from, end, &mut headers).await?;

        let positioned = position(raw, &headers)?;
        let token_positioned = position(token_raw, &headers)?;
        let rescan_positioned = position(rescan_raw, &headers)?;

        let mut ordinals: HashMap<B256, u32> = HashMap::new();
        let mut logs = Vec::with_capacity(positioned.len());
        for (number, log_index, tx_hash, block, log) in positioned {
            if log.inner.address != self.chain.router {
                continue;
            }
            let event = match PaymentRouter::PaymentReceived::decode_log(&log.inner) {
                Ok(event) => event.data,
                Err(e) => {
                    tracing::warn!(chain_id = self.chain.chain_id, %tx_hash, log_index, error = %e,
                        "router log with the PaymentReceived topic does not decode; ignored");
                    continue;
                }
            };
            let ordinal = ordinals.entry(tx_hash).or_insert(0);
            let tx_log_ordinal = *ordinal;
            *ordinal += 1;
            logs.push(FoundLog {
                tx_hash,
                tx_log_ordinal,
                log_index,
                block_number: number,
                block_hash: block.hash,
                block_timestamp: store::timestamp(block.timestamp)
                    .map_err(|e| StepError::BadChain(e.to_string()))?,
                reference: event.r#ref,
                payer: event.payer,
                token: event.token,
                asset: self
                    .chain
                    .asset_for_token(event.token)
                    .map(|a| a.symbol.clone()),
                amount: event.amount,
            });
        }

        let end_header = header(&headers, end)?;
        let mut found_deposits = deposits::erc20_deposits(&self.chain, &watched, token_positioned)?;
        if let Some(deposits::Rescan::Read { addresses, .. }) = &rescan {
            let hashes: Vec<B256> = rescan_positioned.iter().map(|p| p.2).collect();
            let recorded = deposits::recorded(&self.pool, self.chain.chain_id, &hashes).await?;
            found_deposits.extend(deposits::rescanned_deposits(
                &self.chain,
                addresses,
                rescan_positioned,
                &recorded,
            )?);
        }
        if !watched.native.is_empty() {
            found_deposits.extend(
                deposits::native_deposits(
                    &self.rpc,
                    &self.chain,
                    &watched,
                    base.map(|b| b.hash),
                    &end_header,
                )
                .await?,
            );
        }

        // Nothing moved under us while the logs were read.
        let again = self.rpc.header(end).await?;
        if again.map(|h| h.hash) != Some(end_header.hash) {
            return Err(raced(format!("block {end} changed during the step")));
        }
        let keep = headers
            .range(floor.min(end)..=end)
            .filter(|(n, _)| **n >= floor || **n == end)
            .map(|(_, h)| *h)
            .collect();
        Ok(Scan {
            end: end_header,
            keep,
            logs,
            deposits: found_deposits,
            admin,
            rescan,
        })
    }

    /// Writes a step in one transaction: undo of the reorg, new transfers,
    /// blocks, confirmations, cursor.
    async fn apply(
        &mut self,
        loaded: Loaded,
        reorg: Option<Reorg>,
        scan: Option<Scan>,
        head: u64,
    ) -> Result<StepReport, StepError> {
        let chain_id = self.chain.chain_id;
        let sink = self.sink.clone();
        let mut tx = self.pool.begin().await?;
        if store::lock_cursor(&mut tx, chain_id).await? != loaded.cursor {
            return Err(StepError::Raced(
                "another watcher of this chain moved the cursor".into(),
            ));
        }
        let mut report = StepReport {
            head,
            ..StepReport::default()
        };

        // Transfers above the common ancestor, by identity.
        let mut dropped: HashMap<(B256, u32), Transfer> = HashMap::new();
        if let Some(r) = &reorg {
            let ancestor = r.ancestor.map(|a| a.number);
            for t in store::live_transfers_above(&mut tx, chain_id, ancestor).await? {
                dropped.insert((t.tx_hash, t.tx_log_ordinal), t);
            }
            store::delete_blocks_above(&mut tx, chain_id, ancestor).await?;
            guard::forget_above(&mut tx, chain_id, ancestor).await?;
        }

        // Each log with the address it paid: the router, or a deposit address.
        let router = self.chain.router;
        let logs: Vec<(Address, &FoundLog)> = scan
            .as_ref()
            .map(|s| {
                s.logs
                    .iter()
                    .map(|l| (router, l))
                    .chain(s.deposits.iter().map(|(to, l)| (*to, l)))
                    .collect()
            })
            .unwrap_or_default();
        let mut fresh: Vec<(Address, FoundLog)> = Vec::with_capacity(logs.len());
        let mut to_remove = Vec::new();
        for (to, log) in logs {
            match dropped.remove(&(log.tx_hash, log.tx_log_ordinal)) {
                Some(old) if log.same_payment(&old) && old.router == to => {
                    store::move_transfer(&mut tx, chain_id, log).await?;
                    report.kept += 1;
                }
                Some(old) => {
                    // Same transaction, another payment: the old one is
                    // gone, the new one is new.
                    to_remove.push(old);
                    fresh.push((to, log.clone()));
                }
                None => fresh.push((to, log.clone())),
            }
        }
        to_remove.extend(dropped.into_values());
        to_remove.sort_by_key(|t| (t.block_number, t.log_index, t.id));
        let mut confirmed_removed = 0u32;
        // Confirmed transfers a reorg took away: alerted after the commit.
        let mut lost = Vec::new();
        for old in to_remove {
            let was_confirmed = old.status == TransferStatus::Confirmed;
            let removed = store::mark_removed(&mut tx, old.id).await?;
            sink.removed(&mut tx, &removed, was_confirmed)
                .await
                .map_err(StepError::Sink)?;
            report.removed += 1;
            if was_confirmed {
                confirmed_removed += 1;
                lost.push(removed);
            }
        }

        let cursor = match &scan {
            Some(s) => Some(Cursor {
                number: s.end.number,
                hash: s.end.hash,
            }),
            None => reorg.and_then(|r| r.ancestor),
        };
        // Blocks up to here have the confirmation depth once the cursor is
        // at `cursor`.
        let deep_enough = cursor.and_then(|c| (c.number + 1).checked_sub(self.chain.confirmations));
        let mut by_receiver: BTreeMap<Address, Vec<FoundLog>> = BTreeMap::new();
        for (to, log) in &fresh {
            by_receiver.entry(*to).or_default().push(log.clone());
        }
        let mut written = Vec::with_capacity(fresh.len());
        for (to, logs) in &by_receiver {
            written
                .extend(store::insert_transfers(&mut tx, chain_id, *to, logs, deep_enough).await?);
        }
        written.sort_by_key(|t| (t.block_number, t.log_index, t.id));
        if written.len() < fresh.len() {
            let recorded: HashSet<(B256, u32)> = written
                .iter()
                .map(|t| (t.tx_hash, t.tx_log_ordinal))
                .collect();
            let elsewhere: Vec<FoundLog> = fresh
                .iter()
                .map(|(_, l)| l)
                .filter(|l| !recorded.contains(&(l.tx_hash, l.tx_log_ordinal)))
                .cloned()
                .collect();
            for log in &elsewhere {
                // The same transaction already counts at an older block: our
                // view of the past was wrong (a reorg beyond the window).
                // Keep the one row, where the chain has it now.
                tracing::error!(chain_id, tx_hash = %log.tx_hash, block = log.block_number,
                    "transfer already recorded at another block; moved, not counted again");
                store::move_transfer(&mut tx, chain_id, log).await?;
            }
        }
        // Rows written already confirmed: the sink still hears `detected`
        // first.
        let mut confirmed = Vec::new();
        for transfer in written {
            if transfer.status == TransferStatus::Confirmed {
                let detected = Transfer {
                    status: TransferStatus::Detected,
                    ..transfer.clone()
                };
                sink.detected(&mut tx, &detected)
                    .await
                    .map_err(StepError::Sink)?;
                confirmed.push(transfer);
            } else {
                sink.detected(&mut tx, &transfer)
                    .await
                    .map_err(StepError::Sink)?;
            }
            report.detected += 1;
        }

        if let Some(s) = &scan {
            store::put_blocks(&mut tx, chain_id, &s.keep).await?;
            guard::record(&mut tx, chain_id, &s.admin).await?;
            if let Some(rescan) = &s.rescan {
                deposits::record_rescan(&mut tx, chain_id, rescan).await?;
            }
            report.admin_events = u32::try_from(s.admin.len()).unwrap_or(u32::MAX);
        }
        if let Some(deep_enough) = deep_enough {
            confirmed.extend(store::confirm_up_to(&mut tx, chain_id, deep_enough).await?);
        }
        confirmed.sort_by_key(|t| (t.block_number, t.log_index, t.id));
        for transfer in &confirmed {
            sink.confirmed(&mut tx, transfer)
                .await
                .map_err(StepError::Sink)?;
        }
        report.confirmed = u32::try_from(confirmed.len()).unwrap_or(u32::MAX);
        if let Some(c) = cursor {
            store::prune_blocks_below(
                &mut tx,
                chain_id,
                c.number.saturating_sub(self.chain.reorg_window),
            )
            .await?;
        }
        // The time of a block read in this step; a reorg's ancestor was
        // not read, and leaves it unknown until the next step.
        let cursor_time = scan
            .as_ref()
            .map(|s| store::timestamp(s.end.timestamp))
            .transpose()
            .map_err(|e| StepError::BadChain(e.to_string()))?;
        store::set_cursor(&mut tx, chain_id, cursor, cursor_time).await?;

        if let Some(r) = &reorg {
            let ancestor = r.ancestor.map(|a| a.number);
            let depth = match ancestor {
                Some(a) => r.old.number.saturating_sub(a),
                None => r
                    .old
                    .number
                    .saturating_add(1)
                    .saturating_sub(loaded.start_block),
            };
            let record = ReorgRecord {
                old: r.old,
                ancestor,
                depth,
                deep: depth >= self.chain.confirmations || !r.found,
                within_window: r.found,
                removed: report.removed,
                confirmed_removed,
                kept: report.kept,
            };
            store::record_reorg(&mut tx, chain_id, &record).await?;
            report.reorg = Some(record);
        }
        tx.commit().await?;

        report.cursor = cursor.map(|c| c.number);
        self.loaded = Some(Loaded { cursor, ..loaded });
        if let Some(s) = &scan {
            guard::announce(chain_id, &s.admin, &self.metrics);
        }
        for t in &lost {
            tracing::error!(
                chain_id,
                transfer = t.id,
                tx_hash = %t.tx_hash,
                block = t.block_number,
                reference = %t.reference,
                token = %t.token,
                amount = %t.amount,
                "a reorg removed a CONFIRMED transfer; the payments side reverses it"
            );
        }
        self.after_commit(&report);
        Ok(report)
    }

    /// Metrics and alerts of a committed step.
    fn after_commit(&self, report: &StepReport) {
        let chain_id = self.chain.chain_id;
        let m = &self.metrics;
        m.add("chain_transfers_detected", u64::from(report.detected));
        m.add("chain_transfers_confirmed", u64::from(report.confirmed));
        m.add("chain_transfers_removed", u64::from(report.removed));
        if let Some(r) = &report.reorg {
            m.add("chain_reorgs", 1);
            if r.deep {
                m.add("deep_reorgs", 1);
                tracing::error!(
                    chain_id,
                    depth = r.depth,
                    old_block = r.old.number,
                    old_hash = %r.old.hash,
                    ancestor = ?r.ancestor,
                    within_window = r.within_window,
                    removed = r.removed,
                    confirmed_removed = r.confirmed_removed,
                    confirmations = self.chain.confirmations,
                    "DEEP REORG: blocks that had reached the confirmation depth were replaced"
                );
            } else {
                tracing::warn!(
                    chain_id,
                    depth = r.depth,
                    ancestor = ?r.ancestor,
                    removed = r.removed,
                    kept = r.kept,
                    "reorg handled"
                );
            }
        }
        if report.detected + report.confirmed + report.removed > 0 {
            tracing::debug!(
                chain_id,
                cursor = ?report.cursor,
                head = report.head,
                detected = report.detected,
                confirmed = report.confirmed,
                removed = report.removed,
                "chain step"
            );
        }
    }
}
