//! `GET /verify`: the auditor's page. It checks a proof bundle in the
//! browser, against the chain, with `static/verify.js` — a small script with
//! no dependency that an auditor can read. The node only serves the page:
//! every check runs in the browser, with WebCrypto's SHA-256 and JSON-RPC
//! calls to the URL the auditor chooses.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, html};

use super::layout::html_response;
use crate::api::AppState;

/// Like the dashboard's, except that the script may call any JSON-RPC
/// endpoint the auditor types, and nothing is posted anywhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self' http: https:; img-src 'self'; form-action 'none'; \
                       frame-ancestors 'none'; base-uri 'none'";

const SCRIPT: &str = include_str!("../../../static/verify.js");

/// The page and its script (public: no session).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify", get(page))
        .route("/static/verify.js", get(script))
}

async fn page(State(state): State<AppState>) -> Response {
    let rpc = &state.config.dashboard.verify_rpc_url;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Verify a proof bundle · E-PG" }
                link rel="stylesheet" href="/dashboard/static/dashboard.css";
                script src="/static/verify.js" defer {}
            }
            body {
                main.narrow.verify {
                    p.brand { "E-PG · auditor's verifier" }
                    h1 { "Verify a proof bundle" }
                    p { "Paste or upload a proof bundle. Your browser recomputes the leaf hash and the RFC 9162 inclusion path with WebCrypto, decodes the leaf, and reads the anchored root from the SettlementAnchor contract with " code { "eth_call" } " to the RPC endpoint below. Nothing is sent to this node." }
                    form id="verify-form" {
                        label { "Proof bundle (JSON)" textarea id="bundle" rows="10" spellcheck="false" placeholder="{\"object\": \"proof_bundle\", …}" {} }
                        label { "Or a file " input type="file" id="file" accept=".json,application/json"; }
                        label { "JSON-RPC URL of the chain" input type="url" id="rpc" value=(rpc) placeholder="https://…" required; }
                        label { "Confirmations required" input type="number" id="confirmations" value="1" min="1"; }
                        button type="submit" id="run" { "Verify" }
                    }
                    section id="result" hidden {
                        h2 id="verdict" {}
                        ol id="checks" {}
                        p.small id="provenance" {}
                    }
                    p.small { "The checks are those of " code { "epg audit verify" } ". Read the script: " a href="/static/verify.js" { "/static/verify.js" } "." }
                }
            }
        }
    };
    html_response(StatusCode::OK, markup).map_csp(CSP)
}

trait MapCsp {
    fn map_csp(self, csp: &'static str) -> Response;
}

impl MapCsp for Response {
    fn map_csp(mut self, csp: &'static str) -> Response {
        self.headers_mut().insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(csp),
        );
        self
    }
}

async fn script() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}
