#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /v1/balance` and `GET /v1/balance_transactions` through a running
//! node: shapes, fiat integers and crypto strings, pagination both ways,
//! and one merchant never seeing another's money.

use crate::common;

use epg::db::Db;
use epg::ids::MerchantId;
use epg::ledger::{self, AccountRef, Entry, EntryKind, MerchantAccount, NewHold};
use epg::money::{Amount, AssetCode, AssetRegistry, ChainAsset};
use serde_json::{Value, json};

fn usd() -> AssetCode {
    AssetCode::parse("usd").unwrap()
}

async fn post(pool: &Db, entry: &Entry) {
    let mut tx = pool.begin().await.unwrap();
    ledger::post(&mut tx, entry).await.unwrap();
    tx.commit().await.unwrap();
}

fn capture(m: &MerchantId, n: usize) -> Entry {
    let pending = AccountRef::merchant(m, MerchantAccount::Pending);
    Entry::new(format!("{m}:capture:{n}"), EntryKind::PAYMENT)
        .source(format!("pay_test{n:04}"))
        .transfer(
            AccountRef::clearing("card"),
            pending.clone(),
            &usd(),
            Amount::from_minor(1000),
        )
        .fee(pending, &usd(), Amount::from_minor(59))
}

#[tokio::test]
async fn balance_shows_each_asset_with_fiat_integers_and_crypto_strings() {
    let app = common::spawn_app().await;
    let m = &app.merchant_id;
    let empty = common::json(app.get("/v1/balance", &app.secret_key).await, 200).await;
    assert_eq!(
        empty,
        json!({"object": "balance", "available": [], "pending": [], "reserved": [],
               "livemode": false})
    );

    let mut conn = app.pool.acquire().await.unwrap();
    AssetRegistry::new()
        .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 18))
        .await
        .unwrap();
    drop(conn);
    let eth = AssetCode::parse("eth:31337").unwrap();
    let pending = AccountRef::merchant(m, MerchantAccount::Pending);
    let available = AccountRef::merchant(m, MerchantAccount::Available);
    post(&app.pool, &capture(m, 1)).await;
    post(
        &app.pool,
        &Entry::new("settle", EntryKind::AVAILABILITY).transfer(
            pending.clone(),
            available.clone(),
            &usd(),
            Amount::from_minor(500),
        ),
    )
    .await;
    post(
        &app.pool,
        &Entry::new("crypto", EntryKind::PAYMENT)
            .source("pay_crypto01")
            .transfer(
                AccountRef::treasury(31337),
                pending.clone(),
                &eth,
                Amount::parse_units("1000000000000000000000000007").unwrap(),
            ),
    )
    .await;
    // An authorization not yet captured counts as pending.
    let mut tx = app.pool.begin().await.unwrap();
    ledger::open_hold(
        &mut tx,
        &NewHold::new(
            "auth",
            EntryKind::AUTHORIZATION,
            AccountRef::clearing("card"),
            pending,
            &usd(),
            Amount::from_minor(300),
        ),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let balance = common::json(app.get("/v1/balance", &app.secret_key).await, 200).await;
    assert_eq!(
        balance,
        json!({
            "object": "balance",
            "available": [
                {"amount": "0", "currency": "eth", "chain_id": 31337},
                {"amount": 500, "currency": "usd"},
            ],
            "pending": [
                {"amount": "1000000000000000000000000007", "currency": "eth", "chain_id": 31337},
                {"amount": 1000 - 59 - 500 + 300, "currency": "usd"},
            ],
            "reserved": [
                {"amount": "0", "currency": "eth", "chain_id": 31337},
                {"amount": 0, "currency": "usd"},
            ],
            "livemode": false,
        })
    );

    let list = common::json(
        app.get("/v1/balance_transactions", &app.secret_key).await,
        200,
    )
    .await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{list}");
    assert_eq!(data[0]["amount"], json!("1000000000000000000000000007"));
    assert_eq!(data[0]["fee"], json!("0"));
    assert_eq!(data[0]["currency"], json!("eth"));
    assert_eq!(data[0]["chain_id"], json!(31337));
    assert_eq!(data[0]["source"], json!("pay_crypto01"));
    assert_eq!(data[1]["type"], json!("availability"));
    assert_eq!(data[1]["amount"], json!(0));
    assert_eq!(data[1]["status"], json!("available"));
    let capture = &data[2];
    let id = capture["id"].as_str().unwrap();
    assert!(id.starts_with("txn_") && id.len() == 28, "{id}");
    assert_eq!(capture["object"], json!("balance_transaction"));
    assert_eq!(capture["amount"], json!(1000));
    assert_eq!(capture["fee"], json!(59));
    assert_eq!(capture["net"], json!(941));
    assert_eq!(capture["currency"], json!("usd"));
    assert!(capture.get("chain_id").is_none());
    assert_eq!(capture["type"], json!("payment"));
    assert_eq!(capture["status"], json!("pending"));
    assert_eq!(capture["source"], json!("pay_test0001"));
    assert!(capture["created"].as_i64().unwrap() > 1_700_000_000);
    let one = common::json(
        app.get(&format!("/v1/balance_transactions/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(&one, capture);
}

#[tokio::test]
async fn balance_transactions_paginate_both_ways() {
    let app = common::spawn_app().await;
    for n in 0..25 {
        post(&app.pool, &capture(&app.merchant_id, n)).await;
    }
    let page = |query: String| {
        let app = &app;
        async move {
            common::json(
                app.get(&format!("/v1/balance_transactions{query}"), &app.secret_key)
                    .await,
                200,
            )
            .await
        }
    };
    let sources = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["source"].as_str().unwrap().to_owned())
            .collect()
    };
    let expect = |range: std::ops::Range<usize>| -> Vec<String> {
        range.rev().map(|n| format!("pay_test{n:04}")).collect()
    };

    let first = page(String::new()).await;
    assert_eq!(first["object"], json!("list"));
    assert_eq!(
        sources(&first),
        expect(15..25),
        "default limit 10, newest first"
    );
    assert_eq!(first["has_more"], json!(true));
    let last_id = |list: &Value| {
        list["data"].as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first_id = |list: &Value| list["data"][0]["id"].as_str().unwrap().to_owned();

    let second = page(format!("?limit=10&starting_after={}", last_id(&first))).await;
    assert_eq!(sources(&second), expect(5..15));
    assert_eq!(second["has_more"], json!(true));
    let third = page(format!("?limit=10&starting_after={}", last_id(&second))).await;
    assert_eq!(sources(&third), expect(0..5));
    assert_eq!(third["has_more"], json!(false));

    let back = page(format!("?limit=10&ending_before={}", first_id(&third))).await;
    assert_eq!(sources(&back), expect(5..15));
    assert_eq!(back["has_more"], json!(true));
    let back = page(format!("?limit=3&ending_before={}", first_id(&second))).await;
    assert_eq!(sources(&back), expect(15..18));
    assert_eq!(back["has_more"], json!(true));
    let top = page(format!("?ending_before={}", first_id(&first))).await;
    assert_eq!(sources(&top), Vec::<String>::new());
    assert_eq!(top["has_more"], json!(false));
    let all = page("?limit=100".into()).await;
    assert_eq!(sources(&all), expect(0..25));
    assert_eq!(all["has_more"], json!(false));

    for (query, param) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?colour=red", "colour"),
        // A malformed cursor or one naming no transaction: 400, as on every list.
        ("?starting_after=txn_nope", "starting_after"),
        ("?ending_before=txn_nope", "ending_before"),
        ("?starting_after=pay_test0001", "starting_after"),
        (
            "?ending_before=txn_000000000000000000000000",
            "ending_before",
        ),
    ] {
        let response = app
            .get(&format!("/v1/balance_transactions{query}"), &app.secret_key)
            .await;
        let body = common::json(response, 400).await;
        assert_eq!(body["error"]["param"], json!(param), "{query}: {body}");
    }
    let both = app
        .get(
            &format!(
                "/v1/balance_transactions?starting_after={0}&ending_before={0}",
                first_id(&first)
            ),
            &app.secret_key,
        )
        .await;
    let body = common::json(both, 400).await;
    assert_eq!(body["error"]["param"], json!("ending_before"));
}

#[tokio::test]
async fn a_merchant_never_sees_another_merchants_money() {
    let app = common::spawn_app().await;
    for n in 0..3 {
        post(&app.pool, &capture(&app.merchant_id, n)).await;
    }
    let (other, other_key) = app.merchant().await;
    post(&app.pool, &capture(&other, 99)).await;

    let mine = common::json(
        app.get("/v1/balance_transactions", &app.secret_key).await,
        200,
    )
    .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 3);
    let theirs = common::json(app.get("/v1/balance_transactions", &other_key).await, 200).await;
    let theirs = theirs["data"].as_array().unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["source"], json!("pay_test0099"));
    let other_balance = common::json(app.get("/v1/balance", &other_key).await, 200).await;
    assert_eq!(
        other_balance["pending"],
        json!([{"amount": 941, "currency": "usd"}])
    );

    // Another merchant's transaction is unknown: by id, and as a cursor.
    let my_id = mine["data"][0]["id"].as_str().unwrap();
    let response = app
        .get(&format!("/v1/balance_transactions/{my_id}"), &other_key)
        .await;
    let body = common::json(response, 404).await;
    assert_eq!(body["error"]["code"], json!("resource_missing"));
    let response = app
        .get(
            &format!("/v1/balance_transactions?starting_after={my_id}"),
            &other_key,
        )
        .await;
    let body = common::json(response, 400).await;
    assert_eq!(body["error"]["param"], json!("starting_after"));

    // Secret keys only.
    let response = app.get("/v1/balance", &app.publishable_key).await;
    assert_eq!(response.status().as_u16(), 403);
    let response = app.get("/v1/balance", "sk_test_nope").await;
    assert_eq!(response.status().as_u16(), 401);
}
