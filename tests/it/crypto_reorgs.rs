//! Deep reorgs through the real payments side: a node with its own chain
//! watcher and `PaymentsSink` against anvil, whose blocks `anvil_reorg`
//! replaces. A transfer a reorg deeper than the confirmation depth takes
//! away is reversed in the ledger; when the same transaction is mined again
//! it is booked again, under keys of its own, and the merchant is credited
//! once more. After each, the ledger is consistent and `epg reconcile chain`
//! finds the treasury's on-chain balance equal to the ledger's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;

use std::time::Duration;

use alloy::primitives::B256;
use alloy::providers::Provider;
use chain_support::Devnet;
use common::{TestApp, json, spawn_app_with};
use epg::chain::config::ChainConfig;
use epg::chain::reconcile::{self, Target};
use serde_json::{Value, json};

async fn quote(app: &TestApp, amount: i64) -> (String, B256, u64) {
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
    )
}

async fn payment_until(app: &TestApp, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let payment = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        if check(&payment) {
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("payment {id} never reached the expected state");
}

/// The merchant's pending balance in dev USDC, in base units.
async fn pending_usdc(app: &TestApp) -> String {
    let balance = json(app.get("/v1/balance", &app.secret_key).await, 200).await;
    balance["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == "usdc")
        .map_or_else(
            || "0".to_owned(),
            |b| b["amount"].as_str().unwrap().to_owned(),
        )
}

/// The ledger is consistent and the treasury matches the chain.
async fn books_balance(app: &TestApp, dev: &Devnet, chain: &ChainConfig) {
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    // Reconciliation reads up to the confirmed horizon: let the watcher
    // pass every block mined so far.
    dev.mine(chain.confirmations).await;
    let head = dev.head().await;
    chain_support::wait_until(
        Duration::from_secs(20),
        "the watcher to reach the head",
        || async {
            let cursor: Option<i64> =
                sqlx::query_scalar("SELECT block_number FROM chain_cursors WHERE chain_id = 31337")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            cursor.is_some_and(|c| u64::try_from(c).unwrap() >= head)
        },
    )
    .await;
    let report = reconcile::reconcile(&app.pool, &[Target::from_config(chain).unwrap()])
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_payment_a_deep_reorg_took_away_and_that_is_mined_again_is_booked_again_once() {
    let dev = Devnet::start(31337).await;
    let payer = dev.payer(0).await;
    let mut chain = dev.chain(2);
    chain.start_block = dev.head().await + 1;
    let node_chain = chain.clone();
    let app = spawn_app_with(move |config| config.chains = vec![node_chain]).await;

    let (id, reference, units) = quote(&app, 500).await;
    let (hash, raw) = payer.sign_usdc(units, reference).await;
    dev.send_raw(&raw).await;
    dev.mine(chain.confirmations).await;
    payment_until(&app, &id, |p| p["status"] == "succeeded").await;
    let credited = pending_usdc(&app).await;
    assert_ne!(credited, "0");

    // Twice: every block from the payment's on is replaced (deeper than
    // the confirmation depth) and the payment's money is taken back; then
    // the same signed transaction is mined again, the payment completes
    // again and the merchant has the money again, once.
    for round in 1..=2 {
        let mined_at = dev
            .provider()
            .get_transaction_receipt(hash)
            .await
            .unwrap()
            .unwrap()
            .block_number
            .unwrap();
        dev.reorg(dev.head().await - mined_at + 1, &[]).await;
        let failed = payment_until(&app, &id, |p| p["status"] == "failed").await;
        assert_eq!(
            failed["last_payment_error"]["code"], "chain_reorg",
            "{failed}"
        );
        assert_eq!(pending_usdc(&app).await, "0", "round {round}");

        dev.send_raw(&raw).await;
        dev.mine(chain.confirmations).await;
        let done = payment_until(&app, &id, |p| p["status"] == "succeeded").await;
        assert_eq!(pending_usdc(&app).await, credited, "round {round}");
        assert_eq!(
            done["crypto"]["amount_confirmed"],
            units.to_string(),
            "{done}"
        );
        assert_eq!(done["crypto"]["exception"], Value::Null, "{done}");
        assert_eq!(done["last_payment_error"], Value::Null, "{done}");
    }
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM ledger_entries WHERE key LIKE 'chain:31337:%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let steps: Vec<&str> = keys
        .iter()
        .map(|k| k.split_once(":received").map_or("reversed", |_| "received"))
        .collect();
    assert_eq!(
        steps,
        ["received", "reversed", "received", "reversed", "received"],
        "{keys:?}"
    );
    books_balance(&app, &dev, &chain).await;
}
