//! `/v1/webhook_endpoints`: where a merchant's events are POSTed.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::auth::SecretKey;
use super::error::ApiError;
use super::events::{List, page_params};
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

/// An endpoint as the API shows it.
#[derive(Debug, Serialize)]
struct EndpointObject {
    id: String,
    object: &'static str,
    url: String,
    enabled_events: Vec<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    /// `enabled` or `disabled`.
    status: crate::webhooks::endpoints::EndpointStatus,
    livemode: bool,
    created: i64,
    /// Only in the response that creates the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    url: String,
    enabled_events: Vec<String>,
    description: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<EndpointObject>>, ApiError> {
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
    Ok(axum::Json(List::new(
        "/v1/webhook_endpoints",
        data,
        listed.has_more,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateParams {
    url: Option<String>,
    enabled_events: Option<Vec<String>>,
    /// An empty string removes it.
    description: Option<String>,
    /// Merged; a key set to "" is removed.
    metadata: Option<BTreeMap<String, String>>,
    /// Stop (true) or resume (false) deliveries.
    disabled: Option<bool>,
}

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

#[derive(Debug, Serialize)]
struct Deleted {
    id: String,
    object: &'static str,
    deleted: bool,
}

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
