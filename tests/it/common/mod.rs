//! Test harness: every test gets its own freshly migrated database (cloned
//! from a template that is migrated once per schema) and, when it needs one,
//! a node serving on a free port and an anvil devnet. Nothing outlives the
//! test: servers stop when their `TestApp` drops, anvil is killed on drop,
//! and databases of finished test processes are dropped by the next run.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod anchored;
pub mod pg_proxy;

use std::net::SocketAddr;
use std::sync::OnceLock;

use epg::app::Application;
use epg::config::{
    Config, DatabaseConfig, LogConfig, LogFormat, Mode, SecurityConfig, ServerConfig,
};
use epg::crypto::Keyring;
use epg::db::Db;
use epg::ids::MerchantId;
use epg::merchants::{KeyKind, MerchantStore};
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// The server holding test databases; `EPG_TEST_DATABASE_URL` overrides.
pub fn admin_url() -> String {
    std::env::var("EPG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{database}")
}

/// Name of the template for the current migrations: a new schema gets a
/// new template, so a stale one is never used.
fn template_name() -> String {
    let mut digest = Vec::new();
    for m in epg::db::MIGRATOR.iter() {
        digest.extend_from_slice(&m.version.to_le_bytes());
        digest.extend_from_slice(&m.checksum);
    }
    format!(
        "epg_tpl_{}",
        &hex::encode(epg::crypto::sha256(&digest))[..16]
    )
}

static TEMPLATE_READY: OnceLock<Mutex<bool>> = OnceLock::new();

/// Makes sure the template exists (once per process; across processes an
/// advisory lock serialises its creation) and cleans up databases left by
/// test processes that have exited.
async fn ensure_template() -> String {
    let name = template_name();
    let mut ready = TEMPLATE_READY
        .get_or_init(|| Mutex::new(false))
        .lock()
        .await;
    if *ready {
        return name;
    }
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("PostgreSQL for tests (set EPG_TEST_DATABASE_URL)");
    admin
        .execute("SELECT pg_advisory_lock(7411001)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .unwrap();
        let pool = epg::db::connect(&url_for(&building), 10).await.unwrap();
        epg::db::migrate(pool.pool())
            .await
            .expect("migrations apply");
        pool.close().await;
        // The pool's connections close asynchronously on the server side;
        // the rename waits until none is left.
        let mut renamed = false;
        for _ in 0..100 {
            if admin
                .execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
                .await
                .is_ok()
            {
                renamed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(renamed, "could not rename the template database");
    }
    drop_orphaned_databases(&mut admin).await;
    // Templates of older schemas are never used again; one still in use by
    // a concurrent run of another schema is left alone (no FORCE).
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'epg\\_tpl\\_%' AND datname <> $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for old in stale {
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS \"{old}\"").as_str())
            .await;
    }
    admin
        .execute("SELECT pg_advisory_unlock(7411001)")
        .await
        .unwrap();
    *ready = true;
    name
}

/// The run this process belongs to: `EPG_TEST_RUN` (set by scripts/test,
/// so that every database of one run outlives its test process and can be
/// checked at the end), or `0` for a plain `cargo test`.
fn run_id() -> String {
    std::env::var("EPG_TEST_RUN")
        .ok()
        .filter(|r| !r.is_empty() && r.len() <= 16 && r.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| "0".to_owned())
}

/// Drops test databases nobody needs any more: those of other runs, and,
/// outside a named run, those whose test process is gone. A database is
/// `epg_test_<run>_<pid>_<random>`.
async fn drop_orphaned_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'epg\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let current = run_id();
    for name in names {
        let mut parts = name.split('_').skip(2);
        let (run, pid) = (
            parts.next(),
            parts.next().and_then(|p| p.parse::<u32>().ok()),
        );
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        let stale = match run {
            Some(run) if run == current => current == "0" && !alive,
            _ => true,
        };
        if stale {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await;
        }
    }
}

/// A fresh database with every migration applied, and its URL.
pub async fn test_database() -> (Db, String) {
    let template = ensure_template().await;
    let name = format!(
        "epg_test_{}_{}_{}",
        run_id(),
        std::process::id(),
        epg::ids::random_base62(10).to_lowercase()
    );
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = url_for(&name);
    let pool = epg::db::connect(&url, 10).await.unwrap();
    (pool, url)
}

/// A fresh migrated database.
pub async fn test_db() -> Db {
    test_database().await.0
}

/// A running node on its own database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A plain client (no default headers).
    pub client: reqwest::Client,
    /// The node's database.
    pub pool: Db,
    /// Its URL, for a second node on the same database.
    pub database_url: String,
    /// The demo merchant.
    pub merchant_id: MerchantId,
    /// Its secret key.
    pub secret_key: String,
    /// Its publishable key.
    pub publishable_key: String,
    /// The configuration the node runs with.
    pub config: Config,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The operator token of test nodes (`/metrics`, detailed `/readyz`).
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789abcdef";

/// The configuration tests run with (test mode, dev conveniences on).
pub fn test_config(database_url: &str) -> Config {
    Config {
        mode: Mode::Test,
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dev: true,
            shutdown_grace_secs: 5,
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: database_url.to_owned(),
            max_connections: 10,
            public_max_connections: 4,
        },
        security: SecurityConfig {
            master_key: Keyring::generate_base64(),
            previous_master_keys: Vec::new(),
            rate_limit_per_second: 1000,
            rate_limit_burst: 1000,
            public_rate_limit_per_second: 1000,
            public_rate_limit_burst: 1000,
            failed_auth_per_minute: 10_000,
            operator_token: Some(OPERATOR_TOKEN.to_owned()),
        },
        log: LogConfig {
            format: LogFormat::Json,
            level: "warn".into(),
        },
        webhooks: epg::config::WebhooksConfig::default(),
        payments: epg::config::PaymentsConfig::default(),
        settlement: epg::config::SettlementConfig::default(),
        wallet: epg::config::WalletConfig::default(),
        processors: epg::methods::ProcessorsConfig::default(),
        chains: Vec::new(),
        bank: epg::bank::BankConfig::default(),
        dashboard: epg::dashboard::DashboardConfig::default(),
    }
}

/// A node with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A node whose configuration `tweak` adjusts first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (pool, url) = test_database().await;
    let mut config = test_config(&url);
    tweak(&mut config);
    spawn_on(pool, config).await
}

/// A node on an existing database (e.g. a second node, or a restart).
pub async fn spawn_on(pool: Db, config: Config) -> TestApp {
    let database_url = config.database.url.clone();
    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Test Merchant").await.unwrap();
    let (_, sk) = merchants
        .create_key(&merchant.id, KeyKind::Secret, config.mode)
        .await
        .unwrap();
    let (_, pk) = merchants
        .create_key(&merchant.id, KeyKind::Publishable, config.mode)
        .await
        .unwrap();
    let app_pool = epg::db::connect(&database_url, config.database.max_connections)
        .await
        .unwrap();
    let app = Application::build_with_pool(config.clone(), app_pool)
        .await
        .unwrap();
    let address = format!("http://{}", app.address());
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        app.run(token).await.unwrap();
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        database_url,
        merchant_id: merchant.id,
        secret_key: sk.secret,
        publishable_key: pk.secret,
        config,
        shutdown,
        server: Some(server),
    }
}

impl TestApp {
    /// Another merchant on the same node, with its secret key.
    pub async fn merchant(&self) -> (MerchantId, String) {
        let merchants = MerchantStore::new(self.pool.clone());
        let merchant = merchants.create("Other Merchant").await.unwrap();
        let (_, sk) = merchants
            .create_key(&merchant.id, KeyKind::Secret, self.config.mode)
            .await
            .unwrap();
        (merchant.id, sk.secret)
    }

    /// `GET path` with `key`.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with a JSON `body` and `key`.
    pub async fn post(&self, path: &str, key: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a payment of `amount` (smallest units) in `currency` with
    /// the merchant's secret key; its id.
    pub async fn create_payment(&self, amount: i64, currency: &str) -> String {
        let payment = json(
            self.post(
                "/v1/payments",
                &self.secret_key,
                &serde_json::json!({"amount": amount, "currency": currency}),
            )
            .await,
            200,
        )
        .await;
        payment["id"].as_str().unwrap().to_owned()
    }

    /// Stops the node and waits until it has drained.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// An anvil devnet for one test, killed when dropped.
pub async fn anvil() -> epg::devnet::anvil::Anvil {
    anvil_with_chain_id(31337).await
}

/// An anvil devnet with a given chain id.
pub async fn anvil_with_chain_id(chain_id: u64) -> epg::devnet::anvil::Anvil {
    epg::devnet::anvil::Anvil::start(epg::devnet::anvil::AnvilOptions {
        chain_id,
        ..Default::default()
    })
    .await
    .expect("anvil (run scripts/setup)")
}

/// The JSON body of a response, asserting its status first.
pub async fn json(response: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// E-PG's four contracts deployed on `anvil` by its first funded account,
/// which is also treasury, admin and anchorer (as in `epg dev`).
pub async fn deploy_devnet(anvil: &epg::devnet::anvil::Anvil) -> epg::chain::deploy::Deployment {
    let deployer: alloy::signers::local::PrivateKeySigner =
        epg::devnet::anvil::DEV_KEY_0.parse().unwrap();
    let address = deployer.address();
    epg::chain::deploy::deploy(
        &anvil.rpc_url(),
        deployer,
        &epg::chain::deploy::DeployPlan {
            treasury: address,
            admin: address,
            anchorer: address,
            dev_helpers: true,
            ..epg::chain::deploy::DeployPlan::default()
        },
    )
    .await
    .unwrap()
}

/// `epg reconcile chain` over `chain` finds no discrepancy, once the node's
/// watcher has processed every block mined so far (`confirmations` more
/// are mined first, so the confirmed horizon reaches them).
pub async fn reconcile_clean(pool: &Db, chain: &epg::chain::config::ChainConfig) {
    use alloy::providers::Provider;
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(chain.http_url.parse().unwrap());
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_mine".into(),
            (format!("{:#x}", chain.confirmations),),
        )
        .await
        .unwrap();
    let head = i64::try_from(provider.get_block_number().await.unwrap()).unwrap();
    let chain_id = i64::try_from(chain.chain_id).unwrap();
    for _ in 0..400 {
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT block_number FROM chain_cursors WHERE chain_id = $1")
                .bind(chain_id)
                .fetch_optional(pool)
                .await
                .unwrap()
                .flatten();
        if cursor.is_some_and(|c| c >= head) {
            let target = epg::chain::reconcile::Target::from_config(chain).unwrap();
            let report = epg::chain::reconcile::reconcile(pool, &[target])
                .await
                .unwrap();
            assert!(report.is_ok(), "{report}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the watcher of chain {chain_id} never reached block {head}");
}

/// E-PG's contracts on `anvil` deployed by its first funded account (admin
/// and anchorer), with a treasury nobody else touches, and the chain as a
/// node watches it: anchoring gas then never shows in the treasury, which
/// `epg reconcile chain` compares with the ledger.
pub async fn deploy_with_own_treasury(
    anvil: &epg::devnet::anvil::Anvil,
) -> (
    epg::chain::deploy::Deployment,
    epg::chain::config::ChainConfig,
) {
    deploy_paying_to(anvil, alloy::primitives::Address::repeat_byte(0x7e)).await
}

/// As [`deploy_with_own_treasury`], with a fresh hot wallet as the treasury
/// (the key a node sends refunds and sweeps from), funded with 10 ETH for
/// gas.
pub async fn deploy_with_hot_wallet(
    anvil: &epg::devnet::anvil::Anvil,
) -> (
    epg::chain::deploy::Deployment,
    epg::chain::config::ChainConfig,
    alloy::signers::local::PrivateKeySigner,
) {
    use alloy::providers::Provider;
    let wallet = alloy::signers::local::PrivateKeySigner::random();
    let (deployment, chain) = deploy_paying_to(anvil, wallet.address()).await;
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (
                wallet.address(),
                alloy::primitives::U256::from(10u128.pow(19)),
            ),
        )
        .await
        .unwrap();
    (deployment, chain, wallet)
}

/// The contracts deployed by anvil's first account, paying into
/// `treasury`; the chain polled fast and watched from the next block.
async fn deploy_paying_to(
    anvil: &epg::devnet::anvil::Anvil,
    treasury: alloy::primitives::Address,
) -> (
    epg::chain::deploy::Deployment,
    epg::chain::config::ChainConfig,
) {
    use alloy::providers::Provider;
    let deployer: alloy::signers::local::PrivateKeySigner =
        epg::devnet::anvil::DEV_KEY_0.parse().unwrap();
    let address = deployer.address();
    let deployment = epg::chain::deploy::deploy(
        &anvil.rpc_url(),
        deployer,
        &epg::chain::deploy::DeployPlan {
            treasury,
            admin: address,
            anchorer: address,
            dev_helpers: true,
            ..epg::chain::deploy::DeployPlan::default()
        },
    )
    .await
    .unwrap();
    let mut chain = epg::chain::config::ChainConfig::devnet(&deployment, &anvil.rpc_url());
    chain.poll_interval_ms = 50;
    chain.retry_base_ms = 20;
    chain.retry_cap_ms = 400;
    let provider =
        alloy::providers::ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    chain.start_block = provider.get_block_number().await.unwrap() + 1;
    (deployment, chain)
}

/// Polls `check` (up to a generous safety limit) until it returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until `n` sessions of `pool`'s database wait for a lock: writers
/// queued behind a row the test holds.
pub async fn until_waiting_for_a_lock(pool: &Db, n: i64) {
    eventually("sessions waiting for a lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (waiting >= n).then_some(())
    })
    .await;
}
