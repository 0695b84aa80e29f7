//! `epg dev`: a complete node on this machine in one command.
//!
//! Starts (or reuses) a private PostgreSQL cluster and an anvil devnet,
//! applies migrations, creates a demo merchant, serves the API and prints
//! where everything is. Everything it started is stopped on Ctrl-C or
//! SIGTERM. State lives in the data folder, so a second run keeps it;
//! `--reset` starts clean.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::CliError;
use super::Context;
use crate::app::{Application, shutdown_signal};
use crate::chain::deploy::{self, DeployPlan, Deployment};
use crate::config::{
    Config, DatabaseConfig, LogConfig, LogFormat, Mode, SecurityConfig, ServerConfig,
};
use crate::crypto::Keyring;
use crate::devnet::anvil::{Anvil, AnvilOptions, DEV_ANCHOR_KEY, DEV_KEY_0};
use crate::devnet::postgres::PrivateCluster;
use crate::ids::MerchantId;
use crate::merchants::{KeyKind, MerchantError, MerchantStore};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Folder for the devnet's state (database, chain, demo keys).
    #[arg(long, env = "EPG_DATA_DIR", default_value = super::database::DEV_DATA_DIR)]
    data_dir: PathBuf,
    /// Use this PostgreSQL instead of starting a private cluster.
    #[arg(long, env = "EPG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Use this chain instead of starting anvil.
    #[arg(long, env = "EPG_RPC_URL", hide_env_values = true)]
    rpc_url: Option<String>,
    /// API port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the private PostgreSQL cluster.
    #[arg(long, default_value_t = 55432)]
    pg_port: u16,
    /// Port of the anvil devnet.
    #[arg(long, default_value_t = 8545)]
    anvil_port: u16,
    /// Seconds between devnet blocks (default: one block per transaction).
    #[arg(long)]
    block_time: Option<u64>,
    /// Delete the data folder first and start clean.
    #[arg(long)]
    reset: bool,
}

/// The file in the data folder holding [`DevState`].
pub(super) const STATE_FILE: &str = "dev.json";

/// What `epg dev` remembers between runs (in `dev.json`, mode 0600: it
/// holds the demo keys in clear, which is acceptable for a local devnet
/// only), and what admin commands run beside it read to find it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct DevState {
    merchant_id: Option<MerchantId>,
    secret_key: Option<String>,
    publishable_key: Option<String>,
    /// Named `card_encryption_key` in data folders of earlier versions.
    #[serde(alias = "card_encryption_key")]
    pub(super) master_key: Option<String>,
    /// Bearer token of `/metrics` and the detailed `/readyz`.
    #[serde(default)]
    operator_token: Option<String>,
    /// The database of the last run, so that `epg merchants create` and
    /// the other admin commands work beside it without being told.
    #[serde(default)]
    pub(super) database_url: Option<String>,
    /// The chain of the last run, for `epg reconcile chain` beside it.
    #[serde(default)]
    pub(super) rpc_url: Option<String>,
}

const DEV_DATABASE: &str = "epg";

pub async fn run(args: DevArgs) -> Result<ExitCode, CliError> {
    crate::telemetry::init(&LogConfig {
        format: LogFormat::Pretty,
        level: "info,sqlx=warn".into(),
    });
    let dir = &args.data_dir;
    if args.reset && dir.exists() {
        let pg_dir = dir.join("pg");
        if pg_dir.join("postmaster.pid").exists() {
            // A server left running by a killed `epg dev`: stop it before
            // deleting its files.
            if let Ok(cluster) = PrivateCluster::start(&pg_dir, args.pg_port).await {
                let _ = cluster.stop().await;
            }
        }
        std::fs::remove_dir_all(dir).map_err(|e| fail(dir, e))?;
        println!("reset: removed {}", dir.display());
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let state_path = dir.join(STATE_FILE);
    let mut state: DevState = read_state(&state_path)?;

    let (cluster, database_url) = match &args.database_url {
        Some(url) => (None, url.clone()),
        None => {
            let cluster = PrivateCluster::start(&dir.join("pg"), args.pg_port)
                .await
                .map_err(CliError::other)?;
            create_database(&cluster.url("postgres"), DEV_DATABASE).await?;
            let url = cluster.url(DEV_DATABASE);
            (Some(cluster), url)
        }
    };

    let (anvil, rpc_url, chain_id) = match &args.rpc_url {
        Some(url) => {
            let chain_id = chain_id(url).await?;
            (None, url.clone(), chain_id)
        }
        None => {
            let anvil = Anvil::start(AnvilOptions {
                port: args.anvil_port,
                chain_id: 31337,
                state_file: Some(absolute(&dir.join("anvil-state.json"))?),
                block_time: args.block_time,
                log_file: Some(dir.join("anvil.log")),
                keep_history: false,
            })
            .await
            .map_err(CliError::other)?;
            let (url, id) = (anvil.rpc_url(), anvil.chain_id());
            (Some(anvil), url, id)
        }
    };

    let deployment = ensure_contracts(&rpc_url, &dir.join("deployment.json")).await?;

    let pool = crate::db::connect(&database_url, 20)
        .await
        .with_context(|| format!("cannot connect to {database_url}"))?;
    crate::db::migrate(pool.pool())
        .await
        .context("migration failed")?;

    let master_key = state
        .master_key
        .get_or_insert_with(Keyring::generate_base64)
        .clone();
    let operator_token = state
        .operator_token
        .get_or_insert_with(|| crate::ids::random_base62(43))
        .clone();
    let (merchant_id, secret_key, publishable_key) =
        ensure_demo_merchant(&MerchantStore::new(pool.clone()), &mut state).await?;
    state.database_url = Some(database_url.clone());
    state.rpc_url = Some(rpc_url.clone());
    write_state(&state_path, &state)?;

    let config = Config {
        mode: Mode::Test,
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], args.port)),
            dev: true,
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: database_url.clone(),
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
            public_max_connections: 4,
        },
        security: SecurityConfig {
            master_key,
            previous_master_keys: Vec::new(),
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            public_rate_limit_per_second: 100,
            public_rate_limit_burst: 200,
            // scripts/schemathesis sends bad credentials on purpose, many a minute.
            failed_auth_per_minute: std::env::var("EPG_SECURITY_FAILED_AUTH_PER_MINUTE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(60),
            operator_token: Some(operator_token.clone()),
        },
        log: LogConfig::default(),
        webhooks: crate::config::WebhooksConfig::default(),
        payments: crate::config::PaymentsConfig::default(),
        // The devnet's anchor receives checkpoints from anvil's first
        // account, which deployed it and holds the anchorer role.
        settlement: crate::config::SettlementConfig {
            anchor_rpc_url: rpc_url.clone(),
            anchor_contract: deployment.anchor.to_string(),
            anchor_confirmations: 1,
            anchor_key: Some(dev_anchor_key(&deployment)),
            ..crate::config::SettlementConfig::default()
        },
        // The treasury is the deployer too: the node pays refunds and
        // payouts from it.
        wallet: crate::config::WalletConfig {
            key: Some(std::env::var("EPG_DEPLOYER_KEY").unwrap_or_else(|_| DEV_KEY_0.to_owned())),
            ..crate::config::WalletConfig::default()
        },
        // Bank transfers go to the demo accounts below: confirm one, import
        // a statement quoting its RF reference (`epg bank sample-statement`),
        // and it succeeds, as with a real bank.
        processors: crate::methods::ProcessorsConfig {
            bank_transfer: Some(crate::methods::Processor::Iso20022),
            ..crate::methods::ProcessorsConfig::default()
        },
        chains: vec![crate::chain::config::ChainConfig::devnet(
            &deployment,
            &rpc_url,
        )],
        bank: dev_bank(dir),
        // Auditors on this machine check bundles against the devnet.
        dashboard: crate::dashboard::DashboardConfig {
            verify_rpc_url: rpc_url.clone(),
            ..crate::dashboard::DashboardConfig::default()
        },
    };
    let dashboard_password = super::users::one_time_password();
    crate::dashboard::Dashboard::new(pool.clone(), &config.keyring()?, config.dashboard.clone())
        .ensure_demo_user(&merchant_id, DEMO_USER, &dashboard_password)
        .await
        .map_err(|e| CliError::Failed(format!("cannot create the demo dashboard user: {e}")))?;
    let app = Application::build_with_pool(config, pool).await?;
    let api_url = format!("http://{}", app.address());
    let checkout_url = demo_checkout(&app, &merchant_id).await?;
    print_banner(&Banner {
        api_url: &api_url,
        database_url: &database_url,
        rpc_url: &rpc_url,
        chain_id,
        deployment: &deployment,
        merchant_id: &merchant_id,
        secret_key: &secret_key,
        publishable_key: &publishable_key,
        operator_token: &operator_token,
        checkout_url: &checkout_url,
        dashboard_password: &dashboard_password,
        data_dir: dir,
    });

    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    let served = app.run(shutdown).await;

    if let Some(anvil) = anvil {
        anvil.stop().await;
    }
    if let Some(cluster) = cluster
        && let Err(e) = cluster.stop().await
    {
        eprintln!("warning: stopping PostgreSQL: {e}");
    }
    served?;
    println!(
        "epg dev stopped; state kept in {} (--reset to start clean)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The devnet's bank: a demo EUR account (IBAN) and a demo USD account
/// (ABA routing and account number), both collecting and paying out, with
/// their drop folders in the data folder.
fn dev_bank(dir: &Path) -> crate::bank::BankConfig {
    let account = |id: &str, currency: &str| crate::bank::config::AccountConfig {
        id: id.into(),
        holder: "E-PG Dev Gateway".into(),
        currency: currency.into(),
        iban: None,
        bic: None,
        routing_number: None,
        account_number: None,
        collection: true,
        payout: true,
    };
    let eur = crate::bank::config::AccountConfig {
        iban: Some("DE89370400440532013000".into()),
        bic: Some("COBADEFFXXX".into()),
        ..account("dev_eur", "eur")
    };
    let usd = crate::bank::config::AccountConfig {
        routing_number: Some("021000021".into()),
        account_number: Some("000123456789".into()),
        ..account("dev_usd", "usd")
    };
    crate::bank::BankConfig {
        inbox_dir: dir.join("bank/inbox").display().to_string(),
        outbox_dir: dir.join("bank/outbox").display().to_string(),
        poll_interval_secs: 2,
        accounts: vec![eur, usd],
    }
}

/// Reuses the contracts of a previous run when the chain still has them,
/// or deploys all four (with anvil's first funded account, or
/// `EPG_DEPLOYER_KEY` on another chain) and records them.
async fn ensure_contracts(rpc_url: &str, path: &Path) -> Result<Deployment, CliError> {
    let fail = CliError::other;
    if let Some(existing) = deploy::read(path).map_err(fail)?
        && deploy::is_live(rpc_url, &existing).await.map_err(fail)?
    {
        if existing.contracts_version < deploy::CONTRACTS_VERSION {
            // Its payments, log and anchors belong to the old contracts:
            // starting over is the devnet's migration.
            return Err(CliError::Failed(format!(
                "this devnet runs version {} of E-PG's contracts, this epg needs version {}; \
                 run `epg dev --reset` to start a new devnet",
                existing.contracts_version,
                deploy::CONTRACTS_VERSION
            )));
        }
        return Ok(existing);
    }
    let signer = match std::env::var("EPG_DEPLOYER_KEY") {
        Ok(_) => deploy::signer_from_env(None).map_err(fail)?,
        Err(_) => DEV_KEY_0
            .parse()
            .map_err(|_| CliError::Failed("bad built-in devnet key".into()))?,
    };
    let deployer = signer.address();
    // The deployer is the treasury (the node's hot wallet refunds and pays
    // out from it) and the admin. On anvil a second account anchors, so the
    // treasury only ever pays gas the ledger books; with EPG_DEPLOYER_KEY
    // on another chain the deployer anchors too.
    let anchorer = match std::env::var("EPG_DEPLOYER_KEY") {
        Ok(_) => deployer,
        Err(_) => dev_signer(DEV_ANCHOR_KEY)?.address(),
    };
    // Real delays, as on a live chain: `cast rpc evm_increaseTime` moves a
    // devnet past them.
    let plan = DeployPlan {
        treasury: deployer,
        admin: deployer,
        anchorer,
        dev_helpers: true,
        ..DeployPlan::default()
    };
    let mut deployment = deploy::deploy(rpc_url, signer, &plan).await.map_err(fail)?;
    // Watch (and reconcile) from the first block after the deployment and
    // the test-token mints: nothing can be paid before, and the treasury's
    // balance then only moves with what the node books.
    deployment.start_block = deploy::head(rpc_url).await.map_err(fail)? + 1;
    deploy::write(path, &deployment).map_err(fail)?;
    Ok(deployment)
}

fn dev_signer(key: &str) -> Result<alloy::signers::local::PrivateKeySigner, CliError> {
    key.parse()
        .map_err(|_| CliError::Failed("bad built-in devnet key".into()))
}

/// The key holding the anchorer role of `deployment`: the deployer's when
/// `EPG_DEPLOYER_KEY` is set, else the devnet anchorer (or account #0 for a
/// devnet deployed before the anchorer had its own account).
fn dev_anchor_key(deployment: &Deployment) -> String {
    if let Ok(key) = std::env::var("EPG_DEPLOYER_KEY") {
        return key;
    }
    match dev_signer(DEV_ANCHOR_KEY) {
        Ok(signer) if signer.address() == deployment.anchorer => DEV_ANCHOR_KEY.to_owned(),
        _ => DEV_KEY_0.to_owned(),
    }
}

/// Reuses the demo merchant of a previous run, or creates it with keys.
async fn ensure_demo_merchant(
    store: &MerchantStore,
    state: &mut DevState,
) -> Result<(MerchantId, String, String), CliError> {
    if let (Some(id), Some(sk), Some(pk)) = (
        &state.merchant_id,
        &state.secret_key,
        &state.publishable_key,
    ) {
        match store.get(id).await {
            Ok(_) => return Ok((id.clone(), sk.clone(), pk.clone())),
            Err(MerchantError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let merchant = store.create("Demo Merchant").await?;
    let (_, sk) = store
        .create_key(&merchant.id, KeyKind::Secret, Mode::Test)
        .await?;
    let (_, pk) = store
        .create_key(&merchant.id, KeyKind::Publishable, Mode::Test)
        .await?;
    state.merchant_id = Some(merchant.id.clone());
    state.secret_key = Some(sk.secret.clone());
    state.publishable_key = Some(pk.secret.clone());
    Ok((merchant.id, sk.secret, pk.secret))
}

async fn create_database(admin_url: &str, name: &str) -> Result<(), CliError> {
    let pool = crate::db::connect(admin_url, 1)
        .await
        .with_context(|| format!("cannot connect to {admin_url}"))?;
    crate::db::create_database_if_missing(&pool, name)
        .await
        .with_context(|| format!("cannot create database {name}"))?;
    pool.close().await;
    Ok(())
}

async fn chain_id(rpc_url: &str) -> Result<u64, CliError> {
    let response: serde_json::Value = reqwest::Client::new()
        .post(rpc_url)
        .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("--rpc-url {rpc_url}"))?
        .json()
        .await
        .with_context(|| format!("--rpc-url {rpc_url}"))?;
    response["result"]
        .as_str()
        .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| {
            CliError::Failed(format!("--rpc-url {rpc_url}: eth_chainId gave {response}"))
        })
}

pub(super) fn read_state(path: &Path) -> Result<DevState, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Failed(format!(
                "{} is damaged ({e}); run `epg dev --reset`",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DevState::default()),
        Err(e) => Err(fail(path, e)),
    }
}

fn write_state(path: &Path, state: &DevState) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let json = serde_json::to_vec_pretty(state).map_err(CliError::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(path, e))?;
    file.write_all(&json).map_err(|e| fail(path, e))
}

fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| fail(path, e))
}

fn fail(path: &Path, e: std::io::Error) -> CliError {
    CliError::Step {
        context: path.display().to_string(),
        source: Box::new(e),
    }
}

struct Banner<'a> {
    api_url: &'a str,
    database_url: &'a str,
    rpc_url: &'a str,
    chain_id: u64,
    deployment: &'a Deployment,
    merchant_id: &'a MerchantId,
    secret_key: &'a str,
    publishable_key: &'a str,
    operator_token: &'a str,
    checkout_url: &'a str,
    dashboard_password: &'a str,
    data_dir: &'a Path,
}

/// The demo dashboard user's email.
const DEMO_USER: &str = "demo@epg.dev";

/// A fresh demo payment of $12.34, payable with every method this node
/// offers: its hosted checkout is the banner's one-click tour.
async fn demo_checkout(app: &Application, merchant: &MerchantId) -> Result<String, CliError> {
    let state = app.state();
    let enabled = state
        .merchants
        .get(merchant)
        .await
        .map_err(|e| CliError::Failed(format!("demo payment: {e}")))?
        .payment_method_types;
    let payment = state
        .payments
        .create(
            merchant,
            &enabled,
            crate::payments::service::NewPayment {
                amount: 1234,
                currency: "usd".into(),
                payment_method_types: None,
                capture_method: crate::payments::CaptureMethod::Automatic,
                description: Some("E-PG demo order".into()),
                metadata: crate::metadata::Metadata::default(),
                customer: None,
                shipping: None,
                return_url: None,
            },
            None,
        )
        .await
        .map_err(|e| CliError::Failed(format!("demo payment: {e}")))?;
    Ok(state.payments.checkout_url(&payment))
}

fn print_banner(b: &Banner<'_>) {
    println!(
        r#"
  E-PG dev node is running (test mode)

  API              {api}
  API reference    {api}/docs
  Database         {db}
  Chain RPC        {rpc}  (chain id {chain})
  PaymentRouter    {router}
  SettlementAnchor {anchor}
  USDC (dev)       {usdc}
  ETH/USD feed     {feed}
  Treasury         {treasury}

  Demo merchant    {merchant}
  Secret key       {sk}
  Publishable key  {pk}
  Operator token   {operator}  (/metrics, detailed /readyz, reconciliation desk)
  Bank drop folder {dir}/bank/inbox  (camt.053/054, pain.002; pain.001 in bank/outbox)

  Dashboard        {api}/dashboard
  Dashboard user   {demo_user}
  Password         {dashboard_password}  (one-time, new at every start: set up two-factor sign-in, then choose your own)
  Proof verifier   {api}/verify

  Try it:
    curl -s {api}/v1/account -H "Authorization: Bearer {sk}"
  Hosted checkout of a fresh demo payment ($12.34; card 4242 4242 4242 4242, or crypto):
    {checkout}
  (crypto counts after 3 confirmations; without --block-time, blocks come only with
   transactions: cast rpc anvil_mine 3 --rpc-url {rpc})

  State: {dir}   Stop: Ctrl-C
"#,
        api = b.api_url,
        db = b.database_url,
        rpc = b.rpc_url,
        chain = b.chain_id,
        router = b.deployment.router,
        anchor = b.deployment.anchor,
        usdc = opt(b.deployment.stablecoin),
        feed = opt(b.deployment.price_feed),
        treasury = b.deployment.treasury,
        merchant = b.merchant_id,
        sk = b.secret_key,
        pk = b.publishable_key,
        operator = b.operator_token,
        checkout = b.checkout_url,
        demo_user = DEMO_USER,
        dashboard_password = b.dashboard_password,
        dir = b.data_dir.display(),
    );
}

fn opt(address: Option<alloy::primitives::Address>) -> String {
    address.map_or_else(|| "-".to_owned(), |a| a.to_string())
}
