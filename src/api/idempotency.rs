//! Middleware applying `Idempotency-Key` to every POST (see
//! [`crate::idempotency`] for the rules and the storage). It runs after
//! authentication and after the route's check of the key kind
//! ([`super::auth::accepts`]), so a key refused on a route never claims an
//! idempotency key.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use crate::idempotency::{Claim, IdempotencyStore, is_saved};
use crate::merchants::Caller;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of a saved one.
pub const REPLAYED: &str = "idempotent-replayed";

/// Middleware: runs after authentication (the key is per merchant).
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match run(state, req, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(state: AppState, req: Request, next: Next) -> Result<Response, Response> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::invalid_param(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            )
            .into_response()
        })?;
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return Ok(next.run(req).await);
    };
    let (parts, body) = req.into_parts();
    let limit = state.config.server.body_limit_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::payload_too_large().into_response())?;
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let store = &state.idempotency;
    let (claim, until) = store
        .claim_leased(&caller, &key, &method, &path, &bytes)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match claim {
        Claim::Run => {}
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(response);
        }
        Claim::Mismatch => {
            return Err(ApiError::idempotency(format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. The key '{key}' was used for another request."
            ))
            .with_param("Idempotency-Key")
            .into_response());
        }
        Claim::InProgress => return Err(ApiError::idempotency_in_progress().into_response()),
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    // Responses of this API are small JSON documents; the cap only guards
    // against a bug streaming something huge into the table.
    let body = match to_bytes(body, 16 * 1024 * 1024).await {
        Ok(body) => body,
        Err(e) => {
            let _ = store.release(&caller, &key).await;
            return Err(ApiError::internal_error(&e).into_response());
        }
    };
    let status = parts.status.as_u16();
    let saved = if parts
        .extensions
        .get::<super::error::OutcomeUnknown>()
        .is_some()
    {
        // Whether the request committed is unknown: releasing the key would
        // let a retry run it a second time. It stays claimed until its
        // lease passes; by then what the request started (a payment, a
        // refund, an operation, a crypto quote) carries the key, and the
        // retry finds it. Ending the claim sooner is not safe for every
        // request: not every write records its key (a dispute's evidence,
        // an endpoint's update), and their retry would run a second time.
        tracing::warn!("outcome unknown: idempotency key kept claimed until its lease passes");
        Ok(())
    } else if is_saved(status) {
        match store.complete(&caller, &key, status, &body).await {
            Err(e) => {
                settle_later(
                    store.clone(),
                    caller,
                    key,
                    until,
                    Some((status, body.clone())),
                );
                Err(e)
            }
            ok => ok,
        }
    } else {
        match store.release(&caller, &key).await {
            Err(e) => {
                settle_later(store.clone(), caller, key, until, None);
                Err(e)
            }
            ok => ok,
        }
    };
    if let Err(e) = saved {
        // The request ran; its effect stands. The response is saved (or
        // the claim ended) in the background once the database answers.
        tracing::error!(error = %e, "could not save idempotent response; retrying in the background");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Saves `response` for the claim that lasts `until` (or, without one,
/// ends the claim) once the database answers again, trying until the
/// lease ends: a client retrying after a failover then gets the saved
/// answer or runs at once, rather than 409 `idempotency_key_in_use` for
/// the rest of a lease whose request is long over.
fn settle_later(
    store: IdempotencyStore,
    caller: Caller,
    key: String,
    until: Option<OffsetDateTime>,
    response: Option<(u16, axum::body::Bytes)>,
) {
    let Some(until) = until else { return };
    tokio::spawn(async move {
        while OffsetDateTime::now_utc() < until {
            let done = match &response {
                Some((status, body)) => {
                    store
                        .complete_claim(&caller, &key, until, *status, body)
                        .await
                }
                None => store.end_claim(&caller, &key, until).await,
            };
            match done {
                Ok(_) => return,
                Err(e) => tracing::debug!(error = %e, "idempotency claim not settled yet"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
}

/// The request's `Idempotency-Key`, as the subsystems store it with what
/// the request started (an operation, a refund), so that a retry finds it
/// even when the saved response was lost. Scoped by key kind like the
/// saved responses: a publishable key's `abc` is not the secret key's.
#[derive(Debug, Clone, Default)]
pub struct RequestKey(pub Option<String>);

impl RequestKey {
    /// The stored form, if the request had a key.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let kind = parts
            .extensions
            .get::<Caller>()
            .map_or("anon", |c| match c.kind {
                crate::merchants::KeyKind::Secret => "sk",
                crate::merchants::KeyKind::Publishable => "pk",
            });
        Ok(RequestKey(
            parts
                .headers
                .get(HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|k| !k.is_empty() && k.len() <= 240)
                .map(|k| format!("{kind}:{k}")),
        ))
    }
}
