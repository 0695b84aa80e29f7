//! The document and the live router describe the same API: every routed
//! (method, path) is documented and every documented one is routed; and
//! `/openapi.json` and `/docs` serve it.
//!
//! axum cannot list its routes, so they are found in two steps. The path
//! templates come from the source: every `.route("…", …)` in `src/` (the
//! test fails if a route's path is not a string literal, or if routes are
//! added with `nest`/`route_service`, which it would not see). The methods
//! come from the running node: each candidate path (routed in the source or
//! documented) is requested with each method, and a method is routed unless
//! the node answers `route_missing` (no such path) or 405 (no such method).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::openapi_support;

use std::collections::BTreeSet;
use std::path::Path;

use openapi_support::{concrete, document, documented, error_of, operations};

/// Path templates of every `.route("…")` under `dir`.
fn source_routes(dir: &Path, out: &mut BTreeSet<String>, unreadable: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_routes(&path, out, unreadable);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for forbidden in [".nest(", ".nest_service(", ".route_service("] {
            if text.contains(forbidden) {
                unreadable.push(format!("{}: uses {forbidden}", path.display()));
            }
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let literal = rest
                .trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(path, _)| path.to_owned());
            match literal {
                Some(p) if p.starts_with('/') => {
                    out.insert(p);
                }
                _ => unreadable.push(format!(
                    "{}: a route whose path is not a string literal: {}",
                    path.display(),
                    rest.lines().next().unwrap_or_default()
                )),
            }
        }
    }
}

const PROBE_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let app = common::spawn_app().await;
    let doc = document();
    let documented = documented(&doc);

    let mut from_source = BTreeSet::new();
    let mut unreadable = Vec::new();
    source_routes(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut from_source,
        &mut unreadable,
    );
    assert!(
        unreadable.is_empty(),
        "routes this test cannot see; extend it: {unreadable:#?}"
    );
    assert!(
        from_source.contains("/v1/payments"),
        "the scan finds routes"
    );

    let candidates: BTreeSet<String> = from_source
        .iter()
        .cloned()
        .chain(documented.iter().map(|(_, p)| p.clone()))
        .collect();

    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let mut routed = BTreeSet::new();
    let mut unrouted_source_paths = Vec::new();
    for template in &candidates {
        // A made-up id: no handler gets far with it, none has side effects.
        let url = format!(
            "{}{}",
            app.address,
            concrete(template, "probe_0000000000000000000000")
        );
        let mut any = false;
        for method in PROBE_METHODS {
            let mut request = client
                .request(method.parse().unwrap(), &url)
                .bearer_auth(&app.secret_key);
            if method != "GET" && method != "DELETE" {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            let (status, code, _) = error_of(status, &body);
            let missing = status == 404 && code == "route_missing";
            let not_allowed = status == 405;
            if !missing && !not_allowed {
                routed.insert((method.to_owned(), template.clone()));
                any = true;
            }
        }
        if !any && from_source.contains(template) && !documented.iter().any(|(_, p)| p == template)
        {
            // A router that is written but not merged: neither routed nor
            // documented, which is consistent; say so for the record.
            unrouted_source_paths.push(template.clone());
        }
    }
    if !unrouted_source_paths.is_empty() {
        eprintln!("routes in the source that the node does not serve: {unrouted_source_paths:?}");
    }

    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:#?}\ndocumented but not routed: {unrouted:#?}"
    );
}

#[tokio::test]
async fn openapi_json_is_served_without_a_key() {
    let app = common::spawn_app().await;
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(response.headers().contains_key("request-id"));
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(served, document());
}

#[tokio::test]
async fn docs_render_every_operation_without_a_key() {
    let app = common::spawn_app().await;
    let response = app
        .client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("http"),
        "{csp}"
    );
    // Field names may break after their dots.
    let html = response.text().await.unwrap().replace("<wbr>", "");
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("<script"), "a plain HTML page");
    for op in operations(&document()) {
        let id = op.op["operationId"].as_str().unwrap();
        assert!(html.contains(&op.path), "/docs lacks {}", op.path);
        assert!(
            html.contains(&format!("id=\"op-{id}\"")),
            "/docs lacks {id}"
        );
        assert!(
            html.contains(&format!(
                "<span class=\"method {}\">{}</span> <code class=\"path\">{}</code>",
                op.method.to_lowercase(),
                op.method,
                op.path
            )),
            "/docs lacks the heading of {} {}",
            op.method,
            op.path
        );
    }
    // Grouped by tag, with curl examples and body fields.
    assert!(html.contains("id=\"tag-Payments\""));
    assert!(html.contains("curl -X POST &#39;http://127.0.0.1:8080/v1/payments&#39;"));
    assert!(html.contains("<code>payment_method.card.number</code>"));
    assert!(html.contains("<code>shipping.address.postal_code</code>"));

    // Its style sheet is served too.
    let css = app
        .client
        .get(format!("{}/static/docs.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}
