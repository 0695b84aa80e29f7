//! Go-live safety (issue 13): what a live node refuses, and the attacks on
//! the HTTP surface it stops. Each test is named for the attack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{TestApp, json, spawn_app, spawn_app_with, spawn_on, test_config};
use epg::config::{Config, Mode, TlsMode};
use epg::merchants::{KeyKind, MerchantStore};
use serde_json::json;

/// A live-mode configuration the node accepts: TLS terminated by a proxy
/// on loopback, no processor configured.
fn live(config: &mut Config) {
    config.mode = Mode::Live;
    config.server.dev = false;
    config.server.tls = TlsMode::Proxy;
    config.server.trusted_proxies = vec!["127.0.0.1".into()];
}

fn card(number: &str) -> serde_json::Value {
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}})
}

async fn ledger_entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger_entries")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn live_mode_never_approves_the_sandbox_test_card() {
    // A payment created while cards were offered (test mode) ...
    let test_node = spawn_app().await;
    let payment = json(
        test_node
            .post(
                "/v1/payments",
                &test_node.secret_key,
                &json!({"amount": 2000, "currency": "usd", "payment_method_types": ["card"]}),
            )
            .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let pool = test_node.pool.clone();
    let merchant = test_node.merchant_id.clone();
    let mut config = test_node.config.clone();
    test_node.stop().await;

    // ... meets the same database served live, with no card processor.
    live(&mut config);
    let node = spawn_on(pool.clone(), config).await;
    let (_, live_key) = MerchantStore::new(pool.clone())
        .create_key(&merchant, KeyKind::Secret, Mode::Live)
        .await
        .unwrap();
    let entries_before = ledger_entries(&node).await;
    let refused = json(
        node.post(
            &format!("/v1/payments/{id}/confirm"),
            &live_key.secret,
            &json!({"payment_method": card("4242424242424242")}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(refused["error"]["code"], "payment_method_unavailable");
    assert_eq!(refused["error"]["param"], "payment_method.type");
    let unchanged = json(
        node.get(&format!("/v1/payments/{id}"), &live_key.secret)
            .await,
        200,
    )
    .await;
    assert_eq!(unchanged["status"], "requires_payment_method");
    assert_eq!(ledger_entries(&node).await, entries_before);

    // Nothing traditional is offered: not on the account, not on new payments.
    let account = json(node.get("/v1/account", &live_key.secret).await, 200).await;
    assert_eq!(account["payment_method_types"], json!([]));
    let explicit = json(
        node.post(
            "/v1/payments",
            &live_key.secret,
            &json!({"amount": 2000, "currency": "usd", "payment_method_types": ["card"]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(explicit["error"]["code"], "payment_method_unavailable");
    assert_eq!(explicit["error"]["param"], "payment_method_types[0]");
    let default = json(
        node.post(
            "/v1/payments",
            &live_key.secret,
            &json!({"amount": 2000, "currency": "usd"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(default["error"]["code"], "payment_method_unavailable");
    // The sandbox's helpers do not exist.
    assert_eq!(
        node.post(
            &format!("/v1/test/bank_transfers/{id}/clear"),
            &live_key.secret,
            &json!({})
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn a_live_node_cannot_be_built_with_a_sandbox_processor_or_plain_http() {
    let (pool, url) = common::test_database().await;
    let mut config = test_config(&url);
    live(&mut config);
    config.processors.card = Some(epg::methods::Processor::Sandbox);
    let err = epg::app::Application::build_with_pool(config.clone(), pool.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("processors.card"), "{err}");

    config.processors.card = None;
    config.server.tls = TlsMode::Off;
    let err = epg::app::Application::build_with_pool(config, pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.tls"), "{err}");
}

/// `epg config check` on `text`: (success, stderr).
fn config_check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epg.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

#[test]
fn config_check_refuses_a_live_node_with_a_sandbox_method_and_names_the_key() {
    let base = format!(
        "mode = \"live\"\n[server]\ntls = \"proxy\"\ntrusted_proxies = [\"10.0.0.1\"]\n\
         [database]\nurl = \"postgres://epg@127.0.0.1/epg\"\n\
         [security]\nmaster_key = \"{KEY}\"\n"
    );
    let (ok, _) = config_check(&base);
    assert!(ok, "a live config with no sandbox is valid");
    let (ok, err) = config_check(&format!("{base}[processors]\ncheck = \"sandbox\"\n"));
    assert!(!ok);
    assert!(err.contains("processors.check"), "{err}");
    assert!(err.contains("live mode"), "{err}");

    // The example file (sandbox everywhere) cannot go live by a mode switch.
    let example = epg::config::Config::example().replace("mode = \"test\"", "mode = \"live\"");
    let (ok, err) = config_check(&example);
    assert!(!ok);
    assert!(
        err.contains("processors.") || err.contains("server."),
        "{err}"
    );
}

#[test]
fn config_check_refuses_a_live_node_on_plain_http_or_unencrypted_links() {
    let with = |server: &str, db: &str| {
        format!(
            "mode = \"live\"\n[server]\n{server}\n[database]\nurl = \"{db}\"\n\
             [security]\nmaster_key = \"{KEY}\"\n"
        )
    };
    let (ok, err) = config_check(&with("", "postgres://epg@127.0.0.1/epg"));
    assert!(!ok);
    assert!(err.contains("server.tls"), "{err}");
    let (ok, err) = config_check(&with("tls = \"proxy\"", "postgres://epg@127.0.0.1/epg"));
    assert!(!ok);
    assert!(err.contains("server.trusted_proxies"), "{err}");
    let proxy = "tls = \"proxy\"\ntrusted_proxies = [\"10.0.0.0/8\"]";
    let (ok, err) = config_check(&with(proxy, "postgres://epg@db.example.net/epg"));
    assert!(!ok);
    assert!(err.contains("database.url"), "{err}");
    assert!(err.contains("verify-full"), "{err}");
    let (ok, err) = config_check(&with(
        proxy,
        "postgres://epg@db.example.net/epg?sslmode=verify-full",
    ));
    assert!(ok, "{err}");
    let chain = format!(
        "{}\n[[chains]]\nchain_id = 1\nhttp_url = \"http://rpc.example.net\"\nconfirmations = 12\n\
         router = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
         anchor = \"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512\"\n\
         treasury = \"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"\n",
        with(proxy, "postgres://epg@127.0.0.1/epg")
    );
    let (ok, err) = config_check(&chain);
    assert!(!ok);
    assert!(err.contains("chains[0].http_url"), "{err}");
}

/// A certificate authority and a `localhost` / 127.0.0.1 leaf it signed,
/// as PEM: (ca, leaf chain, leaf key).
fn certificates() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "E-PG test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

fn curl(ca: &std::path::Path, url: &str) -> (bool, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("curl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn epg_serve_answers_https_with_its_certificate_and_reloads_it_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = certificates();
    let (cert_path, key_path, ca_path) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert_path, &chain).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    std::fs::write(&ca_path, &ca).unwrap();
    let (_, url) = common::test_database().await;
    let port = epg::devnet::anvil::free_port().unwrap();
    let config_path = dir.path().join("epg.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntls = \"on\"\ntls_cert_file = \"{}\"\n\
             tls_key_file = \"{}\"\n[database]\nurl = \"{url}\"\n[security]\n\
             master_key = \"{KEY}\"\n[log]\nlevel = \"warn\"\n",
            cert_path.display(),
            key_path.display()
        ),
    )
    .unwrap();
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("https://localhost:{port}/healthz");
    let mut answered = (false, String::new());
    for _ in 0..200 {
        answered = curl(&ca_path, &health);
        if answered.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered.0, "no HTTPS answer: {}", answered.1);
    assert!(answered.1.contains("\"ok\""), "{}", answered.1);
    // Plain HTTP on the TLS port gets no API answer.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"ok\""));

    // A renewed certificate from another CA, then SIGHUP.
    let (new_ca, new_chain, new_key) = certificates();
    let new_ca_path = dir.path().join("new-ca.pem");
    std::fs::write(&new_ca_path, &new_ca).unwrap();
    std::fs::write(&cert_path, &new_chain).unwrap();
    std::fs::write(&key_path, &new_key).unwrap();
    let pid = node.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut reloaded = false;
    for _ in 0..100 {
        if curl(&new_ca_path, &health).0 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the renewed certificate is not served after SIGHUP"
    );
    assert!(
        !curl(&ca_path, &health).0,
        "the old certificate is still served"
    );
    let _ = node.kill();
    let _ = node.wait();
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_with(|c| c.server.header_read_timeout_secs = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // Slowloris: a request head that never ends.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let mut buf = [0u8; 1024];
        // The server closes the connection (0 bytes, or an error/timeout
        // status line) instead of waiting for ever.
        let mut answer = Vec::new();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(answer),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .unwrap();
    let answer = result.expect("the server closed the connection");
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("\"ok\""), "{text}");
}

#[tokio::test]
async fn public_routes_are_rate_limited_per_client_address() {
    let app = spawn_app_with(|c| {
        c.security.public_rate_limit_per_second = 1;
        c.security.public_rate_limit_burst = 3;
    })
    .await;
    let url = format!("{}/v1/transparency/checkpoints", app.address);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.client.get(&url).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // The checkout page and the docs share the address's budget; the
    // merchant API (its own budget, per key) and health checks do not.
    assert_eq!(
        app.client
            .get(format!(
                "{}/checkout/pay_000000000000000000000000",
                app.address
            ))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(app.get("/v1/account", &app.secret_key).await.status(), 200);
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn guessing_api_keys_from_one_address_is_cut_off() {
    let app = spawn_app_with(|c| c.security.failed_auth_per_minute = 3).await;
    for i in 0..3 {
        let r = app.get("/v1/account", &format!("sk_test_{:032}", i)).await;
        assert_eq!(r.status(), 401);
    }
    // The address is now refused, even with a valid key, until it cools down.
    let refused = json(app.get("/v1/account", &app.secret_key).await, 429).await;
    assert_eq!(refused["error"]["code"], "too_many_failed_authentications");
}

#[tokio::test]
async fn one_client_cannot_hold_unlimited_live_streams() {
    let app = spawn_app_with(|c| {
        c.server.max_streams_per_payment = 2;
        c.server.max_streams_per_ip = 3;
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let p = json(
            app.post(
                "/v1/payments",
                &app.secret_key,
                &json!({"amount": 100, "currency": "usd"}),
            )
            .await,
            200,
        )
        .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let open = |id: &str| {
        app.client
            .get(format!("{}/v1/payments/{id}/events/stream", app.address))
            .bearer_auth(&app.secret_key)
            .send()
    };
    let a1 = open(&ids[0]).await.unwrap();
    let a2 = open(&ids[0]).await.unwrap();
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    let a3 = json(open(&ids[0]).await.unwrap(), 429).await;
    assert_eq!(a3["error"]["code"], "too_many_streams");
    let b1 = open(&ids[1]).await.unwrap();
    assert_eq!(b1.status(), 200);
    // Three streams from this address: the fourth is refused.
    let b2 = json(open(&ids[1]).await.unwrap(), 429).await;
    assert_eq!(b2["error"]["code"], "too_many_streams");
    // Closing one gives its slot back.
    drop(a1);
    let mut reopened = 0;
    for _ in 0..100 {
        let r = open(&ids[1]).await.unwrap();
        if r.status() == 200 {
            reopened = 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reopened, 200);
    drop((a2, b1));
}

#[tokio::test]
async fn public_reads_cannot_starve_merchant_requests() {
    let app = spawn_app_with(|c| {
        c.database.max_connections = 3;
        c.database.public_max_connections = 2;
    })
    .await;
    // Every read of the transparency log blocks behind this lock, holding
    // whatever connection it took.
    let mut locker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE transparency_checkpoints IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let mut stuck = Vec::new();
    for _ in 0..8 {
        let url = format!("{}/v1/transparency/checkpoints", app.address);
        let client = app.client.clone();
        stuck.push(tokio::spawn(async move { client.get(url).send().await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Merchant traffic has connections of its own.
    let account = app.get("/v1/account", &app.secret_key).await;
    assert_eq!(account.status(), 200);
    locker.rollback().await.unwrap();
    for r in stuck {
        let _ = r.await;
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let confirm_from = |app: &TestApp, forwarded: &'static str| {
        let app_address = app.address.clone();
        let client = app.client.clone();
        let key = app.secret_key.clone();
        async move {
            let p: serde_json::Value = client
                .post(format!("{app_address}/v1/payments"))
                .bearer_auth(&key)
                .json(&json!({"amount": 100, "currency": "usd"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = p["id"].as_str().unwrap().to_owned();
            let r = client
                .post(format!("{app_address}/v1/payments/{id}/confirm"))
                .bearer_auth(&key)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"payment_method": card("4242424242424242")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            id
        }
    };
    let recorded = |app: &TestApp, id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT client_ip FROM payment_attempts WHERE payment_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // A card tester spoofing the header from an untrusted address.
    let app = spawn_app().await;
    let id = confirm_from(&app, "203.0.113.7").await;
    assert_eq!(recorded(&app, id).await, "127.0.0.1");
    // Behind a trusted proxy, the client it names.
    let app = spawn_app_with(|c| c.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let id = confirm_from(&app, "198.51.100.23").await;
    assert_eq!(recorded(&app, id).await, "198.51.100.23");
}

#[tokio::test]
async fn metrics_and_readiness_details_need_the_operator_token() {
    let app = spawn_app().await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = app.client.get(format!("{}{path}", app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
    assert_eq!(
        get("/metrics", Some(&app.secret_key))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/metrics", Some(common::OPERATOR_TOKEN))
            .await
            .unwrap()
            .status(),
        200
    );
    let anonymous = json(get("/readyz", None).await.unwrap(), 200).await;
    assert_eq!(anonymous, json!({"status": "ready"}));
    let operator = json(
        get("/readyz", Some(common::OPERATOR_TOKEN)).await.unwrap(),
        200,
    )
    .await;
    assert_eq!(operator["checks"]["database"]["status"], "ok");

    // Without a configured token, the metrics are nobody's.
    let app = spawn_app_with(|c| c.security.operator_token = None).await;
    let r = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn postgres_is_reached_over_tls_with_its_certificate_verified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pg");
    let port = epg::devnet::anvil::free_port().unwrap();
    let cluster = epg::devnet::postgres::PrivateCluster::start(&data, port)
        .await
        .unwrap();
    cluster.stop().await.unwrap();
    // The server's certificate, for localhost, from a CA of the test's.
    let (ca, chain, key) = certificates();
    std::fs::write(data.join("server.crt"), &chain).unwrap();
    std::fs::write(data.join("server.key"), &key).unwrap();
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    writeln!(
        conf,
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
    )
    .unwrap();
    drop(conf);
    // PostgreSQL wants its key private to the user it runs as.
    let _ = std::process::Command::new("chown")
        .args(["postgres:postgres"])
        .arg(data.join("server.crt"))
        .arg(data.join("server.key"))
        .status();
    std::fs::set_permissions(
        data.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cluster = epg::devnet::postgres::PrivateCluster::start(&data, port)
        .await
        .unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let url = |root: &std::path::Path| {
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            root.display()
        )
    };

    let pool = epg::db::connect(&url(&ca_path), 1).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");
    pool.close().await;

    // A server whose certificate another CA signed is refused: no
    // man in the middle between the node and its books.
    let (other_ca, _, _) = certificates();
    let other_path = dir.path().join("other-ca.pem");
    std::fs::write(&other_path, &other_ca).unwrap();
    assert!(epg::db::connect(&url(&other_path), 1).await.is_err());
    cluster.stop().await.unwrap();
}
