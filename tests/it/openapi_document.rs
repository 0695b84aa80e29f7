//! The OpenAPI document on its own: valid JSON, OpenAPI 3.1, every `$ref`
//! resolves, and the conventions of docs/api.md hold for every operation
//! (Idempotency-Key on every authenticated POST, Request-Id on every
//! response, closed request bodies, declared path parameters).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::openapi_support;

use std::collections::BTreeSet;

use openapi_support::{deref, document, operations, resolve};
use serde_json::Value;

/// Every `$ref` in `value`, with where it sits.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((
                        at.to_owned(),
                        v.as_str().unwrap_or("<not a string>").to_owned(),
                    ));
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_json() {
    let raw = epg::api::openapi::DOCUMENT_TEXT.as_str();
    let doc: Value = serde_json::from_str(raw).expect("valid JSON");
    assert_eq!(doc, document(), "the node serves the generated document");
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, not {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
}

#[test]
fn every_ref_resolves() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(found.len() > 100, "the document uses components");
    let broken: Vec<_> = found
        .iter()
        .filter(|(_, r)| !r.starts_with("#/") || resolve(&doc, r).is_none())
        .collect();
    assert!(broken.is_empty(), "unresolved $refs: {broken:#?}");
    // And no component is defined but unused.
    let used: BTreeSet<&str> = found.iter().map(|(_, r)| r.as_str()).collect();
    let mut unused = Vec::new();
    for kind in ["schemas", "parameters", "responses", "headers"] {
        for name in doc["components"][kind].as_object().unwrap().keys() {
            let r = format!("#/components/{kind}/{name}");
            if !used.contains(r.as_str()) {
                unused.push(r);
            }
        }
    }
    assert!(unused.is_empty(), "unused components: {unused:?}");
}

#[test]
fn operations_are_complete_and_consistent() {
    let doc = document();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let schemes: BTreeSet<&String> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let mut ids = BTreeSet::new();
    for op in operations(&doc) {
        let name = format!("{} {}", op.method, op.path);
        let id = op.op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "{name}: duplicate operationId {id}"
        );
        assert!(op.op["summary"].is_string(), "{name}: summary");
        let tag = op.op["tags"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a tag"));
        assert!(tags.contains(tag), "{name}: tag {tag} is not declared");
        assert!(
            op.op["security"].is_array(),
            "{name}: explicit security (empty for no key)"
        );
        for s in op.schemes() {
            assert!(schemes.contains(&s), "{name}: unknown security scheme {s}");
        }

        // Path parameters: exactly those of the template, all required.
        let in_template: BTreeSet<String> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = op.parameter_names(&doc, "path").into_iter().collect();
        assert_eq!(in_template, declared, "{name}: path parameters");
        for p in op.parameters(&doc) {
            if p["in"] == "path" {
                assert_eq!(p["required"], true, "{name}: path parameter {}", p["name"]);
            }
            assert!(p["schema"].is_object(), "{name}: schema of {}", p["name"]);
        }

        // Authenticated operations: the keys' error answers; POSTs take an
        // Idempotency-Key.
        let authenticated = !op.schemes().is_empty();
        let responses = op.op["responses"].as_object().unwrap();
        assert!(responses.contains_key("200"), "{name}: a 200 response");
        if authenticated {
            for status in ["401", "500"] {
                assert!(responses.contains_key(status), "{name}: documents {status}");
            }
        }
        if op.schemes() == ["secretKey"] {
            assert!(
                responses.contains_key("403"),
                "{name}: 403 for a publishable key"
            );
        }
        if op.method == "POST" && authenticated {
            assert!(
                op.parameters(&doc)
                    .iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                "{name}: Idempotency-Key header"
            );
            for status in ["400", "409", "429"] {
                assert!(responses.contains_key(status), "{name}: documents {status}");
            }
        }
        if op.path.ends_with("/confirm") || op.path.ends_with("/challenge") {
            assert!(responses.contains_key("402"), "{name}: 402 for declines");
        }

        // Every response carries Request-Id and says what its body is.
        for (status, response) in responses {
            let response = deref(&doc, response);
            assert!(
                response.pointer("/headers/Request-Id").is_some(),
                "{name} {status}: Request-Id header"
            );
            assert!(
                response["description"].is_string(),
                "{name} {status}: description"
            );
            if status.starts_with('3') {
                // A redirect has no body, only where to go.
                assert!(
                    response.pointer("/headers/Location").is_some(),
                    "{name} {status}: Location header"
                );
            } else {
                assert!(response["content"].is_object(), "{name} {status}: content");
            }
            if (status.starts_with('4') || status.starts_with('5'))
                && let Some(schema) = response.pointer("/content/application~1json/schema")
            {
                let is_error = schema["$ref"] == "#/components/schemas/Error";
                let is_readiness = op.path == "/readyz";
                assert!(
                    is_error || is_readiness,
                    "{name} {status}: the error object"
                );
            }
        }

        // Request bodies are JSON objects that say whether they accept
        // other fields; examples follow their schema.
        if let Some(body) = op.body_schema(&doc) {
            assert_eq!(body["type"], "object", "{name}: body is an object");
            if let Some(example) = op
                .op
                .pointer("/requestBody/content/application~1json/example")
            {
                let problems = openapi_support::check(&doc, &body, example);
                assert!(problems.is_empty(), "{name}: example: {problems:?}");
            }
        }
    }
}

#[test]
fn the_error_object_is_as_api_md_says() {
    let doc = document();
    let error = deref(&doc, &doc["components"]["schemas"]["ErrorObject"]);
    let types: BTreeSet<&str> = deref(&doc, &error["properties"]["type"])["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "invalid_request_error",
        "authentication_error",
        "card_error",
        "idempotency_error",
        "rate_limit_error",
        "api_error",
    ]
    .into();
    assert_eq!(types, expected);
    for field in ["type", "code", "message", "param", "decline_code"] {
        assert!(error["properties"][field].is_object(), "error.{field}");
    }
    let required: BTreeSet<&str> = error["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["type", "code", "message"].into());

    // The objects docs/api.md names are all described (a property may sit
    // in a part of an `allOf`, as the payment's merchant-only fields do).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let property = |schema: &Value, name: &str| -> Value {
        let own = &schema["properties"][name];
        if !own.is_null() {
            return own.clone();
        }
        schema["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|part| deref(&doc, part)["properties"][name].clone())
            .find(|p| !p.is_null())
            .unwrap_or(Value::Null)
    };
    for (schema, object) in [
        ("Payment", "payment"),
        ("Refund", "refund"),
        ("Dispute", "dispute"),
        ("Event", "event"),
        ("WebhookEndpoint", "webhook_endpoint"),
        ("Balance", "balance"),
        ("BalanceTransaction", "balance_transaction"),
        ("List", "list"),
        ("Account", "account"),
    ] {
        assert_eq!(
            property(&schemas[schema], "object")["const"],
            object,
            "{schema}.object"
        );
    }
}

#[test]
fn list_parameters_are_bounded() {
    let doc = document();
    let mut lists = 0;
    for op in operations(&doc) {
        for p in op.parameters(&doc) {
            if p["name"] == "limit" && p["in"] == "query" {
                lists += 1;
                let name = format!("{} {}", op.method, op.path);
                let limit = &p["schema"];
                assert_eq!(limit["minimum"], 1, "{name}");
                assert_eq!(limit["maximum"], 100, "{name}");
                assert_eq!(limit["default"], 10, "{name}");
            }
        }
    }
    assert!(lists >= 8, "every list takes a limit ({lists} found)");
}
