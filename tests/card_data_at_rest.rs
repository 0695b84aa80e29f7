//! Card numbers are never stored or logged in clear: after a run of card
//! payments through a real `epg serve` process logging at debug level, a
//! dump of the database and the whole log contain no full card number,
//! while the sealed number still opens with the configured key, and a
//! card's fingerprint does not follow it from one merchant to another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use epg::config::Mode;
use epg::crypto::{Keyring, Purpose};
use epg::merchants::{KeyKind, MerchantStore};
use serde_json::json;

const CARDS: [&str; 5] = [
    "4242424242424242",
    "4000000000000002",
    "4000000000009995",
    "4000002760003184",
    "4000000000000259",
];

/// pg_dump from the server's own folder (it must not be older than the
/// server), else from `$PATH`.
fn pg_dump() -> std::path::PathBuf {
    if let Some(bin) = epg::devnet::postgres::find_bin_dir() {
        let resolved = std::fs::canonicalize(bin.join("initdb")).unwrap_or_default();
        if let Some(dir) = resolved.parent()
            && dir.join("pg_dump").is_file()
        {
            return dir.join("pg_dump");
        }
    }
    std::path::PathBuf::from("pg_dump")
}

#[tokio::test]
async fn no_full_card_number_in_the_database_or_the_logs() {
    let (pool, url) = common::test_database().await;
    let store = MerchantStore::new(pool.clone());
    let merchant = store.create("Card Shop").await.unwrap();
    let (_, key) = store
        .create_key(&merchant.id, KeyKind::Secret, Mode::Test)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = epg::devnet::anvil::free_port().unwrap();
    let master_key = Keyring::generate_base64();
    let config = dir.path().join("epg.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[database]\nurl = \"{url}\"\n\
             [security]\nmaster_key = \"{master_key}\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n"
        ),
    )
    .unwrap();
    let log_path = dir.path().join("epg.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut node = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut payments = Vec::new();
    for number in CARDS {
        let payment: serde_json::Value = client
            .post(format!("{base}/v1/payments"))
            .bearer_auth(&key.secret)
            .json(&json!({"amount": 1000, "currency": "usd"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = payment["id"].as_str().unwrap().to_owned();
        // Spaced the way people type it, too.
        let spaced = number
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        let response = client
            .post(format!("{base}/v1/payments/{id}/confirm"))
            .bearer_auth(&key.secret)
            .json(&json!({"payment_method": {"type": "card", "card":
                {"number": spaced, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(status == 200 || status == 402, "{status}: {body}");
        assert!(!body.contains(number), "the API answered a full number");
        payments.push((id, number));
    }
    // A malformed number is refused; it must not be echoed or logged either.
    let bad = "4242424242424241";
    let payment: serde_json::Value = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key.secret)
        .json(&json!({"amount": 1000, "currency": "usd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = client
        .post(format!(
            "{base}/v1/payments/{}/confirm",
            payment["id"].as_str().unwrap()
        ))
        .bearer_auth(&key.secret)
        .json(&json!({"payment_method": {"type": "card", "card":
            {"number": bad, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(!refused.text().await.unwrap().contains(bad));

    tokio::process::Command::new("kill")
        .args(["-TERM", &node.id().unwrap().to_string()])
        .status()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), node.wait())
        .await
        .unwrap()
        .unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("request finished"),
        "the node logged requests:\n{log}"
    );
    let database = url.rsplit('/').next().unwrap();
    let dump = std::process::Command::new(pg_dump())
        .arg("--data-only")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_dump {database}: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("pay_"), "the dump has the payments");
    for number in CARDS.iter().chain([&bad]) {
        assert!(!log.contains(number), "{number} in the log");
        assert!(!dump.contains(number), "{number} in the database");
    }

    // The number is kept, sealed: it opens with the key and the payment id.
    let cards = Keyring::new(&master_key, &[])
        .unwrap()
        .sealer(Purpose::Cards);
    for (id, number) in payments {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT card_number_sealed FROM payments WHERE id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        let opened = cards.open(&sealed.unwrap(), id.as_bytes()).unwrap();
        assert_eq!(opened, number.as_bytes());
    }
}

/// A fingerprint lets a merchant recognise a returning card; it must not
/// let two merchants (or whoever reads both their data) recognise the same
/// customer.
#[tokio::test]
async fn a_card_fingerprint_does_not_link_a_card_across_merchants() {
    let app = common::spawn_app().await;
    let (_, other_key) = app.merchant().await;
    let fingerprint = |key: String| {
        let app = &app;
        async move {
            let payment = common::json(
                app.post(
                    "/v1/payments",
                    &key,
                    &json!({"amount": 1000, "currency": "usd"}),
                )
                .await,
                200,
            )
            .await;
            let confirmed = common::json(
                app.post(
                    &format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap()),
                    &key,
                    &json!({"payment_method": {"type": "card", "card":
                        {"number": CARDS[0], "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
                )
                .await,
                200,
            )
            .await;
            confirmed["payment_method"]["card"]["fingerprint"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let first = fingerprint(app.secret_key.clone()).await;
    let again = fingerprint(app.secret_key.clone()).await;
    let elsewhere = fingerprint(other_key).await;
    assert_eq!(first, again, "one merchant sees one fingerprint per card");
    assert_ne!(first, elsewhere, "two merchants see unrelated fingerprints");
}
