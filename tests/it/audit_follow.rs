//! `epg audit follow` against a running node and anvil: an honest history
//! is consistent; a leaf rewritten in the database behind the triggers'
//! back (as a superuser could), a tampered node, or a truncated log is
//! caught from the on-chain roots alone. Runs the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::deploy::{self, DeployPlan};
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use epg::transparency::anchor::{AnchorOptions, Anchorer, anchor_checkpoint};
use epg::transparency::leaf::{self, LeafEntry};
use epg::transparency::merkle::{MemoryTree, NodeId, Span};
use epg::transparency::{LeafData, LeafKind, TransparencyLog};
use sqlx::{Connection, Executor, PgConnection};

fn item(i: u64) -> LeafData {
    LeafData {
        settlement_id: format!("st_{:024}", i / 5),
        merchant_id: "mer_000000000000000000000001".into(),
        source_id: format!("pay_{i:024}"),
        kind: LeafKind::Payment,
        asset: "usd".into(),
        amount: U256::from(500 + i),
        settled_at: 1_700_000_000 + i,
    }
}

struct Fixture {
    app: common::TestApp,
    anvil: Anvil,
    contract: Address,
    anchorer: Anchorer,
    log: TransparencyLog,
}

/// A node whose log has 20 leaves, anchored at sizes 5, 12 and 20.
async fn fixture() -> Fixture {
    let app = common::spawn_app().await;
    let anvil = common::anvil().await;
    let contract = common::anchored::deploy_anchor(&anvil).await;
    let anchorer = common::anchored::anchorer(&anvil, contract, 1).await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let mut start = 0;
    for end in [5u64, 12, 20] {
        let mut tx = app.pool.begin().await.unwrap();
        log.append_all(&mut tx, &(start..end).map(item).collect::<Vec<_>>())
            .await
            .unwrap();
        log.checkpoint(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        anchor_checkpoint(&app.pool, &anchorer, end).await.unwrap();
        start = end;
    }
    Fixture {
        app,
        anvil,
        contract,
        anchorer,
        log,
    }
}

async fn run_follow(f: &Fixture) -> (i32, String) {
    run_follow_with(f, &[]).await
}

async fn run_follow_with(f: &Fixture, extra: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["audit", "follow", "--rpc-url", &f.anvil.rpc_url()])
        .args(["--anchor", &f.contract.to_string()])
        .args(["--node", &f.app.address])
        .args(["--chunk", "3"])
        .args(extra)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A superuser connection with the immutability triggers switched off.
async fn superuser(f: &Fixture) -> PgConnection {
    let mut conn = PgConnection::connect(&f.app.database_url).await.unwrap();
    conn.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn an_honest_log_is_consistent_with_every_anchor() {
    let f = fixture().await;
    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ anchor events: 3 CheckpointAnchored and 0 CheckpointsSuperseded events"),
        "{out}"
    );
    assert!(out.contains("✓ consistency #0 → #1"), "{out}");
    assert!(out.contains("✓ consistency #1 → #2"), "{out}");
    assert!(out.contains("CONSISTENT"), "{out}");
}

#[tokio::test]
async fn a_leaf_rewritten_in_the_database_is_caught() {
    let f = fixture().await;
    // The operator rewrites leaf 3 (in the first anchored checkpoint) to
    // another amount, and, to cover its tracks, recomputes every node above
    // it and the head, so the stored tree is internally consistent.
    let mut db = superuser(&f).await;
    let (data, salt) = TransparencyLog::leaf(&mut db, 3).await.unwrap();
    let mut entry = LeafEntry::decode(&data).unwrap();
    entry.data.amount = U256::from(1u64);
    let forged = entry.encode().unwrap();
    let forged_hash = leaf::leaf_hash(&forged, &salt);
    sqlx::query("UPDATE transparency_leaves SET data = $1, leaf_hash = $2 WHERE leaf_index = 3")
        .bind(&forged)
        .bind(&forged_hash[..])
        .execute(&mut db)
        .await
        .unwrap();
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT leaf_hash FROM transparency_leaves ORDER BY leaf_index")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let tree = MemoryTree::from_leaf_hashes(hashes.iter().map(|h| h[..].try_into().unwrap()));
    let nodes: Vec<(i16, i64)> = sqlx::query_as("SELECT level, node_index FROM transparency_nodes")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for (level, index) in nodes {
        let node = NodeId {
            level: u8::try_from(level).unwrap(),
            index: u64::try_from(index).unwrap(),
        };
        sqlx::query("UPDATE transparency_nodes SET hash = $3 WHERE level = $1 AND node_index = $2")
            .bind(level)
            .bind(index)
            .bind(&tree.node(node).unwrap()[..])
            .execute(&mut db)
            .await
            .unwrap();
    }
    let frontier: Vec<Vec<u8>> = Span::new(0, 20)
        .perfect_nodes()
        .into_iter()
        .map(|n| tree.node(n).unwrap().to_vec())
        .collect();
    sqlx::query("UPDATE transparency_head SET frontier = $1")
        .bind(&frontier)
        .execute(&mut db)
        .await
        .unwrap();
    // The node now serves the forged tree without complaint.
    let mut conn = f.app.pool.acquire().await.unwrap();
    assert_eq!(
        TransparencyLog::root(&mut conn, 20).await.unwrap(),
        tree.root(20).unwrap()
    );

    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ checkpoint #0"), "{out}");
    assert!(out.contains("✗ consistency #0 → #1"), "{out}");
    assert!(out.contains("rewritten"), "{out}");
    assert!(out.contains("INCONSISTENT"), "{out}");
}

#[tokio::test]
async fn a_tampered_node_hash_is_caught() {
    let f = fixture().await;
    // The stored subtree of leaves 8–11, part of the second checkpoint's
    // root and of both consistency proofs.
    let mut db = superuser(&f).await;
    sqlx::query(
        "UPDATE transparency_nodes SET hash = sha256(hash) WHERE level = 2 AND node_index = 2",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✓ checkpoint #0"), "{out}");
    assert!(out.contains("✗ consistency #0 → #1"), "{out}");
    assert!(out.contains("✗ consistency #1 → #2"), "{out}");
    assert!(out.contains("INCONSISTENT"), "{out}");
}

#[tokio::test]
async fn a_truncated_log_is_caught() {
    let f = fixture().await;
    let mut db = superuser(&f).await;
    db.execute("DELETE FROM transparency_leaves WHERE leaf_index >= 16")
        .await
        .unwrap();
    let frontier: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM transparency_nodes WHERE level = 4 AND node_index = 0",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    sqlx::query("UPDATE transparency_head SET tree_size = 16, frontier = $1")
        .bind(&frontier)
        .execute(&mut db)
        .await
        .unwrap();
    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ consistency #1 → #2"), "{out}");
    assert!(out.contains("truncated"), "{out}");
}

/// The contract, signing as its admin and anchorer (anvil's account #0).
fn admin_anchor(
    f: &Fixture,
) -> epg::chain::contracts::SettlementAnchor::SettlementAnchorInstance<
    impl alloy::providers::Provider,
> {
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(signer))
        .connect_http(f.anvil.rpc_url().parse().unwrap());
    epg::chain::contracts::SettlementAnchor::new(f.contract, provider)
}

/// A stolen anchorer key anchors a checkpoint that is no state of the log,
/// and the admin supersedes it. `follow` fails loudly on the supersede,
/// saying what went and whether it was the log's, until the auditor
/// accepts the transaction; the node then anchors on top of its own last
/// checkpoint again and the history is consistent. An admin removing
/// checkpoints that were the log's is named as such.
#[tokio::test]
async fn a_supersede_fails_follow_until_the_auditor_accepts_it() {
    let f = fixture().await;
    let anchor = admin_anchor(&f);
    let mut conn = f.app.pool.acquire().await.unwrap();
    let root_20 = TransparencyLog::root(&mut conn, 20).await.unwrap();
    anchor
        .anchor(
            30,
            alloy::primitives::B256::repeat_byte(0xee),
            root_20.into(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ consistency #2 → #3"), "{out}");

    let receipt = anchor
        .supersede(U256::from(3))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let tx = format!("{:#x}", receipt.transaction_hash);
    let (code, out) = run_follow(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ supersede #1: SUPERSEDED"), "{out}");
    assert!(out.contains("#3 (30 leaves"), "{out}");
    assert!(out.contains("not a state the node can show"), "{out}");
    assert!(out.contains(&format!("--accept-supersede {tx}")), "{out}");
    assert!(out.contains("✓ consistency #1 → #2"), "{out}");
    assert!(!out.contains("consistency #2 → #3"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("SUPERSEDED"),
        "{out}"
    );

    let accepted = ["--accept-supersede", tx.as_str()];
    let (code, out) = run_follow_with(&f, &accepted).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ supersede #1: SUPERSEDED"), "{out}");
    assert!(out.contains("CONSISTENT"), "{out}");

    // The node goes on from its own checkpoint #2; #3 is its again.
    let mut tx_db = f.app.pool.begin().await.unwrap();
    f.log
        .append_all(&mut tx_db, &(20..25).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    f.log.checkpoint(&mut tx_db).await.unwrap();
    tx_db.commit().await.unwrap();
    anchor_checkpoint(&f.app.pool, &f.anchorer, 25)
        .await
        .unwrap();
    let (code, out) = run_follow_with(&f, &accepted).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("✓ anchor events: 5 CheckpointAnchored and 1 CheckpointsSuperseded events"),
        "{out}"
    );
    assert!(out.contains("✓ consistency #2 → #3"), "{out}");

    // Removing checkpoints that were states of the log is a rewrite of history.
    // (A new provider: the node's anchorer sent with the same key meanwhile.)
    admin_anchor(&f)
        .supersede(U256::from(2))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (code, out) = run_follow_with(&f, &accepted).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ supersede #2: SUPERSEDED"), "{out}");
    assert!(out.contains("#2 (20 leaves"), "{out}");
    assert!(out.contains("a state of the node's log"), "{out}");
}

/// The log moves to a new anchor contract (ARCHITECTURE.md, "Migrating
/// deployed contracts"): same log, same origin, first checkpoint on the new
/// contract at 25 leaves. `follow --previous-anchor` proves the hand-over;
/// a previous anchor that never held this log fails it.
#[tokio::test]
async fn a_log_moved_to_a_new_anchor_is_followed_across_both() {
    let mut f = fixture().await;
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let me = signer.address();
    let rpc = f.anvil.rpc_url();
    let deploy_anchor = || async {
        let plan = DeployPlan {
            treasury: me,
            admin: me,
            anchorer: me,
            ..DeployPlan::default()
        };
        deploy::deploy(&rpc, signer.clone(), &plan)
            .await
            .unwrap()
            .anchor
    };
    let new_contract = deploy_anchor().await;
    let new_anchorer = Anchorer::connect(
        &f.anvil.rpc_url(),
        new_contract,
        signer.clone(),
        AnchorOptions {
            confirmations: 1,
            poll_interval: Duration::from_millis(50),
            ..AnchorOptions::default()
        },
    )
    .await
    .unwrap();
    // The log keeps its name (the old anchor's) and grows on.
    assert_ne!(new_anchorer.origin(), f.log.origin());
    let mut tx = f.app.pool.begin().await.unwrap();
    f.log
        .append_all(&mut tx, &(20..25).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    f.log.checkpoint(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    anchor_checkpoint(&f.app.pool, &new_anchorer, 25)
        .await
        .unwrap();

    let previous = format!("{:#x}", f.contract);
    f.contract = new_contract;
    let (code, out) = run_follow_with(&f, &["--previous-anchor", &previous]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ handover"), "{out}");
    assert!(out.contains("(#2, 20 leaves)"), "{out}");

    // A previous anchor whose latest checkpoint is no state of this log.
    let stranger = deploy_anchor().await;
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(signer))
        .connect_http(rpc.parse().unwrap());
    epg::chain::contracts::SettlementAnchor::new(stranger, &provider)
        .anchor(
            20,
            alloy::primitives::B256::repeat_byte(0xab),
            Default::default(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let previous = format!("{stranger:#x}");
    let (code, out) = run_follow_with(&f, &["--previous-anchor", &previous]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ handover"), "{out}");
}
