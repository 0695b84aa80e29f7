//! Bank rails end to end, through the `epg` binary and the API: three
//! bank-transfer payments paid by one camt.053 (exact, short, garbled
//! reference), the same statement again, an overlapping camt.054, the
//! reconciliation desk, a payout file validated against the pain.001 XSD,
//! a pain.002 rejection, the payout confirmed by a statement, a bank
//! return, and a malformed file refused. After each step the ledger checks
//! clean and `epg reconcile bank` agrees with the statements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, OPERATOR_TOKEN, TestApp, json};
use serde_json::{Value, json};

const EPG: &str = env!("CARGO_BIN_EXE_epg");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/iso20022");
const IBAN: &str = "DE89370400440532013000";

async fn node() -> TestApp {
    common::spawn_app_with(|config| {
        config.processors.bank_transfer = Some(epg::methods::Processor::Iso20022);
        config.bank.accounts = vec![epg::bank::config::AccountConfig {
            id: "main_eur".into(),
            holder: "E-PG Test Gateway".into(),
            currency: "eur".into(),
            iban: Some(IBAN.into()),
            bic: Some("COBADEFFXXX".into()),
            routing_number: None,
            account_number: None,
            collection: true,
            payout: true,
        }];
    })
    .await
}

fn epg(app: &TestApp, args: &[&str]) -> Output {
    Command::new(EPG)
        .args(args)
        .env("EPG_DATABASE_URL", &app.database_url)
        .env("EPG_SECURITY_MASTER_KEY", &app.config.security.master_key)
        .env_remove("EPG_CONFIG")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn fixture(name: &str, values: &[(&str, &str)]) -> String {
    let mut xml = std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap();
    for (key, value) in values {
        xml = xml.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(!xml.contains("{{"), "unfilled placeholder in {name}");
    xml
}

/// `xmllint --schema` of `xml` against the committed XSD.
fn assert_valid(xml: &str, schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.xml");
    std::fs::write(&path, xml).unwrap();
    let output = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(Path::new(FIXTURES).join(schema))
        .arg(&path)
        .output()
        .expect("xmllint (Debian libxml2-utils; scripts/setup installs it)");
    assert!(
        output.status.success(),
        "{schema}: {}\n{xml}",
        text(&output)
    );
}

fn write(dir: &Path, name: &str, xml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

fn import(app: &TestApp, path: &Path) -> Output {
    epg(app, &["bank", "import", path.to_str().unwrap()])
}

fn assert_books_clean(app: &TestApp) {
    let check = epg(app, &["ledger", "check"]);
    assert!(check.status.success(), "ledger check: {}", text(&check));
    let reconcile = epg(
        app,
        &[
            "reconcile",
            "bank",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
        ],
    );
    assert!(
        reconcile.status.success(),
        "reconcile bank: {}",
        text(&reconcile)
    );
    assert!(
        text(&reconcile).contains("no difference"),
        "{}",
        text(&reconcile)
    );
}

async fn bank_payment(app: &TestApp, amount: i64) -> (String, String) {
    let payment = json(
        app.post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": amount, "currency": "eur", "payment_method_types": ["bank_transfer"]}),
        )
        .await,
        200,
    )
    .await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let confirmed = json(
        app.post(
            &format!("/v1/payments/{id}/confirm"),
            &app.secret_key,
            &json!({"payment_method": {"type": "bank_transfer"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "processing", "{confirmed}");
    let action = &confirmed["next_action"];
    assert_eq!(action["iban"], IBAN, "{action}");
    assert_eq!(action["amount"], amount);
    let reference = action["reference"].as_str().unwrap().to_owned();
    assert!(
        epg::bank::rf::CreditorReference::parse(&reference).is_some(),
        "{reference}"
    );
    (id, reference)
}

async fn status(app: &TestApp, id: &str) -> Value {
    json(
        app.get(&format!("/v1/payments/{id}"), &app.secret_key)
            .await,
        200,
    )
    .await
}

async fn exceptions(app: &TestApp, query: &str) -> Vec<Value> {
    let list = json(
        app.get(
            &format!("/v1/reconciliation/exceptions?{query}"),
            OPERATOR_TOKEN,
        )
        .await,
        200,
    )
    .await;
    list["data"].as_array().unwrap().clone()
}

async fn transfer(app: &TestApp) -> (String, i64, String, String) {
    sqlx::query_as(
        r#"SELECT t.id, t.amount, f.message_id, f.name FROM bank_transfers_out t
             JOIN bank_files f ON f.id = t.file_id
            WHERE t.status = 'in_transit' ORDER BY t.created_at DESC LIMIT 1"#,
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn settle(app: &TestApp) {
    let log = epg::transparency::TransparencyLog::new(epg::transparency::origin_for_anchor(
        31337,
        alloy::primitives::Address::ZERO,
    ))
    .unwrap();
    epg::settlement::run(
        &app.pool,
        &log,
        &app.merchant_id,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap()
    .expect("something to settle");
}

#[tokio::test]
async fn statements_pay_payments_once_and_payout_files_round_trip_through_the_bank() {
    let app = node().await;
    let dir = tempfile::tempdir().unwrap();
    let (exact, ref_exact) = bank_payment(&app, 1000).await;
    let (short, ref_short) = bank_payment(&app, 2000).await;
    let (garbled, ref_garbled) = bank_payment(&app, 3000).await;
    // One character of the third reference is wrong: its check digits fail.
    let mut wrong = ref_garbled.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '7' { '8' } else { '7' });

    // 1. The statement: exact, short, garbled.
    let statement = fixture(
        "camt053_three_payments.xml",
        &[
            ("REF_EXACT", &ref_exact),
            ("REF_SHORT", &ref_short),
            ("REF_GARBLED", &wrong),
        ],
    );
    assert_valid(&statement, "camt.053.001.08.xsd");
    let path = write(dir.path(), "stmt1.xml", &statement);
    let out = import(&app, &path);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("2 booked, 0 already booked"),
        "{}",
        text(&out)
    );
    assert_eq!(status(&app, &exact).await["status"], "succeeded");
    assert_eq!(status(&app, &short).await["status"], "processing");
    assert_eq!(status(&app, &garbled).await["status"], "processing");
    let open = exceptions(&app, "status=open").await;
    let kinds: Vec<&str> = open.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{open:?}");
    assert!(
        kinds.contains(&"underpaid") && kinds.contains(&"unmatched_credit"),
        "{kinds:?}"
    );
    assert_books_clean(&app);

    // 2. The same statement again books nothing.
    let path = write(dir.path(), "stmt1-again.xml", &statement);
    let out = import(&app, &path);
    assert!(
        text(&out).contains("0 booked, 2 already booked"),
        "{}",
        text(&out)
    );
    assert_eq!(exceptions(&app, "status=open").await.len(), 2);
    assert_books_clean(&app);

    // 3. The camt.054 repeats one entry and brings the rest of the short
    //    payment, its reference in lower case with spaces; a pending entry
    //    is not booked.
    let loose = epg::bank::rf::CreditorReference::parse(&ref_short)
        .unwrap()
        .grouped()
        .to_lowercase();
    let notification = fixture(
        "camt054_overlap.xml",
        &[("REF_EXACT", &ref_exact), ("REF_SHORT_LOOSE", &loose)],
    );
    assert_valid(&notification, "camt.054.001.08.xsd");
    let out = import(&app, &write(dir.path(), "ntf.xml", &notification));
    assert!(
        text(&out).contains("1 booked, 1 already booked, 1 pending"),
        "{}",
        text(&out)
    );
    assert_eq!(status(&app, &short).await["status"], "succeeded");
    let open = exceptions(&app, "status=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["type"], "unmatched_credit");
    assert_eq!(open[0]["counterparty"]["account"], "NL91 **** 4300");
    assert_books_clean(&app);

    // 4. The desk: the unmatched credit is the garbled payment's, but 1.00
    //    short; the merchant accepts it short.
    let unmatched = open[0]["id"].as_str().unwrap();
    let merchant_view = app
        .get(
            "/v1/reconciliation/exceptions?type=unmatched_credit",
            &app.secret_key,
        )
        .await;
    assert_eq!(
        json(merchant_view, 200).await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let assigned = json(
        app.post(
            &format!("/v1/reconciliation/exceptions/{unmatched}/assign"),
            OPERATOR_TOKEN,
            &json!({"payment": garbled}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(assigned["resolution"]["action"], "assigned");
    let underpaid = exceptions(&app, &format!("status=open&payment={garbled}")).await;
    assert_eq!(underpaid.len(), 1);
    assert_eq!(underpaid[0]["type"], "underpaid");
    assert_eq!(underpaid[0]["amount"], 2900);
    let id = underpaid[0]["id"].as_str().unwrap();
    let no_reason = app
        .post(
            &format!("/v1/reconciliation/exceptions/{id}/write_off"),
            &app.secret_key,
            &json!({"reason": " "}),
        )
        .await;
    assert_eq!(json(no_reason, 400).await["error"]["param"], "reason");
    // 500 characters, counted as characters (this one is 1,438 bytes).
    let reason = format!("customer paid 29.00 as agreed; {}", "确".repeat(469));
    let too_long = app
        .post(
            &format!("/v1/reconciliation/exceptions/{id}/write_off"),
            &app.secret_key,
            &json!({"reason": format!("{reason}.")}),
        )
        .await;
    assert_eq!(json(too_long, 400).await["error"]["param"], "reason");
    let accepted = json(
        app.post(
            &format!("/v1/reconciliation/exceptions/{id}/write_off"),
            &app.secret_key,
            &json!({"reason": reason}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(accepted["status"], "resolved");
    let paid = status(&app, &garbled).await;
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_received"], 2900);
    assert_books_clean(&app);

    // 5. A payout file, rejected by the bank, then paid.
    let out = epg(
        &app,
        &[
            "bank",
            "set-merchant-account",
            "--merchant",
            app.merchant_id.as_str(),
            "--currency",
            "eur",
            "--holder",
            "Test Merchant GmbH",
            "--iban",
            "FR1420041010050500013M02606",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("FR14 **** 2606"), "{}", text(&out));
    settle(&app).await;
    let outbox = dir.path().join("outbox");
    let out = epg(
        &app,
        &[
            "bank",
            "payouts",
            "export",
            "--out",
            outbox.to_str().unwrap(),
            "--date",
            "2026-03-03",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (e2e, amount, message_id, name) = transfer(&app).await;
    let pain001 = std::fs::read_to_string(outbox.join(&name)).unwrap();
    assert_valid(&pain001, "pain.001.001.09.xsd");
    assert!(pain001.contains(&e2e) && pain001.contains("FR1420041010050500013M02606"));
    let rejection = fixture(
        "pain002_rejected.xml",
        &[("MSG_ID", &message_id), ("E2E", &e2e)],
    );
    assert_valid(&rejection, "pain.002.001.11.xsd");
    let out = import(&app, &write(dir.path(), "psr.xml", &rejection));
    assert!(text(&out).contains("rejected (AC04)"), "{}", text(&out));
    let failed: String = sqlx::query_scalar("SELECT p.status FROM payouts p JOIN bank_transfers_out t ON t.payout_id = p.id WHERE t.id = $1")
        .bind(&e2e)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failed, "failed");
    assert_books_clean(&app);
    // The next batch pays the money that came back.
    settle(&app).await;
    let out = epg(
        &app,
        &[
            "bank",
            "payouts",
            "export",
            "--out",
            outbox.to_str().unwrap(),
            "--date",
            "2026-03-04",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (e2e, again, _, _) = transfer(&app).await;
    assert_eq!(again, amount);

    // 6. The statement with the payout's debit and a return of the exact
    //    payment.
    let closing = 105_400 + 500 - amount - 1000;
    let statement = fixture(
        "camt053_return.xml",
        &[
            ("CLOSING", &epg::bank::decimal(i128::from(closing), 2)),
            ("PAYOUT", &epg::bank::decimal(i128::from(amount), 2)),
            ("E2E", &e2e),
            ("REF_EXACT", &ref_exact),
        ],
    );
    assert_valid(&statement, "camt.053.001.08.xsd");
    let out = import(&app, &write(dir.path(), "stmt2.xml", &statement));
    assert!(out.status.success(), "{}", text(&out));
    let payout: String = sqlx::query_scalar("SELECT p.status FROM payouts p JOIN bank_transfers_out t ON t.payout_id = p.id WHERE t.id = $1")
        .bind(&e2e)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payout, "paid");
    let returned = status(&app, &exact).await;
    assert_eq!(returned["status"], "failed");
    assert_eq!(returned["last_payment_error"]["code"], "bank_return");
    assert_books_clean(&app);

    // 7. A malformed file is refused, naming line and field, and moved.
    let broken = statement.replace(
        "<Amt Ccy=\"EUR\">10.00</Amt>\n        <CdtDbtInd>DBIT",
        "<Amt Ccy=\"EUR\">10,00</Amt>\n        <CdtDbtInd>DBIT",
    );
    assert_ne!(broken, statement);
    let path = write(dir.path(), "broken.xml", &broken);
    let out = import(&app, &path);
    assert!(!out.status.success());
    let reason =
        std::fs::read_to_string(dir.path().join("rejected/broken.xml.reason.txt")).unwrap();
    assert!(reason.starts_with("line "), "{reason}");
    assert!(reason.contains("Stmt[1]/Ntry[3]/Amt"), "{reason}");
    assert!(dir.path().join("rejected/broken.xml").exists());
    assert!(!path.exists());
    assert_books_clean(&app);
}

#[tokio::test]
async fn the_sample_statement_pays_its_payment_once() {
    let app = node().await;
    let (id, _) = bank_payment(&app, 1234).await;
    let out = epg(&app, &["bank", "sample-statement", "--payment", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert_valid(&xml, "camt.054.001.08.xsd");
    let dir = tempfile::tempdir().unwrap();
    let out = import(&app, &write(dir.path(), "sample.xml", &xml));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(&app, &id).await["status"], "succeeded");
    let out = import(&app, &write(dir.path(), "sample-again.xml", &xml));
    assert!(
        text(&out).contains("0 booked, 1 already booked"),
        "{}",
        text(&out)
    );
    let check = epg(&app, &["ledger", "check"]);
    assert!(check.status.success(), "{}", text(&check));
}

#[tokio::test]
async fn bank_transfer_is_offered_only_in_a_currency_with_a_collection_account() {
    let app = node().await;
    let usd = app
        .post(
            "/v1/payments",
            &app.secret_key,
            &json!({"amount": 500, "currency": "usd", "payment_method_types": ["bank_transfer"]}),
        )
        .await;
    let error = json(usd, 400).await;
    assert_eq!(error["error"]["code"], "payment_method_unavailable");
    assert_eq!(error["error"]["param"], "payment_method_types[0]");
}
