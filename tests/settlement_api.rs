//! Settlement end to end on a real anvil: pay, settle, anchor, fetch the
//! proof bundle, and verify it with `epg audit verify` against the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, json, spawn_app_with};
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use serde_json::{Value, json};

async fn node_with_anchor() -> (TestApp, Anvil) {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let rpc = anvil.rpc_url();
    let app = spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
    })
    .await;
    (app, anvil)
}

async fn pay(app: &TestApp, amount: i64) -> Value {
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
    json(
        app.post(
            &format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({"payment_method": {"type": "card", "card":
                {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await
}

fn audit_verify(bundle: &Value, rpc: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["audit", "verify"])
        .arg(&path)
        .args(["--rpc-url", rpc, "--confirmations", "1"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_settled_payment_is_anchored_and_its_proof_verifies_against_the_chain() {
    let (app, anvil) = node_with_anchor().await;
    let paid = pay(&app, 2000).await;
    let id = paid["id"].as_str().unwrap();
    json(
        app.post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": id, "amount": 500}),
        )
        .await,
        200,
    )
    .await;
    // Not settled yet: no proof.
    let early = app
        .get(&format!("/v1/payments/{id}/proof"), &app.secret_key)
        .await;
    assert_eq!(
        json(early, 409).await["error"]["code"],
        "payment_not_settled"
    );

    let settlement = json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(settlement["object"], "settlement");
    assert_eq!(settlement["status"], "anchored");
    assert_eq!(settlement["anchor"]["chain_id"], 31337);
    assert!(
        settlement["anchor"]["tx_hash"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    // 2000 gross - 88 fee - 500 refund.
    assert_eq!(settlement["totals"]["usd"]["net"], "1412");
    assert_eq!(settlement["items"].as_array().unwrap().len(), 2);

    let listed = json(app.get("/v1/settlements", &app.secret_key).await, 200).await;
    assert_eq!(listed["data"][0]["id"], settlement["id"]);
    let fetched = json(
        app.get(
            &format!("/v1/settlements/{}", settlement["id"].as_str().unwrap()),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(fetched["checkpoint"], settlement["checkpoint"]);

    // Nothing new: nothing to settle; the fiat was paid out.
    let again = app
        .post("/v1/test/settlements/run", &app.secret_key, &json!({}))
        .await;
    assert_eq!(json(again, 409).await["error"]["code"], "nothing_to_settle");
    let balance = json(app.get("/v1/balance", &app.secret_key).await, 200).await;
    assert!(
        balance["pending"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["amount"] == 0),
        "{balance}"
    );
    let events = json(
        app.get("/v1/events?type=settlement.anchored", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);

    let bundle = json(
        app.get(&format!("/v1/payments/{id}/proof"), &app.secret_key)
            .await,
        200,
    )
    .await;
    let verified = audit_verify(&bundle, &anvil.rpc_url());
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // One byte of the leaf changed: the verdict names the failed check.
    let mut tampered = bundle.clone();
    let data = tampered["leaf"]["data_hex"].as_str().unwrap().to_owned();
    let flipped = if data.ends_with('0') {
        format!("{}1", &data[..data.len() - 1])
    } else {
        format!("{}0", &data[..data.len() - 1])
    };
    tampered["leaf"]["data_hex"] = json!(flipped);
    let refused = audit_verify(&tampered, &anvil.rpc_url());
    assert!(!refused.status.success());

    // Another merchant cannot see the settlement or the proof.
    let (_, other) = app.merchant().await;
    assert_eq!(
        app.get(&format!("/v1/payments/{id}/proof"), &other)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(
            &format!("/v1/settlements/{}", settlement["id"].as_str().unwrap()),
            &other
        )
        .await
        .status(),
        404
    );
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn settlement_needs_an_anchor_chain() {
    let app = common::spawn_app().await;
    pay(&app, 1000).await;
    let response = app
        .post("/v1/test/settlements/run", &app.secret_key, &json!({}))
        .await;
    assert_eq!(
        json(response, 409).await["error"]["code"],
        "settlement_not_configured"
    );
}
