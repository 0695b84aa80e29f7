//! The checkout page in a real browser, Debian's Chromium (installed by
//! `scripts/setup`; `EPG_CHROMIUM` names another binary). Without it these
//! tests fail: a browser test that cannot fail proves nothing.
//!
//! - [`the_page_works_in_a_browser`]: headless Chromium loads the page for
//!   a payment that does not exist, an open one and a paid one, runs its
//!   script against a live node, and the DOM it leaves is checked.
//! - [`every_method_in_chromium`]: `tests/browser/checkout.mjs` drives
//!   Chromium with playwright-core against a node and anvil started here —
//!   cards (success and return, decline, 3-D Secure), bank instructions,
//!   Chinese, and crypto through an injected EIP-1193 wallet forwarding to
//!   anvil (QR decoded back, confirmations, underpaid then topped up, an
//!   expired quote renewed). Screenshots go to `target/checkout-screens/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestApp, json, spawn_app, spawn_app_with};
use epg::chain::config::ChainConfig;
use serde_json::json;

/// The browser, or a failure that says how to get it.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("EPG_CHROMIUM") {
        return PathBuf::from(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium not found: run scripts/setup (installs Debian's chromium) or set EPG_CHROMIUM")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The DOM of `url` once its script has run.
async fn dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--lang=en-US",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes")
    .expect("chromium runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn checkout_url(app: &TestApp, payment: &serde_json::Value) -> String {
    format!(
        "{}/checkout/{}?client_secret={}&key={}",
        app.address,
        payment["id"].as_str().unwrap(),
        payment["client_secret"].as_str().unwrap(),
        app.publishable_key
    )
}

#[tokio::test]
async fn the_page_works_in_a_browser() {
    let browser = chromium();
    let app = spawn_app().await;

    // A payment that does not exist: the page asks, and shows "not found".
    let page = dom(
        &browser,
        &format!(
            "{}/checkout/pay_000000000000000000000000?client_secret=pay_000000000000000000000000_secret_x&key={}",
            app.address, app.publishable_key
        ),
    )
    .await;
    assert!(
        page.contains("<section id=\"not-found\" class=\"notice error\">"),
        "not found is shown: {page}"
    );
    assert!(page.contains("<p id=\"loading\" class=\"notice\" data-i18n=\"loading\" hidden=\"\">"));

    // An open payment: its amount and its methods.
    let open = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 2500, "currency": "usd", "payment_method_types": ["card", "cash_voucher"]}),
        )
        .await,
        200,
    )
    .await;
    let page = dom(&browser, &checkout_url(&app, &open)).await;
    assert!(page.contains("<h1 id=\"amount\">$25.00</h1>"), "{page}");
    assert!(
        page.contains("<section id=\"pay\">"),
        "the methods are shown: {page}"
    );
    assert!(page.contains("value=\"card\""));
    assert!(page.contains("value=\"cash_voucher\""));
    assert!(!page.contains("value=\"bank_transfer\""));
    assert!(page.contains("<section id=\"not-found\" class=\"notice error\" hidden=\"\">"));
    assert!(page.contains("Pay Test Merchant"), "{page}");

    // The link of the API, without any key: the client secret is enough.
    let page = dom(&browser, open["checkout_url"].as_str().unwrap()).await;
    assert!(page.contains("<h1 id=\"amount\">$25.00</h1>"), "{page}");

    // A paid one: the outcome.
    let paid = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 1200, "currency": "jpy"}),
        )
        .await,
        200,
    )
    .await;
    json(
        app.post(
            &format!("/v1/payments/{}/confirm", paid["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({"payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await;
    let page = dom(&browser, &checkout_url(&app, &paid)).await;
    assert!(page.contains("<h1 id=\"amount\">¥1,200</h1>"), "{page}");
    assert!(page.contains("Payment successful"), "{page}");
    assert!(page.contains("<section id=\"pay\" hidden=\"\">"));

    // A link with a secret key is refused before any request.
    let page = dom(
        &browser,
        &format!(
            "{}/checkout/{}?client_secret={}&key={}",
            app.address,
            open["id"].as_str().unwrap(),
            open["client_secret"].as_str().unwrap(),
            app.secret_key
        ),
    )
    .await;
    assert!(page.contains("it carries a secret key"), "{page}");
}

#[tokio::test]
async fn every_method_in_chromium() {
    let browser = chromium();
    let root = repo();
    assert!(
        root.join("node_modules/playwright-core/package.json")
            .exists()
            && root.join("node_modules/jsqr/package.json").exists(),
        "playwright-core and jsqr are missing: run scripts/setup (npm ci)"
    );
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let mut chain = ChainConfig::devnet(&deployment, &anvil.rpc_url());
    chain.confirmations = 3;
    chain.poll_interval_ms = 200;
    let app = spawn_app_with(move |config| {
        config.chains = vec![chain];
        // The expiry job must not cancel the quote the browser renews.
        config.payments.expiry_interval_secs = 3600;
    })
    .await;
    let screens = root.join("target/checkout-screens");
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg(root.join("tests/browser/checkout.mjs"))
            .current_dir(&root)
            .env("EPG_BASE", &app.address)
            .env("EPG_SK", &app.secret_key)
            .env("EPG_ANVIL", anvil.rpc_url())
            .env("EPG_CHROMIUM", &browser)
            .env("EPG_SCREENS", &screens)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser flows finish within 5 minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser flows failed (screenshots in {}):\n{stdout}\n{stderr}",
        screens.display()
    );
    for flow in [
        "card_success_returns",
        "decline_then_another_card",
        "three_d_secure",
        "bank_transfer",
        "zh_cn",
        "crypto_wallet_to_paid",
        "crypto_underpaid_then_topped_up",
        "crypto_eth_native_by_wallet",
        "crypto_overpaid_explained",
        "crypto_expired_new_quote",
    ] {
        assert!(
            stdout.contains(&format!("ok   {flow}")),
            "{flow} ran: {stdout}"
        );
    }
}
