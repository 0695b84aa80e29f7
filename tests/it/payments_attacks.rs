//! Attacks on the payment flows (issue 13): card testing through one
//! checkout, learning the risk rules from declines, a refund on top of a
//! chargeback, and junk on-chain events that would stop a watcher. Each
//! test is named for what it stops and ends with the ledger check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use alloy::primitives::{Address, B256, U256};
use common::{TestApp, json, spawn_app};
use epg::chain::watcher::{Transfer, TransferSink, TransferStatus};
use serde_json::{Value, json};

const CARD_OK: &str = "4242424242424242";
const CARD_DECLINED: &str = "4000000000000002";
const CARD_DISPUTED: &str = "4000000000000259";

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
}

async fn create(app: &TestApp, amount: i64) -> String {
    let p = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": amount, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    p["id"].as_str().unwrap().to_owned()
}

async fn confirm(app: &TestApp, key: &str, id: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/v1/payments/{id}/confirm"), key, &body)
        .await
}

/// Asserts that a decline's payment was scored with risk reason `code`.
fn assert_risk_reason(decline: &Value, code: &str) {
    let reasons = decline["error"]["payment"]["risk"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no risk reasons: {decline}"));
    assert!(reasons.iter().any(|r| r["code"] == code), "{decline}");
}

async fn ledger_is_consistent(app: &TestApp) {
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "ledger check failed: {report:?}");
}

#[tokio::test]
async fn one_payment_cannot_be_used_to_test_a_list_of_stolen_cards() {
    let app = spawn_app().await;
    let id = create(&app, 1500).await;
    let secret = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // The tester works from the browser side: publishable key + client secret.
    let mut declined = 0;
    for _ in 0..5 {
        let r = confirm(
            &app,
            &app.publishable_key,
            &id,
            json!({"client_secret": secret, "payment_method": card(CARD_DECLINED)}),
        )
        .await;
        assert_eq!(r.status(), 402);
        declined += 1;
    }
    assert_eq!(declined, 5);
    // The sixth card, even a good one, is refused without reaching anyone.
    let refused = json(
        confirm(
            &app,
            &app.publishable_key,
            &id,
            json!({"client_secret": secret, "payment_method": card(CARD_OK)}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(refused["error"]["code"], "payment_attempts_exceeded");
    let payment = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["status"], "failed");
    assert_eq!(payment["amount_received"], 0);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn velocity_counts_every_attempt_including_the_current_one() {
    let app = spawn_app().await;
    // Three attempts of one card on a single payment ...
    let first = create(&app, 1000).await;
    for _ in 0..3 {
        let r = confirm(
            &app,
            &app.secret_key,
            &first,
            json!({"payment_method": card(CARD_DECLINED)}),
        )
        .await;
        assert_eq!(r.status(), 402);
    }
    // ... make the fourth, on another payment, a velocity signal.
    let second = create(&app, 1000).await;
    let declined = json(
        confirm(
            &app,
            &app.secret_key,
            &second,
            json!({"payment_method": card(CARD_DECLINED)}),
        )
        .await,
        402,
    )
    .await;
    assert_risk_reason(&declined, "card_velocity");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_confirmation_that_waited_for_another_counts_its_attempt_too() {
    let app = spawn_app().await;
    let id = create(&app, 1000).await;
    let declined = json!({"payment_method": card(CARD_DECLINED)});
    for _ in 0..2 {
        let r = confirm(&app, &app.secret_key, &id, declined.clone()).await;
        assert_eq!(r.status(), 402);
    }
    // Another confirmation of the payment holds its lock and records a
    // third attempt of the card; it commits only once the next
    // confirmation is waiting for the lock, so that one's statement
    // started before the third attempt existed.
    let mut other = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO payment_attempts (merchant_id, payment_id, method, card_fingerprint)
         SELECT merchant_id, payment_id, method, card_fingerprint FROM payment_attempts
          WHERE payment_id = $1 LIMIT 1",
    )
    .bind(&id)
    .execute(&mut *other)
    .await
    .unwrap();
    sqlx::query("UPDATE payments SET confirm_attempts = confirm_attempts + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut *other)
        .await
        .unwrap();
    let waiting = {
        let app_address = app.address.clone();
        let client = app.client.clone();
        let key = app.secret_key.clone();
        let id = id.clone();
        let body = declined.clone();
        tokio::spawn(async move {
            client
                .post(format!("{app_address}/v1/payments/{id}/confirm"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    common::until_waiting_for_a_lock(&app.pool, 1).await;
    other.commit().await.unwrap();

    // The fourth use of the card within the hour is a velocity signal:
    // counted with the attempt it waited for.
    let answer = json(waiting.await.unwrap(), 402).await;
    assert_risk_reason(&answer, "card_velocity");
    let attempts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payment_attempts WHERE payment_id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 4, "the counted-again attempt is recorded once");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_browser_never_learns_the_risk_score_from_a_decline() {
    let app = spawn_app().await;
    sqlx::query("UPDATE merchants SET risk_threshold = 0 WHERE id = $1")
        .bind(app.merchant_id.as_str())
        .execute(&app.pool)
        .await
        .unwrap();
    let id = create(&app, 1000).await;
    let secret = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let browser = json(
        confirm(
            &app,
            &app.publishable_key,
            &id,
            json!({"client_secret": secret, "payment_method": card(CARD_OK)}),
        )
        .await,
        402,
    )
    .await;
    let text = browser.to_string();
    assert_eq!(browser["error"]["code"], "card_declined");
    assert!(!text.contains("risk"), "{text}");
    assert!(!text.contains("score"), "{text}");
    let view = json(
        app.get(
            &format!("/v1/payments/{id}?client_secret={secret}"),
            &app.publishable_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["last_payment_error"]["code"], "card_declined");
    assert!(!view.to_string().contains("risk"), "{view}");
    // The merchant still sees why.
    let merchant = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(merchant["last_payment_error"]["code"], "risk_blocked");
    assert_eq!(merchant["risk"]["score"], 0);
}

async fn refund(app: &TestApp, payment: &str, amount: Option<i64>) -> reqwest::Response {
    let mut body = json!({"payment": payment});
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    app.post("/v1/refunds", &app.secret_key, &body).await
}

#[tokio::test]
async fn a_refund_and_a_lost_dispute_never_pay_the_cardholder_twice() {
    let app = spawn_app().await;
    // The sandbox's dispute card is disputed right after capture.
    let id = create(&app, 4000).await;
    let paid = json(
        confirm(
            &app,
            &app.secret_key,
            &id,
            json!({"payment_method": card(CARD_DISPUTED)}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(paid["status"], "succeeded");
    let disputed = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(disputed["amount_disputed"], 4000);
    // While the network decides, no refund.
    let open = json(refund(&app, &id, Some(1000)).await, 409).await;
    assert_eq!(open["error"]["code"], "charge_disputed");

    let dispute_id: String = sqlx::query_scalar("SELECT id FROM disputes WHERE payment_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    json(
        app.post(
            &format!("/v1/disputes/{dispute_id}/close"),
            &app.secret_key,
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    // Lost: the cardholder got the money back through the network; a
    // refund would pay them a second time.
    let after = refund(&app, &id, None).await;
    assert!(
        after.status() == 409 || after.status() == 400,
        "{}",
        after.status()
    );
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds WHERE payment_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(refunds, 0);

    // A partially refunded payment disputed for the rest: what was
    // refunded is not disputed, what is disputed is not refundable.
    let other = create(&app, 3000).await;
    json(
        confirm(
            &app,
            &app.secret_key,
            &other,
            json!({"payment_method": card(CARD_OK)}),
        )
        .await,
        200,
    )
    .await;
    json(refund(&app, &other, Some(1000)).await, 200).await;
    let dispute = json(
        app.post(
            "/v1/test/disputes",
            &app.secret_key,
            &json!({"payment": other}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(dispute["amount"], 2000);
    json(
        app.post(
            &format!(
                "/v1/test/disputes/{}/resolve",
                dispute["id"].as_str().unwrap()
            ),
            &app.secret_key,
            &json!({"outcome": "lost"}),
        )
        .await,
        200,
    )
    .await;
    let nothing_left = refund(&app, &other, Some(1)).await;
    assert!(nothing_left.status().is_client_error());
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_payment_is_disputed_once_whatever_the_network_says() {
    let app = spawn_app().await;
    let id = create(&app, 2500).await;
    json(
        confirm(
            &app,
            &app.secret_key,
            &id,
            json!({"payment_method": card(CARD_OK)}),
        )
        .await,
        200,
    )
    .await;
    let dispute = json(
        app.post(
            "/v1/test/disputes",
            &app.secret_key,
            &json!({"payment": id}),
        )
        .await,
        200,
    )
    .await;
    json(
        app.post(
            &format!(
                "/v1/test/disputes/{}/resolve",
                dispute["id"].as_str().unwrap()
            ),
            &app.secret_key,
            &json!({"outcome": "won"}),
        )
        .await,
        200,
    )
    .await;
    // Won, so refundable again; but a second chargeback of the same
    // charge is refused ...
    let again = app
        .post(
            "/v1/test/disputes",
            &app.secret_key,
            &json!({"payment": id}),
        )
        .await;
    assert_eq!(again.status(), 409);
    // ... by the database itself, not only by the code.
    let raw = sqlx::query(
        "INSERT INTO disputes (id, merchant_id, payment_id, amount, currency, status, reason)
         VALUES ('dp_000000000000000000000001', $1, $2, 100, 'usd', 'needs_response', 'fraudulent')",
    )
    .bind(app.merchant_id.as_str())
    .bind(&id)
    .execute(&app.pool)
    .await;
    assert!(raw.is_err(), "a second dispute row was accepted");
    json(refund(&app, &id, None).await, 200).await;
    ledger_is_consistent(&app).await;
}

/// A transfer as the watcher would report it.
fn transfer(id: i64, token: Address, amount: U256, status: TransferStatus) -> Transfer {
    Transfer {
        id,
        chain_id: 31337,
        tx_hash: B256::repeat_byte(u8::try_from(id).unwrap()),
        tx_log_ordinal: 0,
        log_index: 0,
        block_number: 10,
        block_hash: B256::repeat_byte(0xbb),
        block_timestamp: time::OffsetDateTime::now_utc(),
        router: Address::repeat_byte(0x11),
        reference: B256::repeat_byte(0x42),
        payer: Address::repeat_byte(0x22),
        token,
        asset: None,
        amount,
        status,
        removals: 0,
        detected_at: time::OffsetDateTime::now_utc(),
    }
}

#[tokio::test]
async fn a_junk_token_transfer_removed_by_a_reorg_never_stalls_the_watcher() {
    let app = spawn_app().await;
    let sink = epg::payments::crypto::PaymentsSink::new(epg::payments::Payments::new(
        app.pool.clone(),
        std::sync::Arc::new(epg::methods::Connectors::sandbox(app.pool.clone())),
        &app.config.keyring().unwrap(),
        false,
        time::Duration::days(7),
        app.address.clone(),
        Vec::new(),
    ));
    let junk = Address::repeat_byte(0x66);
    // A uint256 no ledger account can hold, of a token nobody configured.
    let t = transfer(1, junk, U256::MAX, TransferStatus::Detected);
    let mut tx = app.pool.begin().await.unwrap();
    sink.detected(&mut tx, &t).await.unwrap();
    sink.confirmed(
        &mut tx,
        &Transfer {
            status: TransferStatus::Confirmed,
            ..t.clone()
        },
    )
    .await
    .unwrap();
    // A reorg deeper than the confirmations: every step must still succeed,
    // or the watcher would retry this block for ever.
    sink.removed(
        &mut tx,
        &Transfer {
            status: TransferStatus::Removed,
            ..t.clone()
        },
        true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The same with a configured asset and an amount beyond any supply:
    // recorded as unbookable, never parsed into the ledger.
    let huge = Transfer {
        asset: Some("usdc".into()),
        ..transfer(
            2,
            Address::repeat_byte(0x77),
            U256::MAX,
            TransferStatus::Detected,
        )
    };
    let mut tx = app.pool.begin().await.unwrap();
    sink.detected(&mut tx, &huge).await.unwrap();
    sink.confirmed(
        &mut tx,
        &Transfer {
            status: TransferStatus::Confirmed,
            ..huge.clone()
        },
    )
    .await
    .unwrap();
    sink.removed(
        &mut tx,
        &Transfer {
            status: TransferStatus::Removed,
            ..huge
        },
        true,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    ledger_is_consistent(&app).await;
}

/// Sends `wei` through `router.payNative(reference)` on `rpc` from anvil's
/// account #1.
async fn pay_native(rpc: &str, router: Address, reference: B256, wei: U256) {
    use alloy::network::EthereumWallet;
    use alloy::providers::ProviderBuilder;
    let customer: alloy::signers::local::PrivateKeySigner =
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
            .parse()
            .unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(customer))
        .connect_http(rpc.parse().unwrap());
    epg::chain::contracts::PaymentRouter::new(router, &provider)
        .payNative(reference)
        .value(wei)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
}

/// E-PG's contracts on `anvil` with a treasury nobody else uses, and the
/// chain as the node watches it from the first block after deployment, so
/// that reconciliation sees only what the test does.
async fn devnet(
    anvil: &epg::devnet::anvil::Anvil,
) -> (
    epg::chain::deploy::Deployment,
    epg::chain::config::ChainConfig,
) {
    use alloy::providers::{Provider, ProviderBuilder};
    let deployer: alloy::signers::local::PrivateKeySigner =
        epg::devnet::anvil::DEV_KEY_0.parse().unwrap();
    let deployment = epg::chain::deploy::deploy(
        &anvil.rpc_url(),
        deployer.clone(),
        &epg::chain::deploy::DeployPlan {
            treasury: alloy::signers::local::PrivateKeySigner::random().address(),
            admin: deployer.address(),
            anchorer: deployer.address(),
            dev_helpers: true,
            ..epg::chain::deploy::DeployPlan::default()
        },
    )
    .await
    .unwrap();
    let mut chain = epg::chain::config::ChainConfig::devnet(&deployment, &anvil.rpc_url());
    chain.start_block = ProviderBuilder::new()
        .connect_http(anvil.rpc_url().parse().unwrap())
        .get_block_number()
        .await
        .unwrap()
        + 1;
    (deployment, chain)
}

async fn mine(rpc: &str, blocks: u64) {
    use alloy::providers::{Provider, ProviderBuilder};
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let _: Value = provider
        .raw_request("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_native_coin_of_another_chain_never_completes_an_eth_quote() {
    // Chain A's ETH and chain B's native coin (POL on Polygon, say) are
    // both token 0x0, and both routers emit the same event.
    let (a, b) = tokio::join!(
        common::anvil_with_chain_id(31337),
        common::anvil_with_chain_id(31338)
    );
    let ((_, chain_a), (dep_b, chain_b)) = tokio::join!(devnet(&a), devnet(&b));
    let chains = vec![chain_a, chain_b];
    let app = common::spawn_app_with(move |c| c.chains = chains).await;
    let id = create(&app, 3000).await;
    let quote = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "eth"}}}),
        )
        .await,
        200,
    )
    .await;
    let crypto = &quote["next_action"]["crypto"];
    let reference: B256 = crypto["payment_reference"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wei: U256 = crypto["amount"].as_str().unwrap().parse().unwrap();

    // The customer pays the quoted number of wei, but on chain B.
    pay_native(&b.rpc_url(), dep_b.router, reference, wei).await;
    mine(&b.rpc_url(), 3).await;
    let mut payment = Value::Null;
    for _ in 0..300 {
        payment = json(
            app.get(&format!("/v1/payments/{id}"), &app.secret_key)
                .await,
            200,
        )
        .await;
        if payment["crypto"]["exception"] == "wrong_asset" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(payment["crypto"]["exception"], "wrong_asset", "{payment}");
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["amount_received"], 0);
    assert_eq!(payment["crypto"]["amount_received"], "0");
    // Its money waits in suspense, booked on the chain it arrived on once
    // chain B confirms it.
    let mut held = String::new();
    for _ in 0..300 {
        held = sqlx::query_scalar(
            "SELECT coalesce((-sum(b.posted))::text, '0') FROM ledger_balances b
               JOIN ledger_accounts a ON a.id = b.account_id
              WHERE a.kind = 'suspense' AND a.asset = 'eth:31338'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if held == wei.to_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(held, wei.to_string());
    let still = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(still["status"], "requires_action", "{still}");
    ledger_is_consistent(&app).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["reconcile", "chain", "--database-url", &app.database_url])
        .args(["--rpc-url", &a.rpc_url(), "--rpc-url", &b.rpc_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("no discrepancy"), "{stdout}");
}

#[tokio::test]
async fn suspense_can_never_pay_out_more_than_it_holds() {
    use epg::ledger::{AccountRef, Entry, EntryKind};
    use epg::money::{Amount, AssetCode};
    let app = spawn_app().await;
    let usd = AssetCode::parse("usd").unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    // 5 in suspense ...
    epg::ledger::post(
        &mut conn,
        &Entry::new("fund-suspense", EntryKind::ADJUSTMENT).transfer(
            AccountRef::clearing("card"),
            AccountRef::suspense(),
            &usd,
            Amount::from_minor(5),
        ),
    )
    .await
    .unwrap();
    // ... cannot release 6, whichever code would try.
    let err = epg::ledger::post(
        &mut conn,
        &Entry::new("drain-suspense", EntryKind::ADJUSTMENT).transfer(
            AccountRef::suspense(),
            AccountRef::clearing("card"),
            &usd,
            Amount::from_minor(6),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, epg::ledger::LedgerError::InsufficientFunds(_)),
        "{err:?}"
    );
    let floor: String = sqlx::query_scalar(
        "SELECT floor FROM ledger_accounts WHERE kind = 'suspense' AND asset = 'usd'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(floor, "credit");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn an_eighteen_decimal_price_feed_is_read_as_eighteen_decimals() {
    use alloy::providers::ProviderBuilder;
    let anvil = common::anvil().await;
    let (deployment, mut chain) = devnet(&anvil).await;
    let _ = deployment;
    // A feed that answers 3000 USD per ETH with 18 decimals, as some do.
    let deployer: alloy::signers::local::PrivateKeySigner =
        epg::devnet::anvil::DEV_KEY_0.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(deployer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let answer = alloy::primitives::I256::try_from(3_000u128 * 10u128.pow(18)).unwrap();
    let feed = epg::chain::contracts::DevPriceFeed::deploy(&provider, answer, 18)
        .await
        .unwrap();
    for asset in &mut chain.assets {
        if asset.symbol == "eth" {
            asset.price_feed = Some(*feed.address());
        }
    }
    let app = common::spawn_app_with(move |c| c.chains = vec![chain]).await;
    let id = create(&app, 3000).await;
    let quote = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "eth"}}}),
        )
        .await,
        200,
    )
    .await;
    // $30.00 at $3000 per ETH is 0.01 ETH, whatever the feed's precision
    // (assuming 8 decimals would have quoted 10^10 times less).
    assert_eq!(
        quote["next_action"]["crypto"]["amount"], "10000000000000000",
        "{quote}"
    );
}
