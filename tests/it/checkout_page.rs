//! The hosted checkout page: served without a key with a strict policy,
//! the same for every payment (the server never echoes the client secret),
//! a script that keeps card data out of URLs and storage, and the
//! publishable-key API it drives, exercised the way the script does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{TestApp, json, spawn_app};
use serde_json::{Value, json};

async fn create_payment(app: &TestApp, types: Value) -> Value {
    json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 2500, "currency": "usd", "payment_method_types": types}),
        )
        .await,
        200,
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

/// What the page's script sends: the publishable key as a bearer token.
async fn as_browser(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.address))
        .bearer_auth(&app.publishable_key)
        .header("idempotency-key", epg::ids::random_base62(20));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_no_secrets() {
    let app = spawn_app().await;
    let payment = create_payment(&app, json!(["card", "bank_transfer"])).await;
    let id = payment["id"].as_str().unwrap();
    let secret = payment["client_secret"].as_str().unwrap();
    let url = format!(
        "/checkout/{id}?client_secret={secret}&key={}",
        app.publishable_key
    );

    let response = get(&app, &url).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let page = response.text().await.unwrap();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(
        !csp.contains("unsafe") && !csp.contains("http") && !csp.contains('*'),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!headers.contains_key("set-cookie"));

    // Nothing of the URL is echoed: not the secret, not the key.
    assert!(!page.contains(secret));
    assert!(!page.contains(&app.publishable_key));
    assert!(!page.contains("secret_"));

    // Every payment gets the same page, even one that does not exist; it
    // holds the "not found" notice the script reveals when the API says 404.
    let unknown = get(
        &app,
        "/checkout/pay_000000000000000000000000?client_secret=x&key=pk_test_x",
    )
    .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(unknown.text().await.unwrap(), page);
    assert!(page.contains("id=\"not-found\""));
    assert!(page.contains("Payment not found"));
    let garbage = get(&app, "/checkout/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(garbage.status(), 200);
    assert_eq!(garbage.text().await.unwrap(), page);

    // Only its own script and style sheet; no inline script, handlers or
    // styles (the policy would block them anyway).
    assert!(page.contains("<script src=\"/static/checkout.js\" defer></script>"));
    // The other script element is the message catalogue: inert JSON.
    assert_eq!(page.matches("<script").count(), 2);
    assert_eq!(
        page.matches("<script type=\"application/json\" id=\"messages\">")
            .count(),
        1
    );
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/static/checkout.css\">"));
    for inline in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " style=",
        "javascript:",
    ] {
        assert!(!page.contains(inline), "inline {inline}");
    }
    // Card inputs have no `name` (a native submission would carry
    // nothing) and no form has an action.
    for input in page.split("<input").skip(1) {
        let tag = input.split('>').next().unwrap();
        if tag.contains("id=\"card-") || tag.contains("id=\"otp-") {
            assert!(!tag.contains("name="), "{tag}");
        }
    }
    assert!(!page.contains("action="));
}

#[tokio::test]
async fn the_script_keeps_card_data_out_of_urls_and_storage() {
    let app = spawn_app().await;
    let response = get(&app, "/static/checkout.js").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = response.text().await.unwrap();
    for forbidden in [
        "localStorage",
        "sessionStorage",
        "indexedDB",
        "document.cookie",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "console.",
        "location.href =",
        "location.assign",
        "history.pushState",
    ] {
        assert!(!script.contains(forbidden), "the script uses {forbidden}");
    }
    // Requests go to this node's payment API only, with the publishable key
    // as a bearer token; bodies are JSON.
    assert_eq!(script.matches("fetch(").count(), 1);
    assert!(script.contains("\"/v1/payments/\" + encodeURIComponent(state.id)"));
    assert!(script.contains("Authorization: \"Bearer \" + state.key"));
    assert!(script.contains("init.body = JSON.stringify(body)"));
    assert!(script.contains("\"/confirm\""));
    assert!(script.contains("\"/challenge\""));
    // The only query string it builds is the client secret's.
    assert_eq!(script.matches("\"?").count(), 1);
    assert!(script.contains("\"?client_secret=\" + encodeURIComponent(state.secret)"));
    // A secret key in the link is refused, not used.
    assert!(script.contains("/^sk_/.test(key)"));

    let css = get(&app, "/static/checkout.css").await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn the_publishable_key_api_behaves_as_the_page_expects() {
    let app = spawn_app().await;
    let payment = create_payment(&app, json!(["card", "cash_voucher"])).await;
    let id = payment["id"].as_str().unwrap();
    let secret = payment["client_secret"].as_str().unwrap();

    // Load: the checkout view with the client secret; without it, or with
    // a wrong one, or for an unknown payment: 404, which the page shows as
    // "not found".
    let view = json(
        as_browser(
            &app,
            "GET",
            &format!("/v1/payments/{id}?client_secret={secret}"),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["amount"], 2500);
    assert_eq!(view["currency"], "usd");
    assert_eq!(
        view["payment_method_types"],
        json!(["card", "cash_voucher"])
    );
    assert!(view.get("metadata").is_none() && view.get("customer").is_none());
    for path in [
        format!("/v1/payments/{id}"),
        format!("/v1/payments/{id}?client_secret=pay_x_secret_y"),
        format!("/v1/payments/pay_000000000000000000000000?client_secret={secret}"),
    ] {
        let err = json(as_browser(&app, "GET", &path, None).await, 404).await;
        assert_eq!(err["error"]["code"], "resource_missing", "{path}");
    }
    // A publishable key can do nothing else.
    let err = json(
        as_browser(
            &app,
            "POST",
            "/v1/payments",
            Some(json!({"amount": 1, "currency": "usd"})),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(err["error"]["code"], "secret_key_required");

    // Confirm needs the client secret.
    let confirm = format!("/v1/payments/{id}/confirm");
    let card = |number: &str| json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
    let err = json(
        as_browser(
            &app,
            "POST",
            &confirm,
            Some(json!({"payment_method": card("4242424242424242")})),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "client_secret");

    // A decline: 402 with the failed payment's checkout view, which the
    // page renders with the message, then lets the customer retry.
    let declined = json(
        as_browser(
            &app,
            "POST",
            &confirm,
            Some(json!({"client_secret": secret, "payment_method": card("4000000000000002")})),
        )
        .await,
        402,
    )
    .await;
    assert_eq!(declined["error"]["type"], "card_error");
    assert_eq!(declined["error"]["payment"]["status"], "failed");
    assert!(declined["error"]["payment"].get("metadata").is_none());

    // 3-D Secure: requires_action / otp_challenge, answered on /challenge.
    let action = json(
        as_browser(
            &app,
            "POST",
            &confirm,
            Some(json!({"client_secret": secret, "payment_method": card("4000002760003184")})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(action["status"], "requires_action");
    assert_eq!(action["next_action"]["type"], "otp_challenge");
    let challenge = format!("/v1/payments/{id}/challenge");
    let err = json(
        as_browser(
            &app,
            "POST",
            &challenge,
            Some(json!({"code": "123456", "client_secret": "nope"})),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(err["error"]["code"], "resource_missing");
    let paid = json(
        as_browser(
            &app,
            "POST",
            &challenge,
            Some(json!({"code": "123456", "client_secret": secret})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["payment_method"]["card"]["last4"], "3184");
    assert!(!paid.to_string().contains("4000002760003184"));

    // A voucher payment shows its reference.
    let voucher = create_payment(&app, json!(["cash_voucher"])).await;
    let vid = voucher["id"].as_str().unwrap();
    let shown = json(
        as_browser(
            &app,
            "POST",
            &format!("/v1/payments/{vid}/confirm"),
            Some(json!({"client_secret": voucher["client_secret"], "payment_method": {"type": "cash_voucher"}})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shown["next_action"]["type"], "display_voucher");
    assert!(shown["next_action"]["voucher"]["reference"].is_string());
}
