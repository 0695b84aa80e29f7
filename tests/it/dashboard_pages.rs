//! The dashboard's other pages over HTTP, as a browser without script uses
//! them: API keys rolled with a fresh code (the old key stops working, the
//! new one works), a role refused and logged, an invitation accepted end
//! to end, a forced password change after a one-time password, webhook
//! endpoints created with a fresh code and an event redelivered, settings
//! behind step-up, dispute evidence, settlements, and a payment's ledger
//! postings found by source however old the payment is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{self, TestApp, json};
use crate::dashboard_support::{Client, PASSWORD, between, code, create_user, csrf};

use epg::dashboard::Role;
use serde_json::{Value, json};

async fn paid(app: &TestApp, amount: i64) -> Value {
    json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": amount, "currency": "usd", "confirm": true,
                    "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await,
        200,
    )
    .await
}

async fn audit(app: &TestApp) -> Vec<(String, Option<String>)> {
    sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT action, target FROM dashboard_audit_log ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

fn actions(log: &[(String, Option<String>)]) -> Vec<&str> {
    log.iter().map(|(a, _)| a.as_str()).collect()
}

/// A new user of `role`, signed in with two factors; their TOTP secret.
async fn signed_in(app: &TestApp, email: &str, role: Role) -> (Client, Vec<u8>) {
    create_user(app, email, role).await;
    let mut browser = Client::new(app);
    let secret = browser.enrol(email).await;
    (browser, secret)
}

#[tokio::test]
async fn keys_are_rolled_with_a_fresh_code_and_the_old_key_stops_working() {
    let app = common::spawn_app().await;
    let (mut dev, secret) = signed_in(&app, "dev@shop.test", Role::Developer).await;
    let page = dev.get("/dashboard/api-keys").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = csrf(&page.body);
    // The app's secret key: the first row listed of kind secret.
    let key_id = sqlx::query_scalar::<_, String>(
        "SELECT id FROM api_keys WHERE merchant_id = $1 AND kind = 'secret' AND revoked_at IS NULL",
    )
    .bind(app.merchant_id.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(page.body.contains(&key_id));

    // Without a code, or with a wrong one: refused, nothing changes.
    let path = format!("/dashboard/api-keys/{key_id}/roll");
    let refused = dev.post(&path, &[("csrf", &token), ("code", "")]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("Key not rolled"), "{}", refused.body);
    let wrong = dev
        .post(&path, &[("csrf", &token), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    json(app.get("/v1/account", &app.secret_key).await, 200).await;

    // A forged CSRF token: refused before anything else.
    let forged = dev
        .post(&path, &[("csrf", "forged"), ("code", &code(&secret, 0))])
        .await;
    assert_eq!(forged.status, 403);

    let rolled = dev
        .post(&path, &[("csrf", &token), ("code", &code(&secret, 0))])
        .await;
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    let new_key = between(&rolled.body, "<code id=\"new-key\">", "<")
        .unwrap()
        .to_owned();
    assert!(new_key.starts_with("sk_test_"), "{new_key}");
    // The old key is refused at once; the new one works.
    assert_eq!(
        app.get("/v1/account", &app.secret_key)
            .await
            .status()
            .as_u16(),
        401
    );
    json(app.get("/v1/account", &new_key).await, 200).await;
    // Shown once: the page read again does not show it.
    let again = dev.get("/dashboard/api-keys").await;
    assert!(!again.body.contains(&new_key));

    // A new publishable key, with the next code.
    let created = dev
        .post(
            "/dashboard/api-keys",
            &[
                ("csrf", &token),
                ("kind", "publishable"),
                ("code", &code(&secret, 1)),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let pk = between(&created.body, "<code id=\"new-key\">", "<").unwrap();
    assert!(pk.starts_with("pk_test_"), "{pk}");

    // Revoke (no code needed to take access away).
    let new_id = sqlx::query_scalar::<_, String>(
        "SELECT id FROM api_keys WHERE merchant_id = $1 AND kind = 'publishable' ORDER BY created_at DESC LIMIT 1",
    )
    .bind(app.merchant_id.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let revoked = dev
        .post(
            &format!("/dashboard/api-keys/{new_id}/revoke"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(revoked.location.as_deref(), Some("/dashboard/api-keys"));

    let log = audit(&app).await;
    let acts = actions(&log);
    for expected in [
        "session.step_up_failed",
        "api_key.roll",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(acts.contains(&expected), "{expected} in {acts:?}");
    }
    assert!(log.contains(&("api_key.roll".into(), Some(key_id))));
}

#[tokio::test]
async fn roles_are_enforced_on_the_server_and_refusals_are_logged() {
    let app = common::spawn_app().await;
    let (mut analyst, secret) = signed_in(&app, "analyst@shop.test", Role::Analyst).await;
    let (mut support, support_secret) = signed_in(&app, "support@shop.test", Role::Support).await;
    let key_id = sqlx::query_scalar::<_, String>(
        "SELECT id FROM api_keys WHERE merchant_id = $1 AND kind = 'secret'",
    )
    .bind(app.merchant_id.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();

    // Every page reads.
    for path in [
        "/dashboard/refunds",
        "/dashboard/disputes",
        "/dashboard/settlements",
        "/dashboard/webhooks",
        "/dashboard/api-keys",
        "/dashboard/team",
        "/dashboard/settings",
    ] {
        let page = analyst.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    // No forms to change anything are offered to an analyst.
    let keys = analyst.get("/dashboard/api-keys").await;
    assert!(!keys.body.contains("/roll"), "{}", keys.body);
    let token = csrf(&keys.body);

    // And posting them anyway is refused, even with a valid code.
    let roll = format!("/dashboard/api-keys/{key_id}/roll");
    let payout = "0x00000000000000000000000000000000000000aa".to_owned();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/dashboard/api-keys",
            vec![("kind", "secret".into()), ("code", code(&secret, 0))],
        ),
        (&roll, vec![("code", code(&secret, 0))]),
        (
            "/dashboard/webhooks",
            vec![
                ("url", "https://example.com/h".into()),
                ("enabled_events", "*".into()),
                ("code", code(&secret, 0)),
            ],
        ),
        (
            "/dashboard/team/invite",
            vec![
                ("email", "x@shop.test".into()),
                ("role", "admin".into()),
                ("code", code(&secret, 0)),
            ],
        ),
        (
            "/dashboard/settings/payout-address",
            vec![("address", payout), ("code", code(&secret, 0))],
        ),
        (
            "/dashboard/settings/risk",
            vec![("risk_threshold", "10".into())],
        ),
    ];
    for (path, fields) in &cases {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
        form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
        let refused = analyst.post(path, &form).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(refused.body.contains("may not"), "{}", refused.body);
    }
    // Support may refund but not touch keys.
    let token = support.token("/dashboard/api-keys").await;
    let refused = support
        .post(
            &format!("/dashboard/api-keys/{key_id}/roll"),
            &[("csrf", &token), ("code", &code(&support_secret, 0))],
        )
        .await;
    assert_eq!(refused.status, 403);
    json(app.get("/v1/account", &app.secret_key).await, 200).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE merchant_id = $1")
        .bind(app.merchant_id.as_str())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "no key was made");
    let risk: i16 = sqlx::query_scalar("SELECT risk_threshold FROM merchants WHERE id = $1")
        .bind(app.merchant_id.as_str())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(risk, 75);

    let log = audit(&app).await;
    let acts = actions(&log);
    for expected in [
        "api_key.create_refused",
        "api_key.roll_refused",
        "webhook_endpoint.create_refused",
        "team.invite_refused",
        "settings.payout_address_refused",
        "settings.risk_threshold_refused",
    ] {
        assert!(acts.contains(&expected), "{expected} in {acts:?}");
    }
    assert_eq!(
        acts.iter()
            .filter(|a| **a == "api_key.roll_refused")
            .count(),
        2
    );
}

#[tokio::test]
async fn an_invitation_is_accepted_once_and_the_invitee_enrols() {
    let app = common::spawn_app().await;
    let (mut admin, secret) = signed_in(&app, "admin@shop.test", Role::Admin).await;
    let token = admin.token("/dashboard/team").await;
    let no_code = admin
        .post(
            "/dashboard/team/invite",
            &[
                ("csrf", &token),
                ("email", "New@Shop.test"),
                ("role", "support"),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(no_code.status, 401, "{}", no_code.body);
    let invited = admin
        .post(
            "/dashboard/team/invite",
            &[
                ("csrf", &token),
                ("email", "New@Shop.test"),
                ("role", "support"),
                ("code", &code(&secret, 0)),
            ],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    let link = between(&invited.body, "<code id=\"invite-link\">", "<")
        .unwrap()
        .to_owned();
    let path = &link[link.find("/dashboard/invite/").unwrap()..];
    assert!(link.starts_with("http://127.0.0.1:"), "{link}");

    // The invitee: a fresh browser.
    let mut invitee = Client::new(&app);
    let form = invitee.get(path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("new@shop.test"));
    let token = csrf(&form.body);
    let short = invitee
        .post(
            path,
            &[
                ("csrf", &token),
                ("password", "short"),
                ("password_again", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    let form = invitee.get(path).await;
    let token = csrf(&form.body);
    let joined = invitee
        .post(
            path,
            &[
                ("csrf", &token),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        joined.location.as_deref(),
        Some("/dashboard/enrol"),
        "{joined:?}"
    );
    // The link works once.
    let used = Client::new(&app).get(path).await;
    assert_eq!(used.status, 404);
    // The invitee enrols and signs in with the role given.
    let mut again = Client::new(&app);
    again.enrol("new@shop.test").await;
    let home = again.get("/dashboard").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("new@shop.test · support"),
        "{}",
        home.body
    );
    let team = admin.get("/dashboard/team").await;
    assert!(team.body.contains("accepted"), "{}", team.body);

    let acts: Vec<String> = audit(&app).await.into_iter().map(|(a, _)| a).collect();
    assert!(acts.contains(&"team.invite".to_owned()), "{acts:?}");
    assert!(
        acts.contains(&"team.invite_accepted".to_owned()),
        "{acts:?}"
    );
    // Only digests are stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM dashboard_invites")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!link.contains(&hex::encode(&stored)));
}

#[tokio::test]
async fn a_one_time_password_must_be_replaced_before_anything_else() {
    let app = common::spawn_app().await;
    let dashboard = crate::dashboard_support::dashboard(&app);
    dashboard
        .create_user_one_time(
            &app.merchant_id,
            "first@shop.test",
            Role::Admin,
            "one-time-password-1234",
            &Default::default(),
            "test",
        )
        .await
        .unwrap();
    let mut browser = Client::new(&app);
    let page = browser
        .password("first@shop.test", "one-time-password-1234")
        .await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/enrol"));
    let enrol = browser.get("/dashboard/enrol").await;
    let secret = crate::dashboard_support::base32_decode(
        between(&enrol.body, "<code id=\"secret\">", "<").unwrap(),
    );
    let done = browser
        .post(
            "/dashboard/enrol",
            &[("csrf", &csrf(&enrol.body)), ("code", &code(&secret, -1))],
        )
        .await;
    assert_eq!(done.status, 200);
    // Every page sends to the password form.
    for path in ["/dashboard", "/dashboard/payments", "/dashboard/api-keys"] {
        assert_eq!(
            browser.get(path).await.location.as_deref(),
            Some("/dashboard/password"),
            "{path}"
        );
    }
    let form = browser.get("/dashboard/password").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let token = csrf(&form.body);
    let wrong = browser
        .post(
            "/dashboard/password",
            &[
                ("csrf", &token),
                ("current_password", "not it at all!!"),
                ("new_password", PASSWORD),
                ("new_password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let same = browser
        .post(
            "/dashboard/password",
            &[
                ("csrf", &token),
                ("current_password", "one-time-password-1234"),
                ("new_password", "one-time-password-1234"),
                ("new_password_again", "one-time-password-1234"),
            ],
        )
        .await;
    assert_eq!(same.status, 400, "{}", same.body);
    let changed = browser
        .post(
            "/dashboard/password",
            &[
                ("csrf", &token),
                ("current_password", "one-time-password-1234"),
                ("new_password", PASSWORD),
                ("new_password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        changed.location.as_deref(),
        Some("/dashboard"),
        "{changed:?}"
    );
    assert_eq!(browser.get("/dashboard").await.status, 200);
    // The one-time password no longer signs in; the new one does.
    let mut other = Client::new(&app);
    let old = other
        .password("first@shop.test", "one-time-password-1234")
        .await;
    assert_eq!(old.status, 401);
    let new = other.password("first@shop.test", PASSWORD).await;
    assert_eq!(new.location.as_deref(), Some("/dashboard/two-factor"));
    let acts: Vec<String> = audit(&app).await.into_iter().map(|(a, _)| a).collect();
    assert!(
        acts.contains(&"user.change_password".to_owned()),
        "{acts:?}"
    );
    assert!(
        acts.contains(&"user.change_password_failed".to_owned()),
        "{acts:?}"
    );
}

#[tokio::test]
async fn webhook_endpoints_need_a_fresh_code_and_events_are_redelivered() {
    let app = common::spawn_app().await;
    let receiver = crate::webhooks_support::Receiver::start().await;
    let (mut dev, secret) = signed_in(&app, "dev@shop.test", Role::Developer).await;
    let token = dev.token("/dashboard/webhooks").await;
    let url = receiver.url.clone();
    let no_code = dev
        .post(
            "/dashboard/webhooks",
            &[
                ("csrf", &token),
                ("url", &url),
                ("enabled_events", "payment.succeeded"),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(no_code.status, 401, "{}", no_code.body);
    let bad_url = dev
        .post(
            "/dashboard/webhooks",
            &[
                ("csrf", &token),
                ("url", "http://10.0.0.1/hook"),
                ("enabled_events", "payment.succeeded"),
                ("code", &code(&secret, 0)),
            ],
        )
        .await;
    assert_eq!(bad_url.status, 400, "{}", bad_url.body);
    let created = dev
        .post(
            "/dashboard/webhooks",
            &[
                ("csrf", &token),
                ("url", &url),
                ("enabled_events", "payment.succeeded"),
                ("code", &code(&secret, 1)),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let whsec = between(&created.body, "<code id=\"endpoint-secret\">", "<").unwrap();
    assert!(whsec.starts_with("whsec_"), "{whsec}");

    let payment = paid(&app, 2_500).await;
    receiver
        .wait_until("the first delivery", |r| !r.is_empty())
        .await;
    let event_id = sqlx::query_scalar::<_, String>(
        "SELECT id FROM events WHERE merchant_id = $1 AND type = 'payment.succeeded'",
    )
    .bind(app.merchant_id.as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // The receiver has the request before the worker records the attempt:
    // redeliver once the first delivery has ended, as a merchant looking at
    // its attempt would.
    deliveries_ended(&app, &event_id).await;
    let page = dev.get(&format!("/dashboard/events/{event_id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The request body and the attempt with the receiver's answer.
    assert!(page.body.contains(payment["id"].as_str().unwrap()));
    assert!(page.body.contains("data-delivery="), "{}", page.body);
    let redeliver = format!("/dashboard/events/{event_id}/redeliver");
    let csrf_only = [("csrf", token.as_str())];
    let redelivered = dev.post(&redeliver, &csrf_only).await;
    assert_eq!(redelivered.status, 200, "{}", redelivered.body);
    assert!(
        redelivered.body.contains("Queued 1 delivery"),
        "{}",
        redelivered.body
    );
    receiver
        .wait_until("the redelivery", |r| r.len() >= 2)
        .await;
    // Redelivering while an attempt is under way says so, and queues no
    // second delivery beside it.
    deliveries_ended(&app, &event_id).await;
    receiver.stall(true);
    let again = dev.post(&redeliver, &csrf_only).await;
    assert!(again.body.contains("Queued 1 delivery"), "{}", again.body);
    receiver
        .wait_until("the stalled attempt", |r| r.len() >= 3)
        .await;
    let under_way = dev.post(&redeliver, &csrf_only).await;
    assert_eq!(under_way.status, 200, "{}", under_way.body);
    assert!(
        under_way.body.contains("1 delivery(ies) under way already"),
        "{}",
        under_way.body
    );
    let log = audit(&app).await;
    assert!(log.contains(&("webhook.redeliver".into(), Some(event_id))));
    assert!(actions(&log).contains(&"webhook_endpoint.create"));
}

/// Waits until no delivery of `event_id` is pending (the receiver has a
/// request before the worker records its attempt).
async fn deliveries_ended(app: &common::TestApp, event_id: &str) {
    common::eventually("the deliveries to end", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE event_id = $1 AND status = 'pending'",
        )
        .bind(event_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn payout_settings_need_a_fresh_code_and_other_settings_an_admin() {
    let app = common::spawn_app().await;
    let (mut admin, secret) = signed_in(&app, "admin@shop.test", Role::Admin).await;
    let token = admin.token("/dashboard/settings").await;
    let address = "0x00000000000000000000000000000000000000aa";
    let no_code = admin
        .post(
            "/dashboard/settings/payout-address",
            &[("csrf", &token), ("address", address), ("code", "")],
        )
        .await;
    assert_eq!(no_code.status, 401, "{}", no_code.body);
    let account = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    assert!(account["payouts"]["crypto_address"].is_null());
    let bad = admin
        .post(
            "/dashboard/settings/payout-address",
            &[("csrf", &token), ("address", "0x12"), ("code", "")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let set = admin
        .post(
            "/dashboard/settings/payout-address",
            &[
                ("csrf", &token),
                ("address", address),
                ("code", &code(&secret, 0)),
            ],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let account = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    assert_eq!(account["payouts"]["crypto_address"], address);

    let bank = admin
        .post(
            "/dashboard/settings/bank-account",
            &[
                ("csrf", &token),
                ("currency", "EUR"),
                ("holder", "Shop GmbH"),
                ("iban", "DE89 3704 0044 0532 0130 00"),
                ("bic", "COBADEFFXXX"),
                ("code", &code(&secret, 1)),
            ],
        )
        .await;
    assert_eq!(bank.status, 200, "{}", bank.body);
    assert!(bank.body.contains("Shop GmbH"), "{}", bank.body);
    assert!(!bank.body.contains("370400440532013000"), "shown masked");

    // No code needed for methods and risk, only the role.
    let methods = admin
        .post(
            "/dashboard/settings/methods",
            &[("csrf", &token), ("method", "card"), ("method", "crypto")],
        )
        .await;
    assert_eq!(methods.status, 200, "{}", methods.body);
    let account = json(app.get("/v1/account", &app.secret_key).await, 200).await;
    let types: Vec<&str> = account["payment_method_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!types.contains(&"bank_transfer"), "{types:?}");
    assert!(types.contains(&"card"), "{types:?}");
    let risk = admin
        .post(
            "/dashboard/settings/risk",
            &[("csrf", &token), ("risk_threshold", "101")],
        )
        .await;
    assert_eq!(risk.status, 400, "{}", risk.body);
    let risk = admin
        .post(
            "/dashboard/settings/risk",
            &[("csrf", &token), ("risk_threshold", "60")],
        )
        .await;
    assert_eq!(risk.status, 200, "{}", risk.body);
    let acts: Vec<String> = audit(&app).await.into_iter().map(|(a, _)| a).collect();
    for expected in [
        "settings.payout_address",
        "settings.bank_account",
        "settings.payment_methods",
        "settings.risk_threshold",
    ] {
        assert!(
            acts.contains(&expected.to_owned()),
            "{expected} in {acts:?}"
        );
    }
}

#[tokio::test]
async fn dispute_evidence_is_saved_and_submitted_through_the_dispute_service() {
    let app = common::spawn_app().await;
    let (mut support, _) = signed_in(&app, "support@shop.test", Role::Support).await;
    let payment = paid(&app, 7_000).await;
    let dispute = json(
        app.post(
            "/v1/test/disputes",
            &app.secret_key,
            &json!({"payment": payment["id"]}),
        )
        .await,
        200,
    )
    .await;
    let id = dispute["id"].as_str().unwrap();
    let list = support.get("/dashboard/disputes").await;
    assert!(list.body.contains(id), "{}", list.body);
    let page = support.get(&format!("/dashboard/disputes/{id}")).await;
    assert!(page.body.contains("id=\"evidence\""), "{}", page.body);
    let token = csrf(&page.body);
    let draft = support
        .post(
            &format!("/dashboard/disputes/{id}/evidence"),
            &[
                ("csrf", &token),
                ("product_description", "A blue mug"),
                ("customer_name", ""),
                ("submit", "false"),
            ],
        )
        .await;
    assert_eq!(draft.status, 200, "{}", draft.body);
    let api = json(
        app.get(&format!("/v1/disputes/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(api["status"], "needs_response");
    assert_eq!(
        api["evidence"],
        json!({"product_description": "A blue mug"})
    );
    let submitted = support
        .post(
            &format!("/dashboard/disputes/{id}/evidence"),
            &[
                ("csrf", &token),
                ("receipt", "Order 42"),
                ("submit", "true"),
            ],
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let api = json(
        app.get(&format!("/v1/disputes/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(api["status"], "under_review");
    assert_eq!(api["evidence"]["receipt"], "Order 42");
    // Under review: no form, and a post is refused by the service.
    let late = support
        .post(
            &format!("/dashboard/disputes/{id}/evidence"),
            &[("csrf", &token), ("receipt", "x"), ("submit", "true")],
        )
        .await;
    assert_eq!(late.status, 400, "{}", late.body);
    // The payment's page links the dispute and shows its withdrawal.
    let detail = support
        .get(&format!(
            "/dashboard/payments/{}",
            payment["id"].as_str().unwrap()
        ))
        .await;
    assert!(detail.body.contains(&format!("/dashboard/disputes/{id}")));
    let postings = between(&detail.body, "id=\"postings\"", "</table>").unwrap();
    assert!(postings.contains("-70.00 USD"), "{postings}");
    // Accepting it is the API's close: lost.
    let closed = support
        .post(
            &format!("/dashboard/disputes/{id}/close"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(
        closed.location.as_deref(),
        Some(format!("/dashboard/disputes/{id}").as_str())
    );
    let api = json(
        app.get(&format!("/v1/disputes/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(api["status"], "lost");
    let acts: Vec<String> = audit(&app).await.into_iter().map(|(a, _)| a).collect();
    assert!(acts.contains(&"dispute.close".to_owned()));
    assert!(acts.contains(&"dispute.save_evidence".to_owned()));
    assert!(acts.contains(&"dispute.submit_evidence".to_owned()));
}

#[tokio::test]
async fn a_payments_postings_are_found_by_source_however_old() {
    let app = common::spawn_app().await;
    let (mut admin, _) = signed_in(&app, "admin@shop.test", Role::Admin).await;
    let first = paid(&app, 1_234).await;
    let id = first["id"].as_str().unwrap();
    let refund = json(
        app.post(
            "/v1/refunds",
            &app.secret_key,
            &json!({"payment": id, "amount": 200}),
        )
        .await,
        200,
    )
    .await;
    // More than a page of later balance transactions (one card paying
    // this often would trip the velocity checks).
    epg::merchants::MerchantStore::new(app.pool.clone())
        .set_risk_threshold(&app.merchant_id, 100)
        .await
        .unwrap();
    for _ in 0..101 {
        paid(&app, 100).await;
    }
    let listed = json(
        app.get("/v1/balance_transactions?limit=100", &app.secret_key)
            .await,
        200,
    )
    .await;
    assert!(
        !listed.to_string().contains(id),
        "the payment is beyond the latest 100"
    );
    let page = admin.get(&format!("/dashboard/payments/{id}")).await;
    assert_eq!(page.status, 200);
    let postings = between(&page.body, "id=\"postings\"", "</table>").unwrap();
    assert!(postings.contains("12.34 USD"), "{postings}");
    assert!(postings.contains("-2.00 USD"), "{postings}");
    assert!(!postings.contains("1.00 USD"), "other payments: {postings}");
    assert_eq!(postings.matches("<tr>").count(), 1 + 2, "{postings}");
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));

    // The ledger read itself: another merchant's sources give nothing.
    let mut conn = app.pool.acquire().await.unwrap();
    let other = epg::ids::MerchantId::generate();
    let none = epg::ledger::transactions_of_sources(&mut conn, &other, &[id])
        .await
        .unwrap();
    assert!(none.is_empty());
    let mine = epg::ledger::transactions_of_sources(&mut conn, &app.merchant_id, &[id])
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].source.as_deref(), Some(id));
}

#[tokio::test]
async fn settlements_show_payouts_checkpoint_and_a_verify_link() {
    let anvil = common::anvil().await;
    let deployment = common::deploy_devnet(&anvil).await;
    let rpc = anvil.rpc_url();
    let app = common::spawn_app_with(move |config| {
        config.settlement.anchor_rpc_url = rpc;
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(epg::devnet::anvil::DEV_KEY_0.to_owned());
    })
    .await;
    let (mut analyst, _) = signed_in(&app, "analyst@shop.test", Role::Analyst).await;
    paid(&app, 5_000).await;
    let settled = json(
        app.post("/v1/test/settlements/run", &app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    let id = settled["id"].as_str().unwrap();
    let list = analyst.get("/dashboard/settlements").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(id), "{}", list.body);
    let page = analyst.get(&format!("/dashboard/settlements/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"checkpoint\""));
    assert!(page.body.contains("href=\"/verify\""));
    assert!(page.body.contains("id=\"payouts\""));
    assert!(page.body.contains("proof.json"), "{}", page.body);
    assert!(
        page.body
            .contains(settled["anchor"]["tx_hash"].as_str().unwrap()),
        "the anchor transaction: {}",
        page.body
    );
    let refunds = analyst.get("/dashboard/refunds").await;
    assert_eq!(refunds.status, 200);
}
