//! The fault suite (issue 22): sustained mixed load on several `epg serve`
//! nodes sharing one PostgreSQL, while faults are injected; afterwards
//! nothing acknowledged is lost, nothing exists twice, every event reached
//! the webhook receiver, and the books and the chain agree.
//!
//! `scripts/faults` runs it. Modes, by `EPG_FAULTS`:
//! - `quick` (the default, and what `scripts/test` runs): two nodes on a
//!   private PostgreSQL, node kills, a PostgreSQL restart, the webhook
//!   receiver down, a reorg deeper than the confirmation depth and the RPC
//!   cut for a few seconds;
//! - `full`: three nodes on the pg_auto_failover formation that
//!   `scripts/faults` starts (`EPG_FAULTS_DATABASE_URL`, a multi-host URL,
//!   and `EPG_FAULTS_MONITOR`, the monitor's data folder): ten kills, three
//!   primary failovers, a restart of the primary, the receiver down for a
//!   minute, anvil stopped and started again from its state, a reorg below
//!   and one above the confirmation depth, and the RPC cut for 30 s.
//!
//! The nodes reach anvil through a TCP proxy (the RPC cut drops every
//! connection through it); the suite's customers reach anvil directly.
//!
//! The faults are drawn with a seed printed at the start
//! (`EPG_FAULTS_SEED` replays one). No timing is asserted: the time from
//! each fault to the next successful payment is measured and printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod client;
mod load;
mod nodes;
mod report;
mod storage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use epg::merchants::{KeyKind, MerchantStore};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::{common, webhooks_support};
use client::Client;
use nodes::Nodes;
use storage::Storage;

/// A fault and when it was injected.
#[derive(Debug, Clone)]
pub struct Injected {
    pub what: String,
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillNode,
    RestartDatabase,
    Failover,
    ReceiverDown,
    /// Anvil stopped (it writes its state) and started again from it.
    AnvilRestart,
    /// An `anvil_reorg` of fewer blocks than the confirmation depth.
    ReorgBelow,
    /// An `anvil_reorg` deeper than the confirmation depth.
    ReorgAbove,
    /// Every connection from the nodes to the RPC endpoint dropped.
    RpcCut,
}

struct Plan {
    nodes: usize,
    workers: usize,
    /// Between two faults (drawn from 60 to 100 % of it).
    pause: Duration,
    /// Load after the last fault, before the checks.
    tail: Duration,
    faults: Vec<Fault>,
    receiver_down: Duration,
    rpc_cut: Duration,
    /// The chain's confirmation depth: the reorgs are one block short of
    /// it and two blocks past it.
    confirmations: u64,
}

fn plan(full: bool, ha: bool) -> Plan {
    if full {
        let mut faults = vec![Fault::KillNode; 10];
        if ha {
            faults.extend([Fault::Failover; 3]);
        }
        faults.extend([
            Fault::RestartDatabase,
            Fault::ReceiverDown,
            Fault::AnvilRestart,
            Fault::ReorgBelow,
            Fault::ReorgAbove,
            Fault::RpcCut,
        ]);
        Plan {
            nodes: 3,
            workers: 6,
            pause: Duration::from_secs(12),
            tail: Duration::from_secs(20),
            faults,
            receiver_down: Duration::from_secs(60),
            rpc_cut: Duration::from_secs(30),
            confirmations: 3,
        }
    } else {
        Plan {
            nodes: 2,
            workers: 4,
            pause: Duration::from_secs(7),
            tail: Duration::from_secs(5),
            faults: vec![
                Fault::KillNode,
                Fault::RestartDatabase,
                Fault::KillNode,
                Fault::ReceiverDown,
                Fault::ReorgAbove,
                Fault::RpcCut,
            ],
            receiver_down: Duration::from_secs(8),
            rpc_cut: Duration::from_secs(5),
            confirmations: 3,
        }
    }
}

impl Fault {
    const ALL: [(&'static str, Fault); 8] = [
        ("kill", Fault::KillNode),
        ("restart-db", Fault::RestartDatabase),
        ("failover", Fault::Failover),
        ("receiver-down", Fault::ReceiverDown),
        ("anvil-restart", Fault::AnvilRestart),
        ("reorg-below", Fault::ReorgBelow),
        ("reorg-above", Fault::ReorgAbove),
        ("rpc-cut", Fault::RpcCut),
    ];
}

/// `EPG_FAULTS_ONLY` (comma-separated names of [`Fault::ALL`], repeats
/// allowed): replaces the plan's faults, to replay one kind of failure
/// without the whole run.
fn only_faults() -> Option<Vec<Fault>> {
    let only = std::env::var("EPG_FAULTS_ONLY").ok()?;
    Some(
        only.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|name| {
                Fault::ALL
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, f)| *f)
                    .unwrap_or_else(|| panic!("EPG_FAULTS_ONLY: unknown fault {name}"))
            })
            .collect(),
    )
}

#[tokio::test]
async fn under_faults_nothing_acknowledged_is_lost_or_duplicated() {
    let full = std::env::var("EPG_FAULTS").is_ok_and(|m| m == "full");
    let seed: u64 = std::env::var("EPG_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::Builder::new()
        .prefix("faults-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();

    let storage = Storage::start(dir.path()).await;
    let mut plan = plan(full, storage.is_ha());
    if let Some(only) = only_faults() {
        plan.faults = only;
    }
    if let Some(secs) = std::env::var("EPG_FAULTS_RPC_CUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        plan.rpc_cut = Duration::from_secs(secs);
    }
    let mut faults = plan.faults.clone();
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.gen_range(0..=i));
    }
    println!(
        "faults: {} mode, {} nodes on {}, faults {faults:?}, EPG_FAULTS_SEED={seed}",
        if full { "full" } else { "quick" },
        plan.nodes,
        storage.describe(),
    );
    let pool = epg::db::connect(&storage.url(), 4).await.unwrap();
    epg::db::migrate(pool.pool()).await.unwrap();

    // The chain: anvil with its state in a file, the nodes reaching it
    // through a proxy that can cut them off.
    // Anvil as a full node, not an archive one: after its restart it has
    // no state before its head, and `epg reconcile chain` starts from the
    // checkpoint of its last clean run. `EPG_FAULTS_ANVIL_ARCHIVE=1` keeps
    // every state instead (see `AnvilOptions::keep_history` for its cost).
    let archive = std::env::var("EPG_FAULTS_ANVIL_ARCHIVE").is_ok_and(|v| v == "1");
    let devnet = chain::Chain::start(dir.path(), archive).await;
    let rpc = devnet.rpc_url();
    let (deployment, mut chain) =
        common::deploy_with_own_treasury(devnet.anvil().await.as_ref().unwrap()).await;
    chain.confirmations = plan.confirmations;
    chain.fee_bump_after_secs = 3600;
    chain.http_url = devnet.node_http_url();
    chain.ws_url = Some(devnet.node_ws_url());
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let wallet = PrivateKeySigner::random();
    let _: Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (wallet.address(), U256::from(10u128.pow(19))),
        )
        .await
        .unwrap();

    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Fault Suite").await.unwrap();
    // Thousands of payments with one test card from one address are what
    // the velocity checks exist to block; here they are the load.
    sqlx::query("UPDATE merchants SET risk_threshold = 100 WHERE id = $1")
        .bind(merchant.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let (_, sk) = merchants
        .create_key(&merchant.id, KeyKind::Secret, epg::config::Mode::Test)
        .await
        .unwrap();

    let common_toml = format!(
        "[security]\nmaster_key = \"{}\"\nrate_limit_per_second = 5000\nrate_limit_burst = 5000\n\
         [payments]\nexpiry_interval_secs = 1\n\
         [webhooks]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\npoll_interval_ms = 200\n\
         timeout_secs = 5\nlease_secs = 10\n\
         [processors]\nbank_transfer = \"sandbox\"\n[log]\nlevel = \"warn\"\n{}",
        epg::crypto::Keyring::generate_base64(),
        toml::to_string(&json!({ "chains": [chain.clone()] })).unwrap()
    );
    let nodes = Arc::new(Nodes::start(
        dir.path(),
        plan.nodes,
        &storage.url(),
        &common_toml,
        &format!("{:#x}", wallet.to_bytes()),
    ));
    let http = reqwest::Client::new();
    for i in 0..nodes.len() {
        nodes.ready(i, &http).await;
    }
    let client = Arc::new(Client::new(nodes.urls(), &sk.secret));
    let receiver = webhooks_support::Receiver::start().await;
    client
        .post(
            "/v1/webhook_endpoints",
            "endpoint",
            &json!({ "url": receiver.url, "enabled_events": ["*"] }),
        )
        .await
        .unwrap();

    // Load and faults, side by side.
    let started = Instant::now();
    let load = load::Load::new(client.clone(), &rpc, &deployment, devnet.lock.clone());
    let workers: Vec<_> = (0..plan.workers)
        .map(|w| {
            let load = load.clone();
            tokio::spawn(async move { load.run(w, seed).await })
        })
        .collect();
    let mut injected: Vec<Injected> = Vec::new();
    for fault in &faults {
        tokio::time::sleep(plan.pause.mul_f64(rng.gen_range(0.6..1.0))).await;
        let at = Instant::now();
        let what = match fault {
            Fault::KillNode => {
                let i = rng.gen_range(0..nodes.len());
                nodes.kill(i);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2000))).await;
                nodes.revive(i);
                format!("kill -9 node {i}")
            }
            Fault::RestartDatabase => {
                storage.restart().await;
                "PostgreSQL restart".to_owned()
            }
            Fault::Failover => {
                storage.failover().await;
                "PostgreSQL primary failover".to_owned()
            }
            Fault::ReceiverDown => {
                receiver.fail_all(true);
                tokio::time::sleep(plan.receiver_down).await;
                receiver.fail_all(false);
                format!("webhook receiver down {:?}", plan.receiver_down)
            }
            Fault::AnvilRestart => {
                let reconciled = report::reconcile_under_load(&pool, &chain).await;
                println!("faults: epg reconcile chain before anvil's restart: {reconciled}");
                devnet
                    .restart(Duration::from_millis(rng.gen_range(500..3000)))
                    .await;
                "anvil stopped and restarted from its state".to_owned()
            }
            Fault::ReorgBelow => {
                let depth = plan.confirmations - 1;
                let back = devnet.reorg(depth, chain.start_block).await;
                format!("anvil_reorg of {depth} blocks (below the depth), {back} txs sent again")
            }
            Fault::ReorgAbove => {
                let depth = plan.confirmations + 2;
                let back = devnet.reorg(depth, chain.start_block).await;
                format!("anvil_reorg of {depth} blocks (above the depth), {back} txs sent again")
            }
            Fault::RpcCut => {
                devnet.proxy.set_cut(true);
                tokio::time::sleep(plan.rpc_cut).await;
                devnet.proxy.set_cut(false);
                format!("RPC cut for {:?}", plan.rpc_cut)
            }
        };
        println!(
            "faults: {:>6.1}s {what}",
            at.duration_since(started).as_secs_f64()
        );
        injected.push(Injected { what, at });
    }
    tokio::time::sleep(plan.tail).await;
    load.stop();
    for worker in workers {
        worker.await.unwrap();
    }
    let operations = load.operations();
    println!(
        "faults: load done after {:.0}s: {operations} operations",
        started.elapsed().as_secs_f64()
    );

    // Let the nodes finish what they owe (deliveries, confirmations).
    for i in 0..nodes.len() {
        nodes.revive(i);
        nodes.ready(i, &http).await;
    }
    load.settle_chain(&provider).await;
    let table = report::check(&report::Inputs {
        pool: &pool,
        merchant: merchant.id.as_str(),
        client: &client,
        receiver: &receiver,
        injected: &injected,
        crypto_paid: &load.crypto_paid(),
        chain: &chain,
    })
    .await;
    nodes.kill_all();
    println!("{table}");
    if !table.clean() {
        // Keep the nodes' and anvil's logs for whoever reads the failure.
        println!("faults: logs kept in {}", dir.keep().display());
    }
    assert!(
        table.clean(),
        "the fault suite found problems (seed {seed})"
    );
    pool.close().await;
    devnet.stop().await;
    storage.stop().await;
}
