//! The node watches its own contracts (issue 16), on a real anvil with the
//! real contracts and a real PostgreSQL: a treasury changed behind the
//! node's back raises the alert (log, metric, `/readyz`, `chain_alerts`)
//! and new quotes on that chain are refused until the treasury is the
//! configured one again; admin events are journalled once and follow
//! reorgs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U64};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use chain_support::{Devnet, RecordingSink, counter, watcher};
use common::{TestApp, json, spawn_app_with};
use epg::chain::config::ChainConfig;
use epg::chain::contracts::PaymentRouter;
use epg::chain::guard::QuoteRefusal;
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use serde_json::{Value, json};

/// Anvil's default account #5 (public devnet key): the thief's treasury.
const THIEF_KEY: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";

/// The router, signing with `key` (a fresh provider each time, so that no
/// cached nonce goes stale between senders).
fn router_as(
    anvil: &Anvil,
    router: Address,
    key: &str,
) -> PaymentRouter::PaymentRouterInstance<impl Provider> {
    let signer: PrivateKeySigner = key.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    PaymentRouter::new(router, provider)
}

macro_rules! mined {
    ($call:expr) => {{
        let receipt = $call.send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "transaction reverted");
    }};
}

/// Moves the chain's clock `seconds` on and mines a block at that time.
async fn advance(anvil: &Anvil, seconds: u64) {
    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let _: Value = provider
        .raw_request("evm_increaseTime".into(), (U64::from(seconds),))
        .await
        .unwrap();
    let _: Value = provider
        .raw_request("anvil_mine".into(), (U64::from(1),))
        .await
        .unwrap();
}

/// `/readyz`'s view of chain 31337's contracts.
async fn contracts(app: &TestApp) -> Value {
    let body: Value = app
        .client
        .get(format!("{}/readyz", app.address))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["checks"]["chains"]["31337"]["contracts"].clone()
}

/// Waits until `/readyz` shows the guard's judgement of a block at or after
/// `block` and `check` holds for it; returns it.
async fn readyz_until(
    app: &TestApp,
    block: u64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        let seen = contracts(app).await;
        if seen["checked_block"].as_u64().is_some_and(|b| b >= block) && check(&seen) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never showed {what}: {}", contracts(app).await);
}

fn alert_kinds(contracts: &Value) -> Vec<String> {
    contracts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates a payment and confirms it with crypto; the raw response.
async fn confirm(app: &TestApp, asset: &str) -> reqwest::Response {
    let payment = app.create_payment(2500, "usd").await;
    app.post(
        &format!("/v1/payments/{payment}/confirm"),
        &app.secret_key,
        &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": asset}}}),
    )
    .await
}

async fn head(anvil: &Anvil) -> u64 {
    ProviderBuilder::new()
        .connect_http(anvil.rpc_url().parse().unwrap())
        .get_block_number()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_treasury_changed_behind_the_nodes_back_raises_the_alert_and_refuses_quotes() {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let chain = ChainConfig::devnet(&deployment, &anvil.rpc_url());
    let configured = chain.treasury;
    let app = spawn_app_with(move |config| config.chains = vec![chain]).await;
    let thief: PrivateKeySigner = THIEF_KEY.parse().unwrap();

    // All is as configured: no alert, quotes are given.
    let seen = readyz_until(&app, head(&anvil).await, "a first judgement", |_| true).await;
    assert_eq!(alert_kinds(&seen), Vec::<String>::new(), "{seen}");
    assert!(seen["quotes_refused"].is_null(), "{seen}");
    json(confirm(&app, "usdc").await, 200).await;

    // The admin key (stolen) proposes the thief's address: announced, two
    // days away, so quotes that expire long before are still given.
    mined!(router_as(&anvil, deployment.router, DEV_KEY_0).proposeTreasury(thief.address()));
    let seen = readyz_until(&app, head(&anvil).await, "the pending change", |c| {
        alert_kinds(c).contains(&"treasury_change_pending".to_owned())
    })
    .await;
    assert!(seen["quotes_refused"].is_null(), "{seen}");
    json(confirm(&app, "usdc").await, 200).await;

    // Ten minutes before it may be accepted, a quote given now could be
    // paid after it: refused.
    advance(&anvil, 2 * 24 * 3600 - 600).await;
    let seen = readyz_until(&app, head(&anvil).await, "quotes refused", |c| {
        !c["quotes_refused"].is_null()
    })
    .await;
    assert!(
        seen["quotes_refused"]
            .as_str()
            .unwrap()
            .contains("could be paid after it"),
        "{seen}"
    );
    let refused = json(confirm(&app, "eth").await, 409).await;
    assert_eq!(refused["error"]["code"], "chain_unavailable", "{refused}");
    assert_eq!(refused["error"]["param"], "payment_method.crypto.chain_id");

    // The thief accepts: the router now pays someone else.
    advance(&anvil, 600).await;
    mined!(router_as(&anvil, deployment.router, THIEF_KEY).acceptTreasury());
    let seen = readyz_until(&app, head(&anvil).await, "the mismatch", |c| {
        alert_kinds(c).contains(&"treasury_mismatch".to_owned())
    })
    .await;
    assert_eq!(seen["treasury"], json!(thief.address()), "{seen}");
    assert_eq!(seen["configured_treasury"], json!(configured));
    assert!(
        seen["quotes_refused"]
            .as_str()
            .unwrap()
            .contains("not the configured"),
        "{seen}"
    );
    let refused = json(confirm(&app, "usdc").await, 409).await;
    assert_eq!(refused["error"]["code"], "chain_unavailable");
    assert_eq!(refused["error"]["param"], "payment_method.crypto.chain_id");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{}", thief.address())),
        "{refused}"
    );

    // The metric, the gauge and the operator's records.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("epg_chain_contract_alerts_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("epg_chain_quotes_refused{chain_id=\"31337\"} 1"),
        "{metrics}"
    );
    let open: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, subject FROM chain_alerts WHERE chain_id = 31337 AND cleared_at IS NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        open,
        [(
            "treasury_mismatch".to_owned(),
            format!("{:#x}", thief.address())
        )],
        "the pending change is over; the mismatch is open"
    );
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT event, severity FROM chain_admin_events
          WHERE chain_id = 31337 AND severity = 'critical' ORDER BY block_number, log_index",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            ("TreasuryProposed".to_owned(), "critical".to_owned()),
            ("TreasuryChanged".to_owned(), "critical".to_owned())
        ]
    );

    // The operator takes the treasury back (two more days): quotes resume
    // and the alert is closed.
    mined!(router_as(&anvil, deployment.router, DEV_KEY_0).proposeTreasury(configured));
    advance(&anvil, 2 * 24 * 3600).await;
    mined!(router_as(&anvil, deployment.router, DEV_KEY_0).acceptTreasury());
    let seen = readyz_until(&app, head(&anvil).await, "the alert cleared", |c| {
        alert_kinds(c).is_empty()
    })
    .await;
    assert!(seen["quotes_refused"].is_null(), "{seen}");
    json(confirm(&app, "usdc").await, 200).await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain_alerts WHERE cleared_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(open, 0);
}

/// Stepping a watcher by hand: admin events are journalled exactly once,
/// judged per asset (a token off the allow-list refuses that asset only),
/// and forgotten with the blocks a reorg drops, which clears the alerts.
#[tokio::test]
async fn admin_events_are_journalled_once_and_follow_reorgs() {
    let dev = Devnet::start(31337).await;
    let pool = common::test_db().await;
    let sink = RecordingSink::install(&pool).await;
    let (mut w, metrics, status) = watcher(dev.chain(3), &pool, &sink);
    // The deployment's own events (roles, treasury, allow-list, growth
    // limit) are the first journalled.
    let first = w.step().await.unwrap();
    assert!(first.admin_events >= 6, "{first:?}");
    assert!(
        status
            .get(31337)
            .unwrap()
            .contracts
            .unwrap()
            .alerts
            .is_empty()
    );
    let before = counter(&metrics, "chain_admin_events");
    let h0 = i64::try_from(first.head).unwrap();

    let router = |key| router_as(&dev.anvil, dev.deployment.router, key);
    mined!(router(DEV_KEY_0).proposeTreasury(Address::repeat_byte(0x55)));
    mined!(router(DEV_KEY_0).setTokenAllowed(dev.usdc(), false));
    let report = w.step().await.unwrap();
    assert_eq!(report.admin_events, 2);
    assert_eq!(counter(&metrics, "chain_admin_events"), before + 2);
    let health = status.get(31337).unwrap().contracts.unwrap();
    let kinds: Vec<_> = health
        .alerts
        .iter()
        .map(|a| format!("{:?}", a.kind))
        .collect();
    assert_eq!(kinds, ["TreasuryChangePending", "AssetNotAllowed"]);
    assert!(matches!(
        status.quote_refusal(31337, "usdc"),
        Some(QuoteRefusal::Asset(_))
    ));
    assert_eq!(
        status.quote_refusal(31337, "eth"),
        None,
        "the change is two days away"
    );

    // Stepping again journals nothing twice.
    dev.mine(1).await;
    w.step().await.unwrap();
    let journal = || async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT event, block_number FROM chain_admin_events WHERE block_number > $1
              ORDER BY block_number, log_index",
        )
        .bind(h0)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let events: Vec<String> = journal().await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(events, ["TreasuryProposed", "TokenAllowListChanged"]);

    // A reorg drops both transactions: the journal forgets them, the state
    // no longer has them, the alerts clear.
    dev.reorg(3, &[]).await;
    let report = w.step().await.unwrap();
    assert!(report.reorg.is_some());
    assert!(journal().await.is_empty());
    let health = status.get(31337).unwrap().contracts.unwrap();
    assert!(health.alerts.is_empty(), "{health:?}");
    assert_eq!(status.quote_refusal(31337, "usdc"), None);
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain_alerts WHERE cleared_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open, 0);
    let cleared: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain_alerts WHERE cleared_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(cleared, 2);
}
