//! Node configuration: a TOML file, overridden by `EPG_…` environment
//! variables, validated once at start.
//!
//! Every key `section.key` can be overridden by `EPG_SECTION_KEY`
//! (`database.url` ← `EPG_DATABASE_URL`). Errors name the key, where its value
//! came from, and what is wrong with it, so an operator never has to guess.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::CardKey;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "EPG_";

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `test` enables the sandbox connectors and the `/v1/test/…` helpers;
    /// `live` refuses them.
    #[serde(default)]
    pub mode: Mode,
    /// HTTP listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// PostgreSQL, the node's single source of truth.
    pub database: DatabaseConfig,
    /// Secrets and abuse limits.
    pub security: SecurityConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
    /// Webhook delivery.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// Payment lifetimes and background expiry.
    #[serde(default)]
    pub payments: PaymentsConfig,
    /// Settlement batches and on-chain anchoring of their checkpoints.
    #[serde(default)]
    pub settlement: SettlementConfig,
    /// The hot wallet that pays crypto refunds and payouts.
    #[serde(default)]
    pub wallet: WalletConfig,
    /// EVM chains watched for crypto payments (`[[chains]]`, file only).
    #[serde(default)]
    pub chains: Vec<crate::chain::config::ChainConfig>,
}

/// The hot wallet: the key of the chains' treasury, from which the node
/// pays crypto refunds and payouts. Never in the file itself: the hex key
/// comes from `EPG_WALLET_KEY`, or an encrypted JSON keystore named here
/// is opened with the password in `EPG_WALLET_PASSWORD`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Path of an encrypted JSON keystore (empty: none).
    pub keystore: String,
    /// The hex key, from `EPG_WALLET_KEY` (or set by `epg dev`).
    #[serde(skip)]
    pub key: Option<String>,
    /// The keystore's password, from `EPG_WALLET_PASSWORD`.
    #[serde(skip)]
    pub password: Option<String>,
}

impl std::fmt::Debug for WalletConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletConfig")
            .field("keystore", &self.keystore)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WalletConfig {
    /// The wallet's signer, if one is configured; the error names what is
    /// wrong without ever showing the key.
    pub fn signer(
        &self,
    ) -> Result<Option<alloy::signers::local::PrivateKeySigner>, (&'static str, String)> {
        match (&self.key, self.keystore.is_empty()) {
            (Some(_), false) => Err((
                "wallet.keystore",
                "set either EPG_WALLET_KEY or wallet.keystore, not both".into(),
            )),
            (Some(key), true) => key.trim().parse().map(Some).map_err(|_| {
                (
                    "wallet.key",
                    "EPG_WALLET_KEY is not a 32-byte hex private key".into(),
                )
            }),
            (None, false) => {
                let password = self.password.as_deref().ok_or((
                    "wallet.keystore",
                    "needs its password in EPG_WALLET_PASSWORD".to_owned(),
                ))?;
                alloy::signers::local::PrivateKeySigner::decrypt_keystore(&self.keystore, password)
                    .map(Some)
                    .map_err(|e| {
                        (
                            "wallet.keystore",
                            format!("cannot open {}: {e}", self.keystore),
                        )
                    })
            }
            (None, true) => Ok(None),
        }
    }
}

/// Settlement batches and anchoring.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettlementConfig {
    /// The anchorer's private key (hex). Never from the file: read from
    /// `EPG_ANCHOR_KEY` by [`Config::load`], or set by `epg dev`.
    #[serde(skip)]
    pub anchor_key: Option<String>,
    /// How often merchants that are due are settled and new checkpoints anchored.
    pub interval_secs: u64,
    /// JSON-RPC URL of the chain holding the SettlementAnchor; empty: settlement off.
    pub anchor_rpc_url: String,
    /// The SettlementAnchor contract (0x…).
    pub anchor_contract: String,
    /// Confirmations an anchoring transaction needs before it counts.
    pub anchor_confirmations: u64,
    /// The transparency log's origin; empty: `epg/<chain id>/<anchor_contract>`.
    /// Set it to the old value when moving the log to a new anchor contract
    /// (ARCHITECTURE.md, "Migrating deployed contracts").
    pub log_origin: String,
}

impl std::fmt::Debug for SettlementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettlementConfig")
            .field("interval_secs", &self.interval_secs)
            .field("anchor_rpc_url", &self.anchor_rpc_url)
            .field("anchor_contract", &self.anchor_contract)
            .field("anchor_confirmations", &self.anchor_confirmations)
            .field("log_origin", &self.log_origin)
            .field(
                "anchor_key",
                &self.anchor_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            anchor_key: None,
            interval_secs: 300,
            anchor_rpc_url: String::new(),
            anchor_contract: String::new(),
            anchor_confirmations: 6,
            log_origin: String::new(),
        }
    }
}

/// Payment lifetimes and the expiry job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// An authorization not captured within this many hours is voided.
    pub authorization_ttl_hours: u64,
    /// How often the expiry job looks for expired authorizations and vouchers.
    pub expiry_interval_secs: u64,
    /// Where customers are sent back to (e-wallet redirects); default: the
    /// listen address over http.
    pub public_url: String,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            authorization_ttl_hours: 7 * 24,
            expiry_interval_secs: 30,
            public_url: String::new(),
        }
    }
}

/// Whether the node runs against sandbox connectors or real ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Sandbox connectors, test helpers on, `sk_test_` keys.
    #[default]
    Test,
    /// Real processors only; test helpers are not routed at all.
    Live,
}

impl Mode {
    /// The word used in key prefixes (`sk_test_…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// A request running longer than this is answered 503 and dropped.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests to finish.
    pub shutdown_grace_secs: u64,
    /// Loopback-only conveniences of `epg dev` (e.g. http webhooks to localhost).
    pub dev: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            dev: false,
        }
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Size of the connection pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    20
}

/// Secrets and abuse limits.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// 32-byte AES-256-GCM key for card numbers at rest, base64.
    pub card_encryption_key: String,
    /// Sustained requests per second allowed per API key.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// Requests a key may burst above the sustained rate.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("card_encryption_key", &"<redacted>")
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .finish()
    }
}

fn default_rate_limit_per_second() -> u32 {
    100
}

fn default_rate_limit_burst() -> u32 {
    200
}

/// Log output settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object per line, for collectors) or `pretty` (humans).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `epg=debug,sqlx=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Webhook delivery: concurrency, timeouts and the retry schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Deliveries this node runs at once.
    pub workers: u32,
    /// Deliveries to any one endpoint this node runs at once, so a slow or
    /// unreachable endpoint cannot occupy every worker and hold up other
    /// merchants' webhooks.
    pub endpoint_concurrency: u32,
    /// An attempt not answered within this many seconds (connect, send,
    /// response) counts as failed.
    pub timeout_secs: u64,
    /// How long a claimed attempt belongs to this node; a crashed node's
    /// claims become due again after it. At least `timeout_secs + 2`, so a
    /// live node always finishes (and records) its attempt before anyone
    /// may retake it.
    pub lease_secs: u64,
    /// Retry delays are drawn uniformly from zero to
    /// `min(backoff_cap_ms, backoff_base_ms * 2^(attempt - 1))` (full jitter).
    pub backoff_base_ms: u64,
    /// Largest retry delay ceiling.
    pub backoff_cap_ms: u64,
    /// A delivery is retried until it is this old, then marked failed.
    pub retry_window_secs: u64,
    /// How often delivery workers look for due work they were not
    /// notified of (notifications are only hints).
    pub poll_interval_ms: u64,
    /// Bytes of a receiver's response body kept with each attempt.
    pub response_body_limit_bytes: usize,
}

/// Three days: the retry window API.md promises.
pub const WEBHOOK_RETRY_WINDOW_MIN_SECS: u64 = 3 * 24 * 3600;

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            endpoint_concurrency: 8,
            timeout_secs: 10,
            lease_secs: 60,
            backoff_base_ms: 30_000,
            backoff_cap_ms: 3_600_000,
            retry_window_secs: WEBHOOK_RETRY_WINDOW_MIN_SECS,
            poll_interval_ms: 1000,
            response_body_limit_bytes: 4096,
        }
    }
}

impl WebhooksConfig {
    /// The first key whose value is unusable, and why.
    fn problem(&self, mode: Mode) -> Option<(&'static str, String)> {
        let w = self;
        if !(1..=1024).contains(&w.workers) {
            return Some(("webhooks.workers", "must be between 1 and 1024".into()));
        }
        if !(1..=1024).contains(&w.endpoint_concurrency) {
            return Some((
                "webhooks.endpoint_concurrency",
                "must be between 1 and 1024".into(),
            ));
        }
        if !(1..=300).contains(&w.timeout_secs) {
            return Some(("webhooks.timeout_secs", "must be between 1 and 300".into()));
        }
        if w.lease_secs < w.timeout_secs.saturating_add(2) {
            return Some((
                "webhooks.lease_secs",
                "must be at least webhooks.timeout_secs + 2".into(),
            ));
        }
        if w.backoff_base_ms == 0 {
            return Some(("webhooks.backoff_base_ms", "must be at least 1".into()));
        }
        if w.backoff_cap_ms < w.backoff_base_ms {
            return Some((
                "webhooks.backoff_cap_ms",
                "must be at least webhooks.backoff_base_ms".into(),
            ));
        }
        if w.retry_window_secs == 0 {
            return Some(("webhooks.retry_window_secs", "must be at least 1".into()));
        }
        if mode == Mode::Live && w.retry_window_secs < WEBHOOK_RETRY_WINDOW_MIN_SECS {
            return Some((
                "webhooks.retry_window_secs",
                format!("must be at least {WEBHOOK_RETRY_WINDOW_MIN_SECS} (3 days) in live mode"),
            ));
        }
        if !(10..=60_000).contains(&w.poll_interval_ms) {
            return Some((
                "webhooks.poll_interval_ms",
                "must be between 10 and 60000".into(),
            ));
        }
        if !(256..=65_536).contains(&w.response_body_limit_bytes) {
            return Some((
                "webhooks.response_body_limit_bytes",
                "must be between 256 and 65536".into(),
            ));
        }
        None
    }
}

/// A configuration problem, naming the key and the source of its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A key has a value of the wrong shape, or is missing, or unknown.
    #[error("config key `{key}`{origin}: {message}")]
    Key {
        /// Dotted key path (`database.url`).
        key: String,
        /// Where the value came from (` (from EPG_DATABASE_URL)`), or empty.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads `path` (if given), applies `EPG_…` overrides from `env`, and
    /// validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let display = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: display.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax {
                        path: display,
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let anchor_key = env
            .iter()
            .find(|(k, _)| k == "EPG_ANCHOR_KEY")
            .map(|(_, v)| v.clone());
        let secret = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let wallet_key = secret("EPG_WALLET_KEY");
        let wallet_password = secret("EPG_WALLET_PASSWORD");
        let overridden = apply_env_overrides(&mut table, env)?;
        let mut config: Config = deserialize(table, &overridden)?;
        config.settlement.anchor_key = anchor_key;
        config.wallet.key = wallet_key;
        config.wallet.password = wallet_password;
        config.validate(&overridden)?;
        Ok(config)
    }

    /// Checks what types alone cannot express.
    fn validate(&self, overridden: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError::Key {
            key: key.to_owned(),
            origin: origin(overridden, key),
            message,
        };
        if !(self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(err(
                "database.url",
                "must be a postgres:// or postgresql:// URL".to_owned(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(err("database.max_connections", "must be at least 1".into()));
        }
        CardKey::from_base64(&self.security.card_encryption_key)
            .map_err(|e| err("security.card_encryption_key", e.to_string()))?;
        if self.security.rate_limit_per_second == 0 {
            return Err(err(
                "security.rate_limit_per_second",
                "must be at least 1".into(),
            ));
        }
        if self.security.rate_limit_burst < self.security.rate_limit_per_second {
            return Err(err(
                "security.rate_limit_burst",
                "must be at least security.rate_limit_per_second".into(),
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(err(
                "server.body_limit_bytes",
                "must be at least 1024".into(),
            ));
        }
        if self.server.request_timeout_secs == 0 {
            return Err(err(
                "server.request_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(err(
                "log.level",
                format!("`{}` is not a valid log filter", self.log.level),
            ));
        }
        if let Some((key, message)) = self.webhooks.problem(self.mode) {
            return Err(err(key, message));
        }
        if !(1..=30 * 24).contains(&self.payments.authorization_ttl_hours) {
            return Err(err(
                "payments.authorization_ttl_hours",
                "must be between 1 and 720 (30 days)".into(),
            ));
        }
        if self.payments.expiry_interval_secs == 0 {
            return Err(err(
                "payments.expiry_interval_secs",
                "must be at least 1".into(),
            ));
        }
        if let Err((key, message)) = self.wallet.signer() {
            return Err(err(key, message));
        }
        let st = &self.settlement;
        if st.interval_secs == 0 {
            return Err(err("settlement.interval_secs", "must be at least 1".into()));
        }
        if !st.anchor_rpc_url.is_empty() {
            if !(st.anchor_rpc_url.starts_with("http://")
                || st.anchor_rpc_url.starts_with("https://"))
            {
                return Err(err(
                    "settlement.anchor_rpc_url",
                    "must be an http(s) URL".into(),
                ));
            }
            if st
                .anchor_contract
                .parse::<alloy::primitives::Address>()
                .is_err()
            {
                return Err(err(
                    "settlement.anchor_contract",
                    "must be the 0x address of the SettlementAnchor contract".into(),
                ));
            }
            if st.anchor_confirmations == 0 {
                return Err(err(
                    "settlement.anchor_confirmations",
                    "must be at least 1".into(),
                ));
            }
        }
        let url = &self.payments.public_url;
        if !url.is_empty() && !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(err(
                "payments.public_url",
                "must be an http:// or https:// URL, or empty".into(),
            ));
        }
        if self.mode == Mode::Live && self.server.dev {
            return Err(err("server.dev", "cannot be true in live mode".into()));
        }
        if let Err((key, message)) = crate::chain::config::validate(&self.chains) {
            return Err(err(&key, message));
        }
        Ok(())
    }

    /// The card encryption key, already checked by [`Config::load`].
    pub fn card_key(&self) -> Result<CardKey, ConfigError> {
        CardKey::from_base64(&self.security.card_encryption_key).map_err(|e| ConfigError::Key {
            key: "security.card_encryption_key".into(),
            origin: String::new(),
            message: e.to_string(),
        })
    }

    /// Request timeout as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }

    /// An annotated example file, as printed by `epg config example`.
    pub fn example() -> &'static str {
        include_str!("../epg.example.toml")
    }
}

/// Every overridable key with its environment variable name, derived from
/// the example file so the list cannot drift from the schema.
fn overridable_keys() -> Vec<(String, String)> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&path, t, out),
                // Arrays of tables (`[[chains]]`) come from the file only.
                toml::Value::Array(a) if a.iter().any(toml::Value::is_table) => {}
                _ => {
                    let env = format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase());
                    out.push((env, path));
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(example) = Config::example().parse::<toml::Table>() {
        walk("", &example, &mut out);
    }
    out
}

/// Applies `EPG_…` variables to `table`; returns key path → variable name of
/// what was overridden. Unknown `EPG_…` variables are an error, because a
/// misspelt override silently ignored is how production outages start.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let keys = overridable_keys();
    let mut overridden = BTreeMap::new();
    for (name, raw) in env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let Some((_, path)) = keys.iter().find(|(env, _)| *env == name) else {
            if IGNORED_ENV.contains(&name.as_str()) {
                continue;
            }
            return Err(ConfigError::Key {
                key: name.clone(),
                origin: String::new(),
                message: "unknown environment override (no such config key)".into(),
            });
        };
        // A value that parses as a TOML literal (number, bool) keeps its type;
        // anything else is a string.
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table() && !v.is_array())
            .unwrap_or(toml::Value::String(raw));
        set_path(table, path, value);
        overridden.insert(path.clone(), name);
    }
    Ok(overridden)
}

/// `EPG_` variables that are read elsewhere, not config keys.
const IGNORED_ENV: &[&str] = &[
    "EPG_CONFIG",
    "EPG_DEPLOYER_KEY",
    "EPG_DEPLOYER_KEYSTORE",
    "EPG_DEPLOYER_PASSWORD",
    "EPG_TEST_DATABASE_URL",
    "EPG_TEST_RUN",
    "EPG_ANVIL_BIN",
    "EPG_DATA_DIR",
    "EPG_RPC_URL",
    "EPG_ANCHOR_KEY",
    "EPG_WALLET_KEY",
    "EPG_WALLET_PASSWORD",
];

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts = path.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return,
        }
    }
}

fn origin(overridden: &BTreeMap<String, String>, key: &str) -> String {
    overridden
        .get(key)
        .map(|env| format!(" (from {env})"))
        .unwrap_or_default()
}

fn deserialize(
    table: toml::Table,
    overridden: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let mut key = e.path().to_string();
        let message = e.inner().to_string();
        // serde reports a missing or unknown field at the enclosing table;
        // name the field itself.
        if let Some(field) = quoted_field(&message) {
            key = if key == "." || key.is_empty() {
                field
            } else if key == field || key.ends_with(&format!(".{field}")) {
                key
            } else {
                format!("{key}.{field}")
            };
        }
        ConfigError::Key {
            origin: origin(overridden, &key),
            key,
            message,
        }
    })
}

/// The field named in serde's "missing field `x`" / "unknown field `x`".
fn quoted_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn the_example_file_is_valid() {
        let file = write(Config::example());
        let config = Config::load(Some(file.path()), env(&[])).unwrap();
        assert_eq!(config.mode, Mode::Test);
    }

    #[test]
    fn the_wallet_key_comes_from_the_environment_and_is_never_shown() {
        let file = write(Config::example());
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let config = Config::load(Some(file.path()), env(&[("EPG_WALLET_KEY", key)])).unwrap();
        let signer = config.wallet.signer().unwrap().unwrap();
        assert_eq!(
            format!("{:#x}", signer.address()),
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        );
        assert!(!format!("{config:?}").contains(&key[2..]));

        let bad = |pairs: &[(&str, &str)]| {
            Config::load(Some(file.path()), env(pairs))
                .unwrap_err()
                .to_string()
        };
        let err = bad(&[("EPG_WALLET_KEY", "0x1234")]);
        assert!(err.contains("wallet.key"), "{err}");
        assert!(!err.contains("0x1234"), "the value is not echoed: {err}");
        let err = bad(&[("EPG_WALLET_KEYSTORE", "/nonexistent/key.json")]);
        assert!(err.contains("EPG_WALLET_PASSWORD"), "{err}");
        let err = bad(&[
            ("EPG_WALLET_KEY", key),
            ("EPG_WALLET_KEYSTORE", "/nonexistent/key.json"),
        ]);
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn env_overrides_win_and_keep_their_type() {
        let file = write(Config::example());
        let config = Config::load(
            Some(file.path()),
            env(&[
                ("EPG_DATABASE_URL", "postgres://x@127.0.0.1/y"),
                ("EPG_DATABASE_MAX_CONNECTIONS", "7"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.database.url, "postgres://x@127.0.0.1/y");
        assert_eq!(config.database.max_connections, 7);
    }

    #[test]
    fn errors_name_the_key_and_the_variable() {
        let file = write(Config::example());
        let err = Config::load(
            Some(file.path()),
            env(&[("EPG_DATABASE_MAX_CONNECTIONS", "many")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database.max_connections"), "{err}");
        assert!(err.contains("EPG_DATABASE_MAX_CONNECTIONS"), "{err}");
    }

    #[test]
    fn missing_and_unknown_keys_are_named() {
        let file = write(&format!(
            "[database]\nurl = \"postgres://a@b/c\"\n[security]\ncard_encryption_key = \"{KEY}\"\ncolour = 1\n"
        ));
        let err = Config::load(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("security.colour"), "{err}");

        let file = write("[database]\nurl = \"postgres://a@b/c\"\n");
        let err = Config::load(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`security`"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let file = write(Config::example());
        let err = Config::load(
            Some(file.path()),
            env(&[("EPG_SECURITY_CARD_ENCRYPTION_KEY", "c2hvcnQ=")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("security.card_encryption_key"), "{err}");
        assert!(
            !err.contains("c2hvcnQ="),
            "a secret must not be echoed: {err}"
        );

        let err = Config::load(Some(file.path()), env(&[("EPG_DATABASE_URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn unknown_overrides_are_refused() {
        let file = write(Config::example());
        let err = Config::load(Some(file.path()), env(&[("EPG_DATABSE_URL", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EPG_DATABSE_URL"), "{err}");
    }

    #[test]
    fn no_file_at_all_works_from_the_environment() {
        let config = Config::load(
            None,
            env(&[
                ("EPG_DATABASE_URL", "postgres://a@b/c"),
                ("EPG_SECURITY_CARD_ENCRYPTION_KEY", KEY),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 8080);
    }
}
