//! `scripts/bench webhooks`: how fast a node delivers webhooks to a local
//! receiver, and how long an event takes from its commit to its delivery.
//!
//! Not a test: it makes a scratch database on the PostgreSQL of
//! `EPG_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! runs one node and a receiver in this process (one monotonic clock for
//! both ends), records events through `epg::events::record` as writers do,
//! and prints a table. Options: `--events N` (burst size, default 3000),
//! `--quick` (fewer events).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use epg::app::Application;
use epg::config::{Config, Mode};
use epg::crypto::Keyring;
use epg::events::EventType;
use epg::ids::{EventId, MerchantId};
use epg::merchants::{KeyKind, MerchantStore};
use epg::webhooks::signature;
use serde_json::json;
use support::{Scratch, ms, option, percentile};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Receiver {
    /// Event id → when its first 2xx answer was given.
    arrived: Mutex<HashMap<String, Instant>>,
    /// Deliveries of an event already delivered (should stay 0).
    duplicates: Mutex<u64>,
    /// Signatures that did not verify (should stay 0).
    bad_signatures: Mutex<u64>,
    secret: Mutex<String>,
    /// Simulated receiver processing time.
    delay: Mutex<Duration>,
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = *rx.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let now = Instant::now();
    let secret = rx.secret.lock().unwrap().clone();
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let unix = time::OffsetDateTime::now_utc().unix_timestamp();
    if signature::verify(&secret, header, &body, unix, 300).is_err() {
        *rx.bad_signatures.lock().unwrap() += 1;
    }
    let id = headers
        .get("epg-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut arrived = rx.arrived.lock().unwrap();
    if arrived.insert(id, now).is_some() {
        *rx.duplicates.lock().unwrap() += 1;
    }
    StatusCode::OK
}

struct Run {
    backlog: bool,
    label: String,
    events: usize,
    workers: u32,
    receiver_ms: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    duplicates: u64,
    bad_signatures: u64,
}

/// A scenario: `events` events recorded by `writers` concurrent writers
/// (one transaction each), `pace` apart per writer, delivered by a node
/// with `workers` concurrent deliveries to a receiver answering after
/// `receiver_ms`. With `backlog`, no node runs while the events are written
/// and one starts afterwards: the rate is then the pure delivery rate of a
/// queue, and latencies are queueing times (not shown).
struct Scenario {
    label: &'static str,
    events: usize,
    writers: usize,
    pace: Duration,
    workers: u32,
    receiver_ms: u64,
    backlog: bool,
}

/// Runs `sc` on a fresh database.
async fn scenario(sc: &Scenario) -> Run {
    let Scenario {
        label,
        events,
        writers,
        pace,
        workers,
        receiver_ms,
        backlog,
    } = *sc;
    let db = format!("epg_bench_webhooks_{}", std::process::id());
    let scratch = Scratch::create(&db, 20).await;
    let (pool, url) = (scratch.pool.clone(), scratch.url.clone());
    let mut config = bench_config(&url);
    config.webhooks.workers = workers;
    // One receiver: let every worker reach it (the per-endpoint limit is a
    // fairness rule between endpoints, not a throughput setting).
    config.webhooks.endpoint_concurrency = workers;
    let receiver = Arc::new(Receiver::default());
    *receiver.delay.lock().unwrap() = Duration::from_millis(receiver_ms);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    let receiver_task = tokio::spawn(async move { axum::serve(listener, app).await });

    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Bench").await.unwrap();
    let (_, sk) = merchants
        .create_key(&merchant.id, KeyKind::Secret, Mode::Test)
        .await
        .unwrap();
    let node_pool = epg::db::connect(&url, 40).await.unwrap();
    let node = Application::build_with_pool(config.clone(), node_pool)
        .await
        .unwrap();
    let address = format!("http://{}", node.address());
    let mut shutdown = CancellationToken::new();
    let mut node_task = tokio::spawn(node.run(shutdown.clone()));
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{address}/v1/webhook_endpoints"))
        .bearer_auth(&sk.secret)
        .json(&json!({ "url": hook_url, "enabled_events": ["*"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    *receiver.secret.lock().unwrap() = created["secret"].as_str().unwrap().to_owned();
    if backlog {
        // No node runs while the events are written: they queue up.
        shutdown.cancel();
        let _ = (&mut node_task).await;
    }

    let mut started = Instant::now();
    let per_writer = events.div_ceil(writers);
    let mut handles = Vec::new();
    for _ in 0..writers {
        let pool = pool.clone();
        let merchant: MerchantId = merchant.id.clone();
        handles.push(tokio::spawn(async move {
            let mut committed: Vec<(EventId, Instant)> = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                let object = json!({
                    "id": format!("pay_{}", epg::ids::random_base62(24)),
                    "object": "payment",
                    "status": "succeeded",
                    "amount": 1234,
                    "currency": "usd",
                });
                let mut tx = pool.begin().await.unwrap();
                let id =
                    epg::events::record(&mut tx, &merchant, EventType::PaymentSucceeded, &object)
                        .await
                        .unwrap();
                tx.commit().await.unwrap();
                committed.push((id, Instant::now()));
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            committed
        }));
    }
    let mut committed = Vec::new();
    for h in handles {
        committed.extend(h.await.unwrap());
    }
    let total = committed.len();
    if backlog {
        started = Instant::now();
        let node_pool = epg::db::connect(&url, 40).await.unwrap();
        let node = Application::build_with_pool(config, node_pool)
            .await
            .unwrap();
        shutdown = CancellationToken::new();
        node_task = tokio::spawn(node.run(shutdown.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if receiver.arrived.lock().unwrap().len() >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: deliveries did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = receiver.arrived.lock().unwrap().clone();
    let last = arrived.values().max().copied().unwrap_or(started);
    let mut latencies: Vec<Duration> = committed
        .iter()
        .map(|(id, at)| {
            arrived
                .get(id.as_str())
                .map_or(Duration::ZERO, |got| got.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();

    shutdown.cancel();
    let _ = node_task.await;
    receiver_task.abort();
    drop(pool);
    scratch.drop().await;

    Run {
        backlog,
        label: label.to_owned(),
        events: total,
        workers,
        receiver_ms,
        elapsed: last.saturating_duration_since(started),
        latencies,
        duplicates: *receiver.duplicates.lock().unwrap(),
        bad_signatures: *receiver.bad_signatures.lock().unwrap(),
    }
}

/// A node configuration for the bench: dev mode (http to the loopback
/// receiver), quiet logs, no rate limit in the way, default webhook
/// settings.
fn bench_config(url: &str) -> Config {
    let mut config = Config::load(
        None,
        [
            ("EPG_DATABASE_URL".to_owned(), url.to_owned()),
            (
                "EPG_SECURITY_MASTER_KEY".to_owned(),
                Keyring::generate_base64(),
            ),
        ],
    )
    .unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.dev = true;
    config.database.max_connections = 40;
    config.security.rate_limit_per_second = 10_000;
    config.security.rate_limit_burst = 10_000;
    config.log.level = "error".into();
    config
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let burst = option(&args, "--events").unwrap_or(if quick { 500 } else { 3000 });
    let sequential = if quick { 100 } else { 300 };

    let burst_of = |label, events, workers, receiver_ms| Scenario {
        label,
        events,
        writers: 8,
        pace: Duration::ZERO,
        workers,
        receiver_ms,
        backlog: false,
    };
    let backlog_of = |events, workers, receiver_ms| Scenario {
        label: "backlog drain",
        events,
        writers: 8,
        pace: Duration::ZERO,
        workers,
        receiver_ms,
        backlog: true,
    };
    let scenarios = [
        Scenario {
            label: "one at a time (idle node)",
            events: sequential,
            writers: 1,
            pace: Duration::from_millis(10),
            workers: 16,
            receiver_ms: 0,
            backlog: false,
        },
        burst_of("burst, 8 writers", burst, 16, 0),
        burst_of("burst, 8 writers", burst, 64, 0),
        burst_of("burst, receiver takes 20 ms", burst / 2, 16, 20),
        burst_of("burst, receiver takes 20 ms", burst / 2, 64, 20),
        backlog_of(burst, 16, 0),
        backlog_of(burst, 64, 0),
        backlog_of(burst / 2, 16, 20),
        backlog_of(burst / 2, 64, 20),
    ];
    let mut runs = Vec::new();
    for sc in &scenarios {
        eprintln!(
            "running: {} ({} events, {} workers, receiver {} ms)…",
            sc.label, sc.events, sc.workers, sc.receiver_ms
        );
        runs.push(scenario(sc).await);
    }

    println!();
    println!(
        "{:<30} {:>7} {:>8} {:>9} {:>13} {:>11} {:>11} {:>11} {:>6}",
        "scenario",
        "events",
        "workers",
        "recv ms",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "dups"
    );
    for r in &runs {
        let rate = r.events as f64 / r.elapsed.as_secs_f64().max(1e-9);
        let latency = |d: Duration| if r.backlog { "-".to_owned() } else { ms(d) };
        println!(
            "{:<30} {:>7} {:>8} {:>9} {:>13.0} {:>11} {:>11} {:>11} {:>6}",
            r.label,
            r.events,
            r.workers,
            r.receiver_ms,
            rate,
            latency(percentile(&r.latencies, 50)),
            latency(percentile(&r.latencies, 99)),
            latency(r.latencies.last().copied().unwrap_or_default()),
            r.duplicates,
        );
        assert_eq!(r.bad_signatures, 0, "{}: bad signatures", r.label);
    }
    println!();
    println!(
        "latency: from the writer's COMMIT returning to the receiver answering 2xx (same process, one clock)."
    );
    println!(
        "deliveries/s: events / (last delivery - first write) while writers run; for a backlog drain,"
    );
    println!("  events / (last delivery - a node starting with every event already queued).");
    println!("dups: events the receiver got more than once (expected 0).");
}
