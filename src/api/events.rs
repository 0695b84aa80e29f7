//! `/v1/events`: the merchant's events, their webhook deliveries, and
//! redelivery.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// A `list` of `Event` objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList<'a> {
    /// `object`, `url` and `has_more`.
    #[serde(flatten)]
    pub list: super::list::ListHead,
    /// The page, newest first.
    pub data: Vec<EventObject<'a>>,
}

crate::list_of!(
    /// A `list` of `WebhookDelivery` objects.
    pub(crate) WebhookDeliveryList,
    DeliveryObject
);

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
    // An empty cursor is no cursor, as in every list.
    let starting_after = starting_after.filter(|c| !c.is_empty());
    let ending_before = ending_before.filter(|c| !c.is_empty());
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<u32>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(evt_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(evt_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
    /// Only events of this type (`payment.succeeded`), of a prefix (`payment.*`), or all (`*`). Empty means all.
    #[serde(rename = "type")]
    #[param(schema_with = type_filter)]
    event_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "listEvents",
    tag = "Events",
    summary = "List events",
    description = "The merchant's events, newest first.",
    security(("secretKey" = [])),
    params(
        ListParams,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = EventList<'static>),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
        .filter(|filter| !filter.is_empty())
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
    Ok(axum::Json(EventList {
        list: super::list::ListHead::new("/v1/events", listed.has_more),
        data,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "retrieveEvent",
    tag = "Events",
    summary = "Retrieve an event",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The event's id (`evt_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = EventObject<'static>),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

/// What `type` may be: a type, a prefix of types (`payment.*`), `*`, or
/// empty, from the types the node knows.
fn type_filter() -> utoipa::openapi::Object {
    let mut filters: Vec<String> = vec![String::new(), "*".to_owned()];
    for t in EventType::ALL {
        let name = t.to_string();
        let prefix = format!("{}.*", name.split('.').next().unwrap_or(&name));
        if !filters.contains(&prefix) {
            filters.push(prefix);
        }
        filters.push(name);
    }
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(filters))
        .build()
}

/// One event's delivery to one endpoint, with its attempts. Retried with exponential backoff for at least 3 days on non-2xx or timeout.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub(crate) struct DeliveryObject {
    /// `whd_` and 24 letters or digits.
    #[schema(pattern = "^whd_[A-Za-z0-9]{24}$")]
    id: String,
    #[schema(schema_with = delivery_object_name)]
    object: &'static str,
    /// The event's id (`evt_` and 24 letters or digits).
    #[schema(pattern = "^evt_[A-Za-z0-9]{24}$")]
    event: String,
    /// The webhook endpoint's id (`we_` and 24 letters or digits).
    #[schema(pattern = "^we_[A-Za-z0-9]{24}$")]
    endpoint: String,
    status: crate::webhooks::deliveries::DeliveryStatus,
    #[schema(minimum = 0)]
    attempt_count: i32,
    /// While pending: when the next attempt is due (Unix seconds).
    #[schema(required = true)]
    next_attempt: Option<i64>,
    /// Unix seconds.
    created: i64,
    /// When it stopped being pending (Unix seconds).
    #[schema(required = true)]
    completed: Option<i64>,
    attempts: Vec<AttemptObject>,
    livemode: bool,
}

crate::object_name_schema!(delivery_object_name, "webhook_delivery");

/// One POST of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
struct AttemptObject {
    #[schema(minimum = 1)]
    attempt: i32,
    /// The receiver's HTTP status, if a response came back.
    #[schema(required = true)]
    status_code: Option<i16>,
    succeeded: bool,
    #[schema(minimum = 0)]
    duration_ms: i32,
    /// Why the attempt failed without a response (timeout, connection refused, …).
    #[schema(required = true)]
    error: Option<String>,
    /// The start of the receiver's response body.
    #[schema(required = true)]
    response_body: Option<String>,
    /// Unix seconds.
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesParams {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<u32>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(whd_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(whd_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}/deliveries",
    operation_id = "listEventDeliveries",
    tag = "Events",
    summary = "List an event's webhook deliveries",
    description = "Every delivery of the event to an endpoint, with its attempts.",
    security(("secretKey" = [])),
    params(
        DeliveriesParams,
        ("id" = String, Path, description = "The event's id (`evt_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = WebhookDeliveryList),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn deliveries(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Query(params): Query<DeliveriesParams>,
) -> Result<axum::Json<WebhookDeliveryList>, ApiError> {
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
    Ok(axum::Json(WebhookDeliveryList::new(
        format!("/v1/events/{id}/deliveries"),
        data,
        listed.has_more,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EventRedeliverParams)]
struct RedeliverParams {
    /// The webhook endpoint to redeliver to (default: every enabled endpoint subscribed to the event's type)'s id (`we_` and 24 letters or digits).
    #[schema(pattern = "^we_[A-Za-z0-9]{24}$")]
    endpoint: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/events/{id}/redeliver",
    operation_id = "redeliverEvent",
    tag = "Events",
    summary = "Redeliver an event",
    description = "Enqueues the event again for every enabled endpoint subscribed to its type, or only for `endpoint`. A delivery still waiting for its next retry is made due now rather than doubled; one whose attempt is under way is answered as it is. Answers the deliveries enqueued, made due or under way (`has_more` is false).",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The event's id (`evt_…`)."),
    ),
    request_body(content = Option<RedeliverParams>, example = json!({"endpoint": "we_4eC39HqLyjWDarjtT1zdp7dc"})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = WebhookDeliveryList, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn redeliver(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(params): Json<RedeliverParams>,
) -> Result<axum::Json<WebhookDeliveryList>, ApiError> {
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
    Ok(axum::Json(WebhookDeliveryList::new(
        format!("/v1/events/{id}/redeliver"),
        data,
        false,
    )))
}
