//! `GET /dashboard/feed`: the merchant's new events as Server-Sent Events,
//! for the home page's live feed. It listens on the node's event bus (the
//! same that drives `/v1/payments/{id}/events/stream` and the webhook
//! worker) and reads each announced event through the event store, so it
//! shows only the signed-in user's merchant's events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::Stream;
use serde_json::json;

use super::session::Signed;
use crate::api::AppState;
use crate::events::{EventStore, Notice};

pub async fn stream(State(state): State<AppState>, signed: Signed) -> Response {
    let merchant = signed.user.merchant_id.clone();
    let bus = state.events.clone();
    let store = EventStore::new(state.pool.clone());
    let mut subscription = bus.subscribe();
    let events = async_stream(move |tx| async move {
        loop {
            let notice = tokio::select! {
                n = subscription.recv() => n,
                () = bus.closed() => return,
            };
            let Notice::Event(notice) = notice else {
                continue;
            };
            if notice.merchant != merchant {
                continue;
            }
            let Ok(event) = store.get(&merchant, &notice.id).await else {
                continue;
            };
            let data = json!({
                "id": event.id,
                "type": event.event_type,
                "object": event.object_id(),
                "created": event.created_at.unix_timestamp(),
            });
            let sse = SseEvent::default()
                .id(event.id.as_str())
                .data(data.to_string());
            if tx.send(Ok(sse)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A stream fed by a task, ended when the task returns or the client goes.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<SseEvent, Infallible>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
