//! `scripts/bench sends`: how fast the hot wallet pays refunds and payouts.
//!
//! Not a test. It starts a local anvil (one block per transaction) with
//! E-PG's contracts and a fresh treasury key, makes a scratch database on
//! the PostgreSQL of `EPG_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; dropped afterwards),
//! queues N dev-USDC sends as refunds do, and runs the chain's [`Sender`]
//! in this process (confirmations 1, polling every 10 ms) until every send
//! is confirmed. Prints sends per second and the time from signing to
//! confirmation (median, p99), next to the physical limit measured in the
//! same run: the same number of ERC-20 transfers from another funded
//! account, signed in advance and pushed to the same anvil as fast as it
//! takes them, until the last one is mined.
//!
//! Options: `--sends N` (default 500), `--quick` (100).

// Figures are printed as rates and milliseconds: floating point is fine here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic,
    clippy::cast_precision_loss
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use epg::chain::config::ChainConfig;
use epg::chain::contracts::DevStablecoin;
use epg::chain::deploy::{self, DeployPlan};
use epg::chain::sender::{ChainSend, NewSend, Purpose, SendOutcome, SendSink, Sender};
use epg::chain::watcher::SinkError;
use epg::db::Db;
use epg::devnet::anvil::{Anvil, AnvilOptions, DEV_KEY_0};
use epg::ledger::{AccountRef, Entry, EntryKind};
use epg::money::{Amount, AssetRegistry};
use epg::telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use support::{Scratch, ms, option, per_second, percentile};
use tokio_util::sync::CancellationToken;

/// Anvil's default account #2 (public devnet key): the raw-transfer baseline.
const BASELINE_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// Counts finished sends.
struct Counter(AtomicU64);

impl SendSink for Counter {
    fn finished<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _send: &'a ChainSend,
        _outcome: SendOutcome,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sends = option(&args, "--sends").unwrap_or(if quick { 100 } else { 500 });

    let anvil = Anvil::start(AnvilOptions::default()).await.unwrap();
    let rpc = anvil.rpc_url();
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let wallet = PrivateKeySigner::random();
    let deployment = deploy::deploy(
        &rpc,
        deployer.clone(),
        &DeployPlan {
            treasury: wallet.address(),
            admin: deployer.address(),
            anchorer: deployer.address(),
            dev_helpers: true,
            ..DeployPlan::default()
        },
    )
    .await
    .unwrap();
    let usdc = deployment.stablecoin.unwrap();
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (wallet.address(), U256::from(10u128.pow(21))),
        )
        .await
        .unwrap();
    let owner = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(rpc.parse().unwrap());
    DevStablecoin::new(usdc, &owner)
        .mint(wallet.address(), U256::from(10u128.pow(15)))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    let scratch = Scratch::create(&format!("epg_bench_sends_{}", std::process::id()), 10).await;
    let pool = scratch.pool.clone();

    let mut chain = ChainConfig::devnet(&deployment, &rpc);
    chain.confirmations = 1;
    chain.poll_interval_ms = 10;
    chain.ws_url = None;
    let result = run(&pool, &chain, &wallet, sends).await;
    let baseline = raw_transfers(&rpc, usdc, sends).await;

    println!(
        "hot wallet on anvil (one block per transaction), {sends} dev-USDC sends, 1 confirmation"
    );
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| hot wallet: queued to all confirmed | {} sends/s ({:.2} s) |",
        per_second(sends, result.total),
        result.total.as_secs_f64()
    );
    println!(
        "| hot wallet: signed to confirmed, p50 / p99 | {} / {} ms |",
        ms(result.p50),
        ms(result.p99)
    );
    println!(
        "| raw ERC-20 transfers, pre-signed, to the same anvil | {} tx/s ({:.2} s) |",
        per_second(sends, baseline),
        baseline.as_secs_f64()
    );
    println!(
        "| hot wallet / raw | {:.2} |",
        baseline.as_secs_f64() / result.total.as_secs_f64()
    );

    drop(pool);
    scratch.drop().await;
    drop(anvil);
}

struct Run {
    total: Duration,
    p50: Duration,
    p99: Duration,
}

/// Queues `n` sends as refunds do (each with its ledger entry), runs the
/// sender until all are confirmed.
async fn run(pool: &Db, chain: &ChainConfig, wallet: &PrivateKeySigner, n: u64) -> Run {
    let registry = AssetRegistry::new();
    let mut conn = pool.acquire().await.unwrap();
    for asset in &chain.assets {
        registry
            .register_chain_asset(&mut conn, &asset.chain_asset(chain.chain_id))
            .await
            .unwrap();
    }
    drop(conn);
    let merchant = epg::merchants::MerchantStore::new(pool.clone())
        .create("Bench")
        .await
        .unwrap();
    let asset = chain
        .asset("usdc")
        .unwrap()
        .asset_code(chain.chain_id)
        .unwrap();
    let started = Instant::now();
    let mut queued = Vec::new();
    for i in 0..n {
        let mut tx = pool.begin().await.unwrap();
        let object = format!("re_bench{i:016}");
        let amount = Amount::new(1_000 + i128::from(i)).unwrap();
        epg::ledger::post(
            &mut tx,
            &Entry::new(format!("{object}:refund"), EntryKind::REFUND).transfer(
                AccountRef::suspense(),
                AccountRef::refunds_payable(),
                &asset,
                amount,
            ),
        )
        .await
        .unwrap();
        epg::chain::sender::queue(
            &mut tx,
            &NewSend {
                chain_id: chain.chain_id,
                purpose: Purpose::Refund,
                object_id: &object,
                merchant: &merchant.id,
                asset: &asset,
                to: Address::with_last_byte(u8::try_from(i % 200).unwrap() + 1),
                amount,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        queued.push(Instant::now());
    }
    let counter = Arc::new(Counter(AtomicU64::new(0)));
    let sender = Sender::new(
        chain.clone(),
        pool.clone(),
        wallet.clone(),
        counter.clone(),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sender.run(shutdown.clone()));
    while counter.0.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed();
    shutdown.cancel();
    let _ = task.await;
    // Signed to confirmed per send, from the database's own clock (all
    // sends were queued before the sender started, so queueing time would
    // only measure the queue's length).
    let mut latencies: Vec<Duration> = sqlx::query_scalar::<_, i64>(
        r#"SELECT (EXTRACT(EPOCH FROM s.updated_at - min(t.created_at)) * 1000000)::bigint
             FROM chain_sends s JOIN chain_send_txs t ON t.send_id = s.id
            GROUP BY s.id, s.updated_at"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0)))
    .collect();
    latencies.sort();
    let statuses: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain_sends WHERE status = 'confirmed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(u64::try_from(statuses).unwrap(), n);
    Run {
        total,
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
    }
}

/// `n` ERC-20 transfers signed in advance, pushed to anvil; the time until
/// the last is mined.
async fn raw_transfers(rpc: &str, usdc: Address, n: u64) -> Duration {
    let signer: PrivateKeySigner = BASELINE_KEY.parse().unwrap();
    let from = signer.address();
    let wallet = EthereumWallet::from(signer);
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let chain_id = provider.get_chain_id().await.unwrap();
    let mut nonce = provider
        .get_transaction_count(from)
        .pending()
        .await
        .unwrap();
    let mut raw = Vec::new();
    for i in 0..n {
        let input = DevStablecoin::transferCall {
            to: Address::with_last_byte(u8::try_from(i % 200).unwrap() + 1),
            value: U256::from(1_000 + i),
        }
        .abi_encode();
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_to(usdc)
            .with_input(input)
            .with_nonce(nonce)
            .with_chain_id(chain_id)
            .with_gas_limit(100_000)
            .with_max_fee_per_gas(100_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000);
        raw.push(tx.build(&wallet).await.unwrap().encoded_2718());
        nonce += 1;
    }
    let started = Instant::now();
    let mut last = None;
    for tx in &raw {
        last = Some(*provider.send_raw_transaction(tx).await.unwrap().tx_hash());
    }
    let last = last.unwrap();
    while provider
        .get_transaction_receipt(last)
        .await
        .unwrap()
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}
