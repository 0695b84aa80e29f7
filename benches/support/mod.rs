//! What the benchmarks share: scratch databases on the test PostgreSQL and
//! the arithmetic of their figures. Each bench is its own crate and uses
//! part of this, hence `dead_code`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod devnet;

use std::time::Duration;

use epg::db::Db;
use sqlx::{Connection, Executor, PgConnection};

/// The server the scratch databases are made on: `EPG_TEST_DATABASE_URL`,
/// as for the tests.
pub fn admin_url() -> String {
    std::env::var("EPG_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A migrated database of its own for one run; [`Scratch::drop`] removes it.
pub struct Scratch {
    pub name: String,
    pub url: String,
    pub pool: Db,
}

impl Scratch {
    /// Makes (or remakes) database `name`, migrated, with a pool of
    /// `connections`.
    pub async fn create(name: &str, connections: u32) -> Self {
        admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        admin(&format!("CREATE DATABASE {name}")).await;
        let admin_url = admin_url();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let pool = epg::db::connect(&url, connections).await.unwrap();
        epg::db::migrate(pool.pool()).await.unwrap();
        Self {
            name: name.to_owned(),
            url,
            pool,
        }
    }

    /// Closes the pool and drops the database.
    pub async fn drop(self) {
        self.pool.close().await;
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .await;
    }
}

/// A run's scratch databases, dropped together at the end; each named
/// `<prefix>_<label>_<pid>`.
pub struct Scratches {
    prefix: &'static str,
    made: Vec<Scratch>,
}

impl Scratches {
    /// None yet; `prefix` names the bench (`epg_bench_chain`).
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            made: Vec::new(),
        }
    }

    /// A fresh migrated database for `label`.
    pub async fn database(&mut self, label: &str) -> Db {
        let name = format!("{}_{label}_{}", self.prefix, std::process::id());
        let scratch = Scratch::create(&name, 10).await;
        let pool = scratch.pool.clone();
        self.made.push(scratch);
        pool
    }

    /// Drops every database made.
    pub async fn drop_all(self) {
        for scratch in self.made {
            scratch.drop().await;
        }
    }
}

async fn admin(sql: &str) {
    let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
    conn.execute(sql).await.unwrap();
}

/// The value after option `name` on the command line, if given and valid.
pub fn option<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The nearest-rank `p`th percentile of sorted durations (zero when empty).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Milliseconds with one decimal, for tables.
pub fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{}", us / 1000, (us % 1000) / 100)
}

/// Operations per second, in whole numbers.
pub fn per_second(n: u64, elapsed: Duration) -> u64 {
    let rate = u128::from(n) * 1_000_000 / elapsed.as_micros().max(1);
    u64::try_from(rate).unwrap_or(u64::MAX)
}
