//! Anchoring checkpoints in `SettlementAnchor` on a real anvil: recorded
//! once, idempotent, linked to the previous root, re-sent after a reorg
//! drops the transaction, refused when the chain disagrees with the log,
//! anchored in steps when the log outgrew the contract's growth limit; and
//! the contract's own `verifyInclusionAt` accepts the node's proofs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::common::anchored::{anchorer, deploy_anchor};

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::contracts::SettlementAnchor;
use epg::chain::deploy::{self, DeployPlan};
use epg::db::Db;
use epg::devnet::anvil::DEV_KEY_0;
use epg::transparency::anchor::{
    AnchorError, AnchorOptions, Anchorer, anchor_checkpoint, find_anchoring_log,
};
use epg::transparency::{LeafData, LeafKind, TransparencyLog};

fn item(i: u64) -> LeafData {
    LeafData {
        settlement_id: format!("st_{:024}", i / 4),
        merchant_id: "mer_000000000000000000000001".into(),
        source_id: format!("pay_{i:024}"),
        kind: LeafKind::Payment,
        asset: "usdc".into(),
        amount: U256::from(10u64).pow(U256::from(6u64)) * U256::from(i + 1),
        settled_at: 1_700_000_000 + i,
    }
}

/// Appends leaves `from..to` and records a checkpoint of the result.
async fn grow(pool: &Db, log: &TransparencyLog, from: u64, to: u64) -> u64 {
    let mut tx = pool.begin().await.unwrap();
    log.append_all(&mut tx, &(from..to).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    let cp = log.checkpoint(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    cp.tree_size
}

async fn anchor_rows(pool: &Db) -> Vec<(i64, String, String)> {
    sqlx::query_as("SELECT tree_size, tx_hash, status FROM transparency_anchors ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn checkpoints_are_anchored_once_and_linked_to_the_previous_root() {
    let anvil = common::anvil().await;
    let contract = deploy_anchor(&anvil).await;
    let pool = common::test_db().await;
    let anchorer = anchorer(&anvil, contract, 1).await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    assert_eq!(
        anchorer.origin(),
        format!("epg/31337/0x{}", hex::encode(contract.as_slice()))
    );

    let first = grow(&pool, &log, 0, 5).await;
    let record = anchor_checkpoint(&pool, &anchorer, first).await.unwrap();
    assert_eq!(record.chain_id, 31337);
    assert_eq!(record.contract, contract);
    assert_eq!(record.seq, 0);
    assert!(record.gas_used.unwrap() > 21_000);

    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let anchor = SettlementAnchor::new(contract, &provider);
    let mut conn = pool.acquire().await.unwrap();
    let root5 = TransparencyLog::root(&mut conn, 5).await.unwrap();
    let on_chain = anchor.checkpointBySize(5).call().await.unwrap();
    assert_eq!(on_chain.checkpoint_.root, B256::from(root5));
    assert_eq!(on_chain.checkpoint_.treeSize, 5);
    // The contract keeps no block number: the event's block is the anchor's.
    let anchoring = find_anchoring_log(&provider.clone().erased(), contract, 0, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anchoring.block_number, record.block_number);
    assert_eq!(anchoring.block_hash, record.block_hash);
    assert_eq!(anchoring.tx_hash, record.tx_hash);
    assert_eq!(
        (anchoring.tree_size, anchoring.root),
        (5, B256::from(root5))
    );
    assert_eq!(anchoring.prev_root, B256::ZERO);
    // A hint at the wrong block still finds it; a seq never anchored has no log.
    let hinted = find_anchoring_log(&provider.clone().erased(), contract, 0, Some(0))
        .await
        .unwrap();
    assert_eq!(hinted.as_ref(), Some(&anchoring));
    assert_eq!(
        find_anchoring_log(&provider.clone().erased(), contract, 1, None)
            .await
            .unwrap(),
        None
    );
    let receipt = provider
        .get_transaction_receipt(record.tx_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.block_hash, Some(record.block_hash));

    // Again: nothing is sent, the same anchor comes back.
    let again = anchor_checkpoint(&pool, &anchorer, first).await.unwrap();
    assert_eq!(again, record);
    assert_eq!(
        anchor.checkpointCount().call().await.unwrap(),
        U256::from(1)
    );

    // The next checkpoint names the previous root.
    let second = grow(&pool, &log, 5, 9).await;
    let record2 = anchor_checkpoint(&pool, &anchorer, second).await.unwrap();
    assert_eq!(record2.seq, 1);
    let logs = provider
        .get_transaction_receipt(record2.tx_hash)
        .await
        .unwrap()
        .unwrap();
    let event = logs
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<SettlementAnchor::CheckpointAnchored>().ok())
        .unwrap()
        .inner
        .data;
    assert_eq!(event.prevRoot, B256::from(root5));
    assert_eq!(event.treeSize, 9);

    // A checkpoint older than the anchored one can never be anchored.
    let mut tx = pool.begin().await.unwrap();
    log.append_all(&mut tx, &(9..12).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    let twelve = log.checkpoint(&mut tx).await.unwrap().tree_size;
    tx.commit().await.unwrap();
    let fifteen = grow(&pool, &log, 12, 15).await;
    anchor_checkpoint(&pool, &anchorer, fifteen).await.unwrap();
    assert!(matches!(
        anchor_checkpoint(&pool, &anchorer, twelve).await,
        Err(AnchorError::Superseded {
            tree_size: 12,
            anchored: 15
        })
    ));
    assert!(matches!(
        anchor_checkpoint(&pool, &anchorer, 99).await,
        Err(AnchorError::UnknownCheckpoint(99))
    ));
    let rows = anchor_rows(&pool).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(_, _, status)| status == "confirmed"));
}

#[tokio::test]
async fn a_reorg_that_drops_the_anchoring_transaction_gets_it_re_sent() {
    let anvil = common::anvil().await;
    let contract = deploy_anchor(&anvil).await;
    let pool = common::test_db().await;
    let anchorer = anchorer(&anvil, contract, 3).await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let size = grow(&pool, &log, 0, 7).await;

    let task = {
        let (pool, anchorer) = (pool.clone(), anchorer.clone());
        tokio::spawn(async move { anchor_checkpoint(&pool, &anchorer, size).await })
    };
    // Wait until the first transaction is mined (one confirmation of three).
    let first_tx = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let rows = anchor_rows(&pool).await;
            if let Some((_, tx, _)) = rows.iter().find(|(_, _, s)| s == "mined") {
                return tx.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the anchoring transaction is mined");
    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let anchor = SettlementAnchor::new(contract, &provider);
    assert_eq!(
        anchor.checkpointCount().call().await.unwrap(),
        U256::from(1)
    );

    // Replace the block holding it by an empty one.
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_reorg".into(),
            (1u64, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
    assert!(
        provider
            .get_transaction_receipt(first_tx.parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "the reorg dropped the transaction"
    );

    // Keep mining until the anchorer is satisfied.
    let record = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if task.is_finished() {
                return task.await.unwrap();
            }
            let _: serde_json::Value = provider
                .raw_request("anvil_mine".into(), (1u64,))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("anchoring completes")
    .unwrap();

    assert_ne!(format!("{:#x}", record.tx_hash), first_tx, "re-sent");
    let rows = anchor_rows(&pool).await;
    assert_eq!(
        rows.iter().filter(|(_, _, s)| s == "confirmed").count(),
        1,
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(_, tx, s)| tx == &first_tx && s == "dropped"),
        "{rows:?}"
    );
    // On the chain: one checkpoint, ours, in a canonical block.
    assert_eq!(
        anchor.checkpointCount().call().await.unwrap(),
        U256::from(1)
    );
    let mut conn = pool.acquire().await.unwrap();
    let root = TransparencyLog::root(&mut conn, size).await.unwrap();
    assert_eq!(
        anchor
            .checkpointBySize(size)
            .call()
            .await
            .unwrap()
            .checkpoint_
            .root,
        B256::from(root)
    );
    let block = provider
        .get_block_by_number(record.block_number.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.header.hash, record.block_hash);
    let head = provider.get_block_number().await.unwrap();
    assert!(head + 1 - record.block_number >= 3);
}

#[tokio::test]
async fn a_checkpoint_already_on_chain_is_adopted_through_its_event() {
    let anvil = common::anvil().await;
    let contract = deploy_anchor(&anvil).await;
    let pool = common::test_db().await;
    let anchorer = anchorer(&anvil, contract, 2).await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let size = grow(&pool, &log, 0, 6).await;
    let mut conn = pool.acquire().await.unwrap();
    let root = TransparencyLog::root(&mut conn, size).await.unwrap();

    // A node that crashed after sending, before recording: the chain has the
    // checkpoint, the database does not; a few blocks have followed.
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let receipt = SettlementAnchor::new(contract, &provider)
        .anchor(size, B256::from(root), B256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let _: serde_json::Value = provider
        .raw_request("anvil_mine".into(), (3u64,))
        .await
        .unwrap();

    let record = anchor_checkpoint(&pool, &anchorer, size).await.unwrap();
    assert_eq!(record.seq, 0);
    assert_eq!(record.tx_hash, receipt.transaction_hash);
    assert_eq!(Some(record.block_number), receipt.block_number);
    assert_eq!(Some(record.block_hash), receipt.block_hash);
    assert_eq!(record.gas_used, Some(receipt.gas_used));
    let rows = anchor_rows(&pool).await;
    assert_eq!(
        rows,
        vec![(
            i64::try_from(size).unwrap(),
            format!("{:#x}", receipt.transaction_hash),
            "confirmed".to_owned()
        )]
    );
    assert_eq!(
        SettlementAnchor::new(contract, &provider)
            .checkpointCount()
            .call()
            .await
            .unwrap(),
        U256::from(1)
    );
}

#[tokio::test]
async fn anchoring_refuses_a_chain_whose_checkpoints_are_not_this_log() {
    let anvil = common::anvil().await;
    let contract = deploy_anchor(&anvil).await;
    let pool = common::test_db().await;
    let anchorer = anchorer(&anvil, contract, 1).await;
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let size = grow(&pool, &log, 0, 5).await;

    // Someone anchored another tree of 3 leaves.
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    SettlementAnchor::new(contract, &provider)
        .anchor(3, B256::repeat_byte(7), B256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let err = anchor_checkpoint(&pool, &anchorer, size).await.unwrap_err();
    assert!(matches!(err, AnchorError::ChainMismatch(_)), "{err}");

    // And a checkpoint of our size with another root is a fork too.
    SettlementAnchor::new(contract, &provider)
        .anchor(5, B256::repeat_byte(8), B256::repeat_byte(7))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let err = anchor_checkpoint(&pool, &anchorer, size).await.unwrap_err();
    assert!(matches!(err, AnchorError::ChainMismatch(_)), "{err}");
    assert!(
        anchor_rows(&pool)
            .await
            .iter()
            .all(|(_, _, s)| s != "confirmed")
    );
}

#[tokio::test]
async fn the_contract_accepts_the_nodes_inclusion_proofs() {
    let anvil = common::anvil().await;
    let contract = deploy_anchor(&anvil).await;
    let pool = common::test_db().await;
    let log = TransparencyLog::new("epg/test").unwrap();
    let mut conn = pool.acquire().await.unwrap();
    log.append_all(&mut conn, &(0..37).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    let signer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let anchor = SettlementAnchor::new(contract, &provider);
    let sizes = [1u64, 2, 3, 5, 7, 8, 13, 16, 31, 32, 37];
    // Each size is a checkpoint: the contract verifies against its own size and root.
    let mut prev = B256::ZERO;
    for size in sizes {
        let root = B256::from(TransparencyLog::root(&mut conn, size).await.unwrap());
        anchor
            .anchor(size, root, prev)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        prev = root;
    }
    for (seq, size) in sizes.into_iter().enumerate() {
        let mut indices = vec![0, size / 2, size - 1];
        indices.dedup();
        for index in indices {
            let leaf = TransparencyLog::leaf_hash(&mut conn, index).await.unwrap();
            let proof = TransparencyLog::inclusion_proof(&mut conn, index, size)
                .await
                .unwrap();
            let path: Vec<B256> = proof.iter().map(|h| B256::from(*h)).collect();
            let verify = |seq: usize, index: u64| {
                anchor.verifyInclusionAt(
                    U256::from(seq),
                    B256::from(leaf),
                    U256::from(index),
                    path.clone(),
                )
            };
            assert!(
                verify(seq, index).call().await.unwrap(),
                "leaf {index} of {size}"
            );
            // Another checkpoint's size and root.
            let other_seq = (seq + 1) % sizes.len();
            assert!(!verify(other_seq, index).call().await.unwrap());
            if size > 1 {
                let other = (index + 1) % size;
                assert!(
                    !verify(seq, other).call().await.unwrap(),
                    "leaf {index} of {size} at {other}"
                );
            }
        }
    }
}

/// anvil's second funded account (its well-known default mnemonic).
const ANCHORER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

#[tokio::test]
async fn anchors_go_through_the_hot_wallet_pipeline_under_the_anchorers_own_nonce_row() {
    let anvil = common::anvil().await;
    let treasury: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let anchorer_key: PrivateKeySigner = ANCHORER_KEY.parse().unwrap();
    let plan = DeployPlan {
        treasury: treasury.address(),
        admin: treasury.address(),
        anchorer: anchorer_key.address(),
        dev_helpers: false,
        ..DeployPlan::default()
    };
    let contract = deploy::deploy(&anvil.rpc_url(), treasury.clone(), &plan)
        .await
        .unwrap()
        .anchor;
    let pool = common::test_db().await;
    let anchorer = Anchorer::connect(
        &anvil.rpc_url(),
        contract,
        anchorer_key.clone(),
        AnchorOptions {
            confirmations: 1,
            poll_interval: Duration::from_millis(50),
            timeout: Duration::from_secs(60),
            max_sends: 5,
        },
    )
    .await
    .unwrap();
    let log = TransparencyLog::new(anchorer.origin()).unwrap();
    let first = grow(&pool, &log, 0, 4).await;
    let record = anchor_checkpoint(&pool, &anchorer, first).await.unwrap();
    let second = grow(&pool, &log, 4, 6).await;
    anchor_checkpoint(&pool, &anchorer, second).await.unwrap();

    // Each anchor is a send of the pipeline, signed by the anchorer key.
    let sends: Vec<(String, Option<String>, String, Option<String>)> = sqlx::query_as(
        "SELECT purpose, signer, status, tx_hash FROM chain_sends ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let signer = format!("{:#x}", anchorer_key.address());
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(
        sends.iter().all(|(p, s, st, _)| p == "anchor"
            && s.as_deref() == Some(&signer)
            && st == "confirmed"),
        "{sends:?}"
    );
    assert_eq!(
        sends[0].3.as_deref(),
        Some(format!("{:#x}", record.tx_hash).as_str())
    );
    // Written ahead: every transaction of the send has its row.
    let txs: i64 = sqlx::query_scalar("SELECT count(*) FROM chain_send_txs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(txs, 2);
    // The anchorer's nonces are its own row; the treasury's is untouched.
    let nonces: Vec<(String, i64)> =
        sqlx::query_as("SELECT address, next_nonce FROM chain_nonces ORDER BY address")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(nonces, vec![(signer, 2)]);
    // And the treasury paid no gas for it: nothing is in the ledger.
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(entries, 0);
}
