//! `/v1/events`: the merchant's events, their webhook deliveries, and
//! redelivery.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::auth::SecretKey;
use super::error::ApiError;
use super::{AppState, Json, Query, unix};
use crate::config::Mode;
use crate::events::{EventError, EventObject, EventStore, EventType, Page};
use crate::ids::{EventId, WebhookDeliveryId, WebhookEndpointId};
use crate::webhooks::{Delivery, DeliveryStore};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list))
        .route("/v1/events/{id}", get(retrieve))
        .route("/v1/events/{id}/deliveries", get(deliveries))
        .route("/v1/events/{id}/redeliver", post(redeliver))
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::NotFound(id) => ApiError::not_found("event", &id),
            EventError::Invalid { param, message } => ApiError::invalid_param(param, message),
            EventError::Database(e) => ApiError::from(e),
        }
    }
}

/// A list response (docs/api.md, "Pagination").
#[derive(Debug, Serialize)]
pub struct List<T> {
    /// Always `list`.
    pub object: &'static str,
    /// The page, newest first.
    pub data: Vec<T>,
    /// More items beyond this page.
    pub has_more: bool,
    /// The list's path.
    pub url: String,
}

impl<T> List<T> {
    /// A page of `url`.
    pub fn new(url: impl Into<String>, data: Vec<T>, has_more: bool) -> Self {
        Self {
            object: "list",
            data,
            has_more,
            url: url.into(),
        }
    }
}

/// The common list parameters, checked: `limit` 1–100 (default 10) and at
/// most one of `starting_after` / `ending_before`, parsed with `parse`.
pub fn page_params<Id>(
    limit: Option<u32>,
    starting_after: Option<&str>,
    ending_before: Option<&str>,
    parse: impl Fn(&str) -> Option<Id>,
) -> Result<(usize, Page<Id>), ApiError> {
    let limit = usize::try_from(super::list::limit(limit.map(i64::from))?).unwrap_or(10);
    let cursor = |param: &str, raw: &str| {
        parse(raw).ok_or_else(|| {
            ApiError::invalid_param(param.to_owned(), format!("Invalid {param}: '{raw}'."))
        })
    };
    let page = match (starting_after, ending_before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "ending_before",
                "Pass at most one of starting_after and ending_before.",
            ));
        }
        (Some(raw), None) => Page::After(cursor("starting_after", raw)?),
        (None, Some(raw)) => Page::Before(cursor("ending_before", raw)?),
        (None, None) => Page::First,
    };
    Ok((limit, page))
}

fn parse_event_id(raw: &str) -> Result<EventId, ApiError> {
    EventId::parse(raw).map_err(|_| ApiError::not_found("event", raw))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    starting_after: Option<String>,
    ending_before: Option<String>,
    /// One type, `payment.*`, or `*`.
    #[serde(rename = "type")]
    event_type: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let (limit, page) = page_params(
        params.limit,
        params.starting_after.as_deref(),
        params.ending_before.as_deref(),
        |s| EventId::parse(s).ok(),
    )?;
    let types = params
        .event_type
        .as_deref()
        .map(|filter| {
            EventType::matching(filter).ok_or_else(|| {
                ApiError::invalid_param(
                    "type",
                    format!("Unknown event type filter `{filter}`: use a type such as payment.succeeded, a prefix such as payment.*, or *."),
                )
            })
        })
        .transpose()?;
    let listed = EventStore::new(state.pool.clone())
        .list(&caller.merchant_id, types.as_deref(), limit, page)
        .await?;
    let mode = state.config.mode;
    let data: Vec<EventObject<'_>> = listed.data.iter().map(|e| e.to_object(mode)).collect();
    Ok(axum::Json(List::new("/v1/events", data, listed.has_more)).into_response())
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_event_id(&id)?;
    let event = EventStore::new(state.pool.clone())
        .get(&caller.merchant_id, &id)
        .await?;
    Ok(axum::Json(event.to_object(state.config.mode)).into_response())
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
struct DeliveryObject {
    id: String,
    object: &'static str,
    event: String,
    endpoint: String,
    status: crate::webhooks::deliveries::DeliveryStatus,
    attempt_count: i32,
    next_attempt: Option<i64>,
    created: i64,
    completed: Option<i64>,
    attempts: Vec<AttemptObject>,
    livemode: bool,
}

#[derive(Debug, Serialize)]
struct AttemptObject {
    attempt: i32,
    status_code: Option<i16>,
    succeeded: bool,
    duration_ms: i32,
    error: Option<String>,
    response_body: Option<String>,
    created: i64,
}

fn delivery_object(d: Delivery, mode: Mode) -> DeliveryObject {
    DeliveryObject {
        id: d.id.to_string(),
        object: "webhook_delivery",
        event: d.event_id.to_string(),
        endpoint: d.endpoint_id.to_string(),
        status: d.status,
        attempt_count: d.attempt_count,
        next_attempt: d.next_attempt_at.map(unix),
        created: unix(d.created_at),
        completed: d.completed_at.map(unix),
        attempts: d
            .attempts
            .into_iter()
            .map(|a| AttemptObject {
                attempt: a.attempt,
                status_code: a.status_code,
                succeeded: a.succeeded,
                duration_ms: a.duration_ms,
                error: a.error,
                response_body: a.response_body,
                created: unix(a.created_at),
            })
            .collect(),
        livemode: mode == Mode::Live,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesParams {
    limit: Option<u32>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn deliveries(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Query(params): Query<DeliveriesParams>,
) -> Result<axum::Json<List<DeliveryObject>>, ApiError> {
    let id = parse_event_id(&id)?;
    let (limit, page) = page_params(
        params.limit,
        params.starting_after.as_deref(),
        params.ending_before.as_deref(),
        |s| WebhookDeliveryId::parse(s).ok(),
    )?;
    let listed = DeliveryStore::new(state.pool.clone())
        .list_for_event(&caller.merchant_id, &id, limit, page)
        .await?;
    let mode = state.config.mode;
    let data = listed
        .data
        .into_iter()
        .map(|d| delivery_object(d, mode))
        .collect();
    Ok(axum::Json(List::new(
        format!("/v1/events/{id}/deliveries"),
        data,
        listed.has_more,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverParams {
    /// Only to this endpoint (`we_…`); default: every subscribed endpoint.
    endpoint: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn redeliver(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(params): Json<RedeliverParams>,
) -> Result<axum::Json<List<DeliveryObject>>, ApiError> {
    let id = parse_event_id(&id)?;
    let endpoint = params
        .endpoint
        .as_deref()
        .map(|raw| {
            WebhookEndpointId::parse(raw).map_err(|_| {
                ApiError::invalid_param("endpoint", format!("No such webhook_endpoint: '{raw}'"))
            })
        })
        .transpose()?;
    let enqueued = DeliveryStore::new(state.pool.clone())
        .redeliver(&caller.merchant_id, &id, endpoint.as_ref())
        .await?;
    let mode = state.config.mode;
    let data = enqueued
        .into_iter()
        .map(|d| delivery_object(d, mode))
        .collect();
    Ok(axum::Json(List::new(
        format!("/v1/events/{id}/redeliver"),
        data,
        false,
    )))
}
