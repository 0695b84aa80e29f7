//! The events outbox: what happened to a merchant's objects, written in the
//! same transaction as the change itself.
//!
//! Every writer announces a state change with [`record`], on the connection
//! of its own transaction: the payment's new status, its ledger postings and
//! the event commit together or not at all. `record` also enqueues one
//! webhook delivery per enabled endpoint of the merchant that wants the
//! event type, and sends a `NOTIFY` on [`CHANNEL`] that PostgreSQL delivers
//! only if (and when) the transaction commits. The [`bus`] turns those
//! notifications into wake-ups for delivery workers and live streams, which
//! also poll, so a lost notification delays work but never loses it.
//!
//! This module knows nothing about HTTP or about how webhooks are sent.

pub mod bus;
mod store;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;

pub use bus::{Bus, Notice, Subscription};
pub use store::{EventError, EventStore, Listed, Page};

use crate::config::Mode;
use crate::ids::{EventId, MerchantId};

/// The `NOTIFY` channel of committed events. Payload: [`bus::EventNotice`] JSON.
pub const CHANNEL: &str = "epg_events";

/// The `NOTIFY` channel for deliveries enqueued without a new event
/// (redelivery). Empty payload.
pub const DELIVERIES_CHANNEL: &str = "epg_webhook_deliveries";

/// The event types of docs/api.md, and nothing else.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "text")]
pub enum EventType {
    /// `payment.succeeded`
    #[serde(rename = "payment.succeeded")]
    #[sqlx(rename = "payment.succeeded")]
    PaymentSucceeded,
    /// `payment.failed`
    #[serde(rename = "payment.failed")]
    #[sqlx(rename = "payment.failed")]
    PaymentFailed,
    /// `payment.processing`
    #[serde(rename = "payment.processing")]
    #[sqlx(rename = "payment.processing")]
    PaymentProcessing,
    /// `payment.requires_action`
    #[serde(rename = "payment.requires_action")]
    #[sqlx(rename = "payment.requires_action")]
    PaymentRequiresAction,
    /// `payment.canceled`
    #[serde(rename = "payment.canceled")]
    #[sqlx(rename = "payment.canceled")]
    PaymentCanceled,
    /// `payment.crypto_detected`
    #[serde(rename = "payment.crypto_detected")]
    #[sqlx(rename = "payment.crypto_detected")]
    PaymentCryptoDetected,
    /// `payment.crypto_exception`
    #[serde(rename = "payment.crypto_exception")]
    #[sqlx(rename = "payment.crypto_exception")]
    PaymentCryptoException,
    /// `refund.succeeded`
    #[serde(rename = "refund.succeeded")]
    #[sqlx(rename = "refund.succeeded")]
    RefundSucceeded,
    /// `refund.failed`
    #[serde(rename = "refund.failed")]
    #[sqlx(rename = "refund.failed")]
    RefundFailed,
    /// `dispute.created`
    #[serde(rename = "dispute.created")]
    #[sqlx(rename = "dispute.created")]
    DisputeCreated,
    /// `dispute.closed`
    #[serde(rename = "dispute.closed")]
    #[sqlx(rename = "dispute.closed")]
    DisputeClosed,
    /// `settlement.anchored`
    #[serde(rename = "settlement.anchored")]
    #[sqlx(rename = "settlement.anchored")]
    SettlementAnchored,
    /// `reconciliation_exception.created`
    #[serde(rename = "reconciliation_exception.created")]
    #[sqlx(rename = "reconciliation_exception.created")]
    ReconciliationExceptionCreated,
    /// `reconciliation_exception.resolved`
    #[serde(rename = "reconciliation_exception.resolved")]
    #[sqlx(rename = "reconciliation_exception.resolved")]
    ReconciliationExceptionResolved,
    /// `dashboard_user.locked`: too many failed sign-ins locked a
    /// dashboard user out.
    #[serde(rename = "dashboard_user.locked")]
    #[sqlx(rename = "dashboard_user.locked")]
    DashboardUserLocked,
}

impl EventType {
    /// Every type, in docs/api.md's order.
    pub const ALL: [EventType; 15] = [
        EventType::PaymentSucceeded,
        EventType::PaymentFailed,
        EventType::PaymentProcessing,
        EventType::PaymentRequiresAction,
        EventType::PaymentCanceled,
        EventType::PaymentCryptoDetected,
        EventType::PaymentCryptoException,
        EventType::RefundSucceeded,
        EventType::RefundFailed,
        EventType::DisputeCreated,
        EventType::DisputeClosed,
        EventType::SettlementAnchored,
        EventType::ReconciliationExceptionCreated,
        EventType::ReconciliationExceptionResolved,
        EventType::DashboardUserLocked,
    ];

    /// The types a filter names: one exact type, or every type under a
    /// prefix with `payment.*`, or all of them with `*`. `None` when the
    /// filter matches nothing docs/api.md defines.
    pub fn matching(filter: &str) -> Option<Vec<Self>> {
        if filter == "*" {
            return Some(Self::ALL.to_vec());
        }
        if let Some(prefix) = filter.strip_suffix(".*") {
            let found: Vec<_> = Self::ALL
                .into_iter()
                .filter(|t| t.to_string().split('.').next() == Some(prefix))
                .collect();
            return (!found.is_empty()).then_some(found);
        }
        filter.parse().ok().map(|t| vec![t])
    }
}

crate::names!(EventType);

/// An event about to be written: its id and the object it carries, as
/// [`record`] writes them. A writer that puts the event in a statement of
/// its own (the payment's update and its event in one round trip:
/// `payments::store::update_announcing`) starts from here.
#[derive(Debug)]
pub struct Draft {
    /// `evt_…`.
    pub id: EventId,
    /// `data.object`: always a JSON object.
    pub object: serde_json::Value,
}

/// The [`Draft`] of an event carrying `object`, wrapped as
/// `{"value": …}` unless it serializes to a JSON object.
pub fn draft(object: &impl Serialize) -> Result<Draft, sqlx::Error> {
    let object = serde_json::to_value(object).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let object = if object.is_object() {
        object
    } else {
        serde_json::json!({ "value": object })
    };
    Ok(Draft {
        id: EventId::generate(),
        object,
    })
}

/// Writes an event announcing that `object` (a snapshot of the API object,
/// with its `id`) changed, inside the caller's transaction.
///
/// In the same statement it enqueues a delivery for every enabled, not
/// deleted webhook endpoint of `merchant` subscribed to `event_type` (or to
/// `*`), and queues a `NOTIFY` that PostgreSQL sends at commit. If the
/// caller rolls back, there was no event, no delivery and no notification.
///
/// `object` (an API object, typed) should serialize to a JSON object;
/// anything else is wrapped as
/// `{"value": …}` so that `data.object` is always an object.
pub async fn record(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    event_type: EventType,
    object: &impl Serialize,
) -> Result<EventId, sqlx::Error> {
    let Draft { id, object } = draft(object)?;
    // The notification payload must stay below PostgreSQL's 8000 bytes, or
    // the writer's transaction would fail; an object id too long to carry
    // is left out (streams find the event by polling instead).
    sqlx::query!(
        r#"
        WITH ev AS (
            INSERT INTO events (id, merchant_id, type, data)
            VALUES ($1::text, $2, $3::text, jsonb_build_object('object', $4::jsonb))
            RETURNING id, merchant_id, type, object_id
        ), dl AS (
            INSERT INTO webhook_deliveries (id, merchant_id, event_id, endpoint_id)
            SELECT epg_random_id('whd'), ev.merchant_id, ev.id, e.id
            FROM ev
            JOIN webhook_endpoints e ON e.merchant_id = ev.merchant_id
            WHERE e.status = 'enabled'
              AND e.deleted_at IS NULL
              AND (ev.type = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events))
            RETURNING 1
        )
        SELECT pg_notify($5, json_build_object(
                   'id', ev.id,
                   'merchant', ev.merchant_id,
                   'object', CASE WHEN length(ev.object_id) <= 256 THEN ev.object_id END,
                   'deliveries', (SELECT count(*) FROM dl)
               )::text) AS "notified: ()"
        FROM ev
        "#,
        id.as_str(),
        merchant.as_str(),
        event_type as EventType,
        object,
        CHANNEL,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_…`.
    pub id: EventId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// What happened.
    pub event_type: EventType,
    /// API version of the snapshot, when pinned.
    pub api_version: Option<String>,
    /// `{"object": …}`.
    pub data: Value,
    /// When it was recorded (the writer's transaction time).
    pub created_at: OffsetDateTime,
    /// Insertion order (internal; lists and streams follow the commit
    /// position instead, see migrations/0020).
    pub seq: i64,
}

/// Something that happened to one of the merchant's objects. Webhook
/// deliveries POST this JSON, signed with `Epg-Signature: t=<unix>,v1=<hex
/// HMAC-SHA256(secret, "<t>.<raw body>")>`; receivers dedupe on `id`.
///
/// The API shape of an event (docs/api.md): exactly what
/// `GET /v1/events/{id}` answers and what a webhook delivery POSTs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct EventObject<'a> {
    /// The event's id (`evt_` and 24 letters or digits).
    #[schema(pattern = "^evt_[A-Za-z0-9]{24}$")]
    pub id: &'a str,
    /// Always `event`.
    #[schema(schema_with = event_object_name)]
    pub object: &'static str,
    /// What happened (`payment.succeeded`, …).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Pinned API version of the snapshot, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub api_version: Option<&'a str>,
    /// Unix seconds.
    pub created: i64,
    /// Whether the node runs in live mode.
    pub livemode: bool,
    /// `{"object": <snapshot>}`: the object as it was right after the
    /// change, stored with the event.
    #[schema(schema_with = event_data)]
    pub data: &'a Value,
}

crate::object_name_schema!(event_object_name, "event");

/// The schema of [`EventObject::data`]: the stored snapshot is whichever
/// object the event is about (payment, refund, dispute, settlement, …).
fn event_data() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "object",
            ObjectBuilder::new().schema_type(Type::Object).description(Some(
                "A snapshot of the object (payment, refund, dispute, …) right after the change.",
            )),
        )
        .required("object")
        .build()
}

impl Event {
    /// The API object of this event on a node in `mode`.
    pub fn to_object(&self, mode: Mode) -> EventObject<'_> {
        EventObject {
            id: self.id.as_str(),
            object: "event",
            event_type: self.event_type,
            api_version: self.api_version.as_deref(),
            created: self.created_at.unix_timestamp(),
            livemode: mode == Mode::Live,
            data: &self.data,
        }
    }

    /// The id of the object this event is about, if it has one.
    pub fn object_id(&self) -> Option<&str> {
        self.data.get("object")?.get("id")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert_eq!(t.to_string().parse::<EventType>(), Ok(t));
            assert!(seen.insert(t.to_string()));
        }
        assert!("payment.created".parse::<EventType>().is_err());
    }

    #[test]
    fn filters_expand_prefixes() {
        assert_eq!(EventType::matching("refund.*").map(|v| v.len()), Some(2));
        assert_eq!(EventType::matching("*").map(|v| v.len()), Some(15));
        assert_eq!(
            EventType::matching("dispute.closed"),
            Some(vec![EventType::DisputeClosed])
        );
        assert_eq!(EventType::matching("invoice.*"), None);
        assert_eq!(EventType::matching("pay*"), None);
    }
}
