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
//! The page is served in the customer's language (`?locale=` or
//! `Accept-Language`, see [`super::checkout_i18n`]): its `lang` and its
//! message catalogue, embedded as inert JSON the script reads. The QR code
//! of a crypto payment is drawn here too (`/checkout/{id}/qr.svg`, with the
//! client secret), so the page needs nothing from another origin.
//!
//! The policy headers make the page safe to hand to customers: scripts,
//! styles and requests from this node only, no inline script, no framing
//! (clickjacking), no form submission (card inputs have no `name` and only
//! ever leave in the confirm request's JSON body), no referrer (the URL
//! holds the client secret), no caching.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::checkout_i18n::Locale;
use super::docs::html_headers;
use super::error::ApiError;
use super::{AppState, Query};
use crate::payments::model::NextAction;

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
        .route("/checkout/{payment_id}/qr.svg", get(qr))
        .route("/static/checkout.js", get(script))
        .route("/static/checkout.css", get(style))
}

/// The page, in the customer's language. The server reads only `locale`
/// of the query: the rest (`client_secret`, `key`) is the script's.
#[utoipa::path(
    get,
    path = "/checkout/{payment_id}",
    operation_id = "checkoutPage",
    tag = "Checkout",
    summary = "Hosted checkout page",
    description = r#"An HTML page for the customer, in English or Simplified Chinese (`?locale=en|zh-CN`, else the browser's `Accept-Language`). In the browser it reads the payment's checkout view with the client secret from its query string (as bearer token, or with a publishable key given as `key`), shows the merchant's name, the description and the amount, collects the payment method among the payment's `payment_method_types`, confirms, handles `next_action` (one-time code, redirect, voucher, bank or check instructions, crypto transfer with QR code, copy buttons and an EIP-1193 browser wallet), follows the payment live over its event stream and shows the outcome, then sends the customer to `return_url`. Loading it needs no key; the page is the same for every payment of a language (an unknown payment shows "not found" once loaded). Card details go only into the confirm request's body: never into a URL or browser storage."#,
    params(
        ("payment_id" = String, Path, description = "The payment's id (`pay_…`)."),
        ("client_secret" = Option<String>, Query, description = "The payment's client secret (read by the page's script, not by the server)."),
        ("key" = Option<String>, Query, description = "Optional: a publishable key (`pk_…`) of the payment's merchant. Without it the page uses the client secret itself as its credential."),
        ("locale" = Option<String>, Query, description = "`en` or `zh-CN` (also `zh`, `zh-Hans…`); anything else falls back to `Accept-Language`, then English."),
    ),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn page(
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let asked = raw.as_deref().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find_map(|(k, v)| (k == "locale").then_some(v))
    });
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = Locale::negotiate(asked.as_deref(), accept);
    let html = PAGE
        .replace("{{lang}}", locale.tag())
        .replace("{{messages}}", &locale.catalogue_json());
    let mut response = (html_headers(CSP), html).into_response();
    // The URL carries the client secret: keep the page out of every cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[utoipa::path(
    get,
    path = "/static/checkout.js",
    operation_id = "checkoutScript",
    tag = "Checkout",
    summary = "The checkout page's script",
    responses(
        (status = 200, description = "The file.", content_type = "text/javascript", body = String),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
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

#[utoipa::path(
    get,
    path = "/static/checkout.css",
    operation_id = "checkoutStyle",
    tag = "Checkout",
    summary = "The checkout page's style sheet",
    responses(
        (status = 200, description = "The file.", content_type = "text/css", body = String),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QrQuery {
    /// The payment's client secret.
    #[param(required = true, value_type = String)]
    client_secret: Option<String>,
}

/// The QR code of the payment URI the customer's wallet should open: the
/// deposit address's URI when the payment has one, else the router's.
#[utoipa::path(
    get,
    path = "/checkout/{payment_id}/qr.svg",
    operation_id = "checkoutQrCode",
    tag = "Checkout",
    summary = "QR code of a crypto payment",
    description = "The EIP-681 URI a wallet should open for this payment, as an SVG QR code (byte mode, error correction M) drawn by the node: `next_action.crypto.deposit_uri` when the payment has a deposit address, else `next_action.crypto.uri`. 404 unless the payment waits for a crypto transfer.",
    params(
        ("payment_id" = String, Path, description = "The payment's id (`pay_…`)."),
        QrQuery,
    ),
    responses(
        (status = 200, description = "The QR code.", content_type = "image/svg+xml", body = String),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn qr(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<QrQuery>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("payment", &id);
    let payment_id = crate::ids::PaymentId::parse(&id).map_err(|_| not_found())?;
    let secret = query
        .client_secret
        .ok_or_else(|| ApiError::missing_param("client_secret"))?;
    let payment = state
        .payments
        .get_for_checkout(&payment_id, &secret)
        .await
        .map_err(|_| not_found())?;
    let Some(NextAction::CryptoTransfer { crypto }) = &payment.next_action else {
        return Err(not_found());
    };
    let uri = crypto.deposit_uri.as_deref().unwrap_or(&crypto.uri);
    let code = crate::qr::QrCode::encode(uri.as_bytes()).map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        crate::qr::to_svg(&code, "Payment QR code"),
    )
        .into_response())
}
