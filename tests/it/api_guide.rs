//! The API guide for merchants, `docs/api.md`: every node serves it as it
//! is, the reference page links it, and the links into it lead somewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

const GUIDE: &str = include_str!("../../docs/api.md");
const README: &str = include_str!("../../README.md");

#[tokio::test]
async fn the_node_serves_the_guide_and_the_reference_links_it() {
    let app = common::spawn_app().await;
    let response = app
        .client
        .get(format!("{}/docs/api.md", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/markdown; charset=utf-8")
    );
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert!(header("request-id").is_some());
    assert_eq!(response.text().await.unwrap(), GUIDE);

    let page = app
        .client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<a href=\"/docs/api.md\">"), "{page}");
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every `(prefix#anchor)` link target in `text`.
fn links<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let needle = format!("]({prefix}#");
    text.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &text[at + needle.len()..];
            &rest[..rest.find(')').unwrap()]
        })
        .collect()
}

#[test]
fn every_link_into_the_guide_names_one_of_its_headings() {
    let headings: Vec<String> = GUIDE
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let internal = links(GUIDE, "");
    let from_readme = links(README, "docs/api.md");
    assert!(internal.len() >= 15, "the contents list: {internal:?}");
    assert!(!from_readme.is_empty());
    for link in internal.iter().chain(&from_readme) {
        assert!(
            headings.iter().any(|h| h == link),
            "#{link} is no heading of docs/api.md: {headings:?}"
        );
    }
    assert!(
        README.contains("](docs/api.md)"),
        "the README links the guide"
    );
}
