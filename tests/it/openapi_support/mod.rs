//! Helpers of the `openapi_*` tests: the document, its operations, `$ref`
//! resolution, and a small JSON Schema checker for responses.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// HTTP methods an operation may have in the document.
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The document the node serves, generated from the API's types.
pub fn document() -> Value {
    epg::api::openapi::document()
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// Path template (`/v1/payments/{id}`).
    pub path: String,
    /// The operation object.
    pub op: Value,
}

impl Operation {
    /// Its security alternatives' scheme names.
    pub fn schemes(&self) -> Vec<String> {
        self.op
            .get("security")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .flat_map(|m| m.keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Its parameters, `$ref`s resolved.
    pub fn parameters(&self, doc: &Value) -> Vec<Value> {
        self.op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(|p| deref(doc, p).clone()).collect())
            .unwrap_or_default()
    }

    /// Names of its parameters `in` `location`.
    pub fn parameter_names(&self, doc: &Value, location: &str) -> Vec<String> {
        self.parameters(doc)
            .iter()
            .filter(|p| p["in"] == location)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The JSON request body schema, if any (resolved).
    pub fn body_schema(&self, doc: &Value) -> Option<Value> {
        self.op
            .pointer("/requestBody/content/application~1json/schema")
            .map(|s| deref(doc, s).clone())
    }
}

/// Every operation of the document.
pub fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    op: op.clone(),
                });
            }
        }
    }
    ops
}

/// The operation documented for `method` and `path` (a template).
pub fn operation(doc: &Value, method: &str, path: &str) -> Operation {
    operations(doc)
        .into_iter()
        .find(|o| o.method == method && o.path == path)
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
}

/// The (METHOD, path template) pairs the document describes.
pub fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    operations(doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect()
}

/// The value a local `$ref` points to.
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `value`, or what its `$ref` points to (transitively).
pub fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => value = resolve(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}")),
            None => return value,
        }
    }
    panic!("$ref cycle")
}

/// The path with each `{param}` replaced by `sample`.
pub fn concrete(path: &str, sample: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(sample);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `(status, error.code, error.param)` of a response body.
pub fn error_of(status: u16, body: &str) -> (u16, String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    (
        status,
        v.pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        v.pointer("/error/param")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

// ------------------------------------------------------------------------
// A JSON Schema checker for the subset the document uses. `strict`: an
// object's fields must all be documented unless its schema allows extra
// ones (`additionalProperties` true or a schema), so a field the node sends
// but the document does not list is an error.

/// Problems of `value` against `schema`, each with its JSON path.
pub fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_at(doc, schema, value, "$", false, &mut errors);
    errors
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// The properties an object schema documents, through `allOf`.
fn documented_fields(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) -> bool {
    let schema = deref(doc, schema);
    let mut open = match schema.get("additionalProperties") {
        Some(Value::Bool(false)) | None => false,
        Some(_) => true,
    };
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.keys().cloned());
    } else if schema.get("allOf").is_none() && schema.get("additionalProperties").is_none() {
        // `{"type": "object"}` alone: any fields.
        open = true;
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            open |= documented_fields(doc, part, out);
        }
    }
    open
}

/// `ignore_unknown`: do not judge this object's own extra fields (an
/// `allOf` part; the whole `allOf` judges them).
fn check_at(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    ignore_unknown: bool,
    errors: &mut Vec<String>,
) {
    let schema = deref(doc, schema);
    if schema.as_object().is_some_and(Map::is_empty) {
        return;
    }
    // Alternatives next to the schema's own `properties` only constrain
    // them (which fields go together); the fields are judged below.
    let constraints_only = schema.get("properties").is_some();
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let mut first = Vec::new();
            let matched = options.iter().any(|o| {
                let mut e = Vec::new();
                check_at(
                    doc,
                    o,
                    value,
                    at,
                    ignore_unknown || constraints_only,
                    &mut e,
                );
                if first.is_empty() {
                    first = e.clone();
                }
                e.is_empty()
            });
            if !matched {
                errors.push(format!("{at}: matches none of {key} (first: {first:?})"));
            }
        }
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            // Unknown fields are judged below, against all parts at once.
            check_at(doc, part, value, at, true, errors);
        }
        if let Some(obj) = value.as_object()
            && !ignore_unknown
        {
            let mut fields = BTreeSet::new();
            if !documented_fields(doc, schema, &mut fields) {
                for key in obj.keys().filter(|k| !fields.contains(*k)) {
                    errors.push(format!("{at}.{key}: undocumented field"));
                }
            }
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        errors.push(format!("{at}: expected {c}, got {value}"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {values:?}"));
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            errors.push(format!("{at}: expected {t}, got {value}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap(), value)) => {
            errors.push(format!("{at}: expected one of {ts:?}, got {value}"));
            return;
        }
        _ => {}
    }
    if let Some(n) = value.as_i64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
            && n < min
        {
            errors.push(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_i64)
            && n > max
        {
            errors.push(format!("{at}: {n} is above the maximum {max}"));
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check_at(doc, items, item, &format!("{at}[{i}]"), false, errors);
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}.{r}: required field missing"));
                }
            }
        }
        for (key, v) in obj {
            let field_at = format!("{at}.{key}");
            match props.and_then(|p| p.get(key)) {
                Some(prop) => check_at(doc, prop, v, &field_at, false, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(true)) => {}
                    Some(extra @ Value::Object(_)) => {
                        check_at(doc, extra, v, &field_at, false, errors);
                    }
                    _ if ignore_unknown => {}
                    Some(_) => errors.push(format!("{field_at}: undocumented field")),
                    None if props.is_some() => {
                        errors.push(format!("{field_at}: undocumented field"));
                    }
                    None => {}
                },
            }
        }
    }
}
