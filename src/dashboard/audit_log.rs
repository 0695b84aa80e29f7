//! The append-only record of what dashboard users did (and failed to do).
//! The table refuses UPDATE, DELETE and TRUNCATE (migration 0045), so an
//! entry, once committed, stays as written.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::db::Db;
use crate::ids::{MerchantId, UserId};

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Client address (after trusted proxies).
    pub ip: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Whose data was acted on.
    pub merchant: &'a MerchantId,
    /// Who acted, when signed in.
    pub user: Option<&'a UserId>,
    /// The email shown for the actor.
    pub actor: &'a str,
    /// `payment.refund`, `api_key.roll`, `session.sign_in`, …
    pub action: &'a str,
    /// The object acted on (`pay_…`, `key_…`), if any.
    pub target: Option<&'a str>,
    /// More about it (amounts, the role given); never a secret.
    pub detail: Value,
    /// From where.
    pub origin: &'a Origin,
}

/// One entry as read.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Order of writing.
    pub id: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// More.
    pub detail: Value,
    /// From where.
    pub ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// Appends an entry inside the caller's transaction, so the action and its
/// record commit together.
pub async fn append(conn: &mut PgConnection, entry: &NewEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO dashboard_audit_log
               (merchant_id, user_id, actor, action, target, detail, ip, user_agent)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        entry.merchant.as_str(),
        entry.user.map(UserId::as_str),
        entry.actor,
        entry.action,
        entry.target,
        entry.detail,
        entry.origin.ip.as_deref(),
        entry
            .origin
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(300).collect::<String>()),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest entries of a merchant, newest first.
pub async fn list(
    pool: &Db,
    merchant: &MerchantId,
    action_prefix: Option<&str>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Entry,
        r#"SELECT id, actor, action, target, detail, ip, user_agent, at
           FROM dashboard_audit_log
           WHERE merchant_id = $1 AND ($2::text IS NULL OR action LIKE $2 || '%')
           ORDER BY id DESC LIMIT $3"#,
        merchant.as_str(),
        action_prefix,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
