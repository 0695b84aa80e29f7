//! The node watches its own contracts (issue 16): a stolen admin key must
//! not redirect payments, or rewrite the anchored history, without the node
//! noticing and saying so.
//!
//! Two halves, both driven by the chain watcher of each configured chain:
//!
//! * **Admin events.** Every step of the watcher also reads the
//!   administrative logs of the chain's router and anchor ([`scan`]: treasury
//!   proposed, cancelled or changed; roles granted or revoked; admin
//!   transfers; token allow-list changes; pauses; the anchor's growth limit
//!   and supersedes) and journals them in `chain_admin_events` in the step's
//!   own transaction ([`record`]; a reorg forgets them with the blocks they
//!   were in, [`forget_above`]). They are logged, counted
//!   (`epg_chain_admin_events_total`) and, when critical, logged as errors.
//! * **State.** After every step that saw a new head, [`Guard::check`] reads
//!   the router's state at that block (treasury, pending treasury and when it
//!   may be accepted, paused, the allow-listing of every configured token)
//!   and compares it with the configuration. What is wrong becomes an
//!   [`Alert`]: logged as an error when raised, counted
//!   (`epg_chain_contract_alerts_total`), kept open in `chain_alerts` (the
//!   operator's record, one open row per chain, kind and subject across
//!   nodes) until it clears, and shown in `/readyz` under
//!   `checks.chains.<id>.contracts`.
//!
//! New quotes on a chain are refused ([`ContractsHealth::quote_refusal`],
//! answered as `chain_unavailable`) while the on-chain treasury is not the
//! configured one, while a treasury change to another address could take
//! effect before a quote given now expires ([`QUOTE_HORIZON`]; the router's
//! delay makes that a window at the end of the delay), and while the router
//! is paused; quotes in one asset are refused while its token is not on the
//! allow-list. Reading the state, not only the events, makes the guard right
//! from its first step, whatever happened while the node was down.
//!
//! A router that predates version 2 (no delay, no allow-list) is still
//! checked for its treasury and pause; the guard raises `router_outdated`
//! and treats a pending treasury change as one that could happen now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::sol_types::{SolCall, SolEvent, SolEventInterface};
use serde::Serialize;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::config::ChainConfig;
use super::contracts::{PaymentRouter, SettlementAnchor};
use super::rpc::{BlockHeader, ChainRpc, RpcError};
use super::watcher::status::ChainStatus;
use super::watcher::store::{hex0x, int8};
use crate::db::Db;
use crate::telemetry::metrics::Metrics;

/// How long a quote given now may still be paid: the payments side's quote
/// lifetime (`payments::crypto::QUOTE_TTL`, equal by a test below). A
/// treasury change closer than this refuses new quotes.
pub const QUOTE_HORIZON: time::Duration = time::Duration::minutes(15);

/// Why the guard could not finish reading.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The RPC endpoint failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The chain moved while the logs were read.
    #[error("{0}")]
    Raced(String),
    /// The endpoint answered nonsense (a log without its position).
    #[error("{0}")]
    BadChain(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How much an admin event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Money could go elsewhere, or anchored history be rewritten.
    Critical,
    /// A change an operator should know of.
    Warning,
    /// Nothing to act on.
    Info,
}

crate::names!(Severity);

/// An administrative log of the router or the anchor, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminLog {
    /// The contract that emitted it.
    pub contract: Address,
    /// The event's name (`TreasuryProposed`).
    pub event: &'static str,
    /// How much it matters, given the configuration.
    pub severity: Severity,
    /// What happened, for people.
    pub detail: String,
    /// Block height.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// The transaction.
    pub tx_hash: B256,
    /// Index in the block.
    pub log_index: u64,
}

/// The administrative events the guard follows: the router's, the anchor's,
/// and the access-control events both share (one signature each).
const ADMIN_EVENTS: [B256; 15] = [
    PaymentRouter::TreasuryProposed::SIGNATURE_HASH,
    PaymentRouter::TreasuryProposalCancelled::SIGNATURE_HASH,
    PaymentRouter::TreasuryChanged::SIGNATURE_HASH,
    PaymentRouter::TokenAllowListChanged::SIGNATURE_HASH,
    PaymentRouter::Paused::SIGNATURE_HASH,
    PaymentRouter::Unpaused::SIGNATURE_HASH,
    SettlementAnchor::MaxGrowthChanged::SIGNATURE_HASH,
    SettlementAnchor::CheckpointsSuperseded::SIGNATURE_HASH,
    PaymentRouter::RoleGranted::SIGNATURE_HASH,
    PaymentRouter::RoleRevoked::SIGNATURE_HASH,
    PaymentRouter::RoleAdminChanged::SIGNATURE_HASH,
    PaymentRouter::DefaultAdminTransferScheduled::SIGNATURE_HASH,
    PaymentRouter::DefaultAdminTransferCanceled::SIGNATURE_HASH,
    PaymentRouter::DefaultAdminDelayChangeScheduled::SIGNATURE_HASH,
    PaymentRouter::DefaultAdminDelayChangeCanceled::SIGNATURE_HASH,
];

fn when(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{seconds} s after the epoch"))
}

/// The name of a role of either contract.
fn role_name(role: B256) -> String {
    if role == B256::ZERO {
        return "DEFAULT_ADMIN_ROLE".into();
    }
    for name in ["PAUSER_ROLE", "ANCHORER_ROLE"] {
        if role == alloy::primitives::keccak256(name) {
            return name.into();
        }
    }
    format!("{role:#x}")
}

/// Name, severity and description of a router log; `None` if it is not an
/// admin event.
fn describe_router(
    chain: &ChainConfig,
    log: &alloy::rpc::types::Log,
) -> Option<(&'static str, Severity, String)> {
    use PaymentRouter::PaymentRouterEvents as E;
    let event = E::decode_raw_log(log.topics(), &log.data().data).ok()?;
    let ours = |a: Address| a == chain.treasury;
    Some(match event {
        E::TreasuryProposed(e) => (
            "TreasuryProposed",
            if ours(e.proposed) {
                Severity::Warning
            } else {
                Severity::Critical
            },
            format!(
                "treasury change proposed: {} → {}, acceptable from {}{}",
                e.current,
                e.proposed,
                when(e.effectiveAt.to::<u64>()),
                if ours(e.proposed) {
                    ""
                } else {
                    " (NOT the configured treasury)"
                }
            ),
        ),
        E::TreasuryProposalCancelled(e) => (
            "TreasuryProposalCancelled",
            Severity::Info,
            format!("treasury proposal of {} cancelled", e.proposed),
        ),
        E::TreasuryChanged(e) => (
            "TreasuryChanged",
            if ours(e.current) {
                Severity::Warning
            } else {
                Severity::Critical
            },
            format!(
                "treasury changed: {} → {}{}",
                e.previous,
                e.current,
                if ours(e.current) {
                    ""
                } else {
                    " (NOT the configured treasury)"
                }
            ),
        ),
        E::TokenAllowListChanged(e) => (
            "TokenAllowListChanged",
            Severity::Warning,
            format!(
                "token {} {} the allow-list",
                e.token,
                if e.allowed {
                    "added to"
                } else {
                    "removed from"
                }
            ),
        ),
        E::Paused(e) => (
            "Paused",
            Severity::Warning,
            format!("payments paused by {}", e.account),
        ),
        E::Unpaused(e) => (
            "Unpaused",
            Severity::Info,
            format!("payments resumed by {}", e.account),
        ),
        other => return describe_roles(other.into_roles()?),
    })
}

/// Name, severity and description of an anchor log; `None` if it is not an
/// admin event.
fn describe_anchor(log: &alloy::rpc::types::Log) -> Option<(&'static str, Severity, String)> {
    use SettlementAnchor::SettlementAnchorEvents as E;
    let event = E::decode_raw_log(log.topics(), &log.data().data).ok()?;
    Some(match event {
        E::MaxGrowthChanged(e) => (
            "MaxGrowthChanged",
            Severity::Warning,
            format!(
                "anchor growth limit changed: {} → {} leaves",
                e.previous, e.current
            ),
        ),
        E::CheckpointsSuperseded(e) => (
            "CheckpointsSuperseded",
            Severity::Critical,
            format!(
                "the admin removed anchored checkpoints #{} to #{}; the latest is now {} leaves, root {:#x}",
                e.fromSeq,
                e.previousCount
                    .saturating_sub(alloy::primitives::U256::from(1)),
                e.treeSize,
                e.root
            ),
        ),
        other => return describe_roles(other.into_roles()?),
    })
}

/// The access-control events both contracts share.
enum RoleEvent {
    Granted(B256, Address, Address),
    Revoked(B256, Address, Address),
    AdminChanged(B256, B256, B256),
    TransferScheduled(Address, u64),
    TransferCanceled,
    DelayScheduled(u64, u64),
    DelayCanceled,
}

trait IntoRoles {
    fn into_roles(self) -> Option<RoleEvent>;
}

macro_rules! into_roles {
    ($events:path) => {
        impl IntoRoles for $events {
            fn into_roles(self) -> Option<RoleEvent> {
                use $events as E;
                Some(match self {
                    E::RoleGranted(e) => RoleEvent::Granted(e.role, e.account, e.sender),
                    E::RoleRevoked(e) => RoleEvent::Revoked(e.role, e.account, e.sender),
                    E::RoleAdminChanged(e) => {
                        RoleEvent::AdminChanged(e.role, e.previousAdminRole, e.newAdminRole)
                    }
                    E::DefaultAdminTransferScheduled(e) => {
                        RoleEvent::TransferScheduled(e.newAdmin, e.acceptSchedule.to::<u64>())
                    }
                    E::DefaultAdminTransferCanceled(_) => RoleEvent::TransferCanceled,
                    E::DefaultAdminDelayChangeScheduled(e) => RoleEvent::DelayScheduled(
                        e.newDelay.to::<u64>(),
                        e.effectSchedule.to::<u64>(),
                    ),
                    E::DefaultAdminDelayChangeCanceled(_) => RoleEvent::DelayCanceled,
                    _ => return None,
                })
            }
        }
    };
}

into_roles!(PaymentRouter::PaymentRouterEvents);
into_roles!(SettlementAnchor::SettlementAnchorEvents);

fn describe_roles(event: RoleEvent) -> Option<(&'static str, Severity, String)> {
    Some(match event {
        RoleEvent::Granted(role, account, sender) => (
            "RoleGranted",
            Severity::Warning,
            format!("{} granted to {account} by {sender}", role_name(role)),
        ),
        RoleEvent::Revoked(role, account, sender) => (
            "RoleRevoked",
            Severity::Warning,
            format!("{} revoked from {account} by {sender}", role_name(role)),
        ),
        RoleEvent::AdminChanged(role, previous, new) => (
            "RoleAdminChanged",
            Severity::Warning,
            format!(
                "{} is now managed by {} (was {})",
                role_name(role),
                role_name(new),
                role_name(previous)
            ),
        ),
        RoleEvent::TransferScheduled(admin, at) => (
            "DefaultAdminTransferScheduled",
            Severity::Critical,
            format!(
                "admin role transfer to {admin} scheduled, acceptable from {}",
                when(at)
            ),
        ),
        RoleEvent::TransferCanceled => (
            "DefaultAdminTransferCanceled",
            Severity::Info,
            "admin role transfer cancelled".into(),
        ),
        RoleEvent::DelayScheduled(delay, at) => (
            "DefaultAdminDelayChangeScheduled",
            Severity::Warning,
            format!("admin transfer delay to become {delay} s at {}", when(at)),
        ),
        RoleEvent::DelayCanceled => (
            "DefaultAdminDelayChangeCanceled",
            Severity::Info,
            "admin delay change cancelled".into(),
        ),
    })
}

/// Reads the admin logs of `chain`'s router and anchor in `from..=end`, in
/// ranges of `max_block_range`, and checks that each is in the block
/// `headers` has for its height (reading the headers it lacks into it).
pub async fn scan(
    rpc: &ChainRpc,
    chain: &ChainConfig,
    from: u64,
    end: u64,
    headers: &mut BTreeMap<u64, BlockHeader>,
) -> Result<Vec<AdminLog>, GuardError> {
    let topics: Vec<B256> = ADMIN_EVENTS.to_vec();
    let mut raw = Vec::new();
    let mut chunk_from = from;
    while chunk_from <= end {
        let chunk_to = end.min(chunk_from.saturating_add(chain.max_block_range.max(1) - 1));
        let filter = Filter::new()
            .address(vec![chain.router, chain.anchor])
            .event_signature(topics.clone())
            .from_block(chunk_from)
            .to_block(chunk_to);
        raw.extend(rpc.logs(&filter).await?);
        if chunk_to == u64::MAX {
            break;
        }
        chunk_from = chunk_to + 1;
    }
    let unread: BTreeSet<u64> = raw
        .iter()
        .filter_map(|l| l.block_number)
        .filter(|n| !headers.contains_key(n))
        .collect();
    if !unread.is_empty() {
        headers.extend(rpc.headers(unread).await?);
    }
    let mut found = Vec::new();
    for log in raw {
        let (Some(block_number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
            log.block_number,
            log.block_hash,
            log.transaction_hash,
            log.log_index,
        ) else {
            return Err(GuardError::BadChain(
                "eth_getLogs returned a log without its block, transaction or index".into(),
            ));
        };
        if log.removed || headers.get(&block_number).map(|h| h.hash) != Some(block_hash) {
            return Err(GuardError::Raced(format!(
                "admin log {tx_hash}:{log_index} is not in the block {block_number} read"
            )));
        }
        let contract = log.address();
        let described = if contract == chain.router {
            describe_router(chain, &log)
        } else {
            describe_anchor(&log)
        };
        if let Some((event, severity, detail)) = described {
            found.push(AdminLog {
                contract,
                event,
                severity,
                detail,
                block_number,
                block_hash,
                tx_hash,
                log_index,
            });
        }
    }
    found.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(found)
}

/// Journals `logs` (in the step's transaction); a log already journalled is
/// left as it is.
pub async fn record(
    conn: &mut PgConnection,
    chain_id: u64,
    logs: &[AdminLog],
) -> Result<(), sqlx::Error> {
    for log in logs {
        sqlx::query!(
            "INSERT INTO chain_admin_events
                 (chain_id, contract, event, severity, detail, block_number, block_hash, tx_hash, log_index)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT ON CONSTRAINT chain_admin_events_log DO NOTHING",
            int8(chain_id)?,
            hex0x(log.contract.as_slice()),
            log.event,
            log.severity.to_string(),
            log.detail,
            int8(log.block_number)?,
            hex0x(log.block_hash.as_slice()),
            hex0x(log.tx_hash.as_slice()),
            int8(log.log_index)?,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Forgets the journalled logs above block `number` (all of them for
/// `None`): a reorg dropped those blocks, and the rescan journals what the
/// new chain has.
pub async fn forget_above(
    conn: &mut PgConnection,
    chain_id: u64,
    number: Option<u64>,
) -> Result<(), sqlx::Error> {
    let above = number.map(int8).transpose()?.unwrap_or(-1);
    sqlx::query!(
        "DELETE FROM chain_admin_events WHERE chain_id = $1 AND block_number > $2",
        int8(chain_id)?,
        above,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Logs and counts journalled admin events once their step committed.
pub fn announce(chain_id: u64, logs: &[AdminLog], metrics: &Metrics) {
    metrics.add(
        "chain_admin_events",
        u64::try_from(logs.len()).unwrap_or(u64::MAX),
    );
    for log in logs {
        let (contract, tx, block) = (log.contract, log.tx_hash, log.block_number);
        match log.severity {
            Severity::Critical => {
                tracing::error!(chain_id, %contract, %tx, block, event = log.event,
                "CONTRACT ADMIN EVENT: {}", log.detail)
            }
            Severity::Warning => tracing::warn!(chain_id, %contract, %tx, block, event = log.event,
                "contract admin event: {}", log.detail),
            Severity::Info => tracing::info!(chain_id, %contract, %tx, block, event = log.event,
                "contract admin event: {}", log.detail),
        }
    }
}

/// A kind of condition the guard raises.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = ContractAlertKind)]
pub enum AlertKind {
    /// The router pays a treasury that is not the configured one.
    TreasuryMismatch,
    /// A treasury change is pending.
    TreasuryChangePending,
    /// The router is paused: payments revert.
    RouterPaused,
    /// The router predates version 2 (no delay, no allow-list).
    RouterOutdated,
    /// A configured token is not on the router's allow-list.
    AssetNotAllowed,
}

crate::names!(AlertKind);

/// A condition found in the contracts' state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ContractAlert)]
pub struct Alert {
    /// What kind.
    pub kind: AlertKind,
    /// What it is about (an address, a token symbol), empty if the kind says it all.
    pub subject: String,
    /// For people.
    pub message: String,
}

/// A treasury change waiting for its acceptance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingTreasury {
    /// The proposed treasury.
    #[schema(value_type = String)]
    pub address: Address,
    /// When it may accept (seconds since the epoch; `None` on a router
    /// without a delay, where it may accept at any moment).
    #[schema(required = true)]
    pub effective_at: Option<u64>,
}

/// What the guard last found on one chain: `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContractsHealth {
    /// The block whose state was read.
    pub checked_block: u64,
    /// The configured treasury.
    #[schema(value_type = String)]
    pub configured_treasury: Address,
    /// The router's treasury at that block.
    #[schema(value_type = String)]
    pub treasury: Address,
    /// The pending treasury change, if any.
    #[schema(required = true)]
    pub pending_treasury: Option<PendingTreasury>,
    /// Whether the router is paused.
    pub paused: bool,
    /// Every open alert.
    pub alerts: Vec<Alert>,
    /// Why new quotes on this chain are refused, if they are.
    #[schema(required = true)]
    pub quotes_refused: Option<String>,
    /// Assets whose quotes are refused, with why.
    pub assets_refused: BTreeMap<String, String>,
}

/// Why a new quote is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteRefusal {
    /// On the whole chain.
    Chain(String),
    /// In this asset.
    Asset(String),
}

impl ContractsHealth {
    /// Why a new quote in `symbol` is refused, if it is.
    pub fn quote_refusal(&self, symbol: &str) -> Option<QuoteRefusal> {
        self.quotes_refused
            .clone()
            .map(QuoteRefusal::Chain)
            .or_else(|| {
                self.assets_refused
                    .get(symbol)
                    .cloned()
                    .map(QuoteRefusal::Asset)
            })
    }
}

/// What one state read found (before comparing with the last one).
struct Reading {
    treasury: Address,
    pending: Option<PendingTreasury>,
    paused: bool,
    /// `None` on a router without the allow-list.
    disallowed: Option<Vec<String>>,
    outdated: bool,
    /// The block's time.
    now: u64,
}

/// Reads and judges one chain's contracts. Owned by its watcher.
pub struct Guard {
    chain: ChainConfig,
    rpc: ChainRpc,
    pool: Db,
    metrics: Arc<Metrics>,
    status: Arc<ChainStatus>,
    /// The head of the last successful check.
    checked: Option<u64>,
    /// The alerts open after the last check (`None` before the first, when
    /// the database's open alerts are the previous ones).
    open: Option<Vec<Alert>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("chain_id", &self.chain.chain_id)
            .field("checked", &self.checked)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard of `chain` reading through `rpc`, publishing into `status`.
    pub fn new(
        chain: ChainConfig,
        rpc: ChainRpc,
        pool: Db,
        metrics: Arc<Metrics>,
        status: Arc<ChainStatus>,
    ) -> Self {
        Self {
            chain,
            rpc,
            pool,
            metrics,
            status,
            checked: None,
            open: None,
        }
    }

    async fn call<C: SolCall>(
        &self,
        call: &C,
        to: Address,
        block: u64,
    ) -> Result<C::Return, RpcError> {
        let out = self.rpc.call_at(to, call.abi_encode(), block).await?;
        C::abi_decode_returns(&out).map_err(|e| RpcError {
            endpoint: self.rpc.endpoint().to_owned(),
            method: "eth_call",
            message: format!("{}: {e}", C::SIGNATURE),
        })
    }

    async fn read(&self, head: u64) -> Result<Reading, GuardError> {
        let router = self.chain.router;
        let treasury = self
            .call(&PaymentRouter::treasuryCall {}, router, head)
            .await?;
        let paused = self
            .call(&PaymentRouter::pausedCall {}, router, head)
            .await?;
        let pending = self
            .call(&PaymentRouter::pendingTreasuryCall {}, router, head)
            .await?;
        // Version 2 only: a router without them is outdated.
        let pending_at = self
            .call(&PaymentRouter::pendingTreasuryAtCall {}, router, head)
            .await
            .ok();
        let mut disallowed = Some(Vec::new());
        for asset in &self.chain.assets {
            let Some(token) = asset.token_address else {
                continue;
            };
            match self
                .call(&PaymentRouter::allowedTokenCall { token }, router, head)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(list) = disallowed.as_mut() {
                        list.push(asset.symbol.clone());
                    }
                }
                Err(_) => disallowed = None,
            }
        }
        let now = self
            .rpc
            .header(head)
            .await?
            .ok_or_else(|| GuardError::Raced(format!("block {head} is gone")))?
            .timestamp;
        Ok(Reading {
            treasury,
            pending: (pending != Address::ZERO).then(|| PendingTreasury {
                address: pending,
                effective_at: pending_at.map(|at| at.to::<u64>()),
            }),
            paused,
            outdated: pending_at.is_none() || disallowed.is_none(),
            disallowed,
            now,
        })
    }

    /// Judges a reading against the configuration.
    fn judge(&self, head: u64, r: Reading) -> ContractsHealth {
        let configured = self.chain.treasury;
        let mut alerts = Vec::new();
        let mut refused = None;
        if r.treasury != configured {
            let message = format!(
                "the router pays treasury {}, not the configured {configured}",
                r.treasury
            );
            refused = Some(message.clone());
            alerts.push(Alert {
                kind: AlertKind::TreasuryMismatch,
                subject: format!("{:#x}", r.treasury),
                message,
            });
        }
        if let Some(p) = &r.pending {
            let soon = p.effective_at.is_none_or(|at| {
                at <= r
                    .now
                    .saturating_add(u64::try_from(QUOTE_HORIZON.whole_seconds()).unwrap_or(0))
            });
            let message = format!(
                "treasury change to {} pending, acceptable {}{}",
                p.address,
                p.effective_at.map_or_else(
                    || "at any moment".to_owned(),
                    |at| format!("from {}", when(at))
                ),
                if p.address == configured {
                    ""
                } else {
                    " (NOT the configured treasury)"
                }
            );
            if p.address != configured && soon {
                refused.get_or_insert_with(|| {
                    format!("{message}: a quote given now could be paid after it")
                });
            }
            alerts.push(Alert {
                kind: AlertKind::TreasuryChangePending,
                subject: format!("{:#x}", p.address),
                message,
            });
        }
        if r.paused {
            let message = "the router is paused: payments revert".to_owned();
            refused.get_or_insert_with(|| message.clone());
            alerts.push(Alert {
                kind: AlertKind::RouterPaused,
                subject: String::new(),
                message,
            });
        }
        if r.outdated {
            alerts.push(Alert {
                kind: AlertKind::RouterOutdated,
                subject: String::new(),
                message: "the router predates version 2 (no treasury delay, no token allow-list): \
                          migrate it (ARCHITECTURE.md)"
                    .into(),
            });
        }
        let mut assets_refused = BTreeMap::new();
        for symbol in r.disallowed.unwrap_or_default() {
            let message = format!("the router does not allow the token of {symbol}");
            assets_refused.insert(symbol.clone(), message.clone());
            alerts.push(Alert {
                kind: AlertKind::AssetNotAllowed,
                subject: symbol,
                message,
            });
        }
        ContractsHealth {
            checked_block: head,
            configured_treasury: configured,
            treasury: r.treasury,
            pending_treasury: r.pending,
            paused: r.paused,
            alerts,
            quotes_refused: refused,
            assets_refused,
        }
    }

    /// Reads the contracts' state at `head` if it has not yet (or again
    /// after a reorg, which can change a block at the same height), and
    /// raises or clears alerts. A failed read leaves the last judgement
    /// standing (and says so in `/readyz`).
    pub async fn check(&mut self, head: u64, reorged: bool) {
        if !reorged && self.checked.is_some_and(|c| c >= head) {
            return;
        }
        let chain_id = self.chain.chain_id;
        let health = match self.read(head).await {
            Ok(reading) => self.judge(head, reading),
            Err(e) => {
                tracing::warn!(chain_id, error = %e, "cannot read the contracts' state");
                self.status.update(chain_id, |h| {
                    h.contracts_error = Some(e.to_string());
                });
                return;
            }
        };
        if let Err(e) = self.publish(&health).await {
            tracing::warn!(chain_id, error = %e, "cannot journal contract alerts");
            self.status.update(chain_id, |h| {
                h.contracts_error = Some(e.to_string());
            });
            return;
        }
        self.checked = Some(head);
    }

    /// Raises the new alerts and clears the gone ones: logs, counter,
    /// `chain_alerts`, `/readyz`.
    async fn publish(&mut self, health: &ContractsHealth) -> Result<(), sqlx::Error> {
        let chain_id = self.chain.chain_id;
        let key = |a: &Alert| (a.kind, a.subject.clone());
        let previous: BTreeSet<(AlertKind, String)> = match &self.open {
            Some(open) => open.iter().map(key).collect(),
            None => open_alerts(&self.pool, chain_id).await?,
        };
        let now: BTreeSet<(AlertKind, String)> = health.alerts.iter().map(key).collect();
        for alert in health.alerts.iter().filter(|a| !previous.contains(&key(a))) {
            raise(&self.pool, chain_id, health.checked_block, alert).await?;
            self.metrics.add("chain_contract_alerts", 1);
            tracing::error!(
                chain_id,
                kind = %alert.kind,
                block = health.checked_block,
                quotes_refused = health.quotes_refused.is_some(),
                "CONTRACT ALERT: {}",
                alert.message
            );
        }
        for (kind, subject) in previous.difference(&now) {
            clear(&self.pool, chain_id, *kind, subject).await?;
            tracing::warn!(chain_id, kind = %kind, %subject, "contract alert cleared");
        }
        self.metrics.set_gauge(
            "chain_quotes_refused",
            ("chain_id", chain_id.to_string()),
            i64::from(health.quotes_refused.is_some()),
        );
        self.open = Some(health.alerts.clone());
        let health = health.clone();
        self.status.update(chain_id, move |h| {
            h.contracts = Some(health);
            h.contracts_error = None;
        });
        Ok(())
    }
}

async fn open_alerts(
    pool: &Db,
    chain_id: u64,
) -> Result<BTreeSet<(AlertKind, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT kind, subject FROM chain_alerts WHERE chain_id = $1 AND cleared_at IS NULL",
        int8(chain_id)?,
    )
    .fetch_all(pool)
    .await?;
    // A kind this node does not know (a newer node's) is not its to clear.
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.kind.parse::<AlertKind>().ok()?, r.subject)))
        .collect())
}

async fn raise(pool: &Db, chain_id: u64, block: u64, alert: &Alert) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO chain_alerts (chain_id, kind, subject, message, block_number)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (chain_id, kind, subject) WHERE cleared_at IS NULL DO NOTHING",
        int8(chain_id)?,
        alert.kind.to_string(),
        alert.subject,
        alert.message,
        int8(block)?,
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn clear(
    pool: &Db,
    chain_id: u64,
    kind: AlertKind,
    subject: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE chain_alerts SET cleared_at = now()
          WHERE chain_id = $1 AND kind = $2 AND subject = $3 AND cleared_at IS NULL",
        int8(chain_id)?,
        kind.to_string(),
        subject,
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quote_horizon_is_the_quote_lifetime() {
        assert_eq!(QUOTE_HORIZON, crate::payments::crypto::QUOTE_TTL);
    }

    #[test]
    fn roles_are_named() {
        assert_eq!(role_name(B256::ZERO), "DEFAULT_ADMIN_ROLE");
        assert_eq!(
            role_name(alloy::primitives::keccak256("ANCHORER_ROLE")),
            "ANCHORER_ROLE"
        );
        assert_eq!(
            role_name(alloy::primitives::keccak256("PAUSER_ROLE")),
            "PAUSER_ROLE"
        );
    }
}
