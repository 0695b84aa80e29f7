//! `scripts/bench ledger`: journal entries per second with 1, 8 and 32
//! concurrent writers, spread over many accounts and all on one hot
//! account, next to pgbench running the very SQL the ledger sends.
//!
//! Not a test. It makes a scratch database on the PostgreSQL of
//! `EPG_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! seeds 1000 merchants, and for each scenario and writer count runs
//!
//! * `epg`: N tasks, each on its own connection, each looping
//!   `BEGIN; ledger::post(capture + fee); COMMIT` for the duration;
//! * `pgbench`: `pgbench -n -M prepared -c N -j 2 -T secs -f scripts/bench.d/ledger_<scenario>.sql`,
//!   a script made from `src/ledger/sql/post_entry.sql` itself with the
//!   parameters written as pgbench variables (see [`pgbench_script`]).
//!
//! Each entry is a capture with its fee: four postings over three accounts
//! (debit a clearing account, credit the merchant's pending, debit the
//! merchant's pending for the fee, credit a fee revenue account), the
//! merchant drawn at random among 1000. Scenarios:
//!
//! * `spread`: clearing and fee revenue accounts are per merchant
//!   (`clearing/bench_<k>`, `fee_revenue/bench_<k>`): no two writers share
//!   an account except by chance;
//! * `hot`: every entry debits `clearing/card` and credits `fee_revenue`,
//!   two accounts of 32 shards each;
//! * `hot-1-shard`: the same with both accounts cut down to one balance
//!   row, to show what the shards are for.
//!
//! Options: `--seconds N` (per run, default 10), `--writers 1,8,32`,
//! `--quick` (3 s runs), `--no-pgbench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use epg::ids::MerchantId;
use epg::ledger::{self, AccountRef, Entry, EntryKind, GatewayAccount, MerchantAccount};
use epg::money::{Amount, AssetCode};
use rand::Rng;
use sqlx::{Connection, PgConnection};
use support::Scratch;

const MERCHANTS: u32 = 1000;
const FIRST: u32 = 1000;

/// The bench merchants' ids: `mer_benchmerchant0000000` and a 4-digit number,
/// which pgbench can build from its random `:k`.
fn merchant_id(k: u32) -> MerchantId {
    MerchantId::parse(&format!("mer_benchmerchant0000000{k}")).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Spread,
    Hot,
    HotOneShard,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Spread => "spread",
            Scenario::Hot => "hot",
            Scenario::HotOneShard => "hot-1-shard",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Scenario::Spread => "ledger_spread.sql",
            Scenario::Hot | Scenario::HotOneShard => "ledger_hot.sql",
        }
    }

    /// The entry a writer posts for merchant `k`.
    fn entry(self, key: String, k: u32, amount: i64) -> Entry {
        let usd = AssetCode::parse("usd").unwrap();
        let pending = AccountRef::merchant(&merchant_id(k), MerchantAccount::Pending);
        let (clearing, revenue) = match self {
            Scenario::Spread => (
                AccountRef::clearing(&format!("bench_{k}")),
                AccountRef::gateway(GatewayAccount::FeeRevenue, &format!("bench_{k}")),
            ),
            Scenario::Hot | Scenario::HotOneShard => {
                (AccountRef::clearing("card"), AccountRef::fee_revenue())
            }
        };
        Entry::new(key, EntryKind::PAYMENT)
            .source(format!("pay_bench{k}"))
            .transfer(clearing, pending.clone(), &usd, Amount::from_minor(amount))
            .fee_to(pending, revenue, &usd, Amount::from_minor(fee(amount)))
    }
}

/// 2.9 % + 30, as pgbench computes it: `(:x * 29) / 1000 + 30`.
fn fee(amount: i64) -> i64 {
    amount * 29 / 1000 + 30
}

/// The pgbench script of a scenario: `post_entry.sql` with each `$n`
/// replaced by what the ledger binds there, written with pgbench variables.
fn pgbench_script(scenario: Scenario) -> String {
    let sql: String = include_str!("../src/ledger/sql/post_entry.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let owner = "'mer_benchmerchant0000000' || :k";
    let qualifiers = match scenario {
        Scenario::Spread => "ARRAY['bench_' || :k, '', '', 'bench_' || :k]".to_owned(),
        Scenario::Hot | Scenario::HotOneShard => "ARRAY['card', '', '', '']".to_owned(),
    };
    let params: [String; 13] = [
        "'txn_' || lpad(:r::text, 24, '0')".into(),
        "'pgbench:' || :r".into(),
        format!("'\\x{}'::bytea", "ab".repeat(32)),
        "'payment'".into(),
        "'pay_bench' || :k".into(),
        "NULL::text".into(),
        format!("ARRAY['', {owner}, {owner}, '']"),
        "ARRAY['clearing', 'pending', 'pending', 'fee_revenue']".into(),
        qualifiers,
        "ARRAY['usd', 'usd', 'usd', 'usd']".into(),
        "ARRAY[:x::numeric, -:x::numeric, :f::numeric, -:f::numeric]".into(),
        "ARRAY['posted', 'posted', 'posted', 'posted']".into(),
        "ARRAY[false, false, true, true]".into(),
    ];
    // Highest first, so `$1` does not eat the start of `$13`.
    let mut body = sql;
    for (i, value) in params.iter().enumerate().rev() {
        body = body.replace(&format!("${}", i + 1), value);
    }
    let mut script = String::new();
    writeln!(
        script,
        "-- Generated by `scripts/bench ledger` from src/ledger/sql/post_entry.sql\n\
         -- (scenario `{}`): the statement the ledger sends per entry, its\n\
         -- parameters written as pgbench variables. Do not edit.",
        scenario.name()
    )
    .unwrap();
    writeln!(script, "\\set k random({FIRST}, {})", FIRST + MERCHANTS - 1).unwrap();
    writeln!(script, "\\set r random(1, 999999999999999999)").unwrap();
    writeln!(script, "\\set x random(100, 100000)").unwrap();
    writeln!(script, "\\set f (:x * 29) / 1000 + 30").unwrap();
    writeln!(script, "BEGIN;\n{body};\nCOMMIT;").unwrap();
    script
}

struct Options {
    seconds: u64,
    writers: Vec<u32>,
    pgbench: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        writers: vec![1, 8, 32],
        pgbench: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => o.seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(10),
            "--writers" => {
                o.writers = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|w| w.parse().ok())
                    .collect();
            }
            "--quick" => o.seconds = 3,
            "--no-pgbench" => o.pgbench = false,
            "--bench" => {}
            other => {
                eprintln!("unknown option {other}; see benches/ledger.rs");
                std::process::exit(2);
            }
        }
    }
    o
}

/// Entries per second with `writers` concurrent writers for `secs`.
async fn run_epg(url: &str, scenario: Scenario, writers: u32, secs: u64, round: u32) -> Rate {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let mut done = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let (k, amount) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(FIRST..FIRST + MERCHANTS),
                        rng.gen_range(100..=100_000),
                    )
                };
                let key = format!("bench:{}:{round}:{w}:{i}", scenario.name());
                i += 1;
                let entry = scenario.entry(key, k, amount);
                let mut tx = conn.begin().await.unwrap();
                match ledger::post(&mut tx, &entry).await {
                    Ok(_) => {
                        tx.commit().await.unwrap();
                        done += 1;
                    }
                    Err(e) if e.is_retryable() => tx.rollback().await.unwrap(),
                    Err(e) => panic!("{e}"),
                }
            }
            done
        }));
    }
    let mut entries = 0;
    for t in tasks {
        entries += t.await.unwrap();
    }
    Rate::new(entries, started.elapsed())
}

/// pgbench's tps on the scenario's script.
async fn run_pgbench(url: &str, script: &PathBuf, writers: u32, secs: u64) -> Rate {
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c"])
        .arg(writers.to_string())
        .arg("-j")
        .arg(writers.min(2).to_string())
        .arg("-T")
        .arg(secs.to_string())
        .arg("-f")
        .arg(script)
        .arg(url)
        .output()
        .await
        .expect("pgbench (PostgreSQL's client tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pgbench failed:\n{stdout}\n{stderr}"
    );
    let aborted = stdout
        .lines()
        .find(|l| l.contains("number of failed transactions"))
        .unwrap_or("");
    assert!(
        aborted.is_empty() || aborted.contains(": 0 "),
        "pgbench transactions failed: {aborted}\n{stdout}"
    );
    // "tps = 1234.567890 (without initial connection time)"
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"));
    Rate::parse(tps)
}

/// A rate in hundredths of an entry per second (integers only).
#[derive(Debug, Clone, Copy)]
struct Rate(u64);

impl Rate {
    fn new(entries: u64, elapsed: Duration) -> Self {
        let ms = u64::try_from(elapsed.as_millis()).unwrap().max(1);
        Rate(entries * 100_000 / ms)
    }

    fn parse(decimal: &str) -> Self {
        let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, "0"));
        let hundredths: String = fraction.chars().chain("00".chars()).take(2).collect();
        Rate(whole.parse::<u64>().unwrap() * 100 + hundredths.parse::<u64>().unwrap())
    }

    fn per_second(self) -> u64 {
        (self.0 + 50) / 100
    }

    /// `self / other` as `x.xx`.
    fn ratio(self, other: Rate) -> String {
        let hundredths = (self.0 * 100 + other.0 / 2) / other.0.max(1);
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

async fn reshard(conn: &mut PgConnection, shards: i16) {
    sqlx::query(
        "SELECT ledger_reshard(id, $1) FROM ledger_accounts
          WHERE owner = '' AND ((kind = 'clearing' AND qualifier = 'card')
                                OR (kind = 'fee_revenue' AND qualifier = ''))",
    )
    .bind(shards)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let scratch = Scratch::create(&format!("epg_bench_ledger_{}", std::process::id()), 4).await;
    let (pool, url) = (scratch.pool.clone(), scratch.url.clone());
    let mut conn = pool.acquire().await.unwrap();
    // Merchants and every account up front: the runs measure posting only.
    sqlx::query(
        "INSERT INTO merchants (id, name)
         SELECT 'mer_benchmerchant0000000' || k, 'Bench ' || k FROM generate_series($1::int, $2::int) k",
    )
    .bind(i32::try_from(FIRST).unwrap())
    .bind(i32::try_from(FIRST + MERCHANTS - 1).unwrap())
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "SELECT ledger_account_id('mer_benchmerchant0000000' || k, 'pending', '', 'usd'),
                ledger_account_id('', 'clearing', 'bench_' || k, 'usd'),
                ledger_account_id('', 'fee_revenue', 'bench_' || k, 'usd')
           FROM generate_series($1::int, $2::int) k",
    )
    .bind(i32::try_from(FIRST).unwrap())
    .bind(i32::try_from(FIRST + MERCHANTS - 1).unwrap())
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "SELECT ledger_account_id('', 'clearing', 'card', 'usd'),
                ledger_account_id('', 'fee_revenue', '', 'usd')",
    )
    .execute(&mut *conn)
    .await
    .unwrap();

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench.d");
    std::fs::create_dir_all(&dir).unwrap();
    for scenario in [Scenario::Spread, Scenario::Hot] {
        std::fs::write(dir.join(scenario.script()), pgbench_script(scenario)).unwrap();
    }

    println!(
        "ledger bench: {} s per run, writers {:?}, PostgreSQL at {}",
        o.seconds,
        o.writers,
        support::admin_url().rsplit('@').next().unwrap_or("?")
    );
    println!();
    println!(
        "{:<12} {:>7} {:>13} {:>13} {:>11}",
        "scenario", "writers", "epg entries/s", "pgbench tps", "epg/pgbench"
    );
    let mut results = Vec::new();
    let mut round = 0;
    for scenario in [Scenario::Spread, Scenario::Hot, Scenario::HotOneShard] {
        reshard(
            &mut conn,
            if scenario == Scenario::HotOneShard {
                1
            } else {
                32
            },
        )
        .await;
        for &writers in &o.writers {
            round += 1;
            let epg = run_epg(&url, scenario, writers, o.seconds, round).await;
            let pgbench = if o.pgbench {
                Some(run_pgbench(&url, &dir.join(scenario.script()), writers, o.seconds).await)
            } else {
                None
            };
            println!(
                "{:<12} {:>7} {:>13} {:>13} {:>11}",
                scenario.name(),
                writers,
                epg.per_second(),
                pgbench.map_or("-".into(), |p| p.per_second().to_string()),
                pgbench.map_or("-".into(), |p| epg.ratio(p)),
            );
            results.push((scenario, writers, epg, pgbench));
        }
    }
    println!();
    for &writers in &o.writers {
        let find = |s| results.iter().find(|r| r.0 == s && r.1 == writers).unwrap();
        let (spread, hot, naive) = (
            find(Scenario::Spread),
            find(Scenario::Hot),
            find(Scenario::HotOneShard),
        );
        println!(
            "{writers:>2} writers: hot/spread = {} (epg){}, hot-1-shard/spread = {} (epg)",
            hot.2.ratio(spread.2),
            match (hot.3, spread.3) {
                (Some(h), Some(s)) => format!(", {} (pgbench)", h.ratio(s)),
                _ => String::new(),
            },
            naive.2.ratio(spread.2),
        );
    }

    let report = ledger::check(&pool).await.unwrap();
    println!();
    print!("{report}");
    // Closing the pool waits for every connection to come back.
    drop(conn);
    drop(pool);
    scratch.drop().await;
    assert!(report.is_ok(), "the ledger must balance after the bench");
}
