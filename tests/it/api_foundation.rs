//! HTTP conventions of docs/api.md, through a spawned node: authentication,
//! errors naming the param, idempotency, rate limiting, operations routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{json, spawn_app, spawn_app_with};
use serde_json::json;

#[tokio::test]
async fn account_answers_the_callers_merchant() {
    let app = spawn_app().await;
    let body = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    assert_eq!(body["object"], "account");
    assert_eq!(body["id"], app.merchant_id.as_str());
    assert_eq!(body["livemode"], false);
    assert!(body["payment_method_types"].as_array().unwrap().len() >= 5);

    let (other, other_key) = app.merchant().await;
    let body = json(app.get("/v1/account", &other_key).await, 200).await;
    assert_eq!(body["id"], other.as_str());
}

#[tokio::test]
async fn missing_malformed_wrong_and_revoked_keys_are_401_with_the_error_object() {
    let app = spawn_app().await;
    let no_key = app
        .client
        .get(format!("{}/v1/account", app.address))
        .send()
        .await
        .unwrap();
    assert!(no_key.headers().contains_key("request-id"));
    let body = json(no_key, 401).await;
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "api_key_missing");

    let mut wrong = app.secret_key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    for key in [
        wrong.as_str(),
        "sk_test_short",
        "Basic abc",
        "sk_live_00000000000000000000000000000000",
    ] {
        let body = json(app.get("/v1/account", key).await, 401).await;
        assert_eq!(body["error"]["type"], "authentication_error", "{key}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }

    // A revoked key stops working at once.
    let store = epg::merchants::MerchantStore::new(app.pool.clone());
    let keys = store.list_keys(&app.merchant_id).await.unwrap();
    let secret = keys.iter().find(|k| k.kind == "secret").unwrap();
    store.revoke_key(&secret.id).await.unwrap();
    let body = json(app.get("/v1/account", &app.secret_key).await, 401).await;
    assert_eq!(body["error"]["code"], "api_key_invalid");
}

#[tokio::test]
async fn publishable_keys_cannot_use_secret_endpoints() {
    let app = spawn_app().await;
    let body = json(app.get("/v1/account", &app.publishable_key).await, 403).await;
    assert_eq!(body["error"]["code"], "secret_key_required");
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_param() {
    let app = spawn_app().await;
    let send = |body: &'static str| {
        app.client
            .post(format!("{}/v1/account", app.address))
            .bearer_auth(&app.secret_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        (r#"{"name": "x""#, "body", "invalid_json"),
        (r#"{"colour": "red"}"#, "colour", "parameter_unknown"),
        (r#"{"name": 12}"#, "name", "parameter_invalid"),
        (
            r#"{"payouts": {"schedule": "daily", "when": 1}}"#,
            "payouts.when",
            "parameter_unknown",
        ),
        (
            r#"{"payouts": {"schedule": "hourly"}}"#,
            "payouts.schedule",
            "parameter_invalid",
        ),
        (r#"{"name": ""}"#, "name", "parameter_invalid"),
    ];
    for (body, param, code) in cases {
        let response = json(send(body).await.unwrap(), 400).await;
        assert_eq!(response["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(response["error"]["param"], param, "{body}");
        assert_eq!(response["error"]["code"], code, "{body}");
    }
    // Nothing was changed by any of them.
    let account = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    assert_eq!(account["name"], "Test Merchant");
    assert_eq!(account["payouts"]["schedule"], "daily");

    let too_big = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    let response = app
        .client
        .post(format!("{}/v1/account", app.address))
        .bearer_auth(&app.secret_key)
        .header("content-type", "application/json")
        .body(too_big)
        .send()
        .await
        .unwrap();
    let body = json(response, 413).await;
    assert_eq!(body["error"]["param"], "body");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_object() {
    let app = spawn_app().await;
    let body = json(app.get("/v1/nothing", &app.secret_key).await, 404).await;
    assert_eq!(body["error"]["code"], "route_missing");
    let response = app
        .client
        .delete(format!("{}/v1/account", app.address))
        .bearer_auth(&app.secret_key)
        .send()
        .await
        .unwrap();
    let body = json(response, 405).await;
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_replayed_post_returns_the_identical_response() {
    let app = spawn_app().await;
    let post = |key: &'static str, body: serde_json::Value| {
        app.client
            .post(format!("{}/v1/account", app.address))
            .bearer_auth(&app.secret_key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = post("key-1", json!({"name": "Renamed"})).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();

    // Change state in between: a replay must still answer the saved response.
    json(
        app.post(
            "/v1/account",
            &app.secret_key,
            &json!({"name": "Changed since"}),
        )
        .await,
        200,
    )
    .await;

    let replay = post("key-1", json!({"name": "Renamed"})).await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);

    let account = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    assert_eq!(
        account["name"], "Changed since",
        "the replay did not run again"
    );

    // Same key, another body: 400 idempotency_error.
    let other = json(post("key-1", json!({"name": "Other"})).await.unwrap(), 400).await;
    assert_eq!(other["error"]["type"], "idempotency_error");

    // Keys are per merchant: another merchant may use the same key string.
    let (_, other_key) = app.merchant().await;
    let response = app
        .client
        .post(format!("{}/v1/account", app.address))
        .bearer_auth(&other_key)
        .header("idempotency-key", "key-1")
        .json(&json!({"name": "Other merchant"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response, 200).await["name"], "Other merchant");
}

#[tokio::test]
async fn a_duplicate_while_the_first_runs_is_409() {
    let app = spawn_app().await;
    // A request that is still running holds its key: that is a row with no
    // saved response and a live lease, exactly what the first request of a
    // concurrent pair leaves while it runs.
    let body = serde_json::to_vec(&json!({"name": "Slow"})).unwrap();
    let caller = epg::merchants::MerchantStore::new(app.pool.clone())
        .authenticate(
            &epg::merchants::ApiKey::parse(&app.secret_key).unwrap(),
            epg::config::Mode::Test,
        )
        .await
        .unwrap()
        .unwrap();
    let claim = epg::idempotency::IdempotencyStore::new(
        app.pool.clone(),
        std::time::Duration::from_secs(60),
        &app.config.keyring().unwrap(),
    )
    .claim(&caller, "running", "POST", "/v1/account", &body)
    .await
    .unwrap();
    assert!(matches!(claim, epg::idempotency::Claim::Run));

    let response = app
        .client
        .post(format!("{}/v1/account", app.address))
        .bearer_auth(&app.secret_key)
        .header("idempotency-key", "running")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    // The twin usually ends within a second or two: say when to retry.
    assert_eq!(response.headers()["retry-after"], "1");
    let error = json(response, 409).await;
    assert_eq!(error["error"]["type"], "idempotency_error");
    assert_eq!(error["error"]["code"], "idempotency_key_in_use");
}

#[tokio::test]
async fn a_claim_ended_early_frees_its_key_and_never_touches_a_later_claim() {
    let app = spawn_app().await;
    let caller = epg::merchants::MerchantStore::new(app.pool.clone())
        .authenticate(
            &epg::merchants::ApiKey::parse(&app.secret_key).unwrap(),
            epg::config::Mode::Test,
        )
        .await
        .unwrap()
        .unwrap();
    let store = epg::idempotency::IdempotencyStore::new(
        app.pool.clone(),
        std::time::Duration::from_secs(60),
        &app.config.keyring().unwrap(),
    );
    let body = b"{}";
    let claim = |store: epg::idempotency::IdempotencyStore, caller: epg::merchants::Caller| async move {
        store
            .claim_leased(&caller, "k", "POST", "/v1/account", body)
            .await
            .unwrap()
    };
    let (first, first_until) = claim(store.clone(), caller.clone()).await;
    assert!(matches!(first, epg::idempotency::Claim::Run));
    let first_until = first_until.unwrap();
    let (twin, none) = claim(store.clone(), caller.clone()).await;
    assert!(matches!(twin, epg::idempotency::Claim::InProgress));
    assert!(none.is_none());

    // The first request is over (its outcome unknown): its claim ends, and
    // the retry takes the key over under a claim of its own.
    assert!(store.end_claim(&caller, "k", first_until).await.unwrap());
    let (retry, retry_until) = claim(store.clone(), caller.clone()).await;
    assert!(matches!(retry, epg::idempotency::Claim::Run));
    let retry_until = retry_until.unwrap();
    assert_ne!(retry_until, first_until);

    // Late news of the first claim changes nothing of the retry's.
    assert!(!store.end_claim(&caller, "k", first_until).await.unwrap());
    assert!(
        !store
            .complete_claim(&caller, "k", first_until, 200, b"{\"stale\":true}")
            .await
            .unwrap()
    );
    let (still, _) = claim(store.clone(), caller.clone()).await;
    assert!(matches!(still, epg::idempotency::Claim::InProgress));
    assert!(
        store
            .complete_claim(&caller, "k", retry_until, 200, b"{\"fresh\":true}")
            .await
            .unwrap()
    );
    match claim(store.clone(), caller.clone()).await.0 {
        epg::idempotency::Claim::Replay { status, body } => {
            assert_eq!(status, 200);
            assert_eq!(body, b"{\"fresh\":true}");
        }
        other => panic!("expected the retry's saved answer, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_duplicates_run_once_and_the_rest_replay_or_wait() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = format!("{}/v1/account", app.address);
        let key = app.secret_key.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", "burst")
                .json(&json!({"name": "Burst"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (status, replayed, response.text().await.unwrap())
        }));
    }
    let mut ran = Vec::new();
    let mut bodies = Vec::new();
    for task in tasks {
        let (status, replayed, body) = task.await.unwrap();
        match status {
            200 => {
                if !replayed {
                    ran.push(body.clone());
                }
                bodies.push(body);
            }
            409 => assert!(body.contains("idempotency_error"), "{body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(ran.len(), 1, "exactly one request executed");
    assert!(
        bodies.iter().all(|b| *b == ran[0]),
        "every 200 is identical"
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(|config| {
        config.security.rate_limit_per_second = 1;
        config.security.rate_limit_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app.get("/v1/account", &app.secret_key).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error");
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another key of another merchant is not affected.
    let (_, other_key) = app.merchant().await;
    assert_eq!(app.get("/v1/account", &other_key).await.status(), 200);
}

#[tokio::test]
async fn operations_endpoints_need_no_key() {
    let app = spawn_app().await;
    let health = json(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(health["status"], "ok");
    let ready = json(
        app.client
            .get(format!("{}/readyz", app.address))
            .bearer_auth(common::OPERATOR_TOKEN)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(ready["checks"]["database"]["status"], "ok");

    app.get("/v1/account", &app.secret_key).await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"epg_http_requests_total{method="GET",route="/v1/account",status="200"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn shutdown_drains_and_stops_serving() {
    let app = spawn_app().await;
    let address = app.address.clone();
    let client = app.client.clone();
    assert_eq!(app.get("/healthz", "").await.status(), 200);
    app.stop().await;
    assert!(
        client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_err()
    );
}
