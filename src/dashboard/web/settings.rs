//! Settings (admins change them; everyone else reads): the payment method
//! types the merchant takes, the risk threshold, and where payouts go —
//! the crypto payout address and the bank accounts, each behind a fresh
//! code, since changing them redirects money.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::form::Form;
use super::format::time;
use super::guard::{self, code_field, message, with_status};
use super::layout;
use super::session::Signed;
use crate::api::AppState;
use crate::bank::config as bank_config;
use crate::bank::transfers::{self, CreditorAccount};
use crate::dashboard::Action;
use crate::merchants::{MerchantError, MerchantStore, PAYMENT_METHOD_TYPES};

async fn settings_page(
    state: &AppState,
    signed: &Signed,
    note: Option<(bool, String)>,
) -> Response {
    let merchant_id = &signed.user.merchant_id;
    let store = MerchantStore::new(state.pool.clone());
    let (merchant, threshold) =
        match tokio::try_join!(store.get(merchant_id), store.risk_threshold(merchant_id)) {
            Ok(r) => r,
            Err(e) => return guard::server_error("settings", &e),
        };
    let accounts = match transfers::merchant_accounts(&state.pool, merchant_id).await {
        Ok(a) => a,
        Err(e) => return guard::server_error("settings", &e),
    };
    let offered = state.payments.offered(
        &PAYMENT_METHOD_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    );
    let admin = signed.user.role.may(Action::EditSettings);
    let csrf = &signed.session.csrf_token;
    let content = html! {
        h1 { "Settings" }
        (message(&note))
        @if !admin { p.small { "Only admins change settings; you can read them." } }
        section {
            h2 { "Payment methods" }
            form.stack method="post" action="/dashboard/settings/methods" id="methods" {
                input type="hidden" name="csrf" value=(csrf);
                @for t in PAYMENT_METHOD_TYPES {
                    label.check {
                        input type="checkbox" name="method" value=(t) checked[merchant.payment_method_types.iter().any(|m| m == t)] disabled[!admin];
                        " " (t)
                        @if !offered.iter().any(|o| o == t) { span.small { " (not offered by this node)" } }
                    }
                }
                @if admin { button type="submit" { "Save methods" } }
            }
        }
        section {
            h2 { "Risk" }
            form.stack method="post" action="/dashboard/settings/risk" id="risk" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Block payments whose risk score is at or above (0–100) "
                    input type="number" name="risk_threshold" min="0" max="100" value=(threshold) required disabled[!admin]; }
                @if admin { button type="submit" { "Save threshold" } }
            }
        }
        section {
            h2 { "Crypto payouts" }
            p { "Payout address: " code id="payout-address" { (merchant.payout_address.as_deref().unwrap_or("none")) } }
            @if admin {
                form.stack method="post" action="/dashboard/settings/payout-address" id="payout" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "New address (empty: no crypto payouts) " input type="text" name="address" placeholder="0x…" pattern="(0x[0-9a-fA-F]{40})?" spellcheck="false"; }
                    (code_field())
                    button type="submit" { "Change payout address" }
                }
            }
        }
        section {
            h2 { "Bank accounts for payouts" }
            table id="bank-accounts" {
                thead { tr { th { "Currency" } th { "Holder" } th { "Account" } } }
                tbody { @for (currency, holder, masked) in &accounts { tr {
                    td { (currency.to_uppercase()) } td { (holder) } td.mono { (masked) }
                } } }
            }
            @if accounts.is_empty() { p.empty { "No bank account: fiat payouts are recorded, not sent." } }
            @if admin {
                form.stack method="post" action="/dashboard/settings/bank-account" id="bank" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Currency " input type="text" name="currency" placeholder="eur" required maxlength="3"; }
                    label { "Account holder " input type="text" name="holder" required maxlength="140"; }
                    fieldset {
                        legend { "IBAN and BIC, or US routing and account number" }
                        label { "IBAN " input type="text" name="iban" spellcheck="false"; }
                        label { "BIC " input type="text" name="bic" spellcheck="false"; }
                        label { "Routing number " input type="text" name="routing_number" inputmode="numeric"; }
                        label { "Account number " input type="text" name="account_number" inputmode="numeric"; }
                    }
                    (code_field())
                    button type="submit" { "Save bank account" }
                }
            }
        }
        p.small { "Merchant " span.mono { (merchant.id) } " · since " (time(merchant.created_at.unix_timestamp())) }
    };
    layout::page("Settings", signed, "/dashboard/settings", content)
}

pub async fn settings(State(state): State<AppState>, signed: Signed) -> Response {
    settings_page(&state, &signed, None).await
}

async fn refused(state: &AppState, signed: &Signed, what: &str, why: String) -> Response {
    with_status(
        settings_page(
            state,
            signed,
            Some((false, format!("{what} not changed: {why}"))),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
}

async fn saved(
    state: &AppState,
    signed: &Signed,
    action: &str,
    detail: serde_json::Value,
    note: &str,
) -> Response {
    if let Err(r) = guard::record(state, signed, action, None, detail).await {
        return r;
    }
    settings_page(state, signed, Some((true, note.to_owned()))).await
}

/// A settings form's CSRF token and the admin role.
async fn admin_only(
    state: &AppState,
    signed: &Signed,
    csrf: &str,
    audit: &str,
) -> Result<(), Response> {
    guard::admit(state, signed, csrf, Action::EditSettings, audit, None).await
}

/// The methods form: one `method` field per ticked box (none: the field is
/// absent), so it is read from the raw pairs.
pub async fn methods(
    State(state): State<AppState>,
    signed: Signed,
    body: axum::body::Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if let Err(r) = admin_only(&state, &signed, csrf, "settings.payment_methods").await {
        return r;
    }
    let chosen: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "method")
        .map(|(_, v)| v)
        .collect();
    match MerchantStore::new(state.pool.clone())
        .set_payment_methods(&signed.user.merchant_id, &chosen)
        .await
    {
        Ok(set) => {
            saved(
                &state,
                &signed,
                "settings.payment_methods",
                json!({"payment_method_types": set}),
                "Payment methods saved.",
            )
            .await
        }
        Err(e @ MerchantError::Invalid { .. }) => {
            refused(&state, &signed, "Payment methods", e.to_string()).await
        }
        Err(e) => guard::server_error("settings", &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RiskForm {
    csrf: String,
    risk_threshold: i64,
}

pub async fn risk(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<RiskForm>,
) -> Response {
    if let Err(r) = admin_only(&state, &signed, &form.csrf, "settings.risk_threshold").await {
        return r;
    }
    match MerchantStore::new(state.pool.clone())
        .set_risk_threshold(&signed.user.merchant_id, form.risk_threshold)
        .await
    {
        Ok(()) => {
            saved(
                &state,
                &signed,
                "settings.risk_threshold",
                json!({"risk_threshold": form.risk_threshold}),
                "Risk threshold saved.",
            )
            .await
        }
        Err(e @ MerchantError::Invalid { .. }) => {
            refused(&state, &signed, "Risk threshold", e.to_string()).await
        }
        Err(e) => guard::server_error("settings", &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PayoutForm {
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    code: String,
}

pub async fn payout_address(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<PayoutForm>,
) -> Response {
    if let Err(r) = admin_only(&state, &signed, &form.csrf, "settings.payout_address").await {
        return r;
    }
    let address = match Some(form.address.trim())
        .filter(|a| !a.is_empty())
        .map(crate::chain::parse_address)
        .transpose()
    {
        Ok(a) => a,
        Err(e) => return refused(&state, &signed, "Payout address", e).await,
    };
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            settings_page(
                &state,
                &signed,
                Some((false, format!("Payout address not changed: {m}"))),
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    match MerchantStore::new(state.pool.clone())
        .set_payout_address(&signed.user.merchant_id, address)
        .await
    {
        Ok(()) => {
            let shown = address.map(|a| a.to_checksum(None));
            saved(
                &state,
                &signed,
                "settings.payout_address",
                json!({"payout_address": shown}),
                "Payout address changed.",
            )
            .await
        }
        Err(e) => guard::server_error("settings", &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct BankForm {
    csrf: String,
    currency: String,
    holder: String,
    #[serde(default)]
    iban: String,
    #[serde(default)]
    bic: String,
    #[serde(default)]
    routing_number: String,
    #[serde(default)]
    account_number: String,
    #[serde(default)]
    code: String,
}

fn creditor(form: &BankForm) -> Result<CreditorAccount, String> {
    fn given(s: &str) -> Option<&str> {
        Some(s.trim()).filter(|s| !s.is_empty())
    }
    match (
        given(&form.iban),
        given(&form.routing_number),
        given(&form.account_number),
    ) {
        (Some(iban), None, None) => Ok(CreditorAccount {
            iban: Some(bank_config::parse_iban(iban).map_err(|e| format!("IBAN: {e}"))?),
            bic: given(&form.bic)
                .map(bank_config::parse_bic)
                .transpose()
                .map_err(|e| format!("BIC: {e}"))?,
            routing_number: None,
            account_number: None,
        }),
        (None, Some(routing), Some(number)) => Ok(CreditorAccount {
            iban: None,
            bic: None,
            routing_number: Some(
                bank_config::parse_routing_number(routing)
                    .map_err(|e| format!("routing number: {e}"))?,
            ),
            account_number: Some(
                bank_config::parse_account_number(number)
                    .map_err(|e| format!("account number: {e}"))?,
            ),
        }),
        _ => Err("give an IBAN (and BIC), or a routing number and an account number".into()),
    }
}

pub async fn bank_account(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<BankForm>,
) -> Response {
    if let Err(r) = admin_only(&state, &signed, &form.csrf, "settings.bank_account").await {
        return r;
    }
    let currency = match crate::money::Currency::parse(&form.currency.trim().to_ascii_lowercase()) {
        Ok(c) => c,
        Err(e) => return refused(&state, &signed, "Bank account", format!("currency: {e}")).await,
    };
    let holder = form.holder.trim();
    if holder.is_empty() || holder.chars().count() > 140 {
        return refused(
            &state,
            &signed,
            "Bank account",
            "the holder's name must be 1 to 140 characters".into(),
        )
        .await;
    }
    let account = match creditor(&form) {
        Ok(a) => a,
        Err(e) => return refused(&state, &signed, "Bank account", e).await,
    };
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            settings_page(
                &state,
                &signed,
                Some((false, format!("Bank account not changed: {m}"))),
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    match transfers::set_merchant_account(
        &state.pool,
        &state.keys.sealer(crate::crypto::Purpose::BankAccounts),
        &signed.user.merchant_id,
        currency.code(),
        holder,
        &account,
    )
    .await
    {
        Ok(masked) => {
            saved(
                &state,
                &signed,
                "settings.bank_account",
                json!({"currency": currency.code(), "holder": holder, "account": masked}),
                "Bank account saved.",
            )
            .await
        }
        Err(e) => guard::server_error("settings", &e),
    }
}
