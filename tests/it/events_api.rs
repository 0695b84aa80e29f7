#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/v1/events`: the outbox as the merchant sees it: list (Stripe
//! pagination, type filter), retrieve, scoped to the caller's merchant.

use crate::common;
use crate::webhooks_support;

use epg::events::EventType;
use serde_json::json;
use webhooks_support::{payment, record};

fn ids(list: &serde_json::Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_are_listed_newest_first_with_cursors_and_filters() {
    let app = common::spawn_app().await;
    let mut recorded = Vec::new();
    for i in 0..7 {
        let t = match i % 3 {
            0 => EventType::PaymentSucceeded,
            1 => EventType::RefundSucceeded,
            _ => EventType::PaymentFailed,
        };
        recorded.push(
            record(&app.pool, &app.merchant_id, t, &payment("succeeded"))
                .await
                .to_string(),
        );
    }
    let newest_first: Vec<String> = recorded.iter().rev().cloned().collect();

    let all = common::json(app.get("/v1/events", &app.secret_key).await, 200).await;
    assert_eq!(all["object"], "list");
    assert_eq!(all["has_more"], false);
    assert_eq!(ids(&all), newest_first);

    let first = common::json(app.get("/v1/events?limit=3", &app.secret_key).await, 200).await;
    assert_eq!(ids(&first), newest_first[..3]);
    assert_eq!(first["has_more"], true);
    let second = common::json(
        app.get(
            &format!("/v1/events?limit=3&starting_after={}", newest_first[2]),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&second), newest_first[3..6]);
    assert_eq!(second["has_more"], true);
    let last = common::json(
        app.get(
            &format!("/v1/events?limit=3&starting_after={}", newest_first[5]),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&last), newest_first[6..]);
    assert_eq!(last["has_more"], false);
    let back = common::json(
        app.get(
            &format!("/v1/events?limit=2&ending_before={}", newest_first[3]),
            &app.secret_key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&back), newest_first[1..3]);
    assert_eq!(back["has_more"], true);

    let refunds = common::json(
        app.get("/v1/events?type=refund.succeeded", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(
        ids(&refunds),
        vec![recorded[4].clone(), recorded[1].clone()]
    );
    let payments = common::json(
        app.get("/v1/events?type=payment.*", &app.secret_key).await,
        200,
    )
    .await;
    assert_eq!(ids(&payments).len(), 5);

    let one = common::json(
        app.get(&format!("/v1/events/{}", recorded[0]), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(one["id"], recorded[0].as_str());
    assert_eq!(one["object"], "event");
    assert_eq!(one["type"], "payment.succeeded");
    assert_eq!(one["livemode"], false);
    assert!(one["created"].is_i64());
    assert_eq!(one["data"]["object"]["object"], "payment");
    assert_eq!(one["data"]["object"]["amount"], 1234);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let app = common::spawn_app().await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("type=payment.exploded", "type"),
        ("starting_after=evt_nope", "starting_after"),
        (
            "starting_after=evt_000000000000000000000000",
            "starting_after",
        ),
        ("colour=red", "colour"),
    ] {
        let err = common::json(
            app.get(&format!("/v1/events?{query}"), &app.secret_key)
                .await,
            400,
        )
        .await;
        assert_eq!(err["error"]["param"], param, "{query}: {err}");
    }
    common::json(
        app.get("/v1/events/evt_000000000000000000000000", &app.secret_key)
            .await,
        404,
    )
    .await;
    common::json(app.get("/v1/events/not-an-id", &app.secret_key).await, 404).await;
    common::json(app.get("/v1/events", &app.publishable_key).await, 403).await;
}

#[tokio::test]
async fn another_merchants_event_is_not_found() {
    let app = common::spawn_app().await;
    let (other, other_key) = app.merchant().await;
    let mine = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let theirs = record(
        &app.pool,
        &other,
        EventType::PaymentFailed,
        &payment("failed"),
    )
    .await;

    for path in [
        format!("/v1/events/{mine}"),
        format!("/v1/events/{mine}/deliveries"),
    ] {
        let err = common::json(app.get(&path, &other_key).await, 404).await;
        assert_eq!(err["error"]["code"], "resource_missing", "{path}");
    }
    common::json(
        app.post(
            &format!("/v1/events/{mine}/redeliver"),
            &other_key,
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    let list = common::json(app.get("/v1/events", &other_key).await, 200).await;
    assert_eq!(ids(&list), vec![theirs.to_string()]);
    // A cursor from another merchant's list is not a valid cursor here.
    let err = common::json(
        app.get(&format!("/v1/events?starting_after={mine}"), &other_key)
            .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "starting_after");
    let list = common::json(app.get("/v1/events", &app.secret_key).await, 200).await;
    assert_eq!(ids(&list), vec![mine.to_string()]);
}

#[tokio::test]
async fn redelivery_to_an_unknown_or_foreign_endpoint_is_refused() {
    let app = common::spawn_app().await;
    let (_, other_key) = app.merchant().await;
    let foreign = common::json(
        app.post(
            "/v1/webhook_endpoints",
            &other_key,
            &json!({ "url": "https://93.184.216.34/x", "enabled_events": ["*"] }),
        )
        .await,
        200,
    )
    .await;
    let event = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let err = common::json(
        app.post(
            &format!("/v1/events/{event}/redeliver"),
            &app.secret_key,
            &json!({ "endpoint": foreign["id"] }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(err["error"]["param"], "endpoint");
    // No endpoint at all: nothing to redeliver, which is not an error.
    let none = common::json(
        app.post(
            &format!("/v1/events/{event}/redeliver"),
            &app.secret_key,
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(none["data"], json!([]));
}

/// A client follows the merchant's events by asking for those newer than
/// the newest it has seen (`ending_before`). A long transaction (a watcher
/// step, a settlement batch) records its event first and commits after a
/// short one: the client sees the short one's event first, and still gets
/// the long one's on its next page, because lists follow commit order.
#[tokio::test]
async fn an_event_that_commits_late_is_listed_after_the_newest_event_a_client_has_seen() {
    let app = common::spawn_app().await;
    let before = record(
        &app.pool,
        &app.merchant_id,
        EventType::PaymentSucceeded,
        &payment("succeeded"),
    )
    .await;
    let mut long = app.pool.begin().await.unwrap();
    let late = epg::events::record(
        &mut long,
        &app.merchant_id,
        EventType::PaymentProcessing,
        &payment("processing"),
    )
    .await
    .unwrap();
    let quick = record(
        &app.pool,
        &app.merchant_id,
        EventType::RefundSucceeded,
        &payment("succeeded"),
    )
    .await;

    let mut seen: Vec<String> = Vec::new();
    let mut newest: Option<String> = None;
    let poll = async |seen: &mut Vec<String>, newest: &mut Option<String>| {
        let path = match newest {
            Some(id) => format!("/v1/events?limit=100&ending_before={id}"),
            None => "/v1/events?limit=100".to_owned(),
        };
        let page = common::json(app.get(&path, &app.secret_key).await, 200).await;
        let page = ids(&page);
        if let Some(first) = page.first() {
            *newest = Some(first.clone());
        }
        seen.extend(page);
    };
    poll(&mut seen, &mut newest).await;
    long.commit().await.unwrap();
    poll(&mut seen, &mut newest).await;

    let mut expected: Vec<String> = [&before, &late, &quick]
        .iter()
        .map(ToString::to_string)
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every event once, none skipped");
    // And in the order they committed, newest first.
    let all = common::json(app.get("/v1/events", &app.secret_key).await, 200).await;
    assert_eq!(
        ids(&all),
        [late.to_string(), quick.to_string(), before.to_string()]
    );
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// Two transactions each write events of the same two merchants, in
/// opposite orders (a watcher step and an expiry batch may), and commit at
/// the same time while a third holds one merchant's event clock. Each
/// takes the clocks in one order (merchant order), so both commit; taking
/// them in the order the events were written would deadlock, and
/// PostgreSQL would abort one of them.
#[tokio::test]
async fn writers_of_several_merchants_events_never_deadlock_on_the_event_clocks() {
    let app = common::spawn_app().await;
    let (other, _) = app.merchant().await;
    let mut merchants = [app.merchant_id.clone(), other];
    merchants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let [first, second] = merchants;
    for m in [&first, &second] {
        record(
            &app.pool,
            m,
            EventType::PaymentSucceeded,
            &payment("succeeded"),
        )
        .await;
    }
    let write = async |order: [&epg::ids::MerchantId; 2]| {
        let mut tx = app.pool.begin().await.unwrap();
        for m in order {
            epg::events::record(
                &mut tx,
                m,
                EventType::PaymentProcessing,
                &payment("processing"),
            )
            .await
            .unwrap();
        }
        tx
    };
    let forward = write([&first, &second]).await;
    let backward = write([&second, &first]).await;
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM event_clocks WHERE merchant_id = $1 FOR UPDATE")
        .bind(first.as_str())
        .execute(&mut *holder)
        .await
        .unwrap();
    let waiting = |n: i64| common::until_waiting_for_a_lock(&app.pool, n);
    // The forward writer queues for the first merchant's clock first, then
    // the backward one; then the holder lets go.
    let forward = tokio::spawn(forward.commit());
    waiting(1).await;
    let backward = tokio::spawn(backward.commit());
    waiting(2).await;
    holder.commit().await.unwrap();
    forward.await.unwrap().unwrap();
    backward.await.unwrap().unwrap();
    for m in [&first, &second] {
        let positions: Vec<i64> = sqlx::query_scalar(
            "SELECT position FROM events WHERE merchant_id = $1 ORDER BY position",
        )
        .bind(m.as_str())
        .fetch_all(&app.pool)
        .await
        .unwrap();
        assert_eq!(positions, [1, 2, 3], "one position each, in commit order");
    }
    let report = epg::ledger::check(&app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}
