//! Two checkpoints of a transparency log anchored on anvil, and the proof
//! bundles an auditor would download: the fixture of the tests that verify
//! bundles (by `epg audit verify` and on the `/verify` page).

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::deploy::{self, DeployPlan};
use epg::db::Db;
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use epg::transparency::anchor::{AnchorOptions, Anchorer, anchor_checkpoint};
use epg::transparency::bundle::bundle_for_leaf;
use epg::transparency::{LeafData, LeafIndex, LeafKind, TransparencyLog};
use serde_json::Value;

/// Bundles of leaf 3 against the checkpoint of size 6 and of leaf 9
/// against the one of size 13, both anchored.
#[derive(Debug)]
pub struct AnchoredBundles {
    pub bundle: Value,
    pub later: Value,
    /// The log's database, kept for as long as the bundles are used.
    pub pool: Db,
}

/// Leaf `i` of the fixture's log: a settled payment of 12.34 + i cents.
pub fn leaf(i: u64) -> LeafData {
    LeafData {
        settlement_id: "st_000000000000000000000001".into(),
        merchant_id: "mer_000000000000000000000001".into(),
        source_id: format!("pay_{i:024}"),
        kind: LeafKind::Payment,
        asset: "usd".into(),
        amount: U256::from(1234 + i),
        settled_at: 1_700_000_000,
    }
}

/// Deploys the contracts on `anvil` with anvil's first key as treasury,
/// admin and anchorer; the SettlementAnchor's address.
pub async fn deploy_anchor(anvil: &Anvil) -> Address {
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let me = signer.address();
    let plan = DeployPlan {
        treasury: me,
        admin: me,
        anchorer: me,
        dev_helpers: false,
        ..DeployPlan::default()
    };
    deploy::deploy(&anvil.rpc_url(), signer, &plan)
        .await
        .unwrap()
        .anchor
}

/// An anchorer of `contract` with anvil's first key, waiting for
/// `confirmations` and polling every 50 ms (a test gives up after a
/// minute).
pub async fn anchorer(anvil: &Anvil, contract: Address, confirmations: u64) -> Anchorer {
    Anchorer::connect(
        &anvil.rpc_url(),
        contract,
        DEV_KEY_0.parse().unwrap(),
        AnchorOptions {
            confirmations,
            poll_interval: Duration::from_millis(50),
            timeout: Duration::from_secs(60),
            max_sends: 5,
        },
    )
    .await
    .unwrap()
}

/// Deploys the contracts on `anvil`, appends leaves 0–5 and 6–12 to a log
/// in a fresh test database, anchors each checkpoint and reads back the
/// two bundles.
pub async fn two_checkpoints(anvil: &Anvil) -> AnchoredBundles {
    let anchorer = anchorer(anvil, deploy_anchor(anvil).await, 1).await;
    let pool = super::test_db().await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    for (from, to) in [(0, 6), (6, 13)] {
        let mut tx = pool.begin().await.unwrap();
        log.append_all(&mut tx, &(from..to).map(leaf).collect::<Vec<_>>())
            .await
            .unwrap();
        let cp = log.checkpoint(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        anchor_checkpoint(&pool, &anchorer, cp.tree_size)
            .await
            .unwrap();
    }
    let bundle = serde_json::to_value(bundle_for_leaf(&pool, LeafIndex(3)).await.unwrap()).unwrap();
    let later = serde_json::to_value(bundle_for_leaf(&pool, LeafIndex(9)).await.unwrap()).unwrap();
    AnchoredBundles {
        bundle,
        later,
        pool,
    }
}
