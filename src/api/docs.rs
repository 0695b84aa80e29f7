//! `GET /openapi.json`, `GET /docs` and `GET /docs/api.md`: the API's
//! OpenAPI 3.1 document, a human-readable reference rendered from it, and
//! the guide for merchants, all without a key.
//!
//! The document is generated from the handlers' annotations and the
//! request and response types (`super::openapi`); it is the
//! machine-readable form of the API `docs/api.md` describes, and
//! `tests/it/openapi_routes.rs` holds it to the router (every routed
//! operation documented, every documented one routed). The reference page
//! is plain HTML rendered here, once, from that document: grouped by tag,
//! each operation with its
//! parameters, body fields, responses and a curl example, then the objects.
//! It loads nothing but its own style sheet, and links the API guide for
//! merchants, `docs/api.md`, which `GET /docs/api.md` serves as it is.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;

/// The API guide (`docs/api.md`), compiled in like the document, so that
/// a node serves the guide of its own version and a merchant needs no copy
/// of the repository.
pub const GUIDE: &str = include_str!("../../docs/api.md");

/// The reference page's style sheet.
const STYLE: &str = include_str!("../../static/docs.css");

/// The reference page may load its style sheet and nothing else.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                        frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The rendered page, or why the document could not be rendered.
static PAGE: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let doc = &*super::openapi::DOCUMENT;
    if doc.is_object() {
        Ok(render(doc))
    } else {
        Err("the generated OpenAPI document is not an object".to_owned())
    }
});

/// Routes of this resource (public router: no key).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(document))
        .route("/docs", get(reference))
        .route("/docs/api.md", get(guide))
        .route("/static/docs.css", get(style))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapiDocument",
    tag = "Operations",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = serde_json::Value),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn document() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        super::openapi::DOCUMENT_TEXT.as_str(),
    )
        .into_response()
}

/// The guide as Markdown text (RFC 7763); `nosniff` keeps a browser from
/// taking it for anything else.
#[utoipa::path(
    get,
    path = "/docs/api.md",
    operation_id = "apiGuide",
    tag = "Operations",
    summary = "The API guide for merchants",
    description = "`docs/api.md` of this node's version, as Markdown: conventions, authentication, every error code, pagination, idempotency and retries, events and webhooks, crypto payments, settlement and proofs, test mode, rate limits.",
    responses(
        (status = 200, description = "The guide.", content_type = "text/markdown", body = String),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn guide() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/markdown; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        GUIDE,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "apiReference",
    tag = "Operations",
    summary = "Human-readable API reference",
    description = "This document rendered as one HTML page, grouped by tag, with a curl example per operation.",
    responses(
        (status = 200, description = "The reference.", content_type = "text/html", body = String, headers(("Content-Security-Policy" = String, description = "Scripts, styles and connections from this node only; no framing."), ("X-Frame-Options" = String, description = "`DENY`."))),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
#[tracing::instrument(skip_all)]
async fn reference() -> Result<Response, ApiError> {
    let page = PAGE.as_ref().map_err(|e| ApiError::internal(e))?;
    Ok((html_headers(PAGE_CSP), page.clone()).into_response())
}

#[utoipa::path(
    get,
    path = "/static/docs.css",
    operation_id = "docsStyle",
    tag = "Operations",
    summary = "The API reference's style sheet",
    responses(
        (status = 200, description = "The file.", content_type = "text/css", body = String),
        (status = 429, response = crate::api::openapi::TooManyRequests),
    )
)]
async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE,
    )
        .into_response()
}

/// Headers of a server-rendered HTML page: its content security policy,
/// no framing, no MIME sniffing, no referrer.
pub fn html_headers(csp: &'static str) -> [(HeaderName, HeaderValue); 6] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// HTML-escapes `s` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` and turns the document's `code` spans into `<code>`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(part));
            out.push_str("</code>");
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// A description: paragraphs separated by blank lines, `* ` bullet lists.
fn block(s: &str) -> String {
    let mut out = String::new();
    for para in s.split("\n\n") {
        let lines: Vec<&str> = para.lines().collect();
        if !lines.is_empty() && lines.iter().all(|l| l.starts_with("* ")) {
            out.push_str("<ul>");
            for line in lines {
                out.push_str("<li>");
                out.push_str(&inline(line.trim_start_matches("* ")));
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        } else if !para.trim().is_empty() {
            out.push_str("<p>");
            out.push_str(&inline(para.trim()));
            out.push_str("</p>");
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An HTML id fragment: letters, digits, `-` and `_` only.
fn anchor(prefix: &str, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{safe}")
}

/// The document it belongs to, to resolve `$ref`s.
struct Doc<'a> {
    root: &'a Value,
}

impl<'a> Doc<'a> {
    /// The value a local `$ref` (`#/components/…`) points to.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// `value`, or what it refers to.
    fn deref(&self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(r).unwrap_or(value),
            None => value,
        }
    }

    /// A short, linked rendering of a schema's type.
    fn type_html(&self, schema: &Value) -> String {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r);
            return format!(
                "<a href=\"#{}\">{}</a>",
                escape(&anchor("schema", name)),
                escape(name)
            );
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
                return options
                    .iter()
                    .map(|o| self.type_html(o))
                    .collect::<Vec<_>>()
                    .join(" | ");
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            // A list: `allOf: [List, {data: {items: X}}]`.
            let items = parts
                .iter()
                .find_map(|p| p.pointer("/properties/data/items"));
            if let Some(items) = items {
                return format!("list of {}", self.type_html(items));
            }
            return parts
                .iter()
                .map(|p| self.type_html(p))
                .collect::<Vec<_>>()
                .join(" &amp; ");
        }
        if let Some(c) = schema.get("const") {
            return format!("<code>{}</code>", escape(&c.to_string()));
        }
        let types: Vec<String> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if types.is_empty() {
            return if schema.as_object().is_some_and(Map::is_empty) {
                "any".to_owned()
            } else {
                "object".to_owned()
            };
        }
        types
            .iter()
            .map(|t| match t.as_str() {
                "array" => format!(
                    "array of {}",
                    schema
                        .get("items")
                        .map_or_else(|| "any".to_owned(), |i| self.type_html(i))
                ),
                "object" => match schema.get("additionalProperties") {
                    Some(inner @ Value::Object(_)) if schema.get("properties").is_none() => {
                        format!("map of {}", self.type_html(inner))
                    }
                    _ => "object".to_owned(),
                },
                "string" => match schema.get("format").and_then(Value::as_str) {
                    Some(f) => format!("string ({})", escape(f)),
                    None => "string".to_owned(),
                },
                other => escape(other),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// The notes of a field: its description, allowed values, bounds.
    fn notes_html(&self, schema: &Value) -> String {
        let mut notes = Vec::new();
        let description = str_of(schema, "description");
        if !description.is_empty() {
            notes.push(inline(description));
        }
        let target = self.deref(schema);
        if let Some(values) = target.get("enum").and_then(Value::as_array) {
            let listed: Vec<String> = values
                .iter()
                .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
                .collect();
            notes.push(format!("One of {}.", listed.join(", ")));
        }
        for (key, label) in [
            ("minimum", "Minimum"),
            ("maximum", "Maximum"),
            ("minLength", "Min length"),
            ("maxLength", "Max length"),
            ("maxProperties", "At most this many keys:"),
            ("default", "Default"),
            ("pattern", "Pattern"),
        ] {
            if let Some(v) = schema.get(key) {
                notes.push(format!("{label} <code>{}</code>.", escape(&value_text(v))));
            }
        }
        notes.join(" ")
    }

    /// The rows of an object schema's fields, nested inline objects
    /// flattened with dotted names.
    /// `expand_refs`: also list the fields of referenced objects (request
    /// bodies, whose parts have no section of their own).
    fn field_rows(
        &self,
        schema: &'a Value,
        prefix: &str,
        out: &mut String,
        depth: usize,
        expand_refs: bool,
    ) {
        let schema = self.deref(schema);
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Required fields first, each group in the document's order.
        let mut fields: Vec<(&String, &Value)> = props.iter().collect();
        fields.sort_by_key(|(name, _)| !required.contains(&name.as_str()));
        for (name, prop) in fields {
            let full = format!("{prefix}{name}");
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                // Long dotted names may break after a dot.
                escape(&full).replace('.', ".<wbr>"),
                self.type_html(prop),
                if required.contains(&name.as_str()) {
                    "required"
                } else {
                    "optional"
                },
                self.notes_html(prop)
            ));
            // A nullable object is `oneOf: [null, object]`: its fields are
            // those of the object.
            let prop = prop
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|alts| alts.iter().find(|a| a.get("$ref").is_some()))
                .unwrap_or(prop);
            let is_inline_object = prop.get("$ref").is_none() && prop.get("properties").is_some();
            let is_object_ref = expand_refs
                && self.deref(prop).get("properties").is_some()
                && prop.get("$ref").is_some();
            if (is_inline_object || is_object_ref) && depth < 6 {
                self.field_rows(prop, &format!("{full}."), out, depth + 1, expand_refs);
            }
        }
    }

    /// A table of an object schema's fields, with a note on whether
    /// unknown fields are rejected.
    fn fields_table(&self, schema: &'a Value, request: bool) -> String {
        let target = self.deref(schema);
        let mut rows = String::new();
        self.field_rows(target, "", &mut rows, 0, request);
        let mut out = String::new();
        if rows.is_empty() {
            if request {
                out.push_str(&block(str_of(target, "description")));
            }
            return out;
        }
        out.push_str(
            "<table class=\"fields\"><thead><tr><th>Field</th><th>Type</th><th></th>\
             <th>Description</th></tr></thead><tbody>",
        );
        out.push_str(&rows);
        out.push_str("</tbody></table>");
        if request && target.get("additionalProperties") == Some(&Value::Bool(false)) {
            out.push_str(
                "<p class=\"note\">Any other field answers 400 <code>parameter_unknown</code> \
                 naming it.</p>",
            );
        }
        out
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Who may call an operation, from its `security`.
fn auth_text(doc: &Doc<'_>, op: &Value) -> String {
    let Some(alternatives) = op.get("security").and_then(Value::as_array) else {
        return "No key.".to_owned();
    };
    let names: Vec<String> = alternatives
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .map(|name| {
            let scheme = doc
                .root
                .pointer(&format!("/components/securitySchemes/{name}"));
            match name.as_str() {
                "secretKey" => "a secret key (<code>Authorization: Bearer sk_…</code>)".to_owned(),
                "publishableKey" => {
                    "a publishable key (<code>Authorization: Bearer pk_…</code>)".to_owned()
                }
                _ => match scheme {
                    Some(s) if str_of(s, "in") == "query" => format!(
                        "the <code>{}</code> query parameter",
                        escape(str_of(s, "name"))
                    ),
                    _ => format!("<code>{}</code>", escape(&name)),
                },
            }
        })
        .collect();
    if names.is_empty() {
        "No key.".to_owned()
    } else {
        format!("Needs {}.", names.join(", or "))
    }
}

/// A made-up value for a path parameter, from the id prefix its
/// description names (`pay_…`).
fn sample_id(description: &str) -> String {
    description
        .split('`')
        .nth(1)
        .and_then(|code| code.strip_suffix('…'))
        .map_or_else(
            || "ID".to_owned(),
            |prefix| format!("{prefix}4eC39HqLyjWDarjtT1zdp7dc"),
        )
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A curl command for the operation (plain text, escaped by the caller).
fn curl(doc: &Doc<'_>, base: &str, method: &str, path: &str, op: &Value) -> String {
    let params: Vec<&Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().map(|p| doc.deref(p)).collect())
        .unwrap_or_default();
    let mut url_path = path.to_owned();
    let mut query = Vec::new();
    for p in &params {
        let name = str_of(p, "name");
        match str_of(p, "in") {
            "path" => {
                url_path =
                    url_path.replace(&format!("{{{name}}}"), &sample_id(str_of(p, "description")));
            }
            "query" if name == "limit" => query.push("limit=3".to_owned()),
            "query" if p.get("required") == Some(&Value::Bool(true)) => {
                let sample = if p.pointer("/schema/type") == Some(&Value::from("integer")) {
                    if query.is_empty() { "1" } else { "2" }
                } else {
                    "value"
                };
                query.push(format!("{name}={sample}"));
            }
            _ => {}
        }
    }
    let mut url = format!("{}{url_path}", base.trim_end_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    let streaming = op
        .pointer("/responses/200/content")
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("text/event-stream"));
    let mut lines = vec![format!(
        "curl{}{} {}",
        if streaming { " -N" } else { "" },
        if method == "get" {
            String::new()
        } else {
            format!(" -X {}", method.to_uppercase())
        },
        shell_quote(&url)
    )];
    let alternatives: Vec<String> = op
        .get("security")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.keys().cloned())
                .collect()
        })
        .unwrap_or_default();
    if alternatives.iter().any(|a| a == "secretKey") {
        lines.push("-H \"Authorization: Bearer $EPG_SECRET_KEY\"".to_owned());
    } else if alternatives.iter().any(|a| a == "publishableKey") {
        lines.push("-H \"Authorization: Bearer $EPG_PUBLISHABLE_KEY\"".to_owned());
    }
    if params
        .iter()
        .any(|p| str_of(p, "name") == "Idempotency-Key")
    {
        lines.push("-H \"Idempotency-Key: $(uuidgen)\"".to_owned());
    }
    if let Some(example) = op.pointer("/requestBody/content/application~1json/example") {
        lines.push("-H 'Content-Type: application/json'".to_owned());
        lines.push(format!("-d {}", shell_quote(&example.to_string())));
    }
    lines.join(" \\\n  ")
}

/// One operation's article.
fn render_operation(doc: &Doc<'_>, base: &str, method: &str, path: &str, op: &Value) -> String {
    let id = str_of(op, "operationId");
    let mut out = format!(
        "<article class=\"op\" id=\"{}\"><h3><span class=\"method {m}\">{M}</span> \
         <code class=\"path\">{}</code></h3><p class=\"summary\">{}</p>",
        escape(&anchor("op", id)),
        escape(path),
        inline(str_of(op, "summary")),
        m = escape(method),
        M = escape(&method.to_uppercase()),
    );
    out.push_str(&block(str_of(op, "description")));
    out.push_str(&format!("<p class=\"auth\">{}</p>", auth_text(doc, op)));

    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str(
            "<h4>Parameters</h4><table class=\"fields\"><thead><tr><th>Name</th><th>In</th>\
             <th>Type</th><th></th><th>Description</th></tr></thead><tbody>",
        );
        for p in params {
            let p = doc.deref(p);
            let schema = p.get("schema").unwrap_or(&Value::Null);
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(str_of(p, "name")),
                escape(str_of(p, "in")),
                doc.type_html(schema),
                if p.get("required") == Some(&Value::Bool(true)) {
                    "required"
                } else {
                    "optional"
                },
                {
                    let mut notes = inline(str_of(p, "description"));
                    let extra = doc.notes_html(&without_description(schema));
                    if !extra.is_empty() {
                        notes.push(' ');
                        notes.push_str(&extra);
                    }
                    notes
                },
            ));
        }
        out.push_str("</tbody></table>");
    }

    if let Some(body) = op.get("requestBody") {
        let schema = body
            .pointer("/content/application~1json/schema")
            .unwrap_or(&Value::Null);
        out.push_str(&format!(
            "<h4>Request body <small>JSON, {}</small></h4>",
            if body.get("required") == Some(&Value::Bool(true)) {
                "required"
            } else {
                "optional"
            }
        ));
        out.push_str(&doc.fields_table(schema, true));
    }

    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        out.push_str(
            "<h4>Responses</h4><table class=\"responses\"><thead><tr><th>Status</th>\
             <th>Body</th><th>Description</th></tr></thead><tbody>",
        );
        for (status, response) in responses {
            let response = doc.deref(response);
            let body = response
                .get("content")
                .and_then(Value::as_object)
                .map(|content| {
                    content
                        .iter()
                        .map(|(media, c)| match c.get("schema") {
                            Some(s) if media == "application/json" => doc.type_html(s),
                            _ => format!("<code>{}</code>", escape(media)),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "<tr><td class=\"status s{}\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&status.chars().take(1).collect::<String>()),
                escape(status),
                body,
                inline(str_of(response, "description")),
            ));
        }
        out.push_str("</tbody></table>");
    }

    out.push_str(&format!(
        "<h4>Example</h4><pre class=\"curl\"><code>{}</code></pre></article>",
        escape(&curl(doc, base, method, path, op))
    ));
    out
}

fn without_description(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("description");
    }
    s
}

/// The whole reference page.
pub fn render(root: &Value) -> String {
    let doc = Doc { root };
    let info = root.get("info").unwrap_or(&Value::Null);
    let title = str_of(info, "title");
    let base = root
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or("http://127.0.0.1:8080");
    let empty = Map::new();
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    // Operations per tag, in the document's tag order, then any others.
    let mut tags: Vec<(String, String)> = root
        .get("tags")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        str_of(t, "name").to_owned(),
                        str_of(t, "description").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut grouped: Vec<Vec<(&str, &str, &Value)>> = vec![Vec::new(); tags.len()];
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let tag = op
                .pointer("/tags/0")
                .and_then(Value::as_str)
                .unwrap_or("Other");
            let index = match tags.iter().position(|(name, _)| name == tag) {
                Some(i) => i,
                None => {
                    tags.push((tag.to_owned(), String::new()));
                    grouped.push(Vec::new());
                    tags.len() - 1
                }
            };
            if let Some(group) = grouped.get_mut(index) {
                group.push((method, path.as_str(), op));
            }
        }
    }

    let mut nav = String::from("<nav class=\"toc\"><h2>Contents</h2><ul>");
    let mut main = String::new();
    for ((name, description), ops) in tags.iter().zip(&grouped) {
        if ops.is_empty() {
            continue;
        }
        let tag_id = anchor("tag", name);
        nav.push_str(&format!(
            "<li><a href=\"#{}\">{}</a><ul>",
            escape(&tag_id),
            escape(name)
        ));
        main.push_str(&format!(
            "<section class=\"tag\" id=\"{}\"><h2>{}</h2>{}",
            escape(&tag_id),
            escape(name),
            block(description)
        ));
        for (method, path, op) in ops {
            nav.push_str(&format!(
                "<li><a href=\"#{}\"><span class=\"method {m}\">{M}</span> {}</a></li>",
                escape(&anchor("op", str_of(op, "operationId"))),
                escape(path),
                m = escape(method),
                M = escape(&method.to_uppercase()),
            ));
            main.push_str(&render_operation(&doc, base, method, path, op));
        }
        nav.push_str("</ul></li>");
        main.push_str("</section>");
    }

    if let Some(schemas) = root
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        nav.push_str("<li><a href=\"#objects\">Objects</a></li>");
        main.push_str("<section class=\"tag\" id=\"objects\"><h2>Objects</h2>");
        for (name, schema) in schemas {
            main.push_str(&format!(
                "<article class=\"schema\" id=\"{}\"><h3>{}</h3>",
                escape(&anchor("schema", name)),
                escape(name)
            ));
            let has_fields = schema.get("properties").is_some();
            if !has_fields {
                main.push_str(&format!("<p class=\"type\">{}</p>", {
                    let t = doc.type_html(&without_description(schema));
                    if t == "object" { String::new() } else { t }
                }));
            }
            let notes = doc.notes_html(schema);
            if !notes.is_empty() {
                main.push_str(&format!("<p>{notes}</p>"));
            }
            if has_fields {
                main.push_str(&doc.fields_table(schema, false));
            }
            main.push_str("</article>");
        }
        main.push_str("</section>");
    }
    nav.push_str("</ul></nav>");

    let mut security = String::new();
    if let Some(schemes) = root
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    {
        security.push_str("<h2>Authentication</h2><dl class=\"schemes\">");
        for (name, scheme) in schemes {
            security.push_str(&format!(
                "<dt><code>{}</code> <small>{}</small></dt><dd>{}</dd>",
                escape(name),
                escape(&match str_of(scheme, "type") {
                    "http" => format!("Authorization: Bearer {}", str_of(scheme, "bearerFormat")),
                    "apiKey" => format!("{} {}", str_of(scheme, "in"), str_of(scheme, "name")),
                    other => other.to_owned(),
                }),
                inline(str_of(scheme, "description"))
            ));
        }
        security.push_str("</dl>");
    }

    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} reference</title>\
         <link rel=\"stylesheet\" href=\"/static/docs.css\"></head><body>{nav}\
         <main><header><h1>{title} <small>{version}</small></h1><p class=\"lead\">{summary}</p>\
         {description}<p>The guide to conventions, errors, idempotency, webhooks, crypto, \
         proofs and test mode: <a href=\"/docs/api.md\">/docs/api.md</a>. \
         Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> \
         (OpenAPI {openapi}). Examples use <code>$EPG_SECRET_KEY</code> for a secret key.</p>\
         {security}</header>{main}</main></body></html>\n",
        title = escape(title),
        version = escape(str_of(info, "version")),
        summary = inline(str_of(info, "summary")),
        description = block(str_of(info, "description")),
        openapi = escape(str_of(root, "openapi")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(inline("use `<b>` here"), "use <code>&lt;b&gt;</code> here");
    }

    #[test]
    fn the_compiled_document_renders() {
        let page = PAGE.as_ref().unwrap();
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("/v1/payments/{id}/confirm"));
        assert!(!page.contains("<script"));
        assert!(page.contains("<a href=\"/docs/api.md\">"));
    }

    #[test]
    fn text_from_the_document_is_escaped() {
        let doc = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "<script>x</script>", "version": "1"},
            "paths": {"/a/{id}": {"get": {
                "operationId": "x\" onmouseover=\"y",
                "summary": "<img src=x>",
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "description": "`pay_…` <i>", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "<b>ok</b>"}}
            }}}
        });
        let page = render(&doc);
        assert!(!page.contains("<script>x"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>ok"));
        assert!(!page.contains("<i>"));
        assert!(!page.contains("\" onmouseover"));
        assert!(page.contains("/a/pay_4eC39HqLyjWDarjtT1zdp7dc"));
    }

    #[test]
    fn curl_quotes_bodies_for_the_shell() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
