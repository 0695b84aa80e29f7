//! Server-side sessions: the cookie holds a random token, the database its
//! SHA-256, with the user, the CSRF token and when the second factor was
//! last given.

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::crypto::sha256;
use crate::db::Db;
use crate::ids::{UserId, random_base62};

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the cookie's token.
    pub id_hash: Vec<u8>,
    /// Whose.
    pub user_id: UserId,
    /// Every state-changing form carries it back.
    pub csrf_token: String,
    /// When the second factor was given; `None` while only the password was.
    pub mfa_at: Option<OffsetDateTime>,
}

/// A new session: the token for the cookie, and the stored session.
pub async fn create(
    conn: &mut PgConnection,
    user: &UserId,
    mfa: bool,
    ip: Option<&str>,
    user_agent: Option<&str>,
    ttl_secs: i64,
) -> Result<(String, Session), sqlx::Error> {
    let token = random_base62(43);
    let id_hash = sha256(token.as_bytes()).to_vec();
    let csrf_token = random_base62(32);
    let mfa_at = sqlx::query_scalar!(
        r#"INSERT INTO dashboard_sessions (id_hash, user_id, csrf_token, mfa_at, ip, user_agent, expires_at)
           VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, $5, $6, now() + make_interval(secs => $7))
           RETURNING mfa_at"#,
        &id_hash,
        user.as_str(),
        csrf_token,
        mfa,
        ip,
        user_agent.map(|ua| ua.chars().take(300).collect::<String>()),
        ttl_secs as f64,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        token,
        Session {
            id_hash,
            user_id: user.clone(),
            csrf_token,
            mfa_at,
        },
    ))
}

/// The live session of a cookie's token.
pub async fn find(pool: &Db, token: &str) -> Result<Option<Session>, sqlx::Error> {
    if token.len() != 43 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let id_hash = sha256(token.as_bytes()).to_vec();
    let row = sqlx::query!(
        r#"SELECT s.user_id, s.csrf_token, s.mfa_at FROM dashboard_sessions s
           JOIN dashboard_users u ON u.id = s.user_id
           WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
             AND u.disabled_at IS NULL"#,
        &id_hash
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let Ok(user_id) = UserId::parse(&row.user_id) else {
        return Ok(None);
    };
    Ok(Some(Session {
        id_hash,
        user_id,
        csrf_token: row.csrf_token,
        mfa_at: row.mfa_at,
    }))
}

/// Ends a session (sign-out, or replaced by a fresh one).
pub async fn end(conn: &mut PgConnection, id_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
        id_hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a fresh code given for a sensitive action.
pub async fn stepped_up(conn: &mut PgConnection, id_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_sessions SET step_up_at = now() WHERE id_hash = $1",
        id_hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
