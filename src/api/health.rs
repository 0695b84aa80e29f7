//! Operations endpoints: `/healthz`, `/readyz`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::AppState;

/// Routes of this resource (no key needed).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and answering.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready to serve: the database answers and every configured chain's
/// watcher is in contact with its chain (`checks.chains.<chain_id>`:
/// `healthy`, `lagging` — both ready — or `starting` / `unreachable`).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match crate::db::ping(&state.pool).await {
        Ok(_) => json!({ "status": "ok" }),
        Err(e) => json!({ "status": "down", "error": e.to_string() }),
    };
    let chains: serde_json::Map<String, serde_json::Value> = state
        .chains
        .snapshot()
        .into_iter()
        .map(|(id, health)| (id.to_string(), json!(health)))
        .collect();
    let ready = database["status"] == "ok" && state.chains.all_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": { "database": database, "chains": chains },
        })),
    )
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
