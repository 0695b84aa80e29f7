//! The frame every page shares: head, navigation, error pages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::CSP;
use super::session::Signed;
use crate::api::docs::html_headers;
use crate::dashboard::DashboardError;

/// The navigation: path and label.
const NAV: [(&str, &str); 12] = [
    ("/dashboard", "Home"),
    ("/dashboard/payments", "Payments"),
    ("/dashboard/refunds", "Refunds"),
    ("/dashboard/disputes", "Disputes"),
    ("/dashboard/balance", "Balance"),
    ("/dashboard/settlements", "Settlements"),
    ("/dashboard/webhooks", "Webhooks"),
    ("/dashboard/api-keys", "API keys"),
    ("/dashboard/team", "Team"),
    ("/dashboard/settings", "Settings"),
    ("/dashboard/audit-log", "Audit log"),
    ("/dashboard/password", "Password"),
];

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · E-PG" }
                link rel="stylesheet" href="/dashboard/static/dashboard.css";
                script src="/dashboard/static/dashboard.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A signed-in page with the navigation and the sign-out button.
pub fn page(title: &str, signed: &Signed, current: &str, content: Markup) -> Response {
    let body = html! {
        header.top {
            span.brand { "E-PG" }
            nav {
                @for (path, label) in NAV {
                    a href=(path) class=[(path == current).then_some("current")] { (label) }
                }
            }
            span.who { (signed.user.email) " · " (signed.user.role) }
            form method="post" action="/dashboard/sign-out" {
                input type="hidden" name="csrf" value=(signed.session.csrf_token);
                button.link type="submit" { "Sign out" }
            }
        }
        main id="main" data-feed="/dashboard/feed" { (content) }
    };
    html_response(StatusCode::OK, document(title, body))
}

/// A page outside the session (sign-in, enrolment).
pub fn bare(status: StatusCode, title: &str, content: Markup) -> Response {
    let body = html! {
        main.narrow {
            p.brand { "E-PG dashboard" }
            (content)
        }
    };
    html_response(status, document(title, body))
}

/// HTML with the dashboard's policy headers; never cached (pages show
/// merchants' data and CSRF tokens).
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, html_headers(CSP), markup.into_string()).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A page that says what went wrong.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    bare(
        status,
        "Error",
        html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p.error id="error" { (message) }
            p { a href="/dashboard" { "Back to the dashboard" } }
        },
    )
}

/// The page of a refusal.
pub fn dashboard_error(e: &DashboardError) -> Response {
    let status = match e {
        DashboardError::Invalid { .. } => StatusCode::BAD_REQUEST,
        DashboardError::BadCredentials | DashboardError::BadCode | DashboardError::NoSession => {
            StatusCode::UNAUTHORIZED
        }
        DashboardError::Locked { .. } | DashboardError::RateLimited => {
            StatusCode::TOO_MANY_REQUESTS
        }
        DashboardError::Forbidden { .. } => StatusCode::FORBIDDEN,
        DashboardError::Db(err) => {
            tracing::error!(error = %err, "dashboard: database error");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            );
        }
    };
    error_page(status, &e.to_string())
}
