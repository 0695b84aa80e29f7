//! The hot wallet: pays crypto refunds and payouts on-chain from the
//! chain's treasury, exactly once, across restarts, concurrent nodes,
//! dropped transactions and fee spikes.
//!
//! # How a send moves
//!
//! A refund or payout *queues* a send ([`queue`]) in its own transaction,
//! so the money leaves the merchant's balance and the promise to pay it
//! commit together. One [`Sender`] per chain then works its sends:
//!
//! 1. **Dispatch** (`queued` → `sent`), up to 64 sends at a time. Under the
//!    lock of the wallet's `chain_nonces` row (which serializes every
//!    sender of that address, on any node) the first nonce is the larger of
//!    the stored next nonce and the chain's pending count, so a transaction
//!    made with the same key outside the node is never overwritten. Each
//!    transaction (EIP-1559 fees from the chain's fee history, gas estimated
//!    with a margin) is signed and **written before it is broadcast**, raw
//!    bytes included: a node that dies after broadcasting knows the hash,
//!    and a restart re-broadcasts the same bytes instead of paying twice.
//!    Only a short list of answers counts as a refusal (insufficient
//!    funds, intrinsic gas too low, invalid sender or chain id); any other
//!    error, or no answer, leaves the outcome unknown and the transaction
//!    is tracked as sent. A refused transaction gives its nonce back (and
//!    its send waits with back-off) only if no broadcast of it ever had
//!    another outcome (its row is still `signed`), no later nonce was
//!    signed, and the chain's pending count, read under the lock, shows the
//!    nonce unused; otherwise it is broadcast again each pass until it is
//!    taken.
//! 2. **Track** (`sent` → `confirmed` / `failed`). Every transaction of a
//!    live nonce carries that nonce, so at most one of them is mined; the
//!    tracker looks for a receipt of every transaction the send ever
//!    signed, at any nonce, rejected and replaced ones included. A receipt
//!    `confirmations` deep whose block is still canonical finishes the
//!    send: in one transaction the send's status, the gas booked from the
//!    treasury to `network_fees:<chain>`, and the refund's or payout's own
//!    postings and events (the [`SendSink`]). A reverted transaction
//!    finishes it as `failed` (the tokens did not move; the gas did).
//! 3. **Unstick.** A transaction the endpoint no longer knows (dropped from
//!    the mempool, or never broadcast because the node died) is marked
//!    `broadcast` (from then on its nonce is never given back: it may sit
//!    in some mempool whatever this endpoint says) and broadcast again from
//!    its stored bytes. One still pending after
//!    `fee_bump_after_secs` is replaced at the same nonce with fees raised
//!    by a quarter (at least the current estimate, at most
//!    `max_fee_per_gas_gwei`). A nonce taken by another transaction that is
//!    itself `confirmations` deep sends the send back to `queued` for a new
//!    nonce: only then is it certain none of ours can still be mined. The
//!    counts are read after the receipts, so a transaction of ours mined in
//!    between looks like another's: the receipts are read again before the
//!    send is requeued.
//!
//! Reorgs before the confirmation depth are absorbed by step 2 (the
//! receipt disappears or moves; the send stays `sent`). A reorg deeper than
//! the confirmation depth after a send finished is not undone here.

mod store;
mod tx;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use futures::StreamExt;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use super::config::ChainConfig;
use super::watcher::SinkError;
use crate::db::Db;
use crate::ids::{ChainSendId, MerchantId};
use crate::ledger::{self, AccountRef, Entry, EntryKind};
use crate::money::{Amount, AssetCode};
use crate::telemetry::ErrorChain;
use crate::telemetry::metrics::Metrics;

pub use store::{
    NewSweep, SendState, cancel_queued, newest_transactions, queue, queue_call, queue_sweep,
    sends_of,
};

/// Most sends signed under one hold of the nonce lock.
const DISPATCH_BATCH: i64 = 64;
/// Sends whose transactions are looked up on the chain at once.
const TRACK_CONCURRENCY: usize = 16;

/// What a send pays (stored by its serde name in `chain_sends.purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Purpose {
    /// A crypto refund (`re_…`).
    Refund,
    /// A crypto payout (`po_…`).
    Payout,
    /// A checkpoint anchor (`transparency::anchor`): a contract call signed
    /// by the anchorer key, moving no merchant's money.
    Anchor,
    /// A sweep of deposit addresses into the treasury (issue 17).
    Sweep,
}

crate::names!(Purpose);

/// A send to queue.
#[derive(Debug, Clone)]
pub struct NewSend<'a> {
    /// The chain.
    pub chain_id: u64,
    /// What it pays.
    pub purpose: Purpose,
    /// The refund or payout id.
    pub object_id: &'a str,
    /// Whose money it is.
    pub merchant: &'a MerchantId,
    /// The ledger asset (`usdc:31337`); its token comes from the asset table.
    pub asset: &'a AssetCode,
    /// The recipient.
    pub to: Address,
    /// Base units of the asset.
    pub amount: Amount,
}

/// A contract call to queue: a send signed by a key other than the
/// treasury (the anchorer's), moving no merchant's money.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    /// The chain.
    pub chain_id: u64,
    /// What it is for.
    pub purpose: Purpose,
    /// Its owner's name for it, unique per purpose.
    pub object_id: &'a str,
    /// The key that signs it.
    pub signer: Address,
    /// The contract.
    pub to: Address,
    /// The call's input.
    pub input: &'a [u8],
}

/// A queued contract call as its sink sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `cs_…`.
    pub id: ChainSendId,
    /// The chain.
    pub chain_id: u64,
    /// What it is for.
    pub purpose: Purpose,
    /// Its owner's name for it.
    pub object_id: String,
    /// The contract.
    pub to: Address,
}

/// What happened to a contract call, told to its sink.
#[derive(Debug, Clone, Copy)]
pub enum CallEvent<'a> {
    /// A transaction was signed (in the transaction that writes it ahead).
    Signed(B256),
    /// `old` vanished from the endpoint (a reorg took it out of its block,
    /// or it never reached a mempool) or sat too long, and `new` replaced
    /// it at the same nonce.
    Replaced {
        /// The transaction given up.
        old: B256,
        /// The one signed instead.
        new: B256,
    },
    /// A transaction is in a canonical block, not yet deep enough.
    Mined(&'a TransactionReceipt),
    /// The call ended (in the transaction that finishes the send).
    Finished(SendOutcome, &'a TransactionReceipt),
}

/// One row of `chain_sends` as the sender works it, whatever it pays.
#[derive(Debug, Clone)]
struct Job {
    id: ChainSendId,
    chain_id: u64,
    purpose: Purpose,
    object_id: String,
    to: Address,
    nonce: Option<u64>,
    failures: u32,
    call: tx::TransferCall,
    /// A refund's or payout's money; `None` for a contract call.
    money: Option<ChainSend>,
}

impl Job {
    fn as_call(&self) -> Call {
        Call {
            id: self.id.clone(),
            chain_id: self.chain_id,
            purpose: self.purpose,
            object_id: self.object_id.clone(),
            to: self.to,
        }
    }
}

/// A send as stored.
#[derive(Debug, Clone)]
pub struct ChainSend {
    /// `cs_…`.
    pub id: ChainSendId,
    /// The chain.
    pub chain_id: u64,
    /// What it pays.
    pub purpose: Purpose,
    /// The refund or payout id.
    pub object_id: String,
    /// Whose money it is (none for a sweep: the gateway's own).
    pub merchant_id: Option<MerchantId>,
    /// Ledger asset.
    pub asset: AssetCode,
    /// ERC-20 token; the zero address for the native coin.
    pub token: Address,
    /// Recipient.
    pub to: Address,
    /// Base units.
    pub amount: Amount,
    /// The nonce of its transactions, once dispatched.
    pub nonce: Option<u64>,
    /// The mined transaction, once finished.
    pub tx_hash: Option<B256>,
    /// Its block.
    pub block_number: Option<u64>,
    /// Attempts in a row the endpoint refused.
    pub failures: u32,
    /// The call's input, for a sweep (sent to `to` with no value).
    pub input: Option<alloy::primitives::Bytes>,
}

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Mined, succeeded, confirmations deep: the recipient has the money.
    Confirmed,
    /// Mined and reverted: the money did not move.
    Reverted,
}

/// The side that queued a send and books its end: refunds, payouts.
/// Called inside the transaction that finishes the send; must write
/// through `conn` only.
pub trait SendSink: Send + Sync {
    /// `send` ended with `outcome`.
    fn finished<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        send: &'a ChainSend,
        outcome: SendOutcome,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Progress of a contract call ([`queue_call`]); a sink of refunds and
    /// payouts has none.
    fn call_event<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        call: &'a Call,
        event: CallEvent<'a>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let _ = (conn, call, event);
        Box::pin(async { Ok(()) })
    }
}

/// The cause under a [`SendError`]: the RPC client's, the signer's or the
/// sink's own error, kept whole for the log's cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the sender.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The chain's endpoint failed or timed out (or a transaction could
    /// not be signed or read).
    #[error("chain {chain_id}: {what}")]
    Rpc {
        /// The chain.
        chain_id: u64,
        /// What failed (`eth_estimateGas`, `signing`, …).
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The sender cannot run on this chain.
    #[error("chain {chain_id}: {message}")]
    Setup {
        /// The chain.
        chain_id: u64,
        /// Why.
        message: String,
        /// The error behind it, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The sink refused to book.
    #[error("booking send {id}")]
    Sink {
        /// The send.
        id: ChainSendId,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The ledger refused the gas posting.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The hot wallet of one chain.
pub struct Sender {
    chain: ChainConfig,
    pool: Db,
    signer: PrivateKeySigner,
    provider: DynProvider,
    sink: Arc<dyn SendSink>,
    /// The chain's native coin, in which gas is booked: only the
    /// treasury's gas is in the ledger.
    native: Option<AssetCode>,
    /// What this sender's signer sends.
    purposes: Vec<String>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("chain_id", &self.chain.chain_id)
            .field("address", &self.signer.address())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// The sender of `chain`, signing with `signer`, which must be the
    /// chain's treasury (payments arrive there; refunds and payouts leave
    /// from there, so the ledger's `treasury:<chain>` stays the treasury's
    /// balance). The chain's native coin must be configured: gas is booked
    /// in it.
    pub fn new(
        chain: ChainConfig,
        pool: Db,
        signer: PrivateKeySigner,
        sink: Arc<dyn SendSink>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SendError> {
        let setup = |message: String| SendError::Setup {
            chain_id: chain.chain_id,
            message,
            source: None,
        };
        if signer.address() != chain.treasury {
            return Err(setup(format!(
                "the wallet key is {:#x}, not the chain's treasury {:#x}",
                signer.address(),
                chain.treasury
            )));
        }
        let native = chain
            .assets
            .iter()
            .find(|a| a.is_native())
            .ok_or_else(|| setup("no native coin among its assets, to book gas in".to_owned()))?
            .asset_code(chain.chain_id)
            .map_err(|e| SendError::Setup {
                chain_id: chain.chain_id,
                message: "the native coin's asset code".to_owned(),
                source: Some(e.into()),
            })?;
        let provider = Self::provider(&chain)?;
        Ok(Self {
            chain,
            pool,
            signer,
            provider,
            sink,
            native: Some(native),
            purposes: vec![
                Purpose::Refund.to_string(),
                Purpose::Payout.to_string(),
                Purpose::Sweep.to_string(),
            ],
            metrics,
        })
    }

    /// The sender of `chain` for the contract calls of `purpose` signed by
    /// `signer`, a key other than the treasury (the anchorer's): the same
    /// pipeline, under the signer's own nonce row. Its gas is not booked in
    /// the ledger (the treasury does not pay it); `sink` hears of its calls
    /// through [`SendSink::call_event`].
    pub fn for_calls(
        chain: ChainConfig,
        pool: Db,
        signer: PrivateKeySigner,
        purpose: Purpose,
        sink: Arc<dyn SendSink>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SendError> {
        let provider = Self::provider(&chain)?;
        Ok(Self {
            chain,
            pool,
            signer,
            provider,
            sink,
            native: None,
            purposes: vec![purpose.to_string()],
            metrics,
        })
    }

    fn provider(chain: &ChainConfig) -> Result<DynProvider, SendError> {
        let url = chain.http_url.parse().map_err(|e| SendError::Setup {
            chain_id: chain.chain_id,
            message: "http_url".to_owned(),
            source: Some(Box::new(e)),
        })?;
        Ok(ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased())
    }

    /// Which rows of `chain_sends` are this sender's.
    fn owner(&self) -> store::Owner<'_> {
        store::Owner {
            chain_id: self.chain.chain_id,
            signer: self.signer.address(),
            treasury: self.native.is_some(),
            purposes: &self.purposes,
        }
    }

    /// The sending address (the treasury).
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Works the chain's sends until `shutdown`, once per poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let chain_id = self.chain.chain_id;
        tracing::info!(chain_id, address = %self.address(), "hot wallet sender started");
        let mut failures = 0u32;
        loop {
            let pause = match self.tick().await {
                Ok(()) => {
                    failures = 0;
                    self.chain.poll_interval()
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(chain_id, error = %ErrorChain(&e), "hot wallet sender step failed");
                    self.chain.retry_delay(failures)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass: dispatch every due queued send, then track every sent one.
    pub async fn tick(&self) -> Result<(), SendError> {
        while self.dispatch_batch().await? > 0 {}
        let open = store::sent(&self.pool, &self.owner()).await?;
        futures::stream::iter(&open)
            .for_each_concurrent(TRACK_CONCURRENCY, |send| async move {
                if let Err(e) = self.track(send).await {
                    tracing::warn!(send = %send.id, error = %ErrorChain(&e), "tracking a send failed");
                }
            })
            .await;
        Ok(())
    }

    fn rpc_error(&self, what: &'static str, source: impl Into<BoxError>) -> SendError {
        SendError::Rpc {
            chain_id: self.chain.chain_id,
            what,
            source: source.into(),
        }
    }

    /// Bounds an RPC call by the chain's timeout.
    async fn call<T, E: Into<BoxError>>(
        &self,
        what: &'static str,
        fut: impl std::future::IntoFuture<Output = Result<T, E>>,
    ) -> Result<T, SendError> {
        let timeout = self.chain.rpc_timeout();
        match tokio::time::timeout(timeout, fut.into_future()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.rpc_error(what, e)),
            Err(_) => Err(self.rpc_error(what, format!("timed out after {timeout:?}"))),
        }
    }

    /// Dispatches up to [`DISPATCH_BATCH`] due queued sends, oldest first,
    /// under one hold of the nonce lock: one pending count and one fee
    /// estimate for all, gas estimated concurrently, every transaction
    /// signed and recorded in one commit, then broadcast in nonce order.
    /// Returns how many sends it took (signed or postponed).
    async fn dispatch_batch(&self) -> Result<usize, SendError> {
        let from = self.address();
        let mut db = self.pool.begin().await?;
        let stored_next = store::lock_nonce(&mut db, self.chain.chain_id, from).await?;
        let sends = store::claim_queued(&mut db, &self.owner(), DISPATCH_BATCH).await?;
        if sends.is_empty() {
            return Ok(0);
        }
        let pending = self
            .call(
                "eth_getTransactionCount",
                self.provider.get_transaction_count(from).pending(),
            )
            .await?;
        let fees = self
            .call(
                "eth_feeHistory",
                tx::Fees::current(&self.provider, &self.chain),
            )
            .await?;
        let estimates = futures::future::join_all(sends.iter().map(|send| {
            self.call(
                "eth_estimateGas",
                self.provider.estimate_gas(send.call.request(from)),
            )
        }))
        .await;
        let mut nonce = stored_next.max(pending);
        if self.native.is_none() && pending < stored_next {
            // A reorg deeper than the confirmations took finished calls of
            // this key away (an anchor that is anchored again): their
            // nonces are free, and nothing later can be mined until they
            // are used. They are used again only while no send of the key
            // has a transaction out at or above the chain's count.
            let open = store::lowest_open_nonce(&mut db, self.chain.chain_id, from).await?;
            if open.is_none_or(|n| n < pending) {
                nonce = pending;
            }
        }
        let mut signed = Vec::new();
        for (send, estimate) in sends.iter().zip(estimates) {
            let gas = match estimate {
                Ok(gas) => tx::with_margin(gas),
                Err(e) => {
                    // The transfer would revert as things stand (typically
                    // the treasury lacks the token): nothing is signed, the
                    // send waits.
                    let why = ErrorChain(&e).to_string();
                    store::postpone(&mut db, &send.id, &why, self.backoff(send)).await?;
                    tracing::warn!(send = %send.id, error = %why, "send cannot be made yet");
                    continue;
                }
            };
            let tx = tx::sign(
                &self.signer,
                self.chain.chain_id,
                nonce,
                gas,
                fees,
                &send.call,
            )
            .map_err(|e| self.rpc_error("signing", e))?;
            store::record_signed(&mut db, &send.id, from, &tx).await?;
            if send.money.is_none() {
                self.tell(&mut db, send, CallEvent::Signed(tx.hash)).await?;
            }
            nonce += 1;
            signed.push((send, tx));
        }
        store::set_next_nonce(&mut db, self.chain.chain_id, from, nonce).await?;
        db.commit().await?;
        for (send, tx) in &signed {
            tracing::info!(send = %send.id, nonce = tx.nonce, tx = %tx.hash, "send signed");
            self.broadcast(send, tx).await?;
        }
        self.metrics.add(
            "chain_sends_signed",
            u64::try_from(signed.len()).unwrap_or(0),
        );
        Ok(sends.len())
    }

    /// Broadcasts a recorded transaction and books what the endpoint says.
    async fn broadcast(&self, send: &Job, signed: &tx::Signed) -> Result<(), SendError> {
        let outcome = tokio::time::timeout(
            self.chain.rpc_timeout(),
            self.provider.send_raw_transaction(&signed.raw),
        )
        .await;
        let verdict = match outcome {
            Ok(Ok(_)) => tx::Broadcast::Accepted,
            Ok(Err(e)) => tx::Broadcast::classify(&e),
            Err(_) => tx::Broadcast::Unknown("timed out".into()),
        };
        if let tx::Broadcast::Rejected(message) = verdict {
            return self.refused(send, signed, &message).await;
        }
        // Whatever else the endpoint said, the transaction may be in a
        // mempool now: the tracker follows it, and its nonce is never
        // given back.
        store::mark_broadcast(&self.pool, &signed.hash).await?;
        match verdict {
            tx::Broadcast::Accepted | tx::Broadcast::Known | tx::Broadcast::Rejected(_) => {}
            // The tracker sorts these out from the chain's own state: a
            // used nonce is either ours (a receipt) or another's.
            tx::Broadcast::NonceUsed(message) | tx::Broadcast::Underpriced(message) => {
                tracing::warn!(send = %send.id, tx = %signed.hash, %message, "broadcast refused");
            }
            tx::Broadcast::Unknown(message) => {
                tracing::warn!(send = %send.id, tx = %signed.hash, %message,
                    "broadcast outcome unknown; tracking the transaction");
                self.metrics.add("chain_sends_broadcast_unknown", 1);
            }
        }
        Ok(())
    }

    /// The endpoint refused `signed` outright. Under the nonce lock, with
    /// the chain's pending count and the receipts of every transaction of
    /// the send read again, [`store::reject`] decides whether the nonce can
    /// be given back.
    async fn refused(
        &self,
        send: &Job,
        signed: &tx::Signed,
        message: &str,
    ) -> Result<(), SendError> {
        tracing::warn!(send = %send.id, tx = %signed.hash, %message, "transaction rejected");
        self.metrics.add("chain_sends_rejected", 1);
        let mined = self.find_receipt(send).await?.is_some();
        let mut db = self.pool.begin().await?;
        store::lock_nonce(&mut db, self.chain.chain_id, self.address()).await?;
        let pending = self
            .call(
                "eth_getTransactionCount",
                self.provider
                    .get_transaction_count(self.address())
                    .pending(),
            )
            .await?;
        let given_back = store::reject(
            &mut db,
            send,
            signed,
            self.address(),
            store::Refusal {
                message,
                delay: self.backoff(send),
                pending,
                requeue: !mined,
            },
        )
        .await?;
        db.commit().await?;
        if given_back {
            tracing::info!(send = %send.id, nonce = signed.nonce, "nonce given back");
        }
        Ok(())
    }

    /// A receipt of any transaction `send` ever signed (any nonce, rejected
    /// and replaced ones included: a refusal or a replacement does not take
    /// a transaction out of every mempool), newest first.
    async fn find_receipt(&self, send: &Job) -> Result<Option<TransactionReceipt>, SendError> {
        for hash in store::all_transactions(&self.pool, &send.id).await? {
            let receipt = self
                .call(
                    "eth_getTransactionReceipt",
                    self.provider.get_transaction_receipt(hash),
                )
                .await?;
            if receipt.is_some() {
                return Ok(receipt);
            }
        }
        Ok(None)
    }

    /// Back-off before the next try of a send that could not be made.
    fn backoff(&self, send: &Job) -> Duration {
        self.chain.retry_delay(send.failures.saturating_add(1))
    }

    /// Moves one sent send along (see the module documentation).
    async fn track(&self, send: &Job) -> Result<(), SendError> {
        let Some(nonce) = send.nonce else {
            return Ok(());
        };
        if let Some(receipt) = self.find_receipt(send).await? {
            return self.on_mined(send, &receipt).await;
        }
        let txs = store::transactions(&self.pool, &send.id, nonce).await?;
        let Some(latest) = txs.first() else {
            return Ok(());
        };
        let head = self
            .call("eth_blockNumber", self.provider.get_block_number())
            .await?;
        let mined_count = self
            .call(
                "eth_getTransactionCount",
                self.provider.get_transaction_count(self.address()).latest(),
            )
            .await?;
        if mined_count > nonce {
            // Another transaction took the nonce, or ours was mined after
            // the receipts were read. Only once that transaction is deep is
            // it safe to pay with a new nonce.
            let depth_block = head.saturating_sub(self.chain.confirmations - 1);
            let deep_count = self
                .call(
                    "eth_getTransactionCount",
                    self.provider
                        .get_transaction_count(self.address())
                        .number(depth_block),
                )
                .await?;
            if deep_count > nonce {
                // The counts were read after the receipts: one of ours
                // mined in between moves them just the same. Read the
                // receipts again, now that anything mined up to the depth
                // block is in them, before giving up on the transactions.
                if let Some(receipt) = self.find_receipt(send).await? {
                    return self.on_mined(send, &receipt).await;
                }
                tracing::warn!(send = %send.id, nonce, "nonce used by another transaction; requeued");
                store::requeue(&self.pool, send, nonce).await?;
            }
            return Ok(());
        }
        let known = self
            .call(
                "eth_getTransactionByHash",
                self.provider.get_transaction_by_hash(latest.hash),
            )
            .await?
            .is_some();
        if !known {
            // A contract call the endpoint lost (a reorg took it out of
            // its block) is replaced at its nonce, priced for today's base
            // fee, rather than sent again as it was: its owner records the
            // lost transaction as dropped and the new one apart
            // (`CallEvent::Replaced`). Every transaction of the nonce is
            // still looked for, so this is as safe as the same bytes.
            if send.money.is_none() && self.bump(send, nonce, latest).await? {
                return Ok(());
            }
            // Written ahead: once sent again it may sit in some mempool
            // even if this endpoint refuses it, so its nonce must never be
            // given back. Not sent if it was retired meanwhile.
            if !store::mark_broadcast(&self.pool, &latest.hash).await? {
                return Ok(());
            }
            tracing::info!(send = %send.id, tx = %latest.hash, "transaction unknown to the endpoint; broadcasting it again");
            self.metrics.add("chain_sends_rebroadcast", 1);
            self.broadcast(send, &latest.signed()).await?;
            return Ok(());
        }
        if latest.age >= Duration::from_secs(self.chain.fee_bump_after_secs) {
            self.bump(send, nonce, latest).await?;
        }
        Ok(())
    }

    /// Tells the sink of a contract call what happened to it.
    async fn tell(
        &self,
        conn: &mut PgConnection,
        send: &Job,
        event: CallEvent<'_>,
    ) -> Result<(), SendError> {
        self.sink
            .call_event(conn, &send.as_call(), event)
            .await
            .map_err(|e| SendError::Sink {
                id: send.id.clone(),
                source: e.into_source(),
            })
    }

    /// Replaces the pending transaction `latest` with higher fees; false
    /// if it was not (the fee cap, or another node moved first).
    async fn bump(
        &self,
        send: &Job,
        nonce: u64,
        latest: &store::SentTx,
    ) -> Result<bool, SendError> {
        let current = self
            .call(
                "eth_feeHistory",
                tx::Fees::current(&self.provider, &self.chain),
            )
            .await?;
        let Some(fees) = latest.fees.bumped(current, &self.chain) else {
            tracing::warn!(send = %send.id, "pending at the fee cap (max_fee_per_gas_gwei); waiting");
            return Ok(false);
        };
        let signed = tx::sign(
            &self.signer,
            self.chain.chain_id,
            nonce,
            latest.gas_limit,
            fees,
            &send.call,
        )
        .map_err(|e| self.rpc_error("signing", e))?;
        if !store::record_replacement(&self.pool, send, nonce, &latest.hash, &signed).await? {
            // Another node bumped or finished it meanwhile.
            return Ok(false);
        }
        tracing::info!(send = %send.id, nonce, old = %latest.hash, new = %signed.hash,
            max_fee = fees.max_fee_per_gas, "fee bumped");
        self.metrics.add("chain_sends_fee_bumps", 1);
        if send.money.is_none() {
            let mut conn = self.pool.acquire().await?;
            let event = CallEvent::Replaced {
                old: latest.hash,
                new: signed.hash,
            };
            self.tell(&mut conn, send, event).await?;
        }
        self.broadcast(send, &signed).await?;
        Ok(true)
    }

    /// A transaction of `send` is mined: finishes the send once the receipt
    /// is deep enough and still canonical.
    async fn on_mined(&self, send: &Job, receipt: &TransactionReceipt) -> Result<(), SendError> {
        let (Some(number), Some(hash)) = (receipt.block_number, receipt.block_hash) else {
            return Ok(());
        };
        let head = self
            .call("eth_blockNumber", self.provider.get_block_number())
            .await?;
        let deep = head + 1 >= number + self.chain.confirmations;
        if !deep && send.money.is_some() {
            return Ok(());
        }
        let canonical = self
            .call(
                "eth_getBlockByNumber",
                self.provider.get_block_by_number(number.into()),
            )
            .await?
            .map(|b| b.header.hash);
        if canonical != Some(hash) {
            return Ok(());
        }
        if !deep {
            let mut conn = self.pool.acquire().await?;
            return self.tell(&mut conn, send, CallEvent::Mined(receipt)).await;
        }
        let outcome = if receipt.status() {
            SendOutcome::Confirmed
        } else {
            SendOutcome::Reverted
        };
        let gas_fee = u128::from(receipt.gas_used)
            .checked_mul(receipt.effective_gas_price)
            .and_then(|wei| i128::try_from(wei).ok())
            .and_then(|wei| Amount::new(wei).ok())
            .ok_or_else(|| self.rpc_error("receipt", "gas fee out of range"))?;
        let mined = store::Mined {
            tx_hash: receipt.transaction_hash,
            block_number: number,
            block_hash: hash,
            gas_fee,
        };
        let mut db = self.pool.begin().await?;
        let Some(job) = store::lock_sent(&mut db, &send.id).await? else {
            return Ok(());
        };
        store::finish(&mut db, &job.id, outcome, &mined).await?;
        let Some(mut send) = job.money.clone() else {
            self.tell(&mut db, &job, CallEvent::Finished(outcome, receipt))
                .await?;
            db.commit().await?;
            tracing::info!(send = %job.id, tx = %mined.tx_hash, ?outcome, "call finished");
            return Ok(());
        };
        if let Some(native) = &self.native
            && gas_fee.is_positive()
        {
            let entry = Entry::new(format!("{}:gas", send.id), EntryKind::custom("network_fee"))
                .source(send.object_id.as_str())
                .description(format!("gas of {:#x}", mined.tx_hash))
                .transfer(
                    AccountRef::network_fees(self.chain.chain_id),
                    AccountRef::treasury(self.chain.chain_id),
                    native,
                    gas_fee,
                );
            ledger::post(&mut db, &entry).await?;
        }
        send.tx_hash = Some(mined.tx_hash);
        send.block_number = Some(number);
        self.sink
            .finished(&mut db, &send, outcome)
            .await
            .map_err(|e| SendError::Sink {
                id: send.id.clone(),
                source: e.into_source(),
            })?;
        db.commit().await?;
        tracing::info!(send = %send.id, tx = %mined.tx_hash, ?outcome, "send finished");
        self.metrics.add(
            match outcome {
                SendOutcome::Confirmed => "chain_sends_confirmed",
                SendOutcome::Reverted => "chain_sends_reverted",
            },
            1,
        );
        Ok(())
    }
}

/// Starts a sender for every chain `signer` is the treasury of; says why
/// for the others.
pub fn spawn_all(
    jobs: &mut tokio::task::JoinSet<()>,
    chains: &[ChainConfig],
    pool: &Db,
    signer: &PrivateKeySigner,
    sink: &Arc<dyn SendSink>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Vec<u64> {
    let mut running = Vec::new();
    for chain in chains {
        match Sender::new(
            chain.clone(),
            pool.clone(),
            signer.clone(),
            sink.clone(),
            metrics.clone(),
        ) {
            Ok(sender) => {
                running.push(chain.chain_id);
                jobs.spawn(sender.run(shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "no on-chain refunds or payouts on this chain");
            }
        }
    }
    running
}

/// The chains `signer` can send on (as [`spawn_all`] would start them).
pub fn sendable_chains(chains: &[ChainConfig], signer: &PrivateKeySigner) -> Vec<u64> {
    chains
        .iter()
        .filter(|c| c.treasury == signer.address() && c.assets.iter().any(|a| a.is_native()))
        .map(|c| c.chain_id)
        .collect()
}
