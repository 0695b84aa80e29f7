//! Webhook endpoints: where a merchant wants which events, and the secret
//! each delivery is signed with.
//!
//! The secret must be readable to sign, so it cannot be hashed like an API
//! key. It is sealed with the webhook-secrets subkey of the master key
//! (`security.master_key`, see [`crate::crypto`]), with the endpoint id as
//! associated data so a sealed secret cannot be moved to another row, and
//! shown in clear exactly once: in the response that creates the endpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use time::OffsetDateTime;

use super::guard::UrlPolicy;
use super::signature::SECRET_PREFIX;
use super::{WebhookError, secret_context};
use crate::crypto::Sealer;
use crate::db::Db;
use crate::events::{EventType, Listed, Page};
use crate::ids::{MerchantId, WebhookEndpointId, random_base62};

/// Endpoints a merchant may have at once (every event fans out to each).
pub const MAX_ENDPOINTS: i64 = 16;

/// Random characters of a signing secret (≈190 bits).
const SECRET_LEN: usize = 32;

/// Longest description.
const MAX_DESCRIPTION: usize = 5000;

/// Whether an endpoint gets events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Events are delivered.
    Enabled,
    /// Nothing is delivered until it is enabled again.
    Disabled,
}

crate::names!(EndpointStatus);

/// An endpoint as the API shows it (never with its secret).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `we_…`.
    pub id: WebhookEndpointId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered here, or `["*"]`.
    pub enabled_events: Vec<String>,
    /// The merchant's note.
    pub description: Option<String>,
    /// The merchant's key-value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Whether events are delivered.
    pub status: EndpointStatus,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Insertion order (list cursor).
    pub seq: i64,
}

/// A freshly created endpoint and the only clear copy of its secret.
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// `whsec_…`, to show once.
    pub secret: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What creating an endpoint takes.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    /// https URL (or http to loopback in dev mode).
    pub url: String,
    /// Event type names, or `["*"]`.
    pub enabled_events: Vec<String>,
    /// Optional note.
    pub description: Option<String>,
    /// Key-value pairs (docs/api.md limits).
    pub metadata: BTreeMap<String, String>,
}

/// What an update may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    /// New URL (checked like a new one).
    pub url: Option<String>,
    /// New event list.
    pub enabled_events: Option<Vec<String>>,
    /// New description; an empty string removes it.
    pub description: Option<String>,
    /// Merged into the metadata; a key set to "" is removed.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Disable (true) or re-enable (false) deliveries.
    pub disabled: Option<bool>,
}

/// Endpoint persistence, always scoped to one merchant.
#[derive(Debug, Clone)]
pub struct EndpointStore {
    pool: Db,
    /// Seals signing secrets ([`crate::crypto::Purpose::WebhookSecrets`]).
    key: Sealer,
    policy: UrlPolicy,
}

struct Row {
    seq: i64,
    id: WebhookEndpointId,
    merchant_id: MerchantId,
    url: String,
    enabled_events: Vec<String>,
    description: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
    status: EndpointStatus,
    created_at: OffsetDateTime,
}

impl From<Row> for Endpoint {
    fn from(row: Row) -> Self {
        Endpoint {
            id: row.id,
            merchant_id: row.merchant_id,
            url: row.url,
            enabled_events: row.enabled_events,
            description: row.description,
            metadata: row.metadata.0,
            status: row.status,
            created_at: row.created_at,
            seq: row.seq,
        }
    }
}

impl EndpointStore {
    /// A store sealing secrets with `key` and checking URLs with `policy`.
    pub fn new(pool: Db, key: Sealer, policy: UrlPolicy) -> Self {
        Self { pool, key, policy }
    }

    /// Creates an endpoint after checking its URL (including where its host
    /// resolves), events and metadata.
    pub async fn create(
        &self,
        merchant: &MerchantId,
        new: NewEndpoint,
    ) -> Result<CreatedEndpoint, WebhookError> {
        let url = self.check_url(&new.url).await?;
        let events = normalize_events(&new.enabled_events)?;
        let description = normalize_description(new.description)?;
        validate_metadata(&new.metadata)?;
        let metadata = serde_json::to_value(&new.metadata)
            .map_err(|e| WebhookError::invalid("metadata", e.to_string()))?;

        let id = WebhookEndpointId::generate();
        let secret = format!("{SECRET_PREFIX}{}", random_base62(SECRET_LEN));
        let sealed = self
            .key
            .seal(secret.as_bytes(), &secret_context(id.as_str()));
        // Creations of one merchant are serialised, so two racing requests
        // cannot both pass the count.
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            r#"SELECT pg_advisory_xact_lock(hashtextextended('epg.webhook_endpoints:' || $1, 0))
               AS "locked: ()""#,
            merchant.as_str()
        )
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as!(
            Row,
            r#"INSERT INTO webhook_endpoints
                   (id, merchant_id, url, enabled_events, description, metadata, secret_sealed)
               SELECT $1, $2, $3, $4, $5, $6, $7
               WHERE (SELECT count(*) FROM webhook_endpoints
                      WHERE merchant_id = $2 AND deleted_at IS NULL) < $8
               RETURNING seq, id AS "id: WebhookEndpointId",
                         merchant_id AS "merchant_id: MerchantId", url, enabled_events,
                         description, metadata AS "metadata: Json<BTreeMap<String, String>>",
                         status AS "status: EndpointStatus", created_at"#,
            id.as_str(),
            merchant.as_str(),
            url,
            &events,
            description,
            metadata,
            sealed,
            MAX_ENDPOINTS,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            WebhookError::invalid(
                "url",
                format!(
                    "A merchant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first."
                ),
            )
        })?;
        tx.commit().await?;
        Ok(CreatedEndpoint {
            endpoint: row.into(),
            secret,
        })
    }

    /// One endpoint of `merchant`.
    pub async fn get(
        &self,
        merchant: &MerchantId,
        id: &WebhookEndpointId,
    ) -> Result<Endpoint, WebhookError> {
        sqlx::query_as!(
            Row,
            r#"SELECT seq, id AS "id: WebhookEndpointId",
                      merchant_id AS "merchant_id: MerchantId", url, enabled_events,
                      description, metadata AS "metadata: Json<BTreeMap<String, String>>",
                      status AS "status: EndpointStatus", created_at
               FROM webhook_endpoints
               WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL"#,
            id.as_str(),
            merchant.as_str(),
        )
        .fetch_optional(&self.pool)
        .await?
        .map(Endpoint::from)
        .ok_or_else(|| not_found(id))
    }

    /// A page of `merchant`'s endpoints, newest first.
    pub async fn list(
        &self,
        merchant: &MerchantId,
        limit: usize,
        page: Page<WebhookEndpointId>,
    ) -> Result<Listed<Endpoint>, WebhookError> {
        let fetch = i64::try_from(limit).unwrap_or(100) + 1;
        let cursor = |id: &WebhookEndpointId, param: &'static str| {
            let pool = self.pool.clone();
            let id = id.clone();
            async move {
                sqlx::query_scalar!(
                    "SELECT seq FROM webhook_endpoints
                     WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL",
                    id.as_str(),
                    merchant.as_str()
                )
                .fetch_optional(&pool)
                .await?
                .ok_or_else(|| {
                    WebhookError::invalid(param, format!("No such webhook_endpoint: '{id}'"))
                })
            }
        };
        let (rows, backwards) = match &page {
            Page::Before(id) => {
                let after = cursor(id, "ending_before").await?;
                let rows = sqlx::query_as!(
                    Row,
                    r#"SELECT seq, id AS "id: WebhookEndpointId",
                              merchant_id AS "merchant_id: MerchantId", url, enabled_events,
                              description, metadata AS "metadata: Json<BTreeMap<String, String>>",
                              status AS "status: EndpointStatus", created_at
                       FROM webhook_endpoints
                       WHERE merchant_id = $1 AND deleted_at IS NULL AND seq > $2
                       ORDER BY seq ASC LIMIT $3"#,
                    merchant.as_str(),
                    after,
                    fetch,
                )
                .fetch_all(&self.pool)
                .await?;
                (rows, true)
            }
            Page::First | Page::After(_) => {
                let before = match &page {
                    Page::After(id) => Some(cursor(id, "starting_after").await?),
                    _ => None,
                };
                let rows = sqlx::query_as!(
                    Row,
                    r#"SELECT seq, id AS "id: WebhookEndpointId",
                              merchant_id AS "merchant_id: MerchantId", url, enabled_events,
                              description, metadata AS "metadata: Json<BTreeMap<String, String>>",
                              status AS "status: EndpointStatus", created_at
                       FROM webhook_endpoints
                       WHERE merchant_id = $1 AND deleted_at IS NULL
                         AND ($2::bigint IS NULL OR seq < $2)
                       ORDER BY seq DESC LIMIT $3"#,
                    merchant.as_str(),
                    before,
                    fetch,
                )
                .fetch_all(&self.pool)
                .await?;
                (rows, false)
            }
        };
        let rows = rows.into_iter().map(Endpoint::from).collect();
        Ok(Listed::from_rows(rows, limit, backwards))
    }

    /// Applies `changes` to one of `merchant`'s endpoints.
    pub async fn update(
        &self,
        merchant: &MerchantId,
        id: &WebhookEndpointId,
        changes: EndpointChanges,
    ) -> Result<Endpoint, WebhookError> {
        // Checked before any lock is taken: resolving a name may take a while.
        let url = match &changes.url {
            Some(url) => Some(self.check_url(url).await?),
            None => None,
        };
        let events = changes
            .enabled_events
            .as_deref()
            .map(normalize_events)
            .transpose()?;
        let mut tx = self.pool.begin().await?;
        let current = sqlx::query!(
            r#"SELECT description, metadata FROM webhook_endpoints
               WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL
               FOR UPDATE"#,
            id.as_str(),
            merchant.as_str(),
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found(id))?;
        let description = match changes.description {
            Some(d) => normalize_description(Some(d))?,
            None => current.description,
        };
        let mut metadata: BTreeMap<String, String> =
            serde_json::from_value(current.metadata).unwrap_or_default();
        if let Some(update) = changes.metadata {
            for (k, v) in update {
                if v.is_empty() {
                    metadata.remove(&k);
                } else {
                    metadata.insert(k, v);
                }
            }
        }
        validate_metadata(&metadata)?;
        let metadata = serde_json::to_value(&metadata)
            .map_err(|e| WebhookError::invalid("metadata", e.to_string()))?;
        let status = changes.disabled.map(|d| {
            if d {
                EndpointStatus::Disabled
            } else {
                EndpointStatus::Enabled
            }
        });
        let row = sqlx::query_as!(
            Row,
            r#"UPDATE webhook_endpoints SET
                   url = COALESCE($3, url),
                   enabled_events = COALESCE($4, enabled_events),
                   description = $5,
                   metadata = $6,
                   status = COALESCE($7, status)
               WHERE id = $1 AND merchant_id = $2
               RETURNING seq, id AS "id: WebhookEndpointId",
                         merchant_id AS "merchant_id: MerchantId", url, enabled_events,
                         description, metadata AS "metadata: Json<BTreeMap<String, String>>",
                         status AS "status: EndpointStatus", created_at"#,
            id.as_str(),
            merchant.as_str(),
            url,
            events.as_deref(),
            description,
            metadata,
            status as Option<EndpointStatus>,
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes an endpoint: it disappears from the API, its pending
    /// deliveries are canceled, its delivery history stays.
    pub async fn delete(
        &self,
        merchant: &MerchantId,
        id: &WebhookEndpointId,
    ) -> Result<(), WebhookError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query!(
            "UPDATE webhook_endpoints SET deleted_at = now()
             WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL",
            id.as_str(),
            merchant.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(not_found(id));
        }
        sqlx::query!(
            "UPDATE webhook_deliveries
             SET status = 'canceled', completed_at = now(), claim_token = NULL
             WHERE endpoint_id = $1 AND status = 'pending'",
            id.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn check_url(&self, raw: &str) -> Result<String, WebhookError> {
        self.policy
            .check(raw)
            .await
            .map(|_| raw.trim().to_owned())
            .map_err(|refusal| WebhookError::invalid("url", refusal.to_string()))
    }
}

fn not_found(id: &WebhookEndpointId) -> WebhookError {
    WebhookError::NotFound {
        what: "webhook_endpoint",
        id: id.to_string(),
    }
}

/// Checks event names; `*` anywhere means all (stored as `["*"]`), the
/// rest is de-duplicated in docs/api.md's order.
fn normalize_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(WebhookError::invalid(
            "enabled_events",
            "List at least one event type, or [\"*\"] for all of them.",
        ));
    }
    let mut wanted = Vec::new();
    for (i, name) in events.iter().enumerate() {
        if name == "*" {
            return Ok(vec!["*".to_owned()]);
        }
        let t = name.parse::<EventType>().map_err(|_| {
            WebhookError::invalid(
                format!("enabled_events[{i}]"),
                format!(
                    "Unknown event type `{name}`. Known types: {}, or \"*\".",
                    EventType::ALL.map(|t| t.to_string()).join(", ")
                ),
            )
        })?;
        wanted.push(t);
    }
    wanted.sort();
    wanted.dedup();
    Ok(wanted.into_iter().map(|t| t.to_string()).collect())
}

fn normalize_description(d: Option<String>) -> Result<Option<String>, WebhookError> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(WebhookError::invalid(
            "description",
            format!("Must be at most {MAX_DESCRIPTION} characters."),
        )),
        Some(d) if d.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// docs/api.md's metadata limits (shared with every other object).
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), WebhookError> {
    crate::metadata::Metadata::parse(metadata.clone())
        .map(drop)
        .map_err(|e| WebhookError::invalid(e.param, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn events_are_checked_and_normalized() {
        assert_eq!(
            normalize_events(&names(&[
                "refund.failed",
                "payment.succeeded",
                "refund.failed"
            ]))
            .unwrap(),
            names(&["payment.succeeded", "refund.failed"])
        );
        assert_eq!(
            normalize_events(&names(&["payment.succeeded", "*"])).unwrap(),
            names(&["*"])
        );
        let err = normalize_events(&names(&["payment.succeeded", "payment.exploded"]));
        assert!(
            matches!(err, Err(WebhookError::Invalid { ref param, .. }) if param == "enabled_events[1]")
        );
        assert!(normalize_events(&[]).is_err());
    }

    #[test]
    fn metadata_limits() {
        let mut m = BTreeMap::new();
        m.insert("k".to_owned(), "v".repeat(500));
        assert!(validate_metadata(&m).is_ok());
        m.insert("k".to_owned(), "v".repeat(501));
        assert!(validate_metadata(&m).is_err());
        let many: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(validate_metadata(&many).is_err());
        let mut long_key = BTreeMap::new();
        long_key.insert("k".repeat(41), "v".to_owned());
        assert!(validate_metadata(&long_key).is_err());
    }
}
