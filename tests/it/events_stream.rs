#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /v1/payments/{id}/events/stream`: a payment's past events, then
//! live ones, as Server-Sent Events.

use crate::common;
use crate::webhooks_support;

use std::time::Duration;

use epg::events::EventType;
use serde_json::{Value, json};
use webhooks_support::record;

/// One SSE event.
#[derive(Debug)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// Reads SSE events from a streaming response, skipping comments.
struct Reader {
    response: reqwest::Response,
    buffer: String,
}

impl Reader {
    async fn open(url: String, key: Option<&str>) -> Result<Self, reqwest::Response> {
        let client = reqwest::Client::new();
        let mut request = client.get(url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        if response.status() != 200 {
            return Err(response);
        }
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event; `None` when the stream ends. Gives up (panics)
    /// after a generous safety limit.
    async fn next(&mut self) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = String::new();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !data.is_empty() {
                    return Some(Sse {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("an SSE event within the safety limit");
            match chunk {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// A real payment of the app's merchant: its id and client secret.
async fn payment(app: &common::TestApp) -> (String, String) {
    payment_with(app, &app.secret_key).await
}

async fn payment_with(app: &common::TestApp, key: &str) -> (String, String) {
    let created: Value = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": 500, "currency": "jpy"}),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

fn snapshot(id: &str, status: &str) -> Value {
    json!({
        "id": id, "object": "payment", "status": status, "amount": 500, "currency": "jpy",
        "customer": { "email": "buyer@example.com" }, "metadata": { "order": "42" }
    })
}

#[tokio::test]
async fn past_events_then_live_ones() {
    let app = common::spawn_app_with(|c| c.webhooks.poll_interval_ms = 200).await;
    let (pay, client_secret) = payment(&app).await;
    let (other_pay, _) = payment(&app).await;
    let first = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentRequiresAction,
        &snapshot(&pay, "requires_action"),
    )
    .await;
    let second = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentProcessing,
        &snapshot(&pay, "processing"),
    )
    .await;
    // Another payment's events are not part of this stream.
    record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &snapshot(&other_pay, "succeeded"),
    )
    .await;

    let url = format!("{}/v1/payments/{pay}/events/stream", app.address);
    // A browser needs the payment's client secret with its publishable key.
    let mut stream = Reader::open(
        format!("{url}?client_secret={client_secret}"),
        Some(&app.publishable_key),
    )
    .await
    .unwrap();
    let e1 = stream.next().await.unwrap();
    assert_eq!(e1.id, first.as_str());
    assert_eq!(e1.event, "payment.requires_action");
    assert_eq!(e1.data["object"], "event");
    assert_eq!(e1.data["data"]["object"]["status"], "requires_action");
    assert_eq!(e1.data["data"]["object"]["amount"], 500);
    // A publishable key lives in browsers: no customer data, no metadata.
    assert!(e1.data["data"]["object"].get("customer").is_none());
    assert!(e1.data["data"]["object"].get("metadata").is_none());
    let e2 = stream.next().await.unwrap();
    assert_eq!(e2.id, second.as_str());

    let live = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &snapshot(&pay, "succeeded"),
    )
    .await;
    let e3 = stream.next().await.unwrap();
    assert_eq!(e3.id, live.as_str());
    assert_eq!(e3.event, "payment.succeeded");
    assert_eq!(e3.data["data"]["object"]["status"], "succeeded");

    // A secret key works too, and Last-Event-ID resumes after that event.
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&app.secret_key)
        .header("Last-Event-ID", second.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut resumed = Reader {
        response,
        buffer: String::new(),
    };
    let again = resumed.next().await.unwrap();
    assert_eq!(again.id, live.as_str());
    // The merchant's own secret key sees the whole snapshot.
    assert_eq!(
        again.data["data"]["object"]["customer"]["email"],
        "buyer@example.com"
    );

    // Streams end when the node shuts down.
    app.stop().await;
    assert!(stream.next().await.is_none());
    assert!(resumed.next().await.is_none());
}

#[tokio::test]
async fn streams_are_scoped_and_authenticated() {
    let app = common::spawn_app().await;
    let (other, other_key) = app.merchant().await;
    let (pay, client_secret) = payment(&app).await;
    let (their_pay, _) = payment_with(&app, &other_key).await;
    record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentProcessing,
        &snapshot(&pay, "processing"),
    )
    .await;
    // Another merchant's payment does not exist for this one, and the
    // other merchant sees only its own events.
    let theirs = record(
        &app.pool,
        &other,
        EventType::PaymentFailed,
        &snapshot(&their_pay, "failed"),
    )
    .await;
    let url = format!("{}/v1/payments/{pay}/events/stream", app.address);
    let err = Reader::open(url.clone(), Some(&other_key))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 404);
    let their_url = format!("{}/v1/payments/{their_pay}/events/stream", app.address);
    let mut stream = Reader::open(their_url, Some(&other_key)).await.unwrap();
    assert_eq!(stream.next().await.unwrap().id, theirs.as_str());

    let err = Reader::open(url.clone(), None).await.err().unwrap();
    assert_eq!(err.status(), 401);
    let err = Reader::open(
        url.clone(),
        Some("sk_test_00000000000000000000000000000000"),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.status(), 401);
    // The client secret alone opens the stream; a wrong one does not, nor a
    // publishable key without it.
    let mut by_secret = Reader::open(format!("{url}?client_secret={client_secret}"), None)
        .await
        .unwrap();
    assert_eq!(by_secret.next().await.unwrap().event, "payment.processing");
    let err = Reader::open(format!("{url}?client_secret={pay}_secret_abc"), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 401);
    let err = Reader::open(url.clone(), Some(&app.publishable_key))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 404);
    let err = Reader::open(
        format!("{}/v1/payments/not_a_payment/events/stream", app.address),
        Some(&app.secret_key),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.status(), 404);
}

/// A long transaction (a watcher step, a settlement batch) records an
/// event for the payment first and commits last; a short one records and
/// commits in between. A browser that got the short one's event, lost its
/// connection and resumed with that `Last-Event-ID` still gets the long
/// one's: the stream follows the order in which events committed.
#[tokio::test]
async fn a_stream_resumed_after_its_last_event_still_sends_an_event_that_committed_later() {
    let app = common::spawn_app().await;
    let (pay, _) = payment(&app).await;
    let url = format!("{}/v1/payments/{pay}/events/stream", app.address);
    let before = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentRequiresAction,
        &snapshot(&pay, "requires_action"),
    )
    .await;
    let mut long = app.pool.begin().await.unwrap();
    let late = epg::events::record(
        &mut long,
        &app.merchant_id,
        EventType::PaymentProcessing,
        &snapshot(&pay, "processing"),
    )
    .await
    .unwrap();
    let quick = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentCryptoDetected,
        &snapshot(&pay, "processing"),
    )
    .await;

    let mut seen = Vec::new();
    let mut first = Reader::open(url.clone(), Some(&app.secret_key))
        .await
        .unwrap();
    seen.push(first.next().await.unwrap().id);
    assert_eq!(seen, [before.to_string()]);
    long.commit().await.unwrap();
    // The browser gets one more event, then loses the connection.
    let last = first.next().await.unwrap().id;
    seen.push(last.clone());
    drop(first);

    let marker = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &snapshot(&pay, "succeeded"),
    )
    .await;
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&app.secret_key)
        .header("Last-Event-ID", last.as_str())
        .send()
        .await
        .unwrap();
    let mut resumed = Reader {
        response,
        buffer: String::new(),
    };
    loop {
        let id = resumed.next().await.unwrap().id;
        seen.push(id.clone());
        if id == marker.as_str() {
            break;
        }
    }
    let mut expected: Vec<String> = [before, late, quick, marker]
        .iter()
        .map(ToString::to_string)
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every event once, none skipped");
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}
