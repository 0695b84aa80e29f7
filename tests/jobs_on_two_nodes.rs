//! Background jobs run by two nodes on one database at the same moment do
//! each unit of work once: settlement (each due merchant settled once, each
//! ledger entry in one batch, each checkpoint anchored once, each batch
//! announced once) and the purge of idempotency keys. Each node is its own
//! connection pool, as two processes would be.
//!
//! The other jobs have theirs next to their own tests: webhook deliveries
//! (`webhooks_delivery::two_nodes_make_each_attempt_exactly_once`), the chain
//! watcher (`chain_watcher::two_watchers_of_one_chain_on_one_database_count_each_payment_once`),
//! the hot wallet (`chain_sends::two_nodes_with_the_hot_wallet_pay_each_refund_once`),
//! card authorization expiry
//! (`payments_api::uncaptured_authorizations_are_voided_after_their_lifetime`)
//! and crypto quote expiry and underpayment flagging
//! (`crypto_expiry::two_nodes_expiring_and_flagging_crypto_quotes_at_once_do_each_once`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestApp, json, spawn_app_with};
use epg::devnet::anvil::DEV_KEY_0;
use epg::transparency::TransparencyLog;
use epg::transparency::anchor::{AnchorOptions, Anchorer};
use serde_json::json;
use sqlx::PgPool;

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
async fn node_pool(app: &TestApp) -> PgPool {
    epg::db::connect(&app.database_url, 5).await.unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
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
    let store = |pool: PgPool| {
        epg::idempotency::IdempotencyStore::new(pool, Duration::from_secs(60), &keys)
    };
    let (a, b) = (store(node_pool(&app).await), store(node_pool(&app).await));
    let (purged_a, purged_b) = tokio::join!(a.purge_expired(), b.purge_expired());
    assert_eq!(purged_a.unwrap() + purged_b.unwrap(), 4);
    assert_eq!(
        count(&app.pool, "SELECT count(*) FROM idempotency_keys").await,
        2
    );
}
