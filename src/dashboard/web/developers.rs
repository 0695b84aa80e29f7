//! Developers' pages: webhook endpoints (create with a fresh code), the
//! events with each delivery's attempts (the request POSTed and what the
//! receiver answered) and redelivery; API keys (create and roll with a
//! fresh code, revoke). The webhook and merchant subsystems do the work,
//! as they do for the REST API.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::form::{CsrfForm, Form, path_id};
use super::format::time;
use super::guard::{self, code_field, message, with_status};
use super::layout;
use super::session::Signed;
use crate::api::AppState;
use crate::dashboard::Action;
use crate::events::{EventError, EventStore, Page};
use crate::ids::{ApiKeyId, EventId};
use crate::merchants::{KeyKind, MerchantError, MerchantStore, NewKey};
use crate::webhooks::{DeliveryStore, EndpointStore, NewEndpoint, UrlPolicy, WebhookError};

fn endpoints(state: &AppState) -> EndpointStore {
    EndpointStore::new(
        state.pool.clone(),
        state.keys.sealer(crate::crypto::Purpose::WebhookSecrets),
        UrlPolicy::new(state.config.server.dev),
    )
}

fn webhook_error(e: &WebhookError) -> Response {
    match e {
        WebhookError::NotFound { .. } => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        WebhookError::Invalid { .. } => layout::error_page(StatusCode::BAD_REQUEST, &e.to_string()),
        other => guard::server_error("webhooks", other),
    }
}

fn event_error(e: &EventError) -> Response {
    match e {
        EventError::NotFound(_) => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        other => guard::server_error("events", other),
    }
}

/// A secret shown once, right after it was made.
fn once(label: &str, id: &str, secret: &str) -> Markup {
    html! {
        div.notice.secret role="alert" {
            p { strong { (label) } " — shown only now; copy it somewhere safe:" }
            p { code id=(id) { (secret) } }
        }
    }
}

async fn webhooks_page(
    state: &AppState,
    signed: &Signed,
    note: Option<(bool, String)>,
    created_secret: Option<&str>,
) -> Response {
    let merchant = &signed.user.merchant_id;
    let list = match endpoints(state).list(merchant, 100, Page::First).await {
        Ok(l) => l.data,
        Err(e) => return webhook_error(&e),
    };
    let events = match EventStore::new(state.pool.clone())
        .list(merchant, None, 50, Page::First)
        .await
    {
        Ok(l) => l.data,
        Err(e) => return event_error(&e),
    };
    let may = signed.user.role.may(Action::ManageWebhooks);
    let content = html! {
        h1 { "Webhooks" }
        (message(&note))
        @if let Some(secret) = created_secret { (once("Signing secret", "endpoint-secret", secret)) }
        h2 { "Endpoints" }
        table id="endpoints" {
            thead { tr { th { "Endpoint" } th { "URL" } th { "Events" } th { "Status" } th { "Created" } } }
            tbody { @for e in &list { tr {
                td.mono { (e.id) } td.mono { (e.url) } td.small { (e.enabled_events.join(", ")) }
                td { (e.status) } td { (time(e.created_at.unix_timestamp())) }
            } } }
        }
        @if list.is_empty() { p.empty { "No endpoints." } }
        @if may {
            form.stack method="post" action="/dashboard/webhooks" id="create-endpoint" {
                input type="hidden" name="csrf" value=(signed.session.csrf_token);
                label { "URL " input type="url" name="url" placeholder="https://example.com/hooks" required; }
                label { "Events (comma-separated, or *) " input type="text" name="enabled_events" value="*" required; }
                label { "Description " input type="text" name="description"; }
                (code_field())
                button type="submit" { "Add endpoint" }
            }
        }
        h2 { "Recent events" }
        table id="events" {
            thead { tr { th { "Event" } th { "Type" } th { "Created" } } }
            tbody { @for e in &events { tr {
                td { a.mono href={ "/dashboard/events/" (e.id) } { (e.id) } }
                td { code { (e.event_type) } }
                td { (time(e.created_at.unix_timestamp())) }
            } } }
        }
    };
    layout::page("Webhooks", signed, "/dashboard/webhooks", content)
}

pub async fn webhooks(State(state): State<AppState>, signed: Signed) -> Response {
    webhooks_page(&state, &signed, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct EndpointForm {
    csrf: String,
    url: String,
    enabled_events: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    code: String,
}

pub async fn create_endpoint(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<EndpointForm>,
) -> Response {
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageWebhooks,
        "webhook_endpoint.create",
        None,
    )
    .await
    {
        return r;
    }
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            webhooks_page(
                &state,
                &signed,
                Some((false, format!("Endpoint not added: {m}"))),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    let events: Vec<String> = form
        .enabled_events
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let description = Some(form.description.trim().to_owned()).filter(|d| !d.is_empty());
    match endpoints(&state)
        .create(
            &signed.user.merchant_id,
            NewEndpoint {
                url: form.url.trim().to_owned(),
                enabled_events: events.clone(),
                description,
                metadata: Default::default(),
            },
        )
        .await
    {
        Ok(created) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                "webhook_endpoint.create",
                Some(created.endpoint.id.as_str()),
                json!({"url": created.endpoint.url, "enabled_events": events}),
            )
            .await
            {
                return r;
            }
            webhooks_page(
                &state,
                &signed,
                Some((true, format!("Endpoint {} added.", created.endpoint.id))),
                Some(&created.secret),
            )
            .await
        }
        Err(e @ WebhookError::Invalid { .. }) => with_status(
            webhooks_page(
                &state,
                &signed,
                Some((false, format!("Endpoint not added: {e}"))),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => webhook_error(&e),
    }
}

async fn event_page(
    state: &AppState,
    signed: &Signed,
    id: &EventId,
    note: Option<(bool, String)>,
) -> Response {
    let merchant = &signed.user.merchant_id;
    let event = match EventStore::new(state.pool.clone()).get(merchant, id).await {
        Ok(e) => e,
        Err(e) => return event_error(&e),
    };
    let deliveries = match DeliveryStore::new(state.pool.clone())
        .list_for_event(merchant, id, 100, Page::First)
        .await
    {
        Ok(l) => l.data,
        Err(e) => return webhook_error(&e),
    };
    // The body each attempt POSTed: the same bytes for every attempt.
    let request = crate::webhooks::worker::delivery_body(&event, state.config.mode)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default();
    let may = signed.user.role.may(Action::ManageWebhooks);
    let content = html! {
        p { a href="/dashboard/webhooks" { "← Webhooks" } }
        h1 { code { (event.event_type) } }
        p.mono id="event-id" { (event.id) }
        (message(&note))
        section {
            h2 { "Request" }
            p.small { "POSTed to each endpoint as " code { "application/json" } ", signed in the " code { "Epg-Signature" } " header." }
            pre.json id="request" { (request) }
        }
        section {
            h2 { "Deliveries" }
            @if deliveries.is_empty() { p.empty { "No endpoint was subscribed to this event." } }
            @for d in &deliveries {
                article.delivery data-delivery=(d.id) {
                    h3 { span.mono { (d.endpoint_id) } " " span class={ "status " (d.status) } { (d.status) } " · " (d.attempt_count) " attempt(s)" }
                    table.attempts {
                        thead { tr { th { "#" } th { "Status" } th { "Time" } th { "Response" } th { "When" } } }
                        tbody { @for a in &d.attempts { tr {
                            td { (a.attempt) }
                            td { @if let Some(c) = a.status_code { (c) } @else { "—" } }
                            td.num { (a.duration_ms) " ms" }
                            td { @if let Some(e) = &a.error { span.error { (e) } br; }
                                 pre.small { (a.response_body.as_deref().unwrap_or("")) } }
                            td { (time(a.created_at.unix_timestamp())) }
                        } } }
                    }
                }
            }
            @if may {
                form method="post" action={ "/dashboard/events/" (event.id) "/redeliver" } id="redeliver" {
                    input type="hidden" name="csrf" value=(signed.session.csrf_token);
                    button type="submit" { "Redeliver to subscribed endpoints" }
                }
            }
        }
    };
    layout::page("Event", signed, "/dashboard/webhooks", content)
}

pub async fn event(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match path_id::<EventId>(&id) {
        Ok(id) => event_page(&state, &signed, &id, None).await,
        Err(r) => r,
    }
}

pub async fn redeliver(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let id = match path_id::<EventId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageWebhooks,
        "webhook.redeliver",
        Some(id.as_str()),
    )
    .await
    {
        return r;
    }
    match DeliveryStore::new(state.pool.clone())
        .redeliver(&signed.user.merchant_id, &id, None)
        .await
    {
        Ok(queued) => {
            let ids: Vec<&str> = queued.iter().map(|d| d.id.as_str()).collect();
            if let Err(r) = guard::record(
                &state,
                &signed,
                "webhook.redeliver",
                Some(id.as_str()),
                json!({"deliveries": ids}),
            )
            .await
            {
                return r;
            }
            let note = if queued.is_empty() {
                "No enabled endpoint is subscribed to this event: nothing to redeliver.".to_owned()
            } else {
                let running = queued.iter().filter(|d| d.attempt_running()).count();
                match (queued.len() - running, running) {
                    (n, 0) => format!("Queued {n} delivery(ies)."),
                    (0, r) => format!(
                        "{r} delivery(ies) under way already: the attempt running is the redelivery."
                    ),
                    (n, r) => format!("Queued {n} delivery(ies); {r} more under way already."),
                }
            };
            event_page(&state, &signed, &id, Some((true, note))).await
        }
        Err(e) => webhook_error(&e),
    }
}

fn merchant_error(e: &MerchantError) -> Response {
    match e {
        MerchantError::NotFound(_) => layout::error_page(StatusCode::NOT_FOUND, &e.to_string()),
        MerchantError::Invalid { .. } => {
            layout::error_page(StatusCode::BAD_REQUEST, &e.to_string())
        }
        other => guard::server_error("api keys", other),
    }
}

async fn keys_page(
    state: &AppState,
    signed: &Signed,
    note: Option<(bool, String)>,
    created: Option<&NewKey>,
) -> Response {
    let keys = match MerchantStore::new(state.pool.clone())
        .list_keys(&signed.user.merchant_id)
        .await
    {
        Ok(k) => k,
        Err(e) => return merchant_error(&e),
    };
    let may = signed.user.role.may(Action::ManageKeys);
    let csrf = &signed.session.csrf_token;
    let content = html! {
        h1 { "API keys" }
        (message(&note))
        @if let Some(key) = created { (once("New key", "new-key", &key.secret)) }
        table id="keys" {
            thead { tr { th { "Key" } th { "Kind" } th { "Ends in" } th { "Created" } th { "Status" } @if may { th { "Actions" } } } }
            tbody { @for k in &keys { tr data-key=(k.id) {
                td.mono { (k.id) } td { (k.kind) } td.mono { "…" (k.last4) }
                td { (time(k.created_at.unix_timestamp())) }
                td { @if let Some(r) = k.revoked_at { "revoked " (time(r.unix_timestamp())) } @else { "active" } }
                @if may { td {
                    @if k.revoked_at.is_none() {
                        form.inline.roll method="post" action={ "/dashboard/api-keys/" (k.id) "/roll" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" placeholder="code" aria-label="Authenticator code" required;
                            button type="submit" { "Roll" }
                        }
                        form.inline.revoke method="post" action={ "/dashboard/api-keys/" (k.id) "/revoke" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button.danger type="submit" { "Revoke" }
                        }
                    }
                } }
            } } }
        }
        @if may {
            h2 { "New key" }
            form.stack method="post" action="/dashboard/api-keys" id="create-key" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Kind "
                    select name="kind" { option value="secret" { "secret" } option value="publishable" { "publishable" } } }
                (code_field())
                button type="submit" { "Create key" }
            }
            p.small { "Rolling replaces a key at once: the old one stops working when the new one is shown." }
        }
    };
    layout::page("API keys", signed, "/dashboard/api-keys", content)
}

pub async fn keys(State(state): State<AppState>, signed: Signed) -> Response {
    keys_page(&state, &signed, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct CreateKeyForm {
    csrf: String,
    kind: String,
    #[serde(default)]
    code: String,
}

pub async fn create_key(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CreateKeyForm>,
) -> Response {
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageKeys,
        "api_key.create",
        None,
    )
    .await
    {
        return r;
    }
    let Ok(kind) = form.kind.parse::<KeyKind>() else {
        return layout::error_page(
            StatusCode::BAD_REQUEST,
            "The form field `kind` is wrong: expected secret or publishable",
        );
    };
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            keys_page(
                &state,
                &signed,
                Some((false, format!("Key not created: {m}"))),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    match MerchantStore::new(state.pool.clone())
        .create_key(&signed.user.merchant_id, kind, state.config.mode)
        .await
    {
        Ok((id, key)) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                "api_key.create",
                Some(id.as_str()),
                json!({"kind": kind}),
            )
            .await
            {
                return r;
            }
            keys_page(
                &state,
                &signed,
                Some((true, format!("Key {id} created."))),
                Some(&key),
            )
            .await
        }
        Err(e) => merchant_error(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RollForm {
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn roll_key(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<RollForm>,
) -> Response {
    let id = match path_id::<ApiKeyId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageKeys,
        "api_key.roll",
        Some(id.as_str()),
    )
    .await
    {
        return r;
    }
    if let Err(m) = guard::step_up(&state, &signed, &form.code).await {
        return with_status(
            keys_page(
                &state,
                &signed,
                Some((false, format!("Key not rolled: {m}"))),
                None,
            )
            .await,
            StatusCode::UNAUTHORIZED,
        );
    }
    match MerchantStore::new(state.pool.clone())
        .roll_key(&signed.user.merchant_id, &id)
        .await
    {
        Ok((new_id, key)) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                "api_key.roll",
                Some(id.as_str()),
                json!({"replaced_by": new_id.as_str()}),
            )
            .await
            {
                return r;
            }
            keys_page(
                &state,
                &signed,
                Some((true, format!("Key {id} rolled: {new_id} replaces it."))),
                Some(&key),
            )
            .await
        }
        Err(e) => merchant_error(&e),
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let id = match path_id::<ApiKeyId>(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Err(r) = guard::admit(
        &state,
        &signed,
        &form.csrf,
        Action::ManageKeys,
        "api_key.revoke",
        Some(id.as_str()),
    )
    .await
    {
        return r;
    }
    match MerchantStore::new(state.pool.clone())
        .revoke_key_of(&signed.user.merchant_id, &id)
        .await
    {
        Ok(()) => {
            if let Err(r) = guard::record(
                &state,
                &signed,
                "api_key.revoke",
                Some(id.as_str()),
                json!({}),
            )
            .await
            {
                return r;
            }
            Redirect::to("/dashboard/api-keys").into_response()
        }
        Err(e) => merchant_error(&e),
    }
}
