//! `scripts/bench chain`: how fast the chain watcher turns blocks into
//! confirmations, and how fast it catches up on a backlog.
//!
//! Not a test. It starts a local anvil with E-PG's contracts, makes scratch
//! databases on the PostgreSQL of `EPG_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; dropped afterwards), and
//! runs a watcher in this process with a sink that notes the time of each
//! call (one monotonic clock for the chain side and the sink). Prints:
//!
//! - **confirmation latency**: from the `anvil_mine` call that creates the
//!   block completing the required confirmations to the sink's `confirmed`
//!   call for the payment (median, p99, max), with new heads by WebSocket
//!   subscription and by polling;
//! - **catch-up rate**: a backlog of payments (default 10,000, mined with
//!   automine off, many per block) processed by a watcher started after
//!   them, from its start to the last `confirmed` call.
//!
//! Options: `--payments N` (backlog size), `--samples N` (latency samples),
//! `--quick` (2,000 payments, 40 samples, no polling run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use epg::chain::config::ChainConfig;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::chain::watcher::{ChainStatus, SinkError, Transfer, TransferSink, Watcher};
use epg::db::Db;
use epg::telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use rand::Rng;
use sqlx::PgConnection;
use support::devnet::Chain;
use support::{Scratches, option, per_second, percentile};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Anvil's default accounts #1–#3 (public devnet keys).
const PAYER_KEYS: [&str; 3] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];
const TREASURY: Address = Address::repeat_byte(0x7e);
const CONFIRMATIONS: u64 = 3;

/// Notes when each call happens.
struct BenchSink {
    confirmed_tx: mpsc::UnboundedSender<(B256, Instant)>,
    detected: AtomicU64,
    confirmed: AtomicU64,
    last_detected: Mutex<Option<Instant>>,
}

impl TransferSink for BenchSink {
    fn detected<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        self.detected.fetch_add(1, Ordering::Relaxed);
        *self.last_detected.lock().unwrap() = Some(Instant::now());
        Box::pin(async { Ok(()) })
    }

    fn confirmed<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let now = Instant::now();
        self.confirmed.fetch_add(1, Ordering::Relaxed);
        let _ = self.confirmed_tx.send((transfer.reference, now));
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

fn reference(n: u64) -> B256 {
    let mut bytes = [0u8; 32];
    bytes[..9].copy_from_slice(b"epg-bench");
    bytes[24..].copy_from_slice(&n.to_be_bytes());
    B256::from(bytes)
}

fn watcher(chain: ChainConfig, pool: &Db, sink: Arc<BenchSink>) -> Watcher {
    Watcher::new(
        chain.clone(),
        pool.clone(),
        sink,
        Arc::new(Metrics::default()),
        Arc::new(ChainStatus::new([chain.chain_id])),
    )
    .unwrap()
}

fn sink() -> (Arc<BenchSink>, mpsc::UnboundedReceiver<(B256, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(BenchSink {
            confirmed_tx: tx,
            detected: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            last_detected: Mutex::new(None),
        }),
        rx,
    )
}

/// Latency samples with new heads by subscription or by polling.
async fn latency(
    chain: &Chain,
    pool: &Db,
    samples: u64,
    ws: bool,
    poll_ms: u64,
    offset: u64,
) -> Vec<Duration> {
    let mut config = chain.config(CONFIRMATIONS);
    config.poll_interval_ms = poll_ms;
    if !ws {
        config.ws_url = None;
    }
    config.start_block = chain.head().await;
    let (sink, mut confirmed) = sink();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watcher(config, pool, sink).run(shutdown.clone()));
    let payer: PrivateKeySigner = PAYER_KEYS[0].parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(payer))
        .connect_http(chain.anvil.rpc_url().parse().unwrap());
    let router = PaymentRouter::new(chain.deployment.router, &provider);
    let usdc = chain.deployment.stablecoin.unwrap();
    // Let the watcher reach the head first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut out = Vec::new();
    for i in 0..samples {
        let r = reference(offset + i);
        router
            .pay(usdc, U256::from(1_000 + i), r)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        // The payment's block is confirmation 1; mine up to the last but one.
        for _ in 1..CONFIRMATIONS - 1 {
            chain.mine(1).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Polling: land at a random point of the poll cycle, not in phase
        // with it.
        let jitter = if ws {
            20
        } else {
            rand::thread_rng().gen_range(20..20 + poll_ms)
        };
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        let t0 = Instant::now();
        chain.mine(1).await;
        loop {
            let (got, at) = tokio::time::timeout(Duration::from_secs(30), confirmed.recv())
                .await
                .expect("confirmation within 30 s")
                .unwrap();
            if got == r {
                out.push(at.saturating_duration_since(t0));
                break;
            }
        }
    }
    shutdown.cancel();
    task.await.unwrap();
    out
}

/// A backlog of `payments` mined with automine off; returns the first
/// block of the backlog and how many blocks it took.
async fn backlog(chain: &Chain, payments: u64) -> (u64, u64) {
    let chain_id = chain.deployment.chain_id;
    let router = chain.deployment.router;
    let usdc = chain.deployment.stablecoin.unwrap();
    chain.automine(false).await;
    let first = chain.head().await + 1;
    let per_payer = payments.div_ceil(u64::try_from(PAYER_KEYS.len()).unwrap());
    let mut raw: Vec<Bytes> = Vec::new();
    let mut n = 0u64;
    for key in PAYER_KEYS {
        let signer: PrivateKeySigner = key.parse().unwrap();
        let from = signer.address();
        let wallet = EthereumWallet::from(signer);
        let mut nonce = chain
            .provider
            .get_transaction_count(from)
            .pending()
            .await
            .unwrap();
        for _ in 0..per_payer {
            if n == payments {
                break;
            }
            let r = reference(1_000_000 + n);
            // One in ten pays in ETH.
            let (input, value) = if n % 10 == 9 {
                (
                    PaymentRouter::payNativeCall { r#ref: r }.abi_encode(),
                    U256::from(1_000_000_000u64),
                )
            } else {
                (
                    PaymentRouter::payCall {
                        token: usdc,
                        amount: U256::from(1_000 + n),
                        r#ref: r,
                    }
                    .abi_encode(),
                    U256::ZERO,
                )
            };
            let tx = TransactionRequest::default()
                .with_from(from)
                .with_to(router)
                .with_input(input)
                .with_value(value)
                .with_nonce(nonce)
                .with_chain_id(chain_id)
                .with_gas_limit(100_000)
                .with_max_fee_per_gas(1_000_000_000_000)
                .with_max_priority_fee_per_gas(1_000_000_000);
            let envelope = tx.build(&wallet).await.unwrap();
            raw.push(Bytes::from(envelope.encoded_2718()));
            nonce += 1;
            n += 1;
        }
    }
    stream::iter(raw)
        .for_each_concurrent(32, |tx| {
            let provider = chain.provider.clone();
            async move {
                let _pending = provider.send_raw_transaction(&tx).await.unwrap();
            }
        })
        .await;
    loop {
        chain.mine(1).await;
        let status: serde_json::Value = chain
            .provider
            .raw_request("txpool_status".into(), serde_json::json!([]))
            .await
            .unwrap();
        let pending = status["pending"]
            .as_str()
            .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .or_else(|| status["pending"].as_u64())
            .unwrap_or(0);
        if pending == 0 {
            break;
        }
    }
    let last = chain.head().await;
    chain.automine(true).await;
    chain.mine(CONFIRMATIONS).await;
    (first, last - first + 1)
}

struct CatchUp {
    blocks: u64,
    range: u64,
    detected: Duration,
    confirmed: Duration,
}

async fn catch_up(
    chain: &Chain,
    pool: &Db,
    first: u64,
    blocks: u64,
    payments: u64,
    range: u64,
) -> CatchUp {
    let mut config = chain.config(CONFIRMATIONS);
    config.ws_url = None;
    config.start_block = first;
    config.max_block_range = range;
    let (sink, _confirmed) = sink();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(watcher(config, pool, sink.clone()).run(shutdown.clone()));
    while sink.confirmed.load(Ordering::Relaxed) < payments {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "catch-up within 10 min"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let confirmed = started.elapsed();
    let detected = sink
        .last_detected
        .lock()
        .unwrap()
        .map_or(confirmed, |t| t.saturating_duration_since(started));
    assert_eq!(sink.detected.load(Ordering::Relaxed), payments);
    shutdown.cancel();
    task.await.unwrap();
    CatchUp {
        blocks,
        range,
        detected,
        confirmed,
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", support::ms(d))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let payments = option(&args, "--payments").unwrap_or(if quick { 2_000 } else { 10_000 });
    let samples = option(&args, "--samples").unwrap_or(if quick { 40 } else { 200 });
    let mut scratch = Scratches::new("epg_bench_chain");

    let chain = Chain::start(TREASURY).await;
    for key in PAYER_KEYS {
        let signer: PrivateKeySigner = key.parse().unwrap();
        let p = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(chain.anvil.rpc_url().parse().unwrap());
        DevStablecoin::new(chain.deployment.stablecoin.unwrap(), &p)
            .approve(chain.deployment.router, U256::MAX)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    eprintln!("latency: {samples} payments, new heads by subscription …");
    let pool = scratch.database("ws").await;
    let mut runs: Vec<(String, Vec<Duration>)> = vec![(
        "subscription (ws)".into(),
        latency(&chain, &pool, samples, true, 1000, 0).await,
    )];
    if !quick {
        for poll in [250u64, 1000] {
            let n = (samples / 5).max(10);
            eprintln!("latency: {n} payments, polling every {poll} ms …");
            let pool = scratch.database(&format!("poll{poll}")).await;
            runs.push((
                format!("polling every {poll} ms"),
                latency(&chain, &pool, n, false, poll, 10_000 * poll).await,
            ));
        }
    }

    eprintln!("catch-up: mining a backlog of {payments} payments …");
    let (first, blocks) = backlog(&chain, payments).await;
    let mut catch_ups = Vec::new();
    for range in [1000u64, 1] {
        eprintln!("catch-up: max_block_range {range} …");
        let pool = scratch.database(&format!("catchup{range}")).await;
        catch_ups.push(catch_up(&chain, &pool, first, blocks, payments, range).await);
    }
    scratch.drop_all().await;

    println!();
    println!(
        "Chain watcher — confirmation latency: the block completing {CONFIRMATIONS} confirmations → sink.confirmed"
    );
    println!(
        "{:<26} {:>8} {:>11} {:>11} {:>11}",
        "new heads by", "samples", "median", "p99", "max"
    );
    for (label, mut xs) in runs {
        xs.sort();
        println!(
            "{:<26} {:>8} {:>11} {:>11} {:>11}",
            label,
            xs.len(),
            ms(percentile(&xs, 50)),
            ms(percentile(&xs, 99)),
            ms(xs.last().copied().unwrap_or_default())
        );
    }
    println!();
    println!("Chain watcher — catch-up over a backlog (watcher started after it, no-op sink)");
    println!(
        "{:>9} {:>7} {:>10} {:>14} {:>14} {:>15}",
        "payments", "blocks", "range", "all detected", "all confirmed", "transfers/s"
    );
    for c in &catch_ups {
        println!(
            "{:>9} {:>7} {:>10} {:>14} {:>14} {:>15}",
            payments,
            c.blocks,
            c.range,
            ms(c.detected),
            ms(c.confirmed),
            per_second(payments, c.confirmed)
        );
    }
    println!();
    println!(
        "anvil on loopback, PostgreSQL on {}; ~{} payments per block; range = max_block_range (blocks per eth_getLogs and per transaction).",
        support::admin_url().rsplit('@').next().unwrap_or("?"),
        payments.div_ceil(blocks.max(1))
    );
}
