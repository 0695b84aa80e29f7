//! The checkout page in a real browser: headless Chromium loads it, runs
//! its script against a live node, and the DOM it leaves is checked —
//! "not found" for a payment that does not exist, the amount and the
//! method forms for one that does, the outcome for a paid one.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package, or
//! the path in `EPG_CHROMIUM`); without it the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestApp, json, spawn_app};
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("EPG_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
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
    let Some(browser) = chromium() else {
        eprintln!("checkout_browser: no Chromium found (set EPG_CHROMIUM); skipped");
        return;
    };
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
    assert!(page.contains("<p id=\"loading\" class=\"notice\" hidden=\"\">"));

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
