#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Webhook delivery end to end: retries until the receiver takes the event,
//! signatures a receiver can verify, no event lost when a node dies
//! mid-delivery, each attempt made by exactly one of two nodes, addresses
//! refused at delivery time, giving up and redelivering.

use crate::common;
use crate::webhooks_support;

use std::collections::HashMap;

use epg::app::Application;
use epg::config::Mode;
use epg::events::EventType;
use epg::ids::EventId;
use epg::merchants::{KeyKind, MerchantStore};
use epg::webhooks::signature;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use webhooks_support::{Receiver, eventually, fast, payment, record};

/// Creates an endpoint for every event type and returns its secret.
async fn endpoint(app: &common::TestApp, key: &str, url: &str) -> (String, String) {
    let body = common::json(
        app.post(
            "/v1/webhook_endpoints",
            key,
            &json!({ "url": url, "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn failing_receiver_gets_every_event_signed_after_retries() {
    let app = common::spawn_app_with(fast).await;
    let receiver = Receiver::start().await;
    receiver.fail_first(2);
    let (endpoint_id, secret) = endpoint(&app, &app.secret_key, &receiver.url).await;

    let mut events = Vec::new();
    for status in [
        "processing",
        "succeeded",
        "failed",
        "canceled",
        "requires_action",
    ] {
        let t = match status {
            "processing" => EventType::PaymentProcessing,
            "succeeded" => EventType::PaymentSucceeded,
            "failed" => EventType::PaymentFailed,
            "canceled" => EventType::PaymentCanceled,
            _ => EventType::PaymentRequiresAction,
        };
        events.push(record(&app.pool, &app.merchant_id, t, &payment(status)).await);
    }
    receiver.wait_delivered(&events).await;

    for r in receiver.received() {
        signature::verify(&secret, &r.signature, &r.body, now(), 300)
            .unwrap_or_else(|e| panic!("attempt {} of {}: {e}", r.attempt, r.event_id));
        assert_eq!(r.content_type, "application/json");
        assert!(
            r.user_agent.starts_with("E-PG-Webhooks/"),
            "{}",
            r.user_agent
        );
    }
    for id in &events {
        let got: Vec<_> = receiver
            .received()
            .into_iter()
            .filter(|r| r.event_id == id.as_str())
            .collect();
        // Two refusals, then the success; attempts numbered 1, 2, 3.
        assert_eq!(
            got.iter().map(|r| r.attempt).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // The body is the event object, exactly as the API shows it.
        let delivered: Value = serde_json::from_slice(&got[2].body).unwrap();
        let shown = common::json(
            app.get(&format!("/v1/events/{id}"), &app.secret_key).await,
            200,
        )
        .await;
        assert_eq!(delivered, shown);
        assert_eq!(delivered["object"], "event");
        assert_eq!(delivered["data"]["object"]["object"], "payment");

        // Every attempt is logged.
        let deliveries = eventually("delivery marked succeeded", || async {
            let list = common::json(
                app.get(&format!("/v1/events/{id}/deliveries"), &app.secret_key)
                    .await,
                200,
            )
            .await;
            (list["data"][0]["status"] == "succeeded").then_some(list)
        })
        .await;
        let delivery = &deliveries["data"][0];
        assert_eq!(delivery["object"], "webhook_delivery");
        assert_eq!(delivery["endpoint"], endpoint_id.as_str());
        assert_eq!(delivery["attempt_count"], 3);
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts[0]["status_code"], 503);
        assert_eq!(attempts[0]["succeeded"], false);
        assert!(attempts[0]["error"].as_str().unwrap().contains("503"));
        assert_eq!(attempts[2]["status_code"], 200);
        assert_eq!(attempts[2]["succeeded"], true);
        assert!(attempts[2]["error"].is_null());
    }
}

#[tokio::test]
async fn only_subscribed_endpoints_get_an_event() {
    let app = common::spawn_app_with(fast).await;
    let refunds = Receiver::start().await;
    let everything = Receiver::start().await;
    common::json(
        app.post(
            "/v1/webhook_endpoints",
            &app.secret_key,
            &json!({ "url": refunds.url, "enabled_events": ["refund.succeeded", "refund.failed"] }),
        )
        .await,
        200,
    )
    .await;
    endpoint(&app, &app.secret_key, &everything.url).await;
    let paid = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let refunded = record(
        &app.pool,
        &app.merchant_id,
        EventType::RefundSucceeded,
        &json!({ "id": format!("re_{}", epg::ids::random_base62(24)), "object": "refund" }),
    )
    .await;
    everything
        .wait_delivered(&[paid.clone(), refunded.clone()])
        .await;
    refunds
        .wait_delivered(std::slice::from_ref(&refunded))
        .await;
    assert!(
        refunds
            .received()
            .iter()
            .all(|r| r.event_id == refunded.as_str())
    );
    // An event of a merchant with no endpoint enqueues nothing.
    let (other, _) = app.merchant().await;
    record(
        &app.pool,
        &other,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.id = d.event_id WHERE e.merchant_id = $1",
    )
    .bind(other.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn rolled_back_changes_announce_nothing() {
    let app = common::spawn_app_with(fast).await;
    let receiver = Receiver::start().await;
    endpoint(&app, &app.secret_key, &receiver.url).await;
    let mut tx = app.pool.begin().await.unwrap();
    let ghost = epg::events::record(
        &mut tx,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let real = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentFailed,
        &payment("failed"),
    )
    .await;
    receiver.wait_delivered(std::slice::from_ref(&real)).await;
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.event_id != ghost.as_str())
    );
    common::json(
        app.get(&format!("/v1/events/{ghost}"), &app.secret_key)
            .await,
        404,
    )
    .await;
}

/// A node that is killed (its task aborted: no graceful shutdown, claims
/// left behind) while deliveries are in flight; a new node on the same
/// database delivers everything once the dead node's leases end.
#[tokio::test]
async fn a_node_killed_mid_delivery_loses_no_event() {
    let (pool, url) = common::test_database().await;
    let mut config = common::test_config(&url);
    fast(&mut config);
    config.webhooks.timeout_secs = 2;
    config.webhooks.lease_secs = 4;

    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Crashy").await.unwrap();
    let (_, sk) = merchants
        .create_key(&merchant.id, KeyKind::Secret, Mode::Test)
        .await
        .unwrap();

    let app_pool = epg::db::connect(&url, 10).await.unwrap();
    let first = Application::build_with_pool(config.clone(), app_pool)
        .await
        .unwrap();
    let address = format!("http://{}", first.address());
    let node = tokio::spawn(first.run(CancellationToken::new()));

    let receiver = Receiver::start().await;
    receiver.stall(true);
    let created = reqwest::Client::new()
        .post(format!("{address}/v1/webhook_endpoints"))
        .bearer_auth(&sk.secret)
        .json(&json!({ "url": receiver.url, "enabled_events": ["*"] }))
        .send()
        .await
        .unwrap();
    let created = common::json(created, 200).await;
    let secret = created["secret"].as_str().unwrap().to_owned();

    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(
            record(
                &pool,
                &merchant.id,
                EventType::PaymentSucceeded,
                &payment("succeeded"),
            )
            .await,
        );
    }
    // The first node has claimed deliveries and is waiting on the receiver.
    receiver
        .wait_until("a delivery in flight", |got| !got.is_empty())
        .await;
    node.abort();
    let _ = node.await;
    receiver.stall(false);

    let second = common::spawn_on(pool.clone(), config).await;
    receiver.wait_delivered(&events).await;
    for r in receiver.delivered() {
        signature::verify(&secret, &r.signature, &r.body, now(), 300).unwrap();
    }
    let statuses: Vec<String> = eventually("every delivery recorded", || async {
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM webhook_deliveries ORDER BY seq")
                .fetch_all(&pool)
                .await
                .unwrap();
        statuses
            .iter()
            .all(|s| s == "succeeded")
            .then_some(statuses)
    })
    .await;
    assert_eq!(statuses.len(), 5);
    second.stop().await;
}

/// Two nodes on one database: every attempt of every delivery is made by
/// exactly one of them.
#[tokio::test]
async fn two_nodes_make_each_attempt_exactly_once() {
    let tweak = |c: &mut epg::config::Config| {
        fast(c);
        c.webhooks.workers = 3;
    };
    let a = common::spawn_app_with(tweak).await;
    let b = common::spawn_on(a.pool.clone(), a.config.clone()).await;
    let receiver = Receiver::start().await;
    receiver.fail_first(1);
    receiver.delay(5);
    endpoint(&a, &a.secret_key, &receiver.url).await;

    let mut events: Vec<EventId> = Vec::new();
    for i in 0..40 {
        let t = if i % 2 == 0 {
            EventType::PaymentSucceeded
        } else {
            EventType::PaymentProcessing
        };
        events.push(record(&a.pool, &a.merchant_id, t, &payment("processing")).await);
    }
    receiver.wait_delivered(&events).await;
    eventually("every delivery recorded", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'",
        )
        .fetch_one(&a.pool)
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;

    let mut per_attempt: HashMap<(String, u32), u32> = HashMap::new();
    for r in receiver.received() {
        *per_attempt.entry((r.event_id, r.attempt)).or_default() += 1;
    }
    for id in &events {
        for attempt in [1, 2] {
            assert_eq!(
                per_attempt.get(&(id.to_string(), attempt)),
                Some(&1),
                "{id} attempt {attempt}"
            );
        }
    }
    assert_eq!(per_attempt.len(), events.len() * 2, "{per_attempt:?}");
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_delivery_attempts")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(logged, i64::try_from(events.len() * 2).unwrap());
    b.stop().await;
    a.stop().await;
}

/// The address check runs again at delivery: a name that resolves to
/// loopback is refused by a node outside dev mode even though the endpoint
/// was accepted (by a dev node) earlier.
#[tokio::test]
async fn addresses_are_checked_again_at_delivery() {
    let dev = common::spawn_app_with(fast).await;
    let receiver = Receiver::start().await;
    let url = format!("https://localhost:{}/hook", receiver.port());
    endpoint(&dev, &dev.secret_key, &url).await;
    let pool = dev.pool.clone();
    let mut config = dev.config.clone();
    let merchant = dev.merchant_id.clone();
    let key = dev.secret_key.clone();
    dev.stop().await;

    config.server.dev = false;
    let prod = common::spawn_on(pool.clone(), config).await;
    let event = record(
        &pool,
        &merchant,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let attempts = eventually("a refused attempt", || async {
        let list = common::json(
            prod.get(&format!("/v1/events/{event}/deliveries"), &key)
                .await,
            200,
        )
        .await;
        let attempts = list["data"][0]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!attempts.is_empty()).then_some(attempts)
    })
    .await;
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.starts_with("refused:"), "{error}");
    assert!(error.contains("loopback"), "{error}");
    assert!(attempts[0]["status_code"].is_null());
    assert!(receiver.received().is_empty());
    prod.stop().await;
}

/// Records a `dispute.created` event for the app's merchant.
async fn dispute_event(app: &common::TestApp) -> EventId {
    record(
        &app.pool,
        &app.merchant_id,
        EventType::DisputeCreated,
        &json!({ "id": format!("dp_{}", epg::ids::random_base62(24)), "object": "dispute" }),
    )
    .await
}

/// `POST /v1/events/{event}/redeliver` with `body`, answered 200.
async fn redeliver(app: &common::TestApp, event: &EventId, body: &Value) -> Value {
    common::json(
        app.post(
            &format!("/v1/events/{event}/redeliver"),
            &app.secret_key,
            body,
        )
        .await,
        200,
    )
    .await
}

/// The event's deliveries (newest first) once the newest is `status`.
async fn newest_delivery_becomes(app: &common::TestApp, event: &EventId, status: &str) -> Value {
    eventually(&format!("the newest delivery to be {status}"), || async {
        let list = common::json(
            app.get(&format!("/v1/events/{event}/deliveries"), &app.secret_key)
                .await,
            200,
        )
        .await;
        (list["data"][0]["status"] == status).then_some(list)
    })
    .await
}

/// After the retry window a delivery is marked failed; the event stays
/// listed and can be redelivered.
#[tokio::test]
async fn failed_deliveries_can_be_redelivered() {
    let app = common::spawn_app_with(|c| {
        fast(c);
        c.webhooks.retry_window_secs = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.fail_all(true);
    let (endpoint_id, _) = endpoint(&app, &app.secret_key, &receiver.url).await;
    let event = dispute_event(&app).await;
    let failed = newest_delivery_becomes(&app, &event, "failed").await;
    assert!(failed["data"][0]["attempt_count"].as_i64().unwrap() >= 1);
    assert!(failed["data"][0]["completed"].is_i64());
    let listed = common::json(app.get("/v1/events", &app.secret_key).await, 200).await;
    assert_eq!(listed["data"][0]["id"], event.as_str());

    receiver.fail_all(false);
    let redelivered = redeliver(&app, &event, &json!({ "endpoint": endpoint_id })).await;
    assert_eq!(redelivered["data"].as_array().unwrap().len(), 1);
    assert_eq!(redelivered["data"][0]["status"], "pending");
    receiver.wait_delivered(std::slice::from_ref(&event)).await;
    let list = newest_delivery_becomes(&app, &event, "succeeded").await;
    // Newest first: the redelivery, then the failed one.
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][1]["status"], "failed");

    // Redelivering to every subscribed endpoint without naming one.
    let again = redeliver(&app, &event, &json!({})).await;
    assert_eq!(again["data"].as_array().unwrap().len(), 1);
}

/// Redelivering an event whose delivery is being attempted answers that
/// delivery (the attempt under way is the redelivery) and queues no second
/// one beside it.
#[tokio::test]
async fn redelivering_during_an_attempt_answers_the_attempt_under_way() {
    let app = common::spawn_app_with(|c| {
        fast(c);
        c.webhooks.timeout_secs = 2;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.stall(true);
    let (endpoint_id, _) = endpoint(&app, &app.secret_key, &receiver.url).await;
    let event = dispute_event(&app).await;
    receiver
        .wait_until("the first attempt to arrive", |got| !got.is_empty())
        .await;
    let in_flight = receiver.received()[0].delivery_id.clone();

    for body in [json!({}), json!({ "endpoint": endpoint_id })] {
        let redelivered = redeliver(&app, &event, &body).await;
        let data = redelivered["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{redelivered}");
        assert_eq!(data[0]["id"], in_flight.as_str(), "{redelivered}");
        assert_eq!(data[0]["status"], "pending");
    }

    // The stalled attempt times out; the retry delivers. One delivery in all.
    receiver.stall(false);
    receiver.wait_delivered(std::slice::from_ref(&event)).await;
    let list = newest_delivery_becomes(&app, &event, "succeeded").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["id"], in_flight.as_str());
}

#[tokio::test]
async fn epg_webhooks_verify_checks_real_deliveries() {
    let app = common::spawn_app_with(fast).await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(&app, &app.secret_key, &receiver.url).await;
    let event = record(
        &app.pool,
        &app.merchant_id,
        EventType::SettlementAnchored,
        &json!({ "id": format!("st_{}", epg::ids::random_base62(24)), "object": "settlement" }),
    )
    .await;
    receiver.wait_delivered(std::slice::from_ref(&event)).await;
    let delivery = receiver.delivered().pop().unwrap();

    let verify = |secret: &str, header: &str, body: &[u8], extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_epg"));
        cmd.args(["webhooks", "verify", "--secret", secret, "--header", header])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(body).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stdout, _) = verify(&secret, &delivery.signature, &delivery.body, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.trim(), "valid");

    let (code, _, stderr) = verify(
        "whsec_wrongwrongwrongwrongwrongwrong12",
        &delivery.signature,
        &delivery.body,
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("signature mismatch"), "{stderr}");

    let mut tampered = delivery.body.to_vec();
    tampered.push(b' ');
    let (code, _, stderr) = verify(&secret, &delivery.signature, &tampered, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("signature mismatch"), "{stderr}");

    let (code, _, stderr) = verify(&secret, "v1=abc", &delivery.body, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("malformed"), "{stderr}");

    // A correctly signed but old delivery (a replay) is refused.
    let old = signature::header_value(&[&secret], now() - 3600, &delivery.body).unwrap();
    let (code, _, stderr) = verify(&secret, &old, &delivery.body, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("timestamp outside tolerance"), "{stderr}");
    let (code, _, _) = verify(&secret, &old, &delivery.body, &["--tolerance", "7200"]);
    assert_eq!(code, Some(0));

    // `sign` produces what `verify` accepts.
    let mut sign = std::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["webhooks", "sign", "--secret", &secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        sign.stdin
            .take()
            .unwrap()
            .write_all(b"{\"hello\":1}")
            .unwrap();
    }
    let header = String::from_utf8(sign.wait_with_output().unwrap().stdout).unwrap();
    let (code, _, _) = verify(&secret, header.trim(), b"{\"hello\":1}", &[]);
    assert_eq!(code, Some(0));
}

/// An endpoint that never answers holds at most `endpoint_concurrency`
/// workers; other merchants' webhooks keep flowing meanwhile.
#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_up_others() {
    let app = common::spawn_app_with(|c| {
        fast(c);
        c.webhooks.workers = 4;
        c.webhooks.endpoint_concurrency = 2;
        // Longer than the test: the hanging attempts never time out here.
        c.webhooks.timeout_secs = 120;
        c.webhooks.lease_secs = 130;
    })
    .await;
    let hanging = Receiver::start().await;
    hanging.stall(true);
    let healthy = Receiver::start().await;
    endpoint(&app, &app.secret_key, &hanging.url).await;
    let (other, other_key) = app.merchant().await;
    endpoint(&app, &other_key, &healthy.url).await;

    for _ in 0..10 {
        record(
            &app.pool,
            &app.merchant_id,
            EventType::PaymentSucceeded,
            &payment("succeeded"),
        )
        .await;
    }
    hanging
        .wait_until("the hanging endpoint to hold its share", |got| {
            got.len() >= 2
        })
        .await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(
            record(
                &app.pool,
                &other,
                EventType::PaymentSucceeded,
                &payment("succeeded"),
            )
            .await,
        );
    }
    healthy.wait_delivered(&others).await;
    // Delivered while the hanging endpoint still holds exactly its share.
    assert_eq!(hanging.received().len(), 2);
}
