//! `GET /v1/payments/{id}/events/stream`: a payment's events as
//! Server-Sent Events, for a checkout page or a dashboard to follow its
//! status live.
//!
//! The stream first replays the payment's past events (or those after the
//! `Last-Event-ID` a reconnecting browser sends), then sends new ones as
//! they commit: it wakes on the node's event bus and re-reads the events
//! table, and re-reads every [`POLL`] anyway in case a notification was
//! missed. Comments keep idle connections alive. The stream ends when the
//! node shuts down; `EventSource` reconnects by itself.
//!
//! It sits outside the `Authorization`-only router because a browser's
//! `EventSource` cannot send headers: besides a secret or publishable key
//! (`Authorization: Bearer …`) it accepts the payment's
//! `?client_secret=…`. A secret key sees each event whole; a publishable
//! key or a client secret, which live in browsers, sees only the fields of
//! the payment a checkout page needs ([`PUBLIC_FIELDS`]), never the
//! customer, shipping, metadata or description.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::time::Instant;

use super::client_ip::ClientIp;
use super::error::ApiError;
use super::stream_slots::{StreamCap, StreamSlot};
use super::{AppState, Query};
use crate::config::Mode;
use crate::db::Db;
use crate::events::{Bus, Event, EventStore, Notice, Subscription};
use crate::ids::{EventId, MerchantId};
use crate::merchants::KeyKind;

/// Interval of keep-alive comments on an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a stream re-reads its events without being woken. Wake-ups
/// are only missed when the node's LISTEN connection drops (the bus then
/// says so), so this is a slow safety net: a thousand streams must not
/// mean a thousand queries a second.
pub const POLL: Duration = Duration::from_secs(10);

/// The fields of an event's `data.object` that a publishable key or a
/// client secret may see: what a checkout page shows and acts on.
pub const PUBLIC_FIELDS: &[&str] = &[
    "id",
    "object",
    "status",
    "amount",
    "amount_received",
    "currency",
    "next_action",
    "last_error",
    "crypto",
    "livemode",
    "created",
];

/// Who reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// A secret key: the whole event.
    Merchant,
    /// A publishable key or the client secret: the public view.
    Browser,
}

/// Routes of this resource (public router: it authenticates by itself).
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/payments/{id}/events/stream", get(stream))
}

/// The merchant of payment `payment_id` if `client_secret` is that
/// payment's client secret.
pub async fn authorize_client_secret(
    pool: &Db,
    payment_id: &str,
    client_secret: &str,
) -> Result<Option<MerchantId>, sqlx::Error> {
    let Ok(id) = crate::ids::PaymentId::parse(payment_id) else {
        return Ok(None);
    };
    Ok(
        crate::payments::store::get_by_client_secret(pool, &id, client_secret)
            .await?
            .map(|payment| payment.merchant_id),
    )
}

/// One message of the stream, by its Server-Sent Events fields.
#[derive(utoipa::ToSchema)]
#[schema(as = PaymentStreamMessage)]
#[allow(dead_code)]
struct StreamMessage {
    /// The event's id (`evt_` and 24 letters or digits); a reconnecting client sends the last one as `Last-Event-ID`.
    #[schema(pattern = "^evt_[A-Za-z0-9]{24}$")]
    id: String,
    /// The event's type.
    #[schema(value_type = crate::events::EventType)]
    event: String,
    /// The event object as JSON text.
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamParams {
    client_secret: Option<String>,
}

/// `pay_` and 24 letters or digits.
fn is_payment_id(s: &str) -> bool {
    s.strip_prefix("pay_")
        .is_some_and(|r| r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[utoipa::path(
    get,
    path = "/v1/payments/{id}/events/stream",
    operation_id = "streamPaymentEvents",
    tag = "Payments",
    summary = "Follow a payment's events live (Server-Sent Events)",
    description = "For a checkout page or a dashboard. Authenticates by itself: `Authorization: Bearer` with a secret or publishable key, or the payment's `client_secret` query parameter (a browser's `EventSource` cannot send headers). Not rate limited.",
    security(("secretKey" = []), ("publishableKey" = []), ("clientSecret" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received; the stream resumes after it (browsers send it when they reconnect)."),
    ),
    responses(
        (status = 200, description = "A `text/event-stream`: the payment's past events (or those after `Last-Event-ID`), then new ones as they commit. Each SSE message has `id` = the event id, `event` = its type and `data` = the event JSON (the checkout view of the object for a publishable key or client secret). Comments keep idle connections alive.", content_type = "text/event-stream", body = StreamMessage),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<StreamParams>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !is_payment_id(&id) {
        return Err(ApiError::not_found("payment", &id));
    }
    super::auth::refused_for_failures(&state, ip)?;
    let (merchant, audience) =
        match authorize(&state, &id, &headers, params.client_secret.as_deref()).await {
            Ok(authorized) => authorized,
            Err(err) => {
                super::auth::count_failure(&state, ip, &err);
                return Err(err);
            }
        };
    tracing::Span::current().record("merchant", merchant.as_str());
    let slot = state.streams.acquire(ip, &id).map_err(|cap| {
        state.metrics.add("streams_refused", 1);
        ApiError::too_many(
            "too_many_streams",
            match cap {
                StreamCap::Node => "This node has as many live streams open as it serves.",
                StreamCap::Client => "Too many live streams are open from this address.",
                StreamCap::Payment => "Too many live streams are open for this payment.",
            },
            5,
        )
    })?;
    let store = EventStore::new(state.public_pool.clone());
    let mut after = 0;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| EventId::parse(s.trim()).ok());
    if let Some(last) = last_event_id
        && let Some(position) = store.position_in_object(&merchant, &id, &last).await?
    {
        after = position;
    }
    // Subscribe before the first read, so nothing committed in between is
    // missed.
    let follow = Follow {
        subscription: state.events.subscribe(),
        bus: state.events.clone(),
        store,
        merchant,
        object_id: id,
        after,
        sent: HashSet::new(),
        queue: VecDeque::new(),
        mode: state.config.mode,
        audience,
        started: false,
        _slot: slot,
    };
    let events = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok::<_, Infallible>(event), follow))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response())
}

/// Whose payment stream this is: the merchant of the key in
/// `Authorization` (secret or publishable), else of the client secret.
async fn authorize(
    state: &AppState,
    payment_id: &str,
    headers: &HeaderMap,
    client_secret: Option<&str>,
) -> Result<(MerchantId, Audience), ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let caller = super::auth::resolve(state, Some(value)).await?;
        let not_found = || ApiError::not_found("payment", payment_id);
        return match caller.kind {
            KeyKind::Secret => {
                // Another merchant's payment is unknown, not an empty stream.
                let id = crate::ids::PaymentId::parse(payment_id).map_err(|_| not_found())?;
                state.payments.get(&caller.merchant_id, &id).await?;
                Ok((caller.merchant_id, Audience::Merchant))
            }
            // A browser reads a payment only with its client secret, as for
            // GET /v1/payments/{id}.
            KeyKind::Publishable => {
                let secret = client_secret.ok_or_else(not_found)?;
                match authorize_client_secret(&state.public_pool, payment_id, secret).await? {
                    Some(merchant) if merchant == caller.merchant_id => {
                        Ok((merchant, Audience::Browser))
                    }
                    _ => Err(not_found()),
                }
            }
        };
    }
    if let Some(secret) = client_secret {
        return authorize_client_secret(&state.public_pool, payment_id, secret)
            .await?
            .map(|merchant| (merchant, Audience::Browser))
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "client_secret_invalid",
                    "The client_secret does not belong to this payment.",
                )
            });
    }
    Err(ApiError::unauthenticated(
        "api_key_missing",
        "Send a secret or publishable key as `Authorization: Bearer …`, or the payment's `client_secret` query parameter.",
    ))
}

/// The state of one stream.
struct Follow {
    /// Wake-ups from the node's LISTEN connection.
    subscription: Subscription,
    /// To notice shutdown.
    bus: Bus,
    store: EventStore,
    merchant: MerchantId,
    object_id: String,
    /// Only events after this commit position (from `Last-Event-ID`):
    /// events commit in position order, so nothing that commits later can
    /// come before it.
    after: i64,
    /// Events already sent, so a re-read sends each once.
    sent: HashSet<EventId>,
    queue: VecDeque<Event>,
    mode: Mode,
    audience: Audience,
    started: bool,
    /// Held while the stream lives (see [`super::stream_slots`]).
    _slot: StreamSlot,
}

impl Follow {
    /// The next SSE event, or `None` when the node shuts down.
    async fn next(&mut self) -> Option<SseEvent> {
        let mut next_poll = Instant::now() + POLL;
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(self.render(&event));
            }
            if self.bus.is_closed() {
                return None;
            }
            if !self.started {
                self.started = true;
                self.refill().await;
                continue;
            }
            let wake = tokio::select! {
                () = self.bus.closed() => return None,
                notice = self.subscription.recv() => match notice {
                    Notice::Event(n) => {
                        n.merchant == self.merchant
                            && n.object.as_deref().is_none_or(|o| o == self.object_id)
                    }
                    Notice::Resync => true,
                    Notice::Deliveries => false,
                },
                () = tokio::time::sleep_until(next_poll) => true,
            };
            if wake {
                next_poll = Instant::now() + POLL;
                self.refill().await;
            }
        }
    }

    async fn refill(&mut self) {
        match self
            .store
            .for_object(&self.merchant, &self.object_id, self.after)
            .await
        {
            Ok(events) => {
                for event in events {
                    if self.sent.insert(event.id.clone()) {
                        self.queue.push_back(event);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "event stream: cannot read events"),
        }
    }

    fn render(&self, event: &Event) -> SseEvent {
        let data = match self.audience {
            Audience::Merchant => serde_json::to_string(&event.to_object(self.mode)),
            Audience::Browser => {
                let public = public_view(&event.data);
                let mut object = event.to_object(self.mode);
                object.data = &public;
                serde_json::to_string(&object)
            }
        }
        .unwrap_or_default();
        SseEvent::default()
            .id(event.id.as_str())
            .event(event.event_type.to_string())
            .data(data)
    }
}

/// `{"object": …}` with only the [`PUBLIC_FIELDS`] of the object.
fn public_view(data: &serde_json::Value) -> serde_json::Value {
    let object = data
        .get("object")
        .and_then(serde_json::Value::as_object)
        .map(|o| {
            o.iter()
                .filter(|(k, _)| PUBLIC_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
        })
        .unwrap_or_default();
    serde_json::json!({ "object": object })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_see_only_the_public_view() {
        let data = serde_json::json!({ "object": {
            "id": "pay_1", "object": "payment", "status": "succeeded", "amount": 5,
            "currency": "usd", "customer": { "email": "a@b.c" }, "metadata": { "k": "v" },
            "shipping": { "name": "A" }, "description": "secret plans"
        }});
        let public = public_view(&data);
        assert_eq!(
            public,
            serde_json::json!({ "object": {
                "id": "pay_1", "object": "payment", "status": "succeeded", "amount": 5,
                "currency": "usd"
            }})
        );
        assert!(is_payment_id("pay_000000000000000000000000"));
        assert!(!is_payment_id("pay_0000"));
        assert!(!is_payment_id("evt_000000000000000000000000"));
    }
}
