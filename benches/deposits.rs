//! `scripts/bench deposits`, detection part (the gas part is
//! `scripts/bench.d/deposits.sh`): how fast and at what cost the chain
//! watcher finds payments into deposit addresses.
//!
//! Not a test. It starts a local anvil with E-PG's contracts, makes scratch
//! databases on the PostgreSQL of `EPG_TEST_DATABASE_URL` (dropped
//! afterwards), writes open deposit addresses straight into
//! `crypto_payments` (foreign keys off for that insert: only the watcher
//! reads these rows) and runs the node's watcher in this process, with a
//! sink that notes the time of each call. Prints:
//!
//! - **detection latency**: from the `anvil_mine` call that creates the
//!   block of a plain USDC `transfer` (or native send) into a deposit
//!   address to the sink's `detected` call (the step that turns the
//!   payment `processing`), and from the block completing the
//!   confirmations to the `confirmed` call (`succeeded`); p50, p99, max;
//!   new heads by WebSocket subscription and by polling;
//! - **detection cost** with many open addresses: per watcher step (one
//!   new block holding `--background` USDC transfers between other
//!   accounts and one deposit), its time and its JSON-RPC calls by method,
//!   counted by a proxy in front of anvil, with ERC-20 deposits read by
//!   topic filter (requests of 256 receivers) and token-wide (every
//!   `Transfer` of the token, kept by a hash-set lookup); and the cost of
//!   native addresses (two balance reads each per step).
//!
//! Options: `--samples N` (latency samples, default 100), `--addresses
//! 64,256,1024,4096,10000`, `--background N` (default 100 transfers per
//! block), `--steps N` (default 10), `--native 100,1000,10000`, `--rtt-ms
//! N` (added to every RPC answer of the cost runs, as a remote provider's
//! round trip; default 0), `--cost-only`, `--quick`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use axum::extract::State;
use epg::chain::config::ChainConfig;
use epg::chain::contracts::DevStablecoin;
use epg::chain::deposits;
use epg::chain::watcher::{ChainStatus, SinkError, Transfer, TransferSink, Watcher};
use epg::db::Db;
use epg::telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use rand::Rng;
use sqlx::PgConnection;
use support::devnet::Chain;
use support::{Scratches, option, percentile};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Anvil's default account #1 (public devnet key): pays.
const PAYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const TREASURY: Address = Address::repeat_byte(0x7e);
const CONFIRMATIONS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Detected,
    Confirmed,
}

/// Notes when each call happens, by deposit address.
struct BenchSink {
    calls: mpsc::UnboundedSender<(Address, Call, Instant)>,
}

impl TransferSink for BenchSink {
    fn detected<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let _ = self
            .calls
            .send((transfer.router, Call::Detected, Instant::now()));
        Box::pin(async { Ok(()) })
    }

    fn confirmed<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let _ = self
            .calls
            .send((transfer.router, Call::Confirmed, Instant::now()));
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

/// A JSON-RPC proxy in front of anvil that counts calls by method.
struct Counter {
    upstream: String,
    client: reqwest::Client,
    /// Added to every answer: a remote provider's round trip.
    rtt: Duration,
    counts: Mutex<BTreeMap<String, u64>>,
    bytes: std::sync::atomic::AtomicU64,
}

impl Counter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }

    fn take_bytes(&self) -> u64 {
        self.bytes.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

async fn forward(
    State(counter): State<Arc<Counter>>,
    body: axum::body::Bytes,
) -> (
    [(axum::http::HeaderName, &'static str); 1],
    axum::body::Bytes,
) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
        let calls = match value {
            serde_json::Value::Array(calls) => calls,
            one => vec![one],
        };
        let mut counts = counter.counts.lock().unwrap();
        for call in calls {
            let method = call["method"].as_str().unwrap_or("?").to_owned();
            *counts.entry(method).or_default() += 1;
        }
    }
    let answer = counter
        .client
        .post(&counter.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    counter.bytes.fetch_add(
        u64::try_from(answer.len()).unwrap(),
        std::sync::atomic::Ordering::Relaxed,
    );
    if !counter.rtt.is_zero() {
        tokio::time::sleep(counter.rtt).await;
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
}

async fn counting_proxy(upstream: String, rtt: Duration) -> (String, Arc<Counter>) {
    let counter = Arc::new(Counter {
        upstream,
        client: reqwest::Client::new(),
        rtt,
        counts: Mutex::new(BTreeMap::new()),
        bytes: std::sync::atomic::AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/", axum::routing::post(forward))
        .with_state(counter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), counter)
}

/// Writes `n` open quotes with deposit addresses (`native`: of ETH, else of
/// USDC), as the quote path would; returns their addresses.
async fn open_addresses(
    pool: &Db,
    chain: &Chain,
    n: usize,
    native: bool,
    tag: &str,
) -> Vec<Address> {
    let factory = chain.deployment.deposit_factory.unwrap();
    let (asset, token) = if native {
        ("eth:31337", Address::ZERO)
    } else {
        ("usdc:31337", chain.usdc())
    };
    let mut ids = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    let mut addresses = Vec::with_capacity(n);
    let mut salts = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("pay_bench{tag}{i:08}");
        let salt = deposits::salt(&id);
        let address = deposits::address(factory, salt);
        ids.push(id);
        refs.push(format!("{:#x}", B256::from(rand::random::<[u8; 32]>())));
        addresses.push(format!("{address:#x}"));
        salts.push(format!("{salt:#x}"));
        out.push(address);
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        r#"INSERT INTO crypto_payments
               (payment_id, merchant_id, chain_id, asset, token, router, reference, expected, rate,
                expires_at, confirmations, deposit_address, deposit_salt, mode)
           SELECT u.id, 'mer_bench', 31337, $1, $2, $3, u.ref, 1000000, '{}'::jsonb,
                  now() + interval '1 hour', $4, u.address, u.salt, 'any'
             FROM UNNEST($5::text[], $6::text[], $7::text[], $8::text[]) AS u(id, ref, address, salt)"#,
    )
    .bind(asset)
    .bind(format!("{token:#x}"))
    .bind(format!("{:#x}", chain.deployment.router))
    .bind(i64::try_from(CONFIRMATIONS).unwrap())
    .bind(&ids)
    .bind(&refs)
    .bind(&addresses)
    .bind(&salts)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    out
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

fn payer(chain: &Chain) -> impl Provider + Clone + use<> {
    let signer: PrivateKeySigner = PAYER_KEY.parse().unwrap();
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(chain.anvil.rpc_url().parse().unwrap())
}

async fn wait_for(
    calls: &mut mpsc::UnboundedReceiver<(Address, Call, Instant)>,
    address: Address,
    call: Call,
) -> Instant {
    loop {
        let (to, got, at) = tokio::time::timeout(Duration::from_secs(30), calls.recv())
            .await
            .expect("the watcher answers within 30 s")
            .unwrap();
        if to == address && got == call {
            return at;
        }
    }
}

struct Latency {
    erc20_detected: Vec<Duration>,
    erc20_confirmed: Vec<Duration>,
    native_detected: Vec<Duration>,
}

/// Waits a random part of the poll cycle (not in phase with it), then
/// mines one block; returns when the mining was asked for.
async fn mine_at_random(chain: &Chain, ws: bool, poll_ms: u64) -> Instant {
    let jitter = if ws {
        20
    } else {
        rand::thread_rng().gen_range(20..20 + poll_ms)
    };
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    let t0 = Instant::now();
    chain.mine(1).await;
    t0
}

async fn latency(
    chain: &Chain,
    pool: &Db,
    samples: usize,
    ws: bool,
    poll_ms: u64,
    tag: &str,
) -> Latency {
    let mut config = chain.config(CONFIRMATIONS);
    config.poll_interval_ms = poll_ms;
    if !ws {
        config.ws_url = None;
    }
    config.start_block = chain.head().await;
    let erc20 = open_addresses(pool, chain, samples, false, &format!("{tag}e")).await;
    let native = open_addresses(pool, chain, samples, true, &format!("{tag}n")).await;
    let (tx, mut calls) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        watcher(config, pool, Arc::new(BenchSink { calls: tx })).run(shutdown.clone()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let provider = payer(chain);
    let usdc = DevStablecoin::new(chain.usdc(), &provider);
    let mut out = Latency {
        erc20_detected: Vec::new(),
        erc20_confirmed: Vec::new(),
        native_detected: Vec::new(),
    };
    chain.automine(false).await;
    for (deposit, native_deposit) in erc20.iter().zip(&native) {
        // The transfer waits in the mempool until the timed block.
        let _pending = usdc
            .transfer(*deposit, U256::from(1_000_000u64))
            .send()
            .await
            .unwrap();
        let t0 = mine_at_random(chain, ws, poll_ms).await;
        let at = wait_for(&mut calls, *deposit, Call::Detected).await;
        out.erc20_detected.push(at.saturating_duration_since(t0));
        for _ in 1..CONFIRMATIONS - 1 {
            chain.mine(1).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t0 = mine_at_random(chain, ws, poll_ms).await;
        let at = wait_for(&mut calls, *deposit, Call::Confirmed).await;
        out.erc20_confirmed.push(at.saturating_duration_since(t0));

        let send = TransactionRequest::default()
            .with_to(*native_deposit)
            .with_value(U256::from(10u64.pow(15)));
        let _pending = provider.send_transaction(send).await.unwrap();
        let t0 = mine_at_random(chain, ws, poll_ms).await;
        let at = wait_for(&mut calls, *native_deposit, Call::Detected).await;
        out.native_detected.push(at.saturating_duration_since(t0));
    }
    chain.automine(true).await;
    shutdown.cancel();
    task.await.unwrap();
    out
}

/// Pre-signed USDC transfers from the payer to fresh accounts (a busy
/// token's traffic), then one deposit (`native`: of coin), all sent to the
/// mempool.
async fn fill_block(chain: &Chain, background: usize, deposit: Address, native: bool) {
    let signer: PrivateKeySigner = PAYER_KEY.parse().unwrap();
    let from = signer.address();
    let wallet = EthereumWallet::from(signer);
    let mut nonce = chain
        .provider
        .get_transaction_count(from)
        .pending()
        .await
        .unwrap();
    let mut raw: Vec<Bytes> = Vec::with_capacity(background + 1);
    let mut sends: Vec<(Address, Vec<u8>, U256)> = (0..background)
        .map(|_| {
            let to = Address::from(rand::random::<[u8; 20]>());
            let input = DevStablecoin::transferCall {
                to,
                value: U256::from(1_000u64),
            }
            .abi_encode();
            (chain.usdc(), input, U256::ZERO)
        })
        .collect();
    if native {
        sends.push((deposit, Vec::new(), U256::from(10u64.pow(15))));
    } else {
        let input = DevStablecoin::transferCall {
            to: deposit,
            value: U256::from(1_000_000u64),
        }
        .abi_encode();
        sends.push((chain.usdc(), input, U256::ZERO));
    }
    for (to, input, value) in sends {
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(input)
            .with_value(value)
            .with_nonce(nonce)
            .with_chain_id(chain.deployment.chain_id)
            .with_gas_limit(80_000)
            .with_max_fee_per_gas(1_000_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000);
        raw.push(Bytes::from(tx.build(&wallet).await.unwrap().encoded_2718()));
        nonce += 1;
    }
    stream::iter(raw)
        .for_each_concurrent(32, |tx| {
            let provider = chain.provider.clone();
            async move {
                let _pending = provider.send_raw_transaction(&tx).await.unwrap();
            }
        })
        .await;
}

struct Cost {
    label: String,
    addresses: usize,
    times: Vec<Duration>,
    calls: BTreeMap<String, u64>,
    bytes: u64,
    steps: u64,
    detected: usize,
}

/// Watcher steps of one new block each, with `addresses` open ERC-20 (or
/// native) deposit addresses.
#[allow(clippy::too_many_arguments)]
async fn cost(
    chain: &Chain,
    scratch: &mut Scratches,
    addresses: usize,
    native: bool,
    by_topic: bool,
    background: usize,
    steps: u64,
    rtt: Duration,
) -> Cost {
    let label = match (native, by_topic) {
        (true, _) => "native (balances)",
        (false, true) => "ERC-20 by topic",
        (false, false) => "ERC-20 token-wide",
    };
    let tag = format!("cost{}{}{addresses}", u8::from(native), u8::from(by_topic));
    let pool = scratch.database(&tag).await;
    let open = open_addresses(&pool, chain, addresses, native, &tag).await;
    let (url, counter) = counting_proxy(chain.anvil.rpc_url(), rtt).await;
    let mut config = chain.config(CONFIRMATIONS);
    config.http_url = url;
    config.ws_url = None;
    config.deposit_topic_filter_max = if by_topic { 1_000_000 } else { 0 };
    config.start_block = chain.head().await + 1;
    chain.mine(1).await;
    let (tx, mut calls) = mpsc::unbounded_channel();
    let mut w = watcher(config, &pool, Arc::new(BenchSink { calls: tx }));
    // Reach the head (cursor, chain id check) before measuring.
    w.step().await.unwrap();
    chain.automine(false).await;
    let mut times = Vec::new();
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0;
    for s in 0..steps {
        let deposit = open[usize::try_from(s).unwrap() % open.len()];
        fill_block(chain, background, deposit, native).await;
        chain.mine(1).await;
        counter.take();
        counter.take_bytes();
        let started = Instant::now();
        let report = w.step().await.unwrap();
        times.push(started.elapsed());
        assert!(report.caught_up(), "one step reaches the head");
        bytes += counter.take_bytes();
        for (method, n) in counter.take() {
            *total.entry(method).or_default() += n;
        }
    }
    chain.automine(true).await;
    let mut detected = 0;
    while let Ok((_, call, _)) = calls.try_recv() {
        if call == Call::Detected {
            detected += 1;
        }
    }
    times.sort();
    Cost {
        label: label.to_owned(),
        addresses,
        times,
        calls: total,
        bytes,
        steps,
        detected,
    }
}

/// `n / steps` with one decimal, in integers.
fn per_step(n: u64, steps: u64) -> String {
    let tenths = n * 10 / steps.max(1);
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn ms(d: Duration) -> String {
    format!("{} ms", support::ms(d))
}

fn list(args: &[String], name: &str, default: &[usize]) -> Vec<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || default.to_vec(),
            |v| v.split(',').filter_map(|x| x.parse().ok()).collect(),
        )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let samples: usize = option(&args, "--samples").unwrap_or(if quick { 20 } else { 100 });
    let background: usize = option(&args, "--background").unwrap_or(100);
    let steps: u64 = option(&args, "--steps").unwrap_or(if quick { 4 } else { 10 });
    let sizes = list(
        &args,
        "--addresses",
        if quick {
            &[256, 10_000]
        } else {
            &[64, 256, 1024, 4096, 10_000]
        },
    );
    let natives = list(
        &args,
        "--native",
        if quick { &[100] } else { &[100, 1000, 10_000] },
    );
    let rtt = Duration::from_millis(option(&args, "--rtt-ms").unwrap_or(0));
    let latency_runs = !args.iter().any(|a| a == "--cost-only");
    let mut scratch = Scratches::new("epg_bench_deposits");

    let chain = Chain::start(TREASURY).await;

    let mut runs = Vec::new();
    for poll in [0u64, 250, 1000] {
        if !latency_runs {
            break;
        }
        if poll == 0 {
            eprintln!("latency: {samples} samples, new heads by subscription …");
            let pool = scratch.database("ws").await;
            runs.push((
                "subscription (ws)".to_owned(),
                latency(&chain, &pool, samples, true, 1000, "ws").await,
            ));
            continue;
        }
        let n = (samples / 4).max(10);
        eprintln!("latency: {n} samples, polling every {poll} ms …");
        let pool = scratch.database(&format!("poll{poll}")).await;
        runs.push((
            format!("polling every {poll} ms"),
            latency(&chain, &pool, n, false, poll, &format!("p{poll}")).await,
        ));
    }

    let mut costs = Vec::new();
    for &n in &sizes {
        for by_topic in [true, false] {
            eprintln!(
                "cost: {n} open ERC-20 addresses, {} …",
                if by_topic {
                    "topic filter"
                } else {
                    "token-wide"
                }
            );
            costs.push(
                cost(
                    &chain,
                    &mut scratch,
                    n,
                    false,
                    by_topic,
                    background,
                    steps,
                    rtt,
                )
                .await,
            );
        }
    }
    for &n in &natives {
        eprintln!("cost: {n} open native addresses …");
        let steps = if n >= 5_000 { steps.min(3) } else { steps };
        costs.push(cost(&chain, &mut scratch, n, true, true, background, steps, rtt).await);
    }
    scratch.drop_all().await;

    println!();
    println!("Deposit detection latency (block mined → sink call; {CONFIRMATIONS} confirmations)");
    println!(
        "{:<22} {:<30} {:>7} {:>10} {:>10} {:>10}",
        "new heads by", "what", "samples", "p50", "p99", "max"
    );
    for (label, run) in runs {
        for (what, mut xs) in [
            ("ERC-20 transfer → detected", run.erc20_detected),
            ("ERC-20 → confirmed", run.erc20_confirmed),
            ("native send → detected", run.native_detected),
        ] {
            xs.sort();
            println!(
                "{:<22} {:<30} {:>7} {:>10} {:>10} {:>10}",
                label,
                what,
                xs.len(),
                ms(percentile(&xs, 50)),
                ms(percentile(&xs, 99)),
                ms(xs.last().copied().unwrap_or_default())
            );
        }
    }
    println!();
    println!(
        "Detection cost per watcher step (one new block: {background} USDC transfers between other accounts + 1 deposit; {} ms added per RPC answer)",
        rtt.as_millis()
    );
    println!(
        "{:<20} {:>9} {:>6} {:>10} {:>10} {:>11} {:>10} {:>9}  calls per step by method",
        "read", "addresses", "steps", "step p50", "step p99", "eth_getLogs", "all calls", "KB in"
    );
    for c in &costs {
        let logs = c.calls.get("eth_getLogs").copied().unwrap_or(0);
        let all: u64 = c.calls.values().sum();
        let methods: Vec<String> = c
            .calls
            .iter()
            .map(|(m, n)| format!("{m} {}", per_step(*n, c.steps)))
            .collect();
        println!(
            "{:<20} {:>9} {:>6} {:>10} {:>10} {:>11} {:>10} {:>9}  {}",
            c.label,
            c.addresses,
            c.steps,
            ms(percentile(&c.times, 50)),
            ms(percentile(&c.times, 99)),
            per_step(logs, c.steps),
            per_step(all, c.steps),
            per_step(c.bytes / 1024, c.steps),
            methods.join(", ")
        );
        assert_eq!(
            u64::try_from(c.detected).unwrap(),
            c.steps,
            "every deposit detected once"
        );
    }
    println!();
    println!(
        "anvil on loopback behind a counting proxy, PostgreSQL on {}; one ERC-20 token (USDC) configured; topic filters carry at most {} receivers.",
        support::admin_url().rsplit('@').next().unwrap_or("?"),
        deposits::TOPIC_FILTER_MAX
    );
}
