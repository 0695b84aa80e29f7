//! A crypto quote expires by the chain's clock as the watcher has seen it,
//! never by the wall clock alone: a transfer mined before `expires_at` but
//! seen late (the watcher lagged behind an endpoint that failed) still pays
//! the payment. A node against anvil whose watcher goes through an
//! [`RpcProxy`] that fails `eth_getLogs` until the test lets it through; the
//! expiry and underpayment jobs are run as if 16 minutes had passed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;
use crate::rpc_proxy;

use std::time::Duration;

use alloy::primitives::{B256, U64};
use alloy::providers::Provider;
use chain_support::Devnet;
use common::{TestApp, json, spawn_app_with};
use epg::chain::config::ChainConfig;
use epg::chain::reconcile::{self, Target};
use rpc_proxy::{Action, RpcProxy};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn payments(app: &TestApp) -> epg::payments::Payments {
    epg::payments::Payments::new(
        app.pool.clone(),
        std::sync::Arc::new(epg::methods::Connectors::sandbox(app.pool.clone())),
        &app.config.keyring().unwrap(),
        false,
        time::Duration::days(7),
        app.address.clone(),
        Vec::new(),
    )
}

/// A usd payment of `amount` cents quoted in dev USDC: (id, reference,
/// units, expires_at).
async fn quote(app: &TestApp, amount: i64) -> (String, B256, u64, u64) {
    let payment = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": amount, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let payment = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}}),
        )
        .await,
        200,
    )
    .await;
    let action = &payment["next_action"]["crypto"];
    (
        id,
        action["payment_reference"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        action["amount"].as_str().unwrap().parse().unwrap(),
        action["expires_at"].as_u64().unwrap(),
    )
}

async fn payment(app: &TestApp, id: &str) -> Value {
    json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await
}

async fn payment_until(app: &TestApp, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let p = payment(app, id).await;
        if check(&p) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("payment {id} never reached the expected state");
}

async fn events_of(app: &TestApp, kind: &str) -> usize {
    let events = json(
        app.get(
            &format!("/v1/events?type={kind}&limit=100"),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    events["data"].as_array().unwrap().len()
}

async fn cursor(app: &TestApp) -> Option<i64> {
    sqlx::query_scalar("SELECT block_number FROM chain_cursors WHERE chain_id = 31337")
        .fetch_optional(&app.pool)
        .await
        .unwrap()
        .flatten()
}

/// The ledger is consistent and the treasury matches the chain.
async fn books_balance(app: &TestApp, dev: &Devnet, chain: &ChainConfig) {
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    dev.mine(chain.confirmations).await;
    let head = i64::try_from(dev.head().await).unwrap();
    chain_support::wait_until(
        Duration::from_secs(20),
        "the watcher to reach the head",
        || async { cursor(app).await.is_some_and(|c| c >= head) },
    )
    .await;
    let report = reconcile::reconcile(&app.pool, &[Target::from_config(chain).unwrap()])
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_payment_made_on_time_is_never_canceled_or_flagged_because_the_watcher_lags() {
    let dev = Devnet::start(31337).await;
    let payer = dev.payer(0).await;
    let proxy = RpcProxy::start(&dev.anvil.rpc_url()).await;
    let mut chain = dev.chain(2);
    chain.start_block = dev.head().await + 1;
    let mut node_chain = chain.clone();
    node_chain.http_url.clone_from(&proxy.url);
    node_chain.ws_url = None;
    let app = spawn_app_with(move |config| config.chains = vec![node_chain]).await;
    let jobs = payments(&app);

    // One payment paid in full, another half paid and seen (processing).
    let (full, full_ref, full_units, expires_at) = quote(&app, 400).await;
    let (half, half_ref, half_units, _) = quote(&app, 600).await;
    payer.pay_usdc(half_units / 2, half_ref).await;
    dev.mine(chain.confirmations).await;
    payment_until(&app, &half, |p| p["status"] == "processing").await;
    // The payment may be seen before the watcher's last step reaches the
    // head; "lags" below means it moved no further than where it stood.
    let head = i64::try_from(dev.head().await).unwrap();
    chain_support::wait_until(
        Duration::from_secs(20),
        "the watcher to reach the head",
        || async { cursor(&app).await >= Some(head) },
    )
    .await;
    let seen = cursor(&app).await.unwrap();

    // The endpoint fails every log query from now on: the watcher stands
    // still while the customers pay, on time.
    proxy
        .on("eth_getLogs")
        .times(usize::MAX)
        .then(Action::Error("upstream request timeout".into()));
    payer.pay_usdc(full_units, full_ref).await;
    payer.pay_usdc(half_units - half_units / 2, half_ref).await;
    dev.mine(chain.confirmations).await;
    let mined_at = dev
        .provider()
        .get_block(dev.head().await.into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    assert!(mined_at < expires_at, "paid on time");
    chain_support::wait_until(Duration::from_secs(20), "the watcher to fail", || async {
        proxy.fired("eth_getLogs") > 0
    })
    .await;
    assert_eq!(cursor(&app).await, Some(seen), "the watcher lags");

    // The jobs run after the quotes' expiry by the wall clock; the watcher
    // has seen nothing past it.
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(16);
    let expired = epg::payments::jobs::expire_due(&jobs, later).await.unwrap();
    let flagged = epg::payments::crypto::flag_underpaid(&jobs, later)
        .await
        .unwrap();
    assert_eq!(
        (expired, flagged),
        (0, 0),
        "canceled or flagged underpaid while the transfers may be in blocks not yet seen"
    );
    assert_eq!(payment(&app, &full).await["status"], "requires_action");

    // The watcher catches up: both payments are paid, neither late.
    proxy.clear();
    for id in [&full, &half] {
        let done = payment_until(&app, id, |p| p["status"] == "succeeded").await;
        assert_eq!(done["crypto"]["exception"], Value::Null, "{done}");
    }
    assert_eq!(events_of(&app, "payment.crypto_exception").await, 0);
    assert_eq!(events_of(&app, "payment.canceled").await, 0);

    // A quote nobody pays expires once the watcher has seen a block past
    // its expiry, and not before.
    let (unpaid, _, _, unpaid_expiry) = quote(&app, 300).await;
    assert_eq!(
        epg::payments::jobs::expire_due(&jobs, later).await.unwrap(),
        0
    );
    let _: Value = dev
        .provider()
        .raw_request(
            "evm_setNextBlockTimestamp".into(),
            (U64::from(unpaid_expiry + 1),),
        )
        .await
        .unwrap();
    dev.mine(1).await;
    let head = i64::try_from(dev.head().await).unwrap();
    chain_support::wait_until(
        Duration::from_secs(20),
        "the watcher to pass the expiry",
        || async { cursor(&app).await.is_some_and(|c| c >= head) },
    )
    .await;
    assert_eq!(
        epg::payments::jobs::expire_due(&jobs, later).await.unwrap(),
        1
    );
    assert_eq!(payment(&app, &unpaid).await["status"], "canceled");
    assert_eq!(events_of(&app, "payment.canceled").await, 1);
    books_balance(&app, &dev, &chain).await;
}

/// Two nodes run the expiry and the underpayment check at the same moment,
/// after the watcher has passed the quotes' expiry: the unpaid quote is
/// canceled once and the half-paid one flagged once.
#[tokio::test]
async fn two_nodes_expiring_and_flagging_crypto_quotes_at_once_do_each_once() {
    let dev = Devnet::start(31337).await;
    let payer = dev.payer(0).await;
    let mut chain = dev.chain(2);
    chain.start_block = dev.head().await + 1;
    let node_chain = chain.clone();
    let app = spawn_app_with(move |config| config.chains = vec![node_chain]).await;
    let node = async || {
        let pool = epg::db::connect(&app.database_url, 5).await.unwrap();
        epg::payments::Payments::new(
            pool.clone(),
            std::sync::Arc::new(epg::methods::Connectors::sandbox(pool)),
            &app.config.keyring().unwrap(),
            false,
            time::Duration::days(7),
            app.address.clone(),
            Vec::new(),
        )
    };
    let (node_a, node_b) = (node().await, node().await);

    let (unpaid, _, _, unpaid_expires) = quote(&app, 300).await;
    let (half, half_ref, half_units, half_expires) = quote(&app, 600).await;
    // Past both: on a loaded machine the second quote is a second or more
    // younger than the first.
    let expires_at = unpaid_expires.max(half_expires);
    payer.pay_usdc(half_units / 2, half_ref).await;
    dev.mine(chain.confirmations).await;
    payment_until(&app, &half, |p| p["status"] == "processing").await;
    let _: Value = dev
        .provider()
        .raw_request(
            "evm_setNextBlockTimestamp".into(),
            (U64::from(expires_at + 1),),
        )
        .await
        .unwrap();
    dev.mine(1).await;
    let head = i64::try_from(dev.head().await).unwrap();
    chain_support::wait_until(
        Duration::from_secs(20),
        "the watcher to pass the expiry",
        || async { cursor(&app).await.is_some_and(|c| c >= head) },
    )
    .await;

    let later = OffsetDateTime::now_utc() + time::Duration::minutes(16);
    let (a, b) = tokio::join!(
        epg::payments::jobs::expire_due(&node_a, later),
        epg::payments::jobs::expire_due(&node_b, later),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1, "canceled once");
    // A pass skips a row another transaction holds (the watcher's step may,
    // at that moment): such a quote is flagged by a later pass, never twice.
    let mut flagged = 0;
    for _ in 0..100 {
        let (a, b) = tokio::join!(
            epg::payments::crypto::flag_underpaid(&node_a, later),
            epg::payments::crypto::flag_underpaid(&node_b, later),
        );
        flagged += a.unwrap() + b.unwrap();
        if flagged > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, b) = tokio::join!(
        epg::payments::crypto::flag_underpaid(&node_a, later),
        epg::payments::crypto::flag_underpaid(&node_b, later),
    );
    flagged += a.unwrap() + b.unwrap();
    if flagged != 1 {
        let state: Vec<(String, String, Option<String>, String, String, bool)> = sqlx::query_as(
            "SELECT p.id, p.status, c.exception, c.received::text, c.expected::text,
                    EXISTS (SELECT 1 FROM chain_cursors cur WHERE cur.chain_id = c.chain_id
                              AND cur.block_timestamp > c.expires_at)
               FROM crypto_payments c JOIN payments p ON p.id = c.payment_id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        panic!("flagged {flagged} times, not once: {state:?}");
    }
    assert_eq!(payment(&app, &unpaid).await["status"], "canceled");
    assert_eq!(
        payment(&app, &half).await["crypto"]["exception"],
        "underpaid"
    );
    assert_eq!(events_of(&app, "payment.canceled").await, 1);
    assert_eq!(events_of(&app, "payment.crypto_exception").await, 1);
    books_balance(&app, &dev, &chain).await;
}
