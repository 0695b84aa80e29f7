//! What the watcher tells the payments side: the [`TransferSink`] trait and
//! the [`Transfer`] it is told about.
//!
//! The watcher calls the sink inside its own database transaction, the one
//! that also records the transfer and moves the chain's cursor: whatever the
//! sink writes through `conn` (payment status, ledger postings, outbox
//! events) commits atomically with the block that caused it, or not at all.
//! A sink error rolls the whole step back; the watcher retries it with
//! back-off and reports the chain `lagging` meanwhile, so a sink must only
//! fail for reasons that go away (it must not refuse a transfer it does not
//! like: unknown reference, wrong asset, late — those are its to record).

use std::fmt;

use alloy::primitives::{Address, B256, U256};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::money::{Amount, AmountError, AssetCode};

/// Where a transfer stands (stored by its serde name in
/// `chain_transfers.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// In a canonical block that has not reached the confirmation depth.
    Detected,
    /// Its block reached the confirmation depth.
    Confirmed,
    /// A reorg took its block out of the canonical chain and the new chain
    /// does not include it (yet).
    Removed,
}

crate::names!(TransferStatus);

/// One `PaymentReceived` log of a chain's router, as recorded in
/// `chain_transfers`.
///
/// Identity: [`Transfer::id`], the row of (`chain_id`, `tx_hash`,
/// `tx_log_ordinal`). A reorg that drops the transaction and includes it
/// again elsewhere moves the same row (new `block_number`, `block_hash`,
/// `log_index`); it never makes a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Row id in `chain_transfers`: stable across reorgs and re-inclusions.
    pub id: i64,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The transaction.
    pub tx_hash: B256,
    /// Position of the log among the router's `PaymentReceived` logs of the
    /// transaction (0 for a plain `pay` / `payNative`).
    pub tx_log_ordinal: u32,
    /// The log's index in its block (changes if the transaction moves).
    pub log_index: u64,
    /// The block it is in now.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// That block's timestamp: when the chain says the payment was made
    /// (what a quote's expiry is compared with).
    pub block_timestamp: OffsetDateTime,
    /// The router that emitted the log.
    pub router: Address,
    /// The payment reference (`ref` of the event).
    pub reference: B256,
    /// Who paid (`msg.sender` of the router call).
    pub payer: Address,
    /// The ERC-20 token; the zero address for the native coin.
    pub token: Address,
    /// The configured asset symbol of `token` (`usdc`, `eth`), or `None`
    /// when the token is not configured for the chain — a payment in an
    /// unknown token is recorded all the same, for the sink to decide.
    pub asset: Option<String>,
    /// Amount in base units.
    pub amount: U256,
    /// Status as of this call (`detected` in [`TransferSink::detected`],
    /// `confirmed` in `confirmed`, `removed` in `removed`).
    pub status: TransferStatus,
    /// How many times reorgs removed it before (a `detected` call with
    /// `removals > 0` is a re-inclusion after a removal).
    pub removals: u32,
    /// When the node first saw it (in this incarnation).
    pub detected_at: OffsetDateTime,
}

impl Transfer {
    /// The ledger asset (`usdc:31337`) of a configured token.
    pub fn asset_code(&self) -> Option<AssetCode> {
        self.asset
            .as_deref()
            .and_then(|s| AssetCode::chain(s, self.chain_id).ok())
    }

    /// Whether it pays in the chain's native coin.
    pub fn is_native(&self) -> bool {
        self.token == Address::ZERO
    }

    /// The amount as a ledger [`Amount`]; `TooLarge` beyond
    /// [`crate::money::MAX_UNITS`] (possible with a junk token: a uint256
    /// can be anything).
    pub fn ledger_amount(&self) -> Result<Amount, AmountError> {
        Amount::parse_units(&self.amount.to_string())
    }
}

/// Why a sink could not take a transfer. The step is rolled back and
/// retried; the message is logged and shown in `/readyz`.
pub struct SinkError(Box<dyn std::error::Error + Send + Sync>);

impl SinkError {
    /// An error from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }

    /// The error under it, as a `#[source]` of the caller's error.
    pub fn into_source(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for SinkError {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The payments side of the watcher. Every call runs inside the watcher's
/// transaction (`conn`); the sink must write through `conn` only, never
/// commit, and never call the chain.
///
/// Per transfer row the calls follow `detected → confirmed`, with
/// `removed` possible after either, and `detected` again after `removed`
/// when the transaction reappears. Within one step: `removed` calls first,
/// then `detected`, then `confirmed` (a transfer found already deep enough
/// gets `detected` and `confirmed` in the same transaction). A call is made
/// exactly once per transition: a step that fails or is killed is rolled
/// back with everything the sink wrote, and done again.
pub trait TransferSink: Send + Sync {
    /// A new transfer in a canonical block (or one removed earlier that a
    /// later block includes again).
    fn detected<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// The transfer's block reached the chain's confirmation depth.
    fn confirmed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// A reorg took the transfer's block away and the new chain does not
    /// include it. `was_confirmed`: it had been confirmed, i.e. the reorg
    /// went deeper than the confirmation depth (the watcher has already
    /// raised the alert; the sink reverses what confirmation did).
    fn removed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
        was_confirmed: bool,
    ) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// A sink that does nothing: transfers are only recorded in
/// `chain_transfers`. For benchmarks, and for a node with no payments side.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl TransferSink for NoopSink {
    fn detected<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    fn confirmed<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    fn removed<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _transfer: &'a Transfer,
        _was_confirmed: bool,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}
