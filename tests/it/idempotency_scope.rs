//! Saved idempotent responses belong to a merchant *and* a kind of key.
//! The publishable key sits in every customer's browser, so whoever holds
//! it must not be able to read what the secret key saved (a webhook
//! signing secret, the merchant's view of a payment) nor claim the keys
//! the merchant's server is about to use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestApp, json, spawn_app};
use serde_json::{Value, json};

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
}

/// `POST path` with `api_key` and `Idempotency-Key: idem`.
async fn post(
    app: &TestApp,
    path: &str,
    api_key: &str,
    idem: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(api_key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn new_payment(app: &TestApp) -> Value {
    json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 2500, "currency": "usd", "metadata": {"order": "A-17"},
                    "customer": {"email": "ada@example.com"}}),
        )
        .await,
        200,
    )
    .await
}

#[tokio::test]
async fn a_publishable_key_cannot_replay_a_secret_key_response() {
    let app = spawn_app().await;
    let body = json!({"url": "https://93.184.216.34/hooks", "enabled_events": ["*"]});
    let created = json(
        post(
            &app,
            "/v1/webhook_endpoints",
            &app.secret_key,
            "we-1",
            &body,
        )
        .await,
        200,
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));

    // The same request, key and body, from a browser's key.
    let replay = post(
        &app,
        "/v1/webhook_endpoints",
        &app.publishable_key,
        "we-1",
        &body,
    )
    .await;
    let replayed = replay.headers().contains_key("idempotent-replayed");
    let status = replay.status().as_u16();
    let text = replay.text().await.unwrap();
    assert!(!text.contains(secret), "the signing secret leaked: {text}");
    assert!(!replayed, "a saved response was replayed: {text}");
    assert_eq!(status, 403, "{text}");
}

#[tokio::test]
async fn a_publishable_key_cannot_replay_the_merchants_view_of_a_confirmation() {
    let app = spawn_app().await;
    let payment = new_payment(&app).await;
    let id = payment["id"].as_str().unwrap();
    let path = format!("/v1/payments/{id}/confirm");
    let body = json!({"payment_method": card("4242424242424242")});
    let merchant_view = json(post(&app, &path, &app.secret_key, "c-1", &body).await, 200).await;
    assert_eq!(merchant_view["metadata"]["order"], "A-17");

    // Confirm is a route both keys may call; the browser's twin request
    // runs on its own (and needs the client secret) instead of replaying.
    let twin = post(&app, &path, &app.publishable_key, "c-1", &body).await;
    let replayed = twin.headers().contains_key("idempotent-replayed");
    let text = twin.text().await.unwrap();
    assert!(!replayed, "the merchant's response was replayed: {text}");
    assert!(
        !text.contains("A-17"),
        "merchant-only fields leaked: {text}"
    );
    assert!(
        !text.contains("ada@example.com"),
        "the customer leaked: {text}"
    );
}

#[tokio::test]
async fn a_publishable_key_cannot_poison_the_secret_keys_idempotency_keys() {
    let app = spawn_app().await;
    let paid = new_payment(&app).await;
    let paid_id = paid["id"].as_str().unwrap();
    json(
        post(
            &app,
            &format!("/v1/payments/{paid_id}/confirm"),
            &app.secret_key,
            "pay-1",
            &json!({"payment_method": card("4242424242424242")}),
        )
        .await,
        200,
    )
    .await;

    // A secret-key route: the browser's key is refused before it can claim
    // "r-1", so the merchant's refund under "r-1" runs.
    let refused = post(
        &app,
        "/v1/refunds",
        &app.publishable_key,
        "r-1",
        &json!({"payment": paid_id, "amount": 1}),
    )
    .await;
    assert_eq!(refused.status(), 403);
    let refund = json(
        post(
            &app,
            "/v1/refunds",
            &app.secret_key,
            "r-1",
            &json!({"payment": paid_id, "amount": 500}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refund["amount"], 500);

    // A route both keys may call: the browser's attempt under "c-2" does
    // not hold the key for the merchant's server.
    let open = new_payment(&app).await;
    let open_id = open["id"].as_str().unwrap();
    let path = format!("/v1/payments/{open_id}/confirm");
    let guessed = post(
        &app,
        &path,
        &app.publishable_key,
        "c-2",
        &json!({"client_secret": format!("{open_id}_secret_guess"), "payment_method": card("4000000000000002")}),
    )
    .await;
    assert_eq!(guessed.status(), 404);
    let confirmed = json(
        post(
            &app,
            &path,
            &app.secret_key,
            "c-2",
            &json!({"payment_method": card("4242424242424242")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");
}

/// A create whose saved answer was lost (the database failed over between
/// the payment's commit and the response's save, and the claim's lease
/// passed) is retried with its key: the retry answers the payment the first
/// try made, never a second one, and a key reused for another amount is
/// refused. The same holds for a create with `confirm: true`.
#[tokio::test]
async fn a_create_retried_after_its_saved_answer_was_lost_makes_no_second_payment() {
    let app = spawn_app().await;
    let body = json!({"amount": 1500, "currency": "usd"});
    let confirmed = json!({"amount": 1600, "currency": "usd", "confirm": true,
                           "payment_method": card("4242424242424242")});
    for (key, body) in [("lost-answer-1", &body), ("lost-answer-2", &confirmed)] {
        let first = json(
            post(&app, "/v1/payments", &app.secret_key, key, body).await,
            200,
        )
        .await;
        // What a lost save and an expired lease leave behind: no saved answer.
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .execute(&app.pool)
            .await
            .unwrap();
        let retry = json(
            post(&app, "/v1/payments", &app.secret_key, key, body).await,
            200,
        )
        .await;
        assert_eq!(retry["id"], first["id"], "{key}");
        assert_eq!(retry["status"], first["status"], "{key}");
        let made: i64 = sqlx::query_scalar(
            // Stored as the kind of API key and the key (`sk:…`), as
            // refunds and operations store theirs.
            "SELECT count(*) FROM payments WHERE merchant_id = $1 AND idempotency_key = 'sk:' || $2",
        )
        .bind(app.merchant_id.as_str())
        .bind(key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(made, 1, "{key}");
    }
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payments, 2);

    sqlx::query("DELETE FROM idempotency_keys WHERE key = 'lost-answer-1'")
        .execute(&app.pool)
        .await
        .unwrap();
    let other = json!({"amount": 999, "currency": "usd"});
    let err = json(
        post(
            &app,
            "/v1/payments",
            &app.secret_key,
            "lost-answer-1",
            &other,
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(err["error"]["param"], "Idempotency-Key");
}
