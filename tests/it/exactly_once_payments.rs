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
    // The key stays claimed while the outcome is unknown ...
    let early = post_with_key(&app, "/v1/refunds", "refund-1", &body).await;
    assert_eq!(early.status(), 409);
    // ... and once its lease passes, the retry finds the refund the first
    // try made and finishes it, instead of making a second.
    leases_pass(&app).await;
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
    let id = app.create_payment(2500, "usd").await;
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

/// A confirmation whose processor records cannot be written (the sandbox
/// processor keeps them in the node's database, and the connection dies
/// under the statement): 503 with `Retry-After`, the payment not failed;
/// the retry with the same key and the same details makes the call again
/// under the operation's key and charges the card once.
#[tokio::test]
async fn a_confirmation_whose_processor_records_fail_is_retried_not_failed() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let methods = [
        (card(CARD_OK), "succeeded"),
        (json!({"type": "bank_transfer"}), "processing"),
    ];
    for (round, (method, settled)) in methods.into_iter().enumerate() {
        let id = app.create_payment(2500, "usd").await;
        let path = format!("/v1/payments/{id}/confirm");
        let body = json!({ "payment_method": method });
        proxy.arm("INSERT INTO sandbox_processor_calls", Fault::LoseStatement);
        let first = post_with_key(&app, &path, &format!("{id}-1"), &body).await;
        assert_eq!(proxy.fired(), round + 1);
        assert_eq!(first.status(), 503, "{:?}", first.text().await);
        assert!(first.headers().get("retry-after").is_some());
        let now = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        assert_ne!(now["status"], "failed", "{now}");
        assert!(processor_calls(&app, &id).await.is_empty());

        // The broken connection left the request's outcome unknown, so its
        // key stays claimed until the lease passes.
        leases_pass(&app).await;
        let retried = json(
            post_with_key(&app, &path, &format!("{id}-1"), &body).await,
            200,
        )
        .await;
        assert_eq!(retried["status"], settled, "{retried}");
        let calls = processor_calls(&app, &id).await;
        assert_eq!(calls, vec![("authorize".to_owned(), 1)], "{calls:?}");
    }
    ledger_is_consistent(&app).await;
}

/// The retry must be the same request: another card under the key is
/// refused; and while the reconciler holds the operation (it may be giving
/// the call up) the retry waits for its outcome, then answers 409.
#[tokio::test]
async fn a_retried_confirmation_takes_its_pending_authorization_over_only_as_the_same_request() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let id = app.create_payment(2500, "usd").await;
    let path = format!("/v1/payments/{id}/confirm");
    let body = json!({"payment_method": card(CARD_OK)});
    proxy.arm("INSERT INTO sandbox_processor_calls", Fault::LoseStatement);
    let first = post_with_key(&app, &path, "confirm-1", &body).await;
    assert_eq!(first.status(), 503);
    leases_pass(&app).await;

    // The saved requests are gone (kept 24 hours); the operation keeps the
    // key, and it checks the card.
    forget_saved_requests(&app).await;
    let other = json!({"payment_method": card("5555555555554444")});
    let refused = json(post_with_key(&app, &path, "confirm-1", &other).await, 400).await;
    assert_eq!(
        refused["error"]["code"], "idempotency_key_reused",
        "{refused}"
    );
    assert_eq!(refused["error"]["param"], "Idempotency-Key");
    // So is a card that does not parse, and the authorization stays
    // pending for the retry that carries the first card.
    forget_saved_requests(&app).await;
    let unparsed = json!({"payment_method": card("4242424242424241")});
    let refused = json(
        post_with_key(&app, &path, "confirm-1", &unparsed).await,
        400,
    )
    .await;
    assert_eq!(
        refused["error"]["code"], "idempotency_key_reused",
        "{refused}"
    );
    let pending = count(
        &app,
        "SELECT count(*) FROM payment_operations WHERE payment_id = $1 AND status = 'pending'",
        &id,
    )
    .await;
    assert_eq!(pending, 1);

    // As `claim_stale` leaves an operation the reconciler is resuming.
    sqlx::query(
        "UPDATE payment_operations SET resumed = resumed + 1,
                locked_until = now() + interval '1 minute'
          WHERE payment_id = $1",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    forget_saved_requests(&app).await;
    let busy = json(post_with_key(&app, &path, "confirm-1", &body).await, 409).await;
    assert_eq!(
        busy["error"]["code"], "payment_operation_in_progress",
        "{busy}"
    );

    // Its lease ran out without an end (that reconciler died): the retry
    // takes the operation over and makes the call.
    leases_pass(&app).await;
    forget_saved_requests(&app).await;
    let retried = json(post_with_key(&app, &path, "confirm-1", &body).await, 200).await;
    assert_eq!(retried["status"], "succeeded", "{retried}");
    let calls = processor_calls(&app, &id).await;
    assert_eq!(calls, vec![("authorize".to_owned(), 1)], "{calls:?}");
    ledger_is_consistent(&app).await;
}

/// Drops every saved idempotent request, as their 24 hours do.
async fn forget_saved_requests(app: &TestApp) {
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&app.pool)
        .await
        .unwrap();
}

/// A 3-D Secure answer whose processor records fail: the retry carries the
/// code and finishes the challenge.
#[tokio::test]
async fn a_challenge_answer_whose_processor_records_fail_is_retried_not_failed() {
    let (app, proxy) = proxied_app(|_| {}).await;
    let id = app.create_payment(2500, "usd").await;
    let action = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": card("4000002760003184")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(action["next_action"]["type"], "otp_challenge", "{action}");
    let path = format!("/v1/payments/{id}/challenge");
    let body = json!({"code": epg::methods::sandbox::OTP_CODE});
    proxy.arm("INSERT INTO sandbox_processor_calls", Fault::LoseStatement);
    let first = post_with_key(&app, &path, "challenge-1", &body).await;
    assert_eq!(first.status(), 503);
    leases_pass(&app).await;
    let retried = json(post_with_key(&app, &path, "challenge-1", &body).await, 200).await;
    assert_eq!(retried["status"], "succeeded", "{retried}");
    ledger_is_consistent(&app).await;
}
