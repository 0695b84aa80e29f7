#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property test: random sequences of ledger operations (holds, partial
//! posts, voids, expiries, receipts, availability moves, refunds, chain
//! reversals, reserve holds, fees, replays and conflicting replays) against
//! the real database, next to a model that predicts each balance and
//! each outcome: success, insufficient funds, hold not pending, key
//! conflict. After every operation every touched balance must equal the
//! model's; after every case `ledger::check` must pass.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use epg::db::Db;
use epg::ids::MerchantId;
use epg::ledger::{
    self, AccountRef, Entry, EntryKind, LedgerError, MerchantAccount, NewHold, TxnId,
};
use epg::merchants::MerchantStore;
use epg::money::{Amount, AssetCode, AssetRegistry, ChainAsset};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use time::OffsetDateTime;

/// Each case's clock starts a million seconds before the previous one's, so
/// `expire_holds` in one case never reaches holds of an earlier case.
static EPOCH: AtomicI64 = AtomicI64::new(1_900_000_000);

#[derive(Debug, Clone)]
enum Op {
    /// A card authorization: hold from `clearing/card` to the merchant's pending.
    Authorize {
        m: usize,
        amount: i64,
        expires_in: i64,
    },
    /// Post `percent` % of a hold, charging `fee` to the merchant's pending.
    Capture {
        hold: usize,
        percent: u8,
        fee: i64,
    },
    Void {
        hold: usize,
    },
    Expire {
        at: i64,
    },
    /// Crypto received: treasury to the merchant's pending (ETH wei).
    Receive {
        m: usize,
        wei: u128,
    },
    /// Pending to available.
    Settle {
        m: usize,
        eth: bool,
        amount: u128,
    },
    /// Available to refunds payable (USD), with the fee returned.
    Refund {
        m: usize,
        amount: i64,
        fee_back: i64,
    },
    /// A deep reorg undoes a receipt: the merchant's pending back to the treasury.
    Reversal {
        m: usize,
        wei: u128,
    },
    /// Reserve merchant funds: hold from available to reserve.
    Reserve {
        m: usize,
        amount: i64,
        expires_in: i64,
    },
    Replay {
        nth: usize,
    },
    Conflict {
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0..2usize;
    let usd = 1..100_000i64;
    let wei = 1..3_000_000_000_000_000_000_000_000u128; // up to 3 × 10^24
    prop_oneof![
        4 => (m.clone(), usd.clone(), 0..1000i64)
            .prop_map(|(m, amount, expires_in)| Op::Authorize { m, amount, expires_in }),
        4 => (any::<usize>(), 1..=100u8, 0..5_000i64)
            .prop_map(|(hold, percent, fee)| Op::Capture { hold, percent, fee }),
        1 => any::<usize>().prop_map(|hold| Op::Void { hold }),
        1 => (0..1000i64).prop_map(|at| Op::Expire { at }),
        2 => (m.clone(), wei.clone()).prop_map(|(m, wei)| Op::Receive { m, wei }),
        3 => (m.clone(), any::<bool>(), 1..200_000u128)
            .prop_map(|(m, eth, amount)| Op::Settle { m, eth, amount }),
        2 => (m.clone(), usd.clone(), 0..100i64)
            .prop_map(|(m, amount, fee_back)| Op::Refund { m, amount, fee_back }),
        1 => (m.clone(), wei).prop_map(|(m, wei)| Op::Reversal { m, wei }),
        1 => (m, usd, 0..1000i64)
            .prop_map(|(m, amount, expires_in)| Op::Reserve { m, amount, expires_in }),
        2 => any::<usize>().prop_map(|nth| Op::Replay { nth }),
        1 => any::<usize>().prop_map(|nth| Op::Conflict { nth }),
    ]
}

/// A request as sent, kept to send again.
#[derive(Debug, Clone)]
enum Request {
    Post(Entry),
    Hold(NewHold),
    PostHold {
        hold: String,
        amount: Amount,
        entry: Entry,
    },
    Void {
        hold: String,
        key: String,
    },
}

async fn send(pool: &Db, request: &Request) -> Result<TxnId, LedgerError> {
    let mut tx = pool.begin().await.unwrap();
    let result = match request {
        Request::Post(entry) => ledger::post(&mut tx, entry).await.map(|p| p.id),
        Request::Hold(hold) => ledger::open_hold(&mut tx, hold).await.map(|h| h.opened),
        Request::PostHold {
            hold,
            amount,
            entry,
        } => ledger::post_hold(&mut tx, hold, Some(*amount), entry)
            .await
            .map(|p| p.id),
        Request::Void { hold, key } => ledger::void_hold(&mut tx, hold, key).await.map(|p| p.id),
    };
    match result {
        Ok(id) => {
            tx.commit().await?;
            Ok(id)
        }
        Err(e) => {
            tx.rollback().await.unwrap();
            Err(e)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bal {
    posted: i128,
    pending_debits: i128,
    pending_credits: i128,
}

#[derive(Debug, Clone)]
struct ModelHold {
    key: String,
    m: usize,
    debit: AccountRef,
    credit: AccountRef,
    amount: i128,
    expires_at: i64,
    open: bool,
}

/// What the ledger should hold, as changes since the case began.
struct Model {
    merchants: Vec<MerchantId>,
    usd: AssetCode,
    eth: AssetCode,
    epoch: i64,
    /// Per (account, asset): the balance before the case, and the change.
    balances: BTreeMap<(AccountRef, AssetCode), (Bal, Bal)>,
    holds: Vec<ModelHold>,
    done: Vec<(Request, TxnId)>,
}

/// One change to apply: (account, asset, posted, pending debits, pending credits).
type Delta = (AccountRef, AssetCode, i128, i128, i128);

impl Model {
    fn pending(&self, m: usize) -> AccountRef {
        AccountRef::merchant(&self.merchants[m], MerchantAccount::Pending)
    }

    fn available(&self, m: usize) -> AccountRef {
        AccountRef::merchant(&self.merchants[m], MerchantAccount::Available)
    }

    fn reserve(&self, m: usize) -> AccountRef {
        AccountRef::merchant(&self.merchants[m], MerchantAccount::Reserve)
    }

    async fn track(&mut self, pool: &Db, account: &AccountRef, asset: &AssetCode) {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            self.balances.entry((account.clone(), asset.clone()))
        {
            slot.insert((balance(pool, account, asset).await, Bal::default()));
        }
    }

    /// Whether the deltas keep every floor (merchant accounts stay >= 0 on
    /// their credit side, counting pending debits); applies them if so.
    async fn apply(&mut self, pool: &Db, deltas: &[Delta]) -> bool {
        for (account, asset, ..) in deltas {
            self.track(pool, account, asset).await;
        }
        let mut next = self.balances.clone();
        for (account, asset, posted, pd, pc) in deltas {
            let (_, change) = next.get_mut(&(account.clone(), asset.clone())).unwrap();
            change.posted += posted;
            change.pending_debits += pd;
            change.pending_credits += pc;
        }
        let fits = next.iter().all(|((account, _), (start, change))| {
            let posted = start.posted + change.posted;
            let pd = start.pending_debits + change.pending_debits;
            let pc = start.pending_credits + change.pending_credits;
            let floor = account.merchant_account().is_none()
                || account.merchant_account() == Some(MerchantAccount::Receivable)
                || posted + pd <= 0;
            pd >= 0 && pc >= 0 && floor
        });
        if fits {
            self.balances = next;
        }
        fits
    }

    async fn verify(&self, pool: &Db) {
        for ((account, asset), (start, change)) in &self.balances {
            let expected = Bal {
                posted: start.posted + change.posted,
                pending_debits: start.pending_debits + change.pending_debits,
                pending_credits: start.pending_credits + change.pending_credits,
            };
            assert_eq!(
                balance(pool, account, asset).await,
                expected,
                "{account} in {asset}"
            );
        }
        // The changes of the case sum to zero per asset.
        let mut sums: BTreeMap<&AssetCode, (i128, i128)> = BTreeMap::new();
        for ((_, asset), (_, change)) in &self.balances {
            let s = sums.entry(asset).or_default();
            s.0 += change.posted;
            s.1 += change.pending_debits - change.pending_credits;
        }
        for (asset, s) in sums {
            assert_eq!(s, (0, 0), "{asset} changes do not sum to zero");
        }
    }
}

async fn balance(pool: &Db, account: &AccountRef, asset: &AssetCode) -> Bal {
    let mut conn = pool.acquire().await.unwrap();
    let b = ledger::account_balance(&mut conn, account, asset)
        .await
        .unwrap();
    Bal {
        posted: b.posted.units(),
        pending_debits: b.pending_debits.units(),
        pending_credits: b.pending_credits.units(),
    }
}

fn amount(n: i128) -> Amount {
    Amount::new(n).unwrap()
}

fn transfer(debit: &AccountRef, credit: &AccountRef, asset: &AssetCode, n: i128) -> [Delta; 2] {
    [
        (debit.clone(), asset.clone(), n, 0, 0),
        (credit.clone(), asset.clone(), -n, 0, 0),
    ]
}

fn release(hold: &ModelHold, asset: &AssetCode) -> [Delta; 2] {
    [
        (hold.debit.clone(), asset.clone(), 0, -hold.amount, 0),
        (hold.credit.clone(), asset.clone(), 0, 0, -hold.amount),
    ]
}

/// Sends `request`; when `expect` is `Some(deltas)`, it must succeed and
/// the model takes the deltas, otherwise it must fail as `refused` says.
async fn check_send(
    pool: &Db,
    model: &mut Model,
    request: Request,
    deltas: &[Delta],
) -> Option<TxnId> {
    let fits = model.apply(pool, deltas).await;
    let result = send(pool, &request).await;
    if fits {
        let id = result.unwrap_or_else(|e| panic!("{request:?} should succeed: {e}"));
        model.done.push((request, id.clone()));
        Some(id)
    } else {
        assert!(
            matches!(result, Err(LedgerError::InsufficientFunds(_))),
            "{request:?} should be refused for insufficient funds: {result:?}"
        );
        None
    }
}

async fn run_case(pool: &Db, merchants: Vec<MerchantId>, ops: Vec<Op>) {
    let epoch = EPOCH.fetch_sub(1_000_000, Ordering::SeqCst);
    let at = |secs: i64| OffsetDateTime::from_unix_timestamp(epoch + secs).unwrap();
    let mut model = Model {
        merchants,
        usd: AssetCode::parse("usd").unwrap(),
        eth: AssetCode::parse("eth:31337").unwrap(),
        epoch,
        balances: BTreeMap::new(),
        holds: Vec::new(),
        done: Vec::new(),
    };
    let usd = model.usd.clone();
    let eth = model.eth.clone();
    let clearing = AccountRef::clearing("card");
    let treasury = AccountRef::treasury(31337);
    for (i, op) in ops.into_iter().enumerate() {
        let key = format!("e{}:{i}", model.epoch);
        match op {
            Op::Authorize {
                m,
                amount: n,
                expires_in,
            } => {
                let n = i128::from(n);
                let hold = NewHold::new(
                    key.clone(),
                    EntryKind::AUTHORIZATION,
                    clearing.clone(),
                    model.pending(m),
                    &usd,
                    amount(n),
                )
                .source(format!("pay_{i}"))
                .expires_at(at(expires_in));
                let deltas = [
                    (clearing.clone(), usd.clone(), 0, n, 0),
                    (model.pending(m), usd.clone(), 0, 0, n),
                ];
                if check_send(pool, &mut model, Request::Hold(hold), &deltas)
                    .await
                    .is_some()
                {
                    model.holds.push(ModelHold {
                        key,
                        m,
                        debit: clearing.clone(),
                        credit: model.pending(m),
                        amount: n,
                        expires_at: epoch + expires_in,
                        open: true,
                    });
                }
            }
            Op::Reserve {
                m,
                amount: n,
                expires_in,
            } => {
                let n = i128::from(n);
                let hold = NewHold::new(
                    key.clone(),
                    EntryKind::RESERVE,
                    model.available(m),
                    model.reserve(m),
                    &usd,
                    amount(n),
                )
                .expires_at(at(expires_in));
                let deltas = [
                    (model.available(m), usd.clone(), 0, n, 0),
                    (model.reserve(m), usd.clone(), 0, 0, n),
                ];
                if check_send(pool, &mut model, Request::Hold(hold), &deltas)
                    .await
                    .is_some()
                {
                    model.holds.push(ModelHold {
                        key,
                        m,
                        debit: model.available(m),
                        credit: model.reserve(m),
                        amount: n,
                        expires_at: epoch + expires_in,
                        open: true,
                    });
                }
            }
            Op::Capture { hold, percent, fee } => {
                if model.holds.is_empty() {
                    continue;
                }
                let h = hold % model.holds.len();
                let held = model.holds[h].clone();
                let n = (held.amount * i128::from(percent) / 100).max(1);
                let fee = i128::from(fee);
                let entry = Entry::new(key, EntryKind::PAYMENT)
                    .source(format!("pay_{i}"))
                    .fee(model.pending(held.m), &usd, amount(fee));
                let request = Request::PostHold {
                    hold: held.key.clone(),
                    amount: amount(n),
                    entry,
                };
                if !held.open {
                    let result = send(pool, &request).await;
                    assert!(
                        matches!(result, Err(LedgerError::HoldNotPending { .. })),
                        "{result:?}"
                    );
                    continue;
                }
                let mut deltas = release(&held, &usd).to_vec();
                deltas.extend(transfer(&held.debit, &held.credit, &usd, n));
                if fee > 0 {
                    deltas.extend(transfer(
                        &model.pending(held.m),
                        &AccountRef::fee_revenue(),
                        &usd,
                        fee,
                    ));
                }
                if check_send(pool, &mut model, request, &deltas)
                    .await
                    .is_some()
                {
                    model.holds[h].open = false;
                }
            }
            Op::Void { hold } => {
                if model.holds.is_empty() {
                    continue;
                }
                let h = hold % model.holds.len();
                let held = model.holds[h].clone();
                let request = Request::Void {
                    hold: held.key.clone(),
                    key,
                };
                if !held.open {
                    let result = send(pool, &request).await;
                    assert!(
                        matches!(result, Err(LedgerError::HoldNotPending { .. })),
                        "{result:?}"
                    );
                    continue;
                }
                check_send(pool, &mut model, request, &release(&held, &usd))
                    .await
                    .unwrap();
                model.holds[h].open = false;
            }
            Op::Expire { at: secs } => {
                let due: Vec<usize> = (0..model.holds.len())
                    .filter(|&h| model.holds[h].open && model.holds[h].expires_at <= epoch + secs)
                    .collect();
                let deltas: Vec<Delta> = due
                    .iter()
                    .flat_map(|&h| release(&model.holds[h], &usd))
                    .collect();
                assert!(model.apply(pool, &deltas).await);
                let mut tx = pool.begin().await.unwrap();
                let expired = ledger::expire_holds(&mut tx, at(secs), 1000).await.unwrap();
                tx.commit().await.unwrap();
                let mut got: Vec<String> = expired.into_iter().map(|h| h.key).collect();
                let mut want: Vec<String> =
                    due.iter().map(|&h| model.holds[h].key.clone()).collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "expired holds");
                for h in due {
                    model.holds[h].open = false;
                }
            }
            Op::Receive { m, wei } => {
                let n = i128::try_from(wei).unwrap();
                let entry = Entry::new(key, EntryKind::PAYMENT)
                    .source(format!("pay_{i}"))
                    .transfer(treasury.clone(), model.pending(m), &eth, amount(n));
                let deltas = transfer(&treasury, &model.pending(m), &eth, n);
                check_send(pool, &mut model, Request::Post(entry), &deltas).await;
            }
            Op::Reversal { m, wei } => {
                let n = i128::try_from(wei).unwrap();
                let entry = Entry::new(key, EntryKind::CHAIN_REVERSAL)
                    .source(format!("pay_{i}"))
                    .transfer(model.pending(m), treasury.clone(), &eth, amount(n));
                let deltas = transfer(&model.pending(m), &treasury, &eth, n);
                check_send(pool, &mut model, Request::Post(entry), &deltas).await;
            }
            Op::Settle {
                m,
                eth: in_eth,
                amount: n,
            } => {
                let asset = if in_eth { eth.clone() } else { usd.clone() };
                let n = i128::try_from(n).unwrap();
                let entry = Entry::new(key, EntryKind::AVAILABILITY).transfer(
                    model.pending(m),
                    model.available(m),
                    &asset,
                    amount(n),
                );
                let deltas = transfer(&model.pending(m), &model.available(m), &asset, n);
                check_send(pool, &mut model, Request::Post(entry), &deltas).await;
            }
            Op::Refund {
                m,
                amount: n,
                fee_back,
            } => {
                let (n, fee_back) = (i128::from(n), i128::from(fee_back));
                let entry = Entry::new(key, EntryKind::REFUND)
                    .source(format!("re_{i}"))
                    .transfer(
                        model.available(m),
                        AccountRef::refunds_payable(),
                        &usd,
                        amount(n),
                    )
                    .fee_refund(model.available(m), &usd, amount(fee_back));
                let mut deltas =
                    transfer(&model.available(m), &AccountRef::refunds_payable(), &usd, n).to_vec();
                if fee_back > 0 {
                    deltas.extend(transfer(
                        &AccountRef::fee_revenue(),
                        &model.available(m),
                        &usd,
                        fee_back,
                    ));
                }
                check_send(pool, &mut model, Request::Post(entry), &deltas).await;
            }
            Op::Replay { nth } => {
                if model.done.is_empty() {
                    continue;
                }
                let (request, id) = model.done[nth % model.done.len()].clone();
                let again = send(pool, &request).await.unwrap();
                assert_eq!(again, id, "a replay returns the first entry");
            }
            Op::Conflict { nth } => {
                if model.done.is_empty() {
                    continue;
                }
                let (request, _) = model.done[nth % model.done.len()].clone();
                let changed = match request {
                    Request::Post(entry) => Request::Post(entry.description("changed")),
                    Request::Hold(hold) => Request::Hold(hold.source("pay_changed")),
                    Request::PostHold {
                        hold,
                        amount,
                        entry,
                    } => Request::PostHold {
                        hold,
                        amount: amount.checked_sub(Amount::from_minor(1)).unwrap(),
                        entry,
                    },
                    Request::Void { .. } => continue,
                };
                let result = send(pool, &changed).await;
                assert!(
                    matches!(result, Err(LedgerError::KeyConflict { .. })),
                    "{changed:?}: {result:?}"
                );
            }
        }
        model.verify(pool).await;
    }
    let report = ledger::check(pool).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn random_operations_keep_every_invariant() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = runtime.block_on(async {
        let pool = common::test_db().await;
        let mut conn = pool.acquire().await.unwrap();
        AssetRegistry::new()
            .register_chain_asset(&mut conn, &ChainAsset::native(31337, "eth", 18))
            .await
            .unwrap();
        pool
    });
    let cases = std::env::var("LEDGER_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(40);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            runtime.block_on(async {
                let store = MerchantStore::new(pool.clone());
                let mut merchants = Vec::new();
                for _ in 0..2 {
                    merchants.push(store.create("Property").await.unwrap().id);
                }
                run_case(&pool, merchants, ops).await;
            });
            Ok(())
        })
        .unwrap();
}
