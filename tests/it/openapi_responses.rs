//! The document describes what the node really answers: a tour of the API
//! (every payment method, 3-D Secure, declines, capture, cancel, refunds,
//! disputes, balance, events, webhook endpoints, errors) in which every
//! answer's status must be documented for its operation, carry a
//! `Request-Id`, and match the documented schema strictly — a field the
//! node sends that the document does not list fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::openapi_support;

use openapi_support::{check, deref, document, operation};
use serde_json::{Value, json};

struct Tour {
    app: common::TestApp,
    doc: Value,
    failures: Vec<String>,
}

impl Tour {
    /// Sends `method path` (`template` is its documented path) and checks
    /// the answer against the document; returns the status and JSON body.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.app.client.request(
            method.parse().unwrap(),
            format!("{}{path}", self.app.address),
        );
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let request_id = response.headers().contains_key("request-id");
        let text = response.text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let name = format!("{method} {path} → {status}");
        if !request_id {
            self.failures.push(format!("{name}: no Request-Id header"));
        }
        let op = operation(&self.doc, method, template);
        let Some(documented) = op.op["responses"].get(status.to_string()) else {
            self.failures.push(format!(
                "{name}: status not documented for {method} {template}; body {text}"
            ));
            return (status, value);
        };
        let documented = deref(&self.doc, documented).clone();
        match documented.pointer("/content/application~1json/schema") {
            Some(schema) => {
                let problems = check(&self.doc, schema, &value);
                if !problems.is_empty() {
                    self.failures
                        .push(format!("{name}: {problems:#?}\nbody: {text}"));
                }
            }
            None => self
                .failures
                .push(format!("{name}: no JSON schema documented")),
        }
        (status, value)
    }

    async fn post(&mut self, template: &str, path: &str, body: Value) -> (u16, Value) {
        let key = self.app.secret_key.clone();
        self.call("POST", template, path, Some(&key), Some(body))
            .await
    }

    async fn get(&mut self, template: &str, path: &str) -> (u16, Value) {
        let key = self.app.secret_key.clone();
        self.call("GET", template, path, Some(&key), None).await
    }

    async fn payment(&mut self, body: Value) -> String {
        let (status, payment) = self.post("/v1/payments", "/v1/payments", body).await;
        assert_eq!(status, 200, "{payment}");
        payment["id"].as_str().unwrap().to_owned()
    }

    async fn confirm(&mut self, id: &str, method: Value) -> (u16, Value) {
        self.post(
            "/v1/payments/{id}/confirm",
            &format!("/v1/payments/{id}/confirm"),
            json!({ "payment_method": method }),
        )
        .await
    }
}

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
}

#[tokio::test]
async fn answers_match_the_document() {
    let app = common::spawn_app().await;
    let mut t = Tour {
        app,
        doc: document(),
        failures: Vec::new(),
    };
    let pk = t.app.publishable_key.clone();

    // The merchant.
    t.get("/v1/account", "/v1/account").await;
    t.post(
        "/v1/account",
        "/v1/account",
        json!({"payouts": {"schedule": "daily"}}),
    )
    .await;

    // A card payment with everything a merchant can send.
    let id = t
        .payment(json!({
            "amount": 2500, "currency": "usd", "description": "Order 7",
            "metadata": {"order": "7"},
            "customer": {"email": "Jane@Example.com", "name": "Jane"},
            "shipping": {"name": "Jane", "address": {"line1": "1 Main St", "line2": "Apt 2",
                "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "us"}},
        }))
        .await;
    let (_, created) = t
        .get("/v1/payments/{id}", &format!("/v1/payments/{id}"))
        .await;
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    // The checkout view, with the publishable key and the client secret.
    let (status, view) = t
        .call(
            "GET",
            "/v1/payments/{id}",
            &format!("/v1/payments/{id}?client_secret={secret}"),
            Some(&pk),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        view.get("metadata").is_none(),
        "the checkout view hides metadata"
    );
    let (status, paid) = t
        .call(
            "POST",
            "/v1/payments/{id}/confirm",
            &format!("/v1/payments/{id}/confirm"),
            Some(&pk),
            Some(json!({"client_secret": secret, "payment_method": card("4242424242424242")})),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "succeeded");
    t.get("/v1/payments/{id}", &format!("/v1/payments/{id}"))
        .await;

    // Declines: 402 with the failed payment.
    let declined = t.payment(json!({"amount": 1000, "currency": "usd"})).await;
    let (status, _) = t.confirm(&declined, card("4000000000000002")).await;
    assert_eq!(status, 402);
    let (status, _) = t.confirm(&declined, card("4000000000009995")).await;
    assert_eq!(status, 402);

    // 3-D Secure, right and wrong codes.
    for code in ["123456", "000000"] {
        let id = t.payment(json!({"amount": 1500, "currency": "eur"})).await;
        let (status, action) = t.confirm(&id, card("4000002760003184")).await;
        assert_eq!(
            (status, &action["next_action"]["type"]),
            (200, &json!("otp_challenge"))
        );
        t.post(
            "/v1/payments/{id}/challenge",
            &format!("/v1/payments/{id}/challenge"),
            json!({ "code": code }),
        )
        .await;
    }

    // Crypto on a node that watches no chain: refused, as documented.
    let crypto = t.payment(json!({"amount": 1000, "currency": "usd"})).await;
    let (status, _) = t
        .confirm(
            &crypto,
            json!({"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}),
        )
        .await;
    assert_eq!(status, 400);

    // Manual capture, partial; cancel.
    let manual = t
        .payment(json!({"amount": 5000, "currency": "usd", "capture_method": "manual"}))
        .await;
    let (_, authorized) = t.confirm(&manual, card("4242424242424242")).await;
    assert_eq!(authorized["status"], "requires_capture");
    t.post(
        "/v1/payments/{id}/capture",
        &format!("/v1/payments/{manual}/capture"),
        json!({"amount_to_capture": 4000}),
    )
    .await;
    // Capturing twice is a state conflict.
    let (status, _) = t
        .post(
            "/v1/payments/{id}/capture",
            &format!("/v1/payments/{manual}/capture"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let to_cancel = t.payment(json!({"amount": 700, "currency": "usd"})).await;
    t.post(
        "/v1/payments/{id}/cancel",
        &format!("/v1/payments/{to_cancel}/cancel"),
        json!({"cancellation_reason": "abandoned"}),
    )
    .await;

    // The other methods, and the helpers that finish them.
    for (method, helper) in [
        (
            json!({"type": "ewallet", "ewallet": {"provider": "paypal"}}),
            "/v1/test/ewallet/{payment}/approve",
        ),
        (
            json!({"type": "ewallet", "ewallet": {"provider": "grabpay"}}),
            "/v1/test/ewallet/{payment}/decline",
        ),
        (
            json!({"type": "cash_voucher"}),
            "/v1/test/vouchers/{payment}/pay",
        ),
        (
            json!({"type": "bank_transfer"}),
            "/v1/test/bank_transfers/{payment}/clear",
        ),
        (json!({"type": "check"}), "/v1/test/checks/{payment}/clear"),
    ] {
        let id = t.payment(json!({"amount": 1200, "currency": "usd"})).await;
        let (status, pending) = t.confirm(&id, method.clone()).await;
        assert_eq!(status, 200, "{method}: {pending}");
        assert!(pending["next_action"].is_object(), "{method}: {pending}");
        t.post(helper, &helper.replace("{payment}", &id), json!({}))
            .await;
    }
    for (method, clear, reverse) in [
        (
            json!({"type": "bank_transfer"}),
            "/v1/test/bank_transfers/{payment}/clear",
            "/v1/test/bank_transfers/{payment}/return",
        ),
        (
            json!({"type": "check"}),
            "/v1/test/checks/{payment}/clear",
            "/v1/test/checks/{payment}/bounce",
        ),
    ] {
        let id = t.payment(json!({"amount": 900, "currency": "usd"})).await;
        t.confirm(&id, method).await;
        t.post(clear, &clear.replace("{payment}", &id), json!({}))
            .await;
        t.post(reverse, &reverse.replace("{payment}", &id), json!({}))
            .await;
        t.get("/v1/payments/{id}", &format!("/v1/payments/{id}"))
            .await;
    }
    t.get("/v1/payments", "/v1/payments?limit=100").await;
    t.get("/v1/payments", "/v1/payments?status=succeeded&limit=2")
        .await;

    // Refunds.
    let (status, refund) = t
        .post(
            "/v1/refunds",
            "/v1/refunds",
            json!({"payment": id, "amount": 500, "reason": "requested_by_customer", "metadata": {"ticket": "9"}}),
        )
        .await;
    assert_eq!(status, 200, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    t.post("/v1/refunds", "/v1/refunds", json!({"payment": id}))
        .await;
    t.get("/v1/refunds/{id}", &format!("/v1/refunds/{refund_id}"))
        .await;
    t.get("/v1/refunds", &format!("/v1/refunds?payment={id}"))
        .await;
    t.get("/v1/refunds", "/v1/refunds").await;

    // Disputes.
    let disputed = t.payment(json!({"amount": 3000, "currency": "usd"})).await;
    t.confirm(&disputed, card("4242424242424242")).await;
    let (status, dispute) = t
        .post(
            "/v1/test/disputes",
            "/v1/test/disputes",
            json!({"payment": disputed}),
        )
        .await;
    assert_eq!(status, 200, "{dispute}");
    let dp = dispute["id"].as_str().unwrap().to_owned();
    t.get("/v1/disputes/{id}", &format!("/v1/disputes/{dp}"))
        .await;
    t.post(
        "/v1/disputes/{id}/evidence",
        &format!("/v1/disputes/{dp}/evidence"),
        json!({"evidence": {"product_description": "A book"}, "submit": true}),
    )
    .await;
    t.post(
        "/v1/test/disputes/{id}/resolve",
        &format!("/v1/test/disputes/{dp}/resolve"),
        json!({"outcome": "won"}),
    )
    .await;
    let second = t.payment(json!({"amount": 3100, "currency": "usd"})).await;
    t.confirm(&second, card("4242424242424242")).await;
    let (_, dispute) = t
        .post(
            "/v1/test/disputes",
            "/v1/test/disputes",
            json!({"payment": second}),
        )
        .await;
    let dp2 = dispute["id"].as_str().unwrap().to_owned();
    t.post(
        "/v1/disputes/{id}/close",
        &format!("/v1/disputes/{dp2}/close"),
        json!({}),
    )
    .await;

    // Money.
    t.get("/v1/balance", "/v1/balance").await;
    let (_, txns) = t
        .get(
            "/v1/balance_transactions",
            "/v1/balance_transactions?limit=100",
        )
        .await;
    let txn = txns["data"][0]["id"].as_str().unwrap().to_owned();
    t.get(
        "/v1/balance_transactions/{id}",
        &format!("/v1/balance_transactions/{txn}"),
    )
    .await;

    // Settlements: none yet; a payment's proof waits for one.
    t.get("/v1/settlements", "/v1/settlements").await;
    let (status, _) = t
        .get(
            "/v1/settlements/{id}",
            "/v1/settlements/st_000000000000000000000000",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = t
        .get(
            "/v1/payments/{id}/proof",
            &format!("/v1/payments/{id}/proof"),
        )
        .await;
    assert_eq!(status, 409);
    t.post(
        "/v1/test/settlements/run",
        "/v1/test/settlements/run",
        json!({}),
    )
    .await;

    // Webhook endpoints, events and deliveries.
    let (status, endpoint) = t
        .post(
            "/v1/webhook_endpoints",
            "/v1/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"], "description": "d", "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(status, 200, "{endpoint}");
    assert!(endpoint["secret"].is_string());
    let we = endpoint["id"].as_str().unwrap().to_owned();
    t.get(
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
    )
    .await;
    t.post(
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        json!({"enabled_events": ["payment.succeeded"], "disabled": false}),
    )
    .await;
    t.get("/v1/webhook_endpoints", "/v1/webhook_endpoints")
        .await;
    let late = t.payment(json!({"amount": 100, "currency": "usd"})).await;
    t.confirm(&late, card("4242424242424242")).await;
    let (_, events) = t.get("/v1/events", "/v1/events?limit=100").await;
    let evt = events["data"][0]["id"].as_str().unwrap().to_owned();
    t.get("/v1/events", "/v1/events?type=payment.*").await;
    t.get("/v1/events/{id}", &format!("/v1/events/{evt}")).await;
    t.post(
        "/v1/events/{id}/redeliver",
        &format!("/v1/events/{evt}/redeliver"),
        json!({"endpoint": we}),
    )
    .await;
    t.get(
        "/v1/events/{id}/deliveries",
        &format!("/v1/events/{evt}/deliveries"),
    )
    .await;
    let key = t.app.secret_key.clone();
    t.call(
        "DELETE",
        "/v1/webhook_endpoints/{id}",
        &format!("/v1/webhook_endpoints/{we}"),
        Some(&key),
        None,
    )
    .await;

    // Errors.
    let (status, _) = t
        .post(
            "/v1/payments",
            "/v1/payments",
            json!({"amount": 1, "currency": "usd", "colour": 1}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = t
        .call("GET", "/v1/balance", "/v1/balance", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = t
        .call("GET", "/v1/balance", "/v1/balance", Some(&pk), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = t
        .get(
            "/v1/payments/{id}",
            "/v1/payments/pay_000000000000000000000000",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = t
        .call(
            "GET",
            "/v1/payments/{id}",
            &format!("/v1/payments/{id}?client_secret=wrong"),
            Some(&pk),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The public operations.
    t.call("GET", "/healthz", "/healthz", None, None).await;
    t.call("GET", "/readyz", "/readyz", None, None).await;
    t.call(
        "GET",
        "/v1/transparency/checkpoints",
        "/v1/transparency/checkpoints",
        None,
        None,
    )
    .await;
    t.call(
        "GET",
        "/v1/transparency/consistency",
        "/v1/transparency/consistency?from=0&to=0",
        None,
        None,
    )
    .await;

    assert!(t.failures.is_empty(), "{:#?}", t.failures);
}
