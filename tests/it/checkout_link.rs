//! The link to the hosted checkout: `checkout_url` on every view of a
//! payment, what it may do with the client secret alone (its own payment,
//! nothing else), `return_url` validated with a precise `param`, the page
//! in the customer's language, and the QR code of a crypto payment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestApp, json, spawn_app, spawn_app_with};
use epg::chain::config::ChainConfig;
use serde_json::{Value, json};

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/payments", &app.secret_key, &body).await
}

#[tokio::test]
async fn every_payment_has_a_checkout_url_that_needs_no_key() {
    let app = spawn_app().await;
    let payment = json(
        create(
            &app,
            json!({"amount": 2500, "currency": "usd", "description": "Order 7",
                   "return_url": "https://shop.example/done?order=7"}),
        )
        .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap();
    let secret = payment["client_secret"].as_str().unwrap();
    assert_eq!(
        payment["checkout_url"],
        format!("{}/checkout/{id}?client_secret={secret}", app.address)
    );
    assert_eq!(payment["return_url"], "https://shop.example/done?order=7");

    // The client secret alone, as the page opened from checkout_url sends it.
    let view = json(
        app.get(&format!("/v1/payments/{id}?client_secret={secret}"), secret)
            .await,
        200,
    )
    .await;
    assert_eq!(view["checkout_url"], payment["checkout_url"]);
    assert_eq!(view["merchant_name"], "Test Merchant");
    assert_eq!(view["description"], "Order 7");
    assert_eq!(view["return_url"], "https://shop.example/done?order=7");
    assert_eq!(view["crypto_options"], json!([]));
    assert!(view.get("metadata").is_none() && view.get("customer").is_none());
    // The merchant's view, on every read.
    let merchant = json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(merchant["checkout_url"], payment["checkout_url"]);
    assert!(merchant.get("merchant_name").is_none());

    // It confirms its own payment ...
    let paid = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            secret,
            &json!({"client_secret": secret, "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["checkout_url"], payment["checkout_url"]);

    // ... and nothing else: another payment is unknown to it, secret-key
    // routes refuse it, and a made-up secret is no key at all.
    let other = json(
        create(&app, json!({"amount": 100, "currency": "usd"})).await,
        200,
    )
    .await;
    let other_id = other["id"].as_str().unwrap();
    let err = json(
        app.get(
            &format!("/v1/payments/{other_id}?client_secret={secret}"),
            secret,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(err["error"]["code"], "resource_missing");
    let err = json(app.get("/v1/payments", secret).await, 403).await;
    assert_eq!(err["error"]["code"], "secret_key_required");
    let err = json(app.get("/v1/balance", secret).await, 403).await;
    assert_eq!(err["error"]["code"], "secret_key_required");
    let forged = format!("{id}_secret_AAAAAAAAAAAAAAAAAAAAAAAA");
    let err = json(
        app.get(
            &format!("/v1/payments/{id}?client_secret={forged}"),
            &forged,
        )
        .await,
        401,
    )
    .await;
    assert_eq!(err["error"]["code"], "api_key_invalid");
}

#[tokio::test]
async fn return_url_must_be_https_or_local_http_in_test_mode() {
    let app = spawn_app().await;
    for ok in [
        "https://shop.example/thanks",
        "http://localhost:3000/done",
        "http://127.0.0.1:8080/x?y=1",
    ] {
        let payment = json(
            create(
                &app,
                json!({"amount": 100, "currency": "usd", "return_url": ok}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(payment["return_url"], ok);
    }
    let long = format!("https://shop.example/{}", "a".repeat(2100));
    // Under the limit as sent, over it once percent-encoded (each `é` is
    // stored as %C3%A9): refused, not a 500 from the column's check.
    let grows = format!("https://shop.example/{}", "é".repeat(700));
    for bad in [
        "/relative/path",
        "shop.example/thanks",
        "http://shop.example/thanks",
        "javascript:alert(1)",
        "ftp://shop.example/",
        "https://user:pass@shop.example/",
        long.as_str(),
        grows.as_str(),
    ] {
        let err = json(
            create(
                &app,
                json!({"amount": 100, "currency": "usd", "return_url": bad}),
            )
            .await,
            400,
        )
        .await;
        assert_eq!(err["error"]["param"], "return_url", "{bad}: {err}");
    }
    let err = json(
        create(
            &app,
            json!({"amount": 100, "currency": "usd", "return_url": 5}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "return_url");
}

#[tokio::test]
async fn the_page_speaks_the_customers_language() {
    let app = spawn_app().await;
    let page = |query: &'static str, language: Option<&'static str>| {
        let mut request = app.client.get(format!(
            "{}/checkout/pay_000000000000000000000000{query}",
            app.address
        ));
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let english = page("", None).await;
    assert!(english.contains("<html lang=\"en\">"));
    assert!(english.contains("\"pay_with\": \"Pay with\""));
    let chinese = page("", Some("zh-CN,zh;q=0.9,en;q=0.8")).await;
    assert!(chinese.contains("<html lang=\"zh-CN\">"));
    assert!(chinese.contains("\"pay_with\": \"付款方式\""));
    assert_eq!(
        page("?locale=zh-CN&client_secret=x", Some("en")).await,
        chinese
    );
    assert_eq!(page("?locale=en", Some("zh-CN")).await, english);
    assert_eq!(page("?locale=fr", Some("de, zh;q=0.5")).await, chinese);
    // The catalogue cannot close its script element.
    assert!(!chinese.contains("{{"));
}

#[tokio::test]
async fn a_crypto_payment_has_its_qr_code_and_options() {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let chain = ChainConfig::devnet(&deployment, &anvil.rpc_url());
    let app = spawn_app_with(move |config| config.chains = vec![chain]).await;
    let payment = json(
        create(
            &app,
            json!({"amount": 1234, "currency": "usd", "payment_method_types": ["crypto", "card"]}),
        )
        .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap();
    let secret = payment["client_secret"].as_str().unwrap();
    let view = json(
        app.get(&format!("/v1/payments/{id}?client_secret={secret}"), secret)
            .await,
        200,
    )
    .await;
    let options = view["crypto_options"].as_array().unwrap();
    assert_eq!(options.len(), 2, "{view}");
    assert_eq!(options[0]["asset"], "usdc");
    assert_eq!(options[0]["decimals"], 6);
    assert_eq!(options[0]["chain_id"], 31337);
    assert_eq!(options[1]["asset"], "eth");
    assert!(options[1]["token_address"].is_null());

    let qr = |secret: String| {
        let url = format!(
            "{}/checkout/{id}/qr.svg?client_secret={secret}",
            app.address
        );
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    // Nothing to scan before a quote, nor with a wrong secret.
    assert_eq!(qr(secret.to_owned()).await.status(), 404);
    json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            secret,
            &json!({"client_secret": secret, "payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}}),
        )
        .await,
        200,
    )
    .await;
    let response = qr(secret.to_owned()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let svg = response.text().await.unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("<path fill=\"#000\" d=\"M"));
    assert_eq!(qr(format!("{id}_secret_wrong")).await.status(), 404);
    let missing = app
        .client
        .get(format!("{}/checkout/{id}/qr.svg", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);

    // A fresh quote is not renewed: only a lapsed, unpaid one is.
    let err = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(err["error"]["code"], "payment_unexpected_state");
}
