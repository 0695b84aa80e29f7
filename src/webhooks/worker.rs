//! The delivery worker: a background job of every node.
//!
//! It claims due deliveries with `FOR UPDATE SKIP LOCKED`. A claim bumps
//! the attempt number, sets a fresh claim token, and moves
//! `next_attempt_at` to the end of a lease (`webhooks.lease_secs`, longer
//! than the request timeout): until then no other node sees the row as due,
//! and if this node dies mid-attempt the row simply becomes due again when
//! the lease ends. So each attempt is made by exactly one node, and no
//! claimed delivery is lost. Only the holder of the current token records
//! the outcome; the attempt itself is logged whatever happens.
//!
//! Up to `webhooks.workers` attempts run at once, at most
//! `webhooks.endpoint_concurrency` of them to one endpoint, so an endpoint
//! that hangs until the timeout holds up only its own deliveries. The
//! worker wakes on the event bus (a committed event that enqueued
//! deliveries, a redelivery), at the next due time, and at least every
//! `poll_interval_ms`.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::deliveries::DeliveryStatus;
use super::guard::{Refusal, UrlPolicy};
use super::{secret_context, signature};
use crate::config::{Config, Mode, WebhooksConfig};
use crate::crypto::{Purpose, Sealer};
use crate::db::Db;
use crate::events::{Bus, Event, EventType, Notice};
use crate::ids::{EventId, MerchantId, WebhookDeliveryId, WebhookEndpointId};
use crate::telemetry::metrics::Metrics;

/// Headers every delivery carries besides the signature.
pub mod headers {
    /// The event id (receivers dedupe on it).
    pub const EVENT_ID: &str = "Epg-Event-Id";
    /// The delivery id (one per event and endpoint).
    pub const DELIVERY_ID: &str = "Epg-Delivery-Id";
    /// 1 for the first attempt of a delivery, 2 for its first retry, …
    pub const ATTEMPT: &str = "Epg-Delivery-Attempt";
}

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("E-PG-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The encryption key of the configuration is unusable.
    #[error("webhook worker: {0}")]
    Key(String),
    /// The HTTP client could not be built.
    #[error("webhook worker: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A claimed attempt.
struct Claimed {
    id: WebhookDeliveryId,
    attempt: i32,
    token: Uuid,
    endpoint_id: WebhookEndpointId,
    url: String,
    secret_sealed: Vec<u8>,
    event: Event,
}

/// How an attempt went.
#[derive(Debug, Clone)]
struct Outcome {
    status_code: Option<u16>,
    succeeded: bool,
    error: Option<String>,
    response_body: Option<String>,
    duration: Duration,
}

impl Outcome {
    fn failed(error: String, duration: Duration) -> Self {
        Self {
            status_code: None,
            succeeded: false,
            error: Some(error),
            response_body: None,
            duration,
        }
    }
}

/// The delivery job of one node.
pub struct Worker {
    pool: Db,
    bus: Bus,
    metrics: Arc<Metrics>,
    settings: WebhooksConfig,
    mode: Mode,
    /// Opens endpoints' signing secrets.
    key: Sealer,
    policy: UrlPolicy,
    client: reqwest::Client,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The delay before retrying after failed attempt number `attempt`: uniform
/// in `0..=min(cap, base * 2^(attempt - 1))` milliseconds ("full jitter",
/// so receivers coming back up are not hit by synchronized retries).
pub fn retry_delay(attempt: i32, base_ms: u64, cap_ms: u64, rng: &mut impl Rng) -> Duration {
    let failures = u32::try_from(attempt).unwrap_or(0);
    crate::backoff::Backoff::from_millis(base_ms, cap_ms).jittered(failures, rng)
}

/// Builds the delivery client: no proxy (it would resolve names itself and
/// bypass the address check), no redirects, the node's timeout, and the
/// guarded resolver.
pub fn http_client(
    policy: UrlPolicy,
    settings: &WebhooksConfig,
) -> Result<reqwest::Client, reqwest::Error> {
    let timeout = Duration::from_secs(settings.timeout_secs);
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!policy.dev)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(30))
        .dns_resolver(Arc::new(policy.resolver()))
        .build()
}

impl Worker {
    /// A worker for a node configured by `config`.
    pub fn new(
        pool: Db,
        bus: Bus,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> Result<Self, WorkerError> {
        let key = config
            .keyring()
            .map_err(|e| WorkerError::Key(e.to_string()))?
            .sealer(Purpose::WebhookSecrets);
        let policy = UrlPolicy::new(config.server.dev);
        let client = http_client(policy, &config.webhooks)?;
        Ok(Self {
            pool,
            bus,
            metrics,
            settings: config.webhooks.clone(),
            mode: config.mode,
            key,
            policy,
            client,
        })
    }

    /// Runs until `shutdown`; then stops claiming and lets running attempts
    /// finish (each is bounded by the timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut notices = this.bus.subscribe();
        let mut running: JoinSet<()> = JoinSet::new();
        // Attempts in flight per endpoint, and which endpoint each task is for.
        let mut per_endpoint: HashMap<WebhookEndpointId, i32> = HashMap::new();
        let mut task_endpoint: HashMap<tokio::task::Id, WebhookEndpointId> = HashMap::new();
        let capacity = usize::try_from(this.settings.workers).unwrap_or(1).max(1);
        let endpoint_cap = i32::try_from(this.settings.endpoint_concurrency).unwrap_or(1);
        let poll = Duration::from_millis(this.settings.poll_interval_ms);
        let claim_backoff =
            crate::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut claim_failures = 0u32;
        while !shutdown.is_cancelled() {
            // Reap every finished attempt first, so one claim fills all the
            // slots freed meanwhile (under load, claims come in batches).
            while let Some(joined) = running.try_join_next_with_id() {
                finished(joined, &mut per_endpoint, &mut task_endpoint);
            }
            let free = capacity.saturating_sub(running.len());
            let mut wait = poll;
            if free > 0 {
                match this.claim(free, &per_endpoint).await {
                    Ok(batch) => {
                        claim_failures = 0;
                        let full = batch.len() == free;
                        for claimed in batch {
                            let endpoint = claimed.endpoint_id.clone();
                            *per_endpoint.entry(endpoint.clone()).or_default() += 1;
                            let worker = Arc::clone(&this);
                            let task = running.spawn(async move { worker.process(claimed).await });
                            task_endpoint.insert(task.id(), endpoint);
                        }
                        if !full {
                            let busy: Vec<String> = per_endpoint
                                .iter()
                                .filter(|(_, n)| **n >= endpoint_cap)
                                .map(|(id, _)| id.to_string())
                                .collect();
                            match this.next_due(&busy).await {
                                Ok(Some(ms)) => {
                                    let ms = u64::try_from(ms).unwrap_or(0);
                                    wait = Duration::from_millis(ms)
                                        .clamp(Duration::from_millis(5), poll);
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "webhook worker: next due time")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook worker: cannot claim deliveries");
                        claim_failures = claim_failures.saturating_add(1);
                        wait = claim_backoff.delay(claim_failures);
                    }
                }
            }
            // Wait for something that may make work claimable: a slot
            // freeing up, a relevant notice, the next due time, a poll.
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                let has_room = running.len() < capacity;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                        finished(joined, &mut per_endpoint, &mut task_endpoint);
                        break;
                    }
                    notice = notices.recv(), if has_room => match notice {
                        Notice::Event(n) if n.deliveries == 0 => continue,
                        _ => break,
                    },
                    () = &mut sleep, if has_room => break,
                }
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Claims up to `limit` due deliveries, at most
    /// `endpoint_concurrency` in flight per endpoint counting the
    /// `running` ones.
    async fn claim(
        &self,
        limit: usize,
        running: &HashMap<WebhookEndpointId, i32>,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let token = Uuid::new_v4();
        let lease_ms =
            i64::try_from(self.settings.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(1);
        let cap = i32::try_from(self.settings.endpoint_concurrency).unwrap_or(i32::MAX);
        let (endpoints, counts): (Vec<String>, Vec<i32>) =
            running.iter().map(|(id, n)| (id.to_string(), *n)).unzip();
        // `head` looks at the next few due rows, skipping endpoints already
        // at their limit (so a backlog of one endpoint cannot hide the
        // others); `ranked` numbers them per endpoint after those running;
        // `due` locks those within the limit, skipping rows another node is
        // claiming right now.
        let rows = sqlx::query!(
            r#"
            WITH running AS (
                SELECT * FROM unnest($4::text[], $5::int4[]) AS r(endpoint_id, n)
            ), head AS (
                SELECT d.id, d.endpoint_id, d.next_attempt_at
                FROM webhook_deliveries d
                JOIN webhook_endpoints e ON e.id = d.endpoint_id
                WHERE d.status = 'pending'
                  AND d.next_attempt_at <= now()
                  AND e.status = 'enabled'
                  AND e.deleted_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM running r
                                  WHERE r.endpoint_id = d.endpoint_id AND r.n >= $6)
                ORDER BY d.next_attempt_at
                LIMIT $1::bigint * 4
            ), ranked AS (
                SELECT h.id, h.next_attempt_at,
                       row_number() OVER (PARTITION BY h.endpoint_id ORDER BY h.next_attempt_at)
                           + COALESCE(r.n, 0) AS slot
                FROM head h
                LEFT JOIN running r ON r.endpoint_id = h.endpoint_id
            ), due AS (
                SELECT d.id
                FROM webhook_deliveries d
                JOIN ranked k ON k.id = d.id
                WHERE k.slot <= $6
                  AND d.status = 'pending'
                  AND d.next_attempt_at <= now()
                ORDER BY k.next_attempt_at
                LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhook_deliveries d
            SET attempts = d.attempts + 1,
                claim_token = $2,
                next_attempt_at = now() + interval '1 millisecond' * $3::bigint
            FROM due, events ev, webhook_endpoints e
            WHERE d.id = due.id AND ev.id = d.event_id AND e.id = d.endpoint_id
            RETURNING d.id AS "id: WebhookDeliveryId", d.attempts,
                      e.id AS "endpoint_id: WebhookEndpointId", e.url, e.secret_sealed,
                      ev.seq, ev.id AS "event_id: EventId",
                      ev.merchant_id AS "merchant_id: MerchantId", ev.type AS event_type,
                      ev.api_version, ev.data, ev.created_at
            "#,
            limit,
            token,
            lease_ms,
            &endpoints,
            &counts,
            cap,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let Ok(event_type) = row.event_type.parse::<EventType>() else {
                // The table's CHECK makes this impossible; the lease will
                // bring the row back if it ever happens.
                tracing::error!(event_type = %row.event_type, "unknown event type in events");
                continue;
            };
            claimed.push(Claimed {
                id: row.id,
                attempt: row.attempts,
                token,
                endpoint_id: row.endpoint_id,
                url: row.url,
                secret_sealed: row.secret_sealed,
                event: Event {
                    id: row.event_id,
                    merchant_id: row.merchant_id,
                    event_type,
                    api_version: row.api_version,
                    data: row.data,
                    created_at: row.created_at,
                    seq: row.seq,
                },
            });
        }
        Ok(claimed)
    }

    /// Milliseconds until the earliest pending row of an endpoint not in
    /// `busy` is due (zero if one is due now), or `None` if there is none.
    async fn next_due(&self, busy: &[String]) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar!(
            // Without the CASE, `GREATEST(0, NULL)` is 0 when nothing is
            // pending (GREATEST skips NULLs), and the idle loop would claim
            // and ask again every few milliseconds.
            r#"SELECT CASE WHEN min(d.next_attempt_at) IS NULL THEN NULL
                          ELSE GREATEST(0, EXTRACT(EPOCH FROM (min(d.next_attempt_at) - now())) * 1000)::bigint
                     END
               FROM webhook_deliveries d
               JOIN webhook_endpoints e ON e.id = d.endpoint_id
               WHERE d.status = 'pending' AND e.status = 'enabled' AND e.deleted_at IS NULL
                 AND NOT (d.endpoint_id = ANY ($1))"#,
            busy,
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Makes one attempt and records it.
    async fn process(&self, claimed: Claimed) {
        let outcome = self.attempt(&claimed).await;
        self.metrics.add("webhook_attempts", 1);
        if !outcome.succeeded {
            self.metrics.add("webhook_attempts_failed", 1);
        }
        let delay = retry_delay(
            claimed.attempt,
            self.settings.backoff_base_ms,
            self.settings.backoff_cap_ms,
            &mut rand::thread_rng(),
        );
        let mut pause = Duration::from_millis(100);
        for _ in 0..5 {
            match self.complete(&claimed, &outcome, delay).await {
                Ok(Some(status)) => {
                    match status {
                        DeliveryStatus::Succeeded => {
                            self.metrics.add("webhook_deliveries_succeeded", 1);
                        }
                        DeliveryStatus::Failed => {
                            self.metrics.add("webhook_deliveries_failed", 1);
                            tracing::warn!(
                                delivery = %claimed.id,
                                event = %claimed.event.id,
                                attempts = claimed.attempt,
                                "webhook delivery failed for good (retry window over)"
                            );
                        }
                        _ => {}
                    }
                    return;
                }
                Ok(None) => {
                    // The lease ran out and another claim took the row, or
                    // the endpoint was deleted meanwhile. The attempt is
                    // logged; the row is someone else's now.
                    tracing::warn!(delivery = %claimed.id, attempt = claimed.attempt,
                        "webhook attempt finished after losing its claim");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, delivery = %claimed.id, "cannot record a webhook attempt; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        // Not recorded: the lease ends and the attempt is made again.
        tracing::error!(delivery = %claimed.id, "gave up recording a webhook attempt");
    }

    /// POSTs the event to the endpoint.
    async fn attempt(&self, claimed: &Claimed) -> Outcome {
        let started = Instant::now();
        let secret = match self
            .key
            .open(
                &claimed.secret_sealed,
                &secret_context(claimed.endpoint_id.as_str()),
            )
            .map(String::from_utf8)
        {
            Ok(Ok(secret)) => secret,
            _ => {
                tracing::error!(endpoint = %claimed.endpoint_id,
                    "webhook signing secret cannot be unsealed (was the master key that sealed it removed from security.previous_master_keys?)");
                return Outcome::failed(
                    "the node could not unseal this endpoint's signing secret".into(),
                    started.elapsed(),
                );
            }
        };
        // The endpoint was checked when it was saved; the rules (and DNS)
        // may have changed since, so check again. The resolver checks the
        // addresses the connection will actually use.
        let url = match self.policy.parse(&claimed.url) {
            Ok(url) => url,
            Err(refusal) => {
                return Outcome::failed(format!("refused: {refusal}"), started.elapsed());
            }
        };
        let body = match serde_json::to_vec(&claimed.event.to_object(self.mode)) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::failed(format!("cannot encode the event: {e}"), started.elapsed());
            }
        };
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let Some(signature) = signature::header_value(&[&secret], timestamp, &body) else {
            return Outcome::failed("cannot sign the event".into(), started.elapsed());
        };
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(signature::HEADER, signature)
            .header(headers::EVENT_ID, claimed.event.id.as_str())
            .header(headers::DELIVERY_ID, claimed.id.as_str())
            .header(headers::ATTEMPT, claimed.attempt.to_string())
            .body(body);
        let limit = self.settings.response_body_limit_bytes;
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        // reqwest's own timeout covers connect, send and the body; this one
        // is a backstop so an attempt can never outlive its lease.
        let sent = tokio::time::timeout(timeout + Duration::from_secs(1), async {
            let mut response = request.send().await?;
            let status = response.status();
            let body = read_limited(&mut response, limit).await;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        let duration = started.elapsed();
        match sent {
            Err(_) => Outcome::failed(format!("timed out after {} s", timeout.as_secs()), duration),
            Ok(Err(e)) => Outcome::failed(describe(&e, timeout), duration),
            Ok(Ok((status, body))) => {
                let succeeded = status.is_success();
                let error = (!succeeded).then(|| {
                    if status.is_redirection() {
                        format!("the endpoint answered {status} (redirects are not followed)")
                    } else {
                        format!("the endpoint answered {status}")
                    }
                });
                Outcome {
                    status_code: Some(status.as_u16()),
                    succeeded,
                    error,
                    response_body: Some(body),
                    duration,
                }
            }
        }
    }

    /// Logs the attempt and, if this node still holds the claim, moves the
    /// delivery on: succeeded, failed for good (retry window over), or
    /// pending again after `delay`. Returns the new status, or `None` if the
    /// claim was lost.
    ///
    /// This commit does not wait for the WAL flush (`synchronous_commit =
    /// off`): if PostgreSQL itself crashes and loses it, the claim (which
    /// was durable) simply runs out and the next attempt, with the next
    /// number, is made: a duplicate delivery, never a lost one, and never
    /// two deliveries with the same attempt number.
    async fn complete(
        &self,
        claimed: &Claimed,
        outcome: &Outcome,
        delay: Duration,
    ) -> Result<Option<DeliveryStatus>, sqlx::Error> {
        let duration_ms = i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let window = i64::try_from(self.settings.retry_window_secs).unwrap_or(i64::MAX);
        let status_code = outcome.status_code.and_then(|s| i16::try_from(s).ok());
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let status = sqlx::query_scalar!(
            r#"
            WITH logged AS (
                INSERT INTO webhook_delivery_attempts
                    (delivery_id, attempt, status_code, succeeded, duration_ms, error, response_body)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (delivery_id, attempt) DO NOTHING
                RETURNING 1
            ), decided AS (
                SELECT CASE
                    WHEN $4 THEN 'succeeded'
                    WHEN now() >= d.created_at + interval '1 second' * $9::bigint THEN 'failed'
                    ELSE 'pending'
                END AS status
                FROM webhook_deliveries d
                WHERE d.id = $1
            )
            UPDATE webhook_deliveries d
            SET status = decided.status,
                completed_at = CASE WHEN decided.status = 'pending' THEN NULL ELSE now() END,
                next_attempt_at = CASE WHEN decided.status = 'pending'
                                       THEN now() + interval '1 millisecond' * $10::bigint
                                       ELSE d.next_attempt_at END,
                claim_token = NULL
            FROM decided
            WHERE d.id = $1 AND d.claim_token = $8 AND d.status = 'pending'
            RETURNING d.status AS "status: DeliveryStatus"
            "#,
            claimed.id.as_str(),
            claimed.attempt,
            status_code,
            outcome.succeeded,
            duration_ms,
            outcome.error.as_deref(),
            outcome.response_body.as_deref(),
            claimed.token,
            window,
            delay_ms,
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(status)
    }
}

/// Bookkeeping when an attempt's task ends.
fn finished(
    joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    per_endpoint: &mut HashMap<WebhookEndpointId, i32>,
    task_endpoint: &mut HashMap<tokio::task::Id, WebhookEndpointId>,
) {
    let task = match joined {
        Ok((task, ())) => task,
        Err(e) => {
            if e.is_panic() {
                tracing::error!("webhook worker: a delivery task panicked");
            }
            e.id()
        }
    };
    if let Some(endpoint) = task_endpoint.remove(&task)
        && let Some(n) = per_endpoint.get_mut(&endpoint)
    {
        *n -= 1;
        if *n <= 0 {
            per_endpoint.remove(&endpoint);
        }
    }
}

/// Reads at most `limit` bytes of the body (as text, lossy), so a huge or
/// endless answer cannot tie up the worker or the attempt log.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // A broken body after a status line still counts as an answer.
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(limit);
    let mut text = String::from_utf8_lossy(&body).into_owned();
    // Lossy decoding of a cut multi-byte character may add a replacement
    // character; stay within the limit anyway.
    while text.len() > limit {
        text.pop();
    }
    text
}

/// A failed request in words, naming a refused address plainly.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return format!("refused: {refusal}");
        }
        source = err.source();
    }
    if e.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs());
    }
    let mut chain = String::new();
    let mut source = e.source();
    while let Some(err) = source {
        chain.push_str(": ");
        chain.push_str(&err.to_string());
        source = err.source();
    }
    if e.is_connect() {
        format!("could not connect{chain}")
    } else {
        format!("request failed{chain}")
    }
}

/// A claimed event's body as the receiver gets it (for tests and tools that
/// want to reproduce a signature).
pub fn delivery_body(event: &Event, mode: Mode) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&event.to_object(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_then_caps_with_full_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..200 {
            let ceiling = 1000u64
                .saturating_mul(1 << (attempt - 1).min(62))
                .min(60_000);
            for _ in 0..20 {
                let d = retry_delay(attempt, 1000, 60_000, &mut rng);
                assert!(d <= Duration::from_millis(ceiling), "{attempt}: {d:?}");
            }
        }
        // Jitter: not always the ceiling.
        let delays: std::collections::HashSet<_> = (0..50)
            .map(|_| retry_delay(10, 1000, 60_000, &mut rng))
            .collect();
        assert!(delays.len() > 10);
    }

    #[test]
    fn three_days_of_default_retries_take_many_attempts() {
        // With the default schedule the expected gap settles at half the
        // cap; three days is about 70 attempts, never a handful.
        let defaults = WebhooksConfig::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        while elapsed < Duration::from_secs(defaults.retry_window_secs) {
            elapsed += retry_delay(
                attempts,
                defaults.backoff_base_ms,
                defaults.backoff_cap_ms,
                &mut rng,
            );
            attempts += 1;
        }
        assert!((40..200).contains(&attempts), "{attempts}");
    }
}
