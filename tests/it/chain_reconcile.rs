//! After reorgs below and above the confirmation depth, with a sink that
//! books the ledger as the payments side will (receipt on confirmation,
//! reversal when a confirmed transfer is removed), `epg reconcile chain`
//! finds nothing: the kept transfer's record follows it to its new block,
//! and the removed one is gone from both the chain and the ledger. Against
//! an endpoint without the start block's state, it starts from the
//! checkpoint of its last clean run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;
use crate::rpc_proxy::{Action, RpcProxy};

use alloy::primitives::U256;
use alloy::providers::Provider;
use chain_support::{Devnet, LedgerSink, calls, reference, rows, watcher};
use epg::chain::reconcile::{self, Target};
use epg::ledger::{AccountRef, account_balance};
use epg::money::AssetCode;
use serde_json::Value;

#[tokio::test]
async fn after_a_kept_and_a_deep_removed_transfer_the_ledger_matches_the_chain() {
    let dev = Devnet::start(31337).await;
    let (pool, database_url) = common::test_database().await;
    let chain = dev.chain(2);
    let sink = LedgerSink::install(&pool, &[&chain]).await;
    let payer = dev.payer(0).await;
    let (mut w, metrics, _) = watcher(chain.clone(), &pool, &sink);

    // Confirmed, then undone by a reorg deeper than the confirmation depth.
    payer.pay_eth(U256::from(5_000_000u64), reference(1)).await;
    dev.mine(2).await;
    assert_eq!(w.step().await.unwrap().confirmed, 1);
    dev.reorg(4, &[]).await;
    let report = w.step().await.unwrap();
    assert!(report.reorg.unwrap().deep);
    assert_eq!(chain_support::counter(&metrics, "deep_reorgs"), 1);

    // Detected, dropped by a shallow reorg that includes it again.
    let (_, raw) = payer.sign_usdc(2_500_000, reference(2)).await;
    dev.send_raw(&raw).await;
    assert_eq!(w.step().await.unwrap().detected, 1);
    dev.reorg(1, &[(raw, 0)]).await;
    assert_eq!(w.step().await.unwrap().kept, 1);
    dev.mine(2).await;
    assert_eq!(w.step().await.unwrap().confirmed, 1);

    let kinds: Vec<(String, bool)> = calls(&pool)
        .await
        .into_iter()
        .map(|c| (c.kind, c.was_confirmed))
        .collect();
    let expected = [
        ("detected", false),
        ("confirmed", false),
        ("removed", true),
        ("detected", false),
        ("confirmed", false),
    ];
    assert_eq!(
        kinds,
        expected.map(|(k, c)| (k.to_owned(), c)),
        "the kept one was never removed"
    );
    let statuses: Vec<String> = rows(&pool).await.into_iter().map(|r| r.status).collect();
    assert_eq!(statuses, ["removed", "confirmed"]);

    let mut conn = pool.acquire().await.unwrap();
    let eth = AssetCode::chain("eth", 31337).unwrap();
    let balance = account_balance(&mut conn, &AccountRef::treasury(31337), &eth)
        .await
        .unwrap();
    assert!(balance.posted.is_zero(), "receipt and reversal cancel out");
    drop(conn);

    let report = reconcile::reconcile(&pool, &[Target::from_config(&chain).unwrap()])
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");

    // The same through `epg reconcile chain --config`, chains from the file.
    let mut config = common::test_config(&database_url);
    config.chains = vec![chain];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epg.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["reconcile", "chain", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no discrepancy"), "{stdout}");
}

/// A full node keeps only recent states, and anvil restarted from its state
/// file only its head's: the treasury's balance before the start block can
/// no longer be read. Reconciliation then compares the change since the
/// checkpoint its last clean run left, says so, and still finds money that
/// moved outside the books; without a checkpoint it says that it could not
/// compare, and fails.
#[tokio::test]
async fn without_the_start_blocks_state_it_starts_from_the_last_clean_checkpoint() {
    let dev = Devnet::start(31337).await;
    let (pool, _) = common::test_database().await;
    let chain = dev.chain(2);
    let sink = LedgerSink::install(&pool, &[&chain]).await;
    let payer = dev.payer(0).await;
    let (mut w, _, _) = watcher(chain.clone(), &pool, &sink);
    payer.pay_eth(U256::from(5_000_000u64), reference(1)).await;
    dev.mine(2).await;
    assert_eq!(w.step().await.unwrap().confirmed, 1);

    // The endpoint has pruned the state of the block before the start.
    let proxy = RpcProxy::start(&chain.http_url).await;
    let before_start = format!("{:#x}", chain.start_block.saturating_sub(1));
    for method in ["eth_getBalance", "eth_call"] {
        let at = before_start.clone();
        proxy
            .on(method)
            .when(move |params| params.get(1).and_then(Value::as_str) == Some(at.as_str()))
            .times(usize::MAX)
            .then(Action::Error(
                "missing trie node (state is not available)".into(),
            ));
    }
    let mut pruned = chain.clone();
    pruned.http_url = proxy.url.clone();
    let reconcile_pruned = || async {
        reconcile::reconcile(&pool, &[Target::from_config(&pruned).unwrap()])
            .await
            .unwrap()
    };

    let report = reconcile_pruned().await;
    assert!(!report.is_ok(), "{report}");
    assert!(
        report.discrepancies.iter().all(|d| d
            .problem
            .contains("no clean reconciliation left a checkpoint")),
        "{report}"
    );

    // A clean run against the archive leaves a checkpoint at its horizon.
    let report = reconcile::reconcile(&pool, &[Target::from_config(&chain).unwrap()])
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");

    payer.pay_eth(U256::from(7_000_000u64), reference(2)).await;
    dev.mine(2).await;
    assert_eq!(w.step().await.unwrap().confirmed, 1);
    let report = reconcile_pruned().await;
    assert!(report.is_ok(), "{report}");
    assert!(
        report
            .checked
            .iter()
            .any(|line| line.contains("from the checkpoint a clean reconciliation left")),
        "{report}"
    );
    assert!(
        proxy.fired("eth_getBalance") > 0,
        "the start block was asked for"
    );

    // One wei into the treasury outside the router: no checkpoint hides it.
    let provider = dev.provider();
    let balance = provider.get_balance(chain_support::TREASURY).await.unwrap();
    let _: Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (chain_support::TREASURY, balance + U256::from(1u8)),
        )
        .await
        .unwrap();
    dev.mine(2).await;
    w.step().await.unwrap();
    let report = reconcile_pruned().await;
    assert_eq!(report.discrepancies.len(), 1, "{report}");
    assert!(
        report.discrepancies[0].subject.starts_with("treasury eth"),
        "{report}"
    );
}
