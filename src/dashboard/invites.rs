//! Invitations: an admin names an email and a role, the invitee gets a
//! one-time link. Only the SHA-256 of the link's token is stored, so a
//! database dump lets nobody join.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::Role;
use crate::crypto::sha256;
use crate::db::Db;
use crate::ids::{MerchantId, UserId, random_base62};

/// An invitation as stored.
#[derive(Debug, Clone)]
pub struct Invite {
    /// SHA-256 of the link's token.
    pub token_hash: Vec<u8>,
    /// The merchant the invitee joins.
    pub merchant_id: MerchantId,
    /// Who is invited (lower-cased).
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// Which user invited them.
    pub invited_by: String,
    /// When.
    pub created_at: OffsetDateTime,
    /// The link stops working then.
    pub expires_at: OffsetDateTime,
    /// When it was used, if it was.
    pub accepted_at: Option<OffsetDateTime>,
}

struct Row {
    token_hash: Vec<u8>,
    merchant_id: String,
    email: String,
    role: String,
    invited_by: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    accepted_at: Option<OffsetDateTime>,
}

impl Row {
    fn into_invite(self) -> Result<Invite, sqlx::Error> {
        let corrupt = |what: &str| sqlx::Error::Decode(format!("dashboard_invites.{what}").into());
        Ok(Invite {
            token_hash: self.token_hash,
            merchant_id: MerchantId::parse(&self.merchant_id)
                .map_err(|_| corrupt("merchant_id"))?,
            email: self.email,
            role: self.role.parse().map_err(|_| corrupt("role"))?,
            invited_by: self.invited_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            accepted_at: self.accepted_at,
        })
    }
}

/// The token's form: 43 base62 characters (≈256 bits).
const TOKEN_LEN: usize = 43;

/// Whether `token` could be a token at all (checked before hashing).
fn plausible(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Stores an invitation; the token for the link (never stored).
pub async fn insert(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    email: &str,
    role: Role,
    invited_by: &UserId,
    ttl_secs: i64,
) -> Result<String, sqlx::Error> {
    let token = random_base62(TOKEN_LEN);
    sqlx::query!(
        r#"INSERT INTO dashboard_invites (token_hash, merchant_id, email, role, invited_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))"#,
        &sha256(token.as_bytes())[..],
        merchant.as_str(),
        email,
        role as Role,
        invited_by.as_str(),
        ttl_secs as f64,
    )
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// The open invitation of a link's token (not used, not expired), locked
/// for update when `conn` is in a transaction.
pub async fn open(conn: &mut PgConnection, token: &str) -> Result<Option<Invite>, sqlx::Error> {
    if !plausible(token) {
        return Ok(None);
    }
    let row = sqlx::query_as!(
        Row,
        r#"SELECT token_hash, merchant_id, email, role, invited_by, created_at, expires_at,
                  accepted_at
           FROM dashboard_invites
           WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now()
           FOR UPDATE"#,
        &sha256(token.as_bytes())[..],
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_invite).transpose()
}

/// Marks an invitation used.
pub async fn accept(conn: &mut PgConnection, token_hash: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE dashboard_invites SET accepted_at = now() WHERE token_hash = $1 AND accepted_at IS NULL",
        token_hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A merchant's invitations, newest first.
pub async fn list(
    pool: &Db,
    merchant: &MerchantId,
    limit: i64,
) -> Result<Vec<Invite>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT token_hash, merchant_id, email, role, invited_by, created_at, expires_at,
                  accepted_at
           FROM dashboard_invites WHERE merchant_id = $1
           ORDER BY created_at DESC LIMIT $2"#,
        merchant.as_str(),
        limit
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Row::into_invite).collect()
}
