//! The dashboard's pages and forms in the document. They are served by
//! `crate::dashboard::web` (server-rendered HTML for people, signed in
//! with a session cookie); these empty functions only carry their
//! annotations, which the route test holds to the router like every other.

#![allow(dead_code)]

use utoipa::ToSchema;

/// One message of the live feed, by its Server-Sent Events fields.
#[derive(ToSchema)]
#[schema(as = DashboardFeedMessage)]
pub struct FeedMessage {
    /// The event's id (`evt_` and 24 letters or digits).
    #[schema(pattern = "^evt_[A-Za-z0-9]{24}$")]
    pub id: String,
    /// The feed's row for the event, as JSON text.
    pub data: String,
}

/// A form the page posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
pub struct DashboardSignInForm {
    /// The session's CSRF token (from the page's hidden field).
    pub csrf: String,
    /// Sign-in email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A form the page posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
pub struct DashboardCodeForm {
    /// The session's CSRF token (from the page's hidden field).
    pub csrf: String,
    /// 6-digit TOTP code, or a recovery code.
    pub code: String,
}

/// A form the page posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
pub struct DashboardEnrolForm {
    /// The session's CSRF token (from the page's hidden field).
    pub csrf: String,
    /// 6-digit code of the new secret.
    pub code: String,
}

/// A form the page posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
pub struct DashboardSignOutForm {
    /// The session's CSRF token (from the page's hidden field).
    pub csrf: String,
}

/// A form the page posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
pub struct DashboardRefundForm {
    /// The session's CSRF token (from the page's hidden field).
    pub csrf: String,
    /// Amount to refund (smallest unit).
    pub amount: String,
    /// `requested_by_customer`, `duplicate` or `fraudulent`.
    pub reason: Option<String>,
    /// Fresh TOTP code (step-up).
    pub code: Option<String>,
}

#[utoipa::path(
    get,
    path = "/dashboard",
    operation_id = "dashboardHome",
    tag = "Dashboard",
    summary = "Home",
    description = "Today's and the last 30 days' volume and success rate per method, balances per asset, a daily volume chart (SVG drawn by the node) and the live feed of new events.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_home() {}

#[utoipa::path(
    get,
    path = "/dashboard/sign-in",
    operation_id = "dashboardSignInForm",
    tag = "Dashboard",
    summary = "Sign-in form",
    description = "The email and password form. Sets a double-submit cookie (`epg_sign_in`) whose value the form carries.",
    responses(
        (status = 200, description = "The form.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
    )
)]
fn dashboard_sign_in_form() {}

#[utoipa::path(
    post,
    path = "/dashboard/sign-in",
    operation_id = "dashboardSignIn",
    tag = "Dashboard",
    summary = "Sign in with email and password",
    description = "Checks the password (argon2id). Opens a session that can only give the second factor: redirects to the code form, or to enrolment at the first sign-in. Failures count towards the user's lockout (`dashboard.max_failed_attempts`, announced by a `dashboard_user.locked` event) and the address's budget.",
    request_body(content = DashboardSignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The page the browser lands on after the redirect.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "Signed in with the password: to `/dashboard/two-factor` or `/dashboard/enrol`.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "The form is malformed (the page names the field).", content_type = "text/html", body = String),
        (status = 401, description = "The email or the password is wrong (never says which).", content_type = "text/html", body = String),
        (status = 403, description = "The double-submit token is missing or wrong (CSRF).", content_type = "text/html", body = String),
        (status = 429, description = "Locked out, or too many failures from this address.", content_type = "text/html", body = String),
    )
)]
fn dashboard_sign_in() {}

#[utoipa::path(
    get,
    path = "/dashboard/two-factor",
    operation_id = "dashboardCodeForm",
    tag = "Dashboard",
    summary = "Second factor form",
    description = "Asks for the TOTP code (or a recovery code) of a session that has the password.",
    responses(
        (status = 200, description = "The form.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_code_form() {}

#[utoipa::path(
    post,
    path = "/dashboard/two-factor",
    operation_id = "dashboardCode",
    tag = "Dashboard",
    summary = "Give the second factor",
    description = "A TOTP code (RFC 6238, ±1 step, each step once) or a one-time recovery code. On success the session is replaced by a fresh one.",
    request_body(content = DashboardCodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The page the browser lands on after the redirect.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "Signed in: to `/dashboard`.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "The form is malformed.", content_type = "text/html", body = String),
        (status = 401, description = "The code is wrong or was used already.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed.", content_type = "text/html", body = String),
        (status = 429, description = "Locked out.", content_type = "text/html", body = String),
    )
)]
fn dashboard_code() {}

#[utoipa::path(
    get,
    path = "/dashboard/enrol",
    operation_id = "dashboardEnrolForm",
    tag = "Dashboard",
    summary = "Two-factor enrolment",
    description = "At the first sign-in: a fresh TOTP secret as a QR code of its `otpauth://` URI (SVG drawn by the node) and as text.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_enrol_form() {}

#[utoipa::path(
    post,
    path = "/dashboard/enrol",
    operation_id = "dashboardEnrol",
    tag = "Dashboard",
    summary = "Confirm enrolment",
    description = "A code of the offered secret turns two-factor sign-in on and shows ten one-time recovery codes, once.",
    request_body(content = DashboardEnrolForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The recovery codes.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 400, description = "The form is malformed.", content_type = "text/html", body = String),
        (status = 401, description = "The code is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed.", content_type = "text/html", body = String),
        (status = 429, description = "Locked out.", content_type = "text/html", body = String),
    )
)]
fn dashboard_enrol() {}

#[utoipa::path(
    post,
    path = "/dashboard/sign-out",
    operation_id = "dashboardSignOut",
    tag = "Dashboard",
    summary = "Sign out",
    description = "Ends the session.",
    request_body(content = DashboardSignOutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The sign-in form, after the redirect.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "To the sign-in form.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "CSRF check failed.", content_type = "text/html", body = String),
    )
)]
fn dashboard_sign_out() {}

#[utoipa::path(
    get,
    path = "/dashboard/payments",
    operation_id = "dashboardPayments",
    tag = "Dashboard",
    summary = "Payments",
    description = "The merchant's payments, newest first, with filters and search.",
    params(
        ("status" = Option<String>, Query, description = "Payment status."),
        ("method" = Option<String>, Query, description = "Payment method type."),
        ("from" = Option<String>, Query, description = "Created on or after (YYYY-MM-DD, UTC)."),
        ("to" = Option<String>, Query, description = "Created on or before (YYYY-MM-DD, UTC)."),
        ("min" = Option<String>, Query, description = "Smallest amount (smallest unit)."),
        ("max" = Option<String>, Query, description = "Largest amount (smallest unit)."),
        ("q" = Option<String>, Query, description = "A payment id, customer email, card last four, crypto transaction hash or RF creditor reference."),
    ),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 400, description = "A filter is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_payments() {}

#[utoipa::path(
    get,
    path = "/dashboard/payments.csv",
    operation_id = "dashboardPaymentsCsv",
    tag = "Dashboard",
    summary = "Payments as CSV",
    description = "The filtered payments (up to 10 000) as CSV: `id,created,amount,currency,status,payment_method,amount_received,amount_refunded,customer_email,description`, each row the fields of the API's payment object.",
    params(
        ("status" = Option<String>, Query, description = "Payment status."),
        ("method" = Option<String>, Query, description = "Payment method type."),
        ("from" = Option<String>, Query, description = "Created on or after (YYYY-MM-DD, UTC)."),
        ("to" = Option<String>, Query, description = "Created on or before (YYYY-MM-DD, UTC)."),
        ("min" = Option<String>, Query, description = "Smallest amount (smallest unit)."),
        ("max" = Option<String>, Query, description = "Largest amount (smallest unit)."),
        ("q" = Option<String>, Query, description = "A payment id, customer email, card last four, crypto transaction hash or RF creditor reference."),
    ),
    responses(
        (status = 200, description = "The CSV file.", content_type = "text/csv", body = String),
        (status = 400, description = "A filter is wrong.", content_type = "text/html", body = String),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_payments_csv() {}

#[utoipa::path(
    get,
    path = "/dashboard/payments/{id}",
    operation_id = "dashboardPayment",
    tag = "Dashboard",
    summary = "Payment detail",
    description = "Timeline of events, ledger postings, crypto transfers, refunds, the refund form and the proof bundle link.",
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 404, description = "No such payment of this merchant.", content_type = "text/html", body = String),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_payment() {}

#[utoipa::path(
    post,
    path = "/dashboard/payments/{id}/refund",
    operation_id = "dashboardRefund",
    tag = "Dashboard",
    summary = "Refund from the dashboard",
    description = "Roles `admin` and `support` only. Above `dashboard.refund_step_up_above` a fresh TOTP code is required (step-up). Written to the audit log.",
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = DashboardRefundForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The payment, after the redirect.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "Refunded: back to the payment.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "The refund is refused (amount, state).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code is missing or wrong.", content_type = "text/html", body = String),
        (status = 403, description = "The role may not refund, or the CSRF check failed.", content_type = "text/html", body = String),
        (status = 404, description = "No such payment.", content_type = "text/html", body = String),
    )
)]
fn dashboard_refund() {}

#[utoipa::path(
    get,
    path = "/dashboard/payments/{id}/proof.json",
    operation_id = "dashboardProof",
    tag = "Dashboard",
    summary = "Proof bundle download",
    description = "The payment's proof bundle, as `GET /v1/payments/{id}/proof` answers it, as a file.",
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    responses(
        (status = 200, description = "The bundle.", content_type = "application/json", body = String),
        (status = 404, description = "No such payment.", content_type = "text/html", body = String),
        (status = 409, description = "Not settled or not anchored yet.", content_type = "text/html", body = String),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_proof() {}

#[utoipa::path(
    get,
    path = "/dashboard/balance",
    operation_id = "dashboardBalance",
    tag = "Dashboard",
    summary = "Balance",
    description = "Balances per asset and the latest balance transactions.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_balance() {}

#[utoipa::path(
    get,
    path = "/dashboard/team",
    operation_id = "dashboardTeam",
    tag = "Dashboard",
    summary = "Team",
    description = "The merchant's dashboard users and roles.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_team() {}

#[utoipa::path(
    get,
    path = "/dashboard/audit-log",
    operation_id = "dashboardAuditLog",
    tag = "Dashboard",
    summary = "Audit log",
    description = "Every dashboard action (who, what, when, from where), newest first. Admins only; the log is append-only.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 403, description = "Not an admin.", content_type = "text/html", body = String),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_audit_log() {}

#[utoipa::path(
    get,
    path = "/dashboard/feed",
    operation_id = "dashboardFeed",
    tag = "Dashboard",
    summary = "Live feed",
    description = "The merchant's new events as Server-Sent Events (`data`: id, type, object, created), for the home page.",
    responses(
        (status = 200, description = "The stream.", content_type = "text/event-stream", body = FeedMessage),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form.", headers(("Location" = String, description = "Where the browser goes next."))),
    )
)]
fn dashboard_feed() {}

#[utoipa::path(
    get,
    path = "/dashboard/static/dashboard.css",
    operation_id = "dashboardStyle",
    tag = "Dashboard",
    summary = "The dashboard's style sheet",
    responses(
        (status = 200, description = "The file.", content_type = "text/css", body = String),
    )
)]
fn dashboard_style() {}

#[utoipa::path(
    get,
    path = "/dashboard/static/dashboard.js",
    operation_id = "dashboardScript",
    tag = "Dashboard",
    summary = "The dashboard's script (live feed)",
    responses(
        (status = 200, description = "The file.", content_type = "text/javascript", body = String),
    )
)]
fn dashboard_script() {}

#[utoipa::path(
    get,
    path = "/verify",
    operation_id = "verifyPage",
    tag = "Verifier",
    summary = "Proof bundle verifier",
    description = "A public page: paste or upload a proof bundle; the browser recomputes the leaf hash and the RFC 9162 inclusion path with WebCrypto, decodes the leaf, and reads the anchored root from `SettlementAnchor.checkpointBySize` with `eth_call` to an RPC URL the auditor types (default: `dashboard.verify_rpc_url`). Each check of `epg audit verify` is shown ✓ or ✗.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
    )
)]
fn verify_page() {}

#[utoipa::path(
    get,
    path = "/static/verify.js",
    operation_id = "verifyScript",
    tag = "Verifier",
    summary = "The verifier's script",
    description = "Small, readable and dependency-free.",
    responses(
        (status = 200, description = "The file.", content_type = "text/javascript", body = String),
    )
)]
fn verify_script() {}

// The pages of the dashboard's second part (refunds, disputes, settlements,
// webhooks, API keys, invitations, settings, password change).

#[utoipa::path(
    get,
    path = "/dashboard/api-keys",
    operation_id = "dashboardApiKeys",
    tag = "Dashboard",
    summary = "API keys",
    description = "The merchant's API keys (prefix, kind, mode, last use), with create, roll and revoke forms (admins and developers).",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_api_keys() {}

#[utoipa::path(
    post,
    path = "/dashboard/api-keys",
    operation_id = "dashboardCreateApiKey",
    tag = "Dashboard",
    summary = "Create an API key",
    description = "Creates a key; needs a fresh TOTP code (step-up). The secret is shown once.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_create_api_key() {}

#[utoipa::path(
    post,
    path = "/dashboard/api-keys/{id}/roll",
    operation_id = "dashboardRollApiKey",
    tag = "Dashboard",
    summary = "Roll an API key",
    description = "Replaces a key with a new one; needs a fresh TOTP code (step-up). The new secret is shown once.",
    params(("id" = String, Path, description = "The object's id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_roll_api_key() {}

#[utoipa::path(
    post,
    path = "/dashboard/api-keys/{id}/revoke",
    operation_id = "dashboardRevokeApiKey",
    tag = "Dashboard",
    summary = "Revoke an API key",
    description = "Revokes a key at once.",
    params(("id" = String, Path, description = "The object's id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_revoke_api_key() {}

#[utoipa::path(
    get,
    path = "/dashboard/disputes",
    operation_id = "dashboardDisputes",
    tag = "Dashboard",
    summary = "Disputes",
    description = "The merchant's disputes, newest first.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_disputes() {}

#[utoipa::path(
    get,
    path = "/dashboard/disputes/{id}",
    operation_id = "dashboardDispute",
    tag = "Dashboard",
    summary = "Dispute",
    description = "A dispute with its evidence form and its postings.",
    params(("id" = String, Path, description = "The object's id.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_dispute() {}

#[utoipa::path(
    post,
    path = "/dashboard/disputes/{id}/evidence",
    operation_id = "dashboardDisputeEvidence",
    tag = "Dashboard",
    summary = "Dispute evidence",
    description = "Saves the evidence as a draft, or submits it.",
    params(("id" = String, Path, description = "The object's id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_dispute_evidence() {}

#[utoipa::path(
    post,
    path = "/dashboard/disputes/{id}/close",
    operation_id = "dashboardCloseDispute",
    tag = "Dashboard",
    summary = "Accept a dispute",
    description = "Concedes the dispute.",
    params(("id" = String, Path, description = "The object's id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_close_dispute() {}

#[utoipa::path(
    get,
    path = "/dashboard/events/{id}",
    operation_id = "dashboardEvent",
    tag = "Dashboard",
    summary = "Event deliveries",
    description = "An event's request body and every delivery attempt to each endpoint, with status, response and time.",
    params(("id" = String, Path, description = "The object's id.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_event() {}

#[utoipa::path(
    post,
    path = "/dashboard/events/{id}/redeliver",
    operation_id = "dashboardRedeliver",
    tag = "Dashboard",
    summary = "Redeliver an event",
    description = "Queues the event again for its endpoints.",
    params(("id" = String, Path, description = "The object's id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_redeliver() {}

#[utoipa::path(
    get,
    path = "/dashboard/invite/{token}",
    operation_id = "dashboardInvitation",
    tag = "Dashboard",
    summary = "Accept an invitation",
    description = "The one-time invitation link: choose a password, then enrol TOTP.",
    params(("token" = String, Path, description = "The invitation's one-time token.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_invitation() {}

#[utoipa::path(
    post,
    path = "/dashboard/invite/{token}",
    operation_id = "dashboardAcceptInvitation",
    tag = "Dashboard",
    summary = "Accept an invitation",
    description = "Sets the invitee's password; the link stops working.",
    params(("token" = String, Path, description = "The invitation's one-time token.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_accept_invitation() {}

#[utoipa::path(
    get,
    path = "/dashboard/password",
    operation_id = "dashboardPasswordForm",
    tag = "Dashboard",
    summary = "Change the password",
    description = "Asked after the first sign-in with a one-time password.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_password_form() {}

#[utoipa::path(
    post,
    path = "/dashboard/password",
    operation_id = "dashboardChangePassword",
    tag = "Dashboard",
    summary = "Change the password",
    description = "Needs the current password.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_change_password() {}

#[utoipa::path(
    get,
    path = "/dashboard/refunds",
    operation_id = "dashboardRefunds",
    tag = "Dashboard",
    summary = "Refunds",
    description = "The merchant's refunds, newest first.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_refunds() {}

#[utoipa::path(
    get,
    path = "/dashboard/settings",
    operation_id = "dashboardSettings",
    tag = "Dashboard",
    summary = "Settings",
    description = "Payment methods, risk threshold, payout address and bank accounts.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_settings() {}

#[utoipa::path(
    post,
    path = "/dashboard/settings/methods",
    operation_id = "dashboardSetMethods",
    tag = "Dashboard",
    summary = "Payment methods",
    description = "Sets the payment method types offered (admins).",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_set_methods() {}

#[utoipa::path(
    post,
    path = "/dashboard/settings/risk",
    operation_id = "dashboardSetRisk",
    tag = "Dashboard",
    summary = "Risk threshold",
    description = "Sets the risk score above which payments are blocked (admins).",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_set_risk() {}

#[utoipa::path(
    post,
    path = "/dashboard/settings/payout-address",
    operation_id = "dashboardSetPayoutAddress",
    tag = "Dashboard",
    summary = "Payout address",
    description = "Sets the crypto payout address; needs a fresh TOTP code (step-up).",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_set_payout_address() {}

#[utoipa::path(
    post,
    path = "/dashboard/settings/bank-account",
    operation_id = "dashboardSetBankAccount",
    tag = "Dashboard",
    summary = "Bank account",
    description = "Sets the payout bank account of a currency; needs a fresh TOTP code (step-up).",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_set_bank_account() {}

#[utoipa::path(
    get,
    path = "/dashboard/settlements",
    operation_id = "dashboardSettlements",
    tag = "Dashboard",
    summary = "Settlements",
    description = "The merchant's settlements, newest first.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_settlements() {}

#[utoipa::path(
    get,
    path = "/dashboard/settlements/{id}",
    operation_id = "dashboardSettlement",
    tag = "Dashboard",
    summary = "Settlement",
    description = "Totals, payouts, checkpoint, anchor transaction and items, each with its proof bundle and a link to /verify.",
    params(("id" = String, Path, description = "The object's id.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_settlement() {}

#[utoipa::path(
    post,
    path = "/dashboard/team/invite",
    operation_id = "dashboardInvite",
    tag = "Dashboard",
    summary = "Invite a user",
    description = "Sends a one-time invitation link for a role; needs a fresh TOTP code (step-up).",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_invite() {}

#[utoipa::path(
    get,
    path = "/dashboard/webhooks",
    operation_id = "dashboardWebhooks",
    tag = "Dashboard",
    summary = "Webhooks",
    description = "Endpoints, the create form and recent events.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 403, description = "The user's role may not see it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_webhooks() {}

#[utoipa::path(
    post,
    path = "/dashboard/webhooks",
    operation_id = "dashboardCreateWebhook",
    tag = "Dashboard",
    summary = "Create a webhook endpoint",
    description = "Needs a fresh TOTP code (step-up). The signing secret is shown once.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The page's form: the session's CSRF token (`csrf`) and the fields the page names (`code` for a step-up)."),
    responses(
        (status = 200, description = "The result page.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 303, description = "No session (or the second factor is missing): to the sign-in, enrolment or code form; after a form, to the page that shows its result.", headers(("Location" = String, description = "Where the browser goes next."))),
        (status = 400, description = "A field is wrong (the page names it).", content_type = "text/html", body = String),
        (status = 401, description = "The step-up code or the current password is wrong.", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the user's role may not do it.", content_type = "text/html", body = String),
        (status = 404, description = "No such object of the merchant (or a used invitation).", content_type = "text/html", body = String),
    )
)]
fn dashboard_create_webhook() {}
