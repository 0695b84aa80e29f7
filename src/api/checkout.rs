//! `GET /checkout/{payment_id}`: the hosted checkout page, and its script
//! and style sheet.
//!
//! The page is the same static HTML for every payment and needs no key to
//! load: the server never reads the query string (`client_secret`, `key`),
//! so nothing secret is echoed into HTML, logs or caches. In the browser,
//! `static/checkout.js` reads the payment's checkout view with the
//! publishable key and the client secret (`GET /v1/payments/{id}`),
//! confirms it (`POST /v1/payments/{id}/confirm`), answers a one-time-code
//! challenge (`POST /v1/payments/{id}/challenge`) and shows the outcome —
//! exactly the requests a publishable key may make (see
//! [`super::auth::AnyKey`] and the client-secret checks in
//! [`super::payments`]).
//!
//! The policy headers make the page safe to hand to customers: scripts,
//! styles and requests from this node only, no inline script, no framing
//! (clickjacking), no form submission (card inputs have no `name` and only
//! ever leave in the confirm request's JSON body), no referrer (the URL
//! holds the client secret), no caching.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::docs::html_headers;

/// The page.
const PAGE: &str = include_str!("../../static/checkout.html");
/// Its script.
const SCRIPT: &str = include_str!("../../static/checkout.js");
/// Its style sheet.
const STYLE: &str = include_str!("../../static/checkout.css");

/// What the page may load and do: its own script and style sheet, API
/// requests to this node, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; form-action 'none'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Routes of this resource (public router: no key).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout/{payment_id}", get(page))
        .route("/static/checkout.js", get(script))
        .route("/static/checkout.css", get(style))
}

#[tracing::instrument(skip_all)]
async fn page() -> Response {
    let mut response = (html_headers(CSP), PAGE).into_response();
    // The URL carries the client secret: keep the page out of every cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLE,
    )
        .into_response()
}
