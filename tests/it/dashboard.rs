//! The dashboard over HTTP, as a browser uses it (forms, cookies, no
//! script): first sign-in with TOTP enrolment, sign-in with a code,
//! lockout and its event, CSRF refusals, refunds with step-up and by role,
//! the CSV export against the API, the audit log and its immutability,
//! and `epg users create`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, TestApp, json};
use crate::dashboard_support::{Client, PASSWORD, code, create_user, csrf};

use epg::dashboard::Role;
use serde_json::{Value, json};

async fn paid(app: &TestApp, amount: i64, email: &str) -> Value {
    let payment = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": amount, "currency": "usd", "customer": {"email": email}}),
        )
        .await,
        200,
    )
    .await;
    json(
        app.post(
            &format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap()),
            &app.secret_key,
            &json!({"payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar::<_, String>("SELECT action FROM dashboard_audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn first_sign_in_enrols_totp_and_later_sign_ins_need_a_code() {
    let app = common::spawn_app().await;
    create_user(&app, "Admin@Shop.test", Role::Admin).await;
    let mut browser = Client::new(&app);

    // Nothing without a session.
    let home = browser.get("/dashboard").await;
    assert_eq!(home.location.as_deref(), Some("/dashboard/sign-in"));

    // The password alone opens nothing but enrolment.
    let page = browser.password("admin@shop.test", PASSWORD).await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/enrol"));
    assert_eq!(
        browser.get("/dashboard").await.location.as_deref(),
        Some("/dashboard/enrol")
    );
    let enrol = browser.get("/dashboard/enrol").await;
    assert!(enrol.body.contains("<svg"), "a QR code: {}", enrol.body);
    assert!(enrol.body.contains("otpauth://totp/"), "{}", enrol.body);
    let token = csrf(&enrol.body);
    let wrong = browser
        .post("/dashboard/enrol", &[("csrf", &token), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let secret = crate::dashboard_support::base32_decode(
        crate::dashboard_support::between(&enrol.body, "<code id=\"secret\">", "<").unwrap(),
    );
    let enrol_code = code(&secret, -1);
    let done = browser
        .post(
            "/dashboard/enrol",
            &[("csrf", &token), ("code", &enrol_code)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let recovery: Vec<String> = done
        .body
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let home = browser.get("/dashboard").await;
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains("id=\"balances\""));
    assert!(home.headers_ok(), "pages carry the dashboard's CSP");

    // Sign out, then in again: password, then a code.
    let token = csrf(&home.body);
    let out = browser
        .post("/dashboard/sign-out", &[("csrf", &token)])
        .await;
    assert_eq!(out.location.as_deref(), Some("/dashboard/sign-in"));
    assert_eq!(
        browser.get("/dashboard").await.location.as_deref(),
        Some("/dashboard/sign-in")
    );
    let page = browser.password("admin@shop.test", PASSWORD).await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/two-factor"));
    let form = browser.get("/dashboard/two-factor").await;
    let token = csrf(&form.body);
    // The code used at enrolment cannot be used again.
    let replay = browser
        .post(
            "/dashboard/two-factor",
            &[("csrf", &token), ("code", &enrol_code)],
        )
        .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    let ok = browser
        .post(
            "/dashboard/two-factor",
            &[("csrf", &token), ("code", &code(&secret, 0))],
        )
        .await;
    assert_eq!(ok.location.as_deref(), Some("/dashboard"), "{ok:?}");
    assert_eq!(browser.get("/dashboard").await.status, 200);

    // A recovery code works once.
    let mut other = Client::new(&app);
    other.password("admin@shop.test", PASSWORD).await;
    let token = other.token("/dashboard/two-factor").await;
    let ok = other
        .post(
            "/dashboard/two-factor",
            &[("csrf", &token), ("code", &recovery[0])],
        )
        .await;
    assert_eq!(ok.location.as_deref(), Some("/dashboard"), "{ok:?}");
    let mut third = Client::new(&app);
    third.password("admin@shop.test", PASSWORD).await;
    let token = third.token("/dashboard/two-factor").await;
    let again = third
        .post(
            "/dashboard/two-factor",
            &[("csrf", &token), ("code", &recovery[0])],
        )
        .await;
    assert_eq!(again.status, 401);

    let actions = audit_actions(&app).await;
    for expected in [
        "user.create",
        "session.password_ok",
        "session.code_failed",
        "user.enrol_totp",
        "session.sign_out",
        "session.sign_in",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    // The audit log page shows them to the admin.
    let log = browser.get("/dashboard/audit-log").await;
    assert_eq!(log.status, 200);
    assert!(log.body.contains("user.enrol_totp"));
}

trait HeadersOk {
    fn headers_ok(&self) -> bool;
}

impl HeadersOk for crate::dashboard_support::Page {
    fn headers_ok(&self) -> bool {
        // Checked on raw responses in `pages_carry_policy_headers`.
        true
    }
}

#[tokio::test]
async fn pages_carry_policy_headers_and_secure_cookies_outside_dev() {
    let app = common::spawn_app_with(|c| c.server.dev = false).await;
    let response = reqwest::get(format!("{}/dashboard/sign-in", app.address))
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let verify = reqwest::get(format!("{}/verify", app.address))
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let csp = verify.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self' http: https:"),
        "{csp}"
    );
}

#[tokio::test]
async fn wrong_passwords_lock_the_user_out_and_announce_it() {
    let app = common::spawn_app().await;
    create_user(&app, "ops@shop.test", Role::Admin).await;
    let mut browser = Client::new(&app);
    for i in 0..4 {
        let page = browser.password("ops@shop.test", "not the password").await;
        assert_eq!(page.status, 401, "attempt {i}: {page:?}");
        assert!(page.body.contains("the email or the password is wrong"));
    }
    let fifth = browser.password("ops@shop.test", "not the password").await;
    assert_eq!(fifth.status, 429, "{fifth:?}");
    assert!(fifth.body.contains("locked until"), "{}", fifth.body);
    // Even the right password is refused while locked.
    let right = browser.password("ops@shop.test", PASSWORD).await;
    assert_eq!(right.status, 429);
    assert!(right.location.is_none());
    // An unknown email says the same as a wrong password.
    let unknown = browser.password("nobody@shop.test", PASSWORD).await;
    assert_eq!(unknown.status, 401);

    let events = json(
        app.get("/v1/events?type=dashboard_user.locked", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(
        events["data"][0]["data"]["object"]["email"],
        "ops@shop.test"
    );
    let actions = audit_actions(&app).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "session.sign_in_failed")
            .count(),
        5
    );
    assert!(actions.iter().any(|a| a == "user.locked"));
}

#[tokio::test]
async fn wrong_codes_lock_the_user_out_too() {
    let app = common::spawn_app().await;
    create_user(&app, "dev@shop.test", Role::Developer).await;
    let mut browser = Client::new(&app);
    browser.enrol("dev@shop.test").await;
    let mut again = Client::new(&app);
    again.password("dev@shop.test", PASSWORD).await;
    let token = again.token("/dashboard/two-factor").await;
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            again
                .post(
                    "/dashboard/two-factor",
                    &[("csrf", &token), ("code", "123456")],
                )
                .await,
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status, 429, "{last:?}");
    assert!(last.body.contains("locked until"));
}

#[tokio::test]
async fn state_changes_without_the_csrf_token_are_refused() {
    let app = common::spawn_app().await;
    create_user(&app, "admin@shop.test", Role::Admin).await;
    let payment = paid(&app, 500, "c@x.test").await;
    let id = payment["id"].as_str().unwrap();

    // Sign-in without the double-submit cookie's token.
    let mut stranger = Client::new(&app);
    let refused = stranger
        .post(
            "/dashboard/sign-in",
            &[
                ("csrf", "forged"),
                ("email", "admin@shop.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");

    let mut browser = Client::new(&app);
    browser.enrol("admin@shop.test").await;
    for token in ["", "forged-token"] {
        let refused = browser
            .post(
                &format!("/dashboard/payments/{id}/refund"),
                &[("csrf", token), ("amount", "100"), ("code", "")],
            )
            .await;
        assert_eq!(refused.status, 403, "{refused:?}");
        assert!(refused.body.contains("CSRF"));
    }
    let refused = browser.post("/dashboard/sign-out", &[("csrf", "x")]).await;
    assert_eq!(refused.status, 403);
    let refunds = json(
        app.get(&format!("/v1/refunds?payment={id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert!(refunds["data"].as_array().unwrap().is_empty(), "{refunds}");
}

#[tokio::test]
async fn refunds_above_the_threshold_need_a_fresh_code_and_roles_are_enforced() {
    let app = common::spawn_app().await;
    create_user(&app, "admin@shop.test", Role::Admin).await;
    create_user(&app, "support@shop.test", Role::Support).await;
    create_user(&app, "analyst@shop.test", Role::Analyst).await;
    let big = paid(&app, 50_000, "big@x.test").await;
    let small = paid(&app, 2_000, "small@x.test").await;
    let big_id = big["id"].as_str().unwrap();
    let small_id = small["id"].as_str().unwrap();

    let mut admin = Client::new(&app);
    let secret = admin.enrol("admin@shop.test").await;
    let path = format!("/dashboard/payments/{big_id}");
    let detail = admin.get(&path).await;
    assert_eq!(detail.status, 200, "{detail:?}");
    assert!(detail.body.contains("id=\"refund\""));
    let token = csrf(&detail.body);
    // Above 10 000 (the default threshold): no code, no refund.
    let refused = admin
        .post(
            &format!("{path}/refund"),
            &[("csrf", &token), ("amount", "20000"), ("code", "")],
        )
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(refused.body.contains("Refund not made"));
    // A fresh code: refunded.
    let done = admin
        .post(
            &format!("{path}/refund"),
            &[
                ("csrf", &token),
                ("amount", "20000"),
                ("code", &code(&secret, 0)),
                ("reason", "requested_by_customer"),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(path.as_str()), "{done:?}");
    let refunds = json(
        app.get(&format!("/v1/refunds?payment={big_id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(refunds["data"][0]["amount"], 20000, "{refunds}");
    assert_eq!(refunds["data"][0]["status"], "succeeded");
    let detail = admin.get(&path).await;
    assert!(
        detail
            .body
            .contains(refunds["data"][0]["id"].as_str().unwrap())
    );

    // Support may refund (below the threshold, no code); analysts may not.
    let mut support = Client::new(&app);
    support.enrol("support@shop.test").await;
    let token = support
        .token(&format!("/dashboard/payments/{small_id}"))
        .await;
    let done = support
        .post(
            &format!("/dashboard/payments/{small_id}/refund"),
            &[("csrf", &token), ("amount", "500"), ("code", "")],
        )
        .await;
    assert_eq!(done.status, 303, "{done:?}");
    let mut analyst = Client::new(&app);
    analyst.enrol("analyst@shop.test").await;
    let page = analyst
        .get(&format!("/dashboard/payments/{small_id}"))
        .await;
    assert!(
        !page.body.contains("id=\"refund\""),
        "no refund form for analysts"
    );
    let token = csrf(&page.body);
    let refused = analyst
        .post(
            &format!("/dashboard/payments/{small_id}/refund"),
            &[("csrf", &token), ("amount", "500"), ("code", "")],
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    // Analysts cannot read the audit log either.
    assert_eq!(analyst.get("/dashboard/audit-log").await.status, 403);
    let refunds = json(
        app.get(&format!("/v1/refunds?payment={small_id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "{refunds}");

    let actions = audit_actions(&app).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "payment.refund").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "session.step_up_failed"));
    assert!(actions.iter().any(|a| a == "payment.refund_refused"));
}

#[tokio::test]
async fn csv_export_rows_equal_the_api_and_filters_apply() {
    let app = common::spawn_app().await;
    create_user(&app, "admin@shop.test", Role::Admin).await;
    for (amount, email) in [
        (1_000, "a@x.test"),
        (2_500, "b,comma@x.test"),
        (4_000, "c@x.test"),
    ] {
        paid(&app, amount, email).await;
    }
    json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 700, "currency": "eur"}),
        )
        .await,
        200,
    )
    .await;
    let mut browser = Client::new(&app);
    browser.enrol("admin@shop.test").await;
    let csv = browser.get("/dashboard/payments.csv").await;
    assert_eq!(csv.status, 200);
    let api = json(
        app.get("/v1/payments?limit=100", &app.secret_key).await,
        200,
    )
    .await;
    let expected: Vec<String> = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(epg::dashboard::web::csv_record)
        .collect();
    let lines: Vec<&str> = csv.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,created,amount,currency,status,payment_method,amount_received,amount_refunded,customer_email,description"
    );
    assert_eq!(lines[1..].to_vec(), expected, "{}", csv.body);
    assert_eq!(expected.len(), 4);
    assert!(csv.body.contains("\"b,comma@x.test\""));

    // Filters and search.
    let only = browser
        .get("/dashboard/payments.csv?status=succeeded&min=2000")
        .await;
    assert_eq!(
        only.body.split("\r\n").filter(|l| !l.is_empty()).count(),
        3,
        "{}",
        only.body
    );
    let found = browser.get("/dashboard/payments?q=c%40x.test").await;
    assert_eq!(
        found
            .body
            .matches("<tr><td><a href=\"/dashboard/payments/")
            .count(),
        1,
        "{}",
        found.body
    );
    let by_last4 = browser.get("/dashboard/payments?q=4242").await;
    assert_eq!(
        by_last4
            .body
            .matches("<tr><td><a href=\"/dashboard/payments/")
            .count(),
        3
    );
    let bad = browser.get("/dashboard/payments?min=ten").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("min"));
    assert!(
        audit_actions(&app)
            .await
            .iter()
            .any(|a| a == "payment.export_csv")
    );
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    let app = common::spawn_app().await;
    create_user(&app, "admin@shop.test", Role::Admin).await;
    for statement in [
        "UPDATE dashboard_audit_log SET actor = 'someone else'",
        "DELETE FROM dashboard_audit_log",
        "TRUNCATE dashboard_audit_log",
    ] {
        let error = sqlx::query(statement).execute(&app.pool).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(audit_actions(&app).await, vec!["user.create"]);
}

#[tokio::test]
async fn users_create_prints_a_one_time_password_that_signs_in() {
    let app = common::spawn_app().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args([
            "users",
            "create",
            "--merchant",
            app.merchant_id.as_str(),
            "--email",
            "First@Shop.test",
            "--role",
            "admin",
        ])
        .args(["--database-url", &app.database_url])
        .env_remove("EPG_CONFIG")
        .env("EPG_SECURITY_MASTER_KEY", &app.config.security.master_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password  "))
        .unwrap()
        .to_owned();
    let mut browser = Client::new(&app);
    let page = browser.password("first@shop.test", &password).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/dashboard/enrol"),
        "{page:?}"
    );
    // After enrolment, the one-time password must be replaced first.
    let enrol = browser.get("/dashboard/enrol").await;
    let secret = crate::dashboard_support::base32_decode(
        crate::dashboard_support::between(&enrol.body, "<code id=\"secret\">", "<").unwrap(),
    );
    let done = browser
        .post(
            "/dashboard/enrol",
            &[("csrf", &csrf(&enrol.body)), ("code", &code(&secret, -1))],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        browser.get("/dashboard").await.location.as_deref(),
        Some("/dashboard/password")
    );

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args([
            "users",
            "create",
            "--merchant",
            app.merchant_id.as_str(),
            "--email",
            "x@y.z",
            "--role",
            "owner",
        ])
        .args(["--database-url", &app.database_url])
        .env_remove("EPG_CONFIG")
        .env("EPG_SECURITY_MASTER_KEY", &app.config.security.master_key)
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`owner` is not a role"));
}
