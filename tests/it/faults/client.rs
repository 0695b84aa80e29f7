//! The merchant side of the fault suite: requests spread round-robin over
//! the nodes, retried with their `Idempotency-Key` the way a careful client
//! retries (connection refused or reset, 503 with `Retry-After`, 409
//! `idempotency_key_in_use`), and a record of every acknowledged write.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What was acknowledged: an object, and its state in the 2xx answer.
#[derive(Debug, Clone)]
pub struct Ack {
    /// `payment` or `refund`.
    pub object: &'static str,
    /// Its id.
    pub id: String,
    /// Its status in the answer.
    pub status: String,
}

/// A 5xx other than a 503 with `Retry-After`: a bug.
#[derive(Debug, Clone)]
pub struct Bug {
    pub status: u16,
    pub request_id: String,
    pub what: String,
}

/// Counters and records of the whole run.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: u64,
    /// 503 answers with `Retry-After` (the database switching, a timeout).
    pub unavailable: u64,
    /// Requests that reached no node (killed, restarting).
    pub unreachable: u64,
    /// 409 `idempotency_key_in_use`: the twin of a request cut short.
    pub in_use: u64,
    /// Requests given up after their deadline.
    pub gave_up: Vec<String>,
    pub bugs: Vec<Bug>,
    /// When each payment was acknowledged as succeeded.
    pub successes: Vec<Instant>,
    pub acks: Vec<Ack>,
}

/// The client.
pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    key: String,
    next: AtomicUsize,
    /// Everything seen.
    pub stats: Mutex<Stats>,
}

/// How long one logical request keeps being retried: longer than an
/// idempotency lease (request timeout + 30 s) and a failover.
const PATIENCE: Duration = Duration::from_secs(90);

impl Client {
    pub fn new(urls: Vec<String>, key: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            urls,
            key: key.to_owned(),
            next: AtomicUsize::new(0),
            stats: Mutex::new(Stats::default()),
        }
    }

    fn url(&self, path: &str) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        format!("{}{path}", self.urls[i])
    }

    /// POSTs `body` under `key` until a node answers something final.
    /// `Ok` on 2xx, `Err((status, body))` on a final 4xx.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Result<Value, (u16, Value)> {
        self.send(path, Some((key, body))).await
    }

    /// GETs `path` until a node answers something final.
    pub async fn get(&self, path: &str) -> Result<Value, (u16, Value)> {
        self.send(path, None).await
    }

    async fn send(&self, path: &str, post: Option<(&str, &Value)>) -> Result<Value, (u16, Value)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if Instant::now() > deadline {
                self.stats.lock().unwrap().gave_up.push(path.to_owned());
                return Err((0, Value::Null));
            }
            let url = self.url(path);
            let request = match post {
                Some((key, body)) => self
                    .http
                    .post(&url)
                    .header("Idempotency-Key", key)
                    .json(body),
                None => self.http.get(&url),
            };
            self.stats.lock().unwrap().requests += 1;
            let response = match request.bearer_auth(&self.key).send().await {
                Ok(r) => r,
                Err(_) => {
                    self.stats.lock().unwrap().unreachable += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            let request_id = response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            let body: Value = match response.json().await {
                Ok(b) => b,
                Err(_) => {
                    // The node died while answering.
                    self.stats.lock().unwrap().unreachable += 1;
                    continue;
                }
            };
            match status {
                200..=299 => return Ok(body),
                503 if retry_after => {
                    self.stats.lock().unwrap().unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                409 if body["error"]["code"] == "idempotency_key_in_use" => {
                    self.stats.lock().unwrap().in_use += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                500..=599 => {
                    self.stats.lock().unwrap().bugs.push(Bug {
                        status,
                        request_id,
                        what: format!("{path}: {}", body["error"]["code"]),
                    });
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return Err((status, body)),
            }
        }
    }

    /// Records an acknowledged object.
    pub fn ack(&self, object: &'static str, answer: &Value) {
        let mut stats = self.stats.lock().unwrap();
        let status = answer["status"].as_str().unwrap_or_default().to_owned();
        if object == "payment" && status == "succeeded" {
            stats.successes.push(Instant::now());
        }
        stats.acks.push(Ack {
            object,
            id: answer["id"].as_str().unwrap_or_default().to_owned(),
            status,
        });
    }
}
