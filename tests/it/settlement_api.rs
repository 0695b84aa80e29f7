//! Settlement end to end on a real anvil: pay, settle, anchor, fetch the
//! proof bundle, and verify it with `epg audit verify` against the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use alloy::providers::{Provider, ProviderBuilder};
use common::{TestApp, json, spawn_app_with};
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use epg::transparency::anchor::{AnchorOptions, Anchorer};
use serde_json::{Value, json};

async fn node_with_anchor() -> (TestApp, Anvil) {
    let (app, anvil, _) = node_with_anchor_at().await;
    (app, anvil)
}

/// The node, its anvil, and the anchor contract.
async fn node_with_anchor_at() -> (TestApp, Anvil, alloy::primitives::Address) {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let anchor = deployment.anchor;
    let rpc = anvil.rpc_url();
    let app = spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
    })
    .await;
    (app, anvil, anchor)
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
    // The fiat payout is a record for the bank file, made with the batch.
    let payouts = settlement["payouts"].as_array().unwrap();
    assert_eq!(payouts.len(), 1, "{settlement}");
    assert_eq!(payouts[0]["object"], "payout");
    assert_eq!(payouts[0]["asset"], "usd");
    assert_eq!(payouts[0]["amount"], "1412");
    assert_eq!(payouts[0]["destination"], "bank_account");
    assert_eq!(payouts[0]["status"], "paid");

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

/// The contract takes at most one leaf per anchor here: a batch of two
/// items is anchored in two steps, and each item's proof verifies against
/// the first checkpoint that holds it.
#[tokio::test]
async fn a_batch_beyond_the_growth_limit_is_anchored_in_steps() {
    use alloy::network::EthereumWallet;
    use alloy::providers::ProviderBuilder;
    use epg::chain::contracts::SettlementAnchor;

    let (app, anvil, contract) = node_with_anchor_at().await;
    let admin: alloy::signers::local::PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(admin))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let anchor = SettlementAnchor::new(contract, &provider);
    anchor
        .setMaxGrowth(1)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    let first = pay(&app, 1000).await;
    let second = pay(&app, 3000).await;
    let settlement = json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(settlement["status"], "anchored", "{settlement}");
    assert_eq!(settlement["items"].as_array().unwrap().len(), 2);
    // One anchor per leaf (each payment and its fee are leaves).
    let size = settlement["checkpoint"]["tree_size"].as_u64().unwrap();
    assert!(size >= 2, "{settlement}");
    let count = anchor.checkpointCount().call().await.unwrap();
    assert_eq!(count, alloy::primitives::U256::from(size));
    assert_eq!(
        anchor
            .checkpoint(alloy::primitives::U256::ZERO)
            .call()
            .await
            .unwrap()
            .treeSize,
        1
    );
    for paid in [first, second] {
        let id = paid["id"].as_str().unwrap();
        let bundle = json(
            app.get(&format!("/v1/payments/{id}/proof"), &app.secret_key)
                .await,
            200,
        )
        .await;
        let verified = audit_verify(&bundle, &anvil.rpc_url());
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

/// Moving the log to a new anchor contract (ARCHITECTURE.md, "Migrating
/// deployed contracts"): a node configured with the new contract and the
/// log's old origin appends to the same log and anchors it there; the
/// proofs issued before still name the old contract, the new ones the new
/// contract, and all verify against the chain.
#[tokio::test]
async fn a_node_moves_its_log_to_a_new_anchor_and_keeps_its_origin() {
    let (app, anvil, old_anchor) = node_with_anchor_at().await;
    let before = pay(&app, 1000).await;
    json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    let admin: alloy::signers::local::PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let new_anchor = epg::chain::deploy::deploy(
        &anvil.rpc_url(),
        admin.clone(),
        &epg::chain::deploy::DeployPlan {
            treasury: admin.address(),
            admin: admin.address(),
            anchorer: admin.address(),
            ..epg::chain::deploy::DeployPlan::default()
        },
    )
    .await
    .unwrap()
    .anchor;
    let (pool, old_key) = (app.pool.clone(), app.secret_key.clone());
    let mut config = app.config.clone();
    app.stop().await;

    config.settlement.anchor_contract = new_anchor.to_string();
    config.settlement.log_origin = epg::transparency::origin_for_anchor(31337, old_anchor);
    let moved = common::spawn_on(pool, config).await;
    let after = pay(&moved, 3000).await;
    let settlement = json(
        moved
            .post("/v1/test/settlements/run", &moved.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(settlement["status"], "anchored", "{settlement}");
    assert_eq!(
        settlement["anchor"]["contract"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        format!("{new_anchor:#x}")
    );
    for (paid, key, contract) in [
        (before, old_key.as_str(), old_anchor),
        (after, moved.secret_key.as_str(), new_anchor),
    ] {
        let id = paid["id"].as_str().unwrap();
        let bundle = json(
            moved.get(&format!("/v1/payments/{id}/proof"), key).await,
            200,
        )
        .await;
        assert_eq!(
            bundle["anchor"]["contract"]
                .as_str()
                .unwrap()
                .to_lowercase(),
            format!("{contract:#x}")
        );
        let verified = audit_verify(&bundle, &anvil.rpc_url());
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

/// The anchor transaction had its confirmation; then a reorg replaced its
/// block by an empty one. The next anchoring pass notices, anchors the
/// checkpoint again in a new transaction, points the batch at it and
/// announces it; the payment's proof then verifies against the chain.
#[tokio::test]
async fn an_anchor_a_reorg_took_away_after_its_confirmations_is_sent_again_and_proofs_verify() {
    let anvil = common::anvil().await;
    let (deployment, chain) = common::deploy_with_own_treasury(&anvil).await;
    let (rpc, node_chain) = (anvil.rpc_url(), chain.clone());
    let app = spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
        config.chains = vec![node_chain];
    })
    .await;
    let paid = pay(&app, 3000).await;
    let id = paid["id"].as_str().unwrap();
    let settlement = json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    let orphaned = settlement["anchor"]["tx_hash"].as_str().unwrap().to_owned();
    let proof = async || {
        json(
            app.get(&format!("/v1/payments/{id}/proof"), &app.secret_key)
                .await,
            200,
        )
        .await
    };
    assert!(
        audit_verify(&proof().await, &anvil.rpc_url())
            .status
            .success()
    );

    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let anchored_in = provider
        .get_transaction_receipt(orphaned.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .block_number
        .unwrap();
    let depth = provider.get_block_number().await.unwrap() - anchored_in + 1;
    let _: Value = provider
        .raw_request("anvil_reorg".into(), (depth, Vec::<Value>::new()))
        .await
        .unwrap();
    assert!(
        provider
            .get_transaction_receipt(orphaned.parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "the reorg took the anchor away"
    );

    // The settlement job's anchoring pass, as every node runs it.
    let anchorer = Anchorer::connect(
        &anvil.rpc_url(),
        app.config.settlement.anchor_contract.parse().unwrap(),
        DEV_KEY_0.parse().unwrap(),
        AnchorOptions {
            confirmations: 1,
            poll_interval: std::time::Duration::from_millis(50),
            ..AnchorOptions::default()
        },
    )
    .await
    .unwrap();
    let marked = epg::settlement::anchoring::anchor_pending(&app.pool, &anchorer)
        .await
        .unwrap();
    let bundle = proof().await;
    let verified = audit_verify(&bundle, &anvil.rpc_url());
    assert!(
        verified.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(marked, 1, "the batch is anchored again");
    let fetched = json(
        app.get(
            &format!("/v1/settlements/{}", settlement["id"].as_str().unwrap()),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    let anew = fetched["anchor"]["tx_hash"].as_str().unwrap();
    assert_ne!(anew, orphaned);
    assert_eq!(bundle["anchor"]["tx_hash"], anew);
    let events = json(
        app.get("/v1/events?type=settlement.anchored", &app.secret_key)
            .await,
        200,
    )
    .await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "announced again");
    assert_eq!(events[0]["data"]["object"]["anchor"]["tx_hash"], anew);
    // Nothing more to do: the next pass finds the new anchor canonical.
    assert_eq!(
        epg::settlement::anchoring::anchor_pending(&app.pool, &anchorer)
            .await
            .unwrap(),
        0
    );
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    common::reconcile_clean(&app.pool, &chain).await;
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

/// Stores a settlement of `merchant` created `minutes` after a fixed time.
async fn insert_settlement(app: &TestApp, merchant: &str, minutes: i64) -> String {
    let id = format!("st_{:0>24}", format!("list{minutes}"));
    sqlx::query(
        "INSERT INTO settlements (id, merchant_id, period_start, period_end, totals, first_leaf,
                                  leaf_count, created_at)
         VALUES ($1, $2, $3, $3, '{}', 0, 0, $3)",
    )
    .bind(&id)
    .bind(merchant)
    .bind(time::macros::datetime!(2030-01-01 00:00 UTC) + time::Duration::minutes(minutes))
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn settlements_paginate_both_ways() {
    let app = common::spawn_app().await;
    // s0 … s4, oldest first.
    let mut settlements = Vec::new();
    for n in 0..5 {
        settlements.push(insert_settlement(&app, app.merchant_id.as_str(), n).await);
    }
    let (other, other_key) = app.merchant().await;
    let theirs = insert_settlement(&app, other.as_str(), 10).await;
    let s = |n: usize| settlements[n].clone();
    let page = |query: String| {
        let app = &app;
        async move {
            json(
                app.get(&format!("/v1/settlements?{query}"), &app.secret_key)
                    .await,
                200,
            )
            .await
        }
    };
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = page("limit=2".into()).await;
    assert_eq!(ids(&first), [s(4), s(3)]);
    assert_eq!(first["has_more"], true);
    let second = page(format!("limit=2&starting_after={}", s(3))).await;
    assert_eq!(ids(&second), [s(2), s(1)]);
    assert_eq!(second["has_more"], true);

    // Backwards: the page just before the cursor, newest first.
    let back = page(format!("limit=2&ending_before={}", s(1))).await;
    assert_eq!(ids(&back), [s(3), s(2)]);
    assert_eq!(back["has_more"], true);
    let back = page(format!("limit=10&ending_before={}", s(1))).await;
    assert_eq!(ids(&back), [s(4), s(3), s(2)]);
    assert_eq!(back["has_more"], false);
    let back = page(format!("limit=1&ending_before={}", s(0))).await;
    assert_eq!(ids(&back), [s(1)]);
    assert_eq!(back["has_more"], true);
    let top = page(format!("ending_before={}", s(4))).await;
    assert!(ids(&top).is_empty());
    assert_eq!(top["has_more"], false);

    // The other merchant sees only theirs; ours are no cursor for them.
    let listed = json(app.get("/v1/settlements", &other_key).await, 200).await;
    assert_eq!(ids(&listed), [theirs.as_str()]);
    let body = json(
        app.get(
            &format!("/v1/settlements?ending_before={}", s(0)),
            &other_key,
        )
        .await,
        400,
    )
    .await;
    assert_eq!(body["error"]["param"], "ending_before");
    for (query, param) in [
        (
            format!("starting_after={}&ending_before={}", s(0), s(1)),
            "ending_before",
        ),
        ("ending_before=st_nope".into(), "ending_before"),
        ("starting_after=st_nope".into(), "starting_after"),
        (format!("ending_before={theirs}"), "ending_before"),
        (format!("starting_after={theirs}"), "starting_after"),
    ] {
        let body = json(
            app.get(&format!("/v1/settlements?{query}"), &app.secret_key)
                .await,
            400,
        )
        .await;
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
}
