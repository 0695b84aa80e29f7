//! Who is asking: the session cookie, resolved to a session and its user.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout;
use crate::api::AppState;
use crate::api::client_ip::ClientIp;
use crate::crypto::constant_time_eq;
use crate::dashboard::audit_log::Origin;
use crate::dashboard::sessions::Session;
use crate::dashboard::users::User;
use crate::dashboard::{Dashboard, DashboardError};

/// The session cookie's name.
pub const COOKIE: &str = "epg_dashboard";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_COOKIE: &str = "epg_sign_in";

/// The dashboard of a request's node.
pub fn dashboard(state: &AppState) -> Dashboard {
    Dashboard::new(
        state.pool.clone(),
        &state.keys,
        state.config.dashboard.clone(),
    )
}

/// Where a request came from, for the audit log.
pub fn origin_of(parts_ip: Option<std::net::IpAddr>, headers: &HeaderMap) -> Origin {
    Origin {
        ip: parts_ip.map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure unless `dev`.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, dev: bool) -> HeaderValue {
    let secure = if dev { "" } else { "; Secure" };
    let age = match max_age {
        Some(secs) => format!("; Max-Age={secs}"),
        None => String::new(),
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("epg_invalid=; Max-Age=0"))
}

/// A session and its user, resolved from the cookie; `full` when the
/// second factor was given.
async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<(Session, User)>, Response> {
    let Some(token) = cookie(&parts.headers, COOKIE) else {
        return Ok(None);
    };
    dashboard(state)
        .current(token)
        .await
        .map_err(|e| layout::dashboard_error(&e))
}

fn origin_from_parts(parts: &Parts) -> Origin {
    let ip = parts.extensions.get::<ClientIp>().map(|c| c.0);
    origin_of(ip, &parts.headers)
}

/// A signed-in user: password and second factor given. Pages without it
/// redirect to the sign-in form.
#[derive(Debug)]
pub struct Signed {
    /// The session (its CSRF token).
    pub session: Session,
    /// Who.
    pub user: User,
    /// From where.
    pub origin: Origin,
}

impl Signed {
    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), Response> {
        if constant_time_eq(token.as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(layout::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this dashboard (CSRF check failed). Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match resolve(parts, state).await? {
            Some((session, user))
                if session.mfa_at.is_some()
                    && user.totp_secret.is_some()
                    && user.must_change_password =>
            {
                Err(Redirect::to("/dashboard/password").into_response())
            }
            Some((session, user)) if session.mfa_at.is_some() && user.totp_secret.is_some() => {
                Ok(Signed {
                    session,
                    user,
                    origin: origin_from_parts(parts),
                })
            }
            Some((_, user)) if user.totp_secret.is_none() => {
                Err(Redirect::to("/dashboard/enrol").into_response())
            }
            Some(_) => Err(Redirect::to("/dashboard/two-factor").into_response()),
            None => Err(Redirect::to("/dashboard/sign-in").into_response()),
        }
    }
}

/// A session that has the password but not yet the second factor.
#[derive(Debug)]
pub struct Pending {
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
    /// From where.
    pub origin: Origin,
}

impl Pending {
    /// As [`Signed::check_csrf`].
    pub fn check_csrf(&self, token: &str) -> Result<(), Response> {
        if constant_time_eq(token.as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(layout::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired (CSRF check failed). Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Pending {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match resolve(parts, state).await? {
            Some((session, user)) => Ok(Pending {
                session,
                user,
                origin: origin_from_parts(parts),
            }),
            None => Err(Redirect::to("/dashboard/sign-in").into_response()),
        }
    }
}

/// A redirect that also sets (or clears) the session cookie.
pub fn redirect_with_session(to: &str, token: Option<&str>, state: &AppState) -> Response {
    let dev = state.config.server.dev;
    let value = match token {
        Some(t) => set_cookie(COOKIE, t, None, dev),
        None => set_cookie(COOKIE, "", Some(0), dev),
    };
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

/// Maps a refusal that a form can show next to itself.
pub fn form_message(e: &DashboardError) -> Option<String> {
    match e {
        DashboardError::Invalid { .. }
        | DashboardError::BadCredentials
        | DashboardError::BadCode
        | DashboardError::Locked { .. }
        | DashboardError::RateLimited => Some(e.to_string()),
        _ => None,
    }
}
