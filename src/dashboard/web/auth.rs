//! Sign-in: password, then the TOTP code (or enrolment of one at the first
//! sign-in), then a fresh session; sign-out.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{PreEscaped, html};
use serde::Deserialize;

use super::form::{CsrfForm, Form};
use super::layout;
use super::session::{
    self, Pending, SIGN_IN_COOKIE, Signed, cookie, dashboard, form_message, redirect_with_session,
    set_cookie,
};
use crate::api::AppState;
use crate::api::client_ip::ClientIp;
use crate::crypto::constant_time_eq;
use crate::dashboard::DashboardError;

fn sign_in_form(
    state: &AppState,
    email: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = crate::ids::random_base62(32);
    let mut response = layout::bare(
        status,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p.error id="error" role="alert" { (m) } }
            form method="post" action="/dashboard/sign-in" id="sign-in" {
                input type="hidden" name="csrf" value=(token);
                label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Continue" }
            }
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &token, Some(3600), state.config.server.dev),
    );
    response
}

pub async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_form(&state, "", None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    csrf: String,
    email: String,
    password: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this dashboard (CSRF check failed). Reload the page and try again.",
        );
    }
    let origin = session::origin_of(Some(ip), &headers);
    match dashboard(&state)
        .sign_in(&form.email, &form.password, &origin)
        .await
    {
        Ok(signed) => {
            let next = if signed.user.totp_secret.is_some() {
                "/dashboard/two-factor"
            } else {
                "/dashboard/enrol"
            };
            redirect_with_session(next, Some(&signed.token), &state)
        }
        Err(e) => match form_message(&e) {
            Some(m) => sign_in_form(&state, &form.email, Some(&m), status_of(&e)),
            None => layout::dashboard_error(&e),
        },
    }
}

fn status_of(e: &DashboardError) -> StatusCode {
    match e {
        DashboardError::Locked { .. } | DashboardError::RateLimited => {
            StatusCode::TOO_MANY_REQUESTS
        }
        DashboardError::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn code_form(pending: &Pending, message: Option<&str>, status: StatusCode) -> Response {
    layout::bare(
        status,
        "Two-factor sign-in",
        html! {
            h1 { "Two-factor sign-in" }
            p { "Enter the 6-digit code of your authenticator app for " strong { (pending.user.email) } ", or one of your recovery codes." }
            @if let Some(m) = message { p.error id="error" role="alert" { (m) } }
            form method="post" action="/dashboard/two-factor" id="two-factor" {
                input type="hidden" name="csrf" value=(pending.session.csrf_token);
                label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub async fn two_factor_page(pending: Pending) -> Response {
    if pending.user.totp_secret.is_none() {
        return Redirect::to("/dashboard/enrol").into_response();
    }
    code_form(&pending, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn two_factor(
    State(state): State<AppState>,
    pending: Pending,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Err(r) = pending.check_csrf(&form.csrf) {
        return r;
    }
    match dashboard(&state)
        .second_factor(&pending.session, &form.code, &pending.origin)
        .await
    {
        Ok(signed) => redirect_with_session("/dashboard", Some(&signed.token), &state),
        Err(e) => match form_message(&e) {
            Some(m) => code_form(&pending, Some(&m), status_of(&e)),
            None => layout::dashboard_error(&e),
        },
    }
}

async fn enrol_form(
    state: &AppState,
    pending: &Pending,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let issuer = format!("E-PG {}", pending.user.merchant_id);
    let (secret, uri) = match dashboard(state)
        .start_enrolment(&pending.user, &issuer)
        .await
    {
        Ok(offer) => offer,
        Err(e) => return layout::dashboard_error(&e),
    };
    // An otpauth URI is far below the encoder's limit; were it not, the
    // key typed by hand below still enrols.
    let qr = crate::qr::QrCode::encode(uri.as_bytes())
        .map(|code| crate::qr::to_svg(&code, "Authenticator QR code"))
        .unwrap_or_default();
    layout::bare(
        status,
        "Set up two-factor sign-in",
        html! {
            h1 { "Set up two-factor sign-in" }
            p { "Scan this code with an authenticator app, then enter the 6-digit code it shows." }
            figure.qr id="qr" { (PreEscaped(qr)) }
            p { "Or type this key: " code id="secret" { (secret) } }
            details { summary { "otpauth URI" } code id="otpauth" { (uri) } }
            @if let Some(m) = message { p.error id="error" role="alert" { (m) } }
            form method="post" action="/dashboard/enrol" id="enrol" {
                input type="hidden" name="csrf" value=(pending.session.csrf_token);
                label { "Code" input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus; }
                button type="submit" { "Turn on" }
            }
        },
    )
}

pub async fn enrol_page(State(state): State<AppState>, pending: Pending) -> Response {
    if pending.user.totp_secret.is_some() {
        return Redirect::to("/dashboard/two-factor").into_response();
    }
    enrol_form(&state, &pending, None, StatusCode::OK).await
}

pub async fn enrol(
    State(state): State<AppState>,
    pending: Pending,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Err(r) = pending.check_csrf(&form.csrf) {
        return r;
    }
    match dashboard(&state)
        .confirm_enrolment(&pending.session, &form.code, &pending.origin)
        .await
    {
        Ok((signed, codes)) => {
            let mut response = layout::bare(
                StatusCode::OK,
                "Recovery codes",
                html! {
                    h1 { "Two-factor sign-in is on" }
                    p { "Keep these recovery codes somewhere safe. Each signs you in once if you lose your authenticator. They are shown only now." }
                    ul.codes id="recovery-codes" { @for c in &codes { li { code { (c) } } } }
                    p { a.button href="/dashboard" id="continue" { "Continue to the dashboard" } }
                },
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    session::COOKIE,
                    &signed.token,
                    None,
                    state.config.server.dev,
                ),
            );
            response
        }
        Err(e) => match form_message(&e) {
            Some(m) => enrol_form(&state, &pending, Some(&m), status_of(&e)).await,
            None => layout::dashboard_error(&e),
        },
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = signed.check_csrf(&form.csrf) {
        return r;
    }
    if let Err(e) = dashboard(&state)
        .sign_out(&signed.session, &signed.user, &signed.origin)
        .await
    {
        return layout::dashboard_error(&e);
    }
    redirect_with_session("/dashboard/sign-in", None, &state)
}

/// The password form: after the second factor, before any other page
/// when the password was a one-time one.
fn password_form(pending: &Pending, message: Option<&str>, status: StatusCode) -> Response {
    let forced = pending.user.must_change_password;
    layout::bare(
        status,
        "Choose a password",
        html! {
            h1 { "Choose a password" }
            @if forced {
                p { "You signed in with a one-time password. Choose your own before you go on: the one-time password stops working." }
            }
            @if let Some(m) = message { p.error id="error" role="alert" { (m) } }
            form method="post" action="/dashboard/password" id="password" {
                input type="hidden" name="csrf" value=(pending.session.csrf_token);
                input type="hidden" name="email" value=(pending.user.email) autocomplete="username";
                label { @if forced { "One-time password" } @else { "Current password" }
                    input type="password" name="current_password" autocomplete="current-password" required autofocus; }
                label { "New password (at least 12 characters)" input type="password" name="new_password" autocomplete="new-password" required; }
                label { "New password again" input type="password" name="new_password_again" autocomplete="new-password" required; }
                button type="submit" { "Save password" }
            }
        },
    )
}

/// Only a fully signed-in session (both factors) may change the password.
fn fully_signed(pending: &Pending) -> Result<(), Response> {
    if pending.user.totp_secret.is_none() {
        return Err(Redirect::to("/dashboard/enrol").into_response());
    }
    if pending.session.mfa_at.is_none() {
        return Err(Redirect::to("/dashboard/two-factor").into_response());
    }
    Ok(())
}

pub async fn password_page(pending: Pending) -> Response {
    if let Err(r) = fully_signed(&pending) {
        return r;
    }
    password_form(&pending, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    new_password_again: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    pending: Pending,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Err(r) = fully_signed(&pending) {
        return r;
    }
    if let Err(r) = pending.check_csrf(&form.csrf) {
        return r;
    }
    if form.new_password != form.new_password_again {
        return password_form(
            &pending,
            Some("The two new passwords differ."),
            StatusCode::BAD_REQUEST,
        );
    }
    match dashboard(&state)
        .change_password(
            &pending.session,
            &form.current_password,
            &form.new_password,
            &pending.origin,
        )
        .await
    {
        Ok(()) => Redirect::to("/dashboard").into_response(),
        Err(e) => match form_message(&e) {
            Some(m) => password_form(&pending, Some(&m), status_of(&e)),
            None => layout::dashboard_error(&e),
        },
    }
}
