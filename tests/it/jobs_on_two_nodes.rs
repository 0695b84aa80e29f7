//! Background jobs run by two nodes on one database at the same moment do
//! each unit of work once: settlement (each due merchant settled once, each
//! ledger entry in one batch, each checkpoint anchored once, each batch
//! announced once), the resumption of processor operations a node left
//! pending, the re-sealing of values under a new master key, and the purge
//! of idempotency keys. Each node is its own connection pool, as two
//! processes would be.
//!
//! The other jobs have theirs next to their own tests: webhook deliveries
//! (`webhooks_delivery::two_nodes_make_each_attempt_exactly_once`), the chain
//! watcher (`chain_watcher::two_watchers_of_one_chain_on_one_database_count_each_payment_once`),
//! the hot wallet (`chain_sends::two_nodes_with_the_hot_wallet_pay_each_refund_once`),
//! card authorization expiry
//! (`payments_api::uncaptured_authorizations_are_voided_after_their_lifetime`)
//! and crypto quote expiry and underpayment flagging
//! (`crypto_expiry::two_nodes_expiring_and_flagging_crypto_quotes_at_once_do_each_once`).
//! The event bus listener and TLS reloading do no work that could be done
//! twice: they wake other tasks and read files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::pg_proxy::{Fault, PgProxy};
use common::{TestApp, json, spawn_app_with, spawn_on, test_config, test_database};
use epg::db::Db;
use epg::devnet::anvil::DEV_KEY_0;
use epg::transparency::TransparencyLog;
use epg::transparency::anchor::{AnchorOptions, Anchorer};
use serde_json::json;

async fn pay(app: &TestApp, key: &str, amount: i64) {
    let payment = json(
        app.post(
            "/v1/payments",
            key,
            &json!({"amount": amount, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    let confirmed = json(
        app.post(
            &format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap()),
            key,
            &json!({"payment_method": {"type": "card", "card":
                {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");
}

/// A node's own pool on the app's database.
async fn node_pool(app: &TestApp) -> Db {
    epg::db::connect(&app.database_url, 5).await.unwrap()
}

async fn count(pool: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn two_nodes_settling_and_anchoring_at_once_settle_and_anchor_each_batch_once() {
    let anvil = common::anvil().await;
    let (deployment, chain) = common::deploy_with_own_treasury(&anvil).await;
    let (rpc, node_chain) = (anvil.rpc_url(), chain.clone());
    let contract = deployment.anchor;
    let app = spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = contract.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
        // The node's own schedule stays out of the way; the test runs it.
        config.settlement.interval_secs = 3600;
        config.chains = vec![node_chain];
    })
    .await;
    let (_, other_key) = app.merchant().await;
    for key in [&app.secret_key, &other_key] {
        pay(&app, key, 1500).await;
        pay(&app, key, 2500).await;
    }
    // Both merchants' daily period has passed.
    sqlx::query("UPDATE merchants SET created_at = now() - interval '2 days'")
        .execute(&app.pool)
        .await
        .unwrap();

    let anchorer = || async {
        Anchorer::connect(
            &anvil.rpc_url(),
            contract,
            DEV_KEY_0.parse().unwrap(),
            AnchorOptions {
                confirmations: 1,
                poll_interval: Duration::from_millis(50),
                ..AnchorOptions::default()
            },
        )
        .await
        .unwrap()
    };
    let (anchorer_a, anchorer_b) = (anchorer().await, anchorer().await);
    let log = TransparencyLog::new(anchorer_a.origin()).unwrap();
    let (node_a, node_b) = (node_pool(&app).await, node_pool(&app).await);
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = tokio::join!(
        epg::settlement::jobs::settle_due(&node_a, &log, Some(&anchorer_a), now),
        epg::settlement::jobs::settle_due(&node_b, &log, Some(&anchorer_b), now),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2, "each due merchant settled once");

    let pool = &app.pool;
    assert_eq!(count(pool, "SELECT count(*) FROM settlements").await, 2);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM settlements WHERE anchored_at IS NULL"
        )
        .await,
        0
    );
    // Each payment's capture is settled in one batch, and each batch's
    // leaves (the payment and its fee) are in the log once.
    assert_eq!(
        count(pool, "SELECT count(*) FROM settlement_items").await,
        4
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM transparency_leaves").await,
        8
    );
    assert_eq!(
        count(
            pool,
            "SELECT coalesce(sum(leaf_count), 0)::bigint FROM settlements"
        )
        .await,
        8
    );
    // One confirmed anchor per anchored checkpoint, one announcement per batch.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) - count(DISTINCT tree_size) FROM transparency_anchors
              WHERE status = 'confirmed'"
        )
        .await,
        0
    );
    for key in [&app.secret_key, &other_key] {
        let events = json(
            app.get("/v1/events?type=settlement.anchored", key).await,
            200,
        )
        .await;
        assert_eq!(events["data"].as_array().unwrap().len(), 1);
    }
    // Run again at once: nothing left to do for either.
    let (a, b) = tokio::join!(
        epg::settlement::jobs::settle_due(&node_a, &log, Some(&anchorer_a), now),
        epg::settlement::jobs::settle_due(&node_b, &log, Some(&anchorer_b), now),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 0);
    assert_eq!(count(pool, "SELECT count(*) FROM settlements").await, 2);
    let report = epg::ledger::check(pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    common::reconcile_clean(pool, &chain).await;
}

#[tokio::test]
async fn two_nodes_purging_idempotency_keys_at_once_purge_each_key_once() {
    let app = common::spawn_app().await;
    for n in 0..6 {
        let response = app
            .client
            .post(format!("{}/v1/payments", app.address))
            .bearer_auth(&app.secret_key)
            .header("Idempotency-Key", format!("purge-{n}"))
            .json(&json!({"amount": 100 + n, "currency": "usd"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Four of them are past the retention.
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 days'
          WHERE key IN ('purge-0', 'purge-1', 'purge-2', 'purge-3')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let keys = app.config.keyring().unwrap();
    let store =
        |pool: Db| epg::idempotency::IdempotencyStore::new(pool, Duration::from_secs(60), &keys);
    let (a, b) = (store(node_pool(&app).await), store(node_pool(&app).await));
    let (purged_a, purged_b) = tokio::join!(a.purge_expired(), b.purge_expired());
    assert_eq!(purged_a.unwrap() + purged_b.unwrap(), 4);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM idempotency_keys").await,
        2
    );
}

/// `Payments` of a node with its own pool.
async fn payments_node(app: &TestApp) -> epg::payments::Payments {
    let pool = node_pool(app).await;
    epg::payments::Payments::new(
        pool.clone(),
        std::sync::Arc::new(epg::methods::Connectors::sandbox(pool)),
        &app.config.keyring().unwrap(),
        false,
        time::Duration::days(7),
        app.address.clone(),
        Vec::new(),
    )
}

#[tokio::test]
async fn two_nodes_resuming_processor_operations_at_once_finish_each_once() {
    // The node's own database connections go through a proxy that can
    // lose a COMMIT; its own expiry and resumption job stays out of the way.
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
    config.payments.expiry_interval_secs = 3600;
    let app = spawn_on(pool, config).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let payment = json(
            app.post(
                "/v1/payments",
                &app.secret_key,
                &json!({"amount": 5000, "currency": "usd", "capture_method": "manual"}),
            )
            .await,
            200,
        )
        .await;
        let id = payment["id"].as_str().unwrap().to_owned();
        json(
            app.post(
                &format!("/v1/payments/{id}/confirm"),
                &app.secret_key,
                &json!({"payment_method": {"type": "card", "card":
                    {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
            )
            .await,
            200,
        )
        .await;
        // The capture is made at the processor; its booking is lost.
        proxy.arm(
            "UPDATE payment_operations SET status",
            Fault::DropBeforeCommit,
        );
        let capture = app
            .client
            .post(format!("{}/v1/payments/{id}/capture", app.address))
            .bearer_auth(&app.secret_key)
            .header("Idempotency-Key", format!("capture-{n}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(capture.status(), 503);
        ids.push(id);
    }
    sqlx::query(
        "UPDATE payment_operations SET locked_until = now() - interval '1 second'
          WHERE status = 'pending'",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let (node_a, node_b) = (payments_node(&app).await, payments_node(&app).await);
    let (a, b) = tokio::join!(node_a.resume_stale(), node_b.resume_stale());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        2,
        "each operation resumed by one node"
    );
    for id in &ids {
        let payment = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        assert_eq!(payment["status"], "succeeded", "{payment}");
        assert_eq!(payment["amount_received"], 5000);
        let succeeded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE object_id = $1 AND type = 'payment.succeeded'",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(succeeded, 1, "{id}");
    }
    let (a, b) = tokio::join!(node_a.resume_stale(), node_b.resume_stale());
    assert_eq!(a.unwrap() + b.unwrap(), 0);
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn two_nodes_resealing_under_a_new_master_key_at_once_reseal_each_value_once() {
    let app = common::spawn_app().await;
    // Sealed values: card numbers, a webhook secret, saved responses.
    for n in 0..3 {
        let response = app
            .client
            .post(format!("{}/v1/payments", app.address))
            .bearer_auth(&app.secret_key)
            .header("Idempotency-Key", format!("reseal-{n}"))
            .json(&json!({"amount": 700 + n, "currency": "usd"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    pay(&app, &app.secret_key, 1200).await;
    pay(&app, &app.secret_key, 1300).await;
    json(
        app.post(
            "/v1/webhook_endpoints",
            &app.secret_key,
            &json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}),
        )
        .await,
        200,
    )
    .await;
    let keys = epg::crypto::Keyring::new(
        &epg::crypto::Keyring::generate_base64(),
        std::slice::from_ref(&app.config.security.master_key),
    )
    .unwrap();
    let before = epg::rotation::remaining(&app.pool, &keys)
        .await
        .unwrap()
        .sealed();
    assert!(before >= 6, "{before}");

    let (node_a, node_b) = (node_pool(&app).await, node_pool(&app).await);
    let stop = tokio_util::sync::CancellationToken::new();
    let options = epg::rotation::Options {
        batch_size: 1,
        pause: Duration::ZERO,
    };
    let (a, b) = tokio::join!(
        epg::rotation::rotate(&node_a, &keys, &options, &stop),
        epg::rotation::rotate(&node_b, &keys, &options, &stop),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.resealed() + b.resealed(),
        u64::try_from(before).unwrap(),
        "each value re-sealed by one node"
    );
    assert_eq!(a.unreadable() + b.unreadable(), 0);
    assert_eq!(
        epg::rotation::remaining(&app.pool, &keys)
            .await
            .unwrap()
            .sealed(),
        0
    );
}
