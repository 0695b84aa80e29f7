//! Card numbers are never stored or logged in clear: after a run of card
//! payments through a real `epg serve` process logging at debug level, a
//! dump of the database and the whole log contain no full card number,
//! while the sealed number still opens with the configured key. Nothing
//! stored is an unkeyed hash a card could be guessed back from, and a
//! card's fingerprint does not follow it from one merchant to another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use epg::config::Mode;
use epg::crypto::{Keyring, Purpose};
use epg::merchants::{KeyKind, MerchantStore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

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

/// `pg_dump --data-only` of the database at `url`: every row of every
/// table, bytea as `\x…` hex.
fn dump_database(url: &str) -> String {
    let dump = std::process::Command::new(pg_dump())
        .arg("--data-only")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8(dump.stdout).unwrap()
}

/// Everything an attacker would try to hash: the raw body alone, with the
/// method and path in front (NUL-, newline-, space- or un-separated), the
/// body re-serialised canonically, and the card fields by themselves.
fn preimages(method: &str, path: &str, body: &[u8], number: &str, cvc: &str) -> Vec<Vec<u8>> {
    let canonical = serde_json::to_vec(&serde_json::from_slice::<Value>(body).unwrap()).unwrap();
    let mut out = Vec::new();
    for body in [body.to_vec(), canonical] {
        out.push(body.clone());
        for sep in [&b"\0"[..], b"\n", b" ", b""] {
            out.push([method.as_bytes(), sep, path.as_bytes(), sep, &body].concat());
            out.push([path.as_bytes(), sep, &body].concat());
        }
    }
    for sep in [&b""[..], b"\0", b":", b"|"] {
        out.push([number.as_bytes(), sep, cvc.as_bytes()].concat());
    }
    out.push(number.as_bytes().to_vec());
    out
}

/// The forms a digest takes in a dump: hex (bytea's `\x…` included), upper
/// hex, base64 and base64url, and a 16-hex-digit prefix (a truncated
/// "fingerprint").
fn encodings(digest: &[u8]) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let hex = hex::encode(digest);
    vec![
        hex.clone(),
        hex.to_uppercase(),
        STANDARD.encode(digest),
        URL_SAFE_NO_PAD.encode(digest),
        hex[..16].to_owned(),
    ]
}

/// The idempotency record of a confirmation must not be a plain hash of
/// its body: everything in it but the card number and CVC is known to the
/// holder of a dump, and a card number is a BIN, last four and a Luhn digit
/// away (10^5 guesses, times 1000 CVCs), so an unkeyed SHA-256 gives both
/// back in seconds.
#[tokio::test]
async fn a_stored_request_hash_cannot_be_brute_forced_back_into_a_card() {
    let app = common::spawn_app().await;
    let mut sent = Vec::new();
    for (i, number) in CARDS.iter().enumerate() {
        let payment = common::json(
            app.post(
                "/v1/payments",
                &app.secret_key,
                &json!({"amount": 1000 + i, "currency": "usd"}),
            )
            .await,
            200,
        )
        .await;
        let id = payment["id"].as_str().unwrap();
        // Every other confirmation comes from a browser's key.
        let (key, mut body) = if i % 2 == 0 {
            (&app.secret_key, json!({}))
        } else {
            (
                &app.publishable_key,
                json!({"client_secret": payment["client_secret"]}),
            )
        };
        body["payment_method"] = json!({"type": "card", "card":
            {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
        let body = serde_json::to_vec(&body).unwrap();
        let path = format!("/v1/payments/{id}/confirm");
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .bearer_auth(key)
            .header("idempotency-key", format!("confirm-{i}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(status == 200 || status == 402, "{status}");
        sent.push((path, body, *number));
    }

    let dump = dump_database(&app.database_url);
    assert!(
        dump.contains("confirm-4"),
        "the idempotency records are dumped"
    );
    for (path, body, number) in &sent {
        for preimage in preimages("POST", path, body, number, "123") {
            let digests = [
                Sha256::digest(&preimage).to_vec(),
                Sha512::digest(&preimage).to_vec(),
            ];
            for digest in digests {
                for form in encodings(&digest) {
                    assert!(
                        !dump.contains(&form),
                        "the database holds {form}, a plain hash of {:?}",
                        String::from_utf8_lossy(&preimage)
                    );
                }
            }
        }
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
