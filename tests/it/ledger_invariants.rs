#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The ledger's invariants, as PostgreSQL enforces them: raw SQL that would
//! break them is refused, idempotency holds, holds move through their
//! states once, fees follow the schedule, and `ledger check` tells a sound
//! ledger from a tampered one.

use crate::common;

use epg::db::Db;
use epg::ids::MerchantId;
use epg::ledger::{
    self, AccountRef, Entry, EntryKind, FeeRule, HoldStatus, LedgerError, MerchantAccount, NewHold,
    Posted, Problem,
};
use epg::merchants::MerchantStore;
use epg::money::{Amount, AssetCode, AssetRegistry, ChainAsset, iso4217};
use sqlx::PgConnection;
use time::OffsetDateTime;

fn usd() -> AssetCode {
    AssetCode::parse("usd").unwrap()
}

fn units(n: i64) -> Amount {
    Amount::from_minor(n)
}

async fn merchant(pool: &Db) -> MerchantId {
    MerchantStore::new(pool.clone())
        .create("Ledger Test")
        .await
        .unwrap()
        .id
}

fn account(m: &MerchantId, kind: MerchantAccount) -> AccountRef {
    AccountRef::merchant(m, kind)
}

/// Posts `entry` in a transaction of its own.
async fn post(pool: &Db, entry: &Entry) -> Result<Posted, LedgerError> {
    let mut tx = pool.begin().await.unwrap();
    let posted = ledger::post(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(posted)
}

async fn balance(pool: &Db, account: &AccountRef, asset: &AssetCode) -> ledger::AccountBalance {
    let mut conn = pool.acquire().await.unwrap();
    ledger::account_balance(&mut conn, account, asset)
        .await
        .unwrap()
}

fn capture(key: &str, m: &MerchantId, amount: i64, fee: i64) -> Entry {
    let pending = account(m, MerchantAccount::Pending);
    Entry::new(key, EntryKind::PAYMENT)
        .source("pay_abc123")
        .transfer(
            AccountRef::clearing("card"),
            pending.clone(),
            &usd(),
            units(amount),
        )
        .fee(pending, &usd(), units(fee))
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_posting_must_name_its_entry_and_an_account_with_its_asset_and_owner() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    post(&pool, &capture("first", &m, 1000, 59)).await.unwrap();
    // Each statement writes a balanced entry of two postings with one thing
    // wrong in the second posting (the trigger, not a foreign key, checks
    // it: migration 0033).
    let pending = format!("ledger_account_id('{m}', 'pending', '', 'usd')");
    let clearing = "ledger_account_id('', 'clearing', 'card', 'usd')";
    for (what, entry, account, asset, owner) in [
        (
            "no such entry",
            "e.id + 1000000",
            pending.as_str(),
            "'usd'",
            format!("'{m}'"),
        ),
        (
            "no such account",
            "e.id",
            "987654321",
            "'usd'",
            format!("'{m}'"),
        ),
        (
            "the account's asset is usd",
            "e.id",
            pending.as_str(),
            "'eur'",
            format!("'{m}'"),
        ),
        (
            "the account's owner is the merchant",
            "e.id",
            pending.as_str(),
            "'usd'",
            "''".to_owned(),
        ),
    ] {
        let statement = format!(
            "WITH e AS (INSERT INTO ledger_entries (public_id, key, content_hash, kind)
                        VALUES ('txn_' || repeat('r', 24), 'raw-reference', sha256('x'), 'adjustment')
                        RETURNING id)
             INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
             SELECT e.id, 1, {clearing}, 'usd', '', 100, 'posted' FROM e
             UNION ALL
             SELECT {entry}, 2, {account}, {asset}, {owner}, -100, 'posted' FROM e"
        );
        let err = sqlx::query(&statement)
            .execute(&pool)
            .await
            .expect_err(what);
        assert_eq!(sqlstate(&err), "EL002", "{what}: {err}");
    }
    // Nothing of the refused statements was kept; the check agrees.
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries, 1);
}

#[tokio::test]
async fn the_database_refuses_an_unbalanced_entry_and_any_edit() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    post(&pool, &capture("good", &m, 1000, 59)).await.unwrap();

    // A raw INSERT of an entry whose two postings are both debits.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "WITH e AS (INSERT INTO ledger_entries (public_id, key, content_hash, kind)
                    VALUES ('txn_' || repeat('u', 24), 'raw-unbalanced', sha256('x'), 'adjustment')
                    RETURNING id)
         INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
         SELECT e.id, s, ledger_account_id('', 'clearing', 'card', 'usd'), 'usd', '', 100, 'posted'
           FROM e, generate_series(1, 2) s",
    )
    .execute(&mut *tx)
    .await
    .expect("the statement itself passes; the check is deferred");
    let err = tx.commit().await.expect_err("commit must be refused");
    assert_eq!(sqlstate(&err), "EL001", "{err}");
    assert!(err.to_string().contains("does not balance"), "{err}");

    // A raw entry with a single posting.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "WITH e AS (INSERT INTO ledger_entries (public_id, key, content_hash, kind)
                    VALUES ('txn_' || repeat('v', 24), 'raw-single', sha256('x'), 'adjustment')
                    RETURNING id)
         INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
         SELECT e.id, 1, ledger_account_id('', 'clearing', 'card', 'usd'), 'usd', '', 100, 'posted'
           FROM e",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = tx.commit().await.expect_err("one posting is no entry");
    assert_eq!(sqlstate(&err), "EL001", "{err}");
    assert!(err.to_string().contains("at least two"), "{err}");

    // An entry with no postings at all, and a fractional amount.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO ledger_entries (public_id, key, content_hash, kind)
         VALUES ('txn_' || repeat('x', 24), 'raw-empty', sha256('x'), 'adjustment')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(sqlstate(&tx.commit().await.unwrap_err()), "EL001");
    let err = sqlx::query(
        "WITH e AS (INSERT INTO ledger_entries (public_id, key, content_hash, kind)
                    VALUES ('txn_' || repeat('y', 24), 'raw-fraction', sha256('x'), 'adjustment')
                    RETURNING id)
         INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
         SELECT e.id, s, ledger_account_id('', 'clearing', 'card', 'usd'), 'usd', '', 0.5 * (3 - 2 * s), 'posted'
           FROM e, generate_series(1, 2) s",
    )
    .execute(&pool)
    .await
    .expect_err("amounts are whole smallest units");
    assert_eq!(sqlstate(&err), "23514", "{err}");

    // Edits of what was written.
    for statement in [
        "UPDATE ledger_postings SET amount = amount * 2",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_entries SET kind = 'refund'",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_postings CASCADE",
        "TRUNCATE ledger_entries CASCADE",
        "UPDATE ledger_balances SET posted = 0",
        "DELETE FROM ledger_balances",
        "DELETE FROM ledger_accounts",
        "UPDATE assets SET scale = 3 WHERE code = 'usd'",
    ] {
        let err = sqlx::query(statement)
            .execute(&pool)
            .await
            .expect_err(statement);
        assert_eq!(sqlstate(&err), "EL002", "{statement}: {err}");
    }

    // A posting appended to an entry committed earlier.
    let err = sqlx::query(
        "INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
         SELECT id, 9, ledger_account_id('', 'clearing', 'card', 'usd'), 'usd', '', 1, 'posted'
           FROM ledger_entries WHERE key = 'good'",
    )
    .execute(&pool)
    .await
    .expect_err("a committed entry cannot grow");
    assert_eq!(sqlstate(&err), "EL002", "{err}");

    // A raw, balanced entry that overdraws a merchant account.
    let err = sqlx::query(
        "WITH e AS (INSERT INTO ledger_entries (public_id, key, content_hash, kind)
                    VALUES ('txn_' || repeat('w', 24), 'raw-overdraw', sha256('x'), 'adjustment')
                    RETURNING id)
         INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase)
         SELECT e.id, p.seq, ledger_account_id(p.owner, p.kind, '', 'usd'), 'usd', p.owner, p.amount, 'posted'
           FROM e, (VALUES (1, $1, 'pending', 100000), (2, '', 'suspense', -100000))
                   AS p (seq, owner, kind, amount)",
    )
    .bind(m.as_str())
    .execute(&pool)
    .await
    .expect_err("the merchant's pending balance is 941");
    assert_eq!(sqlstate(&err), "EL003", "{err}");

    // Nothing of the refused attempts stuck.
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries, 1);
    let pending = balance(&pool, &account(&m, MerchantAccount::Pending), &usd()).await;
    assert_eq!(pending.credit_balance(), units(941));
}

#[tokio::test]
async fn a_key_posts_once_and_refuses_other_content() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let first = post(&pool, &capture("pay_1:capture", &m, 1000, 59))
        .await
        .unwrap();
    assert!(!first.replayed);
    assert!(first.id.as_str().starts_with("txn_"));
    let again = post(&pool, &capture("pay_1:capture", &m, 1000, 59))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.id, again.seq), (first.id.clone(), first.seq));

    for other in [
        capture("pay_1:capture", &m, 1001, 59),
        capture("pay_1:capture", &m, 1000, 58),
        capture("pay_1:capture", &m, 1000, 59).description("different"),
    ] {
        let err = post(&pool, &other).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::KeyConflict { ref key } if key == "pay_1:capture"),
            "{err:?}"
        );
    }
    // Same key twice in one transaction is the same entry too.
    let mut tx = pool.begin().await.unwrap();
    let a = ledger::post(&mut tx, &capture("pay_2:capture", &m, 5, 0))
        .await
        .unwrap();
    let b = ledger::post(&mut tx, &capture("pay_2:capture", &m, 5, 0))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.id, b.id);
    assert!(b.replayed);

    let pending = balance(&pool, &account(&m, MerchantAccount::Pending), &usd()).await;
    assert_eq!(pending.credit_balance(), units(941 + 5));
    assert!(ledger::check(&pool).await.unwrap().is_ok());
}

#[tokio::test]
async fn rust_side_validation_and_database_errors_are_typed() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let unbalanced = Entry::new("bad", EntryKind::ADJUSTMENT)
        .debit(AccountRef::clearing("card"), &usd(), units(2))
        .credit(account(&m, MerchantAccount::Pending), &usd(), units(1));
    assert!(matches!(
        post(&pool, &unbalanced).await,
        Err(LedgerError::Invalid(_))
    ));
    let overdraw = Entry::new("overdraw", EntryKind::REFUND).transfer(
        account(&m, MerchantAccount::Available),
        AccountRef::refunds_payable(),
        &usd(),
        units(1),
    );
    assert!(matches!(
        post(&pool, &overdraw).await,
        Err(LedgerError::InsufficientFunds(_))
    ));
    let ghost = MerchantId::generate();
    let to_nobody = Entry::new("ghost", EntryKind::PAYMENT).transfer(
        AccountRef::clearing("card"),
        account(&ghost, MerchantAccount::Pending),
        &usd(),
        units(1),
    );
    assert!(matches!(
        post(&pool, &to_nobody).await,
        Err(LedgerError::UnknownMerchant)
    ));
    let dai = AssetCode::parse("dai:1").unwrap();
    let unknown_asset = Entry::new("dai", EntryKind::PAYMENT).transfer(
        AccountRef::treasury(1),
        account(&m, MerchantAccount::Pending),
        &dai,
        units(1),
    );
    assert!(matches!(
        post(&pool, &unknown_asset).await,
        Err(LedgerError::UnknownAsset(_))
    ));
    let bad_qualifier = Entry::new("q", EntryKind::PAYMENT).transfer(
        AccountRef::clearing("Not A Method"),
        account(&m, MerchantAccount::Pending),
        &usd(),
        units(1),
    );
    assert!(matches!(
        post(&pool, &bad_qualifier).await,
        Err(LedgerError::Refused(_))
    ));
    assert!(ledger::check(&pool).await.unwrap().is_ok());
}

#[tokio::test]
async fn the_asset_table_is_iso_4217_and_chain_assets_register_once() {
    let pool = common::test_db().await;
    let rows: Vec<(String, i16)> =
        sqlx::query_as("SELECT code, scale FROM assets WHERE kind = 'fiat' ORDER BY code")
            .fetch_all(&pool)
            .await
            .unwrap();
    let table: Vec<(String, i16)> = iso4217::CURRENCIES
        .iter()
        .map(|(c, e)| ((*c).to_owned(), i16::from(*e)))
        .collect();
    assert_eq!(rows, table, "migration seed and Rust table must agree");

    let mut conn = pool.acquire().await.unwrap();
    let registry = AssetRegistry::new();
    let usdc_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        .parse()
        .unwrap();
    let eth = registry
        .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 18))
        .await
        .unwrap();
    let usdc = registry
        .register_chain_asset(
            &mut conn,
            &ChainAsset::token(31337, "usdc", 6, usdc_address),
        )
        .await
        .unwrap();
    assert_eq!(eth.code.as_str(), "eth:31337");
    assert_eq!(usdc.token_address(), Some(usdc_address));
    // Again, the same: fine. Different decimals or contract: refused.
    registry
        .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 18))
        .await
        .unwrap();
    let fresh = AssetRegistry::new();
    assert!(
        fresh
            .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 6))
            .await
            .is_err()
    );
    assert!(
        fresh
            .register_chain_asset(
                &mut conn,
                &ChainAsset::token(31337, "usdt", 6, usdc_address)
            )
            .await
            .is_err(),
        "one contract is one asset"
    );
    let loaded = AssetRegistry::load(&mut conn).await.unwrap();
    assert_eq!(loaded.chain_asset(31337, "usdc"), Some(usdc));
    assert_eq!(loaded.chain_assets().len(), 2);
}

#[tokio::test]
async fn eighteen_decimal_amounts_are_exact_beyond_ten_to_the_27() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    AssetRegistry::new()
        .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 18))
        .await
        .unwrap();
    drop(conn);
    let eth = AssetCode::parse("eth:31337").unwrap();
    let big = Amount::parse_units("1000000000000000000000000001").unwrap();
    let pending = account(&m, MerchantAccount::Pending);
    for (i, amount) in [big, big, Amount::MAX].into_iter().enumerate() {
        post(
            &pool,
            &Entry::new(format!("receipt-{i}"), EntryKind::PAYMENT).transfer(
                AccountRef::treasury(31337),
                pending.clone(),
                &eth,
                amount,
            ),
        )
        .await
        .unwrap();
    }
    let total = big
        .checked_add(big)
        .and_then(|t| t.units().checked_add(Amount::MAX.units()))
        .unwrap();
    // The sum (about 10^28) is beyond one Amount but exact in NUMERIC.
    let stored: String = sqlx::query_scalar(
        "SELECT (-sum(b.posted))::text FROM ledger_balances b
           JOIN ledger_accounts a ON a.id = b.account_id
          WHERE a.owner = $1 AND a.kind = 'pending' AND a.asset = 'eth:31337'",
    )
    .bind(m.as_str())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, total.to_string());
    // A treasury on another chain cannot hold this asset.
    let wrong_chain = Entry::new("wrong-chain", EntryKind::PAYMENT).transfer(
        AccountRef::treasury(1),
        pending,
        &eth,
        big,
    );
    assert!(post(&pool, &wrong_chain).await.is_err());
    assert!(ledger::check(&pool).await.unwrap().is_ok());
}

#[tokio::test]
async fn holds_post_partly_void_and_expire_exactly_once() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let pending = account(&m, MerchantAccount::Pending);
    let clearing = AccountRef::clearing("card");
    let t0 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let authorize = |key: &str, amount: i64, expires: i64| {
        NewHold::new(
            key,
            EntryKind::AUTHORIZATION,
            clearing.clone(),
            pending.clone(),
            &usd(),
            units(amount),
        )
        .source("pay_hold1")
        .expires_at(t0 + time::Duration::seconds(expires))
    };

    let mut tx = pool.begin().await.unwrap();
    let a = ledger::open_hold(&mut tx, &authorize("pay_a:auth", 1000, 10))
        .await
        .unwrap();
    ledger::open_hold(&mut tx, &authorize("pay_b:auth", 500, 20))
        .await
        .unwrap();
    ledger::open_hold(&mut tx, &authorize("pay_c:auth", 300, 30))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.status, HoldStatus::Pending);
    let held = balance(&pool, &pending, &usd()).await;
    assert_eq!(held.pending_credits, units(1800));
    assert_eq!(held.posted, Amount::ZERO);
    assert_eq!(
        balance(&pool, &clearing, &usd()).await.pending_debits,
        units(1800)
    );

    // Capture 600 of 1000 with a fee of 47: 400 released.
    let capture = Entry::new("pay_a:capture", EntryKind::PAYMENT)
        .source("pay_hold1")
        .fee(pending.clone(), &usd(), units(47));
    let mut tx = pool.begin().await.unwrap();
    let posted = ledger::post_hold(&mut tx, "pay_a:auth", Some(units(600)), &capture)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let after = balance(&pool, &pending, &usd()).await;
    assert_eq!(after.credit_balance(), units(600 - 47));
    assert_eq!(after.pending_credits, units(800));

    // Replaying the capture returns it; capturing again under another key
    // is refused; a different amount under the same key is a conflict.
    let mut tx = pool.begin().await.unwrap();
    let replay = ledger::post_hold(&mut tx, "pay_a:auth", Some(units(600)), &capture)
        .await
        .unwrap();
    assert_eq!((replay.id, replay.replayed), (posted.id, true));
    let err = ledger::post_hold(
        &mut tx,
        "pay_a:auth",
        Some(units(600)),
        &Entry::new("pay_a:capture2", EntryKind::PAYMENT),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        LedgerError::HoldNotPending {
            status: HoldStatus::Posted,
            ..
        }
    ));
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let err = ledger::post_hold(&mut tx, "pay_a:auth", Some(units(601)), &capture)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::KeyConflict { .. }), "{err:?}");
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let err = ledger::post_hold(
        &mut tx,
        "pay_b:auth",
        Some(units(501)),
        &Entry::new("pay_b:capture", EntryKind::PAYMENT),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LedgerError::HoldExceeded { .. }), "{err:?}");
    tx.rollback().await.unwrap();

    // Void b; expire what is due at t0+25 (c is not).
    let mut tx = pool.begin().await.unwrap();
    ledger::void_hold(&mut tx, "pay_b:auth", "pay_b:void")
        .await
        .unwrap();
    let expired = ledger::expire_holds(&mut tx, t0 + time::Duration::seconds(25), 100)
        .await
        .unwrap();
    assert!(expired.is_empty(), "a and b are closed, c is not due");
    let expired = ledger::expire_holds(&mut tx, t0 + time::Duration::seconds(30), 100)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].key, "pay_c:auth");
    assert_eq!(expired[0].status, HoldStatus::Expired);
    assert_eq!(expired[0].source.as_deref(), Some("pay_hold1"));

    let end = balance(&pool, &pending, &usd()).await;
    assert_eq!(end.pending_credits, Amount::ZERO);
    assert_eq!(end.credit_balance(), units(553));
    assert_eq!(
        balance(&pool, &clearing, &usd()).await.pending_debits,
        Amount::ZERO
    );
    let mut conn = pool.acquire().await.unwrap();
    let b = ledger::get_hold(&mut conn, "pay_b:auth").await.unwrap();
    assert_eq!(b.status, HoldStatus::Voided);
    assert!(b.closed.is_some());

    // A hold's state cannot be rewritten by hand.
    let err = sqlx::query("UPDATE ledger_holds SET status = 'pending', closed_entry_id = NULL")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "EL002");
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.holds, (3, 0));
}

#[tokio::test]
async fn a_hold_reserves_merchant_funds_against_double_spending() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let available = account(&m, MerchantAccount::Available);
    post(
        &pool,
        &Entry::new("fund", EntryKind::ADJUSTMENT).transfer(
            AccountRef::clearing("card"),
            available.clone(),
            &usd(),
            units(1000),
        ),
    )
    .await
    .unwrap();
    let payout = |key: &str, amount: i64| {
        NewHold::new(
            key,
            EntryKind::PAYOUT,
            available.clone(),
            AccountRef::payouts_in_transit(),
            &usd(),
            units(amount),
        )
    };
    let mut tx = pool.begin().await.unwrap();
    ledger::open_hold(&mut tx, &payout("po_1", 700))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // 300 left to spend: a second hold of 400, or a refund of 301, fails.
    let mut tx = pool.begin().await.unwrap();
    let err = ledger::open_hold(&mut tx, &payout("po_2", 400))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InsufficientFunds(_)), "{err:?}");
    drop(tx);
    let refund = |amount: i64| {
        Entry::new(format!("re_{amount}"), EntryKind::REFUND).transfer(
            available.clone(),
            AccountRef::refunds_payable(),
            &usd(),
            units(amount),
        )
    };
    assert!(matches!(
        post(&pool, &refund(301)).await,
        Err(LedgerError::InsufficientFunds(_))
    ));
    post(&pool, &refund(300)).await.unwrap();
    // Voiding the payout frees its 700 again.
    let mut tx = pool.begin().await.unwrap();
    ledger::void_hold(&mut tx, "po_1", "po_1:void")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    post(&pool, &refund(700)).await.unwrap();
    assert_eq!(
        balance(&pool, &available, &usd()).await,
        ledger::AccountBalance::default()
    );
    assert!(ledger::check(&pool).await.unwrap().is_ok());
}

#[tokio::test]
async fn fees_follow_the_merchant_schedule_then_the_default() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let eur = AssetCode::parse("eur").unwrap();
    let jpy = AssetCode::parse("jpy").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    async fn rule(
        conn: &mut PgConnection,
        m: &MerchantId,
        method: &str,
        asset: &AssetCode,
    ) -> FeeRule {
        ledger::fee_rule(conn, m, method, asset).await.unwrap()
    }
    assert_eq!(
        rule(&mut conn, &m, "card", &usd()).await,
        FeeRule::new(290, units(30), None).unwrap()
    );
    assert_eq!(
        rule(&mut conn, &m, "card", &AssetCode::parse("chf").unwrap()).await,
        FeeRule::new(290, Amount::ZERO, None).unwrap(),
        "the default for any currency"
    );
    assert_eq!(
        rule(&mut conn, &m, "bank_transfer", &usd())
            .await
            .fee_for(units(10_000_000)),
        units(500),
        "capped"
    );
    assert_eq!(
        rule(&mut conn, &m, "unknown_method", &usd()).await,
        FeeRule::ZERO
    );
    // A merchant's own rule for any currency beats the default for EUR.
    ledger::set_fee_rule(
        &mut conn,
        Some(&m),
        "card",
        None,
        &FeeRule::new(150, Amount::ZERO, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(rule(&mut conn, &m, "card", &eur).await.percent_bps, 150);
    ledger::set_fee_rule(
        &mut conn,
        Some(&m),
        "card",
        Some(&jpy),
        &FeeRule::new(100, units(10), None).unwrap(),
    )
    .await
    .unwrap();
    let jpy_rule = rule(&mut conn, &m, "card", &jpy).await;
    assert_eq!(jpy_rule.fee_for(units(5000)), units(60));
    // Replacing it.
    ledger::set_fee_rule(&mut conn, Some(&m), "card", Some(&jpy), &FeeRule::ZERO)
        .await
        .unwrap();
    assert_eq!(rule(&mut conn, &m, "card", &jpy).await, FeeRule::ZERO);
    // A fixed part needs a currency.
    assert!(
        ledger::set_fee_rule(
            &mut conn,
            None,
            "card",
            None,
            &FeeRule::new(1, units(1), None).unwrap()
        )
        .await
        .is_err()
    );
    // Another merchant still pays the default.
    let other = merchant(&pool).await;
    assert_eq!(
        ledger::fee_rule(&mut conn, &other, "card", &eur)
            .await
            .unwrap(),
        FeeRule::new(250, units(25), None).unwrap()
    );
}

#[tokio::test]
async fn check_passes_on_a_sound_ledger_and_names_what_was_tampered() {
    let (pool, url) = common::test_database().await;
    let m = merchant(&pool).await;
    for i in 0..5 {
        post(&pool, &capture(&format!("pay_{i}:capture"), &m, 1000, 59))
            .await
            .unwrap();
    }
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.entries, report.postings), (5, 20));
    let epg = env!("CARGO_BIN_EXE_epg");
    let out = tokio::process::Command::new(epg)
        .args(["ledger", "check", "--database-url", &url])
        .env_remove("EPG_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");

    // As superuser, with triggers off, change one balance row behind the
    // ledger's back, and one posting.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE ledger_balances SET posted = posted - 7
          WHERE (account_id, shard) = (SELECT b.account_id, b.shard FROM ledger_balances b
                                        JOIN ledger_accounts a ON a.id = b.account_id
                                       WHERE a.owner = $1 AND a.kind = 'pending' AND b.posted <> 0
                                       LIMIT 1)",
    )
    .bind(m.as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE ledger_postings SET amount = amount + 1
          WHERE (entry_id, seq) = (SELECT p.entry_id, 1 FROM ledger_postings p
                                     JOIN ledger_entries e ON e.id = p.entry_id
                                    WHERE e.key = 'pay_3:capture' LIMIT 1)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    // scripts/test runs `epg ledger check` on every database the suite
    // leaves; this one is broken on purpose and says so.
    sqlx::query("CREATE TABLE epg_test_corrupted_on_purpose ()")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let report = ledger::check(&pool).await.unwrap();
    assert!(!report.is_ok());
    let text = report.to_string();
    assert!(
        report.problems.iter().any(|p| matches!(p,
            Problem::Unbalanced { key, sum, .. } if key == "pay_3:capture" && sum == "1")),
        "{text}"
    );
    assert!(
        report.problems.iter().any(|p| matches!(p,
            Problem::BalanceMismatch { account, .. } if account.starts_with(m.as_str()))),
        "{text}"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::NonZeroTotal { asset, .. } if asset == "usd")),
        "{text}"
    );
    let out = tokio::process::Command::new(epg)
        .args(["ledger", "check", "--database-url", &url])
        .env_remove("EPG_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("PROBLEM") && stdout.contains("FAILED"),
        "{stdout}"
    );
}

#[tokio::test]
async fn resharding_keeps_the_balance_and_consolidation_serves_big_debits() {
    let pool = common::test_db().await;
    let m = merchant(&pool).await;
    let pending = account(&m, MerchantAccount::Pending);
    // Many small credits spread over the pending account's shards.
    let mut txs = Vec::new();
    for i in 0..16 {
        let pool = pool.clone();
        let entry = Entry::new(format!("pay_{i}"), EntryKind::PAYMENT).transfer(
            AccountRef::clearing("card"),
            pending.clone(),
            &usd(),
            units(100),
        );
        txs.push(tokio::spawn(async move { post(&pool, &entry).await }));
    }
    for t in txs {
        t.await.unwrap().unwrap();
    }
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
          WHERE a.owner = $1 AND a.kind = 'pending' AND b.posted <> 0",
    )
    .bind(m.as_str())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        used >= 2,
        "concurrent credits spread over shards ({used} used)"
    );
    // One debit larger than any shard but not than the sum.
    post(
        &pool,
        &Entry::new("availability", EntryKind::AVAILABILITY).transfer(
            pending.clone(),
            account(&m, MerchantAccount::Available),
            &usd(),
            units(1550),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        balance(&pool, &pending, &usd()).await.credit_balance(),
        units(50)
    );
    sqlx::query(
        "SELECT ledger_reshard(id, 3::smallint) FROM ledger_accounts WHERE owner = $1 AND kind = 'pending'",
    )
    .bind(m.as_str())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        balance(&pool, &pending, &usd()).await.credit_balance(),
        units(50)
    );
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
}
