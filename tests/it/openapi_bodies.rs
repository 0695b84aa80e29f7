//! The documented request bodies and query parameters are exactly what the
//! handlers accept (their structs deny unknown fields):
//!
//! * every object the document marks `additionalProperties: false`, at any
//!   depth, answers an unknown field with 400 `parameter_unknown` naming it;
//!   every object it leaves open does not;
//! * no documented field, at any depth, is answered `parameter_unknown`;
//! * no field the handlers could accept is missing from the document: every
//!   field name of the `deny_unknown_fields` structs in `src/api` that an
//!   object does not document is answered `parameter_unknown` there;
//! * the same for the query parameters of the `/v1` operations.
//!
//! Bodies are sent with made-up ids: the JSON is parsed before the handler
//! looks anything up, so nothing is created or changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::openapi_support;

use std::collections::BTreeSet;

use openapi_support::{Operation, concrete, deref, document, error_of, operations};
use serde_json::{Map, Value, json};

const UNKNOWN: &str = "zz_not_a_field";
/// A well-formed id of no object, for body probes: bodies are parsed
/// before anything is looked up (and `payment_method.crypto` only once the
/// payment id parses).
const BODY_ID: &str = "pay_000000000000000000000000";
/// Not a well-formed id, for query probes: handlers give up on it after
/// parsing the query, and a live event stream never starts.
const QUERY_ID: &str = "probe_0000";

/// Every field name (after `rename`) of the `#[serde(deny_unknown_fields)]`
/// structs in `src/api`: the request bodies and queries of the handlers.
fn handler_field_names() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for chunk in text.split("deny_unknown_fields").skip(1) {
            let Some(start) = chunk.find("struct ") else {
                continue;
            };
            let rest = &chunk[start..];
            let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
                continue;
            };
            if close < open {
                continue; // a unit or tuple struct
            }
            let mut rename = None;
            for line in rest[open + 1..close].lines().map(str::trim) {
                if let Some(r) = line.strip_prefix("#[serde(rename = \"") {
                    rename = r.split('"').next().map(str::to_owned);
                    continue;
                }
                if line.starts_with("//") || line.starts_with("#[") || line.is_empty() {
                    continue;
                }
                let line = line.strip_prefix("pub ").unwrap_or(line);
                if let Some((field, _)) = line.split_once(':') {
                    names.insert(rename.take().unwrap_or_else(|| field.trim().to_owned()));
                }
            }
        }
    }
    names
}

/// An object schema reachable in a body, with its dotted path.
struct Node {
    path: Vec<String>,
    schema: Value,
    /// Discriminators to send along: at depth `.0` of the path, `"type"`
    /// set to the name of the sub-object probed (`payment_method.type =
    /// "crypto"` to reach `payment_method.crypto`), for handlers that parse
    /// a sub-object only once its type is chosen.
    types: Vec<(usize, String)>,
}

/// Every object schema in `schema`, through properties and `$ref`s.
fn object_nodes(
    doc: &Value,
    schema: &Value,
    path: Vec<String>,
    types: Vec<(usize, String)>,
    out: &mut Vec<Node>,
) {
    let schema = deref(doc, schema).clone();
    if schema["type"] != "object"
        && !schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("object")))
    {
        return;
    }
    if let Some(props) = schema["properties"].as_object() {
        let kinds = props
            .get("type")
            .map(|t| deref(doc, t)["enum"].clone())
            .unwrap_or_default();
        for (name, prop) in props {
            let mut p = path.clone();
            p.push(name.clone());
            let mut t = types.clone();
            if kinds.as_array().is_some_and(|k| k.contains(&json!(name))) {
                t.push((path.len(), name.clone()));
            }
            object_nodes(doc, prop, p, t, out);
        }
    }
    out.push(Node {
        path,
        schema,
        types,
    });
}

/// `{"a": {"b": leaf}}` for path `[a, b]`.
fn nest(path: &[String], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, key| {
        let mut m = Map::new();
        m.insert(key.clone(), inner);
        Value::Object(m)
    })
}

/// The body that puts `leaf` in the node's object, with its discriminators.
fn body_for(node: &Node, leaf: Value) -> Value {
    let mut body = nest(&node.path, leaf);
    for (depth, kind) in &node.types {
        let mut at = &mut body;
        for key in &node.path[..*depth] {
            at = &mut at[key.as_str()];
        }
        at["type"] = json!(kind);
    }
    body
}

async fn send(
    app: &common::TestApp,
    op: &Operation,
    query: &str,
    body: Option<&Value>,
) -> (u16, String, String) {
    let url = format!(
        "{}{}{}",
        app.address,
        concrete(&op.path, if body.is_some() { BODY_ID } else { QUERY_ID }),
        query
    );
    let mut request = app
        .client
        .request(op.method.parse().unwrap(), url)
        .timeout(std::time::Duration::from_secs(20))
        .bearer_auth(&app.secret_key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    error_of(status, &response.text().await.unwrap())
}

#[tokio::test]
async fn request_bodies_accept_exactly_the_documented_fields() {
    // Thousands of probes from one key: the rate limit is not under test.
    let app = common::spawn_app_with(|config| {
        config.security.rate_limit_per_second = 1_000_000;
        config.security.rate_limit_burst = 1_000_000;
    })
    .await;
    let doc = document();
    let vocabulary = handler_field_names();
    assert!(vocabulary.contains("payment_method") && vocabulary.contains("type"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for op in operations(&doc) {
        let Some(body) = op.body_schema(&doc) else {
            continue;
        };
        let name = format!("{} {}", op.method, op.path);
        let mut nodes = Vec::new();
        object_nodes(&doc, &body, Vec::new(), Vec::new(), &mut nodes);
        for node in nodes {
            let dotted = |field: &str| {
                let mut parts = node.path.clone();
                parts.push(field.to_owned());
                parts.join(".")
            };
            // An unknown field in this object.
            let mut probe = Map::new();
            probe.insert(UNKNOWN.to_owned(), json!("x"));
            let sent = body_for(&node, Value::Object(probe));
            let got = send(&app, &op, "", Some(&sent)).await;
            let rejected = got.0 == 400 && got.1 == "parameter_unknown" && got.2 == dotted(UNKNOWN);
            let closed = node.schema["additionalProperties"] == json!(false);
            checked += 1;
            if closed != rejected {
                failures.push(format!(
                    "{name}: {sent} answered {got:?}; the document says this object {} other fields",
                    if closed { "rejects" } else { "accepts" }
                ));
            }
            // Each documented field is known (its value may be invalid).
            let documented: BTreeSet<String> = node.schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            for field in &documented {
                let sent = body_for(&node, nest(std::slice::from_ref(field), Value::Null));
                let got = send(&app, &op, "", Some(&sent)).await;
                checked += 1;
                if got.1 == "parameter_unknown" && got.2 == dotted(field) {
                    failures.push(format!(
                        "{name}: documented field {} is unknown to the handler",
                        dotted(field)
                    ));
                }
            }
            // Any other field a handler struct has is unknown here.
            if closed {
                for field in vocabulary.difference(&documented) {
                    let sent = body_for(&node, nest(std::slice::from_ref(field), Value::Null));
                    let got = send(&app, &op, "", Some(&sent)).await;
                    checked += 1;
                    if !(got.1 == "parameter_unknown" && got.2 == dotted(field)) {
                        failures.push(format!(
                            "{name}: the handler accepts {} ({got:?}), which the document does not list",
                            dotted(field)
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 50, "probed {checked} bodies");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn query_parameters_are_exactly_the_documented_ones() {
    // Thousands of probes from one key: the rate limit is not under test.
    let app = common::spawn_app_with(|config| {
        config.security.rate_limit_per_second = 1_000_000;
        config.security.rate_limit_burst = 1_000_000;
    })
    .await;
    let doc = document();
    let vocabulary = handler_field_names();
    let mut failures = Vec::new();
    for op in operations(&doc) {
        // Only the API parses its query; pages and files ignore theirs.
        if !op.path.starts_with("/v1/") || op.method == "POST" {
            continue;
        }
        let name = format!("{} {}", op.method, op.path);
        let mut params = op.parameter_names(&doc, "query");
        // A security scheme carried in the query is a query parameter too.
        for scheme in op.schemes() {
            let s = &doc["components"]["securitySchemes"][&scheme];
            if s["in"] == "query" {
                params.push(s["name"].as_str().unwrap().to_owned());
            }
        }
        let got = send(&app, &op, &format!("?{UNKNOWN}=1"), None).await;
        let rejected = got.0 == 400 && got.1 == "parameter_unknown" && got.2 == UNKNOWN;
        if params.is_empty() == rejected {
            failures.push(format!(
                "{name}: an unknown query parameter answered {got:?}, but the document lists {params:?}"
            ));
        }
        if !params.is_empty() {
            for other in vocabulary.iter().filter(|v| !params.contains(v)) {
                let got = send(&app, &op, &format!("?{other}=1"), None).await;
                if !(got.1 == "parameter_unknown" && got.2 == *other) {
                    failures.push(format!(
                        "{name}: the handler accepts query parameter {other} ({got:?}), which the document does not list"
                    ));
                }
            }
        }
        for param in params {
            let got = send(&app, &op, &format!("?{param}=1"), None).await;
            if got.1 == "parameter_unknown" {
                failures.push(format!(
                    "{name}: documented query parameter {param} answered {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
