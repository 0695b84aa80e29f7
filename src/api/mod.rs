//! The HTTP API (docs/api.md), on axum.
//!
//! Each resource module exposes `router()`; this module merges them and
//! stacks the middleware: request id and metrics outermost, then
//! authentication, rate limiting, the route's accepted kinds of key and
//! idempotency for `/v1`. Handlers call
//! the subsystems; they hold no SQL.

pub mod account;
pub mod auth;
pub mod balance;
pub mod checkout;
pub mod checkout_i18n;
pub mod client_ip;
pub mod disputes;
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod list;
pub mod observe;
pub mod openapi;
pub mod payments;
pub mod rate_limit;
pub mod reconciliation;
pub mod refunds;
pub mod settlements;
pub mod stream;
pub mod stream_slots;
pub mod test_helpers;
pub mod transparency;
pub mod webhook_endpoints;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;
pub use extract::{Json, NoParams, Query};

use crate::config::Config;
use crate::db::Db;
use crate::idempotency::IdempotencyStore;
use crate::merchants::MerchantStore;
use crate::telemetry::metrics::Metrics;

/// What every handler can reach. Cloning it is one reference count: axum
/// clones the state for every extractor and middleware of every request,
/// and a profile of the card path found the clones and drops of its
/// fields (each an atomic count) at about 4% of the node's CPU.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state of a node's API.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database pool, for subsystems built per request.
    pub pool: Db,
    /// Merchants and keys.
    pub merchants: MerchantStore,
    /// Saved idempotent responses.
    pub idempotency: IdempotencyStore,
    /// The master keys; subsystems take the subkey of their purpose.
    pub keys: crate::crypto::Keyring,
    /// Per-key request budgets.
    pub rate_limiter: Arc<rate_limit::RateLimiter>,
    /// Prometheus series.
    pub metrics: Arc<Metrics>,
    /// Payments, refunds and disputes.
    pub payments: crate::payments::Payments,
    /// The transparency log and its anchor, when settlement is configured.
    pub settlement: Option<Arc<SettlementContext>>,
    /// Committed events and enqueued deliveries, as this node hears them
    /// (live streams and the webhook worker wait on it).
    pub events: crate::events::Bus,
    /// What each chain watcher is doing (`/readyz` reports it per chain).
    pub chains: Arc<crate::chain::watcher::ChainStatus>,
    /// A small pool of its own for the public routes, so strangers'
    /// reads never wait on (or starve) merchant traffic.
    pub public_pool: Db,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<crate::server::TrustedProxies>,
    /// Per-address budgets of the public routes.
    pub public_limiter: Arc<rate_limit::RateLimiter<std::net::IpAddr>>,
    /// Per-address budgets of failed authentications.
    pub auth_failures: Arc<rate_limit::FailedAuthLimiter>,
    /// Open live event streams, capped.
    pub streams: Arc<stream_slots::StreamSlots>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// What settlement needs: the log (its origin is the anchor's) and the
/// anchorer that puts checkpoints on-chain.
#[derive(Debug)]
pub struct SettlementContext {
    /// The transparency log.
    pub log: crate::transparency::TransparencyLog,
    /// Sends checkpoints to the SettlementAnchor; `None` when its key is
    /// missing (batches then wait for a node that has it).
    pub anchorer: Option<crate::transparency::anchor::Anchorer>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let mut resources = Router::new()
        .merge(account::router())
        .merge(balance::router())
        .merge(payments::router())
        .merge(refunds::router())
        .merge(disputes::router())
        .merge(settlements::router());
    // The sandbox helpers do not exist in live mode, not even as a 403.
    if state.config.mode == crate::config::Mode::Test {
        resources = resources.merge(test_helpers::router());
    }
    // The group a route is in states which keys it accepts; that is checked
    // before idempotency, so a refused key never claims an idempotency key.
    let secret_key_only = resources
        .merge(events::router())
        .merge(webhook_endpoints::router())
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotency))
        .route_layer(from_fn_with_state(auth::Accepts::SecretKey, auth::accepts));
    let any_key = payments::checkout_router()
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotency))
        .route_layer(from_fn_with_state(auth::Accepts::AnyKey, auth::accepts));
    let authenticated = secret_key_only
        .merge(any_key)
        .route_layer(from_fn_with_state(state.clone(), rate_limit::limit))
        .route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    // Anyone may call these, so each client address has a budget.
    let public = Router::new()
        .merge(docs::router())
        .merge(checkout::router())
        .merge(stream::router())
        .merge(transparency::router());
    let public = if state.config.mode == crate::config::Mode::Test {
        public.merge(test_helpers::sandbox_router())
    } else {
        public
    };
    let public = public
        .route_layer(from_fn_with_state(state.clone(), rate_limit::limit_public))
        .merge(health::router())
        // The desk authenticates the operator token or a secret key itself.
        .merge(reconciliation::router())
        // The dashboard authenticates its session cookie itself and limits
        // sign-in attempts per user and per address (src/dashboard).
        .merge(crate::dashboard::web::router());
    let body_limit = state.config.server.body_limit_bytes;
    Router::new()
        .merge(authenticated)
        .merge(public)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(normalize_errors))
        .layer(from_fn_with_state(state.clone(), client_ip::resolve))
        .layer(from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

async fn fallback(method: Method, req: Request) -> ApiError {
    ApiError::no_route(method.as_str(), req.uri().path())
}

async fn method_not_allowed(method: Method, req: Request) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), req.uri().path())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(&"a request handler panicked").into_response()
}

/// Rewrites the few plain-text rejections axum produces on its own (e.g. a
/// path parameter of the wrong shape) into the API's error object.
async fn normalize_errors(req: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    // Dashboard pages render their own error pages (text/html) for people.
    let is_rendered = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    let status = response.status();
    if is_rendered || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).into_owned();
    match status.as_u16() {
        413 => ApiError::payload_too_large().into_response(),
        400..=499 => {
            let mut err = ApiError::bad_request("invalid_request", message);
            err.status = status;
            err.into_response()
        }
        _ => ApiError::internal(&message).into_response(),
    }
}

/// Seconds since the Unix epoch, as the API shows times.
pub fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}
