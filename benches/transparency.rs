//! `scripts/bench transparency`: the transparency log at a million leaves.
//!
//! Not a test. It makes a scratch database on the PostgreSQL of
//! `EPG_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! starts an anvil devnet with `SettlementAnchor`, and measures:
//!
//! * appends per second: building the log in batches (`append_all`,
//!   one transaction per batch), then single appends (one transaction
//!   each, and many `append` calls in one transaction);
//! * root, inclusion proof and consistency proof time at the full size
//!   (random sizes and indices, each a database round trip; p50 and p99);
//! * proof sizes (path hashes and the JSON bundle);
//! * storage per leaf (leaves, nodes and their indexes);
//! * gas per anchor, from the receipts of 14 anchors on anvil (two chunks
//!   of seven checkpoints, whose seventh anchor costs 22k more).
//!
//! Options: `--leaves N` (default 1000000), `--batch N` (default 10000),
//! `--quick` (100000 leaves), `--keep` (keep the scratch database).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use epg::chain::deploy::{self, DeployPlan};
use epg::devnet::anvil::{Anvil, AnvilOptions, DEV_KEY_0};
use epg::transparency::anchor::{AnchorOptions, Anchorer, anchor_checkpoint};
use epg::transparency::bundle::bundle_for_leaf;
use epg::transparency::merkle;
use epg::transparency::{LeafData, LeafIndex, LeafKind, TransparencyLog};
use rand::Rng;
use support::{Scratch, per_second};

const DB: &str = "epg_bench_transparency";

struct Options {
    leaves: u64,
    batch: u64,
    keep: bool,
}

fn options() -> Options {
    let mut o = Options {
        leaves: 1_000_000,
        batch: 10_000,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--leaves" => {
                o.leaves = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--leaves N")
            }
            "--batch" => o.batch = args.next().and_then(|v| v.parse().ok()).expect("--batch N"),
            "--quick" => o.leaves = 100_000,
            "--keep" => o.keep = true,
            // cargo bench passes --bench through.
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn item(i: u64) -> LeafData {
    LeafData {
        settlement_id: format!("st_bench{:016}", i / 1000),
        merchant_id: format!("mer_bench{:019}", i % 997),
        source_id: format!("pay_{i:024}"),
        kind: LeafKind::Payment,
        asset: "usd".into(),
        amount: U256::from(100 + (i * 7919) % 1_000_000),
        settled_at: 1_700_000_000 + i / 100,
    }
}

/// `"1.234 ms"` from nanoseconds, in integer arithmetic.
fn ms(nanos: u128) -> String {
    format!("{}.{:03} ms", nanos / 1_000_000, (nanos / 1_000) % 1_000)
}

struct Timings(Vec<u128>);

impl Timings {
    fn p(&mut self, pct: usize) -> String {
        self.0.sort_unstable();
        let i = (self.0.len() * pct / 100).min(self.0.len().saturating_sub(1));
        ms(self.0[i])
    }
}

fn row(rows: &mut Vec<(String, String)>, what: impl Into<String>, value: impl Into<String>) {
    let (what, value) = (what.into(), value.into());
    eprintln!("  {what}: {value}");
    rows.push((what, value));
}

#[tokio::main]
async fn main() {
    let o = options();
    let mut rows = Vec::new();

    // The chain first: the log's origin names the anchor contract.
    let anvil = Anvil::start(AnvilOptions::default()).await.expect("anvil");
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let me = signer.address();
    let plan = DeployPlan {
        treasury: me,
        admin: me,
        anchorer: me,
        dev_helpers: false,
        ..DeployPlan::default()
    };
    let contract = deploy::deploy(&anvil.rpc_url(), signer.clone(), &plan)
        .await
        .unwrap()
        .anchor;
    let anchorer = Anchorer::connect(
        &anvil.rpc_url(),
        contract,
        signer,
        AnchorOptions {
            confirmations: 1,
            poll_interval: Duration::from_millis(20),
            ..AnchorOptions::default()
        },
    )
    .await
    .unwrap();
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let scratch = Scratch::create(DB, 4).await;
    let pool = scratch.pool.clone();

    eprintln!(
        "building a log of {} leaves in batches of {}",
        o.leaves, o.batch
    );
    let started = Instant::now();
    let mut next = 0u64;
    while next < o.leaves {
        let end = (next + o.batch).min(o.leaves);
        let items: Vec<_> = (next..end).map(item).collect();
        let mut tx = pool.begin().await.unwrap();
        log.append_all(&mut tx, &items).await.unwrap();
        tx.commit().await.unwrap();
        next = end;
        if next.is_multiple_of(100_000) {
            eprintln!("  {next} leaves, {} s", started.elapsed().as_secs());
        }
    }
    let build = started.elapsed();
    row(
        &mut rows,
        format!(
            "appends/s, batches of {} (append_all, one tx per batch)",
            o.batch
        ),
        format!(
            "{} ({} leaves in {} s)",
            per_second(o.leaves, build),
            o.leaves,
            build.as_secs()
        ),
    );
    let n = o.leaves;

    // Checkpoint and anchor the full tree now, so bundles exist.
    let mut conn = pool.acquire().await.unwrap();
    log.checkpoint(&mut conn).await.unwrap();
    let t = Instant::now();
    anchor_checkpoint(&pool, &anchorer, n).await.unwrap();
    row(
        &mut rows,
        "anchor latency on anvil (automine, 1 confirmation)",
        ms(t.elapsed().as_nanos()),
    );

    let mut rng = rand::thread_rng();
    const SAMPLES: usize = 500;

    let mut t_root = Timings(Vec::new());
    for _ in 0..SAMPLES {
        let size = rng.gen_range(n / 2..=n);
        let t = Instant::now();
        TransparencyLog::root(&mut conn, size).await.unwrap();
        t_root.0.push(t.elapsed().as_nanos());
    }
    row(
        &mut rows,
        format!("root(size) at ~{n} leaves, p50 / p99"),
        format!("{} / {}", t_root.p(50), t_root.p(99)),
    );
    let mut t_head = Timings(Vec::new());
    for _ in 0..SAMPLES {
        let t = Instant::now();
        TransparencyLog::head_checkpoint(&mut conn).await.unwrap();
        t_head.0.push(t.elapsed().as_nanos());
    }
    row(
        &mut rows,
        "current root from the head row, p50",
        t_head.p(50),
    );

    let mut t_inc = Timings(Vec::new());
    let mut path_len = 0;
    for _ in 0..SAMPLES {
        let index = rng.gen_range(0..n);
        let t = Instant::now();
        let path = TransparencyLog::inclusion_proof(&mut conn, index, n)
            .await
            .unwrap();
        t_inc.0.push(t.elapsed().as_nanos());
        path_len = path_len.max(path.len());
    }
    row(
        &mut rows,
        format!("inclusion proof at {n} leaves, p50 / p99"),
        format!("{} / {}", t_inc.p(50), t_inc.p(99)),
    );
    row(
        &mut rows,
        "inclusion proof size",
        format!("{path_len} hashes = {} bytes", path_len * 32),
    );

    let mut t_con = Timings(Vec::new());
    let mut con_len = 0;
    for _ in 0..SAMPLES {
        let m = rng.gen_range(1..n);
        let t = Instant::now();
        let proof = TransparencyLog::consistency_proof(&mut conn, m, n)
            .await
            .unwrap();
        t_con.0.push(t.elapsed().as_nanos());
        con_len = con_len.max(proof.len());
    }
    row(
        &mut rows,
        format!("consistency proof m → {n}, p50 / p99"),
        format!("{} / {}", t_con.p(50), t_con.p(99)),
    );
    row(
        &mut rows,
        "consistency proof size (max seen)",
        format!("{con_len} hashes = {} bytes", con_len * 32),
    );

    let mut t_bundle = Timings(Vec::new());
    let mut bundle_bytes = 0;
    for _ in 0..100 {
        let index = rng.gen_range(0..n);
        let t = Instant::now();
        let bundle = bundle_for_leaf(&pool, LeafIndex(index)).await.unwrap();
        t_bundle.0.push(t.elapsed().as_nanos());
        bundle_bytes = serde_json::to_vec(&bundle).unwrap().len();
    }
    row(
        &mut rows,
        "proof bundle (bundle_for_leaf), p50",
        t_bundle.p(50),
    );
    row(
        &mut rows,
        "proof bundle JSON size",
        format!("{bundle_bytes} bytes"),
    );

    // Verification is local CPU work.
    let leaf = TransparencyLog::leaf_hash(&mut conn, 12_345 % n)
        .await
        .unwrap();
    let path = TransparencyLog::inclusion_proof(&mut conn, 12_345 % n, n)
        .await
        .unwrap();
    let root = TransparencyLog::root(&mut conn, n).await.unwrap();
    let t = Instant::now();
    for _ in 0..10_000 {
        merkle::verify_inclusion(&leaf, 12_345 % n, n, &path, &root).unwrap();
    }
    row(
        &mut rows,
        "verify_inclusion (CPU), mean",
        ms(t.elapsed().as_nanos() / 10_000),
    );

    // Single appends on top of the big tree.
    const SINGLE: u64 = 2_000;
    let t = Instant::now();
    for i in 0..SINGLE {
        let mut tx = pool.begin().await.unwrap();
        log.append(&mut tx, &item(n + i)).await.unwrap();
        tx.commit().await.unwrap();
    }
    row(
        &mut rows,
        "appends/s, one append per transaction",
        per_second(SINGLE, t.elapsed()).to_string(),
    );
    let t = Instant::now();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..SINGLE {
        log.append(&mut tx, &item(n + SINGLE + i)).await.unwrap();
    }
    tx.commit().await.unwrap();
    row(
        &mut rows,
        "appends/s, many append() calls in one transaction",
        per_second(SINGLE, t.elapsed()).to_string(),
    );
    const TIMED: u64 = 200;
    let mut t_inc1 = Timings(Vec::new());
    for _ in 0..TIMED {
        let mut tx = pool.begin().await.unwrap();
        let i = n + 2 * SINGLE + u64::try_from(t_inc1.0.len()).unwrap();
        let t = Instant::now();
        log.append(&mut tx, &item(i)).await.unwrap();
        t_inc1.0.push(t.elapsed().as_nanos());
        tx.commit().await.unwrap();
    }
    row(
        &mut rows,
        "one append (inside a transaction), p50 / p99",
        format!("{} / {}", t_inc1.p(50), t_inc1.p(99)),
    );

    // Storage.
    let sizes: (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('transparency_leaves'),
                pg_total_relation_size('transparency_nodes'),
                (SELECT tree_size FROM transparency_head)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let per_leaf = (sizes.0 + sizes.1) / sizes.2.max(1);
    row(
        &mut rows,
        "storage (leaves + nodes, with indexes)",
        format!(
            "{} MB + {} MB = {per_leaf} bytes/leaf (10M leaves ≈ {} GB)",
            sizes.0 / 1_000_000,
            sizes.1 / 1_000_000,
            per_leaf * 10_000_000 / 1_000_000_000
        ),
    );

    // Gas: more anchors, each extending the previous checkpoint, up to two
    // full chunks of seven (the seventh of a chunk also stores its sizes).
    // Their leaves follow every leaf appended above.
    let next = n + 2 * SINGLE + TIMED;
    for k in 0..13u64 {
        let items: Vec<_> = (0..100).map(|j| item(next + k * 100 + j)).collect();
        let mut tx = pool.begin().await.unwrap();
        log.append_all(&mut tx, &items).await.unwrap();
        let size = log.checkpoint(&mut tx).await.unwrap().tree_size;
        tx.commit().await.unwrap();
        anchor_checkpoint(&pool, &anchorer, size).await.unwrap();
    }
    let gas: Vec<i64> = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT gas_used FROM transparency_anchors WHERE status = 'confirmed' ORDER BY tree_size",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .collect::<Vec<i64>>();
    let mean = gas.iter().sum::<i64>() / i64::try_from(gas.len().max(1)).unwrap();
    row(
        &mut rows,
        "gas per anchor (first, then each later one; mean)",
        format!("{gas:?}; {mean}"),
    );

    println!();
    println!("| transparency log, {} leaves | |", o.leaves);
    println!("|---|---|");
    for (what, value) in &rows {
        println!("| {what} | {value} |");
    }

    drop(pool);
    if o.keep {
        scratch.pool.close().await;
    } else {
        scratch.drop().await;
    }
    anvil.stop().await;
}
