//! Bearer authentication, the check of which kinds of key a route accepts,
//! and the extractors handlers take the caller from.
//!
//! The kinds a route accepts are stated where the routes are grouped
//! (`api/mod.rs`) and checked by [`accepts`] between authentication and
//! idempotency: a publishable key on a secret-key route is refused before it
//! can claim, or replay, an idempotency key of the merchant.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::merchants::{ApiKey, Caller, KeyKind};

/// Middleware: resolves `Authorization: Bearer <key>` into a [`Caller`] in
/// the request extensions, or answers 401.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = super::client_ip::of(&req);
    if let Err(retry_after) = refused_for_failures(&state, ip) {
        return retry_after.into_response();
    }
    match resolve(&state, req.headers().get(header::AUTHORIZATION)).await {
        Ok(caller) => {
            tracing::Span::current().record("merchant", caller.merchant_id.as_str());
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(err) => {
            count_failure(&state, ip, &err);
            err.into_response()
        }
    }
}

/// A client address that sent too many bad keys lately is refused before
/// its key is even looked at: guessing keys costs the guesser time, not
/// the node database work.
pub(super) fn refused_for_failures(state: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    state
        .auth_failures
        .peek(&ip, std::time::Instant::now())
        .map_err(|retry_after| {
            state.metrics.add("auth_failures_refused", 1);
            ApiError::too_many(
                "too_many_failed_authentications",
                "Too many requests with invalid credentials from this address; wait and retry with a valid key.",
                retry_after,
            )
        })
}

/// Spends one of `ip`'s failure budget when `err` is an authentication failure.
pub(super) fn count_failure(state: &AppState, ip: std::net::IpAddr, err: &ApiError) {
    if err.status == axum::http::StatusCode::UNAUTHORIZED {
        state.metrics.add("auth_failures", 1);
        let _ = state.auth_failures.check(&ip, std::time::Instant::now());
    }
}

/// The caller behind an `Authorization: Bearer <key>` header, or the 401
/// that explains what is wrong with it.
pub(super) async fn resolve(
    state: &AppState,
    header: Option<&axum::http::HeaderValue>,
) -> Result<Caller, ApiError> {
    let Some(value) = header else {
        return Err(ApiError::unauthenticated(
            "api_key_missing",
            "No API key provided. Send it as `Authorization: Bearer sk_test_…`.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "api_key_malformed",
                "The Authorization header must be `Bearer <key>`.",
            )
        })?;
    let invalid = || {
        ApiError::unauthenticated(
            "api_key_invalid",
            "Invalid API key provided (unknown, revoked, or for the other mode).",
        )
    };
    if let Some(payment) = client_secret_payment(token) {
        return client_secret_caller(state, payment, token)
            .await?
            .ok_or_else(invalid);
    }
    let key = ApiKey::parse(token).ok_or_else(invalid)?;
    state
        .merchants
        .authenticate(&key, state.config.mode)
        .await?
        .ok_or_else(invalid)
}

/// The payment id of a token shaped like a client secret
/// (`pay_…_secret_…`).
fn client_secret_payment(token: &str) -> Option<&str> {
    let (payment, _) = token.split_once("_secret_")?;
    crate::ids::PaymentId::parse(payment).ok().map(|_| payment)
}

/// A payment's client secret used as the bearer token: what a hosted
/// checkout opened from `checkout_url` sends, as it holds no publishable
/// key (keys are stored hashed, so the node cannot put one in the link).
/// It acts as a publishable key of the payment's merchant: the checkout
/// routes still ask for the client secret of the payment they touch, and
/// secret-key routes refuse it. Its requests share a rate-limit bucket per
/// payment.
async fn client_secret_caller(
    state: &AppState,
    payment: &str,
    token: &str,
) -> Result<Option<Caller>, ApiError> {
    let merchant = super::stream::authorize_client_secret(&state.pool, payment, token)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let bucket = crate::ids::ApiKeyId::parse(&format!("key_{}", &payment[4..]))
        .map_err(|e| ApiError::internal(&e))?;
    Ok(merchant.map(|merchant_id| Caller {
        merchant_id,
        key_id: bucket,
        kind: KeyKind::Publishable,
        enabled_methods: None,
    }))
}

/// Which kinds of key a group of routes accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Secret keys only: everything but the browser checkout's calls.
    SecretKey,
    /// Secret or publishable: the few calls a browser checkout makes (their
    /// handlers then ask a publishable key for the payment's client secret).
    AnyKey,
}

/// Middleware: refuses a caller whose kind of key the route does not
/// accept. Runs after [`authenticate`], before idempotency.
pub async fn accepts(State(accepts): State<Accepts>, req: Request, next: Next) -> Response {
    let kind = req.extensions().get::<Caller>().map(|caller| caller.kind);
    match (accepts, kind) {
        (_, None) => missing_caller().into_response(),
        (Accepts::SecretKey, Some(KeyKind::Publishable)) => secret_key_required().into_response(),
        (Accepts::SecretKey, Some(KeyKind::Secret)) | (Accepts::AnyKey, Some(_)) => {
            next.run(req).await
        }
    }
}

fn secret_key_required() -> ApiError {
    ApiError::forbidden(
        "secret_key_required",
        "This request needs a secret key (sk_…); publishable keys may only read and confirm a payment.",
    )
}

fn missing_caller() -> ApiError {
    // Routes behind `authenticate` always have a caller; reaching here
    // without one is a routing bug, answered as a plain 401.
    ApiError::unauthenticated("api_key_missing", "This endpoint needs an API key.")
}

/// Any valid key, secret or publishable. For the routes of an
/// [`Accepts::AnyKey`] group.
#[derive(Debug, Clone)]
pub struct AnyKey(pub Caller);

/// A secret key: everything else (already checked by [`accepts`]; checked
/// again here so a route put in the wrong group still refuses).
#[derive(Debug, Clone)]
pub struct SecretKey(pub Caller);

fn caller(parts: &Parts) -> Result<Caller, ApiError> {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(missing_caller)
}

impl<S: Send + Sync> FromRequestParts<S> for AnyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        caller(parts).map(AnyKey)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SecretKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let caller = caller(parts)?;
        if caller.kind != KeyKind::Secret {
            return Err(secret_key_required());
        }
        Ok(SecretKey(caller))
    }
}
