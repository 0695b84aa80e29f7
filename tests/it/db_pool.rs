//! The node's pool (`epg::db::Db`) against a real PostgreSQL: the
//! connection used last is handed out first, and a connection goes back to
//! the stack without sqlx's ping only when what ran on it ended well. A
//! transaction left open, a query cancelled halfway or a connection the
//! server killed must never reach the next caller as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use epg::db::Db;
use sqlx::{Connection, PgConnection};

use crate::common;

async fn backend(db: &Db) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db)
        .await
        .unwrap()
}

/// Opens `n` connections at once (so sqlx's pool holds several idle ones
/// afterwards), commits them in order, and returns their backends.
async fn warm(db: &Db, n: usize) -> Vec<i32> {
    let mut txs = Vec::new();
    for _ in 0..n {
        txs.push(db.begin().await.unwrap());
    }
    let mut pids = Vec::new();
    for mut tx in txs {
        pids.push(
            sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *tx)
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    pids
}

#[tokio::test]
async fn the_connection_used_last_is_handed_out_first() {
    let (db, _) = common::test_database().await;
    let pids = warm(&db, 4).await;
    let last = *pids.last().unwrap();
    // sqlx's own pool hands its idle connections out oldest first, so
    // these eight queries would have gone round all four backends.
    for _ in 0..8 {
        assert_eq!(backend(&db).await, last);
    }
    let mut tx = db.begin().await.unwrap();
    let in_tx: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(in_tx, last);
    db.close().await;
}

#[tokio::test]
async fn a_transaction_dropped_open_is_rolled_back_before_its_connection_is_used_again() {
    let (db, _) = common::test_database().await;
    sqlx::query("CREATE TABLE scratch (n int)")
        .execute(&db)
        .await
        .unwrap();
    {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("INSERT INTO scratch VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(42)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Dropped here, neither committed nor rolled back.
    }
    for _ in 0..20 {
        let mut tx = db.begin().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM scratch")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(rows, 0, "the dropped transaction's insert is gone");
        tx.commit().await.unwrap();
    }
    // Its lock went with it: another session can take it.
    let mut other = PgConnection::connect(&common::admin_url()).await.unwrap();
    let mut free = false;
    for _ in 0..50 {
        free = sqlx::query_scalar("SELECT pg_try_advisory_lock(42)")
            .fetch_one(&mut other)
            .await
            .unwrap();
        if free {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(free, "the dropped transaction's lock is released");
    db.close().await;
}

#[tokio::test]
async fn a_query_cancelled_halfway_leaves_no_answer_for_the_next_caller() {
    let (db, _) = common::test_database().await;
    warm(&db, 2).await;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.3)").fetch_one(&db),
    )
    .await;
    assert!(cancelled.is_err(), "the sleep outlasts the timeout");
    for n in 0..10 {
        let answer: i32 = sqlx::query_scalar("SELECT $1")
            .bind(n)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(answer, n);
    }
    let mut tx = db.begin().await.unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT 11")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(answer, 11);
    db.close().await;
}

#[tokio::test]
async fn a_connection_the_server_killed_fails_once_and_is_not_handed_out_again() {
    let (db, _) = common::test_database().await;
    let victim = backend(&db).await;
    let mut admin = PgConnection::connect(&common::admin_url()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .execute(&mut admin)
        .await
        .unwrap();
    // Handed out fresh, unpinged, as a connection used a moment ago is:
    // at most this one query sees the dead socket.
    let mut failures = 0;
    for _ in 0..5 {
        match sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&db)
            .await
        {
            Ok(pid) => assert_ne!(pid, victim),
            Err(e) => {
                assert!(epg::db::is_unavailable(&e), "{e}");
                failures += 1;
            }
        }
    }
    assert!(failures <= 1, "{failures} queries met the dead connection");

    // Parked, then killed while it sat idle: checked before it is used.
    let victim = backend(&db).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let pid = backend(&db).await;
    assert_ne!(pid, victim);
    db.close().await;
}

#[tokio::test]
async fn closing_waits_for_nothing_parked() {
    let (db, _) = common::test_database().await;
    warm(&db, 3).await;
    backend(&db).await;
    let closed = tokio::time::timeout(Duration::from_secs(30), db.close()).await;
    assert!(closed.is_ok(), "close returned");
    assert!(db.is_closed());
    assert!(refuses_as_closed(&db).await);
}

async fn refuses_as_closed(db: &Db) -> bool {
    matches!(
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(db).await,
        Err(sqlx::Error::PoolClosed)
    )
}

#[tokio::test]
async fn callers_waiting_for_a_full_pool_get_the_connections_others_finish_with() {
    let (_, url) = common::test_database().await;
    let db = epg::db::connect(&url, 2).await.unwrap();
    // Sixteen callers on two connections: most wait, and the connections
    // finished with must reach them rather than the stack (sqlx's pool,
    // where they wait, sees parked connections as in use).
    let mut tasks = Vec::new();
    for task in 0..16 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..20 {
                let mut tx = db.begin().await.unwrap();
                let got: i32 = sqlx::query_scalar("SELECT $1")
                    .bind(task * 100 + n)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(got, task * 100 + n);
                tx.commit().await.unwrap();
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(db.size() <= 2);
    db.close().await;
}

#[tokio::test]
async fn callers_keep_being_served_when_the_pool_stays_full_past_its_acquire_timeout() {
    let (_, url) = common::test_database().await;
    let db: Db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&url)
        .await
        .unwrap()
        .into();
    // Every connection stays out (handed from caller to caller) for four
    // acquire timeouts: nothing ever goes back to sqlx's pool, and no
    // caller may be sent to wait there.
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while tokio::time::Instant::now() < until {
                let mut tx = db.begin().await.unwrap();
                sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap() > 0);
    }
    db.close().await;
}

/// A pool dropped after its runtime (as a test's `block_on` leaves it, or a
/// process at exit) closes its parked connections without a runtime: sqlx's
/// own return of a connection would spawn a task and panic.
#[test]
fn a_pool_outliving_its_runtime_drops_without_a_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(async {
        let (db, _) = common::test_database().await;
        // Two connections parked on the stack.
        warm(&db, 2).await;
        backend(&db).await;
        db
    });
    drop(runtime);
    drop(db);
}
