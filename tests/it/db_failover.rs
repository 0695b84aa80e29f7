//! A node on a multi-host database URL (`target_session_attrs=read-write`)
//! when its primary goes away: requests caught in the gap answer 503 with
//! `Retry-After` (never 500), the pool moves to the host that accepts
//! writes once there is one, and the retry under the same
//! `Idempotency-Key` creates the payment exactly once.
//!
//! Two private PostgreSQL servers stand in for a formation: B holds a copy
//! of A's database and refuses writes (`default_transaction_read_only`),
//! as a standby does; "promoting" it lifts that. The pg_auto_failover
//! formation itself is exercised by `scripts/faults` (full mode).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use epg::devnet::postgres::PrivateCluster;
use serde_json::{Value, json};

use crate::common;

async fn cluster(dir: &std::path::Path, name: &str) -> (PrivateCluster, u16) {
    let port = epg::devnet::anvil::free_port().unwrap();
    let cluster = PrivateCluster::start(&dir.join(name), port).await.unwrap();
    let admin = epg::db::connect(&cluster.url("postgres"), 1).await.unwrap();
    epg::db::create_database_if_missing(&admin, "epg")
        .await
        .unwrap();
    admin.close().await;
    (cluster, port)
}

async fn admin(port: u16, sql: &str) {
    let pool = epg::db::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), 1)
        .await
        .unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn create(app: &common::TestApp, key: &str) -> (u16, bool, Value) {
    let response = app
        .client
        .post(format!("{}/v1/payments", app.address))
        .bearer_auth(&app.secret_key)
        .header("Idempotency-Key", key)
        .json(&json!({"amount": 1234, "currency": "usd", "metadata": {"k": key}}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn primary_lost_answers_503_then_the_retry_succeeds_once_on_the_new_primary() {
    let dir = tempfile::Builder::new()
        .prefix("failover-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let (a, port_a) = cluster(dir.path(), "a").await;
    let (_b, port_b) = cluster(dir.path(), "b").await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{port_a},127.0.0.1:{port_b}/epg?target_session_attrs=read-write"
    );
    let pool_a = epg::db::connect(&format!("postgres://postgres@127.0.0.1:{port_a}/epg"), 2)
        .await
        .unwrap();
    epg::db::migrate(pool_a.pool()).await.unwrap();
    let app = common::spawn_on(pool_a.clone(), common::test_config(&url)).await;
    let (status, _, _) = create(&app, "before").await;
    assert_eq!(status, 200);

    // B becomes a copy of A that refuses writes: a standby.
    let dump = Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port_a.to_string(),
            "-U",
            "postgres",
            "epg",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(dump.status.success());
    let mut restore = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(port_b.to_string())
        .args(["-U", "postgres", "-d", "epg"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(restore.stdin.as_mut().unwrap(), &dump.stdout).unwrap();
    assert!(restore.wait().unwrap().success());
    admin(
        port_b,
        "ALTER DATABASE epg SET default_transaction_read_only = on",
    )
    .await;

    // The primary goes away: every answer is a 503 the client may retry.
    pool_a.close().await;
    a.stop().await.unwrap();
    for _ in 0..2 {
        let (status, retry_after, body) = create(&app, "in-the-gap").await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after, "503 without Retry-After: {body}");
        assert_eq!(body["error"]["type"], "api_error", "{body}");
    }

    // B is promoted; the same request, retried, lands there once.
    admin(
        port_b,
        "ALTER DATABASE epg SET default_transaction_read_only = off",
    )
    .await;
    let mut created = None;
    for _ in 0..100 {
        let (status, retry_after, body) = create(&app, "in-the-gap").await;
        match status {
            200 => {
                created = Some(body);
                break;
            }
            503 | 409 => {
                assert!(status == 409 || retry_after, "{body}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("answered {other}: {body}"),
        }
    }
    let created = created.expect("the retry never succeeded on the new primary");
    let (status, _, again) = create(&app, "in-the-gap").await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], created["id"]);
    let pool_b = epg::db::connect(&format!("postgres://postgres@127.0.0.1:{port_b}/epg"), 1)
        .await
        .unwrap();
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE metadata->>'k' = 'in-the-gap'")
            .fetch_one(&pool_b)
            .await
            .unwrap();
    assert_eq!(count, 1);
    pool_b.close().await;
}
