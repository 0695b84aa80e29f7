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

use crate::crypto::{Keyring, KeyringError};

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
    /// The processor of each traditional method (`sandbox` in test mode only).
    #[serde(default)]
    pub processors: crate::methods::ProcessorsConfig,
    /// EVM chains watched for crypto payments (`[[chains]]`, file only).
    #[serde(default)]
    pub chains: Vec<crate::chain::config::ChainConfig>,
    /// The gateway's bank accounts and the folders of its bank files.
    #[serde(default)]
    pub bank: crate::bank::BankConfig,
    /// The merchant dashboard's sign-in limits and step-up threshold.
    #[serde(default)]
    pub dashboard: crate::dashboard::DashboardConfig,
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
    /// Confirmations one payment may take (declines, blocks and failures
    /// included) before further ones are refused: a stolen-card list tried
    /// against one checkout stops here.
    pub max_confirm_attempts: u32,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            authorization_ttl_hours: 7 * 24,
            expiry_interval_secs: 30,
            public_url: String::new(),
            max_confirm_attempts: 5,
        }
    }
}

/// Whether the node runs against sandbox connectors or real ones. Its
/// serde name is the word of key prefixes (`sk_test_…`) and of
/// `api_keys.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Mode {
    /// Sandbox connectors, test helpers on, `sk_test_` keys.
    #[default]
    Test,
    /// Real processors only; test helpers are not routed at all.
    Live,
}

crate::names!(Mode);

/// How the node's API is protected in transit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain HTTP: test mode and loopback development only.
    #[default]
    Off,
    /// The node serves HTTPS from `tls_cert_file` and `tls_key_file`.
    On,
    /// A TLS-terminating proxy (one of `trusted_proxies`) stands in front.
    Proxy,
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
    /// Transport security; live mode refuses `off`.
    pub tls: TlsMode,
    /// PEM certificate chain served when `tls = "on"` (re-read on SIGHUP).
    pub tls_cert_file: String,
    /// PEM private key of that certificate.
    pub tls_key_file: String,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the
    /// client; nobody else's is believed.
    pub trusted_proxies: Vec<String>,
    /// Seconds a client has to send a request's headers (slowloris guard).
    pub header_read_timeout_secs: u64,
    /// Open connections at most.
    pub max_connections: usize,
    /// Live event streams (SSE) open at once on this node.
    pub max_streams: usize,
    /// Live event streams one client address may hold.
    pub max_streams_per_ip: usize,
    /// Live event streams of one payment.
    pub max_streams_per_payment: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            dev: false,
            tls: TlsMode::Off,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 4096,
            max_streams: 1000,
            max_streams_per_ip: 20,
            max_streams_per_payment: 5,
        }
    }
}

impl ServerConfig {
    /// The certificate files when the node serves HTTPS itself.
    pub fn tls_files(&self) -> Option<crate::server::TlsFiles> {
        (self.tls == TlsMode::On).then(|| crate::server::TlsFiles {
            cert: self.tls_cert_file.clone().into(),
            key: self.tls_key_file.clone().into(),
        })
    }

    /// The parsed `trusted_proxies` (checked by [`Config::load`]).
    pub fn proxies(&self) -> crate::server::TrustedProxies {
        crate::server::TrustedProxies::parse(&self.trusted_proxies).unwrap_or_default()
    }

    /// The first key whose value is unusable, and why.
    fn problem(&self) -> Option<(String, String)> {
        if let Err(i) = crate::server::TrustedProxies::parse(&self.trusted_proxies) {
            return Some((
                "server.trusted_proxies".into(),
                format!(
                    "entry {i} (`{}`) is not an IP address or CIDR block",
                    self.trusted_proxies[i]
                ),
            ));
        }
        match self.tls {
            TlsMode::On => {
                for (key, path) in [
                    ("server.tls_cert_file", &self.tls_cert_file),
                    ("server.tls_key_file", &self.tls_key_file),
                ] {
                    if path.is_empty() {
                        return Some((key.into(), "must name a PEM file when tls = \"on\"".into()));
                    }
                }
                let provider = tokio_rustls::rustls::crypto::ring::default_provider();
                if let Some(files) = self.tls_files()
                    && let Err(e) = files.load(&provider)
                {
                    let key = match e {
                        crate::server::TlsError::Key { .. } => "server.tls_key_file",
                        _ => "server.tls_cert_file",
                    };
                    return Some((key.into(), e.to_string()));
                }
            }
            TlsMode::Proxy if self.trusted_proxies.is_empty() => {
                return Some((
                    "server.trusted_proxies".into(),
                    "must list the TLS-terminating proxy when tls = \"proxy\"".into(),
                ));
            }
            TlsMode::Proxy | TlsMode::Off => {}
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Some((
                "server.header_read_timeout_secs".into(),
                "must be between 1 and 300".into(),
            ));
        }
        for (key, value) in [
            ("server.max_connections", self.max_connections),
            ("server.max_streams", self.max_streams),
            ("server.max_streams_per_ip", self.max_streams_per_ip),
            (
                "server.max_streams_per_payment",
                self.max_streams_per_payment,
            ),
        ] {
            if value == 0 {
                return Some((key.into(), "must be at least 1".into()));
            }
        }
        None
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Size of the connection pool ([`DEFAULT_MAX_CONNECTIONS`] unless set).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Size of the separate pool of the public routes (checkout streams,
    /// the transparency log), so they cannot starve merchant traffic.
    #[serde(default = "default_public_max_connections")]
    pub public_max_connections: u32,
}

/// The pool's size when the config does not set one. sqlx hands out its
/// idle connections in turn (oldest first), so every connection of the
/// pool takes a share of the statements whether or not the load needs it,
/// and a backend that waits between statements runs them on colder
/// caches: on a 2-core database a pool of 10 cost 9–25% less database
/// CPU per card payment than one of 20 at 8 and 16 concurrent requests
/// (docs/performance.md, seventh round). Ten is also sqlx's own default;
/// a larger database wants more (docs/operations.md, Capacity).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
}

fn default_public_max_connections() -> u32 {
    4
}

/// Secrets and abuse limits.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// The master key, 32 random bytes in base64. Never used as it is: the
    /// keys that seal card numbers, saved responses and webhook secrets, and
    /// those that MAC requests and fingerprint cards, are derived from it
    /// ([`crate::crypto`]).
    pub master_key: String,
    /// Master keys that were current before, kept while `epg keys
    /// rotate-master` re-seals what they sealed; they open, never seal.
    #[serde(default)]
    pub previous_master_keys: Vec<String>,
    /// Sustained requests per second allowed per API key.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// Requests a key may burst above the sustained rate.
    #[serde(default = "default_rate_limit_burst")]
    pub rate_limit_burst: u32,
    /// Sustained requests per second per client address on the public
    /// routes (checkout, live streams, transparency log, docs).
    #[serde(default = "default_public_rate_limit_per_second")]
    pub public_rate_limit_per_second: u32,
    /// Burst of the public routes per client address.
    #[serde(default = "default_public_rate_limit_burst")]
    pub public_rate_limit_burst: u32,
    /// Failed authentications (bad or revoked keys, wrong client secrets)
    /// a client address may make per minute before it is refused.
    #[serde(default = "default_failed_auth_per_minute")]
    pub failed_auth_per_minute: u32,
    /// The operator's bearer token for `/metrics` and the detailed
    /// `/readyz`; from `EPG_OPERATOR_TOKEN` only, never the file.
    #[serde(skip)]
    pub operator_token: Option<String>,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("master_key", &"<redacted>")
            .field(
                "previous_master_keys",
                &format!("<{} redacted>", self.previous_master_keys.len()),
            )
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field(
                "public_rate_limit_per_second",
                &self.public_rate_limit_per_second,
            )
            .field("public_rate_limit_burst", &self.public_rate_limit_burst)
            .field("failed_auth_per_minute", &self.failed_auth_per_minute)
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn default_rate_limit_per_second() -> u32 {
    100
}

fn default_rate_limit_burst() -> u32 {
    200
}

fn default_public_rate_limit_per_second() -> u32 {
    20
}

fn default_public_rate_limit_burst() -> u32 {
    60
}

fn default_failed_auth_per_minute() -> u32 {
    30
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

/// Three days: the retry window docs/api.md promises.
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
        refuse_renamed(&table, &env)?;
        let anchor_key = env
            .iter()
            .find(|(k, _)| k == "EPG_ANCHOR_KEY")
            .map(|(_, v)| v.clone());
        let secret = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let wallet_key = secret("EPG_WALLET_KEY");
        let wallet_password = secret("EPG_WALLET_PASSWORD");
        let operator_token = secret("EPG_OPERATOR_TOKEN").filter(|t| !t.is_empty());
        let overridden = apply_env_overrides(&mut table, env)?;
        let mut config: Config = deserialize(table, &overridden)?;
        config.settlement.anchor_key = anchor_key;
        config.wallet.key = wallet_key;
        config.wallet.password = wallet_password;
        config.security.operator_token = operator_token;
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
        if let Err(e) = Keyring::new(
            &self.security.master_key,
            &self.security.previous_master_keys,
        ) {
            let (key, message) = keyring_problem(e);
            return Err(err(key, message));
        }
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
        if self.security.public_rate_limit_per_second == 0 {
            return Err(err(
                "security.public_rate_limit_per_second",
                "must be at least 1".into(),
            ));
        }
        if self.security.public_rate_limit_burst < self.security.public_rate_limit_per_second {
            return Err(err(
                "security.public_rate_limit_burst",
                "must be at least security.public_rate_limit_per_second".into(),
            ));
        }
        if self.security.failed_auth_per_minute == 0 {
            return Err(err(
                "security.failed_auth_per_minute",
                "must be at least 1".into(),
            ));
        }
        if let Some(token) = &self.security.operator_token
            && token.len() < 32
        {
            return Err(err(
                "security.operator_token",
                "EPG_OPERATOR_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)"
                    .into(),
            ));
        }
        if self.database.public_max_connections == 0 {
            return Err(err(
                "database.public_max_connections",
                "must be at least 1".into(),
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
        if !(1..=100).contains(&self.payments.max_confirm_attempts) {
            return Err(err(
                "payments.max_confirm_attempts",
                "must be between 1 and 100".into(),
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
        if let Some((key, message)) = self.server.problem() {
            return Err(err(&key, message));
        }
        if let Some((key, message)) = self.processors.problem(Mode::Test) {
            return Err(err(&key, message));
        }
        let iso20022 = self
            .processors
            .processor(crate::methods::MethodType::BankTransfer, self.mode)
            == crate::methods::Processor::Iso20022;
        if let Some((key, message)) = self.bank.problem(iso20022) {
            return Err(err(&key, message));
        }
        if let Some((key, message)) = self.live_problem() {
            return Err(err(&key, message));
        }
        if let Err((key, message)) = crate::chain::config::validate(&self.chains) {
            return Err(err(&key, message));
        }
        Ok(())
    }

    /// The first setting that makes live mode unsafe, as (key, why); `None`
    /// in test mode. [`Config::load`] refuses such a configuration, and
    /// `Application::build` checks again so no path around the file can
    /// start an unsafe live node.
    pub fn live_problem(&self) -> Option<(String, String)> {
        if self.mode != Mode::Live {
            return None;
        }
        if self.server.dev {
            return Some(("server.dev".into(), "cannot be true in live mode".into()));
        }
        if let Some(problem) = self.processors.problem(self.mode) {
            return Some(problem);
        }
        if self.server.tls == TlsMode::Off {
            return Some((
                "server.tls".into(),
                "live mode refuses plain HTTP: set tls = \"on\" with tls_cert_file and \
                 tls_key_file, or tls = \"proxy\" when a TLS-terminating proxy listed in \
                 trusted_proxies stands in front"
                    .into(),
            ));
        }
        if !postgres_url_is_private(&self.database.url) {
            return Some((
                "database.url".into(),
                "live mode needs TLS to a PostgreSQL that is not on this machine: add \
                 sslmode=verify-full (and sslrootcert=<CA file> for a private CA)"
                    .into(),
            ));
        }
        for (i, chain) in self.chains.iter().enumerate() {
            if !is_encrypted_or_loopback(&chain.http_url) {
                return Some((
                    format!("chains[{i}].http_url"),
                    "must be https:// in live mode (or a loopback address)".into(),
                ));
            }
            if let Some(public) = &chain.public_rpc_url
                && !is_encrypted_or_loopback(public)
            {
                return Some((
                    format!("chains[{i}].public_rpc_url"),
                    "must be https:// in live mode (or a loopback address)".into(),
                ));
            }
            if let Some(ws) = &chain.ws_url
                && !is_encrypted_or_loopback(ws)
            {
                return Some((
                    format!("chains[{i}].ws_url"),
                    "must be wss:// in live mode (or a loopback address)".into(),
                ));
            }
        }
        let anchor = &self.settlement.anchor_rpc_url;
        if !anchor.is_empty() && !is_encrypted_or_loopback(anchor) {
            return Some((
                "settlement.anchor_rpc_url".into(),
                "must be https:// in live mode (or a loopback address)".into(),
            ));
        }
        let public = &self.payments.public_url;
        if !public.is_empty() && !is_encrypted_or_loopback(public) {
            return Some((
                "payments.public_url".into(),
                "must be https:// in live mode: customers are sent there".into(),
            ));
        }
        None
    }

    /// The master keys, already checked by [`Config::load`].
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        Keyring::new(
            &self.security.master_key,
            &self.security.previous_master_keys,
        )
        .map_err(|e| {
            let (key, message) = keyring_problem(e);
            ConfigError::Key {
                key: key.to_owned(),
                origin: String::new(),
                message,
            }
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

/// Whether `url` is encrypted (`https`, `wss`) or stays on this machine.
fn is_encrypted_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") || url.starts_with("wss://") {
        return true;
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    is_loopback_host(strip_port(host))
}

/// `host` of `host:port` and `[v6]:port`.
fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| crate::server::proxies::canonical(ip).is_loopback())
}

/// Whether a PostgreSQL URL either stays on this machine (loopback hosts,
/// a Unix socket) or verifies the server's certificate and name.
fn postgres_url_is_private(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("sslmode") == Some("verify-full") {
        return true;
    }
    let authority = before_query.split('/').next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut hosts: Vec<&str> = hosts.split(',').map(strip_port).collect();
    if let Some(host) = param("host") {
        hosts = host.split(',').collect();
    }
    hosts
        .iter()
        .all(|h| h.is_empty() || h.starts_with('/') || is_loopback_host(h))
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
                _ => out.push((env_var(&path), path)),
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
            if IGNORED_ENV.contains(&name.as_str())
                || IGNORED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                continue;
            }
            return Err(ConfigError::Key {
                key: name.clone(),
                origin: String::new(),
                message: "unknown environment override (no such config key)".into(),
            });
        };
        // A value that parses as a TOML literal (number, bool, an array of
        // them) keeps its type; anything else is a string.
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| match v {
                toml::Value::Table(_) => false,
                toml::Value::Array(items) => !items.iter().any(toml::Value::is_table),
                _ => true,
            })
            .unwrap_or(toml::Value::String(raw));
        set_path(table, path, value);
        overridden.insert(path.clone(), name);
    }
    Ok(overridden)
}

/// The variable that overrides `path` (`database.url` → `EPG_DATABASE_URL`).
fn env_var(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase())
}

/// Keys that were renamed, old name first. An old name, in the file or as
/// a variable, is refused with its new name: ignoring it would start a node
/// without its key, and accepting both would leave two names for one secret.
const RENAMED: &[(&str, &str)] = &[("security.card_encryption_key", "security.master_key")];

fn refuse_renamed(table: &toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (old, new) in RENAMED {
        let var = env_var(old);
        let from_env = env.iter().any(|(name, _)| *name == var);
        let mut parts = old.split('.');
        let section = parts.next().and_then(|s| table.get(s));
        let in_file = parts
            .next()
            .zip(section.and_then(toml::Value::as_table))
            .is_some_and(|(key, section)| section.contains_key(key));
        if from_env || in_file {
            return Err(ConfigError::Key {
                key: (*old).to_owned(),
                origin: if from_env {
                    format!(" (from {var})")
                } else {
                    String::new()
                },
                message: format!(
                    "was renamed to `{new}` (variable {}); keep the same value under the new name",
                    env_var(new)
                ),
            });
        }
    }
    Ok(())
}

/// The key and the message of a keyring problem.
fn keyring_problem(e: KeyringError) -> (&'static str, String) {
    match e {
        KeyringError::Current(e) => ("security.master_key", e.to_string()),
        e => ("security.previous_master_keys", e.to_string()),
    }
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
    "EPG_OPERATOR_TOKEN",
];

/// Prefixes of the knobs of the project's own scripts and tests
/// (`scripts/test`, `scripts/schemathesis`, `scripts/faults`,
/// `scripts/ha-devnet`, the kill loop): they reach every `epg` command those
/// scripts start, and no config section has these names.
const IGNORED_ENV_PREFIXES: &[&str] = &[
    "EPG_TEST_",
    "EPG_SCHEMATHESIS_",
    "EPG_FAULTS_",
    "EPG_HA_",
    "EPG_KILL_",
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
            "[database]\nurl = \"postgres://a@b/c\"\n[security]\nmaster_key = \"{KEY}\"\ncolour = 1\n"
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
            env(&[("EPG_SECURITY_MASTER_KEY", "c2hvcnQ=")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("security.master_key"), "{err}");
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
    fn the_scripts_knobs_are_not_overrides_and_no_key_could_be_one() {
        let file = write(Config::example());
        Config::load(
            Some(file.path()),
            env(&[("EPG_SCHEMATHESIS_SEED", "1"), ("EPG_KILL_ROUNDS", "3")]),
        )
        .unwrap();
        for (var, path) in overridable_keys() {
            assert!(
                !IGNORED_ENV_PREFIXES.iter().any(|p| var.starts_with(p)),
                "{path} would be shadowed by an ignored prefix"
            );
        }
    }

    #[test]
    fn no_file_at_all_works_from_the_environment() {
        let config = Config::load(
            None,
            env(&[
                ("EPG_DATABASE_URL", "postgres://a@b/c"),
                ("EPG_SECURITY_MASTER_KEY", KEY),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 8080);
    }

    #[test]
    fn the_old_name_of_the_master_key_is_refused_with_its_new_name() {
        let file = write(&format!(
            "[database]\nurl = \"postgres://a@b/c\"\n[security]\ncard_encryption_key = \"{KEY}\"\n"
        ));
        let err = Config::load(Some(file.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("security.card_encryption_key"), "{err}");
        assert!(err.contains("renamed to `security.master_key`"), "{err}");
        assert!(!err.contains(KEY), "a secret must not be echoed: {err}");

        let file = write(Config::example());
        let err = Config::load(
            Some(file.path()),
            env(&[("EPG_SECURITY_CARD_ENCRYPTION_KEY", KEY)]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("EPG_SECURITY_CARD_ENCRYPTION_KEY"), "{err}");
        assert!(err.contains("EPG_SECURITY_MASTER_KEY"), "{err}");
    }

    #[test]
    fn previous_master_keys_come_from_the_file_or_the_environment_and_are_checked() {
        let other = Keyring::generate_base64();
        let file = write(Config::example());
        let config = Config::load(
            Some(file.path()),
            env(&[(
                "EPG_SECURITY_PREVIOUS_MASTER_KEYS",
                &format!("[\"{other}\"]"),
            )]),
        )
        .unwrap();
        assert_eq!(
            config.security.previous_master_keys,
            std::slice::from_ref(&other)
        );
        assert!(!format!("{config:?}").contains(&other));

        let err = Config::load(
            Some(file.path()),
            env(&[(
                "EPG_SECURITY_PREVIOUS_MASTER_KEYS",
                &format!("[\"{other}\", \"c2hvcnQ=\"]"),
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("security.previous_master_keys"), "{err}");
        assert!(err.contains("entry 1"), "{err}");
        assert!(err.contains("EPG_SECURITY_PREVIOUS_MASTER_KEYS"), "{err}");
        assert!(!err.contains("c2hvcnQ="), "{err}");

        let err = Config::load(
            Some(file.path()),
            env(&[("EPG_SECURITY_PREVIOUS_MASTER_KEYS", &format!("[\"{KEY}\"]"))]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is the current master key"), "{err}");
    }
}
