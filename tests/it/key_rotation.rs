//! Rotating the master key: `epg keys rotate-master` and the node's
//! background job re-seal every sealed value (card numbers, webhook
//! secrets, saved responses) under the new key and recompute card
//! fingerprints, so a leaked old key opens nothing once the rotation is
//! done; values sealed before envelopes existed still open, and are
//! re-sealed too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{TestApp, json, spawn_app, spawn_on, test_config};
use epg::crypto::{Keyring, Purpose};
use epg::db::Db;
use hmac::Mac;
use serde_json::{Value, json};

const CARD: &str = "4242424242424242";
const EPG: &str = env!("CARGO_BIN_EXE_epg");

/// Creates a payment with the secret key `sk` and confirms it with
/// [`CARD`] under `idem`; returns the payment.
async fn pay(app: &TestApp, sk: &str, idem: Option<&str>) -> Value {
    let payment = json(
        app.post(
            "/v1/payments",
            sk,
            &json!({"amount": 1500, "currency": "usd"}),
        )
        .await,
        200,
    )
    .await;
    let mut request = app
        .client
        .post(format!(
            "{}/v1/payments/{}/confirm",
            app.address,
            payment["id"].as_str().unwrap()
        ))
        .bearer_auth(sk)
        .json(&json!({"payment_method": {"type": "card", "card":
            {"number": CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}));
    if let Some(idem) = idem {
        request = request.header("idempotency-key", idem);
    }
    json(request.send().await.unwrap(), 200).await
}

fn fingerprint(payment: &Value) -> String {
    payment["payment_method"]["card"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn create_endpoint(app: &TestApp, idem: &str) -> Value {
    json(
        app.client
            .post(format!("{}/v1/webhook_endpoints", app.address))
            .bearer_auth(&app.secret_key)
            .header("idempotency-key", idem)
            .json(&json!({"url": "https://93.184.216.34/hooks", "enabled_events": ["*"]}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// The same node configuration with `master` as its key and `previous`
/// as the keys it only opens with.
fn with_keys(url: &str, master: &str, previous: &[&str]) -> epg::config::Config {
    let mut config = test_config(url);
    config.security.master_key = master.to_owned();
    config.security.previous_master_keys = previous.iter().map(|k| (*k).to_owned()).collect();
    config
}

/// Runs `epg keys rotate-master` against `url` with these keys.
async fn rotate_master(url: &str, master: &str, previous: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epg.toml");
    let previous = previous
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"{url}\"\n[security]\nmaster_key = \"{master}\"\n\
             previous_master_keys = [{previous}]\n"
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(EPG)
        .args(["keys", "rotate-master", "--config"])
        .arg(&path)
        .env_remove("EPG_DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The "re-sealed" and "unreadable" numbers of a line of the report.
fn counts(report: &str, what: &str) -> (u64, u64) {
    let line = report
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("no {what} line in:\n{report}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Every sealed value in the database, with the purpose and the context
/// it was sealed for.
async fn sealed_values(pool: &Db) -> Vec<(Purpose, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let cards: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, card_number_sealed FROM payments WHERE card_number_sealed IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, sealed) in cards {
        out.push((Purpose::Cards, sealed, id.into_bytes()));
    }
    let secrets: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT id, secret_sealed FROM webhook_endpoints")
            .fetch_all(pool)
            .await
            .unwrap();
    for (id, sealed) in secrets {
        let context = format!("epg.webhook_endpoint.secret.v1:{id}").into_bytes();
        out.push((Purpose::WebhookSecrets, sealed, context));
    }
    let responses: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT merchant_id, key_kind, key, response_body FROM idempotency_keys
         WHERE response_body IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (merchant, kind, key, sealed) in responses {
        let context = format!("epg.idempotency.v2:{merchant}:{kind}:{key}").into_bytes();
        out.push((Purpose::IdempotentResponses, sealed, context));
    }
    let accounts: Vec<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT merchant_id, currency, sealed FROM merchant_bank_accounts")
            .fetch_all(pool)
            .await
            .unwrap();
    for (merchant, currency, sealed) in accounts {
        let context = format!("merchant_bank_account:{merchant}:{currency}").into_bytes();
        out.push((Purpose::BankAccounts, sealed, context));
    }
    out
}

/// A master key was leaked (a backup, a former operator): the operator
/// rotates, and once `epg keys rotate-master` is done nothing in the
/// database opens with the leaked key, and no fingerprint is the one
/// computed under it.
#[tokio::test]
async fn a_leaked_master_key_opens_nothing_once_it_is_rotated_out() {
    let app = spawn_app().await;
    let leaked_key = app.config.security.master_key.clone();
    let first = pay(&app, &app.secret_key, Some("pay-1")).await;
    let second = pay(&app, &app.secret_key, Some("pay-2")).await;
    let old_fingerprint = fingerprint(&first);
    assert_eq!(old_fingerprint, fingerprint(&second));
    let created = create_endpoint(&app, "we-1").await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    // The merchant's payout bank account is sealed under the same key.
    epg::bank::transfers::set_merchant_account(
        &app.pool,
        &Keyring::new(&leaked_key, &[])
            .unwrap()
            .sealer(Purpose::BankAccounts),
        &app.merchant_id,
        "eur",
        "Test Merchant",
        &epg::bank::transfers::CreditorAccount {
            iban: Some("DE89370400440532013000".into()),
            bic: Some("COBADEFFXXX".into()),
            routing_number: None,
            account_number: None,
        },
    )
    .await
    .unwrap();
    let (pool, url, sk) = (
        app.pool.clone(),
        app.database_url.clone(),
        app.secret_key.clone(),
    );
    app.stop().await;

    let new = Keyring::generate_base64();
    let report = rotate_master(&url, &new, &[&leaked_key]).await;
    assert_eq!(counts(&report, "cards"), (2, 0), "{report}");
    assert_eq!(counts(&report, "webhook secrets"), (1, 0), "{report}");
    assert_eq!(counts(&report, "saved responses"), (3, 0), "{report}");
    assert_eq!(counts(&report, "bank details"), (1, 0), "{report}");
    assert!(
        report.contains("left on old keys: 0 sealed values, 3 idempotency request MACs"),
        "{report}"
    );
    let again = rotate_master(&url, &new, &[&leaked_key]).await;
    assert_eq!(counts(&again, "cards"), (0, 0), "{again}");

    let leaked = Keyring::new(&leaked_key, &[]).unwrap();
    let current = Keyring::new(&new, &[]).unwrap();
    let values = sealed_values(&pool).await;
    assert_eq!(values.len(), 7);
    for (purpose, sealed, context) in &values {
        assert!(sealed.starts_with(&current.current_header()));
        assert!(
            leaked.sealer(*purpose).open(sealed, context).is_err(),
            "the leaked key opens a {purpose:?} value"
        );
        let opened = current.sealer(*purpose).open(sealed, context).unwrap();
        match purpose {
            Purpose::Cards => assert_eq!(opened, CARD.as_bytes()),
            Purpose::WebhookSecrets => assert_eq!(opened, secret.as_bytes()),
            Purpose::IdempotentResponses => assert!(opened.starts_with(b"{")),
            Purpose::BankAccounts => {
                assert!(opened.starts_with(b"{"));
                assert!(String::from_utf8_lossy(&opened).contains("DE89370400440532013000"));
            }
            Purpose::TotpSecrets => assert_eq!(opened.len(), 20),
        }
    }

    // The node on the new key (the old one still configured, for the
    // request MACs of the day's idempotency keys) serves the re-sealed data.
    let node = spawn_on(pool.clone(), with_keys(&url, &new, &[&leaked_key])).await;
    let replay = node
        .client
        .post(format!("{}/v1/webhook_endpoints", node.address))
        .bearer_auth(&sk)
        .header("idempotency-key", "we-1")
        .json(&json!({"url": "https://93.184.216.34/hooks", "enabled_events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(json(replay, 200).await["secret"], secret.as_str());
    let id = first["id"].as_str().unwrap();
    let now = json(node.get(&format!("/v1/payments/{id}"), &sk).await, 200).await;
    let new_fingerprint = fingerprint(&now);
    assert_ne!(new_fingerprint, old_fingerprint);
    let id = second["id"].as_str().unwrap();
    let other = json(node.get(&format!("/v1/payments/{id}"), &sk).await, 200).await;
    assert_eq!(fingerprint(&other), new_fingerprint);
    let events = node
        .get("/v1/events?type=payment.succeeded&limit=100", &sk)
        .await
        .text()
        .await
        .unwrap();
    assert!(events.contains(&new_fingerprint), "{events}");
    assert!(
        !events.contains(&old_fingerprint),
        "an event keeps the fingerprint under the leaked key"
    );
}

/// `nonce ‖ ciphertext` under the master key itself: how card numbers and
/// webhook secrets were sealed before envelopes.
fn legacy_seal(master: &str, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(&BASE64.decode(master).unwrap()).unwrap();
    let nonce = [9u8; 12];
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .unwrap();
    [&nonce[..], &sealed].concat()
}

/// The fingerprint before keyrings: one key for every merchant.
fn legacy_fingerprint(master: &str, card: &str) -> String {
    let mut derivation = b"epg card fingerprint v1".to_vec();
    derivation.extend_from_slice(&BASE64.decode(master).unwrap());
    let key = epg::crypto::sha256(&derivation);
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(card.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// A node upgraded from before envelopes, started on a new master key
/// with the old one as previous: its background job re-seals the old
/// values by itself, and their fingerprints become per-merchant ones.
#[tokio::test]
async fn values_sealed_before_envelopes_are_resealed_by_the_node_itself() {
    let app = spawn_app().await;
    let old = app.config.security.master_key.clone();
    let payment = pay(&app, &app.secret_key, None).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let endpoint = create_endpoint(&app, "we-legacy").await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    let (pool, url, sk, merchant) = (
        app.pool.clone(),
        app.database_url.clone(),
        app.secret_key.clone(),
        app.merchant_id.clone(),
    );
    app.stop().await;

    // Put the values back the way the node wrote them before.
    let legacy = legacy_fingerprint(&old, CARD);
    sqlx::query(
        "UPDATE payments SET card_number_sealed = $2, card_fingerprint = $3,
                card = jsonb_set(card, '{fingerprint}', to_jsonb($3::text))
         WHERE id = $1",
    )
    .bind(&id)
    .bind(legacy_seal(&old, CARD.as_bytes(), id.as_bytes()))
    .bind(&legacy)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE webhook_endpoints SET secret_sealed = $2 WHERE id = $1")
        .bind(&endpoint_id)
        .bind(legacy_seal(
            &old,
            secret.as_bytes(),
            format!("epg.webhook_endpoint.secret.v1:{endpoint_id}").as_bytes(),
        ))
        .execute(&pool)
        .await
        .unwrap();

    let new = Keyring::generate_base64();
    let node = spawn_on(pool.clone(), with_keys(&url, &new, &[&old])).await;
    let current = Keyring::new(&new, &[]).unwrap();
    // The job runs on its own; wait (bounded) until nothing is left.
    let mut left = i64::MAX;
    for _ in 0..600 {
        left = epg::rotation::remaining(&pool, &current)
            .await
            .unwrap()
            .sealed();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the background job re-sealed everything");

    for (purpose, sealed, context) in sealed_values(&pool).await {
        let opened = current.sealer(purpose).open(&sealed, &context).unwrap();
        if purpose == Purpose::WebhookSecrets {
            assert_eq!(opened, secret.as_bytes());
        }
    }
    let now = json(node.get(&format!("/v1/payments/{id}"), &sk).await, 200).await;
    assert_ne!(fingerprint(&now), legacy);
    assert_eq!(
        fingerprint(&now),
        current
            .fingerprints()
            .of(merchant.as_str(), CARD.as_bytes())
    );
    // A new payment with the same card gets the same fingerprint.
    assert_eq!(fingerprint(&pay(&node, &sk, None).await), fingerprint(&now));
}
