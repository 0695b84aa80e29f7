//! `scripts/bench api`: the payment API at database speed.
//!
//! Not a test. It makes a scratch database on the PostgreSQL of
//! `EPG_TEST_DATABASE_URL`, starts the release `epg serve` on it (test
//! mode, rate limits raised), and drives it over HTTP, one keep-alive
//! connection per client (plain HTTP/1.1 written and read by the bench
//! itself: the load generator's CPU is taken from the node's two cores),
//! at 1, 8, 32 and 128 connections:
//!
//! * `card`: create, then confirm with a fresh Luhn-valid Visa;
//! * `card-1req`: create with `confirm: true` and the card (one request);
//! * `manual`: create (manual capture), confirm, capture;
//! * `refund`: a card payment as `card-1req`, then a full refund;
//! * `bank`: create, confirm with a bank transfer (instructions);
//! * `crypto`: create, confirm with USDC (a quote: no chain work; the chain
//!   is configured on an address nothing listens on);
//! * `get`: `GET /v1/payments/{id}` of payments made before;
//! * `list`: `GET /v1/payments?limit=10`.
//!
//! For each it prints units per second (payments, refunds or requests) and
//! the p50 / p99 / p99.9 latency of one request. Then it captures the SQL
//! the node sends for one card payment (`card-1req`) from the server log
//! (`log_statement = all` on that database for one run of the node, read
//! with `pg_read_file`, so the log must be the data directory's
//! `server.log` as scripts/lib/test-pg.sh starts it), turns it into a
//! pgbench script with fresh ids per transaction
//! (target/bench-api/replay.sql), and runs pgbench with it at the same
//! concurrencies: the node's figure over pgbench's is the share of the
//! database's own speed the node reaches. It also prints the database
//! transactions, statements and round trips of that one payment, and
//! statements per unit of every scenario from `pg_stat_statements`, and
//! the CPU milliseconds each unit cost (from /proc): the node (`node`),
//! this load generator (`gen`), the database server's processes (`db`,
//! when the server runs on this machine), the rest of the machine
//! (`other`: kernel work outside those processes), and the database
//! server's CPU per payment in pgbench's replay (`pgb db`), so the gap
//! between the node and pgbench shows whose CPU it is.
//!
//! Before the measured runs the bench warms the node up (three seconds of
//! card payments), analyzes the database and restarts the node, so that
//! what it measures is a node in service, not a database's first minute
//! (see the comment at the warm-up).
//!
//! Finally the node is left idle and the statements it sends in that window
//! are counted and printed, with its polling intervals.
//!
//! Options: `--seconds N` (per run, default 10), `--connections 1,8,32,128`,
//! `--scenarios card,card-1req,…`, `--idle-seconds N` (default 60),
//! `--quick` (3 s runs at 1 and 8 connections, 10 s idle), `--no-pgbench`,
//! `--waits` (sample what the node's database sessions are doing every
//! 5 ms of each run — on the CPU, waiting for a lock and which, or idle in
//! a transaction while the node works — and print the shares), `--top N`
//! (the N statements that took most of each run's database time, with
//! calls per unit, mean time and buffers), `--pool N` (the node's
//! connection pool; default the node's own, `database.max_connections`'
//! default).
//! `epg ledger check` runs (as a library call) after the runs and must be clean.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use epg::config::Mode;
use epg::db::Db;
use epg::merchants::{KeyKind, MerchantStore};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::Connection;
use support::Scratch;

const SCENARIOS: [&str; 8] = [
    "card",
    "card-1req",
    "manual",
    "refund",
    "bank",
    "crypto",
    "get",
    "list",
];

struct Options {
    seconds: u64,
    connections: Vec<usize>,
    scenarios: Vec<String>,
    idle_seconds: u64,
    pgbench: bool,
    /// Sample the node's backends during each run (`--waits`).
    waits: bool,
    /// Print the N statements that took most of each run's time (`--top N`).
    top: usize,
    /// The node's `database.max_connections` (`--pool N`; default the
    /// node's own default).
    pool: u32,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        connections: vec![1, 8, 32, 128],
        scenarios: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        idle_seconds: 60,
        pgbench: true,
        waits: false,
        top: 0,
        pool: epg::config::DEFAULT_MAX_CONNECTIONS,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut list = || -> Vec<String> {
            args.next()
                .unwrap_or_default()
                .split(',')
                .map(str::to_owned)
                .collect()
        };
        match arg.as_str() {
            "--seconds" => o.seconds = list()[0].parse().unwrap_or(10),
            "--connections" => {
                o.connections = list().iter().filter_map(|c| c.parse().ok()).collect();
            }
            "--scenarios" => o.scenarios = list(),
            "--idle-seconds" => o.idle_seconds = list()[0].parse().unwrap_or(60),
            "--quick" => {
                o.seconds = 3;
                o.connections = vec![1, 8];
                o.idle_seconds = 10;
            }
            "--no-pgbench" => o.pgbench = false,
            "--waits" => o.waits = true,
            "--top" => o.top = list()[0].parse().unwrap_or(10),
            "--pool" => {
                o.pool = list()[0]
                    .parse()
                    .unwrap_or(epg::config::DEFAULT_MAX_CONNECTIONS)
            }
            "--bench" => {}
            other => {
                eprintln!("unknown option {other}; see benches/api.rs");
                std::process::exit(2);
            }
        }
    }
    for s in &o.scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            eprintln!("unknown scenario {s}; one of {}", SCENARIOS.join(","));
            std::process::exit(2);
        }
    }
    o
}

/// A fresh Luhn-valid 16-digit Visa number (no sandbox test card).
fn visa() -> String {
    let mut rng = rand::thread_rng();
    let mut digits: Vec<u32> = vec![4, 9, 1];
    while digits.len() < 15 {
        digits.push(rng.gen_range(0..10));
    }
    // The check digit makes the Luhn sum of all 16 a multiple of 10.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect()
}

fn card_method() -> Value {
    json!({
        "type": "card",
        "card": {"number": visa(), "exp_month": 12, "exp_year": 2040, "cvc": "123"},
    })
}

/// One client: a keep-alive connection of its own to the node, spoken to
/// in plain HTTP/1.1. The load generator shares the machine's two cores
/// with the node and the database, so it does the least a client can: it
/// writes a request and reads the response by its `Content-Length` (a
/// general HTTP client cost about 0.1 ms of CPU a payment more, which the
/// node's figure paid and pgbench's did not).
struct Client {
    addr: String,
    auth: String,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// An open connection and what was read past the last response.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(base: &str, key: &str) -> Self {
        Self {
            addr: base.trim_start_matches("http://").to_owned(),
            auth: format!("Bearer {key}"),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// A request; its latency goes to `lat`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        lat: &mut Vec<Duration>,
    ) -> Value {
        use tokio::io::AsyncWriteExt;
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\n",
            self.addr, self.auth
        )
        .into_bytes();
        if let Some(body) = &body {
            request.extend_from_slice(
                format!(
                    "content-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
        request.extend_from_slice(b"\r\n");
        if let Some(body) = &body {
            request.extend_from_slice(body);
        }
        let mut guard = self.conn.lock().await;
        let started = Instant::now();
        if guard.is_none() {
            let stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            *guard = Some(Conn {
                stream,
                buf: Vec::with_capacity(16 * 1024),
            });
        }
        let conn = guard.as_mut().unwrap();
        conn.stream.write_all(&request).await.unwrap();
        // The head, then the body by its length.
        let head_end = loop {
            if let Some(at) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            read_more(&mut conn.stream, &mut conn.buf, path).await;
        };
        let head = std::str::from_utf8(&conn.buf[..head_end]).unwrap();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{path}: bad status line in {head:?}"));
        let length: usize = header(head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no content-length in {head:?}"));
        let close = header(head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        while conn.buf.len() < head_end + length {
            read_more(&mut conn.stream, &mut conn.buf, path).await;
        }
        let value: Value = serde_json::from_slice(&conn.buf[head_end..head_end + length])
            .unwrap_or_else(|e| panic!("{path}: {status}, a body that is not JSON: {e}"));
        conn.buf.drain(..head_end + length);
        if close {
            *guard = None;
        }
        lat.push(started.elapsed());
        assert!((200..300).contains(&status), "{path}: {status} {value}");
        value
    }

    async fn post(&self, path: &str, body: &Value, lat: &mut Vec<Duration>) -> Value {
        self.call("POST", path, Some(body), lat).await
    }

    async fn get(&self, path: &str, lat: &mut Vec<Duration>) -> Value {
        self.call("GET", path, None, lat).await
    }

    /// Creates a payment of `types` and confirms it with `method`; checks
    /// the status it ends in when `expect` says one, and returns its id.
    async fn create_and_confirm(
        &self,
        types: &[&str],
        manual: bool,
        method: Value,
        expect: Option<&str>,
        lat: &mut Vec<Duration>,
    ) -> String {
        let body = json!({
            "amount": 2000,
            "currency": "usd",
            "payment_method_types": types,
            "capture_method": if manual { "manual" } else { "automatic" },
        });
        let p = self.post("/v1/payments", &body, lat).await;
        let id = p["id"].as_str().unwrap().to_owned();
        let p = self
            .post(
                &format!("/v1/payments/{id}/confirm"),
                &json!({ "payment_method": method }),
                lat,
            )
            .await;
        if let Some(expect) = expect {
            assert_eq!(p["status"], expect, "{p}");
        }
        id
    }

    /// Runs one unit of `scenario` (payment, refund or request).
    async fn unit(&self, scenario: &str, ids: &[String], lat: &mut Vec<Duration>) {
        match scenario {
            "card" => {
                self.create_and_confirm(&["card"], false, card_method(), Some("succeeded"), lat)
                    .await;
            }
            "card-1req" => {
                let body = json!({
                    "amount": 2000,
                    "currency": "usd",
                    "payment_method_types": ["card"],
                    "confirm": true,
                    "payment_method": card_method(),
                });
                let p = self.post("/v1/payments", &body, lat).await;
                assert_eq!(p["status"], "succeeded", "{p}");
            }
            "refund" => {
                // The payment's own requests are not the refund's latency.
                let mut own = Vec::new();
                let id = self
                    .create_and_confirm(
                        &["card"],
                        false,
                        card_method(),
                        Some("succeeded"),
                        &mut own,
                    )
                    .await;
                let r = self.post("/v1/refunds", &json!({"payment": id}), lat).await;
                assert_eq!(r["status"], "succeeded", "{r}");
            }
            "manual" => {
                let id = self
                    .create_and_confirm(
                        &["card"],
                        true,
                        card_method(),
                        Some("requires_capture"),
                        lat,
                    )
                    .await;
                let p = self
                    .post(&format!("/v1/payments/{id}/capture"), &json!({}), lat)
                    .await;
                assert_eq!(p["status"], "succeeded", "{p}");
            }
            "bank" => {
                let method = json!({"type": "bank_transfer"});
                self.create_and_confirm(&["bank_transfer"], false, method, None, lat)
                    .await;
            }
            "crypto" => {
                let method =
                    json!({"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}});
                self.create_and_confirm(&["crypto"], false, method, Some("requires_action"), lat)
                    .await;
            }
            "get" => {
                let id = &ids[rand::thread_rng().gen_range(0..ids.len())];
                self.get(&format!("/v1/payments/{id}"), lat).await;
            }
            "list" => {
                self.get("/v1/payments?limit=10", lat).await;
            }
            other => unreachable!("{other}"),
        }
    }
}

/// The value of header `name` in a response's `head`.
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads what the node sent next onto `buf`; the node closing the
/// connection mid-response is a failed run.
async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, path: &str) {
    use tokio::io::AsyncReadExt;
    buf.reserve(8 * 1024);
    let n = stream.read_buf(buf).await.unwrap();
    assert!(n > 0, "{path}: the node closed the connection mid-response");
}

/// What one run measured.
struct Run {
    units: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(
    base: &str,
    key: &str,
    scenario: &str,
    connections: usize,
    secs: u64,
    ids: Arc<Vec<String>>,
) -> Run {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = Client::new(base, key);
        let scenario = scenario.to_owned();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut units = 0u64;
            while Instant::now() < deadline {
                client.unit(&scenario, &ids, &mut lat).await;
                units += 1;
            }
            (units, lat)
        }));
    }
    let mut units = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (n, lat) = t.await.unwrap();
        units += n;
        latencies.extend(lat);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        units,
        elapsed,
        latencies,
    }
}

/// Shares of what the node's database sessions were doing, from sampling
/// `pg_stat_activity` (`--waits`): where a run's time went on the
/// database side. "idle in transaction" is a session holding a
/// transaction open while the node works between two of its statements.
struct Waits {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl Waits {
    async fn start(url: &str) -> Self {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT CASE
                                WHEN state = 'active' AND wait_event IS NULL THEN 'on cpu'
                                WHEN state = 'active' THEN wait_event_type || ':' || wait_event
                                WHEN state LIKE 'idle in transaction%' THEN 'idle in transaction'
                                ELSE 'idle'
                            END
                       FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND backend_type = 'client backend'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
                for (what,) in rows {
                    *seen.entry(what).or_default() += 1;
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            seen
        });
        Self { stop, task }
    }

    /// Stops sampling; one line of shares, busiest first, `idle` left out.
    async fn finish(self) -> String {
        let _ = self.stop.send(());
        let seen = self.task.await.unwrap_or_default();
        let busy: u64 = seen
            .iter()
            .filter(|(what, _)| what.as_str() != "idle")
            .map(|(_, n)| n)
            .sum();
        let mut shares: Vec<_> = seen.into_iter().filter(|(w, _)| w != "idle").collect();
        shares.sort_by_key(|share| std::cmp::Reverse(share.1));
        let mut line = format!("  busy sessions sampled: {busy};");
        for (what, n) in shares.iter().take(8) {
            #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
            let share = 100.0 * *n as f64 / busy.max(1) as f64;
            let _ = write!(line, " {what} {share:.0}%,");
        }
        line.pop();
        line
    }
}

/// p99.9 by nearest rank (support's percentile takes whole percents).
fn permille(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(1000).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// CPU time spent, in /proc's clock ticks (`USER_HZ`: 100 per second on
/// Linux, whatever the kernel's own tick rate): the node process, this
/// load generator, the database server's processes, and the whole machine
/// (every busy tick of every core), so they say whose CPU a payment costs;
/// the server's figure around pgbench's replay says what the database
/// alone needs for it.
#[derive(Clone, Copy)]
struct Cpu {
    node: u64,
    generator: u64,
    database: u64,
    machine: u64,
}

impl Cpu {
    /// `postmaster`: the database server's pid, when it runs on this
    /// machine and its data directory is readable ([`postmaster_pid`]).
    fn now(node: Option<u32>, postmaster: Option<u32>) -> Self {
        Self {
            node: node.map_or(0, |pid| process_ticks(&format!("/proc/{pid}/stat"))),
            generator: process_ticks("/proc/self/stat"),
            database: postmaster.map_or(0, server_ticks),
            machine: machine_busy_ticks(),
        }
    }

    /// Milliseconds per unit since `before`: the node, the generator, the
    /// database server's processes, and the rest of the machine (the
    /// kernel's work outside any of them, pgbench).
    fn per_unit(self, before: Self, units: u64) -> [String; 4] {
        let node = self.node.saturating_sub(before.node);
        let generator = self.generator.saturating_sub(before.generator);
        let database = self.database.saturating_sub(before.database);
        let machine = self.machine.saturating_sub(before.machine);
        let rest = machine.saturating_sub(node + generator + database);
        [node, generator, database, rest].map(|t| ticks_per_unit(t, units))
    }
}

/// The pid in the first line of the server's `postmaster.pid`.
async fn postmaster_pid(pool: &epg::db::Db) -> Option<u32> {
    let dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(pool)
        .await
        .ok()?;
    let text = std::fs::read_to_string(Path::new(&dir).join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The server's CPU: its processes' own ticks, and those of the children
/// it has reaped (a pgbench connection's backend ends with its run).
fn server_ticks(postmaster: u32) -> u64 {
    let stat = format!("/proc/{postmaster}/stat");
    let children =
        std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children"))
            .unwrap_or_default();
    let live: u64 = children
        .split_whitespace()
        .map(|pid| process_ticks(&format!("/proc/{pid}/stat")))
        .sum();
    live + process_ticks(&stat) + reaped_ticks(&stat)
}

/// User and system ticks of a process (fields 14 and 15 of its `stat`).
fn process_ticks(path: &str) -> u64 {
    stat_fields(path, 14, 15)
}

/// User and system ticks of the children a process has waited for
/// (fields 16 and 17).
fn reaped_ticks(path: &str) -> u64 {
    stat_fields(path, 16, 17)
}

/// The sum of two numeric fields of a `stat` file, numbered as proc(5)
/// does; counted after the command name, which may hold spaces.
fn stat_fields(path: &str, a: usize, b: usize) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = text.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name comes field 3 (the state).
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(a) + field(b)
}

/// Busy ticks of all cores: every column of `/proc/stat`'s `cpu` line but
/// idle and iowait (guest time is already counted in user).
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let columns: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|c| c.parse().ok())
        .collect();
    columns
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, c)| c)
        .sum()
}

/// Ticks (10 ms each) per unit, in milliseconds with two decimals.
fn ticks_per_unit(ticks: u64, units: u64) -> String {
    if units == 0 {
        return "-".into();
    }
    #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
    let ms = ticks as f64 * 10.0 / units as f64;
    format!("{ms:.2}")
}

/// The node, as a child process.
struct Node {
    child: tokio::process::Child,
    base: String,
}

impl Node {
    async fn start(config: &Path) -> Self {
        let text = std::fs::read_to_string(config).unwrap();
        let listen = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .kill_on_drop(true)
            .spawn()
            .expect("epg serve");
        let base = format!("http://{listen}");
        let probe = reqwest::Client::new();
        for _ in 0..600 {
            if probe
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("epg serve did not answer /healthz at {base}");
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the node drains and closes its pool.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(
    dir: &Path,
    name: &str,
    url: &str,
    master_key: &str,
    pool: u32,
    quiet: bool,
) -> PathBuf {
    // The capture's node polls rarely, so no poll lands between its markers.
    let polls = if quiet {
        "\n[webhooks]\npoll_interval_ms = 60000\n\n[payments]\nexpiry_interval_secs = 3600\n"
    } else {
        ""
    };
    let config = format!(
        r#"mode = "test"

[server]
listen = "127.0.0.1:{port}"
max_connections = 4096

[database]
url = "{url}"
max_connections = {pool}

[security]
master_key = "{master_key}"
rate_limit_per_second = 1000000
rate_limit_burst = 1000000
public_rate_limit_per_second = 1000000
public_rate_limit_burst = 1000000

[log]
format = "json"
level = "error"
{polls}
[[chains]]
chain_id = 31337
# Nothing listens here: quotes need no chain, and the watcher only retries.
http_url = "http://127.0.0.1:9"
confirmations = 3
router = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
anchor = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
treasury = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
retry_cap_ms = 30000

[[chains.assets]]
symbol = "usdc"
decimals = 6
token_address = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
usd_peg = true
"#,
        port = free_port(),
    );
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    path
}

/// Total `pg_stat_statements` calls in this database (the bench's own
/// queries about it excluded), or `None` without the extension.
async fn statement_count(pool: &Db) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(calls)::bigint FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_read_file%'",
    )
    .fetch_one(pool)
    .await
    .ok()
    .map(Option::unwrap_or_default)
}

/// Statements per query text in this database since the last reset.
/// The `n` statements of this database that took the most time since the
/// last reset: share of the total, calls per unit, mean, buffers per call.
async fn top_statements(pool: &Db, n: usize, units: u64) -> Vec<String> {
    let rows: Vec<(String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT query, calls, total_exec_time, sum(total_exec_time) OVER (),
                shared_blks_hit + shared_blks_read
           FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_stat_activity%'
          ORDER BY total_exec_time DESC
          LIMIT $1",
    )
    .bind(i64::try_from(n).unwrap_or(10))
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.into_iter()
        .map(|(query, calls, total, all, blocks)| {
            let text: String = query
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(90)
                .collect();
            #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
            let (share, per_unit, mean, per_call) = (
                100.0 * total / all.max(f64::MIN_POSITIVE),
                calls as f64 / units.max(1) as f64,
                total / calls.max(1) as f64,
                blocks as f64 / calls.max(1) as f64,
            );
            format!(
                "    {share:>4.1}%  {per_unit:>5.2}/unit  {mean:>6.3} ms  {per_call:>6.0} buf  {text}"
            )
        })
        .collect()
}

async fn statements_by_query(pool: &Db) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT query, calls FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_read_file%'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let mut map = BTreeMap::new();
    for (q, n) in rows {
        *map.entry(q.split_whitespace().collect::<Vec<_>>().join(" "))
            .or_insert(0) += n;
    }
    map
}

/// One statement the node sent, with its parameters as SQL literals.
#[derive(Debug, Clone)]
struct Logged {
    text: String,
    params: Vec<Option<String>>,
}

/// Reads the server log from `offset` and returns the statements logged
/// by `log_statement = all` between the two markers.
fn parse_log(log: &str, start: &str, end: &str) -> Vec<Logged> {
    // A record starts with the log line prefix `%m [%p] `: a timestamp, a
    // zone, the pid in brackets; continuation lines have none.
    let is_record = |l: &str| {
        let b = l.as_bytes();
        b.len() > 24 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && l.contains("] ")
    };
    let mut records: Vec<String> = Vec::new();
    for line in log.lines() {
        if is_record(line) || records.is_empty() {
            records.push(line.to_owned());
        } else if let Some(last) = records.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    let mut out: Vec<Logged> = Vec::new();
    let mut inside = false;
    for record in records {
        let Some((_, body)) = record.split_once("] ") else {
            continue;
        };
        if let Some(rest) = body.strip_prefix("LOG:  ") {
            let text = if let Some(s) = rest.strip_prefix("statement: ") {
                s
            } else if let Some(s) = rest.strip_prefix("execute ") {
                s.split_once(": ").map_or(s, |(_, q)| q)
            } else {
                continue;
            };
            if text.contains(start) {
                inside = true;
                continue;
            }
            if text.contains(end) {
                break;
            }
            if inside {
                out.push(Logged {
                    text: text.to_owned(),
                    params: Vec::new(),
                });
            }
        } else if let Some(rest) = body.strip_prefix("DETAIL:  parameters: ")
            && inside
            && let Some(last) = out.last_mut()
        {
            last.params = parse_params(rest);
        }
    }
    out
}

/// `$1 = 'a', $2 = NULL, …` → the literals.
fn parse_params(s: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' {
            while i < bytes.len() && bytes[i] != '=' {
                i += 1;
            }
            i += 2; // "= "
            if s.get(char_offset(s, i)..)
                .is_some_and(|r| r.starts_with("NULL"))
            {
                out.push(None);
                i += 4;
            } else if i < bytes.len() && bytes[i] == '\'' {
                let (body, next) = literal_body(&bytes, i + 1);
                out.push(Some(format!("'{body}'")));
                i = next;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The body of the SQL string literal whose opening quote is just before
/// `start` (doubled quotes kept as they are), and the index after its
/// closing quote.
fn literal_body(chars: &[char], start: usize) -> (String, usize) {
    let mut body = String::new();
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                body.push_str("''");
                i += 2;
                continue;
            }
            break;
        }
        body.push(chars[i]);
        i += 1;
    }
    (body, i + 1)
}

fn char_offset(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(b, _)| b)
}

/// `sql` as pgbench's prepared mode can run it, as the node runs it: each
/// statement parsed and planned once per connection, `:r` its one
/// parameter. pgbench takes every `:name` for a variable, even inside a
/// string literal (a timestamp's `21:05`, a ledger key's `:capture`), so a
/// literal holding a colon or a fresh id is rewritten as a concatenation:
/// `'pay_ab' || :r` and `chr(58)` for each colon. Comments are dropped.
fn for_prepared(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len() + 64);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                let (body, next) = literal_body(&chars, i + 1);
                i = next;
                if body.contains([':', FRESH]) {
                    let mut pieces = Vec::new();
                    let mut piece = String::new();
                    for c in body.chars() {
                        if c == ':' || c == FRESH {
                            pieces.push(format!("'{piece}'::text"));
                            piece.clear();
                            pieces.push(if c == ':' {
                                "chr(58)".into()
                            } else {
                                ":r".into()
                            });
                        } else {
                            piece.push(c);
                        }
                    }
                    pieces.push(format!("'{piece}'::text"));
                    let _ = write!(out, "({})", pieces.join(" || "));
                } else {
                    let _ = write!(out, "'{body}'");
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Where [`fresh_ids`] puts pgbench's `:r` ([`for_prepared`] writes it).
const FRESH: char = '\u{1}';

/// Ids of objects made per payment (`pay_`, `pop_`, `evt_`, … and 24
/// letters or digits) get their last 16 characters from pgbench's `:r`, so
/// every replayed transaction makes objects of its own. Merchant ids stay.
fn fresh_ids(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_lowercase() {
                j += 1;
            }
            let prefix_len = j - i;
            // `pay_…` and the like, and a client secret's `secret_…`.
            if (2..=6).contains(&prefix_len) && j < chars.len() && chars[j] == '_' {
                let mut k = j + 1;
                while k < chars.len() && chars[k].is_ascii_alphanumeric() {
                    k += 1;
                }
                let prefix: String = chars[i..j].iter().collect();
                if k - (j + 1) == 24 && prefix != "mer" {
                    out.extend(&chars[i..k - 16]);
                    out.push(FRESH);
                    i = k;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The pgbench script replaying `statements`, each `$n` replaced by its
/// logged value cast to the type PostgreSQL infers for it.
async fn replay_script(pool: &Db, statements: &[Logged], what: &str) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let mut script = format!(
        "-- Generated by `scripts/bench api`: the SQL `epg serve` sent for one card\n\
         -- payment ({what}), from the server log, ids made fresh per\n\
         -- transaction. Do not edit.\n\
         \\set r random(1000000000000000, 9999999999999999)\n",
    );
    let mut prepared = Vec::new();
    for (n, s) in statements.iter().enumerate() {
        let mut text = s.text.trim().trim_end_matches(';').to_owned();
        if !s.params.is_empty() {
            let name = format!("bench_replay_{n}");
            let types: Vec<String> = match sqlx::query_scalar::<_, Vec<String>>(&format!(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = '{name}'"
            ))
            .fetch_optional(&mut *conn)
            .await
            .unwrap()
            {
                Some(t) => t,
                None => {
                    sqlx::raw_sql(&format!("PREPARE {name} AS {text}"))
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    prepared.push(name.clone());
                    sqlx::query_scalar(&format!(
                        "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = '{name}'"
                    ))
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap()
                }
            };
            for (i, value) in s.params.iter().enumerate().rev() {
                let ty = types.get(i).map_or("text", String::as_str);
                let literal = match value {
                    Some(v) => format!("{v}::{ty}"),
                    None => format!("NULL::{ty}"),
                };
                text = text.replace(&format!("${}", i + 1), &literal);
            }
        }
        writeln!(script, "{};", for_prepared(&fresh_ids(&text))).unwrap();
    }
    // Only this script's statements: DEALLOCATE ALL would also drop the
    // connection's own cached statements, which sqlx then fails to find.
    for name in prepared {
        sqlx::raw_sql(&format!("DEALLOCATE {name}"))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    script
}

/// Transactions, statements and round trips of a captured sequence.
fn shape(statements: &[Logged]) -> (usize, usize, usize) {
    let mut transactions = 0;
    let mut in_tx = false;
    let mut sql = 0;
    for s in statements {
        let head = s.text.trim_start().to_uppercase();
        if head.starts_with("BEGIN") {
            in_tx = true;
            transactions += 1;
        } else if head.starts_with("COMMIT") || head.starts_with("ROLLBACK") {
            in_tx = false;
        } else {
            sql += 1;
            if !in_tx {
                transactions += 1;
            }
        }
    }
    (transactions, sql, statements.len())
}

/// pgbench's transactions per second on `script` with `clients`.
async fn pgbench(url: &str, script: &Path, clients: usize, secs: u64) -> Result<f64, String> {
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c"])
        .arg(clients.to_string())
        .arg("-j")
        .arg(clients.min(2).to_string())
        .arg("-T")
        .arg(secs.to_string())
        .arg("-f")
        .arg(script)
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("pgbench: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("pgbench failed:\n{stdout}\n{stderr}"));
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench output:\n{stdout}\n{stderr}"))
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn ratio(node: u64, bound: f64) -> String {
    if bound <= 0.0 {
        return "-".into();
    }
    format!("{:.2}", node as f64 / bound)
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn per_unit(n: i64, units: u64) -> String {
    if units == 0 {
        return "-".into();
    }
    format!("{:.1}", n as f64 / units as f64)
}

/// Whether the node takes `confirm: true` on create (the "before" of
/// issue 19 did not).
async fn confirms_on_create(base: &str, key: &str) -> bool {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/payments"))
        .bearer_auth(key)
        .json(
            &json!({"amount": 2000, "currency": "usd", "payment_method_types": ["card"],
                      "confirm": true, "payment_method": card_method()}),
        )
        .send()
        .await
        .unwrap();
    response.status().is_success()
}

/// Makes one card payment through `node` between two markers and returns
/// the statements the server logged for it.
async fn capture_one(
    pool: &Db,
    url: &str,
    node: &Node,
    key: &str,
    scenario: &str,
) -> Result<Vec<Logged>, String> {
    let size: i64 = sqlx::query_scalar("SELECT size FROM pg_stat_file('server.log')")
        .fetch_one(pool)
        .await
        .map_err(|e| format!("the server log is not the data directory's server.log: {e}"))?;
    let start = format!("epg-bench-capture-start-{}", std::process::id());
    let end = format!("epg-bench-capture-end-{}", std::process::id());
    let client = Client::new(&node.base, key);
    let mut lat = Vec::new();
    // A connection opened after `log_statement` was set, so its markers
    // are logged too.
    let mut marks = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    // One payment first, so prepared statements and caches are warm.
    client.unit(scenario, &[], &mut lat).await;
    sqlx::query(&format!("SELECT '{start}'"))
        .execute(&mut marks)
        .await
        .unwrap();
    client.unit(scenario, &[], &mut lat).await;
    sqlx::query(&format!("SELECT '{end}'"))
        .execute(&mut marks)
        .await
        .unwrap();
    // The log is written asynchronously by the server's stderr.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log: String = sqlx::query_scalar("SELECT pg_read_file('server.log', $1, 200000000)")
        .bind(size)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
    let statements = parse_log(&log, &start, &end);
    if statements.is_empty() {
        return Err("no statements between the markers in server.log".into());
    }
    Ok(statements)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-api");
    std::fs::create_dir_all(&out_dir).unwrap();
    let scratch = Scratch::create(&format!("epg_bench_api_{}", std::process::id()), 4).await;
    let pool = scratch.pool.clone();
    let stats = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await
        .is_ok()
        && statement_count(&pool).await.is_some();
    if !stats {
        println!("(pg_stat_statements is not loaded: no statement counts)");
    }
    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Bench Merchant").await.unwrap();
    let (_, key) = merchants
        .create_key(&merchant.id, KeyKind::Secret, Mode::Test)
        .await
        .unwrap();
    let key = key.secret;
    let node_pool = o.pool;
    let master_key = epg::crypto::Keyring::generate_base64();
    let config = write_config(
        &out_dir,
        "epg.toml",
        &scratch.url,
        &master_key,
        node_pool,
        false,
    );
    let capture_config = write_config(
        &out_dir,
        "epg-capture.toml",
        &scratch.url,
        &master_key,
        node_pool,
        true,
    );
    let mut o = o;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "api bench: {} s per run, connections {:?}, node pool {node_pool}, {cores} cores, \
         load average before: {}",
        o.seconds,
        o.connections,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // The capture: one node run with every statement logged.
    let mut replays: BTreeMap<&str, PathBuf> = BTreeMap::new();
    if o.pgbench {
        sqlx::raw_sql(&format!(
            "ALTER DATABASE {} SET log_statement = 'all'",
            scratch.name
        ))
        .execute(&pool)
        .await
        .unwrap();
        let node = Node::start(&capture_config).await;
        if !confirms_on_create(&node.base, &key).await {
            println!("(this node has no `confirm: true` on create: card-1req skipped)");
            o.scenarios.retain(|s| s != "card-1req");
        }
        for (scenario, what) in [
            ("card", "create, then confirm"),
            ("card-1req", "create with confirm: true"),
        ] {
            if !o.scenarios.iter().any(|s| s == scenario) {
                continue;
            }
            match capture_one(&pool, &scratch.url, &node, &key, scenario).await {
                Ok(statements) => {
                    let (transactions, sql, trips) = shape(&statements);
                    println!(
                        "one card payment ({what}): {transactions} database transactions, \
                         {sql} statements, {trips} round trips (BEGIN/COMMIT included)"
                    );
                    let script = replay_script(&pool, &statements, what).await;
                    let path = out_dir.join(format!("replay-{scenario}.sql"));
                    std::fs::write(&path, script).unwrap();
                    println!("  replay script: {}", path.display());
                    replays.insert(scenario, path);
                }
                Err(e) => println!("(no capture of {scenario}, so no pgbench replay: {e})"),
            }
        }
        node.stop().await;
        sqlx::raw_sql(&format!(
            "ALTER DATABASE {} RESET log_statement",
            scratch.name
        ))
        .execute(&pool)
        .await
        .unwrap();
    }

    let node = Node::start(&config).await;
    // Payments for `get`.
    let mut ids = Vec::new();
    {
        let client = Client::new(&node.base, &key);
        let mut lat = Vec::new();
        for _ in 0..200 {
            let p = client
                .post(
                    "/v1/payments",
                    &json!({"amount": 1500, "currency": "usd", "payment_method_types": ["card"]}),
                    &mut lat,
                )
                .await;
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
    }
    let ids = Arc::new(ids);
    // A node in service: some history, and statistics as autovacuum gives
    // a database within its first minute. Without them the node's prepared
    // statements are planned for tables of unknown or tiny size, and a plan
    // made then is kept by the connection: a payment looked up by id read
    // every payment of the bench's one merchant through the (merchant_id,
    // status) index, and the velocity counts every attempt, costs that grew
    // with each run until autovacuum's first analyze (docs/performance.md).
    // So: a few seconds of card payments, ANALYZE, and a new node process
    // (new connections, no plan from before).
    run(&node.base, &key, "card", 8, 3, ids.clone()).await;
    sqlx::raw_sql("ANALYZE").execute(&pool).await.unwrap();
    node.stop().await;
    let node = Node::start(&config).await;

    let postmaster = postmaster_pid(&pool).await;
    if postmaster.is_none() {
        println!("(the database server's processes are not readable here: `db` reads 0)");
    }
    println!();
    println!(
        "CPU ms per unit: the node, this load generator, the database server, the rest of \
         the machine, and the database server per payment of pgbench's replay"
    );
    println!(
        "{:<10} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>7}   {:>6} {:>6} {:>6} {:>6} {:>6}",
        "scenario",
        "conns",
        "units/s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9",
        "stmts/unit",
        "pgbench",
        "ratio",
        "node",
        "gen",
        "db",
        "other",
        "pgb db"
    );
    for scenario in &o.scenarios {
        for &connections in &o.connections {
            if stats {
                let _ = sqlx::query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
                    .execute(&pool)
                    .await;
            }
            let waits = if o.waits {
                Some(Waits::start(&scratch.url).await)
            } else {
                None
            };
            let cpu_before = Cpu::now(node.pid(), postmaster);
            let r = run(
                &node.base,
                &key,
                scenario,
                connections,
                o.seconds,
                ids.clone(),
            )
            .await;
            let cpu = Cpu::now(node.pid(), postmaster).per_unit(cpu_before, r.units);
            let waits = match waits {
                Some(w) => Some(w.finish().await),
                None => None,
            };
            let statements = if stats {
                statement_count(&pool).await.unwrap_or(0)
            } else {
                0
            };
            // Before pgbench's replay adds its own statements.
            let top = if stats && o.top > 0 {
                top_statements(&pool, o.top, r.units).await
            } else {
                Vec::new()
            };
            let units = support::per_second(r.units, r.elapsed);
            let requests =
                support::per_second(u64::try_from(r.latencies.len()).unwrap(), r.elapsed);
            let pgbench_before = Cpu::now(None, postmaster);
            let bound = match replays.get(scenario.as_str()) {
                Some(script) => match pgbench(&scratch.url, script, connections, o.seconds).await {
                    Ok(tps) => Some(tps),
                    Err(e) => {
                        println!("{e}");
                        None
                    }
                },
                None => None,
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bound_text = bound.map_or("-".into(), |b| format!("{}", b.round() as u64));
            // pgbench's transactions in its run: its rate times the seconds
            // it ran (its own CPU is the machine's, not the server's).
            #[allow(
                clippy::float_arithmetic,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let replayed = bound.map_or(0, |b| (b * o.seconds as f64).round() as u64);
            let [_, _, pgbench_database, _] =
                Cpu::now(None, postmaster).per_unit(pgbench_before, replayed);
            println!(
                "{:<10} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>7}   {:>6} {:>6} {:>6} {:>6} {:>6}",
                scenario,
                connections,
                units,
                requests,
                support::ms(support::percentile(&r.latencies, 50)),
                support::ms(support::percentile(&r.latencies, 99)),
                support::ms(permille(&r.latencies, 999)),
                if stats {
                    per_unit(statements, r.units)
                } else {
                    "-".into()
                },
                bound_text,
                bound.map_or("-".into(), |b| ratio(units, b)),
                cpu[0],
                cpu[1],
                cpu[2],
                cpu[3],
                pgbench_database,
            );
            if let Some(waits) = waits {
                println!("{waits}");
            }
            for line in top {
                println!("{line}");
            }
        }
    }

    // Idle: what the node sends with nothing to do.
    println!();
    println!(
        "idle node for {} s; configured polling: webhooks.poll_interval_ms=1000 (claim + next due), \
         payments.expiry_interval_secs=30, settlement.interval_secs=300 (no anchor: off), \
         chain 31337 poll_interval_ms=2000 (RPC only), idempotency purge 3600 s, key rotation pass",
        o.idle_seconds
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    if stats {
        let _ = sqlx::query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
            .execute(&pool)
            .await;
        tokio::time::sleep(Duration::from_secs(o.idle_seconds)).await;
        let by_query = statements_by_query(&pool).await;
        let total: i64 = by_query.values().sum();
        for (q, n) in &by_query {
            let short: String = q.chars().take(110).collect();
            println!("{n:>7}  {short}");
        }
        #[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
        let rate = total as f64 / o.idle_seconds.max(1) as f64;
        println!("{total} statements in {} s ({rate:.2}/s)", o.idle_seconds);
    }
    node.stop().await;

    let report = epg::ledger::check(&pool).await.unwrap();
    println!();
    print!("{report}");
    drop(pool);
    scratch.drop().await;
    assert!(report.is_ok(), "the ledger must balance after the bench");
}
