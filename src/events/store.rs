//! Reading events back: one event, a merchant's list, one object's history.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Event, EventType};
use crate::db::Db;
use crate::ids::{EventId, MerchantId};

/// Errors of event queries.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// No such event for this merchant.
    #[error("no such event: {0}")]
    NotFound(String),
    /// A list parameter names something that does not exist.
    #[error("invalid {param}: {message}")]
    Invalid {
        /// The parameter at fault.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub use crate::page::{Listed, Page};

/// Event queries, always scoped to one merchant.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: Db,
}

struct Row {
    seq: i64,
    id: EventId,
    merchant_id: MerchantId,
    event_type: String,
    api_version: Option<String>,
    data: Value,
    created_at: OffsetDateTime,
}

impl Row {
    fn into_event(self) -> Result<Event, sqlx::Error> {
        let event_type = self.event_type.parse::<EventType>().map_err(|_| {
            sqlx::Error::Decode(
                format!("unknown event type `{}` in events", self.event_type).into(),
            )
        })?;
        Ok(Event {
            id: self.id,
            merchant_id: self.merchant_id,
            event_type,
            api_version: self.api_version,
            data: self.data,
            created_at: self.created_at,
            seq: self.seq,
        })
    }
}

fn events(rows: Vec<Row>) -> Result<Vec<Event>, sqlx::Error> {
    rows.into_iter().map(Row::into_event).collect()
}

impl EventStore {
    /// A store over `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }

    /// One event of `merchant`; another merchant's event is not found.
    pub async fn get(&self, merchant: &MerchantId, id: &EventId) -> Result<Event, EventError> {
        let row = sqlx::query_as!(
            Row,
            r#"SELECT seq, id AS "id: EventId", merchant_id AS "merchant_id: MerchantId",
                      type AS event_type, api_version, data, created_at
               FROM events WHERE id = $1 AND merchant_id = $2"#,
            id.as_str(),
            merchant.as_str(),
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| EventError::NotFound(id.to_string()))?;
        Ok(row.into_event()?)
    }

    /// The commit position of one of `merchant`'s events, for cursors.
    async fn position_of(
        &self,
        merchant: &MerchantId,
        id: &EventId,
        param: &'static str,
    ) -> Result<i64, EventError> {
        sqlx::query_scalar!(
            "SELECT position FROM events WHERE id = $1 AND merchant_id = $2",
            id.as_str(),
            merchant.as_str()
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten()
        .ok_or_else(|| EventError::Invalid {
            param,
            message: format!("No such event: '{id}'"),
        })
    }

    /// A page of `merchant`'s events, newest first, optionally only of
    /// `types`. Pages follow commit order (migrations/0020), so a client
    /// asking for the events after one it has seen never misses one that
    /// committed later.
    pub async fn list(
        &self,
        merchant: &MerchantId,
        types: Option<&[EventType]>,
        limit: usize,
        page: Page<EventId>,
    ) -> Result<Listed<Event>, EventError> {
        let types: Option<Vec<String>> =
            types.map(|t| t.iter().map(EventType::to_string).collect());
        let fetch = i64::try_from(limit).unwrap_or(100) + 1;
        let (before, after, backwards) = match &page {
            Page::First => (None, None, false),
            Page::After(id) => (
                Some(self.position_of(merchant, id, "starting_after").await?),
                None,
                false,
            ),
            Page::Before(id) => (
                None,
                Some(self.position_of(merchant, id, "ending_before").await?),
                true,
            ),
        };
        let rows = if backwards {
            sqlx::query_as!(
                Row,
                r#"SELECT seq, id AS "id: EventId", merchant_id AS "merchant_id: MerchantId",
                          type AS event_type, api_version, data, created_at
                   FROM events
                   WHERE merchant_id = $1
                     AND ($2::text[] IS NULL OR type = ANY ($2))
                     AND position > $3
                   ORDER BY position ASC
                   LIMIT $4"#,
                merchant.as_str(),
                types.as_deref(),
                after.unwrap_or(0),
                fetch,
            )
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query_as!(
                Row,
                r#"SELECT seq, id AS "id: EventId", merchant_id AS "merchant_id: MerchantId",
                          type AS event_type, api_version, data, created_at
                   FROM events
                   WHERE merchant_id = $1
                     AND ($2::text[] IS NULL OR type = ANY ($2))
                     AND position IS NOT NULL
                     AND ($3::bigint IS NULL OR position < $3)
                   ORDER BY position DESC
                   LIMIT $4"#,
                merchant.as_str(),
                types.as_deref(),
                before,
                fetch,
            )
            .fetch_all(&self.pool)
            .await?
        };
        Ok(Listed::from_rows(events(rows)?, limit, backwards))
    }

    /// The events of `merchant` about the object `object_id` (whose
    /// `data.object.id` it is), in commit order, after commit position
    /// `after`. At most 1000; objects have a handful.
    pub async fn for_object(
        &self,
        merchant: &MerchantId,
        object_id: &str,
        after: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT seq, id AS "id: EventId", merchant_id AS "merchant_id: MerchantId",
                      type AS event_type, api_version, data, created_at
               FROM events
               WHERE merchant_id = $1 AND object_id = $2 AND position > $3
               ORDER BY position ASC
               LIMIT 1000"#,
            merchant.as_str(),
            object_id,
            after,
        )
        .fetch_all(&self.pool)
        .await?;
        events(rows)
    }

    /// Commit position of `merchant`'s event `id` about `object_id`, if
    /// there is such an event (to resume a stream after `Last-Event-ID`).
    pub async fn position_in_object(
        &self,
        merchant: &MerchantId,
        object_id: &str,
        id: &EventId,
    ) -> Result<Option<i64>, sqlx::Error> {
        Ok(sqlx::query_scalar!(
            "SELECT position FROM events WHERE id = $1 AND merchant_id = $2 AND object_id = $3",
            id.as_str(),
            merchant.as_str(),
            object_id,
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }
}
