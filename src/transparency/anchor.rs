//! Anchoring checkpoints in `SettlementAnchor`.
//!
//! [`anchor_checkpoint`] makes one recorded checkpoint durable on-chain:
//!
//! 1. If the contract already holds a checkpoint of that size (an earlier
//!    attempt, one re-mined after a reorg, or one sent by a node that crashed
//!    before recording it), it checks the root and adopts that transaction,
//!    found through its `CheckpointAnchored` event ([`find_anchoring_log`]:
//!    the contract stores only sizes and roots, the event's block is where
//!    and when it was anchored), once it is `confirmations` deep.
//! 2. Otherwise it queues the call `anchor(treeSize, root, prevRoot)`, with
//!    `prevRoot` the contract's latest root, after checking that that root
//!    is our own log's root at that size (a fork is refused, never papered
//!    over).
//! 3. The call goes through the node's one transaction pipeline, the hot
//!    wallet's [`crate::chain::sender`], signed by the anchorer key under
//!    its own nonce row: written before it is broadcast, fee bumps,
//!    re-broadcasts, confirmations on the canonical chain. A transaction a
//!    reorg drops is replaced at its nonce by a fresh one. The pipeline
//!    tells [`AnchorRows`] what happens, which mirrors it in
//!    `transparency_anchors` (`sent`, `mined`, `dropped`, `reverted`,
//!    and `confirmed` in the transaction that finishes the send). A
//!    reverted call starts again at 1.
//!
//! A reorg can also take an anchor away *after* its confirmations (deeper
//! than the confirmation depth). [`orphaned_anchors`] looks at every
//! confirmed anchor of the last [`RECHECK_BLOCKS`] blocks again; the caller
//! retires one the canonical chain no longer has ([`retire`], in the same
//! transaction as whatever pointed at it) and anchors again.
//!
//! Every transaction is a row of `transparency_anchors`; exactly one per
//! checkpoint and contract is `confirmed` at a time. The contract only accepts
//! strictly growing sizes linked to the previous root, so two racing
//! anchorers or a re-sent twin can never anchor a checkpoint twice.
//! The function is idempotent: after a crash or a timeout, calling it again
//! picks up where the chain and the pipeline are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use futures::future::BoxFuture;
use sqlx::PgConnection;

use super::store::{AnchorRecord, to_i64, to_u64};
use super::{Checkpoint, TransparencyError, TransparencyLog, origin_for_anchor};
use crate::chain::config::ChainConfig;
use crate::chain::contracts::SettlementAnchor;
use crate::chain::sender::{
    self, Call, CallEvent, ChainSend, NewCall, Purpose, SendError, SendOutcome, SendSink, Sender,
};
use crate::chain::watcher::SinkError;
use crate::db::Db;
use crate::telemetry::metrics::Metrics;

/// How patiently to anchor.
#[derive(Debug, Clone)]
pub struct AnchorOptions {
    /// Blocks that must contain or follow the anchoring transaction's block
    /// (1: the block itself suffices).
    pub confirmations: u64,
    /// Pause between two looks at the chain.
    pub poll_interval: Duration,
    /// Budget of one [`anchor_checkpoint`] call; it can be called again.
    pub timeout: Duration,
    /// Transactions one call may send before it gives up (re-sends after
    /// reorgs included).
    pub max_sends: u32,
}

impl Default for AnchorOptions {
    fn default() -> Self {
        Self {
            confirmations: 6,
            poll_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(15 * 60),
            max_sends: 5,
        }
    }
}

/// Errors of anchoring.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The RPC endpoint failed.
    #[error("the chain's endpoint failed")]
    Rpc(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No code at the contract address.
    #[error("no contract at {0}")]
    NoContract(Address),
    /// The log has no checkpoint of this size.
    #[error("the log has no checkpoint of size {0}")]
    UnknownCheckpoint(u64),
    /// The contract's checkpoints are not states of this log: a fork.
    #[error("the chain disagrees with the log: {0}")]
    ChainMismatch(String),
    /// A larger checkpoint is already anchored, so this one never can be.
    #[error(
        "checkpoint {tree_size} cannot be anchored: the contract already holds size {anchored}"
    )]
    Superseded {
        /// The checkpoint asked for.
        tree_size: u64,
        /// The contract's latest size.
        anchored: u64,
    },
    /// The checkpoint grows the contract's latest by more than its
    /// `maxGrowth`; a checkpoint within reach must be anchored first.
    #[error(
        "checkpoint {tree_size} cannot be anchored yet: the contract holds size {anchored} and \
         takes at most {max_growth} more leaves per anchor"
    )]
    GrowthTooLarge {
        /// The checkpoint asked for.
        tree_size: u64,
        /// The contract's latest size.
        anchored: u64,
        /// The contract's `maxGrowth`.
        max_growth: u64,
    },
    /// The checkpoint is larger than the contract can hold.
    #[error("checkpoint {tree_size} cannot be anchored: the contract holds at most {max} leaves")]
    TooLarge {
        /// The checkpoint asked for.
        tree_size: u64,
        /// The contract's `MAX_TREE_SIZE`.
        max: u64,
    },
    /// Too many transactions failed or were dropped.
    #[error("gave up after {sends} transactions: {last}")]
    GaveUp {
        /// Transactions sent.
        sends: u32,
        /// The last failure.
        last: String,
    },
    /// The budget ran out; calling again resumes.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The transaction pipeline failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] TransparencyError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn rpc(e: impl std::error::Error + Send + Sync + 'static) -> AnchorError {
    AnchorError::Rpc(Box::new(e))
}

/// A connection to `SettlementAnchor` with the node's anchoring key.
#[derive(Debug, Clone)]
pub struct Anchorer {
    provider: DynProvider,
    rpc_url: String,
    signer: PrivateKeySigner,
    contract: Address,
    chain_id: u64,
    options: AnchorOptions,
}

impl Anchorer {
    /// Connects to `contract` on the chain at `rpc_url`, signing with
    /// `signer` (which must hold `ANCHORER_ROLE`; it is not the treasury's
    /// key). Its transactions go through the hot-wallet pipeline, under the
    /// signer's own nonce row.
    pub async fn connect(
        rpc_url: &str,
        contract: Address,
        signer: PrivateKeySigner,
        options: AnchorOptions,
    ) -> Result<Self, AnchorError> {
        let url = rpc_url.parse().map_err(rpc)?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        if provider
            .get_code_at(contract)
            .await
            .map_err(rpc)?
            .is_empty()
        {
            return Err(AnchorError::NoContract(contract));
        }
        Ok(Self {
            provider,
            rpc_url: rpc_url.to_owned(),
            signer,
            contract,
            chain_id,
            options,
        })
    }

    /// The pipeline's sender of this anchorer's calls.
    fn sender(&self, pool: &Db) -> Result<Sender, AnchorError> {
        let chain = ChainConfig::endpoint(self.chain_id, &self.rpc_url, self.options.confirmations);
        Ok(Sender::for_calls(
            chain,
            pool.clone(),
            self.signer.clone(),
            Purpose::Anchor,
            Arc::new(AnchorRows),
            Arc::new(Metrics::default()),
        )?)
    }

    /// The object ids of the calls anchoring `tree_size` here start so.
    fn object_prefix(&self, tree_size: u64) -> String {
        format!("{}:{tree_size}:", address_hex(self.contract))
    }

    /// The chain's id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The contract.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The options in force.
    pub fn options(&self) -> &AnchorOptions {
        &self.options
    }

    /// The conventional origin of a log anchored here.
    pub fn origin(&self) -> String {
        origin_for_anchor(self.chain_id, self.contract)
    }

    fn anchor(&self) -> SettlementAnchor::SettlementAnchorInstance<&DynProvider> {
        SettlementAnchor::new(self.contract, &self.provider)
    }

    /// The largest tree size the next anchor may have: the contract's latest
    /// size plus its `maxGrowth`, at most `MAX_TREE_SIZE`.
    pub async fn reach(&self) -> Result<u64, AnchorError> {
        let (latest, _) = latest_on_chain(&self.anchor()).await?;
        let contract = self.anchor();
        let max_growth = contract.maxGrowth().call().await.map_err(rpc)?;
        let max = contract.MAX_TREE_SIZE().call().await.map_err(rpc)?;
        Ok(latest.saturating_add(max_growth).min(max))
    }
}

/// The size and root of the contract's latest checkpoint (0 and zero if none).
async fn latest_on_chain(
    contract: &SettlementAnchor::SettlementAnchorInstance<&DynProvider>,
) -> Result<(u64, B256), AnchorError> {
    let count = contract.checkpointCount().call().await.map_err(rpc)?;
    if count.is_zero() {
        return Ok((0, B256::ZERO));
    }
    let latest = contract.latest().call().await.map_err(rpc)?;
    Ok((latest.checkpoint_.treeSize, latest.checkpoint_.root))
}

/// A transaction in a block.
#[derive(Debug, Clone)]
struct Mined {
    tx_hash: B256,
    block_number: u64,
    block_hash: B256,
    seq: u64,
    gas_used: Option<u64>,
}

/// How far back confirmed anchors are checked again. Chains finalize far
/// sooner (Ethereum within 64 blocks); an anchor older than this is not
/// looked at again.
pub const RECHECK_BLOCKS: u64 = 1024;

/// A confirmed anchor whose transaction is no longer in the canonical
/// block it was confirmed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphaned {
    /// The checkpoint it anchored.
    pub tree_size: u64,
    /// The transaction.
    pub tx_hash: B256,
    /// The block it was confirmed in.
    pub block_number: u64,
}

/// The confirmed anchors of this anchorer's contract, in blocks of the last
/// [`RECHECK_BLOCKS`], whose block is no longer canonical (a reorg deeper
/// than the confirmation depth): their checkpoints must be anchored again,
/// and whatever points at their transactions moved. Smallest first.
pub async fn orphaned_anchors(
    pool: &Db,
    anchorer: &Anchorer,
) -> Result<Vec<Orphaned>, AnchorError> {
    let provider = &anchorer.provider;
    let head = provider.get_block_number().await.map_err(rpc)?;
    let rows = sqlx::query!(
        r#"SELECT tree_size, tx_hash, block_number AS "block_number!", block_hash AS "block_hash!"
             FROM transparency_anchors
            WHERE chain_id = $1 AND contract = $2 AND status = 'confirmed' AND block_number >= $3
            ORDER BY tree_size"#,
        to_i64(anchorer.chain_id)?,
        address_hex(anchorer.contract),
        to_i64(head.saturating_sub(RECHECK_BLOCKS))?,
    )
    .fetch_all(pool)
    .await?;
    let mut orphaned = Vec::new();
    for row in rows {
        let corrupt = |what: &str| TransparencyError::Corrupt(format!("anchor {what}"));
        let block_number = to_u64(row.block_number)?;
        let block_hash: B256 = row.block_hash.parse().map_err(|_| corrupt("block hash"))?;
        let canonical = provider
            .get_block_by_number(block_number.into())
            .await
            .map_err(rpc)?
            .map(|b| b.header.hash);
        if canonical == Some(block_hash) {
            continue;
        }
        orphaned.push(Orphaned {
            tree_size: to_u64(row.tree_size)?,
            tx_hash: row.tx_hash.parse().map_err(|_| corrupt("tx hash"))?,
            block_number,
        });
    }
    Ok(orphaned)
}

/// Retires an orphaned anchor (marks it `dropped`) in the caller's
/// transaction, so the checkpoint can be anchored (or adopted, if the chain
/// mined the same transaction again) anew.
pub async fn retire(conn: &mut sqlx::PgConnection, orphaned: &Orphaned) -> Result<(), AnchorError> {
    sqlx::query!(
        "UPDATE transparency_anchors SET status = 'dropped'
          WHERE tx_hash = $1 AND status = 'confirmed'",
        b256_hex(orphaned.tx_hash),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Anchors the recorded checkpoint of `tree_size` (see the module
/// documentation) and returns its confirmed anchor. Holds no database
/// transaction while it waits.
pub async fn anchor_checkpoint(
    pool: &Db,
    anchorer: &Anchorer,
    tree_size: u64,
) -> Result<AnchorRecord, AnchorError> {
    let deadline = Instant::now() + anchorer.options.timeout;
    let checkpoint = {
        let mut conn = pool.acquire().await?;
        TransparencyLog::checkpoint_at(&mut conn, tree_size).await?
    }
    .ok_or(AnchorError::UnknownCheckpoint(tree_size))?;
    if let Some(done) = confirmed(pool, anchorer, tree_size).await? {
        return Ok(done);
    }
    let pipeline = anchorer.sender(pool)?;
    let prefix = anchorer.object_prefix(tree_size);
    loop {
        pipeline.tick().await?;
        if let Some(done) = confirmed(pool, anchorer, tree_size).await? {
            return Ok(done);
        }
        let sends = sender::sends_of(pool, Purpose::Anchor, &prefix).await?;
        let open = sends
            .iter()
            .rev()
            .find(|s| s.status == "queued" || s.status == "sent");
        // A send on its way is the pipeline's. One the chain refuses to
        // estimate (another anchor moved the contract's latest root, or
        // the log forked) is given up, and the contract looked at again.
        let stale = open.filter(|s| s.status == "queued" && s.failures > 0);
        if let Some(s) = stale {
            if !sender::cancel_queued(pool, &s.id).await? {
                // The pipeline signed it meanwhile: it sees it through.
                continue;
            }
            tracing::info!(tree_size, send = %s.id, error = s.last_error.as_deref().unwrap_or(""),
                "anchoring call refused by the chain; looking again");
        }
        if open.is_none() || stale.is_some() {
            if let Some(found) = on_chain(anchorer, &checkpoint).await? {
                if let Some(done) = adopt(pool, anchorer, tree_size, &found).await? {
                    return Ok(done);
                }
            } else {
                let input = anchor_call(pool, anchorer, &checkpoint).await?;
                let attempts = u32::try_from(sends.len()).unwrap_or(u32::MAX);
                if attempts >= anchorer.options.max_sends {
                    return Err(AnchorError::GaveUp {
                        sends: attempts,
                        last: sends
                            .iter()
                            .rev()
                            .find_map(|s| s.last_error.clone())
                            .unwrap_or_default(),
                    });
                }
                let object_id = format!("{prefix}{attempts}");
                let mut conn = pool.acquire().await?;
                let call = NewCall {
                    chain_id: anchorer.chain_id,
                    purpose: Purpose::Anchor,
                    object_id: &object_id,
                    signer: anchorer.signer.address(),
                    to: anchorer.contract,
                    input: &input,
                };
                // `None`: another node queued it; the pipeline has it.
                if let Some(id) = sender::queue_call(&mut conn, &call).await? {
                    tracing::info!(tree_size, send = %id, "checkpoint anchoring queued");
                }
                continue;
            }
        }
        if Instant::now() > deadline {
            return Err(AnchorError::Timeout(format!(
                "checkpoint {tree_size} to be anchored"
            )));
        }
        tokio::time::sleep(anchorer.options.poll_interval).await;
    }
}

/// Takes the checkpoint another transaction put on the chain (ours, sent
/// by a node that crashed before recording it, or another anchorer's) once
/// it is `confirmations` deep in a canonical block; `None` while it is not.
async fn adopt(
    pool: &Db,
    anchorer: &Anchorer,
    tree_size: u64,
    found: &Mined,
) -> Result<Option<AnchorRecord>, AnchorError> {
    let provider = &anchorer.provider;
    let canonical = provider
        .get_block_by_number(found.block_number.into())
        .await
        .map_err(rpc)?
        .map(|b| b.header.hash);
    if canonical != Some(found.block_hash) {
        // The log came from a block a reorg is replacing: look again.
        return Ok(None);
    }
    let mut conn = pool.acquire().await?;
    let at = (anchorer.chain_id, anchorer.contract);
    record_mined(&mut conn, at, tree_size, found).await?;
    let head = provider.get_block_number().await.map_err(rpc)?;
    if (head + 1).saturating_sub(found.block_number) < anchorer.options.confirmations {
        return Ok(None);
    }
    record_confirmed(&mut conn, at, tree_size, found).await?;
    confirmed(pool, anchorer, tree_size).await
}

/// The input of `anchor(treeSize, root, prevRoot)` for `cp`, with
/// `prevRoot` the contract's latest root, after checking that the contract
/// can take it and that that root is our own log's root at its size (a
/// fork is refused, never papered over).
async fn anchor_call(
    pool: &Db,
    anchorer: &Anchorer,
    cp: &Checkpoint,
) -> Result<Vec<u8>, AnchorError> {
    let contract = anchorer.anchor();
    let (prev_size, prev_root) = latest_on_chain(&contract).await?;
    if prev_size >= cp.tree_size {
        return Err(AnchorError::Superseded {
            tree_size: cp.tree_size,
            anchored: prev_size,
        });
    }
    let max = contract.MAX_TREE_SIZE().call().await.map_err(rpc)?;
    if cp.tree_size > max {
        return Err(AnchorError::TooLarge {
            tree_size: cp.tree_size,
            max,
        });
    }
    let max_growth = contract.maxGrowth().call().await.map_err(rpc)?;
    if cp.tree_size - prev_size > max_growth {
        return Err(AnchorError::GrowthTooLarge {
            tree_size: cp.tree_size,
            anchored: prev_size,
            max_growth,
        });
    }
    if prev_size > 0 {
        let ours = {
            let mut conn = pool.acquire().await?;
            TransparencyLog::root(&mut conn, prev_size).await?
        };
        if ours != prev_root.0 {
            return Err(AnchorError::ChainMismatch(format!(
                "the contract's latest checkpoint (size {prev_size}, root {prev_root:#x}) \
                 is not this log's root at that size ({})",
                super::hex32(&ours)
            )));
        }
    }
    Ok(SettlementAnchor::anchorCall {
        treeSize: cp.tree_size,
        root: B256::from(cp.root),
        prevRoot: prev_root,
    }
    .abi_encode())
}

/// Mirrors the anchoring calls of the hot-wallet pipeline in
/// `transparency_anchors`: a row per transaction, `confirmed` in the
/// transaction that finishes the send.
struct AnchorRows;

impl AnchorRows {
    /// The checkpoint a call anchors, from its object id
    /// (`<contract>:<tree size>:<attempt>`).
    fn tree_size(call: &Call) -> Result<u64, SinkError> {
        call.object_id
            .split(':')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| SinkError::msg(format!("anchor call {}: bad object id", call.id)))
    }
}

impl SendSink for AnchorRows {
    fn finished<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        send: &'a ChainSend,
        _outcome: SendOutcome,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            Err(SinkError::msg(format!(
                "{} is not an anchoring call",
                send.id
            )))
        })
    }

    fn call_event<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        call: &'a Call,
        event: CallEvent<'a>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let tree_size = Self::tree_size(call)?;
            let at = (call.chain_id, call.to);
            match event {
                CallEvent::Signed(tx_hash) => {
                    record_sent(conn, at, tree_size, tx_hash).await?;
                }
                CallEvent::Replaced { old, new } => {
                    set_status(conn, old, "dropped").await?;
                    record_sent(conn, at, tree_size, new).await?;
                    tracing::warn!(tree_size, old = %b256_hex(old), new = %b256_hex(new),
                        "anchoring transaction replaced");
                }
                CallEvent::Mined(receipt) => {
                    if let Some(mined) = mined_from(receipt, call.to) {
                        record_mined(conn, at, tree_size, &mined).await?;
                    }
                }
                CallEvent::Finished(SendOutcome::Reverted, receipt) => {
                    set_status(conn, receipt.transaction_hash, "reverted").await?;
                }
                CallEvent::Finished(SendOutcome::Confirmed, receipt) => {
                    let mined = mined_from(receipt, call.to).ok_or_else(|| {
                        SinkError::msg(format!(
                            "{:#x} has no CheckpointAnchored event",
                            receipt.transaction_hash
                        ))
                    })?;
                    record_mined(conn, at, tree_size, &mined).await?;
                    record_confirmed(conn, at, tree_size, &mined).await?;
                }
            }
            Ok(())
        })
    }
}

/// Where an anchor is: chain id and contract.
type At = (u64, Address);

async fn record_sent(
    conn: &mut PgConnection,
    (chain_id, contract): At,
    tree_size: u64,
    tx_hash: B256,
) -> Result<(), AnchorError> {
    sqlx::query!(
        "INSERT INTO transparency_anchors (tree_size, chain_id, contract, tx_hash, status)
         VALUES ($1, $2, $3, $4, 'sent')
         ON CONFLICT (tx_hash) DO NOTHING",
        to_i64(tree_size)?,
        to_i64(chain_id)?,
        address_hex(contract),
        b256_hex(tx_hash),
    )
    .execute(conn)
    .await?;
    tracing::info!(tree_size, tx = %b256_hex(tx_hash), "checkpoint anchoring signed");
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    tx_hash: B256,
    status: &str,
) -> Result<(), AnchorError> {
    sqlx::query!(
        "UPDATE transparency_anchors SET status = $2 WHERE tx_hash = $1 AND status <> 'confirmed'",
        b256_hex(tx_hash),
        status,
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn record_mined(
    conn: &mut PgConnection,
    (chain_id, contract): At,
    tree_size: u64,
    mined: &Mined,
) -> Result<(), AnchorError> {
    sqlx::query!(
        "INSERT INTO transparency_anchors
             (tree_size, chain_id, contract, tx_hash, status, block_number, block_hash, seq, gas_used)
         VALUES ($1, $2, $3, $4, 'mined', $5, $6, $7, $8)
         ON CONFLICT (tx_hash) DO UPDATE
         SET status = 'mined', block_number = EXCLUDED.block_number,
             block_hash = EXCLUDED.block_hash, seq = EXCLUDED.seq,
             gas_used = COALESCE(EXCLUDED.gas_used, transparency_anchors.gas_used)
         WHERE transparency_anchors.status <> 'confirmed'",
        to_i64(tree_size)?,
        to_i64(chain_id)?,
        address_hex(contract),
        b256_hex(mined.tx_hash),
        to_i64(mined.block_number)?,
        b256_hex(mined.block_hash),
        to_i64(mined.seq)?,
        mined.gas_used.map(to_i64).transpose()?,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the anchor confirmed, unless another transaction of the same
/// checkpoint and contract already is (another node's adoption): that
/// one stands.
async fn record_confirmed(
    conn: &mut PgConnection,
    (chain_id, contract): At,
    tree_size: u64,
    mined: &Mined,
) -> Result<(), AnchorError> {
    let updated = sqlx::query!(
        "UPDATE transparency_anchors
         SET status = 'confirmed', confirmed_at = now(),
             block_number = $2, block_hash = $3, seq = $4
         WHERE tx_hash = $1
           AND NOT EXISTS (SELECT 1 FROM transparency_anchors
                            WHERE tree_size = $5 AND chain_id = $6 AND contract = $7
                              AND status = 'confirmed')",
        b256_hex(mined.tx_hash),
        to_i64(mined.block_number)?,
        b256_hex(mined.block_hash),
        to_i64(mined.seq)?,
        to_i64(tree_size)?,
        to_i64(chain_id)?,
        address_hex(contract),
    )
    .execute(conn)
    .await?
    .rows_affected();
    if updated == 1 {
        tracing::info!(tree_size, tx = %b256_hex(mined.tx_hash), block = mined.block_number,
            "checkpoint anchored");
    }
    Ok(())
}

/// The checkpoint of this size on the contract, with the transaction that
/// anchored it; `None` if the contract has none.
async fn on_chain(anchorer: &Anchorer, cp: &Checkpoint) -> Result<Option<Mined>, AnchorError> {
    let size = cp.tree_size;
    let found = match anchorer.anchor().checkpointBySize(size).call().await {
        Ok(found) => found,
        Err(e) => {
            use SettlementAnchor::SettlementAnchorErrors as E;
            return match e.as_decoded_interface_error::<E>() {
                Some(E::UnknownTreeSize(_)) => Ok(None),
                _ => Err(rpc(e)),
            };
        }
    };
    let on_chain_root = found.checkpoint_.root;
    if on_chain_root.0 != cp.root {
        return Err(AnchorError::ChainMismatch(format!(
            "the contract holds root {on_chain_root:#x} for size {size}, the log {}",
            super::hex32(&cp.root)
        )));
    }
    let seq = u64::try_from(found.seq).map_err(rpc)?;
    let log = find_anchoring_log(&anchorer.provider, anchorer.contract, seq, None)
        .await
        .map_err(|e| AnchorError::Rpc(e.into()))?
        .ok_or_else(|| {
            AnchorError::Rpc(
                format!(
                    "the contract holds checkpoint #{seq} but no CheckpointAnchored #{seq} was found"
                )
                .into(),
            )
        })?;
    if log.tree_size != size || log.root.0 != cp.root {
        return Err(AnchorError::ChainMismatch(format!(
            "CheckpointAnchored #{seq} names size {} root {:#x}, the contract size {size} root {:#x}",
            log.tree_size, log.root, on_chain_root
        )));
    }
    let gas_used = anchorer
        .provider
        .get_transaction_receipt(log.tx_hash)
        .await
        .map_err(rpc)?
        .map(|r| r.gas_used);
    Ok(Some(Mined {
        tx_hash: log.tx_hash,
        block_number: log.block_number,
        block_hash: log.block_hash,
        seq,
        gas_used,
    }))
}

/// Where checkpoint `seq` of a `SettlementAnchor` was anchored: its
/// `CheckpointAnchored` log, as the chain serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchoringLog {
    /// Tree size the event names.
    pub tree_size: u64,
    /// Root the event names.
    pub root: B256,
    /// The root the event says it extends.
    pub prev_root: B256,
    /// Block holding the log: when the checkpoint was anchored.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// The anchoring transaction.
    pub tx_hash: B256,
}

/// Blocks per `eth_getLogs` request when the endpoint refuses to search the
/// whole chain in one.
const LOG_WINDOW: u64 = 5_000;

/// Finds the `CheckpointAnchored` log of checkpoint `seq` of `contract` with
/// `eth_getLogs` alone (its seq is an indexed topic, so every search asks
/// for one log): first in block `hint` if given (a block someone claims it
/// is in), then in the whole chain at once, and if the endpoint refuses such
/// a range, in windows of [`LOG_WINDOW`] blocks from the head back. `None`
/// if the chain has no such log. A checkpoint the admin removed with
/// `supersede` leaves its log behind and its seq is used again, so the latest
/// log of a seq is the live one; callers check its size and root.
pub async fn find_anchoring_log(
    provider: &DynProvider,
    contract: Address,
    seq: u64,
    hint: Option<u64>,
) -> Result<Option<AnchoringLog>, String> {
    let filter = Filter::new()
        .address(contract)
        .event_signature(SettlementAnchor::CheckpointAnchored::SIGNATURE_HASH)
        .topic1(B256::from(U256::from(seq)));
    let search = |from: u64, to: u64| {
        let filter = filter.clone().from_block(from).to_block(to);
        async move {
            let logs = provider
                .get_logs(&filter)
                .await
                .map_err(|e| format!("eth_getLogs {from}–{to} on {contract}: {e}"))?;
            pick_anchoring_log(&logs, contract, seq)
        }
    };
    if let Some(block) = hint
        && let Some(found) = search(block, block).await?
    {
        return Ok(Some(found));
    }
    let head = provider
        .get_block_number()
        .await
        .map_err(|e| format!("chain head: {e}"))?;
    match search(0, head).await {
        Ok(found) => return Ok(found),
        Err(e) => tracing::debug!(seq, error = %e, "searching the whole chain refused; by windows"),
    }
    let mut to = head;
    loop {
        let from = to.saturating_sub(LOG_WINDOW - 1);
        if let Some(found) = search(from, to).await? {
            return Ok(Some(found));
        }
        if from == 0 {
            return Ok(None);
        }
        to = from - 1;
    }
}

/// The latest `CheckpointAnchored` log of `seq` from `contract` among `logs`.
fn pick_anchoring_log(
    logs: &[alloy::rpc::types::Log],
    contract: Address,
    seq: u64,
) -> Result<Option<AnchoringLog>, String> {
    let mut found: Option<(u64, AnchoringLog)> = None;
    for log in logs
        .iter()
        .filter(|l| !l.removed && l.address() == contract)
    {
        let Ok(decoded) = log.log_decode::<SettlementAnchor::CheckpointAnchored>() else {
            continue;
        };
        let event = decoded.inner.data;
        if event.seq != U256::from(seq) {
            continue;
        }
        let (Some(block_number), Some(block_hash), Some(tx_hash)) =
            (log.block_number, log.block_hash, log.transaction_hash)
        else {
            return Err(format!(
                "CheckpointAnchored #{seq} without its block or transaction"
            ));
        };
        let log_index = log.log_index.unwrap_or_default();
        if found
            .as_ref()
            .is_some_and(|(index, f)| (f.block_number, *index) > (block_number, log_index))
        {
            continue;
        }
        found = Some((
            log_index,
            AnchoringLog {
                tree_size: event.treeSize,
                root: event.root,
                prev_root: event.prevRoot,
                block_number,
                block_hash,
                tx_hash,
            },
        ));
    }
    Ok(found.map(|(_, log)| log))
}

fn mined_from(receipt: &TransactionReceipt, contract: Address) -> Option<Mined> {
    let event = receipt.inner.logs().iter().find_map(|log| {
        (log.address() == contract)
            .then(|| {
                log.log_decode::<SettlementAnchor::CheckpointAnchored>()
                    .ok()
            })
            .flatten()
    })?;
    Some(Mined {
        tx_hash: receipt.transaction_hash,
        block_number: receipt.block_number?,
        block_hash: receipt.block_hash?,
        seq: u64::try_from(event.inner.data.seq).ok()?,
        gas_used: Some(receipt.gas_used),
    })
}

fn address_hex(a: Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

fn b256_hex(h: B256) -> String {
    format!("0x{}", hex::encode(h.as_slice()))
}

/// The confirmed anchor of checkpoint `tree_size` on this anchorer's contract.
async fn confirmed(
    pool: &Db,
    anchorer: &Anchorer,
    tree_size: u64,
) -> Result<Option<AnchorRecord>, AnchorError> {
    let row = sqlx::query!(
        r#"SELECT chain_id, contract, tx_hash, block_number AS "block_number!",
                  block_hash AS "block_hash!", seq AS "seq!", gas_used, confirmed_at
           FROM transparency_anchors
           WHERE tree_size = $1 AND chain_id = $2 AND contract = $3 AND status = 'confirmed'"#,
        to_i64(tree_size)?,
        to_i64(anchorer.chain_id)?,
        address_hex(anchorer.contract),
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str| TransparencyError::Corrupt(format!("anchor {what}"));
    Ok(Some(AnchorRecord {
        chain_id: to_u64(r.chain_id)?,
        contract: r.contract.parse().map_err(|_| corrupt("contract"))?,
        tx_hash: r.tx_hash.parse().map_err(|_| corrupt("tx hash"))?,
        block_number: to_u64(r.block_number)?,
        block_hash: r.block_hash.parse().map_err(|_| corrupt("block hash"))?,
        seq: to_u64(r.seq)?,
        gas_used: r.gas_used.map(to_u64).transpose()?,
        confirmed_at: r.confirmed_at,
    }))
}
