//! Payments: the filtered list, its CSV export, one payment's detail with
//! its timeline, postings, transfers and refunds, the refund form (with a
//! fresh code above the configured amount) and the proof bundle.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::form::{Form, path_id};
use super::format::{amount, time};
use super::layout;
use super::session::{Signed, dashboard};
use crate::api::AppState;
use crate::dashboard::Action;
use crate::events::EventStore;
use crate::ids::PaymentId;
use crate::payments::model::Status;
use crate::payments::refunds::{self, NewRefund};
use crate::payments::store::Search;
use crate::payments::{Payment, PaymentError};

/// Rows of one page, and of one CSV export at most.
const PAGE_ROWS: i64 = 100;
const CSV_ROWS: i64 = 10_000;

/// The list's filters, as the form and the CSV link send them.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    method: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    to: String,
    /// Smallest unit.
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    q: String,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn bad(param: &str, message: &str) -> Response {
    layout::error_page(
        StatusCode::BAD_REQUEST,
        &format!("The filter `{param}` is wrong: {message}"),
    )
}

impl Filters {
    fn search(&self) -> Result<Search, Response> {
        let date =
            |param: &str, s: &str, plus_days: i64| -> Result<Option<OffsetDateTime>, Response> {
                let Some(s) = non_empty(s) else {
                    return Ok(None);
                };
                let format = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(&s, &format)
                    .map(|d| Some(d.midnight().assume_utc() + time::Duration::days(plus_days)))
                    .map_err(|_| bad(param, "expected a date YYYY-MM-DD"))
            };
        let number = |param: &str, s: &str| -> Result<Option<i64>, Response> {
            let Some(s) = non_empty(s) else {
                return Ok(None);
            };
            s.parse::<i64>().map(Some).map_err(|_| {
                bad(
                    param,
                    "expected an amount in the smallest unit (e.g. 1050 for 10.50)",
                )
            })
        };
        let status = non_empty(&self.status);
        if let Some(s) = &status
            && s.parse::<Status>().is_err()
        {
            return Err(bad("status", &format!("unknown status `{s}`")));
        }
        Ok(Search {
            status,
            method: non_empty(&self.method),
            created_from: date("from", &self.from, 0)?,
            created_to: date("to", &self.to, 1)?,
            amount_min: number("min", &self.min)?,
            amount_max: number("max", &self.max)?,
            query: non_empty(&self.q),
        })
    }

    fn query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("status", &self.status),
                ("method", &self.method),
                ("from", &self.from),
                ("to", &self.to),
                ("min", &self.min),
                ("max", &self.max),
                ("q", &self.q),
            ])
            .finish()
    }
}

fn payment_error(e: &PaymentError) -> Response {
    match e {
        PaymentError::NotFound { .. } => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        PaymentError::Invalid { .. }
        | PaymentError::Refused { .. }
        | PaymentError::State { .. }
        | PaymentError::Busy { .. } => layout::error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        other => {
            tracing::error!(error = %crate::telemetry::ErrorChain(other), "dashboard: payments error");
            layout::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
    }
}

const STATUSES: [&str; 7] = [
    "requires_payment_method",
    "requires_action",
    "processing",
    "requires_capture",
    "succeeded",
    "canceled",
    "failed",
];
const METHODS: [&str; 6] = [
    "card",
    "bank_transfer",
    "ewallet",
    "cash_voucher",
    "check",
    "crypto",
];

fn select(name: &str, options: &[&str], current: &str) -> Markup {
    html! {
        select name=(name) {
            option value="" { "any" }
            @for o in options { option value=(o) selected[*o == current] { (o) } }
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let search = match filters.search() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let payments = match state
        .payments
        .search(&signed.user.merchant_id, &search, PAGE_ROWS)
        .await
    {
        Ok(p) => p,
        Err(e) => return payment_error(&e),
    };
    let content = html! {
        h1 { "Payments" }
        form.filters method="get" action="/dashboard/payments" id="filters" {
            label { "Status " (select("status", &STATUSES, &filters.status)) }
            label { "Method " (select("method", &METHODS, &filters.method)) }
            label { "From " input type="date" name="from" value=(filters.from); }
            label { "To " input type="date" name="to" value=(filters.to); }
            label { "Min " input type="number" name="min" value=(filters.min) min="0"; }
            label { "Max " input type="number" name="max" value=(filters.max) min="0"; }
            label { "Search " input type="search" name="q" value=(filters.q) placeholder="id, email, last4, tx hash, RF…"; }
            button type="submit" { "Filter" }
            a.button href={ "/dashboard/payments.csv?" (filters.query_string()) } id="csv" { "Export CSV" }
        }
        table id="payments" {
            thead { tr { th { "Payment" } th { "Amount" } th { "Status" } th { "Method" } th { "Customer" } th { "Created" } } }
            tbody {
                @for p in &payments {
                    tr {
                        td { a href={ "/dashboard/payments/" (p.id) } { (p.id) } }
                        td.num { (amount(&serde_json::json!(p.amount), &p.currency)) }
                        td { span class={ "status " (p.status) } { (p.status) } }
                        td { (method_name(p)) }
                        td { (email(p).unwrap_or("")) }
                        td { (time(p.created_at.unix_timestamp())) }
                    }
                }
            }
        }
        @if payments.is_empty() { p.empty { "No payments match." } }
    };
    layout::page("Payments", &signed, "/dashboard/payments", content)
}

/// The CSV columns: fields of the API's payment object, in this order.
pub const CSV_COLUMNS: [&str; 10] = [
    "id",
    "created",
    "amount",
    "currency",
    "status",
    "payment_method",
    "amount_received",
    "amount_refunded",
    "customer_email",
    "description",
];

fn csv_cell(value: &str) -> String {
    // A leading =, +, - or @ makes spreadsheets run the cell as a formula.
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The payment as its events carry it, as JSON: the CSV has the fields a
/// webhook receiver gets, by their API names.
fn snapshot(state: &AppState, payment: &Payment) -> Value {
    serde_json::to_value(state.payments.object(payment)).unwrap_or(Value::Null)
}

/// The method a payment was confirmed with, or a dash.
fn method_name(payment: &Payment) -> String {
    payment
        .method
        .map_or_else(|| "—".to_owned(), |m| m.to_string())
}

/// The customer's email, when given.
fn email(payment: &Payment) -> Option<&str> {
    payment.customer.as_ref()?.email.as_deref()
}

/// One payment object as a CSV record.
pub fn csv_record(p: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cells = [
        text(&p["id"]),
        text(&p["created"]),
        text(&p["amount"]),
        text(&p["currency"]),
        text(&p["status"]),
        text(&p["payment_method"]["type"]),
        text(&p["amount_received"]),
        text(&p["amount_refunded"]),
        text(&p["customer"]["email"]),
        text(&p["description"]),
    ];
    cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn csv(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let search = match filters.search() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let payments = match state
        .payments
        .search(&signed.user.merchant_id, &search, CSV_ROWS)
        .await
    {
        Ok(p) => p,
        Err(e) => return payment_error(&e),
    };
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for p in &payments {
        out.push_str(&csv_record(&snapshot(&state, p)));
        out.push_str("\r\n");
    }
    if let Err(e) = dashboard(&state)
        .record(
            &signed.user,
            "payment.export_csv",
            None,
            serde_json::json!({"rows": payments.len(), "filters": filters.query_string()}),
            &signed.origin,
        )
        .await
    {
        return layout::dashboard_error(&e);
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"payments.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response()
}

async fn detail_page(
    state: &AppState,
    signed: &Signed,
    id: &PaymentId,
    message: Option<(bool, String)>,
) -> Response {
    let merchant = &signed.user.merchant_id;
    let payment = match state.payments.get(merchant, id).await {
        Ok(p) => p,
        Err(e) => return payment_error(&e),
    };
    let events = match EventStore::new(state.pool.clone())
        .for_object(merchant, id.as_str(), 0)
        .await
    {
        Ok(e) => e,
        Err(e) => return payment_error(&PaymentError::from(e)),
    };
    let refund_list = match refunds::list(
        &state.pool,
        merchant,
        Some(id),
        &crate::page::Page::First,
        100,
    )
    .await
    {
        Ok(r) => r.data,
        Err(e) => return payment_error(&e),
    };
    let dispute_list =
        match crate::payments::disputes::recent(&state.pool, merchant, Some(id), 20).await {
            Ok(d) => d,
            Err(e) => return payment_error(&e),
        };
    let postings = {
        let mut conn = match state.pool.acquire().await {
            Ok(c) => c,
            Err(e) => return payment_error(&PaymentError::from(e)),
        };
        let mut sources = vec![id.as_str()];
        sources.extend(refund_list.iter().map(|r| r.id.as_str()));
        sources.extend(dispute_list.iter().map(|d| d.id.as_str()));
        match crate::ledger::transactions_of_sources(&mut conn, merchant, &sources).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "dashboard: postings of a payment");
                return layout::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side.",
                );
            }
        }
    };
    let currency = payment.currency.clone();
    let remaining = refunds::remaining(&payment);
    let threshold = state.config.dashboard.refund_step_up_above;
    let may_refund = signed.user.role.may(Action::Refund);
    let content = html! {
        p { a href="/dashboard/payments" { "← Payments" } }
        h1 id="payment-amount" { (amount(&serde_json::json!(payment.amount), &currency)) " " span class={ "status " (payment.status) } id="payment-status" { (payment.status) } }
        p.mono id="payment-id" { (id) }
        @if let Some((ok, m)) = &message {
            p class=(if *ok { "notice" } else { "error" }) id=(if *ok { "notice" } else { "error" }) role="alert" { (m) }
        }
        dl.facts {
            dt { "Method" } dd { (method_name(&payment)) }
            @if let (Some(_), Some(card)) = (payment.method, &payment.card) {
                dt { "Card" } dd { (card.brand) " •••• " (card.last4) }
            }
            dt { "Received" } dd { (amount(&serde_json::json!(payment.amount_received), &currency)) }
            dt { "Refunded" } dd { (amount(&serde_json::json!(payment.amount_refunded), &currency)) }
            dt { "Customer" } dd { (email(&payment).unwrap_or("—")) }
            dt { "Created" } dd { (time(payment.created_at.unix_timestamp())) }
            @if let Some(risk) = payment.risk_score { dt { "Risk score" } dd { (risk) } }
        }
        section {
            h2 { "Timeline" }
            ol.timeline id="timeline" {
                @for e in &events {
                    li { time { (time(e.created_at.unix_timestamp())) } " " code { (e.event_type) } " " span.mono { (e.id) } }
                }
            }
        }
        @if let Some(crypto) = &payment.crypto {
            section {
                h2 { "Crypto transfers" }
                pre.json id="crypto" { (serde_json::to_string_pretty(crypto).unwrap_or_default()) }
            }
        }
        section {
            h2 { "Ledger postings" }
            table id="postings" {
                thead { tr { th { "Transaction" } th { "Type" } th { "Amount" } th { "Fee" } th { "Net" } th { "Status" } } }
                tbody {
                    @for t in &postings {
                        tr {
                            td.mono { (t.id) } td { (t.kind) }
                            td.num { (t.amount.to_major_string(t.asset.scale)) " " (t.asset.code.symbol().to_uppercase()) }
                            td.num { (t.fee.to_major_string(t.asset.scale)) }
                            td.num { (t.net.to_major_string(t.asset.scale)) }
                            td { (t.status) }
                        }
                    }
                }
            }
        }
        @if !dispute_list.is_empty() {
            section {
                h2 { "Disputes" }
                ul id="payment-disputes" {
                    @for d in &dispute_list {
                        li { a.mono href={ "/dashboard/disputes/" (d.id) } { (d.id) } " " span class={ "status " (d.status) } { (d.status) } " " (amount(&serde_json::json!(d.amount), &d.currency)) " · " (d.reason) }
                    }
                }
            }
        }
        section {
            h2 { "Refunds" }
            table id="refunds" {
                thead { tr { th { "Refund" } th { "Amount" } th { "Status" } th { "Reason" } th { "Created" } } }
                tbody {
                    @for r in &refund_list {
                        tr { td.mono { (r.id) } td.num { (amount(&serde_json::json!(r.amount), &r.currency)) } td { (r.status) } td { (r.reason.as_deref().unwrap_or("")) } td { (time(r.created_at.unix_timestamp())) } }
                    }
                }
            }
            @if may_refund && remaining > 0 {
                form.refund method="post" action={ "/dashboard/payments/" (id) "/refund" } id="refund" {
                    input type="hidden" name="csrf" value=(signed.session.csrf_token);
                    label { "Amount (smallest unit) " input type="number" name="amount" value=(remaining) min="1" max=(remaining) required; }
                    label { "Reason "
                        select name="reason" { option value="requested_by_customer" { "requested by customer" } option value="duplicate" { "duplicate" } option value="fraudulent" { "fraudulent" } }
                    }
                    label { "Authenticator code" @if threshold > 0 { " (needed above " (amount(&serde_json::json!(threshold), &currency)) ")" } " "
                        input type="text" name="code" inputmode="numeric" autocomplete="one-time-code"; }
                    button type="submit" { "Refund" }
                }
            }
        }
        section {
            h2 { "Proof" }
            p { a.button href={ "/dashboard/payments/" (id) "/proof.json" } id="proof" { "Download the proof bundle" } " "
                a href="/verify" { "Verify a bundle" } }
        }
    };
    layout::page("Payment", signed, "/dashboard/payments", content)
}

pub async fn detail(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match path_id::<PaymentId>(&id) {
        Ok(id) => detail_page(&state, &signed, &id, None).await,
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub struct RefundForm {
    csrf: String,
    amount: i64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: String,
}

pub async fn refund(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Response {
    if let Err(r) = signed.check_csrf(&form.csrf) {
        return r;
    }
    let id = match path_id::<PaymentId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let dashboard = dashboard(&state);
    if !signed.user.role.may(Action::Refund) {
        let _ = dashboard
            .record(
                &signed.user,
                "payment.refund_refused",
                Some(id.as_str()),
                serde_json::json!({"amount": form.amount, "why": "role"}),
                &signed.origin,
            )
            .await;
        return layout::error_page(
            StatusCode::FORBIDDEN,
            &format!("Your role ({}) may not refund payments.", signed.user.role),
        );
    }
    if form.amount > state.config.dashboard.refund_step_up_above
        && let Err(e) = dashboard
            .step_up(&signed.session, &form.code, &signed.origin)
            .await
    {
        let message = format!(
            "Refund not made: {e}. Refunds above the step-up amount need a fresh code from your authenticator app."
        );
        return with_status(
            detail_page(&state, &signed, &id, Some((false, message))).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    // One refund per submitted form: a double click finds the first.
    let request_key = format!(
        "dashboard:{}:{}",
        signed.session.csrf_token,
        crate::ids::random_base62(8)
    );
    let result = refunds::create(
        &state.payments,
        &signed.user.merchant_id,
        NewRefund {
            payment: id.clone(),
            amount: Some(form.amount),
            reason: form.reason.clone(),
            metadata: Default::default(),
            crypto_destination: None,
        },
        Some(&request_key),
    )
    .await;
    match result {
        Ok(refund) => {
            if let Err(e) = dashboard
                .record(
                    &signed.user,
                    "payment.refund",
                    Some(id.as_str()),
                    serde_json::json!({"refund": refund.id, "amount": refund.amount, "currency": refund.currency, "stepped_up": form.amount > state.config.dashboard.refund_step_up_above}),
                    &signed.origin,
                )
                .await
            {
                return layout::dashboard_error(&e);
            }
            Redirect::to(&format!("/dashboard/payments/{id}")).into_response()
        }
        Err(
            PaymentError::Invalid { message, .. }
            | PaymentError::Refused { message, .. }
            | PaymentError::State { message, .. }
            | PaymentError::Busy { message }
            | PaymentError::Unavailable { message, .. },
        ) => with_status(
            detail_page(
                &state,
                &signed,
                &id,
                Some((false, format!("Refund not made: {message}"))),
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => payment_error(&e),
    }
}

fn with_status(mut response: Response, status: StatusCode) -> Response {
    *response.status_mut() = status;
    response
}

pub async fn proof(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let id = match path_id::<PaymentId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let payment = match state.payments.get(&signed.user.merchant_id, &id).await {
        Ok(p) => p,
        Err(e) => return payment_error(&e),
    };
    let kind = if payment.method == Some(crate::methods::MethodType::Crypto) {
        crate::transparency::leaf::LeafKind::CryptoReceipt
    } else {
        crate::transparency::leaf::LeafKind::Payment
    };
    let bundle = crate::transparency::bundle::bundle_for_source(
        &state.pool,
        &signed.user.merchant_id,
        id.as_str(),
        Some(kind),
    )
    .await;
    match bundle {
        Ok(bundle) => {
            let body = serde_json::to_string_pretty(&bundle).unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{id}.proof.json\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
                body,
            )
                .into_response()
        }
        Err(crate::transparency::TransparencyError::NotSettled { .. }) => layout::error_page(
            StatusCode::CONFLICT,
            "This payment is not settled yet; its proof exists once a settlement includes it.",
        ),
        Err(crate::transparency::TransparencyError::NotAnchored { .. }) => layout::error_page(
            StatusCode::CONFLICT,
            "This payment is settled but its checkpoint is not anchored on-chain yet; retry shortly.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: proof bundle");
            layout::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
    }
}
