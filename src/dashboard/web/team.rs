//! The team: its users, the invitations, the invite form (admins, with a
//! fresh code), and the invitee's side of the one-time link: choose a
//! password, then enrol two-factor sign-in like any first sign-in.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use time::OffsetDateTime;

use super::form::Form;
use super::format::time;
use super::guard::{self, code_field, message, with_status};
use super::layout;
use super::session::{
    self, SIGN_IN_COOKIE, Signed, cookie, dashboard, form_message, redirect_with_session,
    set_cookie,
};
use crate::api::AppState;
use crate::api::client_ip::ClientIp;
use crate::crypto::constant_time_eq;
use crate::dashboard::{Action, DashboardError, Role};

async fn team_page(
    state: &AppState,
    signed: &Signed,
    note: Option<(bool, String)>,
    link: Option<&str>,
) -> Response {
    let dashboard = dashboard(state);
    let users = match dashboard.team(&signed.user).await {
        Ok(u) => u,
        Err(e) => return layout::dashboard_error(&e),
    };
    let admin = signed.user.role.may(Action::ManageTeam);
    let invites = if admin {
        match dashboard.invitations(&signed.user).await {
            Ok(i) => i,
            Err(e) => return layout::dashboard_error(&e),
        }
    } else {
        Vec::new()
    };
    let now = OffsetDateTime::now_utc();
    let content = html! {
        h1 { "Team" }
        (message(&note))
        @if let Some(link) = link {
            div.notice.secret role="alert" {
                p { strong { "Invitation link" } " — shown only now, works once. Send it to the invitee over a channel you trust:" }
                p { code id="invite-link" { (link) } }
            }
        }
        table id="team" {
            thead { tr { th { "Email" } th { "Role" } th { "Two-factor" } th { "Since" } } }
            tbody { @for u in &users { tr {
                td { (u.email) } td { (u.role) }
                td { @if u.totp_secret.is_some() { "on" } @else { "not set up" } }
                td { (time(u.created_at.unix_timestamp())) }
            } } }
        }
        @if admin {
            h2 { "Invitations" }
            table id="invites" {
                thead { tr { th { "Email" } th { "Role" } th { "Sent" } th { "Status" } } }
                tbody { @for i in &invites { tr {
                    td { (i.email) } td { (i.role) } td { (time(i.created_at.unix_timestamp())) }
                    td { @if let Some(at) = i.accepted_at { "accepted " (time(at.unix_timestamp())) }
                         @else if i.expires_at <= now { "expired" }
                         @else { "open until " (time(i.expires_at.unix_timestamp())) } }
                } } }
            }
            @if invites.is_empty() { p.empty { "No invitations." } }
            h2 { "Invite someone" }
            form.stack method="post" action="/dashboard/team/invite" id="invite" {
                input type="hidden" name="csrf" value=(signed.session.csrf_token);
                label { "Email " input type="email" name="email" required; }
                label { "Role "
                    select name="role" { @for r in Role::ALL { option value=(r) selected[r == Role::Analyst] { (r) } } } }
                (code_field())
                button type="submit" { "Create invitation link" }
            }
            p.small { "admin: everything · developer: API keys and webhooks · support: refunds and disputes · analyst: reads only." }
        }
    };
    layout::page("Team", signed, "/dashboard/team", content)
}

pub async fn team(State(state): State<AppState>, signed: Signed) -> Response {
    team_page(&state, &signed, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    csrf: String,
    email: String,
    role: String,
    #[serde(default)]
    code: String,
}

/// The link's origin: the `Host` the admin reached the node by (the
/// dashboard is same-origin), with the scheme the cookie policy implies.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.config.server.dev {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

pub async fn invite(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Response {
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageTeam,
        "team.invite",
        None,
    )
    .await
    {
        return r;
    }
    let Ok(role) = form.role.parse::<Role>() else {
        return layout::error_page(
            StatusCode::BAD_REQUEST,
            "The form field `role` is wrong: expected admin, developer, analyst or support",
        );
    };
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            team_page(
                &state,
                &signed,
                Some((false, format!("Nobody invited: {m}"))),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    match dashboard(&state)
        .invite(&signed.user, &form.email, role, &signed.origin)
        .await
    {
        Ok(token) => {
            let link = format!("{}/dashboard/invite/{token}", base_url(&state, &headers));
            team_page(
                &state,
                &signed,
                Some((
                    true,
                    format!("Invitation created for {}.", form.email.trim()),
                )),
                Some(&link),
            )
            .await
        }
        Err(e @ DashboardError::Invalid { .. }) => with_status(
            team_page(
                &state,
                &signed,
                Some((false, format!("Nobody invited: {e}"))),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => layout::dashboard_error(&e),
    }
}

async fn accept_form(
    state: &AppState,
    token: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let invite = match dashboard(state).invitation(token).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return layout::error_page(
                StatusCode::NOT_FOUND,
                "This invitation link was used already, has expired or is not one. Ask your admin for a new one.",
            );
        }
        Err(e) => return layout::dashboard_error(&e),
    };
    // The form has no session yet: a double-submit token, as at sign-in.
    let csrf = crate::ids::random_base62(32);
    let mut response = layout::bare(
        status,
        "Join the team",
        html! {
            h1 { "Join the team" }
            p { "You are invited as " strong { (invite.role) } " with the email " strong id="invitee" { (invite.email) } ". Choose a password; two-factor sign-in is set up next." }
            @if let Some(m) = message { p.error id="error" role="alert" { (m) } }
            form method="post" action={ "/dashboard/invite/" (token) } id="accept" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="email" value=(invite.email) autocomplete="username";
                label { "Password (at least 12 characters)" input type="password" name="password" autocomplete="new-password" required autofocus; }
                label { "Password again" input type="password" name="password_again" autocomplete="new-password" required; }
                button type="submit" { "Join" }
            }
        },
    );
    response.headers_mut().append(
        axum::http::header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &csrf, Some(3600), state.config.server.dev),
    );
    response
}

pub async fn accept_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    accept_form(&state, &token, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    csrf: String,
    password: String,
    password_again: String,
}

pub async fn accept(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this dashboard (CSRF check failed). Reload the page and try again.",
        );
    }
    if form.password != form.password_again {
        return accept_form(
            &state,
            &token,
            Some("The two passwords differ."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let origin = session::origin_of(Some(ip), &headers);
    match dashboard(&state)
        .accept_invitation(&token, &form.password, &origin)
        .await
    {
        Ok(signed) => redirect_with_session("/dashboard/enrol", Some(&signed.token), &state),
        Err(e) => match form_message(&e) {
            Some(m) => accept_form(&state, &token, Some(&m), StatusCode::BAD_REQUEST).await,
            None => layout::dashboard_error(&e),
        },
    }
}
