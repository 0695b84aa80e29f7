//! The checks every state-changing page runs before calling a subsystem:
//! the role (refused with an audit entry, so a probe shows in the log)
//! and, for sensitive actions, a fresh TOTP code.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::layout;
use super::session::{Signed, dashboard};
use crate::api::AppState;
use crate::dashboard::Action;

/// The checks of a posted form before anything else: its CSRF token, then
/// the role (see [`require`]).
pub async fn admit(
    state: &AppState,
    signed: &Signed,
    csrf: &str,
    action: Action,
    audit: &str,
    target: Option<&str>,
) -> Result<(), Response> {
    signed.check_csrf(csrf)?;
    require(state, signed, action, audit, target).await
}

/// Refuses `signed` unless its role may do `action`; a refusal is written
/// to the audit log as `<audit>_refused`.
pub async fn require(
    state: &AppState,
    signed: &Signed,
    action: Action,
    audit: &str,
    target: Option<&str>,
) -> Result<(), Response> {
    if signed.user.role.may(action) {
        return Ok(());
    }
    // The refusal stands even if its record cannot be written.
    if let Err(e) = dashboard(state)
        .record(
            &signed.user,
            &format!("{audit}_refused"),
            target,
            json!({"why": "role", "role": signed.user.role}),
            &signed.origin,
        )
        .await
    {
        tracing::error!(error = %e, "dashboard: recording a refusal");
    }
    Err(layout::error_page(
        StatusCode::FORBIDDEN,
        &format!(
            "Your role ({}) may not {}.",
            signed.user.role,
            action.describe()
        ),
    ))
}

/// Asks for a fresh code from the user's authenticator: the message to
/// show beside the form when it is missing or wrong (wrong codes count
/// towards the lockout, and are in the audit log).
pub async fn step_up(state: &AppState, signed: &Signed, code: &str) -> Result<(), String> {
    if code.trim().is_empty() {
        return Err(
            "This action needs a fresh code from your authenticator app: type the current one."
                .into(),
        );
    }
    dashboard(state)
        .step_up(&signed.session, code.trim(), &signed.origin)
        .await
        .map_err(|e| format!("{e}. This action needs a fresh code from your authenticator app."))
}

/// Writes `action` of `signed` to the audit log; a failure to write it is
/// a server error (the action is done, its record must not be lost
/// silently).
pub async fn record(
    state: &AppState,
    signed: &Signed,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), Response> {
    dashboard(state)
        .record(&signed.user, action, target, detail, &signed.origin)
        .await
        .map_err(|e| layout::dashboard_error(&e))
}

/// `response` with another status (a form shown again after a refusal).
pub fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

/// A server error, logged with its cause.
pub fn server_error(what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard: {what}");
    layout::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.",
    )
}

/// A notice or an error above a page's content.
pub fn message(m: &Option<(bool, String)>) -> maud::Markup {
    maud::html! {
        @if let Some((ok, m)) = m {
            p class=(if *ok { "notice" } else { "error" }) id=(if *ok { "notice" } else { "error" }) role="alert" { (m) }
        }
    }
}

/// The field of a sensitive form that takes the fresh code.
pub fn code_field() -> maud::Markup {
    maud::html! {
        label { "Authenticator code (a fresh one) "
            input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required; }
    }
}
