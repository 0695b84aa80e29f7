//! Shared by the webhook and event tests: a local webhook receiver (axum on
//! 127.0.0.1:0) whose behaviour a test scripts, and small helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use epg::db::Db;
use epg::events::EventType;
use epg::ids::{EventId, MerchantId};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `Epg-Event-Id`.
    pub event_id: String,
    /// `Epg-Delivery-Id`.
    pub delivery_id: String,
    /// `Epg-Delivery-Attempt`.
    pub attempt: u32,
    /// `Epg-Signature`.
    pub signature: String,
    /// The raw body.
    pub body: Bytes,
    /// What the receiver answered (None: it never answered).
    pub answered: Option<u16>,
    /// `Content-Type` and `User-Agent`.
    pub content_type: String,
    /// `User-Agent`.
    pub user_agent: String,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    /// Requests seen per event id.
    seen: Mutex<HashMap<String, u32>>,
    /// Answer 503 to the first N requests of each event.
    fail_first: AtomicU32,
    /// Answer 500 to everything.
    fail_all: AtomicBool,
    /// Never answer (hold the request open).
    stall: AtomicBool,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU32,
    changed: Notify,
}

/// A scripted webhook receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/hook")
            .parse()
            .unwrap()
    }

    /// Answer 503 to the first `n` requests of each event.
    pub fn fail_first(&self, n: u32) {
        self.inner.fail_first.store(n, Ordering::SeqCst);
    }

    /// Answer 500 to everything (or stop doing so).
    pub fn fail_all(&self, on: bool) {
        self.inner.fail_all.store(on, Ordering::SeqCst);
    }

    /// Hold requests open without answering (or stop doing so).
    pub fn stall(&self, on: bool) {
        self.inner.stall.store(on, Ordering::SeqCst);
    }

    /// Wait this long before answering.
    pub fn delay(&self, ms: u32) {
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    /// Waits (up to a generous safety limit, not a timing assertion) until
    /// `done` holds for what was received.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let notified = self.inner.changed.notified();
            if done(&self.received()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "receiver: gave up waiting for {what}; got {:#?}",
                    self.received()
                        .iter()
                        .map(|r| (&r.event_id, r.attempt, r.answered))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits until every one of `events` got a 2xx answer.
    pub async fn wait_delivered(&self, events: &[EventId]) {
        let wanted: Vec<String> = events.iter().map(ToString::to_string).collect();
        self.wait_until("every event delivered", |got| {
            wanted.iter().all(|id| {
                got.iter().any(|r| {
                    &r.event_id == id && r.answered.is_some_and(|s| (200..300).contains(&s))
                })
            })
        })
        .await;
    }
}

async fn hook(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let event_id = header("epg-event-id");
    let seen = {
        let mut seen = inner.seen.lock().unwrap();
        let n = seen.entry(event_id.clone()).or_default();
        *n += 1;
        *n
    };
    let mut received = Received {
        event_id,
        delivery_id: header("epg-delivery-id"),
        attempt: header("epg-delivery-attempt").parse().unwrap_or(0),
        signature: header("epg-signature"),
        body,
        answered: None,
        content_type: header("content-type"),
        user_agent: header("user-agent"),
    };
    if inner.stall.load(Ordering::SeqCst) {
        inner.received.lock().unwrap().push(received.clone());
        inner.changed.notify_waiters();
        std::future::pending::<()>().await;
    }
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
    }
    let status = if inner.fail_all.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if seen <= inner.fail_first.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    received.answered = Some(status.as_u16());
    inner.received.lock().unwrap().push(received);
    inner.changed.notify_waiters();
    status
}

/// Records an event through the product's one writer path, in a
/// transaction on `pool`, as a payment's state change would.
pub async fn record(
    pool: &Db,
    merchant: &MerchantId,
    event_type: EventType,
    object: &Value,
) -> EventId {
    let mut tx = pool.begin().await.unwrap();
    let id = epg::events::record(&mut tx, merchant, event_type, object)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A payment-like object snapshot with a fresh `pay_…` id.
pub fn payment(status: &str) -> Value {
    json!({
        "id": format!("pay_{}", epg::ids::random_base62(24)),
        "object": "payment",
        "amount": 1234,
        "currency": "usd",
        "status": status,
    })
}

/// Settings that make retries quick in tests.
pub fn fast(config: &mut epg::config::Config) {
    config.webhooks.backoff_base_ms = 20;
    config.webhooks.backoff_cap_ms = 100;
    config.webhooks.poll_interval_ms = 100;
    config.webhooks.timeout_secs = 5;
    config.webhooks.lease_secs = 8;
}

pub use crate::common::eventually;
