//! Money moves exactly once through processors (issue 14, items 3 and 4):
//! a refund, a capture, an authorization or a void whose COMMIT is lost —
//! before it reaches PostgreSQL (a crash) or after (a lost answer) — is
//! finished by a retry or by the reconciler, and the processor is asked to
//! act once. The database connection runs through a proxy that drops the
//! COMMIT at the chosen moment; the sandbox processor records every
//! idempotency key it receives (`/v1/test/payments/{id}/processor_calls`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::pg_proxy::{Fault, PgProxy};
use common::{TestApp, json, spawn_on, test_config, test_database};
use serde_json::{Value, json};

const CARD_OK: &str = "4242424242424242";

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
}

/// A node whose own database connections go through `PgProxy`.
async fn proxied_app(tweak: impl FnOnce(&mut epg::config::Config)) -> (TestApp, PgProxy) {
    let (pool, url) = test_database().await;
    let upstream = url
        .split_once('@')
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .0
        .to_owned();
    let proxy = PgProxy::start(upstream).await;
    let mut config = test_config(&proxy.url(&url));
    tweak(&mut config);
    (spawn_on(pool, config).await, proxy)
}

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.secret_key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn paid(app: &TestApp, capture: &str) -> String {
    let p = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 5000, "currency": "usd", "capture_method": capture}),
        )
        .await,
        200,
    )
    .await;
    let id = p["id"].as_str().unwrap().to_owned();
    json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": card(CARD_OK)}),
        )
        .await,
        200,
    )
    .await;
    id
}

/// The sandbox processor's record of `payment`: (call, calls) per key.
async fn processor_calls(app: &TestApp, payment: &str) -> Vec<(String, i64)> {
    let list = json(
        app.get(
            &format!("/v1/test/payments/{payment}/processor_calls"),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["call"].as_str().unwrap().to_owned(),
                c["calls"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Lets every idempotency claim's lease pass now (as time would).
async fn leases_pass(app: &TestApp) {
    sqlx::query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE payment_operations SET locked_until = now() - interval '1 second'
          WHERE status = 'pending'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// Waits until the claim of `key` no longer holds (its request's end was
/// recorded), then checks that this happened while its lease (at least
/// 30 s from the claim) still ran: the claim was ended, not outlived.
async fn claim_ended_before_its_lease(app: &TestApp, key: &str) {
    let ended = |pool: sqlx::PgPool, key: String| async move {
        sqlx::query_as::<_, (bool, bool)>(
            "SELECT locked_until <= now(), locked_until < created_at + interval '30 seconds'
               FROM idempotency_keys WHERE key = $1",
        )
        .bind(key)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    for _ in 0..200 {
        let (free, early) = ended(app.pool.clone(), key.to_owned()).await;
        if free {
            assert!(early, "the claim of {key} ran out instead of ending");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the claim of {key} still holds after its request ended");
}

async fn ledger_is_consistent(app: &TestApp) {
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "ledger check failed: {report:?}");
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refund_whose_commit_answer_is_lost_is_not_refunded_twice_on_retry() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let id = paid(&app, "automatic").await;
    let body = json!({"payment": id, "amount": 1200});
    // The refund commits, but the node never hears it did.
    proxy.arm("INSERT INTO refunds", Fault::DropAfterCommit);
    let first = post_with_key(&app, "/v1/refunds", "refund-1", &body).await;
    assert_eq!(
        first.status(),
        503,
        "a lost connection is the database unavailable"
    );
    assert_eq!(proxy.fired(), 1);
    // The request is over, so its claim ends as soon as the database
    // answers again, not when its lease would: the retry runs at once,
    // finds the refund the first try made and finishes it, instead of
    // making a second.
    claim_ended_before_its_lease(&app, "refund-1").await;
    let retried = json(
        post_with_key(&app, "/v1/refunds", "refund-1", &body).await,
        200,
    )
    .await;
    assert_eq!(retried["status"], "succeeded");
    let again = json(
        post_with_key(&app, "/v1/refunds", "refund-1", &body).await,
        200,
    )
    .await;
    assert_eq!(again["id"], retried["id"]);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM refunds WHERE payment_id = $1",
            &id
        )
        .await,
        1
    );
    let refunds: Vec<_> = processor_calls(&app, &id)
        .await
        .into_iter()
        .filter(|(call, _)| call == "refund")
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let payment = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["amount_refunded"], 1200);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_refund_whose_booking_crashes_after_the_processor_paid_is_booked_once() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let id = paid(&app, "automatic").await;
    let body = json!({"payment": id, "amount": 700});
    // The processor refunds; the node dies before booking it.
    proxy.arm("UPDATE refunds SET status", Fault::DropBeforeCommit);
    let first = post_with_key(&app, "/v1/refunds", "refund-2", &body).await;
    assert_eq!(
        first.status(),
        503,
        "a lost connection is the database unavailable"
    );
    assert_eq!(proxy.fired(), 1);
    leases_pass(&app).await;
    let retried = json(
        post_with_key(&app, "/v1/refunds", "refund-2", &body).await,
        200,
    )
    .await;
    assert_eq!(retried["status"], "succeeded");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM refunds WHERE payment_id = $1",
            &id
        )
        .await,
        1
    );
    // One refund at the processor, asked for again under the same key.
    let refunds: Vec<_> = processor_calls(&app, &id)
        .await
        .into_iter()
        .filter(|(call, _)| call == "refund")
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM ledger_entries WHERE kind = 'refund' AND source = $1",
            retried["id"].as_str().unwrap()
        )
        .await,
        1
    );
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_capture_whose_booking_is_lost_is_finished_by_the_reconciler_once() {
    let (app, proxy) = proxied_app(|c| c.payments.expiry_interval_secs = 1).await;
    let id = paid(&app, "manual").await;
    proxy.arm(
        "UPDATE payment_operations SET status",
        Fault::DropBeforeCommit,
    );
    let first = post_with_key(
        &app,
        &format!("/v1/payments/{id}/capture"),
        "capture-1",
        &json!({}),
    )
    .await;
    assert_eq!(
        first.status(),
        503,
        "a lost connection is the database unavailable"
    );
    let pending = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(pending["status"], "requires_capture");
    // Nobody retries: the reconciler resumes the operation once its lease
    // has passed, learns from the processor that it captured, books it.
    leases_pass(&app).await;
    let mut payment = Value::Null;
    for _ in 0..100 {
        payment = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        if payment["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount_received"], 5000);
    let captures: Vec<_> = processor_calls(&app, &id)
        .await
        .into_iter()
        .filter(|(call, _)| call == "capture")
        .collect();
    assert_eq!(captures, vec![("capture".to_owned(), 1)]);
    // The merchant's retry now gets the captured payment, not an error.
    leases_pass(&app).await;
    let retried = json(
        post_with_key(
            &app,
            &format!("/v1/payments/{id}/capture"),
            "capture-1",
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(retried["status"], "succeeded");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_confirmation_whose_answer_is_lost_charges_the_card_once() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let p = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 2500, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/payments/{id}/confirm");
    let body = json!({"payment_method": card(CARD_OK)});
    proxy.arm(
        "UPDATE payment_operations SET status",
        Fault::DropAfterCommit,
    );
    let first = post_with_key(&app, &path, "confirm-1", &body).await;
    assert_eq!(
        first.status(),
        503,
        "a lost connection is the database unavailable"
    );
    leases_pass(&app).await;
    let retried = json(post_with_key(&app, &path, "confirm-1", &body).await, 200).await;
    assert_eq!(retried["status"], "succeeded");
    let calls = processor_calls(&app, &id).await;
    assert_eq!(calls, vec![("authorize".to_owned(), 1)], "{calls:?}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM ledger_entries WHERE kind = 'payment' AND source = $1",
            &id
        )
        .await,
        1
    );
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn the_expiry_job_voids_each_payment_in_its_own_transaction() {
    let (app, proxy) = proxied_app(|c| c.payments.expiry_interval_secs = 3600).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(paid(&app, "manual").await);
    }
    sqlx::query("UPDATE payments SET expires_at = now() - interval '1 minute' WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&app.pool)
        .await
        .unwrap();
    // The booking of one void is lost; the others must stand.
    proxy.arm(
        "UPDATE payment_operations SET status",
        Fault::DropBeforeCommit,
    );
    let payments = epg::payments::Payments::new(
        epg::db::connect(&app.config.database.url, 4).await.unwrap(),
        std::sync::Arc::new(epg::methods::Connectors::sandbox(app.pool.clone())),
        &app.config.keyring().unwrap(),
        false,
        time::Duration::days(7),
        app.address.clone(),
        Vec::new(),
    );
    let _ = epg::payments::jobs::expire_due(&payments, time::OffsetDateTime::now_utc()).await;
    let canceled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments WHERE id = ANY($1) AND status = 'canceled'",
    )
    .bind(&ids)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(canceled, 2, "the voids the processor made are booked");
    // The third is finished from the processor's answer, void called once.
    leases_pass(&app).await;
    payments.resume_stale().await.unwrap();
    for id in &ids {
        let p = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        assert_eq!(p["status"], "canceled");
        assert_eq!(p["cancellation_reason"], "expired");
        let voids: Vec<_> = processor_calls(&app, id)
            .await
            .into_iter()
            .filter(|(call, _)| call == "void")
            .collect();
        assert_eq!(voids.len(), 1, "{voids:?}");
    }
    ledger_is_consistent(&app).await;
}
