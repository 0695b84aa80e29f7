//! The delivery log an API caller sees, and redelivery.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::WebhookError;
use super::endpoints::EndpointStatus;
use crate::db::Db;
use crate::events::{DELIVERIES_CHANNEL, Listed, Page};
use crate::ids::{EventId, MerchantId, WebhookDeliveryId, WebhookEndpointId};

/// Where a delivery is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempts go on until the retry window ends.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Gave up: the retry window ended without a 2xx.
    Failed,
    /// The endpoint was deleted first.
    Canceled,
}

crate::names!(DeliveryStatus);

/// One event's delivery to one endpoint.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `whd_…`.
    pub id: WebhookDeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// Where to.
    pub endpoint_id: WebhookEndpointId,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts started.
    pub attempt_count: i32,
    /// When the next attempt is due (or the running one's lease ends),
    /// while pending.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was enqueued.
    pub created_at: OffsetDateTime,
    /// When it stopped being pending.
    pub completed_at: Option<OffsetDateTime>,
    /// Every finished attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Insertion order (list cursor).
    pub seq: i64,
}

impl Delivery {
    /// Whether an attempt has started and not finished: a pending delivery
    /// counts an attempt when a worker claims it and records it when the
    /// attempt ends, both in one statement each.
    pub fn attempt_running(&self) -> bool {
        self.status == DeliveryStatus::Pending
            && usize::try_from(self.attempt_count).is_ok_and(|n| n > self.attempts.len())
    }
}

/// One finished attempt, as the receiver answered it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1, 2, …
    pub attempt: i32,
    /// The HTTP status, if a response came back.
    pub status_code: Option<i16>,
    /// A 2xx came back.
    pub succeeded: bool,
    /// Time from sending to the end of the (truncated) response.
    pub duration_ms: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// The start of the response body.
    pub response_body: Option<String>,
    /// When it finished.
    pub created_at: OffsetDateTime,
}

/// Delivery queries, scoped to one merchant.
#[derive(Debug, Clone)]
pub struct DeliveryStore {
    pool: Db,
}

struct Row {
    seq: i64,
    id: WebhookDeliveryId,
    event_id: EventId,
    endpoint_id: WebhookEndpointId,
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    created_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
}

impl DeliveryStore {
    /// A store over `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }

    async fn check_event(
        &self,
        merchant: &MerchantId,
        event: &EventId,
    ) -> Result<(), WebhookError> {
        let found = sqlx::query_scalar!(
            "SELECT 1 AS one FROM events WHERE id = $1 AND merchant_id = $2",
            event.as_str(),
            merchant.as_str()
        )
        .fetch_optional(&self.pool)
        .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(WebhookError::NotFound {
                what: "event",
                id: event.to_string(),
            }),
        }
    }

    /// A page of the deliveries of `merchant`'s `event`, newest first, each
    /// with its attempts.
    pub async fn list_for_event(
        &self,
        merchant: &MerchantId,
        event: &EventId,
        limit: usize,
        page: Page<WebhookDeliveryId>,
    ) -> Result<Listed<Delivery>, WebhookError> {
        self.check_event(merchant, event).await?;
        let fetch = i64::try_from(limit).unwrap_or(100) + 1;
        let cursor = |id: &WebhookDeliveryId, param: &'static str| {
            let pool = self.pool.clone();
            let id = id.clone();
            async move {
                sqlx::query_scalar!(
                    "SELECT seq FROM webhook_deliveries WHERE id = $1 AND event_id = $2",
                    id.as_str(),
                    event.as_str()
                )
                .fetch_optional(&pool)
                .await?
                .ok_or_else(|| WebhookError::Invalid {
                    param: param.to_owned(),
                    message: format!("No such delivery of this event: '{id}'"),
                })
            }
        };
        let (lower, upper, backwards) = match &page {
            Page::First => (None, None, false),
            Page::After(id) => (None, Some(cursor(id, "starting_after").await?), false),
            Page::Before(id) => (Some(cursor(id, "ending_before").await?), None, true),
        };
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT seq, id AS "id: WebhookDeliveryId", event_id AS "event_id: EventId",
                      endpoint_id AS "endpoint_id: WebhookEndpointId",
                      status AS "status: DeliveryStatus", attempts,
                      next_attempt_at, created_at, completed_at
               FROM webhook_deliveries
               WHERE event_id = $1
                 AND ($2::bigint IS NULL OR seq > $2)
                 AND ($3::bigint IS NULL OR seq < $3)
               ORDER BY CASE WHEN $4 THEN seq END ASC, seq DESC
               LIMIT $5"#,
            event.as_str(),
            lower,
            upper,
            backwards,
            fetch,
        )
        .fetch_all(&self.pool)
        .await?;
        let page = Listed::from_rows(rows, limit, backwards);
        Ok(Listed {
            data: self.hydrate(page.data).await?,
            has_more: page.has_more,
        })
    }

    /// Attaches their attempts to delivery rows.
    async fn hydrate(&self, rows: Vec<Row>) -> Result<Vec<Delivery>, sqlx::Error> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
        let attempts = sqlx::query!(
            r#"SELECT delivery_id, attempt, status_code, succeeded, duration_ms, error,
                      response_body, created_at
               FROM webhook_delivery_attempts
               WHERE delivery_id = ANY ($1)
               ORDER BY delivery_id, attempt"#,
            &ids,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let log = attempts
                    .iter()
                    .filter(|a| a.delivery_id == row.id.as_str())
                    .map(|a| Attempt {
                        attempt: a.attempt,
                        status_code: a.status_code,
                        succeeded: a.succeeded,
                        duration_ms: a.duration_ms,
                        error: a.error.clone(),
                        response_body: a.response_body.clone(),
                        created_at: a.created_at,
                    })
                    .collect();
                Delivery {
                    next_attempt_at: (row.status == DeliveryStatus::Pending)
                        .then_some(row.next_attempt_at),
                    id: row.id,
                    event_id: row.event_id,
                    endpoint_id: row.endpoint_id,
                    status: row.status,
                    attempt_count: row.attempts,
                    created_at: row.created_at,
                    completed_at: row.completed_at,
                    attempts: log,
                    seq: row.seq,
                }
            })
            .collect())
    }

    /// Delivers `merchant`'s `event` again: to `endpoint` if given (whatever
    /// events it subscribes to), else to every enabled endpoint subscribed
    /// to the event's type. A delivery still pending for an endpoint is
    /// made due now rather than doubled; one whose attempt is running is
    /// answered as it is (that attempt is the redelivery, and its lease is
    /// left alone so no second worker claims it meanwhile). Returns the
    /// deliveries enqueued, brought forward or under way.
    pub async fn redeliver(
        &self,
        merchant: &MerchantId,
        event: &EventId,
        endpoint: Option<&WebhookEndpointId>,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.check_event(merchant, event).await?;
        if let Some(endpoint) = endpoint {
            let status = sqlx::query_scalar!(
                r#"SELECT status AS "status: EndpointStatus" FROM webhook_endpoints
                 WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL"#,
                endpoint.as_str(),
                merchant.as_str()
            )
            .fetch_optional(&self.pool)
            .await?;
            match status {
                Some(EndpointStatus::Enabled) => {}
                Some(_) => {
                    return Err(WebhookError::Invalid {
                        param: "endpoint".into(),
                        message: format!(
                            "Webhook endpoint '{endpoint}' is disabled; enable it first."
                        ),
                    });
                }
                None => {
                    return Err(WebhookError::Invalid {
                        param: "endpoint".into(),
                        message: format!("No such webhook_endpoint: '{endpoint}'"),
                    });
                }
            }
        }
        // The rows are answered as enqueued, from the statement itself: the
        // worker is woken by the notification and may deliver before a
        // second read, which would then report an attempt the caller did
        // not ask about.
        let mut tx = self.pool.begin().await?;
        let mut rows = sqlx::query_as!(
            Row,
            r#"INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id)
               SELECT epg_random_id('whd'), ev.merchant_id, ev.id, e.id
               FROM events ev
               JOIN webhook_endpoints e ON e.merchant_id = ev.merchant_id
               WHERE ev.id = $1 AND ev.merchant_id = $2
                 AND e.deleted_at IS NULL AND e.status = 'enabled'
                 AND CASE WHEN $3::text IS NULL
                          THEN ev.type = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events)
                          ELSE e.id = $3 END
               ON CONFLICT (event_id, endpoint_id) WHERE status = 'pending'
               DO UPDATE SET next_attempt_at =
                   CASE WHEN webhook_deliveries.claim_token IS NULL THEN now()
                        ELSE webhook_deliveries.next_attempt_at END
               RETURNING seq, id AS "id: WebhookDeliveryId", event_id AS "event_id: EventId",
                         endpoint_id AS "endpoint_id: WebhookEndpointId",
                      status AS "status: DeliveryStatus", attempts,
                         next_attempt_at, created_at, completed_at"#,
            event.as_str(),
            merchant.as_str(),
            endpoint.map(WebhookEndpointId::as_str),
        )
        .fetch_all(&mut *tx)
        .await?;
        if !rows.is_empty() {
            sqlx::query!(
                r#"SELECT pg_notify($1, '') AS "notified: ()""#,
                DELIVERIES_CHANNEL
            )
            .fetch_one(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        rows.sort_by_key(|row| std::cmp::Reverse(row.seq));
        Ok(self.hydrate(rows).await?)
    }
}
