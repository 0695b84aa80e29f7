//! Dashboard users as stored: one row per person, scoped to a merchant.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::Role;
use crate::db::Db;
use crate::ids::{MerchantId, UserId};

/// A user as stored (the password hash and sealed secret stay here).
#[derive(Debug, Clone)]
pub struct User {
    /// `usr_…`.
    pub id: UserId,
    /// The merchant whose data the user sees, and only that one.
    pub merchant_id: MerchantId,
    /// Sign-in name, lower-cased.
    pub email: String,
    /// What the user may do.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// The sealed TOTP secret, once enrolled.
    pub totp_secret: Option<Vec<u8>>,
    /// The sealed secret shown at enrolment, before a code confirms it.
    pub totp_pending: Option<Vec<u8>>,
    /// The last time step whose code was accepted.
    pub totp_last_step: Option<i64>,
    /// Failures since the last success.
    pub failed_attempts: i32,
    /// Until when sign-in is refused.
    pub locked_until: Option<OffsetDateTime>,
    /// Signed in with a one-time password: must choose one before anything
    /// else.
    pub must_change_password: bool,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

struct Row {
    id: String,
    merchant_id: String,
    email: String,
    role: String,
    password_hash: String,
    totp_secret: Option<Vec<u8>>,
    totp_pending: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
    failed_attempts: i32,
    locked_until: Option<OffsetDateTime>,
    must_change_password: bool,
    created_at: OffsetDateTime,
}

impl Row {
    fn into_user(self) -> Result<User, sqlx::Error> {
        let corrupt = |what: &str| sqlx::Error::Decode(format!("dashboard_users.{what}").into());
        Ok(User {
            id: UserId::parse(&self.id).map_err(|_| corrupt("id"))?,
            merchant_id: MerchantId::parse(&self.merchant_id)
                .map_err(|_| corrupt("merchant_id"))?,
            email: self.email,
            role: self.role.parse().map_err(|_| corrupt("role"))?,
            password_hash: self.password_hash,
            totp_secret: self.totp_secret,
            totp_pending: self.totp_pending,
            totp_last_step: self.totp_last_step,
            failed_attempts: self.failed_attempts,
            locked_until: self.locked_until,
            must_change_password: self.must_change_password,
            created_at: self.created_at,
        })
    }
}

/// Inserts a user; `None` when the email is taken.
pub async fn insert(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    email: &str,
    role: Role,
    password_hash: &str,
    must_change_password: bool,
) -> Result<Option<User>, sqlx::Error> {
    let id = UserId::generate();
    let row = sqlx::query_as!(
        Row,
        r#"INSERT INTO dashboard_users (id, merchant_id, email, role, password_hash, must_change_password)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (email) DO NOTHING
           RETURNING id, merchant_id, email, role, password_hash, totp_secret, totp_pending,
                     totp_last_step, failed_attempts, locked_until, must_change_password, created_at"#,
        id.as_str(),
        merchant.as_str(),
        email,
        role as Role,
        password_hash,
        must_change_password,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_user).transpose()
}

/// The user signing in as `email`.
pub async fn by_email(pool: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, merchant_id, email, role, password_hash, totp_secret, totp_pending,
                  totp_last_step, failed_attempts, locked_until, must_change_password, created_at
           FROM dashboard_users WHERE email = $1 AND disabled_at IS NULL"#,
        email,
    )
    .fetch_optional(pool)
    .await?;
    row.map(Row::into_user).transpose()
}

/// Whether a user (enabled or not) has `email`: emails are unique over
/// all merchants.
pub async fn email_taken(conn: &mut PgConnection, email: &str) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM dashboard_users WHERE email = $1) AS "taken!""#,
        email
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(taken)
}

/// A user by id, locked for update when `conn` is in a transaction.
pub async fn lock(conn: &mut PgConnection, id: &UserId) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, merchant_id, email, role, password_hash, totp_secret, totp_pending,
                  totp_last_step, failed_attempts, locked_until, must_change_password, created_at
           FROM dashboard_users WHERE id = $1 AND disabled_at IS NULL FOR UPDATE"#,
        id.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_user).transpose()
}

/// The users of a merchant, oldest first.
pub async fn list(pool: &Db, merchant: &MerchantId) -> Result<Vec<User>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, merchant_id, email, role, password_hash, totp_secret, totp_pending,
                  totp_last_step, failed_attempts, locked_until, must_change_password, created_at
           FROM dashboard_users WHERE merchant_id = $1 AND disabled_at IS NULL
           ORDER BY created_at, id"#,
        merchant.as_str(),
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Row::into_user).collect()
}

/// Records a failure; locks the user when it is the `max`-th in a row.
/// Returns whether this failure locked the user.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: &UserId,
    max: i32,
    lockout_secs: i64,
) -> Result<bool, sqlx::Error> {
    let locked = sqlx::query_scalar!(
        r#"UPDATE dashboard_users
           SET failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 ELSE failed_attempts + 1 END,
               locked_until = CASE WHEN failed_attempts + 1 >= $2
                                   THEN now() + make_interval(secs => $3) ELSE locked_until END
           WHERE id = $1
           RETURNING locked_until IS NOT NULL AND locked_until > now() AS "locked!""#,
        id.as_str(),
        max,
        lockout_secs as f64,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(locked)
}

/// Clears the failure count after a success.
pub async fn record_success(conn: &mut PgConnection, id: &UserId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_users SET failed_attempts = 0, locked_until = NULL WHERE id = $1",
        id.as_str()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores `step` as the last accepted code's, if it is later than the one
/// stored: `false` when a concurrent request used it first.
pub async fn use_step(
    conn: &mut PgConnection,
    id: &UserId,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE dashboard_users SET totp_last_step = $2
           WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)"#,
        id.as_str(),
        step
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Offers a new secret at enrolment.
pub async fn set_pending_secret(
    conn: &mut PgConnection,
    id: &UserId,
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_users SET totp_pending = $2 WHERE id = $1",
        id.as_str(),
        sealed
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Makes the offered secret the user's, and replaces the recovery codes.
pub async fn confirm_secret(
    conn: &mut PgConnection,
    id: &UserId,
    sealed: &[u8],
    recovery_hashes: &[Vec<u8>],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_users SET totp_secret = $2, totp_pending = NULL WHERE id = $1",
        id.as_str(),
        sealed
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM dashboard_recovery_codes WHERE user_id = $1",
        id.as_str()
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"INSERT INTO dashboard_recovery_codes (user_id, code_hash)
           SELECT $1, h FROM unnest($2::bytea[]) AS h"#,
        id.as_str(),
        recovery_hashes,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Uses a recovery code once: `true` when it was unused and is now used.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    id: &UserId,
    hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        r#"UPDATE dashboard_recovery_codes SET used_at = now()
           WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL"#,
        id.as_str(),
        hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Recent failed sign-ins from one address.
pub async fn failures_from(pool: &Db, ip: &str, window_secs: i64) -> Result<i64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM dashboard_signin_attempts
           WHERE ip = $1 AND NOT succeeded AND at > now() - make_interval(secs => $2)"#,
        ip,
        window_secs as f64,
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Records a sign-in attempt.
pub async fn record_attempt(
    conn: &mut PgConnection,
    email: &str,
    ip: Option<&str>,
    succeeded: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO dashboard_signin_attempts (email, ip, succeeded) VALUES ($1, $2, $3)",
        email,
        ip,
        succeeded
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces a user's password hash; `one_time` when someone other than
/// the user chose it (the user must then replace it at sign-in).
pub async fn set_password(
    conn: &mut PgConnection,
    id: &UserId,
    password_hash: &str,
    one_time: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE dashboard_users SET password_hash = $2, failed_attempts = 0, locked_until = NULL,
                must_change_password = $3 WHERE id = $1",
        id.as_str(),
        password_hash,
        one_time
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
