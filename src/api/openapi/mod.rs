//! The OpenAPI 3.1 document, generated from the API's Rust types.
//!
//! Every handler carries `#[utoipa::path]` (method, path, parameters,
//! request body type, responses); request bodies derive `ToSchema` and
//! query strings `IntoParams`, from the same structs serde parses, so the
//! document says what the server accepts. [`ApiDoc`] assembles them;
//! [`document`] adds the conventions every operation shares (the
//! `Request-Id` header of every answer, the `Idempotency-Key` of
//! authenticated POSTs, the error responses, the security schemes) in one
//! place instead of in each annotation.
//!
//! `tests/it/openapi_routes.rs` holds the document to the router: every
//! routed (method, path) is documented and every documented one routed.

pub mod dashboard;

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

/// The assembly: every operation of the API, the dashboard's pages and the
/// shared error responses.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "E-PG API",
        version = "0.1.0",
        description = "The public contract of an E-PG node (the guide: docs/api.md, served at /docs/api.md). Conventions follow Stripe's.\n\n* JSON bodies (`Content-Type: application/json`); responses are JSON objects whose `object` field names their type.\n* `Authorization: Bearer <key>`. Secret keys (`sk_test_…`) may do everything for their merchant; publishable keys (`pk_test_…`) may only read a payment's checkout view and confirm it. Another merchant's objects answer 404, exactly as if they did not exist.\n* Amounts are integers of the currency's smallest unit (`1234` USD = $12.34); currencies are lower-case ISO 4217 codes.\n* Request bodies accept exactly the documented fields: an unknown one answers 400 `parameter_unknown` naming it.\n* Every POST takes an `Idempotency-Key`; every response carries a `Request-Id`.\n* Errors: `{\"error\": {\"type\", \"code\", \"message\", \"param\"?, \"decline_code\"?}}`; 400 bad input, 401 bad key, 402 declined, 403 forbidden, 404 unknown, 409 conflict or wrong state, 429 rate limit, 5xx only for the node's own faults.\n* Lists: `limit` (1–100, default 10), `starting_after`, `ending_before`; `{\"object\": \"list\", \"data\": […], \"has_more\": bool}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "A node on its default listen address.")),
    tags(
        (name = "Account", description = "The calling merchant."),
        (name = "Payments", description = "Create a payment on the server with a secret key, confirm it in the customer's browser (hosted checkout, publishable key and client secret) or on the server, then capture, cancel, list."),
        (name = "Refunds", description = "Partial or full refunds of succeeded payments."),
        (name = "Disputes", description = "Card chargebacks: read, answer with evidence, or concede."),
        (name = "Balance", description = "The merchant's money, from the ledger."),
        (name = "Events", description = "What happened to the merchant's objects, and their webhook deliveries."),
        (name = "Webhook endpoints", description = "Where events are POSTed, signed with `Epg-Signature`."),
        (name = "Settlements", description = "Settlement batches and the proofs of settled payments."),
        (name = "Transparency", description = "The public transparency log of settlements (no key)."),
        (name = "Test helpers", description = "Test mode only (not routed in live mode): drive the sandbox processors by hand."),
        (name = "Checkout", description = "The hosted checkout page (no key to load it)."),
        (name = "Operations", description = "Health, readiness, metrics and this reference (no key)."),
        (name = "Reconciliation", description = "The reconciliation desk: bank money that is not exactly a payment (unmatched, under-, over- or late payments, unexplained debits, transfers that came back). The operator token sees every exception; a secret key those of its own payments."),
        (name = "Dashboard", description = "The merchant dashboard: server-rendered pages for the merchant's users, signed in with a password and a TOTP code. The credential is the session cookie (`epg_dashboard`, HttpOnly, SameSite=Strict, Secure outside `epg dev`), not an API key; every form that changes state carries the session's CSRF token."),
        (name = "Verifier", description = "The auditor's page: verifies a proof bundle in the browser against the chain."),
    ),
    paths(
        super::account::retrieve,
        super::account::update,
        super::payments::create,
        super::payments::list,
        super::payments::retrieve,
        super::payments::confirm,
        super::payments::challenge,
        super::payments::capture,
        super::payments::cancel,
        super::stream::stream,
        super::refunds::create,
        super::refunds::list,
        super::refunds::retrieve,
        super::disputes::retrieve,
        super::disputes::evidence,
        super::disputes::close,
        super::balance::retrieve,
        super::balance::list,
        super::balance::retrieve_transaction,
        super::settlements::list,
        super::settlements::retrieve,
        super::settlements::proof,
        super::events::list,
        super::events::retrieve,
        super::events::deliveries,
        super::events::redeliver,
        super::webhook_endpoints::create,
        super::webhook_endpoints::list,
        super::webhook_endpoints::retrieve,
        super::webhook_endpoints::update,
        super::webhook_endpoints::delete,
        super::transparency::list_checkpoints,
        super::transparency::consistency,
        super::test_helpers::bank_clear,
        super::test_helpers::bank_return,
        super::test_helpers::voucher_pay,
        super::test_helpers::check_clear,
        super::test_helpers::check_bounce,
        super::test_helpers::ewallet_approve,
        super::test_helpers::ewallet_decline,
        super::test_helpers::open_dispute,
        super::test_helpers::run_settlement,
        super::test_helpers::resolve_dispute,
        super::checkout::page,
        super::checkout::qr,
        super::checkout::script,
        super::checkout::style,
        super::docs::style,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::docs::document,
        super::docs::reference,
        super::docs::guide,
        super::test_helpers::ewallet_page,
        super::test_helpers::processor_calls,
        super::reconciliation::list,
        super::reconciliation::retrieve,
        super::reconciliation::assign,
        super::reconciliation::refund,
        super::reconciliation::write_off,
        dashboard::dashboard_home,
        dashboard::dashboard_sign_in_form,
        dashboard::dashboard_sign_in,
        dashboard::dashboard_code_form,
        dashboard::dashboard_code,
        dashboard::dashboard_enrol_form,
        dashboard::dashboard_enrol,
        dashboard::dashboard_sign_out,
        dashboard::dashboard_payments,
        dashboard::dashboard_payments_csv,
        dashboard::dashboard_payment,
        dashboard::dashboard_refund,
        dashboard::dashboard_proof,
        dashboard::dashboard_balance,
        dashboard::dashboard_team,
        dashboard::dashboard_audit_log,
        dashboard::dashboard_feed,
        dashboard::dashboard_style,
        dashboard::dashboard_script,
        dashboard::dashboard_api_keys,
        dashboard::dashboard_create_api_key,
        dashboard::dashboard_roll_api_key,
        dashboard::dashboard_revoke_api_key,
        dashboard::dashboard_disputes,
        dashboard::dashboard_dispute,
        dashboard::dashboard_dispute_evidence,
        dashboard::dashboard_close_dispute,
        dashboard::dashboard_event,
        dashboard::dashboard_redeliver,
        dashboard::dashboard_invitation,
        dashboard::dashboard_accept_invitation,
        dashboard::dashboard_password_form,
        dashboard::dashboard_change_password,
        dashboard::dashboard_refunds,
        dashboard::dashboard_settings,
        dashboard::dashboard_set_methods,
        dashboard::dashboard_set_risk,
        dashboard::dashboard_set_payout_address,
        dashboard::dashboard_set_bank_account,
        dashboard::dashboard_settlements,
        dashboard::dashboard_settlement,
        dashboard::dashboard_invite,
        dashboard::dashboard_webhooks,
        dashboard::dashboard_create_webhook,
        dashboard::verify_page,
        dashboard::verify_script,
    ),
    components(
        schemas(
            super::error::Body<'_>,
            // Named by reference from the fields they flatten into (see
            // `PaymentObject::merchant`, `NextAction::BankTransferInstructions`).
            crate::payments::model::MerchantView,
            crate::payments::model::PayeeDetails,
        ),
        responses(
            BadRequest,
            Unauthorized,
            PaymentRequired,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            TooManyRequests,
            InternalError,
            BadGateway,
            ServiceUnavailable,
        ),
    )
)]
pub struct ApiDoc;

/// The merchant's key-value pairs: up to 50 keys of 1–40 characters with
/// string values of at most 500 characters, stored and returned as given.
pub fn metadata_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Object)
        .description(Some(
            "Up to 50 keys of 1–40 characters with string values of at most 500 characters, stored and returned as given.",
        ))
        .max_properties(Some(crate::metadata::MAX_KEYS))
        .property_names(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::metadata::MAX_KEY_LEN)),
        ))
        .additional_properties(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .max_length(Some(crate::metadata::MAX_VALUE_LEN)),
        ))
        .build()
}

/// Declares `fn $name() -> Object`: the schema of a string that is always
/// `$value` (an object's `object` field), for `#[schema(schema_with)]`.
#[macro_export]
macro_rules! object_name_schema {
    ($name:ident, $value:literal) => {
        fn $name() -> utoipa::openapi::Object {
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .enum_values(Some([$value]))
                .build()
        }
    };
}

/// The same where `null` is as absent.
pub fn metadata_schema_nullable() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Null))
        .item(metadata_schema())
        .build()
        .into()
}

/// A currency of a payment: a lower-case ISO 4217 code the node knows.
pub fn currency_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some("Lower-case ISO 4217 code."))
        .enum_values(Some(crate::money::Currency::all().map(|c| c.code())))
        .examples(["usd"])
        .build()
}

/// An amount as the API shows it: an integer of the smallest unit (fiat),
/// or a decimal string of base units (crypto, or beyond 2^53).
pub fn amount_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            utoipa::openapi::Type::Integer,
            utoipa::openapi::Type::String,
        ]))
        .description(Some(
            "Fiat: an integer of the smallest unit. Crypto: a decimal string of base units.",
        ))
        .build()
}

/// Declares an error response component: the error object with a
/// description of when it is answered.
macro_rules! error_response {
    ($name:ident, $description:expr) => {
        #[doc = $description]
        #[derive(Debug)]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let response = ResponseBuilder::new()
                    .description($description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Error")))
                            .build(),
                    )
                    .build();
                (stringify!($name), RefOr::T(response))
            }
        }
    };
}

error_response!(
    BadRequest,
    "Bad input (`invalid_request_error`): `parameter_invalid`, `parameter_missing`, `parameter_unknown` (a field the operation does not accept), `invalid_json`, `unsupported_content_type`, … with `param` naming the field; or an `Idempotency-Key` reused with another body or path (`idempotency_error`, `idempotency_key_reused`)."
);
error_response!(
    Unauthorized,
    "Missing, malformed, unknown or revoked key, or a key of the other mode (`authentication_error`: `api_key_missing`, `api_key_malformed`, `api_key_invalid`)."
);
error_response!(
    PaymentRequired,
    "Declined (`card_error`): `card_declined` (with `decline_code`), `authentication_failed` (wrong one-time code), `risk_blocked`, `payment_failed`. `error.payment` is the now `failed` payment, which may be confirmed again with another method."
);
error_response!(
    Forbidden,
    "A publishable key on an operation that needs a secret key (`secret_key_required`)."
);
error_response!(
    NotFound,
    "No such object for this merchant (`resource_missing`). Another merchant's object answers exactly the same."
);
error_response!(
    Conflict,
    "The object's state does not allow this (e.g. `payment_unexpected_state`, `payment_not_refundable`, `authorization_closed`), or a request with the same `Idempotency-Key` is still running (`idempotency_error`, `idempotency_key_in_use`)."
);
error_response!(
    PayloadTooLarge,
    "The body is larger than the node accepts (`payload_too_large`)."
);
error_response!(
    TooManyRequests,
    "Too many requests (`rate_limit_error`): with this key (`rate_limit`), from this client address on the public routes (`rate_limit`), after too many bad credentials from this address (`too_many_failed_authentications`), or too many live streams open (`too_many_streams`)."
);
error_response!(
    InternalError,
    "The node's own fault (`api_error`, `internal_error`); logged, nothing leaked. Retry with the same `Idempotency-Key`."
);
error_response!(
    BadGateway,
    "The payment processor could not be reached (`api_error`, `processor_unavailable`); retry with the same `Idempotency-Key`."
);
error_response!(
    ServiceUnavailable,
    "The request took too long and was abandoned, or a conflicting update was in progress (`api_error`, `service_unavailable`); retry."
);

// `PaymentCreateParams.amount`'s maximum, written as a literal there.
const _: () = assert!(crate::payments::MAX_AMOUNT == 99_999_999);

/// The document served at `/openapi.json`, built once.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

/// The document as JSON text, built once.
pub static DOCUMENT_TEXT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&*DOCUMENT).unwrap_or_else(|_| String::from("{}"))
});

/// Builds the document: [`ApiDoc`] plus the conventions every operation
/// shares.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    conventions(&mut doc);
    doc
}

/// What the middleware does for every route, said once: the security
/// schemes, `Request-Id` on every answer (and `WWW-Authenticate` on a
/// 401, `Retry-After` on a 429), explicit empty security on public
/// routes, and `Idempotency-Key` on every authenticated POST.
fn conventions(doc: &mut Value) {
    single_enums_as_const(doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        dependent_fields(schemas);
    }
    doc["openapi"] = json!("3.1.0");
    doc["info"]["summary"] = json!("The HTTP API of an E-PG payment gateway node.");
    let components = doc["components"].as_object_mut();
    if let Some(components) = components {
        components.insert("securitySchemes".into(), security_schemes());
        components.insert("headers".into(), headers());
        components.insert("parameters".into(), parameters());
        if let Some(responses) = components
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        {
            for (name, response) in responses.iter_mut() {
                add_headers(name, response);
            }
        }
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (_, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            if !secured {
                op.insert("security".into(), json!([]));
            }
            let dashboard = op
                .get("tags")
                .and_then(|t| t.get(0))
                .is_some_and(|t| t == "Dashboard");
            if method == "post" && secured && !dashboard {
                let params = op
                    .entry("parameters")
                    .or_insert_with(|| json!([]))
                    .as_array_mut();
                if let Some(params) = params {
                    params.push(json!({"$ref": "#/components/parameters/IdempotencyKey"}));
                }
            }
            optional_body(op);
            one_cursor(op);
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                for (_, response) in responses.iter_mut() {
                    if response.get("$ref").is_none() {
                        add_headers("", response);
                    }
                }
            }
        }
    }
}

/// Which fields go together, which a derive cannot say: `payment_method`
/// comes with `confirm: true` (and only then), and a payment method carries
/// exactly the sub-object of its `type` (`parse_method` in
/// `api/payments.rs` answers anything else with a 400 naming the field).
fn dependent_fields(schemas: &mut Map<String, Value>) {
    if let Some(create) = schemas.get_mut("PaymentCreateParams") {
        create["oneOf"] = json!([
            {
                "required": ["confirm", "payment_method"],
                "properties": {"confirm": {"const": true}, "payment_method": {"type": "object"}}
            },
            {"properties": {"confirm": {"const": false}}, "not": {"required": ["payment_method"]}}
        ]);
    }
    if let Some(method) = schemas.get_mut("PaymentMethodBody") {
        let only = |kinds: Value, own: Option<&str>| {
            let others: Vec<Value> = ["card", "ewallet", "crypto"]
                .into_iter()
                .filter(|o| Some(*o) != own)
                .map(|o| json!({"required": [o]}))
                .collect();
            let mut branch = json!({
                "properties": {"type": kinds},
                "not": {"anyOf": others}
            });
            if let Some(own) = own {
                branch["required"] = json!(["type", own]);
                branch["properties"][own] = json!({"type": "object"});
            }
            branch
        };
        method["oneOf"] = json!([
            only(json!({"const": "card"}), Some("card")),
            only(json!({"const": "ewallet"}), Some("ewallet")),
            only(json!({"const": "crypto"}), Some("crypto")),
            only(
                json!({"enum": ["bank_transfer", "cash_voucher", "check"]}),
                None
            ),
        ]);
    }
}

/// A body the handler takes as `Option<T>` (it may be left out, as the
/// extractor reads an empty body as `{}`) is an optional `T`, not a `T` or
/// `null`.
fn optional_body(op: &mut Map<String, Value>) {
    let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut) else {
        return;
    };
    let mut optional = false;
    if let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) {
        for (_, media) in content.iter_mut() {
            let inner = media["schema"]["oneOf"]
                .as_array()
                .filter(|alts| alts.len() == 2 && alts[0] == json!({"type": "null"}))
                .map(|alts| alts[1].clone());
            if let Some(inner) = inner {
                media["schema"] = inner;
                optional = true;
            }
        }
    }
    if optional || !body.contains_key("required") {
        body.insert("required".into(), json!(!optional));
    }
}

/// `starting_after` and `ending_before` may not both be given: as two
/// query parameters OpenAPI cannot say so, so they are described as the
/// two properties of one exploded object parameter, `cursor`, that
/// forbids both at once (an empty one is no cursor).
fn one_cursor(op: &mut Map<String, Value>) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    let at = |params: &[Value], name: &str| {
        params
            .iter()
            .position(|p| p["in"] == "query" && p["name"] == name)
    };
    let (Some(after), Some(before)) = (at(params, "starting_after"), at(params, "ending_before"))
    else {
        return;
    };
    let after_schema = params[after]["schema"].clone();
    let before_schema = params[before]["schema"].clone();
    let index = after.min(before);
    params.retain(|p| {
        !(p["in"] == "query" && (p["name"] == "starting_after" || p["name"] == "ending_before"))
    });
    let both_given = if after_schema["type"] == "string" {
        json!({
            "required": ["starting_after", "ending_before"],
            "properties": {"starting_after": {"minLength": 1}, "ending_before": {"minLength": 1}}
        })
    } else {
        json!({"required": ["starting_after", "ending_before"]})
    };
    params.insert(
        index.min(params.len()),
        json!({
            "name": "cursor",
            "in": "query",
            "required": false,
            "style": "form",
            "explode": true,
            "description": "At most one cursor, each its own query parameter: `starting_after` (the last item of the previous page: the items after it) or `ending_before` (the first item of the next page: the items before it). An empty one is no cursor.",
            "schema": {
                "type": "object",
                "properties": {"starting_after": after_schema, "ending_before": before_schema},
                "additionalProperties": false,
                "not": both_given
            }
        }),
    );
}

/// A one-value `enum` (how a derive says "always this string", e.g. an
/// object's `object` field) is written as JSON Schema's `const`.
fn single_enums_as_const(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let single = map
                .get("enum")
                .and_then(Value::as_array)
                .filter(|values| values.len() == 1)
                .map(|values| values[0].clone());
            if let Some(only) = single {
                map.remove("enum");
                map.insert("const".into(), only);
            }
            for (_, v) in map.iter_mut() {
                single_enums_as_const(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(single_enums_as_const),
        _ => {}
    }
}

fn add_headers(component: &str, response: &mut Value) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(headers) = headers.as_object_mut() else {
        return;
    };
    let mut with = |name: &str, component: &str| {
        headers.insert(
            name.to_owned(),
            json!({"$ref": format!("#/components/headers/{component}")}),
        );
    };
    with("Request-Id", "RequestId");
    match component {
        "Unauthorized" => with("WWW-Authenticate", "WwwAuthenticate"),
        "TooManyRequests" => with("Retry-After", "RetryAfter"),
        _ => {}
    }
    if let Some(replayed) = headers.get("Idempotent-Replayed").cloned()
        && replayed.get("$ref").is_none()
    {
        headers.insert(
            "Idempotent-Replayed".into(),
            json!({"$ref": "#/components/headers/IdempotentReplayed"}),
        );
    }
}

fn security_schemes() -> Value {
    json!({
        "secretKey": {"type": "http", "scheme": "bearer", "bearerFormat": "sk_test_… / sk_live_…", "description": "A secret key: everything for its merchant. Keep it on the merchant's server."},
        "publishableKey": {"type": "http", "scheme": "bearer", "bearerFormat": "pk_test_… / pk_live_…", "description": "A publishable key, safe in a browser: may only read a payment's checkout view and confirm it (with the payment's `client_secret`)."},
        "clientSecret": {"type": "apiKey", "in": "query", "name": "client_secret", "description": "A payment's `client_secret`, for browser requests that cannot send headers (`EventSource`)."},
        "operatorToken": {"type": "http", "scheme": "bearer", "description": "The operator token of the node (`EPG_OPERATOR_TOKEN`): `/metrics` and the details of `/readyz`."}
    })
}

fn headers() -> Value {
    json!({
        "RequestId": {"description": "This request's id (`req_…`), also in the node's logs; quote it when reporting a problem.", "schema": {"type": "string", "pattern": "^req_[A-Za-z0-9]{24}$"}},
        "IdempotentReplayed": {"description": "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`.", "schema": {"type": "string", "enum": ["true"]}},
        "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
        "WwwAuthenticate": {"description": "`Bearer realm=\"epg\"`.", "schema": {"type": "string"}}
    })
}

fn parameters() -> Value {
    json!({
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes the POST safe to retry: a retry with the same key and the same body returns the first response (status and body) again, with `Idempotent-Replayed: true`; the same key with a different body or path answers 400 `idempotency_error`; a retry while the first request still runs answers 409. Keys are kept at least 24 hours, per merchant.",
            // Visible ASCII (HTTP trims the ends), as the middleware reads it.
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([\\t -~]*[!-~])?$"}
        }
    })
}
