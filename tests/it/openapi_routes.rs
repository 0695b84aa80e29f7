//! The document and the live router describe the same API: every routed
//! (method, path) is documented and every documented one is routed; and
//! `/openapi.json` and `/docs` serve it.
//!
//! The paths come from the router itself: axum has no API to list its
//! routes, but a `Router`'s `Debug` output names every path it matches
//! (the test fails if it finds none, e.g. after an axum upgrade changed
//! that output). The methods come from the running node: each path
//! (routed or documented) is requested with each method, and a method is
//! routed unless the node answers `route_missing` (no such path) or 405
//! (no such method).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::openapi_support;

use std::collections::BTreeSet;

use openapi_support::{concrete, document, documented, error_of, operations};

/// The path templates the node's router matches, read from its `Debug`
/// output (`RouteId(n): "/v1/payments"`).
async fn routed_paths() -> BTreeSet<String> {
    let (pool, url) = common::test_database().await;
    let mut config = common::test_config(&url);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let app = epg::app::Application::build_with_pool(config, pool)
        .await
        .unwrap();
    let router = epg::api::router(app.state().clone());
    let text = format!("{router:?}");
    let mut paths = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(close) = rest.find("): \"") else {
            rest = &rest[1..];
            continue;
        };
        let path = &rest[close + 4..];
        if let Some(end) = path.find('"') {
            let path = &path[..end];
            // `Router::fallback` routes these two itself.
            if path != "/" && !path.contains("{*__private__axum_fallback}") {
                paths.insert(path.to_owned());
            }
        }
        rest = &rest[close..];
    }
    paths
}

const PROBE_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let app = common::spawn_app().await;
    let doc = document();
    let documented = documented(&doc);

    let from_router = routed_paths().await;
    assert!(
        from_router.contains("/v1/payments") && from_router.contains("/dashboard"),
        "the router's paths are found: {from_router:?}"
    );

    let candidates: BTreeSet<String> = from_router
        .iter()
        .cloned()
        .chain(documented.iter().map(|(_, p)| p.clone()))
        .collect();

    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let mut routed = BTreeSet::new();
    let mut unanswered = Vec::new();
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
        if !any && from_router.contains(template) {
            unanswered.push(template.clone());
        }
    }
    assert!(
        unanswered.is_empty(),
        "paths of the router that answer no method: {unanswered:?}"
    );

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
