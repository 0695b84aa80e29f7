#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Many transactions at once: every capture of many tasks credits one hot
//! account (`fee_revenue`) and debits another (`clearing/card`), and the
//! ledger ends balanced, with the writers spread over the shards. Many
//! concurrent debits of one merchant balance never take it below zero.

use crate::common;

use epg::db::Db;
use epg::ids::MerchantId;
use epg::ledger::{self, AccountRef, Entry, EntryKind, LedgerError, MerchantAccount};
use epg::merchants::MerchantStore;
use epg::money::{Amount, AssetCode};
use sqlx::postgres::PgPoolOptions;

const TASKS: usize = 32;
const ENTRIES_PER_TASK: usize = 25;

fn usd() -> AssetCode {
    AssetCode::parse("usd").unwrap()
}

async fn pool_of(url: &str, connections: u32) -> Db {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
        .await
        .unwrap()
        .into()
}

async fn post(pool: &Db, entry: &Entry) -> Result<(), LedgerError> {
    let mut tx = pool.begin().await.unwrap();
    ledger::post(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_entries_on_one_hot_account_end_balanced() {
    let (_, url) = common::test_database().await;
    let pool = pool_of(&url, u32::try_from(TASKS).unwrap()).await;
    let store = MerchantStore::new(pool.clone());
    let mut merchants = Vec::new();
    for _ in 0..TASKS {
        merchants.push(store.create("Hot").await.unwrap().id);
    }
    let mut tasks = Vec::new();
    for (t, merchant) in merchants.iter().cloned().enumerate() {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut fees = 0i128;
            for i in 0..ENTRIES_PER_TASK {
                let amount = Amount::from_minor(i64::try_from(1000 + t * 100 + i).unwrap());
                let fee = Amount::from_minor(i64::try_from(30 + i).unwrap());
                let pending = AccountRef::merchant(&merchant, MerchantAccount::Pending);
                let entry = Entry::new(format!("pay_{t}_{i}:capture"), EntryKind::PAYMENT)
                    .transfer(
                        AccountRef::clearing("card"),
                        pending.clone(),
                        &usd(),
                        amount,
                    )
                    .fee(pending, &usd(), fee);
                // Two transactions touching the same accounts never
                // deadlock (one lock order), so no retry is needed.
                post(&pool, &entry).await.unwrap();
                fees += fee.units();
            }
            fees
        }));
    }
    let mut fees = 0i128;
    for task in tasks {
        fees += task.await.unwrap();
    }
    let mut conn = pool.acquire().await.unwrap();
    let revenue = ledger::account_balance(&mut conn, &AccountRef::fee_revenue(), &usd())
        .await
        .unwrap();
    assert_eq!(revenue.credit_balance().units(), fees);
    let shards_used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
          WHERE a.kind = 'fee_revenue' AND b.posted <> 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        shards_used > 4,
        "concurrent writers spread over the hot account's shards ({shards_used} used)"
    );
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.entries,
        i64::try_from(TASKS * ENTRIES_PER_TASK).unwrap()
    );
}

async fn fund(pool: &Db, merchant: &MerchantId, key: &str, amount: i64) {
    post(
        pool,
        &Entry::new(key, EntryKind::ADJUSTMENT).transfer(
            AccountRef::clearing("card"),
            AccountRef::merchant(merchant, MerchantAccount::Available),
            &usd(),
            Amount::from_minor(amount),
        ),
    )
    .await
    .unwrap();
}

/// `count` concurrent credits of `each` to one merchant's available
/// balance, under keys starting with `prefix`: spread over its shards, as
/// concurrent writers take different ones.
async fn fund_concurrently(
    pool: &Db,
    merchant: &MerchantId,
    prefix: &str,
    count: usize,
    each: i64,
) {
    let mut tasks = Vec::new();
    for i in 0..count {
        let pool = pool.clone();
        let merchant = merchant.clone();
        let key = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            fund(&pool, &merchant, &key, each).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// How a race of refunds ended.
struct Raced {
    /// Refunds that were booked (the others were refused for insufficient
    /// funds).
    succeeded: usize,
    /// Times a refund was rolled back in a conflict and posted again.
    conflicts: usize,
}

/// `attempts` concurrent refunds of `each` from one merchant's available
/// balance, under keys starting with `prefix`; each is refused for
/// insufficient funds, or booked, a retryable conflict retried until it is
/// one or the other.
async fn race_refunds(
    pool: &Db,
    merchant: &MerchantId,
    prefix: &str,
    attempts: usize,
    each: i64,
) -> Raced {
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let pool = pool.clone();
        let merchant = merchant.clone();
        let key = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            let entry = Entry::new(key, EntryKind::REFUND).transfer(
                AccountRef::merchant(&merchant, MerchantAccount::Available),
                AccountRef::refunds_payable(),
                &usd(),
                Amount::from_minor(each),
            );
            let mut conflicts = 0;
            loop {
                match post(&pool, &entry).await {
                    Ok(()) => return (true, conflicts),
                    Err(LedgerError::InsufficientFunds(_)) => return (false, conflicts),
                    Err(e) if e.is_retryable() => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut raced = Raced {
        succeeded: 0,
        conflicts: 0,
    };
    for task in tasks {
        let (booked, conflicts) = task.await.unwrap();
        raced.succeeded += usize::from(booked);
        raced.conflicts += conflicts;
    }
    raced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_debits_never_overdraw_a_merchant() {
    let (_, url) = common::test_database().await;
    let pool = pool_of(&url, 24).await;
    let merchant = MerchantStore::new(pool.clone())
        .create("Race")
        .await
        .unwrap()
        .id;
    let available = AccountRef::merchant(&merchant, MerchantAccount::Available);

    // 1000 on one shard, 20 concurrent refunds of 100: exactly 10 pass.
    fund(&pool, &merchant, "fund-1", 1000).await;
    assert_eq!(
        race_refunds(&pool, &merchant, "re-1", 20, 100)
            .await
            .succeeded,
        10
    );

    // 1000 spread by concurrent credits over the shards, then 4 concurrent
    // debits of 450 (more than any shard holds): exactly 2 pass, through
    // consolidation.
    fund_concurrently(&pool, &merchant, "fund-2", 10, 100).await;
    assert_eq!(
        race_refunds(&pool, &merchant, "re-2", 4, 450)
            .await
            .succeeded,
        2
    );

    let mut conn = pool.acquire().await.unwrap();
    let left = ledger::account_balance(&mut conn, &available, &usd())
        .await
        .unwrap();
    assert_eq!(left.credit_balance(), Amount::from_minor(100));
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

/// Debits that find every fitting shard busy wait for one; when the shard
/// they waited for no longer fits, PostgreSQL keeps its lock and the wait
/// moves on. Waiters that each began at a random shard so held shards in
/// each other's way, and one of two was rolled back as a deadlock (the API
/// bench's manual captures met it, and each costs the server's one-second
/// deadlock timeout). Now no debit waits for a shard below one it holds:
/// each round of eight debits of 100 against 400 over the four shards of
/// an `available` account passes exactly four and refuses four, and none
/// is rolled back in a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_debits_never_deadlock_over_shards() {
    const ROUNDS: usize = 24;
    let (_, url) = common::test_database().await;
    let pool = pool_of(&url, 16).await;
    let merchant = MerchantStore::new(pool.clone())
        .create("Waiters")
        .await
        .unwrap()
        .id;
    let mut conflicts = 0;
    for round in 0..ROUNDS {
        fund_concurrently(&pool, &merchant, &format!("fund-{round}"), 4, 100).await;
        let raced = race_refunds(&pool, &merchant, &format!("debit-{round}"), 8, 100).await;
        assert_eq!(
            raced.succeeded, 4,
            "round {round}: 400 available, debits of 100"
        );
        conflicts += raced.conflicts;
    }
    // Waiting from a random shard, 24 rounds here lost 19 to 27 debits to
    // deadlocks (each after the server's one-second deadlock timeout).
    assert_eq!(
        conflicts, 0,
        "debits waiting for the account's shards were rolled back in a deadlock"
    );
    let report = ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

/// A transaction PostgreSQL rolled back to break a deadlock reaches a
/// client as 503 `database_conflict` with `Retry-After` (nothing was
/// written; the same request again runs once), never as a 500, whether it
/// comes straight from a query or through the ledger and a payment.
#[tokio::test]
async fn a_conflict_reaches_the_client_as_a_retryable_503() {
    use epg::api::error::ApiError;
    use epg::payments::{Audience, PaymentError};

    let (_, url) = common::test_database().await;
    let pool = pool_of(&url, 1).await;
    let deadlock = || async {
        sqlx::query(
            "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$",
        )
        .execute(&pool)
        .await
        .unwrap_err()
    };
    assert!(epg::db::is_conflict(&deadlock().await));

    let direct = ApiError::from(deadlock().await);
    let booked = ApiError::from_payment(
        PaymentError::Booking(LedgerError::from(deadlock().await)),
        Audience::Merchant,
        false,
    );
    for err in [direct, booked] {
        assert_eq!(err.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, "database_conflict");
        assert_eq!(err.retry_after, Some(1));
    }
    let refused = sqlx::query("DO $$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = '23514'; END $$")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(!epg::db::is_conflict(&refused));
}
