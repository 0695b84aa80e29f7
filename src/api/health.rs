//! Operations endpoints: `/healthz`, `/readyz`, `/metrics`.
//!
//! Liveness and readiness answer anyone (load balancers probe them), but
//! what the node is connected to and its counters are the operator's:
//! the details of `/readyz` and all of `/metrics` need the operator token
//! (`EPG_OPERATOR_TOKEN`) as `Authorization: Bearer …`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::client_ip::ClientIp;
use super::error::ApiError;

/// Routes of this resource (no key needed).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "Operations",
    summary = "Liveness",
    description = "The process is up and answering.",
    responses(
        (status = 200, description = "Up.", content_type = "application/json", body = Health),
    )
)]
async fn healthz() -> impl IntoResponse {
    axum::Json(Health { status: "ok" })
}

/// Liveness: the process answers.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    #[schema(schema_with = health_ok)]
    status: &'static str,
}

crate::object_name_schema!(health_ok, "ok");

/// Readiness. Anyone gets `status` (and the status code); the `checks`
/// need the operator token (`EPG_OPERATOR_TOKEN`) as
/// `Authorization: Bearer …`.
#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    /// Whether the node serves.
    status: Verdict,
    /// What was checked (operator token only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    checks: Option<Checks>,
}

/// Whether a node is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ReadinessStatus)]
enum Verdict {
    /// The database, and every configured chain, answer.
    Ready,
    /// A dependency is down.
    NotReady,
}

/// The dependencies of a node, checked.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReadinessChecks)]
struct Checks {
    /// The database.
    database: DatabaseCheck,
    /// Per configured chain id: its watcher's health.
    chains: BTreeMap<String, crate::chain::watcher::status::ChainHealth>,
}

/// Whether the database answers.
#[derive(Debug, Serialize, ToSchema)]
struct DatabaseCheck {
    /// `ok` or `down`.
    status: DatabaseStatus,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<String>,
}

/// Whether a dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum DatabaseStatus {
    /// It answers.
    Ok,
    /// It does not.
    Down,
}

/// Ready to serve: the database answers and every configured chain's
/// watcher is in contact with its chain (`checks.chains.<chain_id>`:
/// `healthy`, `lagging` — both ready — or `starting` / `unreachable`).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "Operations",
    summary = "Readiness",
    description = "Ready to serve: the database (and every configured chain) answers. The status code is for everyone (load balancers); the `checks` are shown only to a request carrying the operator token (`EPG_OPERATOR_TOKEN`) as `Authorization: Bearer …`; a wrong token gets the short answer.",
    responses(
        (status = 200, description = "Ready.", content_type = "application/json", body = Readiness),
        (status = 503, description = "Not ready: a dependency is down (see `checks`).", content_type = "application/json", body = Readiness),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
async fn readyz(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let operator = operator(&state, ip, &headers).is_ok();
    let database = match crate::db::ping(&state.pool).await {
        Ok(_) => DatabaseCheck {
            status: DatabaseStatus::Ok,
            error: None,
        },
        Err(e) => DatabaseCheck {
            status: DatabaseStatus::Down,
            error: Some(e.to_string()),
        },
    };
    let ready = database.status == DatabaseStatus::Ok && state.chains.all_ready();
    let (status, verdict) = if ready {
        (StatusCode::OK, Verdict::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Verdict::NotReady)
    };
    let checks = operator.then(|| Checks {
        database,
        chains: state
            .chains
            .snapshot()
            .into_iter()
            .map(|(id, health)| (id.to_string(), health))
            .collect(),
    });
    (
        status,
        axum::Json(Readiness {
            status: verdict,
            checks,
        }),
    )
        .into_response()
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "Operations",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition format. Needs the operator token (`EPG_OPERATOR_TOKEN`) as `Authorization: Bearer …`: 401 without it, 403 when the node has none configured.",
    security(("operatorToken" = [])),
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain", body = String),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
    )
)]
async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Err(err) = operator(&state, ip, &headers) {
        return err.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Whether the request carries the operator token.
fn operator(state: &AppState, ip: std::net::IpAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.security.operator_token.as_deref() else {
        return Err(ApiError::forbidden(
            "operator_token_unset",
            "This node has no operator token: set EPG_OPERATOR_TOKEN to read its metrics.",
        ));
    };
    super::auth::refused_for_failures(state, ip)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if crate::crypto::constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            Ok(())
        }
        _ => {
            let err = ApiError::unauthenticated(
                "operator_token_invalid",
                "Send the operator token as `Authorization: Bearer …`.",
            );
            super::auth::count_failure(state, ip, &err);
            Err(err)
        }
    }
}
