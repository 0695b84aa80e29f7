#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The payment path's single-column rules live in domains (migration 0035):
//! each column carries its domain, each domain refuses what the table CHECK
//! it replaced refused and accepts the values at its edges, and no
//! single-column CHECK comes back to a hot table, where PostgreSQL would
//! compile it again for every write (docs/performance.md, fifth round).

use crate::common;

/// Tables a card payment, a refund or a hold writes.
const HOT_TABLES: &[&str] = &[
    "payments",
    "payment_operations",
    "refunds",
    "events",
    "webhook_deliveries",
    "idempotency_keys",
    "ledger_entries",
    "ledger_postings",
    "ledger_holds",
];

/// (table, column, domain) for every rule that moved.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("payments", "id", "payment_id"),
    ("payments", "amount", "positive_minor_units"),
    ("payments", "currency", "currency_code"),
    ("payments", "status", "payment_status"),
    ("payments", "capture_method", "capture_method"),
    ("payments", "amount_capturable", "minor_units"),
    ("payments", "amount_received", "minor_units"),
    ("payments", "amount_refunded", "minor_units"),
    ("payments", "amount_disputed", "minor_units"),
    ("payments", "confirm_attempts", "attempt_count"),
    ("payments", "risk_score", "risk_score"),
    ("payments", "idempotency_key", "idempotency_key"),
    ("payments", "return_url", "return_url"),
    ("payment_operations", "id", "payment_operation_id"),
    ("payment_operations", "amount", "minor_units"),
    ("payment_operations", "kind", "payment_operation_kind"),
    ("payment_operations", "status", "payment_operation_status"),
    ("payment_operations", "resumed", "attempt_count"),
    ("payment_operations", "idempotency_key", "idempotency_key"),
    ("refunds", "id", "refund_id"),
    ("refunds", "amount", "positive_minor_units"),
    ("refunds", "status", "refund_status"),
    ("refunds", "reason", "refund_reason"),
    ("refunds", "idempotency_key", "idempotency_key"),
    ("events", "id", "event_id"),
    ("events", "type", "event_type"),
    ("events", "position", "event_position"),
    ("webhook_deliveries", "id", "webhook_delivery_id"),
    ("webhook_deliveries", "status", "webhook_delivery_status"),
    ("webhook_deliveries", "attempts", "attempt_count"),
    ("idempotency_keys", "key", "idempotency_key"),
    ("idempotency_keys", "key_kind", "api_key_kind"),
    ("idempotency_keys", "request_hash", "request_mac"),
    ("ledger_entries", "public_id", "ledger_entry_public_id"),
    ("ledger_entries", "key", "idempotency_key"),
    ("ledger_entries", "content_hash", "sha256_digest"),
    ("ledger_entries", "kind", "ledger_entry_kind"),
    ("ledger_entries", "description", "ledger_entry_description"),
    ("ledger_entries", "source", "ledger_entry_source"),
    ("ledger_postings", "amount", "ledger_amount"),
    ("ledger_postings", "phase", "ledger_posting_phase"),
    ("ledger_postings", "seq", "ledger_posting_seq"),
    ("ledger_holds", "amount", "positive_ledger_amount"),
    ("ledger_holds", "status", "ledger_hold_status"),
];

/// (domain, constraint, values it refuses, values it accepts), each value
/// an SQL expression.
const RULES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "payment_id",
        "payment_id_format",
        &[
            "'pay_short'",
            "'pop_abcdefghijklmnopqrstuvwx'",
            "'pay_abcdefghijklmnopqrstuvw!'",
        ],
        &["'pay_abcdefghijklmnopqrstuvwx'"],
    ),
    (
        "payment_operation_id",
        "payment_operation_id_format",
        &["'pay_abcdefghijklmnopqrstuvwx'"],
        &["'pop_ABCDEFGHIJKLMNOPQRSTUVW9'"],
    ),
    (
        "refund_id",
        "refund_id_format",
        &["'re_abc'", "' re_abcdefghijklmnopqrstuvwx'"],
        &["'re_abcdefghijklmnopqrstuvwx'"],
    ),
    (
        "event_id",
        "event_id_format",
        &["'evt_abcdefghijklmnopqrstuvwxy'"],
        &["'evt_abcdefghijklmnopqrstuvwx'"],
    ),
    (
        "webhook_delivery_id",
        "webhook_delivery_id_format",
        &["'whd_'"],
        &["'whd_abcdefghijklmnopqrstuvwx'"],
    ),
    (
        "ledger_entry_public_id",
        "ledger_entry_public_id_format",
        &["'txn_abcdefghijklmnopqrstuvw'"],
        &["'txn_abcdefghijklmnopqrstuvwx'"],
    ),
    (
        "idempotency_key",
        "idempotency_key_length",
        &["''", "repeat('k', 256)"],
        &["'k'", "repeat('k', 255)"],
    ),
    (
        "currency_code",
        "currency_code_format",
        &["'USD'", "'us'", "'usdt'"],
        &["'usd'"],
    ),
    (
        "minor_units",
        "minor_units_not_negative",
        &["-1"],
        &["0", "9223372036854775807"],
    ),
    (
        "positive_minor_units",
        "positive_minor_units_positive",
        &["0", "-5"],
        &["1"],
    ),
    (
        "ledger_amount",
        "ledger_amount_whole_nonzero",
        &["0", "0.5", "1e28", "-1e28"],
        &["1", "-1", "9999999999999999999999999999"],
    ),
    (
        "positive_ledger_amount",
        "positive_ledger_amount_whole_positive",
        &["0", "-1", "2.5", "1e28"],
        &["1", "9999999999999999999999999999"],
    ),
    (
        "attempt_count",
        "attempt_count_not_negative",
        &["-1"],
        &["0"],
    ),
    (
        "risk_score",
        "risk_score_range",
        &["-1", "101"],
        &["0", "100"],
    ),
    (
        "payment_status",
        "payment_status_known",
        &["'paid'", "'Succeeded'"],
        &["'requires_payment_method'", "'succeeded'", "'failed'"],
    ),
    (
        "capture_method",
        "capture_method_known",
        &["'later'"],
        &["'automatic'", "'manual'"],
    ),
    (
        "payment_operation_kind",
        "payment_operation_kind_known",
        &["'refund_all'"],
        &["'authorize'", "'refund'"],
    ),
    (
        "payment_operation_status",
        "payment_operation_status_known",
        &["'canceled'"],
        &["'pending'", "'failed'"],
    ),
    (
        "refund_status",
        "refund_status_known",
        &["'requires_action'"],
        &["'canceled'"],
    ),
    (
        "refund_reason",
        "refund_reason_known",
        &["'other'"],
        &["'requested_by_customer'"],
    ),
    (
        "webhook_delivery_status",
        "webhook_delivery_status_known",
        &["'retrying'"],
        &["'pending'", "'canceled'"],
    ),
    (
        "event_type",
        "event_type_known",
        &["'payment.exploded'"],
        &["'payment.succeeded'", "'dashboard_user.locked'"],
    ),
    (
        "ledger_entry_kind",
        "ledger_entry_kind_format",
        &["'Payment'", "'_payment'", "repeat('a', 41)"],
        &["'payment'", "repeat('a', 40)"],
    ),
    (
        "ledger_posting_phase",
        "ledger_posting_phase_known",
        &["'pending'"],
        &["'posted'", "'pending_credit'"],
    ),
    (
        "ledger_hold_status",
        "ledger_hold_status_known",
        &["'released'"],
        &["'expired'"],
    ),
    (
        "api_key_kind",
        "api_key_kind_known",
        &["'restricted'"],
        &["'publishable'"],
    ),
    (
        "return_url",
        "return_url_format",
        &["'ftp://example.com'", "'https://' || repeat('a', 2041)"],
        &["'http://example.com'", "'https://' || repeat('a', 2040)"],
    ),
    ("event_position", "event_position_positive", &["0"], &["1"]),
    (
        "sha256_digest",
        "sha256_digest_length",
        &["'\\x00'::bytea", "sha224('x')"],
        &["sha256('x')"],
    ),
    (
        "request_mac",
        "request_mac_length",
        &["sha256('x')"],
        &["''::bytea", "decode(repeat('00', 40), 'hex')"],
    ),
    (
        "ledger_entry_description",
        "ledger_entry_description_length",
        &["repeat('d', 501)"],
        &["repeat('d', 500)"],
    ),
    (
        "ledger_entry_source",
        "ledger_entry_source_format",
        &["'pay'", "'p_1'", "'payment_x'"],
        &["'pay_abc123'", "'re_X'"],
    ),
    (
        "ledger_posting_seq",
        "ledger_posting_seq_positive",
        &["0"],
        &["1"],
    ),
];

#[tokio::test]
async fn the_payment_paths_columns_carry_their_domains() {
    let pool = common::test_db().await;
    for (table, column, domain) in COLUMNS {
        let found: String = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(&found, domain, "{table}.{column}");
    }
    // Every domain a column names has its rule tested below.
    for (_, _, domain) in COLUMNS {
        assert!(
            RULES.iter().any(|(d, ..)| d == domain),
            "no rule listed for {domain}"
        );
    }
}

#[tokio::test]
async fn each_domain_refuses_what_its_check_refused_and_takes_its_edges() {
    let pool = common::test_db().await;
    for (domain, constraint, refused, accepted) in RULES {
        let rules: Vec<String> = sqlx::query_scalar(
            "SELECT c.conname::text FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
              WHERE t.typname = $1",
        )
        .bind(domain)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rules, [constraint.to_string()], "the rules of {domain}");
        for value in *refused {
            let err = sqlx::query(&format!("SELECT ({value})::{domain}"))
                .execute(&pool)
                .await
                .expect_err(&format!("{domain} must refuse {value}"));
            let db = err.as_database_error().expect("a database error");
            assert_eq!(
                db.code().as_deref(),
                Some("23514"),
                "{domain} {value}: {err}"
            );
            assert_eq!(db.constraint(), Some(*constraint), "{domain} {value}");
        }
        for value in *accepted {
            sqlx::query(&format!("SELECT ({value})::{domain}"))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{domain} must accept {value}: {e}"));
        }
        // A column that may be empty may still be empty.
        sqlx::query(&format!("SELECT NULL::{domain}"))
            .execute(&pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_write_with_a_bad_value_is_refused_by_its_domain() {
    let pool = common::test_db().await;
    // The rule holds in a real write, not only in a cast: the statement
    // names no valid merchant, and the domain refuses it before the
    // foreign key is looked at.
    let err = sqlx::query(
        "INSERT INTO payments (id, merchant_id, amount, currency, status, capture_method,
                               payment_method_types, client_secret, metadata)
         VALUES ('pay_abcdefghijklmnopqrstuvwx', 'mer_none', 1000, 'usd', 'paid', 'automatic',
                 '{card}', 'secret', '{}')",
    )
    .execute(&pool)
    .await
    .expect_err("an unknown status");
    let db = err.as_database_error().expect("a database error");
    assert_eq!(db.code().as_deref(), Some("23514"), "{err}");
    assert_eq!(db.constraint(), Some("payment_status_known"));
}

#[tokio::test]
async fn no_single_column_check_returns_to_a_hot_table() {
    let pool = common::test_db().await;
    let found: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, conname::text FROM pg_constraint
          WHERE contype = 'c' AND cardinality(conkey) = 1
            AND conrelid::regclass::text = ANY($1)
          ORDER BY 1, 2",
    )
    .bind(HOT_TABLES)
    .fetch_all(&pool)
    .await
    .unwrap();
    // `events.data` stays a CHECK: its generated column `object_id` reads
    // it, and PostgreSQL will not change the type of such a column.
    assert_eq!(
        found,
        [("events".to_owned(), "events_data_check".to_owned())],
        "a single-column rule of a hot table belongs in a domain (migration 0035)"
    );
}

/// A CHECK that calls a SQL-language function has the function inlined,
/// its text parsed again, every time PostgreSQL prepares the CHECK: for
/// each INSERT or UPDATE of the table. The floor of the ledger's balances
/// did (13% of the database's CPU in a ledger entry; migration 0037).
#[tokio::test]
async fn no_check_of_a_hot_table_calls_a_sql_function() {
    let pool = common::test_db().await;
    let mut tables: Vec<&str> = HOT_TABLES.to_vec();
    tables.push("ledger_balances");
    let found: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.conname::text, p.proname::text
           FROM pg_constraint c
           JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                           AND d.refclassid = 'pg_proc'::regclass
           JOIN pg_proc p ON p.oid = d.refobjid
           JOIN pg_language l ON l.oid = p.prolang
          WHERE c.contype = 'c' AND l.lanname = 'sql'
            AND c.conrelid::regclass::text = ANY($1)
          ORDER BY 1, 2",
    )
    .bind(&tables)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(found.is_empty(), "CHECKs calling SQL functions: {found:?}");
    // The query sees such a dependency: the floor CHECK depends on its
    // function, whatever its language.
    let floor: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint c
           JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                           AND d.refobjid = 'ledger_fits'::regproc
          WHERE c.conname = 'ledger_balances_floor'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(floor, 1);
}
