//! The verdict of a fault run, as a table: lost, duplicated, undelivered,
//! the books, the chain, the 5xx answers, and the time from each fault to
//! the first successful payment after it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use epg::db::Db;

use super::Injected;
use super::client::Client;
use crate::webhooks_support::Receiver;

pub struct Inputs<'a> {
    pub pool: &'a Db,
    pub merchant: &'a str,
    pub client: &'a Client,
    pub receiver: &'a Receiver,
    pub injected: &'a [Injected],
    pub crypto_paid: &'a [String],
    pub chain: &'a epg::chain::config::ChainConfig,
}

pub struct Table {
    rows: Vec<(String, String, bool)>,
}

impl Table {
    pub fn clean(&self) -> bool {
        self.rows.iter().all(|(_, _, ok)| *ok)
    }

    fn row(&mut self, what: &str, value: impl fmt::Display, ok: bool) {
        self.rows.push((what.to_owned(), value.to_string(), ok));
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        writeln!(f, "| {:width$} | result | ok |", "check")?;
        writeln!(f, "|{}|--------|----|", "-".repeat(width + 2))?;
        for (what, value, ok) in &self.rows {
            writeln!(
                f,
                "| {what:width$} | {value} | {} |",
                if *ok { "ok" } else { "FAIL" }
            )?;
        }
        Ok(())
    }
}

/// Later states rank higher: an acknowledged state may only move forward.
fn rank(object: &str, status: &str) -> u8 {
    match (object, status) {
        ("payment", "requires_payment_method") => 0,
        ("payment", "requires_action") => 1,
        ("payment", "processing") => 2,
        ("payment", "requires_capture") => 3,
        ("payment", _) => 4,
        (_, "pending") => 0,
        _ => 1,
    }
}

pub async fn check(i: &Inputs<'_>) -> Table {
    let mut table = Table { rows: Vec::new() };
    let stats = {
        let s = i.client.stats.lock().unwrap();
        (
            s.acks.clone(),
            s.bugs.clone(),
            s.successes.clone(),
            s.requests,
            s.unavailable,
            s.unreachable,
            s.in_use,
            s.gave_up.clone(),
        )
    };
    let (acks, bugs, successes, requests, unavailable, unreachable, in_use, gave_up) = stats;

    // Lost: every acknowledged object still exists, in that state or later.
    let mut lost = Vec::new();
    for ack in &acks {
        let table_name = if ack.object == "payment" {
            "payments"
        } else {
            "refunds"
        };
        let now: Option<String> =
            sqlx::query_scalar(&format!("SELECT status FROM {table_name} WHERE id = $1"))
                .bind(&ack.id)
                .fetch_optional(i.pool)
                .await
                .unwrap();
        match now {
            None => lost.push(format!("{} missing", ack.id)),
            Some(now) if rank(ack.object, &now) < rank(ack.object, &ack.status) => {
                lost.push(format!("{} {} -> {now}", ack.id, ack.status));
            }
            Some(_) => {}
        }
    }
    table.row(
        &format!("acknowledged writes lost (of {})", acks.len()),
        format!("{} {}", lost.len(), lost.join(", ")),
        lost.is_empty(),
    );

    // Duplicated: one payment and one refund per logical request, one
    // ledger entry per object and kind.
    let twice = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(i.merchant)
            .fetch_one(i.pool)
            .await
            .unwrap()
    };
    let payments_twice = twice(
        "SELECT count(*) FROM (SELECT metadata->>'fault_key' FROM payments
          WHERE merchant_id = $1 AND metadata ? 'fault_key' GROUP BY 1 HAVING count(*) > 1) d",
    )
    .await;
    let refunds_twice = twice(
        "SELECT count(*) FROM (SELECT metadata->>'fault_key' FROM refunds
          WHERE merchant_id = $1 AND metadata ? 'fault_key' GROUP BY 1 HAVING count(*) > 1) d",
    )
    .await;
    // The sandbox processor records each operation once under its key; a
    // payment authorized or captured twice, or more refunds at the
    // processor than card refunds, is a duplicate.
    let processor_twice = twice(
        "SELECT (SELECT count(*) FROM (SELECT c.payment_id, c.call FROM sandbox_processor_calls c
                   JOIN payments p ON p.id = c.payment_id
                  WHERE p.merchant_id = $1 AND c.call IN ('authorize', 'capture')
                  GROUP BY 1, 2 HAVING count(*) > 1) d)
              + abs((SELECT count(*) FROM sandbox_processor_calls c JOIN payments p ON p.id = c.payment_id
                      WHERE p.merchant_id = $1 AND c.call = 'refund')
                  - (SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id
                      WHERE r.merchant_id = $1 AND p.method = 'card' AND r.status <> 'failed'))",
    )
    .await;
    // A transfer a deep reorg took away and that was mined again is a new
    // generation, booked again under keys ending `:g<n>` (and its first
    // booking reversed): one entry per payment, kind and generation.
    let ledger_twice = twice(
        "SELECT count(*) FROM (SELECT e.source, e.kind, substring(e.key from ':g[0-9]+$')
           FROM ledger_entries e
           JOIN payments p ON p.id = e.source WHERE p.merchant_id = $1
          GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
    )
    .await;
    table.row(
        "payments created twice",
        payments_twice,
        payments_twice == 0,
    );
    table.row("refunds created twice", refunds_twice, refunds_twice == 0);
    table.row(
        "processor calls made twice",
        processor_twice,
        processor_twice == 0,
    );
    table.row(
        "ledger entries booked twice (per payment, kind and reorg generation)",
        ledger_twice,
        ledger_twice == 0,
    );

    // Crypto payments paid on chain all succeeded, once.
    let mut crypto_open = 0;
    for id in i.crypto_paid {
        let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
            .bind(id)
            .fetch_one(i.pool)
            .await
            .unwrap();
        if status != "succeeded" {
            crypto_open += 1;
        }
    }
    table.row(
        &format!(
            "crypto payments paid on chain not succeeded (of {})",
            i.crypto_paid.len()
        ),
        crypto_open,
        crypto_open == 0,
    );

    // Every event reached the receiver.
    let events: Vec<String> =
        sqlx::query_scalar("SELECT id FROM events WHERE merchant_id = $1 ORDER BY seq")
            .bind(i.merchant)
            .fetch_all(i.pool)
            .await
            .unwrap();
    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..600 {
        delivered.clear();
        for r in i.receiver.delivered() {
            *delivered.entry(r.event_id).or_default() += 1;
        }
        if events.iter().all(|e| delivered.contains_key(e)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let missing = events
        .iter()
        .filter(|e| !delivered.contains_key(*e))
        .count();
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    table.row(
        &format!("events not delivered (of {})", events.len()),
        missing,
        missing == 0,
    );
    table.row(
        "events delivered more than once (allowed: at least once)",
        duplicates,
        true,
    );

    // The books and the chain.
    let ledger = epg::ledger::check(i.pool).await.unwrap();
    table.row(
        "epg ledger check",
        if ledger.is_ok() {
            "clean".to_owned()
        } else {
            format!("{ledger:?}")
        },
        ledger.is_ok(),
    );
    let reconciled = reconcile(i.pool, i.chain).await;
    table.row(
        "epg reconcile chain",
        match &reconciled {
            Ok(clean) => clean,
            Err(problem) => problem,
        },
        reconciled.is_ok(),
    );

    // Answers.
    table.row(
        &format!("5xx other than 503+Retry-After (of {requests} requests)"),
        format!(
            "{} {}",
            bugs.len(),
            bugs.iter()
                .map(|b| format!("[{} {} {}]", b.status, b.request_id, b.what))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        bugs.is_empty(),
    );
    table.row("503 with Retry-After (retried)", unavailable, true);
    table.row("no node reachable (retried)", unreachable, true);
    table.row("409 idempotency_key_in_use (retried)", in_use, true);
    table.row(
        "requests given up",
        format!("{} {}", gave_up.len(), gave_up.join(" ")),
        gave_up.is_empty(),
    );
    for fault in i.injected {
        let first = successes.iter().filter(|s| **s > fault.at).min();
        let value = first.map_or("none after".to_owned(), |s| {
            format!("{:.2}s", s.duration_since(fault.at).as_secs_f64())
        });
        table.row(
            &format!("{} -> next successful payment", fault.what),
            value,
            first.is_some(),
        );
    }
    table
}

/// `epg reconcile chain` as an operator's periodic job runs it, under load:
/// what it printed. A clean run leaves the checkpoint that a later
/// reconciliation starts from when the endpoint no longer has the start
/// block's state (after anvil restarted, it keeps only its head's). A run
/// that catches a send between its mining and its recording is not clean;
/// the job is tried a few times, as the next scheduled run would.
pub async fn reconcile_under_load(pool: &Db, chain: &epg::chain::config::ChainConfig) -> String {
    let mut last = String::new();
    for _ in 0..10 {
        let target = match epg::chain::reconcile::Target::from_config(chain) {
            Ok(target) => target,
            Err(e) => return e.to_string(),
        };
        match epg::chain::reconcile::reconcile(pool, &[target]).await {
            Ok(report) if report.is_ok() => return "clean (checkpoint recorded)".to_owned(),
            Ok(report) => last = report.to_string(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    format!("not clean: {last}")
}

/// `epg reconcile chain` once the watcher has passed the head: "clean"
/// (and where the treasury comparison started, when from a checkpoint),
/// else what it found (or why it could not run), so the table is printed
/// whatever happens.
async fn reconcile(pool: &Db, chain: &epg::chain::config::ChainConfig) -> Result<String, String> {
    use alloy::providers::{Provider, ProviderBuilder};
    let url = chain
        .http_url
        .parse::<reqwest::Url>()
        .map_err(|e| format!("{e}"))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let head = match provider.get_block_number().await {
        Ok(head) => i64::try_from(head).unwrap_or(i64::MAX),
        Err(e) => return Err(format!("the chain's head: {e}")),
    };
    for _ in 0..1200 {
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT block_number FROM chain_cursors WHERE chain_id = $1")
                .bind(i64::try_from(chain.chain_id).unwrap_or(0))
                .fetch_optional(pool)
                .await
                .unwrap()
                .flatten();
        if cursor.is_some_and(|c| c >= head) {
            let target =
                epg::chain::reconcile::Target::from_config(chain).map_err(|e| e.to_string())?;
            let report = epg::chain::reconcile::reconcile(pool, &[target])
                .await
                .map_err(|e| e.to_string())?;
            if !report.is_ok() {
                return Err(report.to_string());
            }
            // Where a treasury comparison started from a checkpoint (anvil
            // restarted keeps no state before its head).
            let marker = "from the checkpoint a clean reconciliation left at block ";
            let from: Vec<String> = report
                .checked
                .iter()
                .filter_map(|line| {
                    let asset = line.split(" treasury ").nth(1)?.split(':').next()?;
                    let block = line.split(marker).nth(1)?.split(' ').next()?;
                    Some(format!("{asset} since the checkpoint at block {block}"))
                })
                .collect();
            return Ok(if from.is_empty() {
                "clean".to_owned()
            } else {
                format!("clean (treasury {})", from.join(", "))
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("the watcher never reached block {head}"))
}
