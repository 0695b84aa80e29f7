//! The dashboard's pages (`/dashboard/…`) and the auditor's `/verify`.
//!
//! Server-rendered with maud (escaping by construction), one small script
//! for the live feed, the same strict content security policy as the
//! checkout (plus `form-action 'self'`: these pages post forms). Handlers
//! call [`crate::dashboard::Dashboard`] and the other subsystems; they hold
//! no SQL.
//!
//! Sessions ride in an HttpOnly, SameSite=Strict cookie, Secure unless the
//! node runs as `epg dev` (`server.dev`, plain http on loopback). Every
//! state-changing form carries the session's CSRF token; the sign-in form,
//! which has no session yet, carries a double-submit token instead.

// Handlers refuse with a ready page (`Result<_, Response>`): axum's
// `Response` is large, and boxing every refusal would only add noise.
#![allow(clippy::result_large_err)]

mod auth;
mod developers;
mod feed;
mod form;
mod format;
mod guard;
mod layout;
mod money;
mod pages;
mod payments;
mod session;
mod settings;
mod team;
pub mod verify;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::AppState;

pub use payments::{CSV_COLUMNS, csv_record};
pub use session::{Signed, origin_of};

/// What the dashboard's pages may load and do: their own script and style
/// sheet, requests and forms to this node, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../../../static/dashboard.css");
const SCRIPT: &str = include_str!("../../../static/dashboard.js");

/// The dashboard's routes (outside the API's key authentication: the
/// session cookie is the credential).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(pages::home))
        .route(
            "/dashboard/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route(
            "/dashboard/two-factor",
            get(auth::two_factor_page).post(auth::two_factor),
        )
        .route("/dashboard/enrol", get(auth::enrol_page).post(auth::enrol))
        .route("/dashboard/sign-out", post(auth::sign_out))
        .route(
            "/dashboard/password",
            get(auth::password_page).post(auth::change_password),
        )
        .route("/dashboard/payments", get(payments::list))
        .route("/dashboard/payments.csv", get(payments::csv))
        .route("/dashboard/payments/{id}", get(payments::detail))
        .route("/dashboard/payments/{id}/refund", post(payments::refund))
        .route("/dashboard/payments/{id}/proof.json", get(payments::proof))
        .route("/dashboard/balance", get(pages::balance))
        .route("/dashboard/audit-log", get(pages::audit_log))
        .route("/dashboard/refunds", get(money::refunds))
        .route("/dashboard/disputes", get(money::disputes))
        .route("/dashboard/disputes/{id}", get(money::dispute))
        .route("/dashboard/disputes/{id}/evidence", post(money::evidence))
        .route("/dashboard/disputes/{id}/close", post(money::concede))
        .route("/dashboard/settlements", get(money::settlements))
        .route("/dashboard/settlements/{id}", get(money::settlement_detail))
        .route(
            "/dashboard/webhooks",
            get(developers::webhooks).post(developers::create_endpoint),
        )
        .route("/dashboard/events/{id}", get(developers::event))
        .route(
            "/dashboard/events/{id}/redeliver",
            post(developers::redeliver),
        )
        .route(
            "/dashboard/api-keys",
            get(developers::keys).post(developers::create_key),
        )
        .route("/dashboard/api-keys/{id}/roll", post(developers::roll_key))
        .route(
            "/dashboard/api-keys/{id}/revoke",
            post(developers::revoke_key),
        )
        .route("/dashboard/team", get(team::team))
        .route("/dashboard/team/invite", post(team::invite))
        .route(
            "/dashboard/invite/{token}",
            get(team::accept_page).post(team::accept),
        )
        .route("/dashboard/settings", get(settings::settings))
        .route("/dashboard/settings/methods", post(settings::methods))
        .route("/dashboard/settings/risk", post(settings::risk))
        .route(
            "/dashboard/settings/payout-address",
            post(settings::payout_address),
        )
        .route(
            "/dashboard/settings/bank-account",
            post(settings::bank_account),
        )
        .route("/dashboard/feed", get(feed::stream))
        .route("/dashboard/static/dashboard.css", get(style))
        .route("/dashboard/static/dashboard.js", get(script))
        .merge(verify::router())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
