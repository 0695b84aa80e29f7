//! The dashboard and `/verify` in a real browser: Debian's Chromium, driven
//! by playwright-core (tests/browser/dashboard.mjs). First sign-in with
//! TOTP enrolment (the test computes the codes), a wrong code, lockout, a
//! refund with step-up, an analyst refused, a forged CSRF token refused,
//! the CSV export against the API, the live feed, the audit log; then
//! `/verify` on a genuine bundle and tampered ones, with the verdicts
//! compared to `epg audit verify` on the same bundles. Screenshots go to
//! target/dashboard-screens/.
//!
//! Needs Chromium (`/usr/bin/chromium` or `EPG_CHROMIUM`) and the npm
//! packages (`scripts/setup`); without them the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, json};
use crate::dashboard_support::{PASSWORD, create_user};

use std::path::{Path, PathBuf};
use std::time::Duration;

use epg::dashboard::Role;
use epg::devnet::anvil::DEV_KEY_0;
use serde_json::{Value, json};

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("EPG_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn flip_hex(s: &str, digit: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let at = 2 + digit;
    let v = chars[at].to_digit(16).unwrap() ^ 1;
    chars[at] = std::char::from_digit(v, 16).unwrap();
    chars.into_iter().collect()
}

/// The genuine bundle and one changed thing at a time.
fn cases(b: &Value, later: &Value) -> Vec<(&'static str, Value)> {
    let mut cases = vec![("valid", b.clone())];
    let data = b["leaf"]["data_hex"].as_str().unwrap();
    let mut v = b.clone();
    v["leaf"]["data_hex"] = flip_hex(data, data.len() - 2 - 18 + 1).into();
    cases.push(("leaf byte", v));
    let mut v = b.clone();
    v["leaf"]["salt_hex"] = flip_hex(b["leaf"]["salt_hex"].as_str().unwrap(), 17).into();
    cases.push(("salt byte", v));
    let mut v = b.clone();
    v["inclusion_path"][1] = flip_hex(b["inclusion_path"][1].as_str().unwrap(), 40).into();
    cases.push(("path byte", v));
    let mut v = b.clone();
    v["leaf_index"] = 2.into();
    cases.push(("leaf index", v));
    let mut v = b.clone();
    v["checkpoint"]["root"] = flip_hex(b["checkpoint"]["root"].as_str().unwrap(), 63).into();
    cases.push(("root byte", v));
    let mut v = b.clone();
    v["anchor"]["tx_hash"] = later["anchor"]["tx_hash"].clone();
    cases.push(("another transaction", v));
    let mut v = b.clone();
    v["leaf"]["decoded"]["amount"] = "999999".into();
    cases.push(("decoded amount", v));
    let mut v = b.clone();
    v["anchor"]["chain_id"] = 1.into();
    cases.push(("chain id", v));
    cases.push(("later valid", later.clone()));
    cases
}

/// `epg audit verify`: whether it passed, and the checks it failed.
async fn cli_verdict(dir: &Path, bundle: &Value, rpc_url: &str) -> (bool, Vec<String>) {
    let file = dir.join(format!("bundle-{}.json", epg::ids::random_base62(8)));
    std::fs::write(&file, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["audit", "verify"])
        .arg(&file)
        .args(["--rpc-url", rpc_url, "--confirmations", "1"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect();
    (out.status.success(), failed)
}

#[tokio::test]
async fn the_dashboard_and_verify_work_in_a_browser() {
    let Some(browser) = chromium() else {
        eprintln!("dashboard_browser: no Chromium found (set EPG_CHROMIUM); skipped");
        return;
    };
    if !root().join("node_modules/playwright-core").exists() {
        eprintln!(
            "dashboard_browser: no node_modules/playwright-core (run scripts/setup); skipped"
        );
        return;
    }
    let anvil = common::anvil().await;
    let common::anchored::AnchoredBundles { bundle, later, .. } =
        common::anchored::two_checkpoints(&anvil).await;
    // The node settles and anchors on the same anvil, for the settlements page.
    let deployment = common::deploy_devnet(&anvil).await;
    let rpc = anvil.rpc_url();
    let app = common::spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
    })
    .await;
    let receiver = crate::webhooks_support::Receiver::start().await;
    create_user(&app, "admin@shop.test", Role::Admin).await;
    create_user(&app, "locked@shop.test", Role::Admin).await;
    create_user(&app, "analyst@shop.test", Role::Analyst).await;
    let payment = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 48_000, "currency": "usd", "customer": {"email": "buyer@x.test"}}),
        )
        .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap();
    json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await;

    let settled = json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;

    let screens = root().join("target/dashboard-screens");
    std::fs::create_dir_all(&screens).unwrap();
    let cases = cases(&bundle, &later);
    let scenario = json!({
        "base": app.address,
        "chromium": browser,
        "screens": screens,
        "secret_key": app.secret_key,
        "admin": {"email": "admin@shop.test", "password": PASSWORD},
        "locked": {"email": "locked@shop.test", "password": PASSWORD},
        "analyst": {"email": "analyst@shop.test", "password": PASSWORD},
        "invitee": {"email": "invitee@shop.test", "password": "invitee's own passphrase"},
        "receiver_url": receiver.url,
        "payment_id": id,
        "refund_amount": 30_000,
        "rpc_url": anvil.rpc_url(),
        "bundles": cases.iter().map(|(name, b)| json!({"name": name, "json": serde_json::to_string_pretty(b).unwrap()})).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.json");
    std::fs::write(&file, scenario.to_string()).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("node")
            .arg(root().join("tests/browser/dashboard.mjs"))
            .arg(&file)
            .current_dir(root())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run finishes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    assert_eq!(seen["after_password"], "/dashboard/enrol", "{seen}");
    assert_eq!(seen["qr_svg"], 1);
    assert!(
        seen["wrong_enrol_code"].as_str().unwrap().contains("wrong"),
        "{seen}"
    );
    assert_eq!(seen["recovery_codes"], 10);
    assert!(seen["home_balances"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["home_chart"].as_u64().unwrap() >= 1, "{seen}");
    assert!(
        seen["refund_without_code"]
            .as_str()
            .unwrap()
            .contains("Refund not made"),
        "{seen}"
    );
    assert_eq!(seen["refund_rows"], 1, "{seen}");
    assert_eq!(seen["csrf_forged_status"], 403);
    assert!(seen["feed_items"].as_u64().unwrap() >= 1);
    assert!(
        seen["console_errors"].as_array().unwrap().is_empty(),
        "CSP or script errors: {seen}"
    );
    assert!(
        seen["lockout_message"]
            .as_str()
            .unwrap()
            .contains("locked until"),
        "{seen}"
    );
    assert!(
        seen["locked_with_right_password"]
            .as_str()
            .unwrap()
            .contains("locked until")
    );
    assert_eq!(seen["analyst_refund_forms"], 0);
    assert_eq!(seen["analyst_refund_status"], 403);
    let actions: Vec<&str> = seen["audit_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for expected in [
        "user.enrol_totp",
        "session.code_failed",
        "payment.refund",
        "session.step_up_failed",
        "payment.export_csv",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }

    assert_eq!(seen["analyst_key_status"], 403, "{seen}");
    assert!(seen["settlement_rows"].as_u64().unwrap() >= 1, "{seen}");
    assert!(
        seen["settlement_anchor"]
            .as_str()
            .unwrap()
            .contains(settled["anchor"]["tx_hash"].as_str().unwrap()),
        "{seen}"
    );
    assert_eq!(seen["settlement_verify_link"], "/verify");
    // The invitation, accepted once, gave the role the admin chose.
    assert_eq!(seen["invitee_email"], "invitee@shop.test");
    assert_eq!(seen["invitee_after_accept"], "/dashboard/enrol");
    assert_eq!(
        seen["invitee_who"], "invitee@shop.test · developer",
        "{seen}"
    );
    assert_eq!(seen["invite_reused_status"], 404);
    // A webhook endpoint, an event's delivery with request and response,
    // and a redelivery the receiver got.
    assert!(
        seen["endpoint_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(seen["event_request_has_payment"], true, "{seen}");
    assert!(seen["attempt_rows"].as_u64().unwrap() >= 1, "{seen}");
    assert!(
        seen["redeliver_notice"]
            .as_str()
            .unwrap()
            .contains("Queued 1"),
        "{seen}"
    );
    let hooked = seen["hooked_payment"].as_str().unwrap().to_owned();
    receiver
        .wait_until("the delivery and its redelivery", |r| {
            r.iter()
                .filter(|d| String::from_utf8_lossy(&d.body).contains(&hooked))
                .count()
                >= 2
        })
        .await;
    // The key roll: a wrong code refused, a fresh one rolled the key.
    assert!(
        seen["roll_wrong_code"]
            .as_str()
            .unwrap()
            .contains("Key not rolled"),
        "{seen}"
    );
    let rolled = seen["rolled_key"].as_str().unwrap();
    assert!(rolled.starts_with("pk_test_"), "{seen}");
    let revoked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE merchant_id = $1 AND kind = 'publishable' AND revoked_at IS NOT NULL",
    )
    .bind(app.merchant_id.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(revoked, 1);

    // The CSV the browser downloaded has the API's rows.
    let api = json(
        app.get("/v1/payments?limit=100", &app.secret_key).await,
        200,
    )
    .await;
    let csv: Vec<&str> = seen["csv"]
        .as_str()
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .skip(1)
        .collect();
    let expected: Vec<String> = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| csv.iter().any(|l| l.starts_with(p["id"].as_str().unwrap())))
        .map(epg::dashboard::web::csv_record)
        .collect();
    assert_eq!(csv, expected);
    assert!(!csv.is_empty());

    // /verify and `epg audit verify` agree on every bundle.
    let verdicts = seen["verify"].as_array().unwrap();
    assert_eq!(verdicts.len(), cases.len());
    for ((name, bundle), page) in cases.iter().zip(verdicts) {
        let (cli_ok, cli_failed) = cli_verdict(dir.path(), bundle, &anvil.rpc_url()).await;
        let page_ok = page["verdict"].as_str().unwrap().starts_with("VERIFIED");
        let page_failed: Vec<String> = page["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(page_ok, cli_ok, "{name}: page {page} vs cli {cli_failed:?}");
        assert_eq!(page_failed, cli_failed, "{name}: page {page}");
        if *name == "valid" || *name == "later valid" {
            assert!(page_ok, "{name}: {page}");
            assert_eq!(page["checks"].as_array().unwrap().len(), 8);
        } else {
            assert!(!page_ok, "{name}: {page}");
        }
    }
    let log: Vec<String> = sqlx::query_scalar("SELECT action FROM dashboard_audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for expected in [
        "api_key.create_refused",
        "team.invite",
        "team.invite_accepted",
        "webhook_endpoint.create",
        "webhook.redeliver",
        "session.step_up_failed",
        "api_key.roll",
    ] {
        assert!(log.iter().any(|a| a == expected), "{expected} in {log:?}");
    }
    for shot in ["home.png", "payment.png", "settlements.png", "verify.png"] {
        assert!(
            screens.join(shot).metadata().unwrap().len() > 1000,
            "{shot}"
        );
    }
}
