//! The chains a node watches: the `[[chains]]` tables of the configuration.
//!
//! Each chain names its RPC endpoints, how deep a payment must be before it
//! counts (`confirmations`), E-PG's contracts on it, where the watcher
//! starts, how it polls and catches up, and the assets accepted on it.
//! Chains come from the configuration file only (an array of tables has no
//! `EPG_…` override); [`validate`] names the offending key as
//! `chains[1].router`.

use std::collections::BTreeSet;
use std::time::Duration;

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::deploy::Deployment;
use crate::money::{AssetCode, ChainAsset};

/// One EVM chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// EIP-155 chain id; the watcher refuses an endpoint that reports
    /// another one.
    pub chain_id: u64,
    /// JSON-RPC over HTTP(S): every read goes here.
    pub http_url: String,
    /// JSON-RPC over WebSocket, for new-head notifications; without it (or
    /// while it is down) the watcher polls `http_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
    /// JSON-RPC URL a customer's browser wallet may add for this chain
    /// (`wallet_addEthereumChain` on the hosted checkout). Public by
    /// nature, so never `http_url`, which may carry a provider's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rpc_url: Option<String>,
    /// Blocks a payment's block needs on top of and including it before
    /// the payment counts (1: its own block is enough).
    pub confirmations: u64,
    /// `PaymentRouter`: the only contract whose logs are watched.
    pub router: Address,
    /// `SettlementAnchor`.
    pub anchor: Address,
    /// `DepositFactory`: when set, every crypto quote also gets a deposit
    /// address (the factory's CREATE2 forwarder for the payment), watched
    /// for plain transfers and swept to the factory's treasury, which must
    /// be `treasury`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_factory: Option<Address>,
    /// Where the router forwards payments (reconciled against the ledger).
    /// The contract guard raises an alert and refuses new quotes on the
    /// chain while the router's own treasury is another ([`super::guard`]).
    pub treasury: Address,
    /// First block to scan when the chain has no cursor yet (the router's
    /// deployment block). Ignored once a cursor exists.
    #[serde(default)]
    pub start_block: u64,
    /// How often the head is polled when no subscription delivers it (and
    /// as a safety net when one does).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Largest block range of one `eth_getLogs` call (providers cap it).
    #[serde(default = "default_max_block_range")]
    pub max_block_range: u64,
    /// Blocks below the head whose hashes are kept to find the common
    /// ancestor of a reorg; must exceed `confirmations`, so that a reorg
    /// undoing a confirmed payment is still seen.
    #[serde(default = "default_reorg_window")]
    pub reorg_window: u64,
    /// The watcher reports `lagging` when its cursor is more than this many
    /// blocks behind the head.
    #[serde(default = "default_max_lag_blocks")]
    pub max_lag_blocks: u64,
    /// An RPC call not answered within this many milliseconds has failed.
    #[serde(default = "default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// First retry delay after a failure; doubles per consecutive failure.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Largest retry delay.
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// A hot-wallet transaction (refund, payout) still pending after this
    /// many seconds is replaced with higher fees.
    #[serde(default = "default_fee_bump_after_secs")]
    pub fee_bump_after_secs: u64,
    /// The most the hot wallet pays per gas, in gwei, bumps included.
    #[serde(default = "default_max_fee_per_gas_gwei")]
    pub max_fee_per_gas_gwei: u64,
    /// How often the hot wallet sweeps confirmed deposits into the
    /// treasury (with `deposit_factory` and a hot wallet only).
    #[serde(default = "default_sweep_interval_secs")]
    pub sweep_interval_secs: u64,
    /// Most deposit addresses one sweep transaction moves.
    #[serde(default = "default_sweep_batch")]
    pub sweep_batch: u32,
    /// Days after its quote expired (paid or not) that a deposit address is
    /// still watched at every step: its ERC-20 `Transfer` logs, and its
    /// native balance. Then it is retired (`chain::watcher::deposits`).
    #[serde(default = "default_deposit_watch_days")]
    pub deposit_watch_days: u32,
    /// How often the watcher reads the `Transfer` logs into retired deposit
    /// addresses since its last such read: money sent to one long after
    /// its payment is found within this (plus the reorg window) and booked
    /// to suspense.
    #[serde(default = "default_deposit_rescan_secs")]
    pub deposit_rescan_secs: u64,
    /// Watched deposit addresses up to which a step reads each token's
    /// `Transfer` logs by topic filter on the receiver (in requests of
    /// [`crate::chain::deposits::TOPIC_FILTER_MAX`] addresses); above, it
    /// reads the token's every `Transfer` and keeps those into a deposit
    /// address. Where the crossover lies depends on the token's traffic and
    /// the provider (`scripts/bench deposits` measures it).
    #[serde(default = "default_deposit_topic_filter_max")]
    pub deposit_topic_filter_max: u32,
    /// Assets accepted on this chain.
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
}

/// An asset accepted on a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// Lower-case symbol, as the API names it (`usdc`, `eth`); the ledger
    /// asset is `<symbol>:<chain_id>`.
    pub symbol: String,
    /// Decimal places of one whole unit (USDC 6, ETH 18).
    pub decimals: u8,
    /// The ERC-20 contract; absent for the chain's native coin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_address: Option<Address>,
    /// A USD stablecoin quoted at par (1 USD = 1 unit).
    #[serde(default)]
    pub usd_peg: bool,
    /// A Chainlink-style `AggregatorV3Interface` giving the asset's USD price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_feed: Option<Address>,
    /// A feed answer older than this is stale and no quote is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_feed_age_secs: Option<u64>,
    /// Base units a deposit address must hold (confirmed, unswept) before
    /// it is swept: below, the sweep's gas would eat the deposit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_min_units: Option<u64>,
}

fn default_poll_interval_ms() -> u64 {
    2000
}
fn default_max_block_range() -> u64 {
    1000
}
fn default_reorg_window() -> u64 {
    128
}
fn default_max_lag_blocks() -> u64 {
    16
}
fn default_rpc_timeout_ms() -> u64 {
    10_000
}
fn default_retry_base_ms() -> u64 {
    500
}
fn default_retry_cap_ms() -> u64 {
    30_000
}
fn default_fee_bump_after_secs() -> u64 {
    60
}
fn default_max_fee_per_gas_gwei() -> u64 {
    1000
}
fn default_sweep_interval_secs() -> u64 {
    3600
}
fn default_deposit_watch_days() -> u32 {
    7
}
fn default_deposit_rescan_secs() -> u64 {
    3600
}
fn default_deposit_topic_filter_max() -> u32 {
    u32::try_from(crate::chain::deposits::TOPIC_FILTER_MAX).unwrap_or(u32::MAX)
}
fn default_sweep_batch() -> u32 {
    50
}

/// Confirmations `epg dev` asks for: enough to see `processing` before
/// `succeeded` when mining by hand (`cast rpc anvil_mine`).
pub const DEVNET_CONFIRMATIONS: u64 = 3;

/// How old the devnet feed's answer may be: its answer is set once at
/// deployment and a devnet lives for days, so a year.
pub const DEVNET_MAX_FEED_AGE_SECS: u64 = 365 * 24 * 3600;

impl ChainConfig {
    /// The chain of an `epg dev` deployment on the anvil at `rpc_url`
    /// (which also serves WebSocket on the same port): dev USDC at par and
    /// ETH through the devnet feed, watched from the deployment block.
    pub fn devnet(deployment: &Deployment, rpc_url: &str) -> Self {
        let ws_url = rpc_url
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .or_else(|| {
                rpc_url
                    .strip_prefix("https://")
                    .map(|rest| format!("wss://{rest}"))
            });
        let mut assets = Vec::new();
        if let Some(token) = deployment.stablecoin {
            assets.push(AssetConfig {
                symbol: "usdc".into(),
                decimals: 6,
                token_address: Some(token),
                usd_peg: true,
                price_feed: None,
                max_feed_age_secs: None,
                sweep_min_units: None,
            });
        }
        assets.push(AssetConfig {
            symbol: "eth".into(),
            decimals: 18,
            token_address: None,
            usd_peg: false,
            price_feed: deployment.price_feed,
            max_feed_age_secs: deployment.price_feed.map(|_| DEVNET_MAX_FEED_AGE_SECS),
            sweep_min_units: None,
        });
        Self {
            chain_id: deployment.chain_id,
            http_url: rpc_url.to_owned(),
            ws_url,
            public_rpc_url: Some(rpc_url.to_owned()),
            confirmations: DEVNET_CONFIRMATIONS,
            router: deployment.router,
            anchor: deployment.anchor,
            deposit_factory: deployment.deposit_factory,
            treasury: deployment.treasury,
            start_block: deployment.start_block,
            poll_interval_ms: 1000,
            max_block_range: default_max_block_range(),
            reorg_window: default_reorg_window(),
            max_lag_blocks: default_max_lag_blocks(),
            rpc_timeout_ms: default_rpc_timeout_ms(),
            retry_base_ms: 250,
            retry_cap_ms: 5000,
            fee_bump_after_secs: 15,
            max_fee_per_gas_gwei: default_max_fee_per_gas_gwei(),
            sweep_interval_secs: 60,
            sweep_batch: default_sweep_batch(),
            deposit_watch_days: default_deposit_watch_days(),
            deposit_rescan_secs: default_deposit_rescan_secs(),
            deposit_topic_filter_max: default_deposit_topic_filter_max(),
            assets,
        }
    }

    /// The asset paid with `token` (the zero address: the native coin).
    pub fn asset_for_token(&self, token: Address) -> Option<&AssetConfig> {
        self.assets.iter().find(|a| a.token() == token)
    }

    /// The asset called `symbol`.
    pub fn asset(&self, symbol: &str) -> Option<&AssetConfig> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }

    /// A chain known only by its endpoint, with every default: what a
    /// sender needs to sign for a key other than a configured treasury
    /// (the anchorer's, `[settlement] anchor_rpc_url`).
    pub fn endpoint(chain_id: u64, http_url: &str, confirmations: u64) -> Self {
        Self {
            chain_id,
            http_url: http_url.to_owned(),
            ws_url: None,
            public_rpc_url: None,
            confirmations,
            router: Address::ZERO,
            anchor: Address::ZERO,
            deposit_factory: None,
            treasury: Address::ZERO,
            start_block: 0,
            poll_interval_ms: default_poll_interval_ms(),
            max_block_range: default_max_block_range(),
            reorg_window: default_reorg_window(),
            max_lag_blocks: default_max_lag_blocks(),
            rpc_timeout_ms: default_rpc_timeout_ms(),
            retry_base_ms: default_retry_base_ms(),
            retry_cap_ms: default_retry_cap_ms(),
            fee_bump_after_secs: default_fee_bump_after_secs(),
            max_fee_per_gas_gwei: default_max_fee_per_gas_gwei(),
            sweep_interval_secs: default_sweep_interval_secs(),
            sweep_batch: default_sweep_batch(),
            deposit_watch_days: default_deposit_watch_days(),
            deposit_rescan_secs: default_deposit_rescan_secs(),
            deposit_topic_filter_max: default_deposit_topic_filter_max(),
            assets: Vec::new(),
        }
    }

    /// [`ChainConfig::poll_interval_ms`] as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// [`ChainConfig::rpc_timeout_ms`] as a duration.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    /// The delay before retry number `failures` (1 for the first):
    /// `min(retry_cap_ms, retry_base_ms * 2^(failures - 1))`.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        crate::backoff::Backoff::from_millis(self.retry_base_ms, self.retry_cap_ms).delay(failures)
    }
}

impl AssetConfig {
    /// Whether it is the chain's native coin.
    pub fn is_native(&self) -> bool {
        self.token_address.is_none()
    }

    /// The token as the router reports it: the zero address for the
    /// native coin.
    pub fn token(&self) -> Address {
        self.token_address.unwrap_or(Address::ZERO)
    }

    /// The ledger asset code `<symbol>:<chain_id>`.
    pub fn asset_code(&self, chain_id: u64) -> Result<AssetCode, crate::money::MoneyError> {
        AssetCode::chain(&self.symbol, chain_id)
    }

    /// The asset as the registry registers it
    /// ([`crate::money::AssetRegistry::register_chain_asset`]).
    pub fn chain_asset(&self, chain_id: u64) -> ChainAsset {
        ChainAsset {
            chain_id,
            symbol: self.symbol.clone(),
            decimals: self.decimals,
            token_address: self.token_address,
        }
    }
}

/// The first unusable key of `chains` (`chains[1].router`) and what is wrong.
pub fn validate(chains: &[ChainConfig]) -> Result<(), (String, String)> {
    let mut ids = BTreeSet::new();
    for (i, chain) in chains.iter().enumerate() {
        let key = |field: &str| format!("chains[{i}].{field}");
        let fail = |field: &str, message: &str| Err((key(field), message.to_owned()));
        if chain.chain_id == 0 || i64::try_from(chain.chain_id).is_err() {
            return fail("chain_id", "must be between 1 and 2^63 - 1");
        }
        if !ids.insert(chain.chain_id) {
            return fail("chain_id", "is configured twice");
        }
        if !is_url(&chain.http_url, &["http://", "https://"]) {
            return fail("http_url", "must be an http:// or https:// URL");
        }
        if let Some(ws) = &chain.ws_url
            && !is_url(ws, &["ws://", "wss://"])
        {
            return fail("ws_url", "must be a ws:// or wss:// URL");
        }
        if let Some(public) = &chain.public_rpc_url
            && !is_url(public, &["http://", "https://"])
        {
            return fail("public_rpc_url", "must be an http:// or https:// URL");
        }
        if !(1..=10_000).contains(&chain.confirmations) {
            return fail("confirmations", "must be between 1 and 10000");
        }
        for (field, address) in [
            ("router", chain.router),
            ("anchor", chain.anchor),
            ("treasury", chain.treasury),
            (
                "deposit_factory",
                chain.deposit_factory.unwrap_or(chain.treasury),
            ),
        ] {
            if address == Address::ZERO {
                return fail(field, "must not be the zero address");
            }
        }
        if !(1..=86_400 * 30).contains(&chain.sweep_interval_secs) {
            return fail("sweep_interval_secs", "must be between 1 and 2592000");
        }
        if !(1..=crate::chain::sweeper::MAX_BATCH).contains(&chain.sweep_batch) {
            return fail("sweep_batch", "must be between 1 and 200");
        }
        if chain.deposit_watch_days > 3650 {
            return fail("deposit_watch_days", "must be at most 3650");
        }
        if !(1..=86_400 * 30).contains(&chain.deposit_rescan_secs) {
            return fail("deposit_rescan_secs", "must be between 1 and 2592000");
        }
        if chain.deposit_topic_filter_max > 1_000_000 {
            return fail("deposit_topic_filter_max", "must be at most 1000000");
        }
        if i64::try_from(chain.start_block).is_err() {
            return fail("start_block", "must be below 2^63");
        }
        if !(10..=600_000).contains(&chain.poll_interval_ms) {
            return fail("poll_interval_ms", "must be between 10 and 600000");
        }
        if !(1..=1_000_000).contains(&chain.max_block_range) {
            return fail("max_block_range", "must be between 1 and 1000000");
        }
        if chain.reorg_window <= chain.confirmations || chain.reorg_window > 100_000 {
            return fail(
                "reorg_window",
                "must be greater than confirmations and at most 100000",
            );
        }
        if chain.max_lag_blocks == 0 {
            return fail("max_lag_blocks", "must be at least 1");
        }
        if !(100..=600_000).contains(&chain.rpc_timeout_ms) {
            return fail("rpc_timeout_ms", "must be between 100 and 600000");
        }
        if chain.retry_base_ms == 0 {
            return fail("retry_base_ms", "must be at least 1");
        }
        if chain.retry_cap_ms < chain.retry_base_ms {
            return fail("retry_cap_ms", "must be at least retry_base_ms");
        }
        if !(1..=86_400).contains(&chain.fee_bump_after_secs) {
            return fail("fee_bump_after_secs", "must be between 1 and 86400");
        }
        if !(1..=1_000_000).contains(&chain.max_fee_per_gas_gwei) {
            return fail("max_fee_per_gas_gwei", "must be between 1 and 1000000");
        }
        validate_assets(i, chain)?;
    }
    Ok(())
}

fn validate_assets(i: usize, chain: &ChainConfig) -> Result<(), (String, String)> {
    let mut symbols = BTreeSet::new();
    let mut tokens = BTreeSet::new();
    for (j, asset) in chain.assets.iter().enumerate() {
        let fail = |field: &str, message: &str| {
            Err((
                format!("chains[{i}].assets[{j}].{field}"),
                message.to_owned(),
            ))
        };
        if asset.asset_code(chain.chain_id).is_err() {
            return fail(
                "symbol",
                "must be 1 to 16 lower-case letters and digits, starting with a letter",
            );
        }
        if !symbols.insert(asset.symbol.as_str()) {
            return fail("symbol", "is configured twice on this chain");
        }
        if asset.decimals > 36 {
            return fail("decimals", "must be at most 36");
        }
        if asset.token_address == Some(Address::ZERO) {
            return fail(
                "token_address",
                "must not be the zero address (leave it out for the native coin)",
            );
        }
        if !tokens.insert(asset.token()) {
            return fail(
                "token_address",
                if asset.is_native() {
                    "a second native coin (only one asset may leave token_address out)"
                } else {
                    "is configured twice on this chain"
                },
            );
        }
        if asset.usd_peg && asset.price_feed.is_some() {
            return fail("price_feed", "cannot be set together with usd_peg = true");
        }
        if asset.price_feed == Some(Address::ZERO) {
            return fail("price_feed", "must not be the zero address");
        }
        match (asset.price_feed, asset.max_feed_age_secs) {
            (Some(_), None) => {
                return fail("max_feed_age_secs", "is required with price_feed");
            }
            (None, Some(_)) => {
                return fail("max_feed_age_secs", "only applies with price_feed");
            }
            (Some(_), Some(0)) => {
                return fail("max_feed_age_secs", "must be at least 1");
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_url(url: &str, schemes: &[&str]) -> bool {
    schemes
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
        && reqwest::Url::parse(url).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            contracts_version: crate::chain::deploy::CONTRACTS_VERSION,
            chain_id: 31337,
            router: Address::repeat_byte(1),
            anchor: Address::repeat_byte(2),
            treasury: Address::repeat_byte(3),
            admin: Address::repeat_byte(3),
            anchorer: Address::repeat_byte(3),
            stablecoin: Some(Address::repeat_byte(4)),
            price_feed: Some(Address::repeat_byte(5)),
            deposit_factory: None,
            start_block: 7,
        }
    }

    #[test]
    fn the_devnet_chain_is_valid_and_complete() {
        let chain = ChainConfig::devnet(&deployment(), "http://127.0.0.1:8545");
        assert_eq!(chain.ws_url.as_deref(), Some("ws://127.0.0.1:8545"));
        assert_eq!(chain.start_block, 7);
        assert_eq!(
            chain
                .asset_for_token(Address::repeat_byte(4))
                .unwrap()
                .symbol,
            "usdc"
        );
        assert_eq!(chain.asset_for_token(Address::ZERO).unwrap().symbol, "eth");
        validate(&[chain]).unwrap();
    }

    #[test]
    fn errors_name_the_chain_and_the_key() {
        let good = ChainConfig::devnet(&deployment(), "http://127.0.0.1:8545");
        let mut bad = good.clone();
        bad.chain_id = 31338;
        bad.router = Address::ZERO;
        let (key, _) = validate(&[good.clone(), bad]).unwrap_err();
        assert_eq!(key, "chains[1].router");

        let (key, _) = validate(&[good.clone(), good.clone()]).unwrap_err();
        assert_eq!(key, "chains[1].chain_id");

        let mut bad = good.clone();
        bad.reorg_window = bad.confirmations;
        assert_eq!(validate(&[bad]).unwrap_err().0, "chains[0].reorg_window");

        let mut bad = good.clone();
        bad.ws_url = Some("http://x".into());
        assert_eq!(validate(&[bad]).unwrap_err().0, "chains[0].ws_url");

        let mut bad = good.clone();
        bad.assets[1].max_feed_age_secs = None;
        assert_eq!(
            validate(&[bad]).unwrap_err().0,
            "chains[0].assets[1].max_feed_age_secs"
        );

        let mut bad = good.clone();
        bad.assets[0].symbol = "USDC".into();
        assert_eq!(
            validate(&[bad]).unwrap_err().0,
            "chains[0].assets[0].symbol"
        );

        let mut bad = good;
        bad.assets[0].token_address = None;
        assert_eq!(
            validate(&[bad]).unwrap_err().0,
            "chains[0].assets[1].token_address"
        );
    }

    fn load(chains: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let file = tempfile::NamedTempFile::new().unwrap();
        let text = format!(
            "[database]\nurl = \"postgres://a@b/c\"\n[security]\nmaster_key = \"{}\"\n{chains}",
            "A".repeat(43) + "="
        );
        std::fs::write(file.path(), text).unwrap();
        crate::config::Config::load(
            Some(file.path()),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .map_err(|e| e.to_string())
    }

    const CHAIN: &str = r#"
[[chains]]
chain_id = 5
http_url = "https://rpc.example/key"
confirmations = 12
router = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
anchor = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
treasury = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
[[chains.assets]]
symbol = "eth"
decimals = 18
price_feed = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
max_feed_age_secs = 600
"#;

    #[test]
    fn chains_come_from_the_file_with_defaults() {
        let example = crate::config::Config::example()
            .parse::<toml::Table>()
            .unwrap();
        assert!(
            example.contains_key("chains"),
            "the example documents chains"
        );
        let config = load(CHAIN, &[]).unwrap();
        let chain = &config.chains[0];
        assert_eq!(chain.chain_id, 5);
        assert_eq!(chain.ws_url, None);
        assert_eq!(chain.max_block_range, 1000);
        assert_eq!(chain.reorg_window, 128);
        assert!(chain.asset("eth").unwrap().is_native());
        assert!(load("", &[]).unwrap().chains.is_empty());
    }

    #[test]
    fn chain_keys_are_named_in_errors_and_have_no_overrides() {
        let bad = CHAIN.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0xzz");
        let err = load(&bad, &[]).unwrap_err();
        assert!(err.contains("chains[0].router"), "{err}");
        let bad = CHAIN.replace("confirmations = 12", "confirmations = 0");
        let err = load(&bad, &[]).unwrap_err();
        assert!(err.contains("chains[0].confirmations"), "{err}");
        let bad = format!("{CHAIN}colour = 1\n");
        let err = load(&bad, &[]).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = load(CHAIN, &[("EPG_CHAINS", "[]")]).unwrap_err();
        assert!(err.contains("EPG_CHAINS"), "{err}");
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let mut chain = ChainConfig::devnet(&deployment(), "http://127.0.0.1:8545");
        chain.retry_base_ms = 100;
        chain.retry_cap_ms = 1000;
        let delays: Vec<u128> = (1..=6).map(|n| chain.retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(chain.retry_delay(u32::MAX).as_millis(), 1000);
    }
}
