#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/v1/webhook_endpoints`: create (secret shown once), list, get, update,
//! delete, per-merchant scoping, and the URL rules (no SSRF).

use crate::common;

use serde_json::json;

async fn create(app: &common::TestApp, body: serde_json::Value) -> reqwest::Response {
    app.post("/v1/webhook_endpoints", &app.secret_key, &body)
        .await
}

#[tokio::test]
async fn endpoints_are_created_listed_updated_and_deleted() {
    let app = common::spawn_app().await;
    let created = common::json(
        create(
            &app,
            json!({
                "url": "https://93.184.216.34/hooks/epg",
                "enabled_events": ["payment.succeeded", "refund.failed", "payment.succeeded"],
                "description": "orders service",
                "metadata": { "team": "payments" }
            }),
        )
        .await,
        200,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("we_"));
    assert_eq!(created["object"], "webhook_endpoint");
    assert_eq!(created["status"], "enabled");
    assert_eq!(
        created["enabled_events"],
        json!(["payment.succeeded", "refund.failed"])
    );
    assert_eq!(created["metadata"], json!({ "team": "payments" }));
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 30,
        "{secret}"
    );

    // The secret is never shown again, nor stored in clear.
    let fetched = common::json(
        app.get(&format!("/v1/webhook_endpoints/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert!(fetched.get("secret").is_none());
    assert_eq!(fetched["url"], "https://93.184.216.34/hooks/epg");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT secret_sealed FROM webhook_endpoints WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));

    let second = common::json(
        create(
            &app,
            json!({ "url": "https://93.184.216.35/other", "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    assert_ne!(second["secret"], created["secret"]);
    let list = common::json(app.get("/v1/webhook_endpoints", &app.secret_key).await, 200).await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    let ids: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second["id"].as_str().unwrap(), id.as_str()]);
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("secret").is_none())
    );
    let page = common::json(
        app.get("/v1/webhook_endpoints?limit=1", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(page["has_more"], true);
    let page = common::json(
        app.get(
            &format!(
                "/v1/webhook_endpoints?limit=1&starting_after={}",
                second["id"].as_str().unwrap()
            ),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["data"][0]["id"], id.as_str());
    assert_eq!(page["has_more"], false);

    let updated = common::json(
        app.post(
            &format!("/v1/webhook_endpoints/{id}"),
            &app.secret_key,
            &json!({
                "enabled_events": ["dispute.created"],
                "disabled": true,
                "description": "",
                "metadata": { "team": "", "owner": "ana" }
            }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["enabled_events"], json!(["dispute.created"]));
    assert_eq!(updated["status"], "disabled");
    assert!(updated["description"].is_null());
    assert_eq!(updated["metadata"], json!({ "owner": "ana" }));
    assert!(updated.get("secret").is_none());

    let deleted = common::json(
        app.client
            .delete(format!("{}/v1/webhook_endpoints/{id}", app.address))
            .bearer_auth(&app.secret_key)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        deleted,
        json!({ "id": id, "object": "webhook_endpoint", "deleted": true })
    );
    common::json(
        app.get(&format!("/v1/webhook_endpoints/{id}"), &app.secret_key)
            .await,
        404,
    )
    .await;
    let list = common::json(app.get("/v1/webhook_endpoints", &app.secret_key).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn another_merchants_endpoint_is_not_found() {
    let app = common::spawn_app().await;
    let (_, other_key) = app.merchant().await;
    let created = common::json(
        create(
            &app,
            json!({ "url": "https://93.184.216.34/x", "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/webhook_endpoints/{id}");
    let err = common::json(app.get(&path, &other_key).await, 404).await;
    assert_eq!(err["error"]["code"], "resource_missing");
    common::json(
        app.post(&path, &other_key, &json!({ "disabled": true }))
            .await,
        404,
    )
    .await;
    common::json(
        app.client
            .delete(format!("{}{path}", app.address))
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let list = common::json(app.get("/v1/webhook_endpoints", &other_key).await, 200).await;
    assert_eq!(list["data"], json!([]));
    // Still there for its owner.
    common::json(app.get(&path, &app.secret_key).await, 200).await;
    // A publishable key may not manage endpoints.
    common::json(
        app.get("/v1/webhook_endpoints", &app.publishable_key).await,
        403,
    )
    .await;
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let app = common::spawn_app().await;
    for (body, param) in [
        (json!({ "enabled_events": ["*"] }), "url"),
        (json!({ "url": "https://93.184.216.34/" }), "enabled_events"),
        (
            json!({ "url": "https://93.184.216.34/", "enabled_events": [] }),
            "enabled_events",
        ),
        (
            json!({ "url": "https://93.184.216.34/", "enabled_events": ["payment.succeeded", "payment.teleported"] }),
            "enabled_events[1]",
        ),
        (
            json!({ "url": "https://93.184.216.34/", "enabled_events": ["*"], "colour": "red" }),
            "colour",
        ),
        (
            json!({ "url": "https://93.184.216.34/", "enabled_events": ["*"], "metadata": { "n": 1 } }),
            "metadata.n",
        ),
        (
            json!({ "url": "not a url", "enabled_events": ["*"] }),
            "url",
        ),
    ] {
        let err = common::json(create(&app, body.clone()).await, 400).await;
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
}

#[tokio::test]
async fn private_and_plain_http_urls_are_refused_outside_dev_mode() {
    let app = common::spawn_app_with(|c| c.server.dev = false).await;
    for url in [
        "http://93.184.216.34/hook",
        "http://127.0.0.1:9000/hook",
        "ftp://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.1.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://2130706433/hook",
    ] {
        let err = common::json(
            create(&app, json!({ "url": url, "enabled_events": ["*"] })).await,
            400,
        )
        .await;
        assert_eq!(err["error"]["param"], "url", "{url}: {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("https") || message.contains("address"),
            "{url}: {message}"
        );
    }
    // A public address is fine.
    common::json(
        create(
            &app,
            json!({ "url": "https://93.184.216.34/hook", "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    // Changing the URL is checked the same way.
    let list = common::json(app.get("/v1/webhook_endpoints", &app.secret_key).await, 200).await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let err = common::json(
        app.post(
            &format!("/v1/webhook_endpoints/{id}"),
            &app.secret_key,
            &json!({ "url": "https://192.168.0.1/" }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "url");
}

#[tokio::test]
async fn dev_mode_allows_http_to_loopback_only() {
    let app = common::spawn_app().await;
    assert!(app.config.server.dev);
    common::json(
        create(
            &app,
            json!({ "url": "http://127.0.0.1:9999/hook", "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    let err = common::json(
        create(
            &app,
            json!({ "url": "http://93.184.216.34/hook", "enabled_events": ["*"] }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "url");
}
