//! Payments of the traditional methods through the HTTP API: every
//! method's happy path and failures, refused transitions, refunds (with 50
//! concurrent requests), disputes, expiry, risk, idempotent retries, and
//! the ledger check at the end of each test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestApp, json, spawn_app};
use serde_json::{Value, json};

const CARD_OK: &str = "4242424242424242";
const CARD_DECLINED: &str = "4000000000000002";
const CARD_NO_FUNDS: &str = "4000000000009995";
const CARD_3DS: &str = "4000002760003184";
const CARD_DISPUTED: &str = "4000000000000259";

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
}

async fn create(app: &TestApp, body: Value) -> Value {
    json(app.post("/v1/payments", &app.secret_key, &body).await, 200).await
}

async fn create_usd(app: &TestApp, amount: i64, capture: &str) -> Value {
    create(
        app,
        json!({"amount": amount, "currency": "usd", "capture_method": capture}),
    )
    .await
}

async fn confirm(app: &TestApp, id: &str, method: Value) -> reqwest::Response {
    app.post(
        &format!("/v1/payments/{id}/confirm"),
        &app.secret_key,
        &json!({"payment_method": method}),
    )
    .await
}

async fn pay_card(app: &TestApp, amount: i64, capture: &str, number: &str) -> Value {
    let payment = create_usd(app, amount, capture).await;
    json(
        confirm(app, payment["id"].as_str().unwrap(), card(number)).await,
        200,
    )
    .await
}

/// Drives a sandbox processor through a test helper (`/v1/test/…`).
async fn sandbox(app: &TestApp, path: &str) -> Value {
    json(app.post(path, &app.secret_key, &json!({})).await, 200).await
}

async fn balance(app: &TestApp) -> Value {
    json(app.get("/v1/balance", &app.secret_key).await, 200).await
}

/// The amount of `currency` in `balance[kind]`.
fn amount_in(balance: &Value, kind: &str, currency: &str) -> i64 {
    balance[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == currency)
        .map_or(0, |b| b["amount"].as_i64().unwrap())
}

/// What the merchant is worth in `currency`: pending plus available (which
/// is negative while it owes more than it holds).
fn net(balance: &Value, currency: &str) -> i64 {
    amount_in(balance, "pending", currency) + amount_in(balance, "available", currency)
}

async fn events_of(app: &TestApp, kind: &str) -> Vec<Value> {
    let list = json(
        app.get(
            &format!("/v1/events?type={kind}&limit=100"),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    list["data"].as_array().unwrap().clone()
}

async fn ledger_is_consistent(app: &TestApp) {
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "ledger check failed: {report:?}");
}

#[tokio::test]
async fn a_card_payment_succeeds_and_credits_the_merchant_net_of_fees() {
    let app = spawn_app().await;
    let payment = create(
        &app,
        json!({"amount": 2000, "currency": "usd", "description": "Order 17",
               "metadata": {"order": "17"}, "customer": {"email": "Ada@Example.com", "name": "Ada"}}),
    )
    .await;
    assert_eq!(payment["object"], "payment");
    assert_eq!(payment["status"], "requires_payment_method");
    assert!(payment["id"].as_str().unwrap().starts_with("pay_"));
    assert!(
        payment["client_secret"]
            .as_str()
            .unwrap()
            .contains("_secret_")
    );
    assert_eq!(payment["metadata"]["order"], "17");

    let id = payment["id"].as_str().unwrap();
    let paid = json(confirm(&app, id, card(CARD_OK)).await, 200).await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_received"], 2000);
    assert_eq!(paid["payment_method"]["card"]["brand"], "visa");
    assert_eq!(paid["payment_method"]["card"]["last4"], "4242");
    assert_eq!(paid["risk"]["score"], 0);
    assert!(
        !paid.to_string().contains(CARD_OK),
        "no full number in the API"
    );

    let fetched = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(fetched, paid);

    // 2000 captured, fee 2.9% + 30 = 88: 1912 pending.
    let balance = balance(&app).await;
    assert_eq!(amount_in(&balance, "pending", "usd"), 1912);
    let events = events_of(&app, "payment.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["object"]["id"], id);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_card_payment_pays_the_merchants_own_fee_rule_in_force_when_it_is_booked() {
    use epg::ledger::{self, FeeRule};
    use epg::money::{Amount, AssetCode};
    let app = spawn_app().await;
    let usd = AssetCode::parse("usd").unwrap();
    let set = |percent_bps, fixed, max: Option<i64>| {
        let pool = app.pool.clone();
        let merchant = app.merchant_id.clone();
        let usd = usd.clone();
        async move {
            let rule = FeeRule::new(
                percent_bps,
                Amount::from_minor(fixed),
                max.map(Amount::from_minor),
            )
            .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            ledger::set_fee_rule(&mut conn, Some(&merchant), "card", Some(&usd), &rule)
                .await
                .unwrap();
        }
    };
    // The merchant's rule for the currency beats the default (2.9% + 30).
    set(100, 10, None).await;
    let first = create_usd(&app, 10_000, "automatic").await;
    let paid = confirm(&app, first["id"].as_str().unwrap(), card(CARD_OK)).await;
    assert_eq!(json(paid, 200).await["status"], "succeeded");
    // 1% of 10,000 + 10 = 110.
    assert_eq!(amount_in(&balance(&app).await, "pending", "usd"), 9_890);

    // Changed between two payments: the next one pays the new rule, capped.
    set(500, 0, Some(200)).await;
    let second = create_usd(&app, 10_000, "automatic").await;
    let paid = confirm(&app, second["id"].as_str().unwrap(), card(CARD_OK)).await;
    assert_eq!(json(paid, 200).await["status"], "succeeded");
    assert_eq!(
        amount_in(&balance(&app).await, "pending", "usd"),
        9_890 + 9_800
    );
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn a_confirmation_the_payment_refuses_counts_no_attempt_and_says_so_before_the_card() {
    let app = spawn_app().await;
    let attempts = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM payment_attempts WHERE payment_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let paid = pay_card(&app, 1500, "automatic", CARD_OK).await;
    let id = paid["id"].as_str().unwrap();
    assert_eq!(attempts(id.to_owned()).await, 1);

    // A good card on a paid payment: refused by the payment's state, and
    // the attempt its statement recorded is rolled back with it.
    let again = json(confirm(&app, id, card(CARD_OK)).await, 409).await;
    assert_eq!(again["error"]["code"], "payment_unexpected_state");
    assert_eq!(attempts(id.to_owned()).await, 1);

    // A card that does not parse meets the same refusal first, as it would
    // with a good card; on a payment that may be confirmed, the card's own.
    let bad = json!({"type": "card", "card": {"number": "4242424242424241",
                     "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
    let refused = json(confirm(&app, id, bad.clone()).await, 409).await;
    assert_eq!(refused["error"]["code"], "payment_unexpected_state");
    let missing = confirm(&app, "pay_0000000000000000000000000", bad.clone()).await;
    assert_eq!(missing.status(), 404);
    let open = create_usd(&app, 1500, "automatic").await;
    let open_id = open["id"].as_str().unwrap();
    let invalid = json(confirm(&app, open_id, bad).await, 400).await;
    assert_eq!(invalid["error"]["param"], "payment_method.card.number");
    assert_eq!(attempts(open_id.to_owned()).await, 0);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn declines_are_402_with_the_reason_and_the_payment_can_be_retried() {
    let app = spawn_app().await;
    let payment = create_usd(&app, 1500, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let declined = json(confirm(&app, id, card(CARD_DECLINED)).await, 402).await;
    assert_eq!(declined["error"]["type"], "card_error");
    assert_eq!(declined["error"]["code"], "card_declined");
    assert_eq!(declined["error"]["decline_code"], "generic_decline");
    assert_eq!(declined["error"]["payment"]["status"], "failed");

    let no_funds = json(confirm(&app, id, card(CARD_NO_FUNDS)).await, 402).await;
    assert_eq!(no_funds["error"]["decline_code"], "insufficient_funds");
    let failed = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(
        failed["last_payment_error"]["decline_code"],
        "insufficient_funds"
    );
    assert_eq!(events_of(&app, "payment.failed").await.len(), 2);

    let paid = json(confirm(&app, id, card(CARD_OK)).await, 200).await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["last_payment_error"], Value::Null);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn three_d_secure_asks_for_the_code() {
    let app = spawn_app().await;
    let payment = create_usd(&app, 5000, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let pending = json(confirm(&app, id, card(CARD_3DS)).await, 200).await;
    assert_eq!(pending["status"], "requires_action");
    assert_eq!(pending["next_action"]["type"], "otp_challenge");
    assert_eq!(events_of(&app, "payment.requires_action").await.len(), 1);

    // Capture or a second confirmation are refused while the code is asked.
    let capture = app
        .post(
            &format!("/v1/payments/{id}/capture"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(
        json(capture, 409).await["error"]["code"],
        "payment_unexpected_state"
    );

    let ok = json(
        app.post(
            &format!("/v1/payments/{id}/challenge"),
            &app.secret_key,
            &json!({"code": "123456"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ok["status"], "succeeded");

    // A wrong code fails the payment.
    let other = create_usd(&app, 5000, "automatic").await;
    let other_id = other["id"].as_str().unwrap();
    json(confirm(&app, other_id, card(CARD_3DS)).await, 200).await;
    let wrong = json(
        app.post(
            &format!("/v1/payments/{other_id}/challenge"),
            &app.secret_key,
            &json!({"code": "000000"}),
        )
        .await,
        402,
    )
    .await;
    assert_eq!(wrong["error"]["payment"]["status"], "failed");
    // No challenge pending any more.
    let again = app
        .post(
            &format!("/v1/payments/{other_id}/challenge"),
            &app.secret_key,
            &json!({"code": "123456"}),
        )
        .await;
    assert_eq!(again.status(), 409);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn manual_capture_takes_part_and_releases_the_rest() {
    let app = spawn_app().await;
    let authorized = pay_card(&app, 10_000, "manual", CARD_OK).await;
    assert_eq!(authorized["status"], "requires_capture");
    assert_eq!(authorized["amount_capturable"], 10_000);
    let id = authorized["id"].as_str().unwrap();

    let too_much = app
        .post(
            &format!("/v1/payments/{id}/capture"),
            &app.secret_key,
            &json!({"amount_to_capture": 10_001}),
        )
        .await;
    assert_eq!(
        json(too_much, 400).await["error"]["param"],
        "amount_to_capture"
    );

    let captured = json(
        app.post(
            &format!("/v1/payments/{id}/capture"),
            &app.secret_key,
            &json!({"amount_to_capture": 6000}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount_received"], 6000);
    assert_eq!(captured["amount_capturable"], 0);

    let twice = app
        .post(
            &format!("/v1/payments/{id}/capture"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(twice.status(), 409);
    // 6000 - (174 + 30) fee.
    assert_eq!(amount_in(&balance(&app).await, "pending", "usd"), 5796);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn refused_transitions_are_409() {
    let app = spawn_app().await;
    // Capture of a canceled payment.
    let authorized = pay_card(&app, 1000, "manual", CARD_OK).await;
    let id = authorized["id"].as_str().unwrap();
    let canceled = json(
        app.post(
            &format!("/v1/payments/{id}/cancel"),
            &app.secret_key,
            &json!({"cancellation_reason": "abandoned"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cancellation_reason"], "abandoned");
    assert_eq!(events_of(&app, "payment.canceled").await.len(), 1);
    for action in ["capture", "cancel", "confirm"] {
        let body = if action == "confirm" {
            json!({"payment_method": card(CARD_OK)})
        } else {
            json!({})
        };
        let response = app
            .post(
                &format!("/v1/payments/{id}/{action}"),
                &app.secret_key,
                &body,
            )
            .await;
        assert_eq!(response.status(), 409, "{action} of a canceled payment");
    }
    // Refund of an uncaptured payment.
    let uncaptured = pay_card(&app, 1000, "manual", CARD_OK).await;
    let refund = app
        .post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": uncaptured["id"]}),
        )
        .await;
    assert_eq!(
        json(refund, 409).await["error"]["code"],
        "payment_not_refundable"
    );
    // Cancel of a succeeded payment.
    let paid = pay_card(&app, 1000, "automatic", CARD_OK).await;
    let cancel = app
        .post(
            &format!("/v1/payments/{}/cancel", paid["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(cancel.status(), 409);
    // A never-confirmed payment cannot be captured.
    let fresh = create_usd(&app, 1000, "manual").await;
    let capture = app
        .post(
            &format!("/v1/payments/{}/capture", fresh["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(capture.status(), 409);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn refunds_partial_and_many_never_exceed_what_was_captured() {
    let app = spawn_app().await;
    let paid = pay_card(&app, 3000, "automatic", CARD_OK).await;
    let id = paid["id"].as_str().unwrap();
    let first = json(
        app.post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": id, "amount": 1000, "reason": "requested_by_customer"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(first["object"], "refund");
    assert_eq!(first["status"], "succeeded");
    assert!(first["id"].as_str().unwrap().starts_with("re_"));
    let over = app
        .post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": id, "amount": 2001}),
        )
        .await;
    assert_eq!(json(over, 400).await["error"]["param"], "amount");
    // The rest by default.
    let rest = json(
        app.post("/v1/refunds", &app.secret_key, &json!({"payment": id}))
            .await,
        200,
    )
    .await;
    assert_eq!(rest["amount"], 2000);
    let again = app
        .post("/v1/refunds", &app.secret_key, &json!({"payment": id}))
        .await;
    assert_eq!(
        json(again, 409).await["error"]["code"],
        "payment_already_refunded"
    );

    let payment = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["amount_refunded"], 3000);
    let listed = json(
        app.get(&format!("/v1/refunds?payment={id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let fetched = json(
        app.get(
            &format!("/v1/refunds/{}", first["id"].as_str().unwrap()),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(fetched, first);
    assert_eq!(events_of(&app, "refund.succeeded").await.len(), 2);
    // 3000 - 117 fee captured, 3000 refunded, the fee kept: the merchant
    // owes 117 (booked as receivable, shown as a negative pending balance).
    let after = balance(&app).await;
    assert_eq!(amount_in(&after, "pending", "usd"), 0);
    assert_eq!(amount_in(&after, "available", "usd"), -117);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn fifty_concurrent_refunds_never_exceed_the_captured_amount() {
    let app = spawn_app().await;
    // Leave the merchant enough balance beyond this payment to refund from.
    pay_card(&app, 10_000, "automatic", CARD_OK).await;
    let paid = pay_card(&app, 3000, "automatic", CARD_OK).await;
    let id = paid["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/v1/refunds", app.address);
        let key = app.secret_key.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"payment": id, "amount": 100}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            200 => succeeded += 1,
            400 | 409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(succeeded, 30, "exactly 3000 / 100 refunds fit");
    let payment = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["amount_refunded"], 3000);
    let total: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT sum(amount)::bigint FROM refunds WHERE payment_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(total, 3000);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn the_database_refuses_an_over_refund_even_by_hand() {
    let app = spawn_app().await;
    let paid = pay_card(&app, 1000, "automatic", CARD_OK).await;
    let refused = sqlx::query("UPDATE payments SET amount_refunded = 1001 WHERE id = $1")
        .bind(paid["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("payments_refund_within_received"),
        "{refused}"
    );
}

#[tokio::test]
async fn bank_transfers_process_until_cleared_and_can_be_returned() {
    let app = spawn_app().await;
    let payment = create_usd(&app, 25_000, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let processing = json(
        confirm(&app, id, json!({"type": "bank_transfer"})).await,
        200,
    )
    .await;
    assert_eq!(processing["status"], "processing");
    assert_eq!(
        processing["next_action"]["type"],
        "bank_transfer_instructions"
    );
    assert!(processing["next_action"]["reference"].is_string());
    assert_eq!(amount_in(&balance(&app).await, "pending", "usd"), 0);
    assert_eq!(events_of(&app, "payment.processing").await.len(), 1);

    let still = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(still["status"], "processing");

    let cleared = sandbox(&app, &format!("/v1/test/bank_transfers/{id}/clear")).await;
    assert_eq!(cleared["status"], "succeeded");
    // 0.8% capped at 500: 200.
    assert_eq!(amount_in(&balance(&app).await, "pending", "usd"), 24_800);
    // The bank telling the same arrival again (or a retry whose answer was
    // lost) answers the payment as it is and books nothing more.
    let again = sandbox(&app, &format!("/v1/test/bank_transfers/{id}/clear")).await;
    assert_eq!(again, cleared);
    assert_eq!(amount_in(&balance(&app).await, "pending", "usd"), 24_800);
    assert_eq!(events_of(&app, "payment.succeeded").await.len(), 1);

    let returned = sandbox(&app, &format!("/v1/test/bank_transfers/{id}/return")).await;
    assert_eq!(returned["status"], "failed");
    assert_eq!(returned["last_payment_error"]["code"], "bank_return");
    // 25,000 returned from 24,800: the merchant owes the 200 fee.
    assert_eq!(net(&balance(&app).await, "usd"), -200);
    // Only once.
    let twice = app
        .post(
            &format!("/v1/test/bank_transfers/{id}/return"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(twice.status(), 409);
    // A card payment cannot be cleared as a bank transfer.
    let card_payment = pay_card(&app, 1000, "automatic", CARD_OK).await;
    let wrong = app
        .post(
            &format!(
                "/v1/test/bank_transfers/{}/clear",
                card_payment["id"].as_str().unwrap()
            ),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(wrong.status(), 409);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn ewallets_redirect_then_approve_or_decline() {
    let app = spawn_app().await;
    let method = json!({"type": "ewallet", "ewallet": {"provider": "paypal"}});
    let payment = create_usd(&app, 900, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let redirect = json(confirm(&app, id, method.clone()).await, 200).await;
    assert_eq!(redirect["status"], "requires_action");
    assert_eq!(redirect["next_action"]["type"], "redirect");
    assert!(
        redirect["next_action"]["redirect_url"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    let approved = sandbox(&app, &format!("/v1/test/ewallet/{id}/approve")).await;
    assert_eq!(approved["status"], "succeeded");

    let other = create_usd(&app, 900, "automatic").await;
    let other_id = other["id"].as_str().unwrap();
    json(confirm(&app, other_id, method).await, 200).await;
    let declined = sandbox(&app, &format!("/v1/test/ewallet/{other_id}/decline")).await;
    assert_eq!(declined["status"], "failed");

    let bad_provider = confirm(
        &app,
        other_id,
        json!({"type": "ewallet", "ewallet": {"provider": "bank_of_mars"}}),
    )
    .await;
    assert_eq!(
        json(bad_provider, 400).await["error"]["param"],
        "payment_method.ewallet.provider"
    );
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn vouchers_are_paid_at_a_store_or_expire() {
    let app = spawn_app().await;
    let payment = create(&app, json!({"amount": 500, "currency": "jpy"})).await;
    let id = payment["id"].as_str().unwrap();
    let voucher = json(
        confirm(&app, id, json!({"type": "cash_voucher"})).await,
        200,
    )
    .await;
    assert_eq!(voucher["status"], "requires_action");
    assert_eq!(voucher["next_action"]["type"], "display_voucher");
    assert!(
        voucher["next_action"]["voucher"]["expires_at"]
            .as_i64()
            .unwrap()
            > 0
    );
    let paid = sandbox(&app, &format!("/v1/test/vouchers/{id}/pay")).await;
    assert_eq!(paid["status"], "succeeded");
    // 3% of ¥500, half up: 15.
    assert_eq!(amount_in(&balance(&app).await, "pending", "jpy"), 485);

    // A voucher past its expiry is canceled by the background job and can
    // no longer be paid.
    let late = create(&app, json!({"amount": 500, "currency": "jpy"})).await;
    let late_id = late["id"].as_str().unwrap();
    json(
        confirm(&app, late_id, json!({"type": "cash_voucher"})).await,
        200,
    )
    .await;
    assert_eq!(expire_now(&app, late_id).await, 1);
    let canceled = json(
        app.get(&format!("/v1/payments/{late_id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cancellation_reason"], "expired");
    let pay_late = app
        .post(
            &format!("/v1/test/vouchers/{late_id}/pay"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(pay_late.status(), 409);
    ledger_is_consistent(&app).await;
}

/// A payments subsystem on the test app's database, for driving jobs.
/// Moves payment `id`'s expiry into the past, as time would.
async fn make_due(app: &TestApp, id: &str) {
    sqlx::query("UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
}

/// [`make_due`], then one pass of the expiry job: how many it expired.
async fn expire_now(app: &TestApp, id: &str) -> usize {
    make_due(app, id).await;
    epg::payments::jobs::expire_due(&payments(app), time::OffsetDateTime::now_utc())
        .await
        .unwrap()
}

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

#[tokio::test]
async fn checks_clear_or_bounce() {
    let app = spawn_app().await;
    let cleared = create_usd(&app, 7000, "automatic").await;
    let id = cleared["id"].as_str().unwrap();
    let processing = json(confirm(&app, id, json!({"type": "check"})).await, 200).await;
    assert_eq!(processing["status"], "processing");
    let done = sandbox(&app, &format!("/v1/test/checks/{id}/clear")).await;
    assert_eq!(done["status"], "succeeded");

    let bounced = create_usd(&app, 4000, "automatic").await;
    let bounced_id = bounced["id"].as_str().unwrap();
    json(
        confirm(&app, bounced_id, json!({"type": "check"})).await,
        200,
    )
    .await;
    sandbox(&app, &format!("/v1/test/checks/{bounced_id}/clear")).await;
    let bounce = sandbox(&app, &format!("/v1/test/checks/{bounced_id}/bounce")).await;
    assert_eq!(bounce["status"], "failed");
    assert_eq!(bounce["last_payment_error"]["code"], "check_bounce");
    // 7000 - 70 fee, and the bounced check's 40 fee kept.
    assert_eq!(net(&balance(&app).await, "usd"), 6930 - 40);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn disputes_withdraw_and_reinstate_funds() {
    let app = spawn_app().await;
    // The sandbox's dispute card is disputed right after capture.
    let paid = pay_card(&app, 4000, "automatic", CARD_DISPUTED).await;
    assert_eq!(paid["status"], "succeeded");
    let created = events_of(&app, "dispute.created").await;
    assert_eq!(created.len(), 1);
    let dispute = &created[0]["data"]["object"];
    assert_eq!(dispute["payment"], paid["id"]);
    assert_eq!(dispute["status"], "needs_response");
    let dispute_id = dispute["id"].as_str().unwrap();
    // 4000 - 146 fee, then 4000 withdrawn: the merchant owes the fee.
    assert_eq!(net(&balance(&app).await, "usd"), -146);

    let bad = app
        .post(
            &format!("/v1/disputes/{dispute_id}/evidence"),
            &app.secret_key,
            &json!({"evidence": {"shoe_size": "9"}}),
        )
        .await;
    assert_eq!(json(bad, 400).await["error"]["param"], "evidence.shoe_size");
    let reviewed = json(
        app.post(
            &format!("/v1/disputes/{dispute_id}/evidence"),
            &app.secret_key,
            &json!({"evidence": {"receipt": "Receipt #17", "shipping_tracking_number": "1Z999"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(reviewed["status"], "under_review");
    let won = json(
        app.post(
            &format!("/v1/test/disputes/{dispute_id}/resolve"),
            &app.secret_key,
            &json!({"outcome": "won"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(won["status"], "won");
    assert_eq!(net(&balance(&app).await, "usd"), 3854);
    assert_eq!(events_of(&app, "dispute.closed").await.len(), 1);
    let closed_again = app
        .post(
            &format!("/v1/disputes/{dispute_id}/close"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    assert_eq!(closed_again.status(), 409);

    // A dispute opened by hand and conceded: the money is gone.
    let other = pay_card(&app, 2000, "automatic", CARD_OK).await;
    let opened = json(
        app.post(
            "/v1/test/disputes",
            &app.secret_key,
            &json!({"payment": other["id"]}),
        )
        .await,
        200,
    )
    .await;
    let lost = json(
        app.post(
            &format!("/v1/disputes/{}/close", opened["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(lost["status"], "lost");
    assert_eq!(net(&balance(&app).await, "usd"), 3854 - 88);
    let fetched = json(
        app.get(
            &format!("/v1/disputes/{}", opened["id"].as_str().unwrap()),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(fetched["status"], "lost");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn uncaptured_authorizations_are_voided_after_their_lifetime() {
    let app = spawn_app().await;
    let authorized = pay_card(&app, 1000, "manual", CARD_OK).await;
    let id = authorized["id"].as_str().unwrap();
    let expires_at = authorized["expires_at"].as_i64().unwrap();
    let week = 7 * 24 * 3600;
    assert!((expires_at - time::OffsetDateTime::now_utc().unix_timestamp() - week).abs() < 60);
    make_due(&app, id).await;
    // Two "nodes" run the job at once: the payment is expired exactly once.
    let (node_a, node_b) = (payments(&app), payments(&app));
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = tokio::join!(
        epg::payments::jobs::expire_due(&node_a, now),
        epg::payments::jobs::expire_due(&node_b, now),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let voided = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(voided["status"], "canceled");
    assert_eq!(voided["amount_capturable"], 0);
    assert_eq!(events_of(&app, "payment.canceled").await.len(), 1);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn an_operation_in_flight_makes_others_wait_and_the_expiry_job_leave_the_payment() {
    let app = spawn_app().await;
    let authorized = pay_card(&app, 1000, "manual", CARD_OK).await;
    let id = authorized["id"].as_str().unwrap();
    // Another node's void of the payment, under its lease.
    sqlx::query(
        "INSERT INTO payment_operations (id, merchant_id, payment_id, kind, amount, locked_until)
         SELECT 'pop_' || substr(md5(random()::text), 1, 24), merchant_id, id, 'void', 0,
                now() + interval '1 hour'
           FROM payments WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();

    // The API's answer keeps its code.
    let capture = app
        .post(
            &format!("/v1/payments/{id}/capture"),
            &app.secret_key,
            &json!({}),
        )
        .await;
    let body = json(capture, 409).await;
    assert_eq!(body["error"]["code"], "payment_operation_in_progress");

    // The expiry job leaves it to the node that holds it: no error, no
    // cancel, no second operation.
    assert_eq!(expire_now(&app, id).await, 0);
    let payment = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["status"], "requires_capture");
    let operations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payment_operations WHERE payment_id = $1 AND kind = 'void'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(operations, 1);
}

#[tokio::test]
async fn risk_blocks_above_the_merchant_threshold() {
    let app = spawn_app().await;
    sqlx::query("UPDATE merchants SET risk_threshold = 30 WHERE id = $1")
        .bind(app.merchant_id.as_str())
        .execute(&app.pool)
        .await
        .unwrap();
    for _ in 0..3 {
        pay_card(&app, 1000, "automatic", CARD_OK).await;
    }
    // Fourth use of the same card within the hour: card velocity, 30 points.
    let payment = create_usd(&app, 1000, "automatic").await;
    let blocked = json(
        confirm(&app, payment["id"].as_str().unwrap(), card(CARD_OK)).await,
        402,
    )
    .await;
    assert_eq!(blocked["error"]["code"], "risk_blocked");
    assert_eq!(blocked["error"]["payment"]["status"], "failed");
    assert_eq!(blocked["error"]["payment"]["risk"]["score"], 30);
    assert_eq!(
        blocked["error"]["payment"]["risk"]["reasons"][0]["code"],
        "card_velocity"
    );

    // Shipping to another country than the card's adds its own reason.
    let shipped = create(
        &app,
        json!({"amount": 1000, "currency": "usd", "shipping": {"name": "Bo", "address":
            {"line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"}}}),
    )
    .await;
    let blocked = json(
        confirm(
            &app,
            shipped["id"].as_str().unwrap(),
            card("5555555555554444"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(blocked["risk"]["score"], 25);
    assert_eq!(
        blocked["risk"]["reasons"][0]["code"],
        "card_country_mismatch"
    );
}

#[tokio::test]
async fn every_input_error_is_400_naming_the_param_and_changes_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({"amount": 0, "currency": "usd"}), "amount"),
        (json!({"amount": -5, "currency": "usd"}), "amount"),
        (json!({"amount": 100_000_000, "currency": "usd"}), "amount"),
        (json!({"amount": "12", "currency": "usd"}), "amount"),
        (json!({"amount": 12.5, "currency": "usd"}), "amount"),
        (json!({"currency": "usd"}), "amount"),
        (json!({"amount": 100, "currency": "usx"}), "currency"),
        (
            json!({"amount": 100, "currency": "usd", "capture_method": "later"}),
            "capture_method",
        ),
        (
            json!({"amount": 100, "currency": "usd", "payment_method_types": ["cash"]}),
            "payment_method_types[0]",
        ),
        (
            json!({"amount": 100, "currency": "usd", "colour": "red"}),
            "colour",
        ),
        (
            json!({"amount": 100, "currency": "usd", "customer": {"email": "nope"}}),
            "customer.email",
        ),
        (
            json!({"amount": 100, "currency": "usd", "shipping": {"name": "A", "address": {"line1": "x", "postal_code": "1", "country": "US"}}}),
            "shipping.address.city",
        ),
        (
            json!({"amount": 100, "currency": "usd", "shipping": {"name": "A", "address": {"line1": "x", "city": "y", "postal_code": "1", "country": "USA"}}}),
            "shipping.address.country",
        ),
        (
            json!({"amount": 100, "currency": "usd", "metadata": {"k": "v".repeat(501)}}),
            "metadata.k",
        ),
    ];
    for (body, param) in cases {
        let response = app.post("/v1/payments", &app.secret_key, &body).await;
        let error = json(response, 400).await;
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let error = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 100, "currency": "usd", "metadata": many}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error["error"]["param"], "metadata");
    let list = json(app.get("/v1/payments", &app.secret_key).await, 200).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );

    // Card details at confirmation.
    let payment = create_usd(&app, 100, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let card_cases = [
        (
            json!({"type": "card", "card": {"number": "4242424242424241", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}),
            "payment_method.card.number",
        ),
        (
            json!({"type": "card", "card": {"number": CARD_OK, "exp_month": 13, "exp_year": 2034, "cvc": "123"}}),
            "payment_method.card.exp_month",
        ),
        (
            json!({"type": "card", "card": {"number": CARD_OK, "exp_month": 1, "exp_year": 2020, "cvc": "123"}}),
            "payment_method.card.exp_month",
        ),
        (
            json!({"type": "card", "card": {"number": CARD_OK, "exp_month": 1, "exp_year": 2034, "cvc": "12"}}),
            "payment_method.card.cvc",
        ),
        (json!({"type": "card"}), "payment_method.card"),
        (json!({"type": "cheque"}), "payment_method.type"),
        (
            json!({"type": "card", "card": {"number": CARD_OK, "exp_month": 1, "exp_year": 2034, "cvc": "123", "pin": "1"}}),
            "payment_method.card.pin",
        ),
    ];
    for (method, param) in card_cases {
        let error = json(confirm(&app, id, method.clone()).await, 400).await;
        assert_eq!(error["error"]["param"], param, "{method}");
    }
    let still = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(still["status"], "requires_payment_method");
    // A type not allowed for this payment.
    let card_only = create(
        &app,
        json!({"amount": 100, "currency": "usd", "payment_method_types": ["card"]}),
    )
    .await;
    let error = json(
        confirm(
            &app,
            card_only["id"].as_str().unwrap(),
            json!({"type": "check"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(error["error"]["param"], "payment_method.type");
}

#[tokio::test]
async fn another_merchants_payment_is_404_everywhere() {
    let app = spawn_app().await;
    let paid = pay_card(&app, 1000, "automatic", CARD_OK).await;
    let id = paid["id"].as_str().unwrap();
    let (_, other_key) = app.merchant().await;
    assert_eq!(
        app.get(&format!("/v1/payments/{id}"), &other_key)
            .await
            .status(),
        404
    );
    for action in ["confirm", "capture", "cancel", "challenge"] {
        let response = app
            .post(
                &format!("/v1/payments/{id}/{action}"),
                &other_key,
                &json!({"payment_method": card(CARD_OK), "code": "123456"}),
            )
            .await;
        let status = response.status();
        // Unknown fields for some actions are reported first; none may
        // reveal the payment.
        assert!(status == 404 || status == 400, "{action}: {status}");
        if status == 400 {
            let body: Value = response.json().await.unwrap();
            assert!(!body.to_string().contains(id));
        }
    }
    let refund = app
        .post("/v1/refunds", &other_key, &json!({"payment": id}))
        .await;
    assert_eq!(refund.status(), 404);
    let list = json(app.get("/v1/payments", &other_key).await, 200).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/v1/payments/pay_doesnotexist", &app.secret_key)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn retries_with_the_same_idempotency_key_do_not_repeat_confirm_capture_or_refund() {
    let app = spawn_app().await;
    let send = |path: String, key: &'static str, body: Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&app.secret_key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let payment = create_usd(&app, 5000, "manual").await;
    let id = payment["id"].as_str().unwrap();
    let confirm_body = json!({"payment_method": card(CARD_OK)});
    let first = send(
        format!("/v1/payments/{id}/confirm"),
        "c1",
        confirm_body.clone(),
    )
    .await
    .unwrap();
    let first_text = first.text().await.unwrap();
    let again = send(format!("/v1/payments/{id}/confirm"), "c1", confirm_body)
        .await
        .unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_text);

    let capture = send(
        format!("/v1/payments/{id}/capture"),
        "k1",
        json!({"amount_to_capture": 4000}),
    )
    .await
    .unwrap();
    assert_eq!(capture.status(), 200);
    let capture_again = send(
        format!("/v1/payments/{id}/capture"),
        "k1",
        json!({"amount_to_capture": 4000}),
    )
    .await
    .unwrap();
    assert_eq!(capture_again.status(), 200, "a replay, not a 409");

    for _ in 0..3 {
        let refund = send(
            "/v1/refunds".into(),
            "r1",
            json!({"payment": id, "amount": 1000}),
        )
        .await
        .unwrap();
        assert_eq!(refund.status(), 200);
    }
    let refunds = json(
        app.get(&format!("/v1/refunds?payment={id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1);
    assert_eq!(events_of(&app, "payment.succeeded").await.len(), 1);
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn lists_filter_by_status_and_paginate() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let p = create_usd(&app, 100 + i, "automatic").await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    pay_card(&app, 999, "automatic", CARD_OK).await;
    let page = json(app.get("/v1/payments?limit=2", &app.secret_key).await, 200).await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["has_more"], true);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let last = data[1]["id"].as_str().unwrap();
    let next = json(
        app.get(
            &format!("/v1/payments?limit=10&starting_after={last}"),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 4);
    assert_eq!(next["has_more"], false);
    let back = json(
        app.get(
            &format!("/v1/payments?limit=1&ending_before={last}"),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(back["data"][0]["id"], data[0]["id"]);
    let succeeded = json(
        app.get("/v1/payments?status=succeeded", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(succeeded["data"].as_array().unwrap().len(), 1);
    for bad in [
        "limit=0",
        "limit=101",
        "status=done",
        "starting_after=pay_x",
    ] {
        let response = app
            .get(&format!("/v1/payments?{bad}"), &app.secret_key)
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn refunds_paginate_both_ways() {
    let app = spawn_app().await;
    let paid = pay_card(&app, 5000, "automatic", CARD_OK).await;
    let payment = paid["id"].as_str().unwrap().to_owned();
    // r0 … r4, oldest first.
    let mut refunds = Vec::new();
    for amount in 100..105 {
        let refund = json(
            app.post(
                "/v1/refunds",
                &app.secret_key,
                &json!({"payment": payment, "amount": amount}),
            )
            .await,
            200,
        )
        .await;
        refunds.push(refund["id"].as_str().unwrap().to_owned());
    }
    // The newest refund is of another payment.
    let other = pay_card(&app, 1000, "automatic", CARD_OK).await;
    let newest = json(
        app.post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": other["id"]}),
        )
        .await,
        200,
    )
    .await;
    let newest = newest["id"].as_str().unwrap().to_owned();
    let page = |query: String| {
        let app = &app;
        async move {
            json(
                app.get(&format!("/v1/refunds?{query}"), &app.secret_key)
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
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = |n: usize| refunds[n].clone();

    let first = page("limit=2".into()).await;
    assert_eq!(ids(&first), [newest.clone(), r(4)]);
    assert_eq!(first["has_more"], true);
    let second = page(format!("limit=2&starting_after={}", r(4))).await;
    assert_eq!(ids(&second), [r(3), r(2)]);
    assert_eq!(second["has_more"], true);

    // Backwards: the page just before the cursor, newest first.
    let back = page(format!("limit=2&ending_before={}", r(2))).await;
    assert_eq!(ids(&back), [r(4), r(3)]);
    assert_eq!(back["has_more"], true, "the newest is still before it");
    let back = page(format!("limit=10&ending_before={}", r(1))).await;
    assert_eq!(ids(&back), [newest.clone(), r(4), r(3), r(2)]);
    assert_eq!(back["has_more"], false);
    let back = page(format!("limit=1&ending_before={}", r(0))).await;
    assert_eq!(ids(&back), [r(1)]);
    assert_eq!(back["has_more"], true);
    let top = page(format!("ending_before={newest}")).await;
    assert!(ids(&top).is_empty());
    assert_eq!(top["has_more"], false);
    // With the payment filter: the newest refund is not of this payment.
    let back = page(format!("payment={payment}&limit=1&ending_before={}", r(3))).await;
    assert_eq!(ids(&back), [r(4)]);
    assert_eq!(back["has_more"], false);

    // Cursors that name no refund of the caller, and both cursors at once.
    let (_, other_key) = app.merchant().await;
    let theirs = json(
        app.get(&format!("/v1/refunds?ending_before={}", r(0)), &other_key)
            .await,
        400,
    )
    .await;
    assert_eq!(theirs["error"]["param"], "ending_before");
    for (query, param) in [
        (
            format!("starting_after={}&ending_before={}", r(0), r(1)),
            "ending_before",
        ),
        ("ending_before=re_nope".into(), "ending_before"),
        ("starting_after=re_nope".into(), "starting_after"),
        (
            format!("ending_before=re_{}", "0".repeat(24)),
            "ending_before",
        ),
        (
            format!("starting_after=re_{}", "0".repeat(24)),
            "starting_after",
        ),
    ] {
        let body = json(
            app.get(&format!("/v1/refunds?{query}"), &app.secret_key)
                .await,
            400,
        )
        .await;
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
}

#[tokio::test]
async fn a_browser_checkout_confirms_with_the_publishable_key_and_client_secret() {
    let app = spawn_app().await;
    let payment = create_usd(&app, 1200, "automatic").await;
    let id = payment["id"].as_str().unwrap();
    let secret = payment["client_secret"].as_str().unwrap();
    // Without the client secret the payment does not exist for a browser.
    let hidden = app
        .get(&format!("/v1/payments/{id}"), &app.publishable_key)
        .await;
    assert_eq!(hidden.status(), 404);
    let view = json(
        app.get(
            &format!("/v1/payments/{id}?client_secret={secret}"),
            &app.publishable_key,
        )
        .await,
        200,
    )
    .await;
    assert!(
        view.get("metadata").is_none(),
        "the checkout view hides merchant fields"
    );
    let wrong = app
        .post(
            &format!("/v1/payments/{id}/confirm"),
            &app.publishable_key,
            &json!({"payment_method": card(CARD_OK), "client_secret": format!("{id}_secret_wrong")}),
        )
        .await;
    assert_eq!(wrong.status(), 404);
    let paid = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.publishable_key,
            &json!({"payment_method": card(CARD_OK), "client_secret": secret}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(paid["status"], "succeeded");
    // Publishable keys cannot capture, refund or list.
    assert_eq!(
        app.get("/v1/payments", &app.publishable_key).await.status(),
        403
    );
    let refund = app
        .post("/v1/refunds", &app.publishable_key, &json!({"payment": id}))
        .await;
    assert_eq!(refund.status(), 403);
}

#[tokio::test]
async fn confirm_on_create_pays_in_one_request() {
    let app = spawn_app().await;
    let paid = create(
        &app,
        json!({"amount": 2000, "currency": "usd", "confirm": true,
               "customer": {"email": "ada@example.com"},
               "payment_method": card(CARD_OK)}),
    )
    .await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_received"], 2000);
    assert_eq!(paid["payment_method"]["card"]["last4"], "4242");
    assert_eq!(paid["risk"]["score"], 0);
    let id = paid["id"].as_str().unwrap();
    let fetched = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(fetched, paid);
    // Captured at authorization: 2000 less the fee of 88, nothing held.
    let balance = balance(&app).await;
    assert_eq!(amount_in(&balance, "pending", "usd"), 1912);
    let events = events_of(&app, "payment.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["object"]["id"], id);

    // Manual capture: authorized in the same request, captured later.
    let held = create(
        &app,
        json!({"amount": 1000, "currency": "usd", "capture_method": "manual",
               "confirm": true, "payment_method": card(CARD_OK)}),
    )
    .await;
    assert_eq!(held["status"], "requires_capture");
    assert_eq!(held["amount_capturable"], 1000);
    let hid = held["id"].as_str().unwrap();
    let captured = json(
        app.post(
            &format!("/v1/payments/{hid}/capture"),
            &app.secret_key,
            &json!({"amount_to_capture": 600}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount_received"], 600);

    // Other methods go as their confirmation would.
    let bank = create(
        &app,
        json!({"amount": 500, "currency": "usd", "payment_method_types": ["bank_transfer"],
               "confirm": true, "payment_method": {"type": "bank_transfer"}}),
    )
    .await;
    assert_eq!(bank["status"], "processing");
    ledger_is_consistent(&app).await;
}

#[tokio::test]
async fn confirm_on_create_refuses_bad_input_before_making_a_payment() {
    let app = spawn_app().await;
    let refused = |body: Value| {
        let app = &app;
        async move { json(app.post("/v1/payments", &app.secret_key, &body).await, 400).await }
    };
    let missing = refused(json!({"amount": 2000, "currency": "usd", "confirm": true})).await;
    assert_eq!(missing["error"]["param"], "payment_method");
    let unconfirmed = refused(json!({"amount": 2000, "currency": "usd",
                                     "payment_method": card(CARD_OK)}))
    .await;
    assert_eq!(unconfirmed["error"]["param"], "payment_method");
    let bad_card = refused(json!({"amount": 2000, "currency": "usd", "confirm": true,
        "payment_method": card("4242424242424241")}))
    .await;
    assert_eq!(bad_card["error"]["param"], "payment_method.card.number");
    let bad_amount = refused(json!({"amount": 0, "currency": "usd", "confirm": true,
        "payment_method": card(CARD_OK)}))
    .await;
    assert_eq!(bad_amount["error"]["param"], "amount");
    let not_allowed = refused(json!({"amount": 2000, "currency": "usd", "confirm": true,
        "payment_method_types": ["bank_transfer"], "payment_method": card(CARD_OK)}))
    .await;
    assert_eq!(not_allowed["error"]["param"], "payment_method.type");
    let list = json(app.get("/v1/payments", &app.secret_key).await, 200).await;
    assert_eq!(list["data"], json!([]), "no payment was made");
}

#[tokio::test]
async fn confirm_on_create_declines_with_402_and_retries_with_its_key() {
    let app = spawn_app().await;
    let declined = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 1500, "currency": "usd", "confirm": true,
                    "payment_method": card(CARD_DECLINED)}),
        )
        .await,
        402,
    )
    .await;
    assert_eq!(declined["error"]["code"], "card_declined");
    assert_eq!(declined["error"]["payment"]["status"], "failed");
    // The failed payment may be confirmed again.
    let id = declined["error"]["payment"]["id"].as_str().unwrap();
    let paid = json(confirm(&app, id, card(CARD_OK)).await, 200).await;
    assert_eq!(paid["status"], "succeeded");

    // The same request with the same key: the one payment it made.
    let body = json!({"amount": 700, "currency": "usd", "confirm": true,
                      "payment_method": card(CARD_OK)});
    let send = || {
        app.client
            .post(format!("{}/v1/payments", app.address))
            .bearer_auth(&app.secret_key)
            .header("Idempotency-Key", "one-request-pay-1")
            .json(&body)
            .send()
    };
    let first = json(send().await.unwrap(), 200).await;
    let again = json(send().await.unwrap(), 200).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["status"], "succeeded");
    let list = json(
        app.get("/v1/payments?limit=100", &app.secret_key).await,
        200,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    ledger_is_consistent(&app).await;
}
