//! Crypto payments through the API against a real anvil with the real
//! contracts and the node's own chain watcher: quote, pay through the
//! router with the reference, processing on detection, succeeded after the
//! confirmations, ledger credited; over-, under- and late payments.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use common::{TestApp, json, spawn_app_with};
use epg::chain::config::ChainConfig;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::chain::deploy::Deployment;
use epg::devnet::anvil::Anvil;
use serde_json::{Value, json};

/// Anvil's default account #1 (public devnet key): the customer.
const CUSTOMER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

struct Setup {
    app: TestApp,
    anvil: Anvil,
    deployment: Deployment,
}

async fn setup() -> Setup {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let chain = ChainConfig::devnet(&deployment, &anvil.rpc_url());
    let app = spawn_app_with(move |config| config.chains = vec![chain]).await;
    Setup {
        app,
        anvil,
        deployment,
    }
}

async fn confirm_crypto(app: &TestApp, amount: i64, asset: &str) -> Value {
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
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": asset}}}),
        )
        .await,
        200,
    )
    .await
}

fn reference(payment: &Value) -> B256 {
    payment["next_action"]["crypto"]["payment_reference"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn pay_usdc(s: &Setup, reference: B256, amount: u64) {
    let customer: PrivateKeySigner = CUSTOMER_KEY.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(customer))
        .connect_http(s.anvil.rpc_url().parse().unwrap());
    let token = DevStablecoin::new(s.deployment.stablecoin.unwrap(), &provider);
    token
        .approve(s.deployment.router, U256::from(amount))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    PaymentRouter::new(s.deployment.router, &provider)
        .pay(*token.address(), U256::from(amount), reference)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
}

async fn pay_eth(s: &Setup, reference: B256, wei: U256) {
    let customer: PrivateKeySigner = CUSTOMER_KEY.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(customer))
        .connect_http(s.anvil.rpc_url().parse().unwrap());
    PaymentRouter::new(s.deployment.router, &provider)
        .payNative(reference)
        .value(wei)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
}

async fn mine(s: &Setup, blocks: u64) {
    let provider = ProviderBuilder::new().connect_http(s.anvil.rpc_url().parse().unwrap());
    let _: Value = provider
        .raw_request("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .unwrap();
}

/// Polls the payment until `check` holds (the watcher runs on its own).
async fn wait_for(app: &TestApp, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let payment = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        if check(&payment) {
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {id} never reached the expected state");
}

fn balance_of(balance: &Value, kind: &str, asset: &str) -> String {
    balance[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| match b["chain_id"].as_u64() {
            Some(chain) => format!("{}:{chain}", b["currency"].as_str().unwrap()) == asset,
            None => b["currency"] == asset,
        })
        .map_or_else(
            || "0".to_owned(),
            |b| b["amount"].to_string().trim_matches('"').to_owned(),
        )
}

#[tokio::test]
async fn a_usdc_payment_is_detected_then_confirmed_and_credited() {
    let s = setup().await;
    let payment = confirm_crypto(&s.app, 1234, "usdc").await;
    let id = payment["id"].as_str().unwrap();
    assert_eq!(payment["status"], "requires_action");
    let action = &payment["next_action"]["crypto"];
    assert_eq!(payment["next_action"]["type"], "crypto_transfer");
    assert_eq!(action["amount"], "12340000");
    assert_eq!(action["chain_id"], 31337);
    assert_eq!(
        action["router_address"],
        format!("{:#x}", s.deployment.router)
    );
    assert_eq!(
        action["token_address"],
        format!("{:#x}", s.deployment.stablecoin.unwrap())
    );
    assert!(action["uri"].as_str().unwrap().starts_with("ethereum:"));
    assert_eq!(action["payment_reference"].as_str().unwrap().len(), 66);

    pay_usdc(&s, reference(&payment), 12_340_000).await;
    let processing = wait_for(&s.app, id, |p| p["status"] == "processing").await;
    assert_eq!(processing["crypto"]["amount_received"], "12340000");
    assert_eq!(
        processing["crypto"]["transfers"].as_array().unwrap().len(),
        1
    );

    assert_eq!(processing["crypto"]["confirmations"], 1);

    // The depth shown while waiting follows the chain, not the moment of
    // detection.
    mine(&s, 1).await;
    let deeper = wait_for(&s.app, id, |p| p["crypto"]["confirmations"] == 2).await;
    assert_eq!(deeper["status"], "processing");
    let page = json(
        s.app
            .get("/v1/payments?status=processing", &s.app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(page["data"][0]["crypto"]["confirmations"], 2, "{page}");

    mine(&s, 5).await;
    let done = wait_for(&s.app, id, |p| p["status"] == "succeeded").await;
    assert_eq!(done["crypto"]["exception"], Value::Null);
    let balance = json(s.app.get("/v1/balance", &s.app.secret_key).await, 200).await;
    // 1% crypto fee on 12,340,000.
    assert_eq!(
        balance_of(&balance, "pending", "usdc:31337"),
        "12216600",
        "{balance}"
    );

    for kind in ["payment.crypto_detected", "payment.succeeded"] {
        let events = json(
            s.app
                .get(&format!("/v1/events?type={kind}"), &s.app.secret_key)
                .await,
            200,
        )
        .await;
        assert_eq!(events["data"].as_array().unwrap().len(), 1, "{kind}");
    }
    let report = epg::ledger::check(&s.app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn eth_is_quoted_through_the_price_feed_and_overpayments_are_flagged() {
    let s = setup().await;
    // $30.00 at the devnet feed's $3,000: 0.01 ETH.
    let payment = confirm_crypto(&s.app, 3000, "eth").await;
    let id = payment["id"].as_str().unwrap();
    assert_eq!(
        payment["next_action"]["crypto"]["amount"],
        "10000000000000000"
    );
    assert_eq!(
        payment["next_action"]["crypto"]["token_address"],
        Value::Null
    );
    pay_eth(
        &s,
        reference(&payment),
        U256::from(12_000_000_000_000_000u64),
    )
    .await;
    mine(&s, 5).await;
    let done = wait_for(&s.app, id, |p| {
        p["status"] == "succeeded" && !p["crypto"]["exception"].is_null()
    })
    .await;
    assert_eq!(done["crypto"]["exception"], "overpaid");
    let exceptions = json(
        s.app
            .get(
                "/v1/events?type=payment.crypto_exception",
                &s.app.secret_key,
            )
            .await,
        200,
    )
    .await;
    assert_eq!(exceptions["data"].as_array().unwrap().len(), 1);
    let report = epg::ledger::check(&s.app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn late_and_unknown_payments_are_held_in_suspense() {
    let s = setup().await;
    let payment = confirm_crypto(&s.app, 500, "usdc").await;
    let id = payment["id"].as_str().unwrap();
    // The quote expired before the customer paid.
    sqlx::query(
        "UPDATE crypto_payments SET expires_at = now() - interval '1 hour' WHERE payment_id = $1",
    )
    .bind(id)
    .execute(&s.app.pool)
    .await
    .unwrap();
    pay_usdc(&s, reference(&payment), 5_000_000).await;
    let late = wait_for(&s.app, id, |p| p["crypto"]["exception"] == "paid_late").await;
    assert_ne!(late["status"], "succeeded");
    // A transfer with a reference nobody issued.
    pay_usdc(&s, B256::repeat_byte(7), 1_000_000).await;
    mine(&s, 5).await;
    // Both end up confirmed in suspense, none credited to the merchant.
    for _ in 0..100 {
        let confirmed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM crypto_bookings WHERE confirmed")
                .fetch_one(&s.app.pool)
                .await
                .unwrap();
        if confirmed == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let balance = json(s.app.get("/v1/balance", &s.app.secret_key).await, 200).await;
    assert_eq!(balance_of(&balance, "pending", "usdc:31337"), "0");
    let suspense: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT coalesce(-sum(b.posted), 0) FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
          WHERE a.kind = 'suspense' AND a.asset = 'usdc:31337'",
    )
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(suspense, rust_decimal::Decimal::from(6_000_000));
    let report = epg::ledger::check(&s.app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn crypto_confirmation_errors_name_the_param() {
    let s = setup().await;
    let payment = json(
        s.app
            .post(
                "/v1/payments",
                &s.app.secret_key,
                &json!({"amount": 100, "currency": "eur"}),
            )
            .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap();
    let cases = [
        (
            json!({"type": "crypto", "crypto": {"chain_id": 1, "asset": "usdc"}}),
            "payment_method.crypto.chain_id",
        ),
        (
            json!({"type": "crypto", "crypto": {"chain_id": 31337, "asset": "doge"}}),
            "payment_method.crypto.asset",
        ),
        (
            json!({"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}),
            "payment_method.crypto.asset",
        ),
        (
            json!({"type": "crypto", "crypto": {"chain_id": "x", "asset": "usdc"}}),
            "payment_method.crypto.chain_id",
        ),
        (json!({"type": "crypto"}), "payment_method.crypto"),
    ];
    for (method, param) in cases {
        let response = s
            .app
            .post(
                &format!("/v1/payments/{id}/confirm"),
                &s.app.secret_key,
                &json!({"payment_method": method}),
            )
            .await;
        assert_eq!(
            json(response, 400).await["error"]["param"],
            param,
            "{method}"
        );
    }
    let _ = Address::ZERO;
}

/// A crypto confirmation whose saved answer was lost (the node killed
/// between the quote's commit and the answer's save; here the key's row is
/// deleted, as an expired lease lets the retry run again) answers, when
/// retried with its `Idempotency-Key`, the payment with the quote it made,
/// not `payment_unexpected_state`. Another key still cannot confirm it.
#[tokio::test]
async fn a_crypto_confirmation_retried_after_its_saved_answer_was_lost_answers_its_quote() {
    let s = setup().await;
    let app = &s.app;
    let payment = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 1250, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    let path = format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap());
    let body = json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}});
    let confirm = |key: &'static str| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&app.secret_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = json(confirm("confirm-1").await.unwrap(), 200).await;
    assert_eq!(first["status"], "requires_action");

    sqlx::query("DELETE FROM idempotency_keys WHERE key = 'confirm-1'")
        .execute(&app.pool)
        .await
        .unwrap();
    let retried = json(confirm("confirm-1").await.unwrap(), 200).await;
    assert_eq!(retried["status"], "requires_action");
    assert_eq!(reference(&retried), reference(&first), "the same quote");

    let other = json(confirm("confirm-2").await.unwrap(), 409).await;
    assert_eq!(other["error"]["code"], "payment_unexpected_state");
}
