//! What the dashboard's pages and the CLI call: users, sign-in with the
//! second factor, enrolment, step-up and the audit log. Every change is
//! one transaction with its audit entry.

use serde_json::json;
use time::OffsetDateTime;

use super::audit_log::{self, Entry, NewEntry, Origin};
use super::invites::{self, Invite};
use super::sessions::{self, Session};
use super::users::{self, User};
use super::{DashboardConfig, Role, password, totp};
use crate::crypto::{Keyring, Purpose, Sealer, sha256};
use crate::db::{Db, DbTx};
use crate::events::EventType;
use crate::ids::MerchantId;

/// Why a dashboard operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A field is wrong; `param` names it.
    #[error("{message}")]
    Invalid {
        /// The form field.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Email or password wrong (never says which).
    #[error("the email or the password is wrong")]
    BadCredentials,
    /// The code (TOTP or recovery) is wrong or already used.
    #[error("the code is wrong or was already used")]
    BadCode,
    /// Too many failures: sign-in refused until then.
    #[error("too many failed attempts: sign-in is locked until {until}")]
    Locked {
        /// End of the lockout.
        until: OffsetDateTime,
    },
    /// Too many failures from this address.
    #[error("too many failed sign-ins from this address; try again later")]
    RateLimited,
    /// The user's role may not do this.
    #[error("your role ({role}) may not {what}")]
    Forbidden {
        /// The user's role.
        role: Role,
        /// The refused action, in words.
        what: &'static str,
    },
    /// The session ended or never was.
    #[error("the session has ended; sign in again")]
    NoSession,
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A session just created, with the token for its cookie.
#[derive(Debug)]
pub struct SignedIn {
    /// Goes into the cookie, never stored.
    pub token: String,
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
}

/// The dashboard's accounts.
#[derive(Clone)]
pub struct Dashboard {
    pool: Db,
    totp: Sealer,
    config: DashboardConfig,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

/// Recovery codes handed out at enrolment.
const RECOVERY_CODES: usize = 10;

/// What an audit entry says beside who and from where.
struct AuditDetail<'a> {
    action: &'a str,
    target: Option<&'a str>,
    detail: serde_json::Value,
}

impl<'a> AuditDetail<'a> {
    fn new(action: &'a str, target: Option<&'a str>, detail: serde_json::Value) -> Self {
        Self {
            action,
            target,
            detail,
        }
    }
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn recovery_hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    sha256(normal.as_bytes()).to_vec()
}

/// The normalized email, or why it is not one.
fn check_email(email: &str) -> Result<String, DashboardError> {
    let email = normalize_email(email);
    if email.len() > 254
        || email.chars().any(char::is_whitespace)
        || email.split('@').filter(|p| !p.is_empty()).count() != 2
        || email.matches('@').count() != 1
    {
        return Err(DashboardError::Invalid {
            param: "email",
            message: format!("`{email}` is not an email address"),
        });
    }
    Ok(email)
}

fn secs(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Dashboard {
    /// The dashboard over `pool`, sealing TOTP secrets with `keys`.
    pub fn new(pool: Db, keys: &Keyring, config: DashboardConfig) -> Self {
        Self {
            pool,
            totp: keys.sealer(Purpose::TotpSecrets),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DashboardConfig {
        &self.config
    }

    /// Creates a user with a password they chose.
    pub async fn create_user(
        &self,
        merchant: &MerchantId,
        email: &str,
        role: Role,
        password_text: &str,
        origin: &Origin,
        actor: &str,
    ) -> Result<User, DashboardError> {
        self.insert_user(merchant, email, role, password_text, false, origin, actor)
            .await
    }

    /// Creates a user with a one-time password someone else will hand
    /// over (`epg users create`): the user must choose their own at the
    /// first sign-in.
    pub async fn create_user_one_time(
        &self,
        merchant: &MerchantId,
        email: &str,
        role: Role,
        password_text: &str,
        origin: &Origin,
        actor: &str,
    ) -> Result<User, DashboardError> {
        self.insert_user(merchant, email, role, password_text, true, origin, actor)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_user(
        &self,
        merchant: &MerchantId,
        email: &str,
        role: Role,
        password_text: &str,
        one_time: bool,
        origin: &Origin,
        actor: &str,
    ) -> Result<User, DashboardError> {
        let email = check_email(email)?;
        password::check_policy(password_text).map_err(|message| DashboardError::Invalid {
            param: "password",
            message,
        })?;
        let hash = password::hash(password_text).map_err(|message| DashboardError::Invalid {
            param: "password",
            message,
        })?;
        let mut tx = self.pool.begin().await?;
        let user = users::insert(&mut tx, merchant, &email, role, &hash, one_time)
            .await?
            .ok_or_else(|| DashboardError::Invalid {
                param: "email",
                message: format!("a dashboard user with the email {email} exists already"),
            })?;
        audit_log::append(
            &mut tx,
            &NewEntry {
                merchant,
                user: None,
                actor,
                action: "user.create",
                target: Some(user.id.as_str()),
                detail: json!({"email": email, "role": role, "one_time_password": one_time}),
                origin,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The demo user of `epg dev`: created on the first run, given a fresh
    /// one-time password on every run (two-factor enrolment stays).
    pub async fn ensure_demo_user(
        &self,
        merchant: &MerchantId,
        email: &str,
        password_text: &str,
    ) -> Result<User, DashboardError> {
        let origin = Origin::default();
        if let Some(user) = users::by_email(&self.pool, email).await? {
            let hash =
                password::hash(password_text).map_err(|message| DashboardError::Invalid {
                    param: "password",
                    message,
                })?;
            let mut tx = self.pool.begin().await?;
            users::set_password(&mut tx, &user.id, &hash, true).await?;
            audit_log::append(
                &mut tx,
                &NewEntry {
                    merchant: &user.merchant_id,
                    user: None,
                    actor: "epg dev",
                    action: "user.set_password",
                    target: Some(user.id.as_str()),
                    detail: json!({}),
                    origin: &origin,
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(user);
        }
        self.create_user_one_time(
            merchant,
            email,
            Role::Admin,
            password_text,
            &origin,
            "epg dev",
        )
        .await
    }

    /// Checks email and password. The session it opens can do nothing but
    /// give the second factor (or enrol one).
    pub async fn sign_in(
        &self,
        email: &str,
        password_text: &str,
        origin: &Origin,
    ) -> Result<SignedIn, DashboardError> {
        let email = normalize_email(email);
        if let Some(ip) = &origin.ip {
            let failures = users::failures_from(&self.pool, ip, 15 * 60).await?;
            if failures >= i64::from(self.config.failures_per_address) {
                return Err(DashboardError::RateLimited);
            }
        }
        let user = users::by_email(&self.pool, &email).await?;
        let Some(user) = user else {
            // As slow as a known user, so timing does not list accounts.
            let _ = password::verify(password::decoy(), password_text);
            let mut conn = self.pool.acquire().await?;
            users::record_attempt(&mut conn, &email, origin.ip.as_deref(), false).await?;
            return Err(DashboardError::BadCredentials);
        };
        if let Some(until) = user.locked_until
            && until > OffsetDateTime::now_utc()
        {
            return Err(DashboardError::Locked { until });
        }
        if !password::verify(&user.password_hash, password_text) {
            return Err(self.fail(&user, origin, "session.sign_in_failed").await?);
        }
        let mut tx = self.pool.begin().await?;
        users::record_attempt(&mut tx, &email, origin.ip.as_deref(), true).await?;
        let entry = AuditDetail::new("session.password_ok", None, json!({}));
        self.open_session(tx, user, false, origin, entry).await
    }

    /// Counts a failure against `user`; the error to answer with.
    async fn fail(
        &self,
        user: &User,
        origin: &Origin,
        action: &str,
    ) -> Result<DashboardError, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        users::record_attempt(&mut tx, &user.email, origin.ip.as_deref(), false).await?;
        let max = i32::try_from(self.config.max_failed_attempts).unwrap_or(i32::MAX);
        let locked =
            users::record_failure(&mut tx, &user.id, max, secs(self.config.lockout_secs)).await?;
        audit_log::append(
            &mut tx,
            &NewEntry {
                merchant: &user.merchant_id,
                user: Some(&user.id),
                actor: &user.email,
                action,
                target: None,
                detail: json!({}),
                origin,
            },
        )
        .await?;
        let error = if locked {
            let until =
                OffsetDateTime::now_utc() + time::Duration::seconds(secs(self.config.lockout_secs));
            crate::events::record(
                &mut tx,
                &user.merchant_id,
                EventType::DashboardUserLocked,
                &json!({
                    "id": user.id,
                    "object": "dashboard_user",
                    "email": user.email,
                    "locked_until": until.unix_timestamp(),
                }),
            )
            .await?;
            audit_log::append(
                &mut tx,
                &NewEntry {
                    merchant: &user.merchant_id,
                    user: Some(&user.id),
                    actor: &user.email,
                    action: "user.locked",
                    target: Some(user.id.as_str()),
                    detail: json!({"locked_until": until.unix_timestamp()}),
                    origin,
                },
            )
            .await?;
            DashboardError::Locked { until }
        } else if matches!(
            action,
            "session.sign_in_failed" | "user.change_password_failed"
        ) {
            DashboardError::BadCredentials
        } else {
            DashboardError::BadCode
        };
        tx.commit().await?;
        Ok(error)
    }

    /// The session of a cookie's token and its user.
    pub async fn current(&self, token: &str) -> Result<Option<(Session, User)>, DashboardError> {
        let Some(session) = sessions::find(&self.pool, token).await? else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let Some(user) = users::lock(&mut conn, &session.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, user)))
    }

    fn open_secret(&self, user: &User, sealed: &[u8]) -> Option<Vec<u8>> {
        self.totp.open(sealed, user.id.as_str().as_bytes()).ok()
    }

    /// Checks a TOTP code (or, when `recovery` is allowed, a recovery code)
    /// of `user`, inside `tx`; the code cannot be used again.
    async fn check_code(
        &self,
        tx: &mut sqlx::PgConnection,
        user: &User,
        code: &str,
        recovery: bool,
    ) -> Result<bool, DashboardError> {
        let Some(secret) = user
            .totp_secret
            .as_deref()
            .and_then(|s| self.open_secret(user, s))
        else {
            return Ok(false);
        };
        let code = code.trim();
        if code.len() == totp::DIGITS as usize {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            return Ok(
                match totp::verify(&secret, code, now, user.totp_last_step) {
                    Some(step) => users::use_step(tx, &user.id, step).await?,
                    None => false,
                },
            );
        }
        if recovery && (10..=12).contains(&code.len()) {
            return Ok(users::use_recovery_code(tx, &user.id, &recovery_hash(code)).await?);
        }
        Ok(false)
    }

    /// The second factor of a password-only session: a TOTP or recovery
    /// code. The session is replaced by a fresh one (its token changes when
    /// its privilege does).
    pub async fn second_factor(
        &self,
        session: &Session,
        code: &str,
        origin: &Origin,
    ) -> Result<SignedIn, DashboardError> {
        let mut tx = self.pool.begin().await?;
        let user = users::lock(&mut tx, &session.user_id)
            .await?
            .ok_or(DashboardError::NoSession)?;
        if let Some(until) = user.locked_until
            && until > OffsetDateTime::now_utc()
        {
            return Err(DashboardError::Locked { until });
        }
        if !self.check_code(&mut tx, &user, code, true).await? {
            tx.rollback().await?;
            return Err(self.fail(&user, origin, "session.code_failed").await?);
        }
        let signed = self
            .upgrade(tx, session, user, origin, "session.sign_in")
            .await?;
        Ok(signed)
    }

    async fn upgrade(
        &self,
        mut tx: DbTx,
        session: &Session,
        user: User,
        origin: &Origin,
        action: &str,
    ) -> Result<SignedIn, DashboardError> {
        users::record_success(&mut tx, &user.id).await?;
        sessions::end(&mut tx, &session.id_hash).await?;
        let entry = AuditDetail::new(action, None, json!({}));
        self.open_session(tx, user, true, origin, entry).await
    }

    /// Opens a session for `user` in `tx`, with the audit entry saying why,
    /// and commits: a session exists only with its record.
    async fn open_session(
        &self,
        mut tx: DbTx,
        user: User,
        second_factor: bool,
        origin: &Origin,
        entry: AuditDetail<'_>,
    ) -> Result<SignedIn, DashboardError> {
        let (token, session) = sessions::create(
            &mut tx,
            &user.id,
            second_factor,
            origin.ip.as_deref(),
            origin.user_agent.as_deref(),
            secs(self.config.session_ttl_secs),
        )
        .await?;
        self.record_in(
            &mut tx,
            &user,
            entry.action,
            entry.target,
            entry.detail,
            origin,
        )
        .await?;
        tx.commit().await?;
        Ok(SignedIn {
            token,
            session,
            user,
        })
    }

    /// Offers a fresh secret to a user without one: its base32 form and the
    /// `otpauth://` URI for the QR code. Offering again replaces it.
    pub async fn start_enrolment(
        &self,
        user: &User,
        issuer: &str,
    ) -> Result<(String, String), DashboardError> {
        if user.totp_secret.is_some() {
            return Err(DashboardError::Invalid {
                param: "code",
                message: "two-factor sign-in is already set up".into(),
            });
        }
        let secret = match user
            .totp_pending
            .as_deref()
            .and_then(|s| self.open_secret(user, s))
        {
            Some(secret) => secret,
            None => {
                let secret = totp::generate_secret().to_vec();
                let sealed = self.totp.seal(&secret, user.id.as_str().as_bytes());
                let mut conn = self.pool.acquire().await?;
                users::set_pending_secret(&mut conn, &user.id, &sealed).await?;
                secret
            }
        };
        Ok((
            totp::base32(&secret),
            totp::uri(issuer, &user.email, &secret),
        ))
    }

    /// Confirms enrolment with a code of the offered secret: the session
    /// gets its second factor, and the user ten one-time recovery codes
    /// (shown once, stored hashed).
    pub async fn confirm_enrolment(
        &self,
        session: &Session,
        code: &str,
        origin: &Origin,
    ) -> Result<(SignedIn, Vec<String>), DashboardError> {
        let mut tx = self.pool.begin().await?;
        let user = users::lock(&mut tx, &session.user_id)
            .await?
            .ok_or(DashboardError::NoSession)?;
        let secret = match (&user.totp_secret, &user.totp_pending) {
            (None, Some(pending)) => self.open_secret(&user, pending),
            _ => None,
        };
        let Some(secret) = secret else {
            return Err(DashboardError::Invalid {
                param: "code",
                message: "no enrolment in progress: reload the page".into(),
            });
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let Some(step) = totp::verify(&secret, code, now, user.totp_last_step) else {
            tx.rollback().await?;
            return Err(self.fail(&user, origin, "session.code_failed").await?);
        };
        users::use_step(&mut tx, &user.id, step).await?;
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| {
                let raw = crate::ids::random_base62(10).to_lowercase();
                format!("{}-{}", &raw[..5], &raw[5..])
            })
            .collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_hash(c)).collect();
        let sealed = self.totp.seal(&secret, user.id.as_str().as_bytes());
        users::confirm_secret(&mut tx, &user.id, &sealed, &hashes).await?;
        let signed = self
            .upgrade(tx, session, user, origin, "user.enrol_totp")
            .await?;
        Ok((signed, codes))
    }

    /// A fresh TOTP code for a sensitive action (recovery codes do not
    /// count). Wrong codes count towards the lockout like at sign-in.
    pub async fn step_up(
        &self,
        session: &Session,
        code: &str,
        origin: &Origin,
    ) -> Result<(), DashboardError> {
        let mut tx = self.pool.begin().await?;
        let user = users::lock(&mut tx, &session.user_id)
            .await?
            .ok_or(DashboardError::NoSession)?;
        if !self.check_code(&mut tx, &user, code, false).await? {
            tx.rollback().await?;
            return Err(self.fail(&user, origin, "session.step_up_failed").await?);
        }
        sessions::stepped_up(&mut tx, &session.id_hash).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn sign_out(
        &self,
        session: &Session,
        user: &User,
        origin: &Origin,
    ) -> Result<(), DashboardError> {
        let mut tx = self.pool.begin().await?;
        sessions::end(&mut tx, &session.id_hash).await?;
        self.record_in(&mut tx, user, "session.sign_out", None, json!({}), origin)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes an audit entry for an action of `user` done elsewhere.
    pub async fn record(
        &self,
        user: &User,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
        origin: &Origin,
    ) -> Result<(), DashboardError> {
        let mut conn = self.pool.acquire().await?;
        self.record_in(&mut conn, user, action, target, detail, origin)
            .await
    }

    async fn record_in(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &User,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
        origin: &Origin,
    ) -> Result<(), DashboardError> {
        audit_log::append(
            conn,
            &NewEntry {
                merchant: &user.merchant_id,
                user: Some(&user.id),
                actor: &user.email,
                action,
                target,
                detail,
                origin,
            },
        )
        .await?;
        Ok(())
    }

    /// The audit log of the user's merchant (admins only).
    pub async fn audit_log(&self, user: &User, limit: i64) -> Result<Vec<Entry>, DashboardError> {
        if !user.role.may(super::Action::ReadAuditLog) {
            return Err(DashboardError::Forbidden {
                role: user.role,
                what: "read the audit log",
            });
        }
        Ok(audit_log::list(&self.pool, &user.merchant_id, None, limit).await?)
    }

    /// Replaces the signed-in user's password (after the one-time one, or
    /// whenever they like): the current one is asked again, so a session
    /// left open cannot take the account over.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &str,
        origin: &Origin,
    ) -> Result<(), DashboardError> {
        let mut tx = self.pool.begin().await?;
        let user = users::lock(&mut tx, &session.user_id)
            .await?
            .ok_or(DashboardError::NoSession)?;
        if !password::verify(&user.password_hash, current) {
            tx.rollback().await?;
            return Err(self
                .fail(&user, origin, "user.change_password_failed")
                .await?);
        }
        if current == new {
            return Err(DashboardError::Invalid {
                param: "new_password",
                message: "choose a password other than the current one".into(),
            });
        }
        let invalid = |message| DashboardError::Invalid {
            param: "new_password",
            message,
        };
        password::check_policy(new).map_err(invalid)?;
        let hash = password::hash(new).map_err(invalid)?;
        users::set_password(&mut tx, &user.id, &hash, false).await?;
        self.record_in(
            &mut tx,
            &user,
            "user.change_password",
            Some(user.id.as_str()),
            json!({"was_one_time": user.must_change_password}),
            origin,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Invites `email` to the admin's merchant with `role`: the token of
    /// the one-time link (shown to the admin once). The caller asks for a
    /// fresh code first ([`Self::step_up`]).
    pub async fn invite(
        &self,
        admin: &User,
        email: &str,
        role: Role,
        origin: &Origin,
    ) -> Result<String, DashboardError> {
        if !admin.role.may(super::Action::ManageTeam) {
            return Err(DashboardError::Forbidden {
                role: admin.role,
                what: "invite users",
            });
        }
        let email = check_email(email)?;
        let mut tx = self.pool.begin().await?;
        if users::email_taken(&mut tx, &email).await? {
            return Err(DashboardError::Invalid {
                param: "email",
                message: format!("a dashboard user with the email {email} exists already"),
            });
        }
        let token = invites::insert(
            &mut tx,
            &admin.merchant_id,
            &email,
            role,
            &admin.id,
            secs(self.config.invite_ttl_secs),
        )
        .await?;
        self.record_in(
            &mut tx,
            admin,
            "team.invite",
            None,
            json!({"email": email, "role": role}),
            origin,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The open invitation of a link, if it is one.
    pub async fn invitation(&self, token: &str) -> Result<Option<Invite>, DashboardError> {
        let mut conn = self.pool.acquire().await?;
        Ok(invites::open(&mut conn, token).await?)
    }

    /// Accepts an invitation: the user is created with the password they
    /// chose, the link stops working, and the session opened can do
    /// nothing but enrol two-factor sign-in.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password_text: &str,
        origin: &Origin,
    ) -> Result<SignedIn, DashboardError> {
        let invalid = |message| DashboardError::Invalid {
            param: "password",
            message,
        };
        password::check_policy(password_text).map_err(invalid)?;
        let hash = password::hash(password_text).map_err(invalid)?;
        let mut tx = self.pool.begin().await?;
        let invite =
            invites::open(&mut tx, token)
                .await?
                .ok_or_else(|| DashboardError::Invalid {
                    param: "token",
                    message: "this invitation link was used already, has expired or is not one"
                        .into(),
                })?;
        let user = users::insert(
            &mut tx,
            &invite.merchant_id,
            &invite.email,
            invite.role,
            &hash,
            false,
        )
        .await?
        .ok_or_else(|| DashboardError::Invalid {
            param: "email",
            message: format!(
                "a dashboard user with the email {} exists already",
                invite.email
            ),
        })?;
        invites::accept(&mut tx, &invite.token_hash).await?;
        let target = user.id.to_string();
        let detail =
            json!({"email": user.email, "role": user.role, "invited_by": invite.invited_by});
        let entry = AuditDetail::new("team.invite_accepted", Some(&target), detail);
        self.open_session(tx, user, false, origin, entry).await
    }

    /// The invitations of the user's merchant, newest first.
    pub async fn invitations(&self, user: &User) -> Result<Vec<Invite>, DashboardError> {
        Ok(invites::list(&self.pool, &user.merchant_id, 100).await?)
    }

    /// The users of a merchant (`epg users list`).
    pub async fn users_of(&self, merchant: &MerchantId) -> Result<Vec<User>, DashboardError> {
        Ok(users::list(&self.pool, merchant).await?)
    }

    /// The team of the user's merchant.
    pub async fn team(&self, user: &User) -> Result<Vec<User>, DashboardError> {
        Ok(users::list(&self.pool, &user.merchant_id).await?)
    }
}
