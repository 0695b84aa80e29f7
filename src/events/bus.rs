//! The node's one `LISTEN` connection, fanned out in memory.
//!
//! PostgreSQL sends the `NOTIFY` of [`super::record`] when the writer's
//! transaction commits, to every node. Each node holds a single listening
//! connection ([`listen`], a background job) and re-broadcasts what it hears
//! on a [`Bus`], so a thousand live streams cost one database connection,
//! not a thousand. Notifications are only hints: whenever one may have been
//! missed (the connection dropped, a subscriber fell behind) subscribers get
//! [`Notice::Resync`] and re-read the database, and they poll anyway.

use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, DELIVERIES_CHANNEL};
use crate::db::Db;
use crate::ids::{EventId, MerchantId};

/// Notices kept for a slow subscriber before it is told to resync.
const CAPACITY: usize = 1024;

/// The payload of a [`CHANNEL`] notification.
#[derive(Debug, Clone, Deserialize)]
pub struct EventNotice {
    /// The committed event.
    pub id: EventId,
    /// Its merchant.
    pub merchant: MerchantId,
    /// The id of the object it is about (absent when unknown or too long).
    pub object: Option<String>,
    /// How many webhook deliveries it enqueued.
    pub deliveries: i64,
}

/// What a subscriber is told.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An event was committed.
    Event(EventNotice),
    /// Webhook deliveries were enqueued (or brought forward) without a new
    /// event.
    Deliveries,
    /// Notices may have been missed: re-read the database.
    Resync,
}

/// In-memory fan-out of the node's notifications. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Notice>,
    /// Cancelled when the node shuts down, so that endless consumers (live
    /// streams) end and the HTTP server can drain.
    closing: CancellationToken,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    /// A bus with nobody listening yet.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self {
            tx,
            closing: CancellationToken::new(),
        }
    }

    /// Starts receiving notices sent from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    /// Sends a notice to every current subscriber (none is fine).
    pub fn publish(&self, notice: Notice) {
        let _ = self.tx.send(notice);
    }

    /// Tells endless consumers that the node is shutting down.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Resolves once the node is shutting down.
    pub async fn closed(&self) {
        self.closing.cancelled().await;
    }

    /// Whether the node is shutting down.
    pub fn is_closed(&self) -> bool {
        self.closing.is_cancelled()
    }
}

/// One subscriber's view of the bus.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Notice>,
}

impl Subscription {
    /// The next notice. A subscriber that fell behind gets
    /// [`Notice::Resync`]; a closed bus never resolves (callers also wait
    /// on [`Bus::closed`]).
    pub async fn recv(&mut self) -> Notice {
        match self.rx.recv().await {
            Ok(notice) => notice,
            Err(broadcast::error::RecvError::Lagged(_)) => Notice::Resync,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Background job: holds the node's `LISTEN` connection and publishes what
/// it hears on `bus` until `shutdown`, then closes the bus. Reconnects with
/// a growing pause if the database goes away.
pub async fn listen(pool: Db, bus: Bus, shutdown: CancellationToken) {
    let backoff = crate::backoff::Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let connected = tokio::select! {
            () = shutdown.cancelled() => break,
            result = subscribe(&pool) => result,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for events; retrying");
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.delay(failures)) => {}
                }
                continue;
            }
        };
        failures = 0;
        // Anything committed before LISTEN took effect was not heard.
        bus.publish(Notice::Resync);
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => break,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    bus.publish(parse(notification.channel(), notification.payload()))
                }
                // The connection dropped and was re-established.
                Ok(None) => bus.publish(Notice::Resync),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    bus.publish(Notice::Resync);
                    break;
                }
            }
        }
    }
    bus.close();
}

async fn subscribe(pool: &Db) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool.pool()).await?;
    listener.listen_all([CHANNEL, DELIVERIES_CHANNEL]).await?;
    Ok(listener)
}

fn parse(channel: &str, payload: &str) -> Notice {
    if channel == DELIVERIES_CHANNEL {
        return Notice::Deliveries;
    }
    match serde_json::from_str::<EventNotice>(payload) {
        Ok(notice) => Notice::Event(notice),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable event notification");
            Notice::Resync
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        let id = EventId::generate();
        let merchant = MerchantId::generate();
        let payload =
            format!(r#"{{"id":"{id}","merchant":"{merchant}","object":"pay_1","deliveries":2}}"#);
        match parse(CHANNEL, &payload) {
            Notice::Event(n) => {
                assert_eq!(n.id, id);
                assert_eq!(n.object.as_deref(), Some("pay_1"));
                assert_eq!(n.deliveries, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(CHANNEL, "nonsense"), Notice::Resync));
        assert!(matches!(parse(DELIVERIES_CHANNEL, ""), Notice::Deliveries));
    }
}
