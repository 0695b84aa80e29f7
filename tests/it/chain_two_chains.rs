//! Two chains at once (two anvils, chain ids 31337 and 31338), ERC-20 and
//! native payments on both, a sink that books the ledger as the payments
//! side will, and `epg reconcile chain` against both chains: clean, then
//! with a tampered record and with money sent to a treasury outside the
//! router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use chain_support::{
    Devnet, LedgerSink, PAYER_KEYS, TREASURY, assert_each_detected_and_confirmed_once, count,
    reference, rows, wait_until, watcher,
};
use epg::chain::reconcile::{self, Target};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

fn eth(milli: u64) -> U256 {
    U256::from(milli) * U256::from(10u64).pow(U256::from(15u64))
}

async fn reconcile_cli(database_url: &str, devs: &[&Devnet]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"));
    cmd.args(["reconcile", "chain", "--database-url", database_url]);
    for dev in devs {
        cmd.args(["--rpc-url", &dev.anvil.rpc_url()]);
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty() || out.status.success(), "{stderr}");
    (out.status.success(), stdout)
}

#[tokio::test]
async fn two_chains_erc20_and_eth_are_watched_apart_and_reconcile_with_the_ledger() {
    let (a, b) = tokio::join!(Devnet::start(31337), Devnet::start(31338));
    let (pool, database_url) = common::test_database().await;
    let (chain_a, chain_b) = (a.chain(2), b.chain(3));
    let sink = LedgerSink::install(&pool, &[&chain_a, &chain_b]).await;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for chain in [chain_a.clone(), chain_b.clone()] {
        let (w, _, _) = watcher(chain, &pool, &sink);
        tasks.push(tokio::spawn(w.run(shutdown.clone())));
    }

    let (pa, pb, pb2) = tokio::join!(a.payer(0), b.payer(0), b.payer(1));
    pa.pay_usdc(12_340_000, reference(1)).await;
    pa.pay_eth(eth(500), reference(2)).await;
    pb.pay_usdc(7_000_000, reference(3)).await;
    pb.pay_eth(eth(250), reference(4)).await;
    pb2.pay_usdc(1_500_000, reference(5)).await;
    a.mine(2).await;
    b.mine(3).await;
    wait_until(WAIT, "5 confirmations", || async {
        count(&pool, "confirmed").await == 5
    })
    .await;

    let all = rows(&pool).await;
    let on = |id: i64| all.iter().filter(move |r| r.chain_id == id);
    assert_eq!(on(31337).count(), 2);
    assert_eq!(on(31338).count(), 3);
    assert!(
        on(31337).any(|r| r.asset.as_deref() == Some("eth") && r.amount == eth(500).to_string())
    );
    assert!(on(31338).any(|r| r.asset.as_deref() == Some("usdc") && r.amount == "1500000"));
    assert_eq!(assert_each_detected_and_confirmed_once(&pool).await, 5);

    // In the library and through the command line: nothing to report.
    let targets = [
        Target::from_config(&chain_a).unwrap(),
        Target::from_config(&chain_b).unwrap(),
    ];
    let report = reconcile::reconcile(&pool, &targets).await.unwrap();
    assert!(report.is_ok(), "{report}");
    let (ok, out) = reconcile_cli(&database_url, &[&a, &b]).await;
    assert!(ok, "{out}");
    assert!(out.contains("no discrepancy"), "{out}");
    assert!(out.contains("treasury usdc:31338"), "{out}");

    // Someone sends ETH to chain B's treasury outside the router: the
    // ledger does not know it, reconciliation says so once it is deep
    // enough to count.
    let stranger: PrivateKeySigner = PAYER_KEYS[2].parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(stranger))
        .connect_http(b.anvil.rpc_url().parse().unwrap());
    provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(TREASURY)
                .with_value(U256::from(1u64)),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    b.mine(3).await;
    let head = b.head().await;
    wait_until(WAIT, "chain B's cursor at the head", || async {
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT block_number FROM chain_cursors WHERE chain_id = 31338")
                .fetch_one(&pool)
                .await
                .unwrap();
        cursor == Some(i64::try_from(head).unwrap())
    })
    .await;
    let report = reconcile::reconcile(&pool, &targets).await.unwrap();
    assert_eq!(report.discrepancies.len(), 1, "{report}");
    assert_eq!(report.discrepancies[0].subject, "treasury eth:31338");

    // A record that does not match its receipt.
    sqlx::query(
        "UPDATE chain_transfers SET amount = amount + 1 WHERE chain_id = 31337 AND ref = $1",
    )
    .bind(format!("{:#x}", reference(1)))
    .execute(&pool)
    .await
    .unwrap();
    let (ok, out) = reconcile_cli(&database_url, &[&a, &b]).await;
    assert!(!ok, "exits non-zero: {out}");
    assert!(out.contains("DISCREPANCY chain 31337 transfer"), "{out}");
    assert!(out.contains("amount 12340000 ≠ recorded 12340001"), "{out}");
    assert!(
        out.contains("DISCREPANCY chain 31338 treasury eth:31338"),
        "{out}"
    );

    shutdown.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}
