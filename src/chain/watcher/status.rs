//! What each chain's watcher is doing, for `/readyz` and operators: shared
//! between the watcher tasks (writers) and the HTTP handlers (readers).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use serde::Serialize;
use time::OffsetDateTime;

use crate::chain::guard::{ContractsHealth, QuoteRefusal};

/// A watcher's state: `healthy` and `lagging` are ready; `starting` and
/// `unreachable` are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// Not yet in contact with the chain.
    Starting,
    /// Following the head.
    Healthy,
    /// Reachable, but behind the head by more than `max_lag_blocks`
    /// (catching up), or failing for a reason other than the RPC endpoint
    /// (database, payments side); see `last_error`.
    Lagging,
    /// The RPC endpoint fails or answers for another chain; the watcher
    /// backs off and retries.
    Unreachable,
}

/// How the watcher learns of new heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeadSource {
    /// A WebSocket `newHeads` subscription (and polling as a safety net).
    Subscription,
    /// Polling `eth_blockNumber` every `poll_interval_ms`.
    Polling,
}

/// What one chain's watcher is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainHealth {
    /// `healthy` and `lagging` are ready; `starting` and `unreachable`
    /// are not (see [`ChainState`]).
    pub status: ChainState,
    /// The chain's head as last seen.
    #[schema(required = true)]
    pub head: Option<u64>,
    /// The last block whose effects are committed.
    #[schema(required = true)]
    pub cursor: Option<u64>,
    /// `head - cursor`.
    #[schema(required = true)]
    pub lag: Option<u64>,
    /// How new heads arrive.
    pub new_heads: HeadSource,
    /// Failures in a row (reset by a successful step).
    pub consecutive_failures: u32,
    /// The last failure, if the watcher has not succeeded since.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the last step succeeded (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub last_success_at: Option<OffsetDateTime>,
    /// What the contract guard last found (`None` before its first read).
    #[schema(required = true)]
    pub contracts: Option<ContractsHealth>,
    /// Why the guard's last read failed, if it did (its last judgement stands).
    #[schema(required = true)]
    pub contracts_error: Option<String>,
}

impl ChainHealth {
    fn starting() -> Self {
        Self {
            status: ChainState::Starting,
            head: None,
            cursor: None,
            lag: None,
            new_heads: HeadSource::Polling,
            consecutive_failures: 0,
            last_error: None,
            last_success_at: None,
            contracts: None,
            contracts_error: None,
        }
    }

    /// Whether the node may serve crypto payments on this chain: the
    /// watcher is in contact with it (healthy or catching up).
    pub fn is_ready(&self) -> bool {
        matches!(self.status, ChainState::Healthy | ChainState::Lagging)
    }
}

/// Status of every configured chain, by chain id.
#[derive(Debug, Default)]
pub struct ChainStatus {
    chains: RwLock<BTreeMap<u64, ChainHealth>>,
}

impl ChainStatus {
    /// Every chain in `chain_ids` starts as [`ChainState::Starting`].
    pub fn new(chain_ids: impl IntoIterator<Item = u64>) -> Self {
        Self {
            chains: RwLock::new(
                chain_ids
                    .into_iter()
                    .map(|id| (id, ChainHealth::starting()))
                    .collect(),
            ),
        }
    }

    /// Changes one chain's status (registering it if unknown).
    pub fn update(&self, chain_id: u64, change: impl FnOnce(&mut ChainHealth)) {
        let mut chains = self.chains.write().unwrap_or_else(PoisonError::into_inner);
        let health = chains.entry(chain_id).or_insert_with(ChainHealth::starting);
        change(health);
        health.lag = match (health.head, health.cursor) {
            (Some(head), Some(cursor)) => Some(head.saturating_sub(cursor)),
            _ => None,
        };
    }

    /// One chain's status.
    pub fn get(&self, chain_id: u64) -> Option<ChainHealth> {
        self.chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&chain_id)
            .cloned()
    }

    /// Every chain's status.
    pub fn snapshot(&self) -> BTreeMap<u64, ChainHealth> {
        self.chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why a new quote in `symbol` on `chain_id` is refused, if the contract
    /// guard found a reason (see [`crate::chain::guard`]).
    pub fn quote_refusal(&self, chain_id: u64, symbol: &str) -> Option<QuoteRefusal> {
        self.chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&chain_id)?
            .contracts
            .as_ref()?
            .quote_refusal(symbol)
    }

    /// Whether every chain is ready (true with no chains).
    pub fn all_ready(&self) -> bool {
        self.chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .all(ChainHealth::is_ready)
    }
}
