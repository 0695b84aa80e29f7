//! Refunds, disputes (with the evidence form) and settlements (payouts,
//! checkpoint, anchor transaction, and where to verify them). Every read
//! and change goes through the payments and settlement subsystems, the
//! code the REST API calls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::form::{CsrfForm, Form, path_id};
use super::format::{amount, field, time};
use super::guard::{self, message, with_status};
use super::layout;
use super::session::Signed;
use crate::api::AppState;
use crate::dashboard::Action;
use crate::ids::{DisputeId, SettlementId};
use crate::payments::PaymentError;
use crate::payments::disputes::{self, EVIDENCE_FIELDS, Outcome};
use crate::payments::refunds;
use crate::settlement::{self, Contents, SettlementError};

/// Rows of one list page.
const PAGE_ROWS: i64 = 100;

fn payment_error(e: &PaymentError) -> Response {
    match e {
        PaymentError::NotFound { .. } => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        PaymentError::Invalid { .. }
        | PaymentError::Refused { .. }
        | PaymentError::State { .. }
        | PaymentError::Busy { .. } => layout::error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        other => guard::server_error("payments", other),
    }
}

fn payment_link(id: &str) -> maud::Markup {
    html! { a.mono href={ "/dashboard/payments/" (id) } { (id) } }
}

pub async fn refunds(State(state): State<AppState>, signed: Signed) -> Response {
    let list = match refunds::list(
        &state.pool,
        &signed.user.merchant_id,
        None,
        &crate::page::Page::First,
        PAGE_ROWS,
    )
    .await
    {
        Ok(l) => l.data,
        Err(e) => return payment_error(&e),
    };
    let content = html! {
        h1 { "Refunds" }
        p.small { "Refund a payment from its page. Refunds above the step-up amount ask for a fresh code." }
        table id="refunds" {
            thead { tr { th { "Refund" } th { "Payment" } th { "Amount" } th { "Status" } th { "Reason" } th { "Created" } } }
            tbody { @for r in &list { tr {
                td.mono { (r.id) }
                td { (payment_link(r.payment_id.as_str())) }
                td.num { (amount(&json!(r.amount), &r.currency)) }
                td { span class={ "status " (r.status) } { (r.status) }
                     @if let Some(f) = &r.failure_reason { " " span.small { (f) } } }
                td { (r.reason.as_deref().unwrap_or("")) }
                td { (time(r.created_at.unix_timestamp())) }
            } } }
        }
        @if list.is_empty() { p.empty { "No refunds." } }
    };
    layout::page("Refunds", &signed, "/dashboard/refunds", content)
}

pub async fn disputes(State(state): State<AppState>, signed: Signed) -> Response {
    let list = match disputes::recent(&state.pool, &signed.user.merchant_id, None, PAGE_ROWS).await
    {
        Ok(l) => l,
        Err(e) => return payment_error(&e),
    };
    let content = html! {
        h1 { "Disputes" }
        table id="disputes" {
            thead { tr { th { "Dispute" } th { "Payment" } th { "Amount" } th { "Status" } th { "Reason" } th { "Opened" } } }
            tbody { @for d in &list { tr {
                td { a.mono href={ "/dashboard/disputes/" (d.id) } { (d.id) } }
                td { (payment_link(d.payment_id.as_str())) }
                td.num { (amount(&json!(d.amount), &d.currency)) }
                td { span class={ "status " (d.status) } { (d.status) } }
                td { (d.reason) }
                td { (time(d.created_at.unix_timestamp())) }
            } } }
        }
        @if list.is_empty() { p.empty { "No disputes." } }
    };
    layout::page("Disputes", &signed, "/dashboard/disputes", content)
}

fn label(field: &str) -> String {
    let text = field.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

async fn dispute_page(
    state: &AppState,
    signed: &Signed,
    id: &DisputeId,
    note: Option<(bool, String)>,
) -> Response {
    let dispute = match disputes::get(&state.pool, &signed.user.merchant_id, id).await {
        Ok(d) => d,
        Err(e) => return payment_error(&e),
    };
    let open = dispute.status == disputes::DisputeStatus::NeedsResponse;
    let may = signed.user.role.may(Action::Dispute);
    let evidence = &dispute.evidence;
    let content = html! {
        p { a href="/dashboard/disputes" { "← Disputes" } }
        h1 { "Dispute " span class={ "status " (dispute.status) } id="dispute-status" { (dispute.status) } }
        p.mono id="dispute-id" { (dispute.id) }
        (message(&note))
        dl.facts {
            dt { "Payment" } dd { (payment_link(dispute.payment_id.as_str())) }
            dt { "Amount" } dd { (amount(&json!(dispute.amount), &dispute.currency)) }
            dt { "Reason" } dd { (dispute.reason) }
            dt { "Opened" } dd { (time(dispute.created_at.unix_timestamp())) }
        }
        @if open && may {
            section {
                h2 { "Evidence" }
                p.small { "Save a draft as often as you like; submitting sends the evidence to the card network, after which it cannot be changed." }
                form.evidence method="post" action={ "/dashboard/disputes/" (dispute.id) "/evidence" } id="evidence" {
                    input type="hidden" name="csrf" value=(signed.session.csrf_token);
                    @for f in EVIDENCE_FIELDS {
                        label { (label(f))
                            textarea name=(f) rows="3" maxlength=(disputes::MAX_EVIDENCE_LEN) {
                                (evidence.get(f).map_or("", String::as_str))
                            }
                        }
                    }
                    button type="submit" name="submit" value="false" id="save-draft" { "Save draft" }
                    " "
                    button type="submit" name="submit" value="true" id="submit-evidence" { "Submit to the network" }
                }
                form method="post" action={ "/dashboard/disputes/" (dispute.id) "/close" } id="concede" {
                    input type="hidden" name="csrf" value=(signed.session.csrf_token);
                    button.danger type="submit" { "Accept the dispute (the cardholder keeps the money)" }
                }
            }
        } @else {
            section {
                h2 { "Evidence" }
                @if evidence.is_empty() { p.empty { "None." } }
                dl.facts id="evidence-read" {
                    @for (k, v) in evidence { dt { (label(k)) } dd { (v) } }
                }
            }
        }
    };
    layout::page("Dispute", signed, "/dashboard/disputes", content)
}

pub async fn dispute(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match path_id::<DisputeId>(&id) {
        Ok(id) => dispute_page(&state, &signed, &id, None).await,
        Err(r) => r,
    }
}

/// The evidence form: the fields of [`EVIDENCE_FIELDS`], the CSRF token
/// and which button was pressed.
#[derive(Debug, Deserialize)]
pub struct EvidenceForm {
    csrf: String,
    #[serde(default)]
    submit: Option<String>,
    #[serde(flatten)]
    fields: std::collections::BTreeMap<String, String>,
}

pub async fn evidence(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<EvidenceForm>,
) -> Response {
    let id = match path_id::<DisputeId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::Dispute,
        "dispute.evidence",
        Some(id.as_str()),
    )
    .await
    {
        return r;
    }
    let submit = form.submit.as_deref() == Some("true");
    // Empty boxes are fields left out, not evidence.
    let evidence: Map<String, Value> = form
        .fields
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let fields: Vec<String> = evidence.keys().cloned().collect();
    match disputes::submit_evidence(
        &state.payments,
        &signed.user.merchant_id,
        &id,
        evidence,
        submit,
    )
    .await
    {
        Ok(d) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                if submit {
                    "dispute.submit_evidence"
                } else {
                    "dispute.save_evidence"
                },
                Some(id.as_str()),
                json!({"fields": fields, "status": d.status}),
            )
            .await
            {
                return r;
            }
            let note = if submit {
                "Evidence submitted to the network."
            } else {
                "Draft saved."
            };
            dispute_page(&state, &signed, &id, Some((true, note.into()))).await
        }
        Err(
            e @ (PaymentError::Invalid { .. }
            | PaymentError::State { .. }
            | PaymentError::Busy { .. }
            | PaymentError::Refused { .. }),
        ) => with_status(
            dispute_page(&state, &signed, &id, Some((false, e.to_string()))).await,
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => payment_error(&e),
    }
}

pub async fn concede(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let id = match path_id::<DisputeId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::Dispute,
        "dispute.close",
        Some(id.as_str()),
    )
    .await
    {
        return r;
    }
    match disputes::resolve(
        &state.payments,
        &signed.user.merchant_id,
        &id,
        Outcome::Lost,
    )
    .await
    {
        Ok(_) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                "dispute.close",
                Some(id.as_str()),
                json!({}),
            )
            .await
            {
                return r;
            }
            Redirect::to(&format!("/dashboard/disputes/{id}")).into_response()
        }
        Err(e @ (PaymentError::State { .. } | PaymentError::Busy { .. })) => with_status(
            dispute_page(&state, &signed, &id, Some((false, e.to_string()))).await,
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => payment_error(&e),
    }
}

fn settlement_error(e: &SettlementError) -> Response {
    match e {
        SettlementError::NotFound(_) => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        other => guard::server_error("settlements", other),
    }
}

/// Per-asset totals of a settlement object, as table rows.
fn totals(object: &Value) -> maud::Markup {
    html! {
        @if let Some(t) = object["totals"].as_object() {
            @for (asset, v) in t {
                div { strong { (asset.to_uppercase()) } " gross " (field(v, "gross")) " · fees " (field(v, "fees")) " · net " (field(v, "net")) " · paid out " (field(v, "paid_out")) }
            }
        }
    }
}

fn anchor(object: &Value) -> maud::Markup {
    html! {
        @if object["anchor"].is_object() {
            span.mono { "chain " (object["anchor"]["chain_id"]) " · block " (object["anchor"]["block_number"]) } br;
            span.mono.small { (field(&object["anchor"], "tx_hash")) }
        } @else { "not yet anchored" }
    }
}

pub async fn settlements(State(state): State<AppState>, signed: Signed) -> Response {
    let merchant = &signed.user.merchant_id;
    let list =
        match settlement::list(&state.pool, merchant, &crate::page::Page::First, PAGE_ROWS).await {
            Ok(l) => l.data,
            Err(e) => return settlement_error(&e),
        };
    let mut payouts = match settlement::payouts_of(&state.pool, &list).await {
        Ok(p) => p,
        Err(e) => return settlement_error(&e),
    };
    let objects: Vec<Value> = list
        .iter()
        .map(|s| {
            serde_json::json!(s.to_api(&Contents {
                items: Vec::new(),
                payouts: payouts.remove(s.id.as_str()).unwrap_or_default(),
            }))
        })
        .collect();
    let content = html! {
        h1 { "Settlements" }
        p.small { "Each settlement is appended to the transparency log; its checkpoint is anchored on-chain. Anyone can check a payment's proof bundle against the chain at " a href="/verify" { "/verify" } "." }
        table id="settlements" {
            thead { tr { th { "Settlement" } th { "Totals" } th { "Payouts" } th { "Checkpoint" } th { "Anchor" } th { "Status" } th { "Created" } } }
            tbody { @for s in &objects { tr {
                td { a.mono href={ "/dashboard/settlements/" (field(s, "id")) } { (field(s, "id")) } }
                td.small { (totals(s)) }
                td.num { (s["payouts"].as_array().map_or(0, Vec::len)) }
                td.mono.small { @if s["checkpoint"].is_object() { "size " (s["checkpoint"]["tree_size"]) } @else { "—" } }
                td.small { (anchor(s)) }
                td { span class={ "status " (field(s, "status")) } { (field(s, "status")) } }
                td { (time(s["created"].as_i64().unwrap_or(0))) }
            } } }
        }
        @if objects.is_empty() { p.empty { "No settlements yet." } }
    };
    layout::page("Settlements", &signed, "/dashboard/settlements", content)
}

pub async fn settlement_detail(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let id = match SettlementId::parse(&id) {
        Ok(id) => id,
        Err(e) => return layout::error_page(StatusCode::NOT_FOUND, &format!("`{id}`: {e}")),
    };
    let (s, contents) = match settlement::get(&state.pool, &signed.user.merchant_id, &id).await {
        Ok(r) => r,
        Err(e) => return settlement_error(&e),
    };
    let object = serde_json::json!(s.to_api(&contents));
    let status = field(&object, "status");
    let content = html! {
        p { a href="/dashboard/settlements" { "← Settlements" } }
        h1 { "Settlement " span class={ "status " (status) } id="settlement-status" { (status) } }
        p.mono id="settlement-id" { (id) }
        dl.facts {
            dt { "Period" } dd { (time(object["period"]["start"].as_i64().unwrap_or(0))) " – " (time(object["period"]["end"].as_i64().unwrap_or(0))) }
            dt { "Totals" } dd { (totals(&object)) }
            dt { "Leaves" } dd.mono { (object["leaves"]["first"]) " … +" (object["leaves"]["count"]) }
            dt { "Checkpoint" } dd.mono id="checkpoint" {
                @if object["checkpoint"].is_object() { "tree size " (object["checkpoint"]["tree_size"]) br; span.small { (field(&object["checkpoint"], "root")) } } @else { "—" }
            }
            dt { "Anchor" } dd id="anchor" {
                (anchor(&object))
                @if object["anchor"].is_object() { br; span.small.mono { "contract " (field(&object["anchor"], "contract")) } }
            }
        }
        p { a.button href="/verify" id="verify-link" { "Verify a proof on-chain" } " "
            span.small { "Download a payment's proof bundle below and drop it on the verifier: it checks the bundle against the anchored root with your own RPC endpoint, trusting nothing from this node." } }
        section {
            h2 { "Payouts" }
            table id="payouts" {
                thead { tr { th { "Payout" } th { "Asset" } th { "Amount" } th { "Destination" } th { "Status" } th { "Transaction" } } }
                tbody { @for p in contents.payouts.iter() { tr {
                    td.mono { (p.id) } td { (p.asset) } td.num { (p.amount) }
                    td.mono.small { (p.destination) }
                    td { (p.status) }
                    td.mono.small { (p.tx_hash.as_deref().unwrap_or("")) }
                } } }
            }
            @if contents.payouts.is_empty() { p.empty { "No payouts in this settlement." } }
        }
        section {
            h2 { "Items" }
            table id="items" {
                thead { tr { th { "Source" } th { "Type" } th { "Asset" } th { "Amount" } th { "Fee" } th { "Leaf" } th { "Proof" } } }
                tbody { @for i in contents.items.iter() { @let source = i.source.as_deref().unwrap_or(""); tr {
                    td { @if source.starts_with("pay_") { (payment_link(source)) } @else { span.mono { (source) } } }
                    td { (i.kind) } td { (i.asset) }
                    td.num { (i.amount) } td.num { (i.fee) }
                    td.mono { (i.leaf_index.map_or_else(|| "null".to_owned(), |l| l.to_string())) }
                    td { @if source.starts_with("pay_") && i.kind != "fee" {
                        a href={ "/dashboard/payments/" (source) "/proof.json" } { "bundle" }
                    } }
                } } }
            }
        }
    };
    layout::page("Settlement", &signed, "/dashboard/settlements", content)
}
