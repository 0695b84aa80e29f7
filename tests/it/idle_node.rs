//! An idle node stays idle: with nothing to do, the statements it sends
//! PostgreSQL are its configured polls and nothing else (issue 19). The
//! counts come from `pg_stat_statements` (scripts/lib/test-pg.sh preloads
//! it), restricted to the node's own database.
//!
//! The polls are set far apart here, so every statement seen in the window
//! is one no configuration asked for. The window is
//! `EPG_IDLE_WINDOW_SECS` (default 5 s; `scripts/bench api` ends with the
//! same count for 60 s with the default intervals).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use epg::db::Db;

use crate::common;

/// Statements per query text of database `db`, this test's own excluded.
async fn statements(pool: &Db) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT query, calls FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_statements%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_query = BTreeMap::new();
    for (query, calls) in rows {
        *by_query.entry(query).or_insert(0) += calls;
    }
    by_query
}

#[tokio::test]
async fn an_idle_node_sends_only_its_configured_polls() {
    let app = common::spawn_app_with(|c| {
        c.webhooks.poll_interval_ms = 60_000;
        c.payments.expiry_interval_secs = 3600;
        c.settlement.interval_secs = 3600;
    })
    .await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&app.pool)
        .await
        .unwrap();
    println!(
        "configured polling: webhooks.poll_interval_ms={} payments.expiry_interval_secs={} \
         settlement.interval_secs={} (chains: {})",
        app.config.webhooks.poll_interval_ms,
        app.config.payments.expiry_interval_secs,
        app.config.settlement.interval_secs,
        app.config.chains.len(),
    );
    // Start-up work (the first pass of every job, the worker's first
    // claims) is done well within this, even on a loaded machine.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = std::env::var("EPG_IDLE_WINDOW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    let before = statements(&app.pool).await;
    tokio::time::sleep(Duration::from_secs(window)).await;
    let after = statements(&app.pool).await;

    let mut total = 0;
    println!("statements of an idle node in {window} s:");
    for (query, calls) in &after {
        let n = calls - before.get(query).copied().unwrap_or(0);
        if n > 0 {
            total += n;
            println!(
                "{n:>8}  {}",
                query.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    println!("{total} statements in {window} s");
    // At most 2 a second beyond the polls, which are an hour or a minute
    // apart here; before the fix the webhook worker alone sent ~400 a second.
    let allowed = i64::try_from(2 * window).unwrap();
    assert!(
        total <= allowed,
        "an idle node sent {total} statements in {window} s (at most {allowed} allowed)"
    );
    app.stop().await;
}
