//! `/v1/webhook_endpoints`: where a merchant's events are POSTed.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::SecretKey;
use super::error::ApiError;
use super::events::page_params;
use super::{AppState, Json, Query, unix};
use crate::config::Mode;
use crate::ids::WebhookEndpointId;
use crate::webhooks::{
    Endpoint, EndpointChanges, EndpointStore, NewEndpoint, UrlPolicy, WebhookError,
};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook_endpoints", get(list).post(create))
        .route(
            "/v1/webhook_endpoints/{id}",
            get(retrieve).post(update).delete(delete),
        )
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotFound { what, id } => ApiError::not_found(what, &id),
            WebhookError::Invalid { param, message } => ApiError::invalid_param(param, message),
            e @ (WebhookError::Sealing(_) | WebhookError::Key(_)) => ApiError::internal_error(&e),
            WebhookError::Database(e) => ApiError::from(e),
        }
    }
}

fn store(state: &AppState) -> EndpointStore {
    EndpointStore::new(
        state.pool.clone(),
        state.keys.sealer(crate::crypto::Purpose::WebhookSecrets),
        UrlPolicy::new(state.config.server.dev),
    )
}

fn parse_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(raw).map_err(|_| ApiError::not_found("webhook_endpoint", raw))
}

/// Where events are POSTed, signed with `Epg-Signature`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookEndpoint)]
pub(crate) struct EndpointObject {
    /// The webhook endpoint's id (`we_` and 24 letters or digits).
    #[schema(pattern = "^we_[A-Za-z0-9]{24}$")]
    id: String,
    #[schema(schema_with = endpoint_object_name)]
    object: &'static str,
    /// Where events are POSTed.
    #[schema(max_length = 2048)]
    url: String,
    /// Event types sent to it; `["*"]` for all.
    #[schema(schema_with = enabled_events)]
    enabled_events: Vec<String>,
    #[schema(required = true)]
    description: Option<String>,
    #[schema(schema_with = crate::api::openapi::metadata_schema)]
    metadata: BTreeMap<String, String>,
    /// Deliveries stop while `disabled`.
    status: crate::webhooks::endpoints::EndpointStatus,
    livemode: bool,
    /// Unix seconds.
    created: i64,
    /// The signing secret (`whsec_…`): only in the response that creates the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_", nullable = false)]
    secret: Option<String>,
}

crate::object_name_schema!(endpoint_object_name, "webhook_endpoint");

crate::list_of!(
    /// A `list` of `WebhookEndpoint` objects.
    pub(crate) WebhookEndpointList,
    EndpointObject
);

fn object(e: Endpoint, mode: Mode, secret: Option<String>) -> EndpointObject {
    EndpointObject {
        id: e.id.to_string(),
        object: "webhook_endpoint",
        url: e.url,
        enabled_events: e.enabled_events,
        description: e.description,
        metadata: e.metadata,
        status: e.status,
        livemode: mode == Mode::Live,
        created: unix(e.created_at),
        secret,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointCreateParams)]
struct CreateParams {
    /// HTTPS URL the events are POSTed to (plain http and loopback hosts only on a node in dev mode).
    #[schema(max_length = 2048)]
    url: String,
    /// Event types to send; `["*"]` for all.
    #[schema(schema_with = enabled_events_param)]
    enabled_events: Vec<String>,
    #[schema(max_length = 5000)]
    description: Option<String>,
    #[schema(schema_with = super::openapi::metadata_schema_nullable)]
    metadata: Option<BTreeMap<String, String>>,
}

/// Event types, or `["*"]` for all of them.
fn enabled_events() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
    let all = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["*"]));
    ArrayBuilder::new()
        .items(
            AnyOfBuilder::new()
                .item(utoipa::openapi::Ref::from_schema_name("EventType"))
                .item(all),
        )
        .build()
}

/// The same, optional in an update (`null` is as absent).
fn enabled_events_param_nullable() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Null))
        .item(enabled_events_param())
        .build()
        .into()
}

/// The same, in a request: at least one.
fn enabled_events_param() -> utoipa::openapi::schema::Array {
    let mut events = enabled_events();
    events.min_items = Some(1);
    events
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints",
    operation_id = "createWebhookEndpoint",
    tag = "Webhook endpoints",
    summary = "Create a webhook endpoint",
    description = r#"Returns the endpoint with its signing `secret` (`whsec_…`), this once only. Each delivery is a POST of the event JSON with `Epg-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."#,
    security(("secretKey" = [])),
    request_body(content = CreateParams, example = json!({"url": "https://shop.example.com/epg/webhooks", "enabled_events": ["payment.succeeded", "refund.succeeded"]})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = EndpointObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Json(params): Json<CreateParams>,
) -> Result<axum::Json<EndpointObject>, ApiError> {
    let created = store(&state)
        .create(
            &caller.merchant_id,
            NewEndpoint {
                url: params.url,
                enabled_events: params.enabled_events,
                description: params.description,
                metadata: params.metadata.unwrap_or_default(),
            },
        )
        .await?;
    Ok(axum::Json(object(
        created.endpoint,
        state.config.mode,
        Some(created.secret),
    )))
}

#[utoipa::path(
    get,
    path = "/v1/webhook_endpoints/{id}",
    operation_id = "retrieveWebhookEndpoint",
    tag = "Webhook endpoints",
    summary = "Retrieve a webhook endpoint",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`we_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = EndpointObject),
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
) -> Result<axum::Json<EndpointObject>, ApiError> {
    let id = parse_id(&id)?;
    let endpoint = store(&state).get(&caller.merchant_id, &id).await?;
    Ok(axum::Json(object(endpoint, state.config.mode, None)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10, value_type = Option<i64>)]
    limit: Option<u32>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(we_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(we_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/webhook_endpoints",
    operation_id = "listWebhookEndpoints",
    tag = "Webhook endpoints",
    summary = "List webhook endpoints",
    security(("secretKey" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = WebhookEndpointList),
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
) -> Result<axum::Json<WebhookEndpointList>, ApiError> {
    let (limit, page) = page_params(
        params.limit,
        params.starting_after.as_deref(),
        params.ending_before.as_deref(),
        |s| WebhookEndpointId::parse(s).ok(),
    )?;
    let listed = store(&state).list(&caller.merchant_id, limit, page).await?;
    let mode = state.config.mode;
    let data = listed
        .data
        .into_iter()
        .map(|e| object(e, mode, None))
        .collect();
    Ok(axum::Json(WebhookEndpointList::new(
        "/v1/webhook_endpoints",
        data,
        listed.has_more,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEndpointUpdateParams)]
struct UpdateParams {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(schema_with = enabled_events_param_nullable)]
    enabled_events: Option<Vec<String>>,
    /// An empty string removes it.
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// Merged into the endpoint's; a key set to `""` is removed.
    #[schema(schema_with = super::openapi::metadata_schema_nullable)]
    metadata: Option<BTreeMap<String, String>>,
    /// `true` stops deliveries, `false` resumes them.
    disabled: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints/{id}",
    operation_id = "updateWebhookEndpoint",
    tag = "Webhook endpoints",
    summary = "Update a webhook endpoint",
    description = "Absent fields are kept.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`we_…`)."),
    ),
    request_body(content = Option<UpdateParams>, example = json!({"enabled_events": ["*"], "disabled": false})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = EndpointObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
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
async fn update(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
    Json(params): Json<UpdateParams>,
) -> Result<axum::Json<EndpointObject>, ApiError> {
    let id = parse_id(&id)?;
    let endpoint = store(&state)
        .update(
            &caller.merchant_id,
            &id,
            EndpointChanges {
                url: params.url,
                enabled_events: params.enabled_events,
                description: params.description,
                metadata: params.metadata,
                disabled: params.disabled,
            },
        )
        .await?;
    Ok(axum::Json(object(endpoint, state.config.mode, None)))
}

/// What `DELETE` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DeletedWebhookEndpoint)]
struct Deleted {
    /// The webhook endpoint's id (`we_` and 24 letters or digits).
    #[schema(pattern = "^we_[A-Za-z0-9]{24}$")]
    id: String,
    #[schema(schema_with = endpoint_object_name)]
    object: &'static str,
    #[schema(schema_with = deleted_true)]
    deleted: bool,
}

fn deleted_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

#[utoipa::path(
    delete,
    path = "/v1/webhook_endpoints/{id}",
    operation_id = "deleteWebhookEndpoint",
    tag = "Webhook endpoints",
    summary = "Delete a webhook endpoint",
    description = "Stops its deliveries; pending ones are canceled.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id (`we_…`)."),
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = Deleted),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Path(id): Path<String>,
) -> Result<axum::Json<Deleted>, ApiError> {
    let id = parse_id(&id)?;
    store(&state).delete(&caller.merchant_id, &id).await?;
    Ok(axum::Json(Deleted {
        id: id.to_string(),
        object: "webhook_endpoint",
        deleted: true,
    }))
}
