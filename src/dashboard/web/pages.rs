//! Home, balance and audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use time::OffsetDateTime;

use super::format::time;
use super::layout;
use super::session::{Signed, dashboard};
use crate::api::AppState;
use crate::payments::store::MethodVolume;

fn server_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard page");
    layout::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side.",
    )
}

fn money(minor: i64, currency: &str) -> String {
    super::format::amount(&serde_json::json!(minor), currency)
}

/// Succeeded out of created, as a percentage with one decimal, in integers.
fn rate(succeeded: i64, count: i64) -> String {
    if count == 0 {
        return "—".into();
    }
    let per_mille = succeeded * 1000 / count;
    format!("{}.{}%", per_mille / 10, per_mille % 10)
}

fn volume_table(id: &str, rows: &[MethodVolume]) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { "Method" } th { "Currency" } th { "Payments" } th { "Succeeded" } th { "Success rate" } th { "Volume" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.method.as_deref().unwrap_or("not confirmed")) }
                        td { (r.currency.to_uppercase()) }
                        td.num { (r.count) }
                        td.num { (r.succeeded) }
                        td.num { (rate(r.succeeded, r.count)) }
                        td.num { (money(r.volume, &r.currency)) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.empty { "No payments." } }
    }
}

/// Bars of daily volume in one currency, scaled to the largest day. Drawn
/// here so the page needs no chart script.
pub fn chart(days: &[(time::Date, i64)], currency: &str) -> String {
    const W: i64 = 600;
    const H: i64 = 160;
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let max = days.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let bar = W / n;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {}\" class=\"chart\" role=\"img\" aria-label=\"Daily volume, {}\">",
        H + 20,
        currency.to_uppercase()
    );
    for (i, (day, value)) in days.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let h = value * H / max;
        svg.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{day}: {}</title></rect>",
            i * bar + 1,
            H - h,
            (bar - 2).max(1),
            money(*value, currency)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"0\" y=\"{}\">{}</text><text x=\"{W}\" y=\"{}\" text-anchor=\"end\">max {}</text></svg>",
        H + 16,
        days.first().map(|(d, _)| d.to_string()).unwrap_or_default(),
        H + 16,
        money(max, currency)
    ));
    svg
}

pub async fn home(State(state): State<AppState>, signed: Signed) -> Response {
    let merchant = &signed.user.merchant_id;
    let now = OffsetDateTime::now_utc();
    let today = now.date().midnight().assume_utc();
    let month = today - time::Duration::days(29);
    let (today_rows, month_rows, daily) = match tokio::try_join!(
        state.payments.volume_by_method(merchant, today),
        state.payments.volume_by_method(merchant, month),
        state.payments.daily_volume(merchant, month),
    ) {
        Ok(r) => r,
        Err(e) => return server_error(&e),
    };
    let balances = {
        let mut conn = match state.pool.acquire().await {
            Ok(c) => c,
            Err(e) => return server_error(&e),
        };
        match crate::ledger::merchant_balances(&mut conn, merchant).await {
            Ok(b) => b,
            Err(e) => return server_error(&e),
        }
    };
    // The chart shows the currency with the most volume this month.
    let mut per_currency: std::collections::BTreeMap<&str, i64> = Default::default();
    for (_, c, v) in &daily {
        *per_currency.entry(c.as_str()).or_default() += v;
    }
    let top = per_currency
        .iter()
        .max_by_key(|(_, v)| **v)
        .map(|(c, _)| (*c).to_owned());
    let chart_svg = top.as_ref().map(|currency| {
        let days: Vec<(time::Date, i64)> = (0..30)
            .map(|i| {
                let day = month.date() + time::Duration::days(i);
                let value = daily
                    .iter()
                    .filter(|(d, c, _)| *d == day && c == currency)
                    .map(|(_, _, v)| v)
                    .sum();
                (day, value)
            })
            .collect();
        chart(&days, currency)
    });
    let content = html! {
        h1 { "Home" }
        section.cards id="balances" {
            @for b in &balances {
                div.card {
                    h3 { (b.asset.code.symbol().to_uppercase()) @if let Some(chain) = b.asset.chain_id() { " · chain " (chain) } }
                    p.big { (b.available.to_major_string(b.asset.scale)) }
                    p.small { "available · pending " (b.pending.to_major_string(b.asset.scale)) " · reserved " (b.reserved.to_major_string(b.asset.scale)) }
                }
            }
            @if balances.is_empty() { p.empty { "No balance yet." } }
        }
        section {
            h2 { "Volume, last 30 days" @if let Some(c) = &top { " (" (c.to_uppercase()) ")" } }
            @if let Some(svg) = &chart_svg { figure id="chart" { (PreEscaped(svg)) } } @else { p.empty { "No succeeded payments in the last 30 days." } }
        }
        section { h2 { "Today" } (volume_table("today", &today_rows)) }
        section { h2 { "Last 30 days" } (volume_table("month", &month_rows)) }
        section {
            h2 { "Live feed" }
            p.small { "New events appear here as they happen." }
            ol.feed id="feed" {}
        }
    };
    layout::page("Home", &signed, "/dashboard", content)
}

pub async fn balance(State(state): State<AppState>, signed: Signed) -> Response {
    let merchant = &signed.user.merchant_id;
    let mut conn = match state.pool.acquire().await {
        Ok(c) => c,
        Err(e) => return server_error(&e),
    };
    let balances = match crate::ledger::merchant_balances(&mut conn, merchant).await {
        Ok(b) => b,
        Err(e) => return server_error(&e),
    };
    let transactions = match crate::ledger::balance_transactions(
        &mut conn,
        merchant,
        100,
        &crate::ledger::Page::First,
    )
    .await
    {
        Ok(l) => l.data,
        Err(e) => return server_error(&e),
    };
    let content = html! {
        h1 { "Balance" }
        table id="balance" {
            thead { tr { th { "Asset" } th { "Available" } th { "Pending" } th { "Reserved" } } }
            tbody { @for b in &balances { tr {
                td { (b.asset.code.as_str()) }
                td.num { (b.available.to_major_string(b.asset.scale)) }
                td.num { (b.pending.to_major_string(b.asset.scale)) }
                td.num { (b.reserved.to_major_string(b.asset.scale)) }
            } } }
        }
        h2 { "Balance transactions" }
        table id="transactions" {
            thead { tr { th { "Transaction" } th { "Type" } th { "Amount" } th { "Fee" } th { "Net" } th { "Status" } th { "Source" } th { "Created" } } }
            tbody { @for t in &transactions { tr {
                td.mono { (t.id) } td { (t.kind) }
                td.num { (t.amount.to_major_string(t.asset.scale)) " " (t.asset.code.symbol().to_uppercase()) }
                td.num { (t.fee.to_major_string(t.asset.scale)) }
                td.num { (t.net.to_major_string(t.asset.scale)) }
                td { (t.status) }
                td.mono { @if let Some(s) = &t.source { @if s.starts_with("pay_") { a href={ "/dashboard/payments/" (s) } { (s) } } @else { (s) } } }
                td { (time(t.created_at.unix_timestamp())) }
            } } }
        }
    };
    layout::page("Balance", &signed, "/dashboard/balance", content)
}

pub async fn audit_log(State(state): State<AppState>, signed: Signed) -> Response {
    let entries = match dashboard(&state).audit_log(&signed.user, 500).await {
        Ok(e) => e,
        Err(e) => return layout::dashboard_error(&e),
    };
    let content = html! {
        h1 { "Audit log" }
        p.small { "Every action in this dashboard, newest first. Entries cannot be changed or deleted." }
        table id="audit-log" {
            thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Detail" } th { "From" } } }
            tbody { @for e in &entries { tr {
                td { (time(e.at.unix_timestamp())) }
                td { (e.actor) }
                td { code { (e.action) } }
                td.mono { (e.target.as_deref().unwrap_or("")) }
                td.mono { (e.detail.to_string()) }
                td { (e.ip.as_deref().unwrap_or("")) br; span.small { (e.user_agent.as_deref().unwrap_or("")) } }
            } } }
        }
    };
    layout::page("Audit log", &signed, "/dashboard/audit-log", content)
}
