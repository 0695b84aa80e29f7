//! The transparency log in PostgreSQL: appends inside transactions, roots
//! and proofs identical to the in-memory tree, one appender at a time, the
//! database refusing to change history, bundles, and the public endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use alloy::primitives::U256;
use epg::db::Db;
use epg::transparency::bundle::{self, bundle_for_source};
use epg::transparency::leaf::{self, LeafEntry};
use epg::transparency::merkle::{self, MemoryTree};
use epg::transparency::{LeafData, LeafIndex, LeafKind, TransparencyError, TransparencyLog};
use sqlx::Connection;

const ORIGIN: &str = "epg/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3";

fn item(i: u64) -> LeafData {
    LeafData {
        settlement_id: format!("st_{:024}", i / 10),
        merchant_id: "mer_000000000000000000000001".into(),
        source_id: format!("pay_{i:024}"),
        kind: LeafKind::Payment,
        asset: "usd".into(),
        amount: U256::from(1000 + i),
        settled_at: 1_700_000_000 + i,
    }
}

/// The stored tree rebuilt in memory from the leaves' data and salt.
async fn memory_tree(pool: &Db) -> MemoryTree {
    let mut conn = pool.acquire().await.unwrap();
    let size = TransparencyLog::tree_size(&mut conn).await.unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..size {
        let (data, salt) = TransparencyLog::leaf(&mut conn, i).await.unwrap();
        let h = leaf::leaf_hash(&data, &salt);
        assert_eq!(TransparencyLog::leaf_hash(&mut conn, i).await.unwrap(), h);
        let entry = LeafEntry::decode(&data).unwrap();
        assert_eq!(entry.origin, ORIGIN);
        assert_eq!(entry.data, item(i));
        tree.push(h);
    }
    tree
}

#[tokio::test]
async fn roots_and_proofs_from_the_database_match_the_in_memory_tree() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    // Appends of every shape: one per transaction, several per transaction,
    // and batches.
    let mut next = 0u64;
    for _ in 0..5 {
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(
            log.append(&mut tx, &item(next)).await.unwrap(),
            LeafIndex(next)
        );
        tx.commit().await.unwrap();
        next += 1;
    }
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..7 {
        assert_eq!(
            log.append(&mut tx, &item(next)).await.unwrap(),
            LeafIndex(next)
        );
        next += 1;
    }
    tx.commit().await.unwrap();
    for batch in [1u64, 16, 3, 31, 7] {
        let items: Vec<_> = (next..next + batch).map(item).collect();
        let mut tx = pool.begin().await.unwrap();
        let indices = log.append_all(&mut tx, &items).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            indices,
            (next..next + batch).map(LeafIndex).collect::<Vec<_>>()
        );
        next += batch;
    }
    assert_eq!(next, 70);

    let tree = memory_tree(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(TransparencyLog::tree_size(&mut conn).await.unwrap(), 70);
    let head = TransparencyLog::head_checkpoint(&mut conn).await.unwrap();
    assert_eq!(head.root, tree.root(70).unwrap());
    for n in 0..=70u64 {
        assert_eq!(
            TransparencyLog::root(&mut conn, n).await.unwrap(),
            tree.root(n).unwrap(),
            "root({n})"
        );
    }
    for n in (1..=40u64).chain([63, 64, 65, 70]) {
        for m in 0..n {
            assert_eq!(
                TransparencyLog::inclusion_proof(&mut conn, m, n)
                    .await
                    .unwrap(),
                tree.inclusion_proof(m, n).unwrap(),
                "PATH({m}, D[{n}])"
            );
        }
        for m in 0..=n {
            assert_eq!(
                TransparencyLog::consistency_proof(&mut conn, m, n)
                    .await
                    .unwrap(),
                tree.consistency_proof(m, n).unwrap(),
                "PROOF({m}, D[{n}])"
            );
        }
    }
    assert!(matches!(
        TransparencyLog::root(&mut conn, 71).await,
        Err(TransparencyError::SizeBeyondTree {
            size: 71,
            tree_size: 70
        })
    ));
    assert!(matches!(
        TransparencyLog::inclusion_proof(&mut conn, 70, 70).await,
        Err(TransparencyError::Proof(_))
    ));
    assert!(matches!(
        TransparencyLog::consistency_proof(&mut conn, 3, 71).await,
        Err(TransparencyError::SizeBeyondTree { .. })
    ));
    // Only perfect subtrees are stored: at most one per leaf.
    let nodes: i64 = sqlx::query_scalar("SELECT count(*) FROM transparency_nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(nodes, 70 - i64::from(70u32.count_ones()));
}

#[tokio::test]
async fn concurrent_appenders_take_turns_and_leave_no_gaps() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let (pool, log) = (pool.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for k in 0..10u64 {
                let mut tx = pool.begin().await.unwrap();
                let mut leaf = item(t * 100 + k);
                leaf.source_id = format!("pay_t{t}_{k}");
                got.push(log.append(&mut tx, &leaf).await.unwrap().get());
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    let mut conn = pool.acquire().await.unwrap();
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT leaf_hash FROM transparency_leaves ORDER BY leaf_index")
            .fetch_all(&pool)
            .await
            .unwrap();
    let tree = MemoryTree::from_leaf_hashes(hashes.iter().map(|h| h[..].try_into().unwrap()));
    assert_eq!(
        TransparencyLog::root(&mut conn, 40).await.unwrap(),
        tree.root(40).unwrap()
    );
    assert_eq!(
        TransparencyLog::head_checkpoint(&mut conn)
            .await
            .unwrap()
            .root,
        tree.root(40).unwrap()
    );
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_trace() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut tx = pool.begin().await.unwrap();
    log.append(&mut tx, &item(0)).await.unwrap();
    log.checkpoint(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(TransparencyLog::tree_size(&mut conn).await.unwrap(), 0);
    assert!(
        TransparencyLog::latest_checkpoint(&mut conn)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(log.append(&mut conn, &item(0)).await.unwrap(), LeafIndex(0));
}

#[tokio::test]
async fn the_database_refuses_to_change_history() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    log.append_all(&mut conn, &(0..4).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    log.checkpoint(&mut conn).await.unwrap();
    for statement in [
        "UPDATE transparency_leaves SET leaf_hash = sha256('x') WHERE leaf_index = 1",
        "UPDATE transparency_leaves SET data = data || '\\x00'::bytea",
        "DELETE FROM transparency_leaves WHERE leaf_index = 3",
        "TRUNCATE transparency_leaves CASCADE",
        "UPDATE transparency_nodes SET hash = sha256('x')",
        "DELETE FROM transparency_nodes",
        "TRUNCATE transparency_nodes",
        "UPDATE transparency_checkpoints SET root = sha256('x')",
        "DELETE FROM transparency_checkpoints",
        "UPDATE transparency_head SET tree_size = 2",
        "UPDATE transparency_head SET origin = 'another'",
        "DELETE FROM transparency_head",
    ] {
        let err = sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect_err(statement);
        assert!(
            err.to_string().contains("transparency log"),
            "{statement}: {err}"
        );
    }
    assert_eq!(TransparencyLog::tree_size(&mut conn).await.unwrap(), 4);
}

#[tokio::test]
async fn one_log_one_origin_and_one_leaf_per_object_kind_and_batch() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    log.append(&mut conn, &item(0)).await.unwrap();

    let other = TransparencyLog::new("epg/1/0x0000000000000000000000000000000000000001").unwrap();
    assert!(matches!(
        other.append(&mut conn, &item(1)).await,
        Err(TransparencyError::OriginMismatch { .. })
    ));
    assert!(TransparencyLog::new("has space").is_err());
    assert!(TransparencyLog::new("").is_err());

    let mut tx = conn.begin().await.unwrap();
    let err = log.append(&mut tx, &item(0)).await.unwrap_err();
    assert!(
        matches!(&err, TransparencyError::AlreadySettled { source_id, kind: LeafKind::Payment } if source_id == &item(0).source_id),
        "{err}"
    );
    tx.rollback().await.unwrap();
    // The same object may have a leaf of another kind (its fee), and one
    // of the same kind in a later batch (a second transfer settled later).
    let mut fee = item(0);
    fee.kind = LeafKind::Fee;
    assert_eq!(log.append(&mut conn, &fee).await.unwrap(), LeafIndex(1));
    let mut later = item(0);
    later.settlement_id = format!("st_{:024}", 77);
    assert_eq!(log.append(&mut conn, &later).await.unwrap(), LeafIndex(2));

    let mut bad = item(9);
    bad.asset = String::new();
    assert!(matches!(
        log.append(&mut conn, &bad).await,
        Err(TransparencyError::Leaf(_))
    ));
}

#[tokio::test]
async fn checkpoints_are_recorded_once_per_size() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(matches!(
        log.checkpoint(&mut conn).await,
        Err(TransparencyError::Empty)
    ));
    log.append_all(&mut conn, &(0..5).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    let a = log.checkpoint(&mut conn).await.unwrap();
    let b = log.checkpoint(&mut conn).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.tree_size, 5);
    assert_eq!(a.origin, ORIGIN);
    assert_eq!(a.root, TransparencyLog::root(&mut conn, 5).await.unwrap());
    assert_eq!(
        TransparencyLog::checkpoint_at(&mut conn, 5).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        TransparencyLog::latest_checkpoint(&mut conn).await.unwrap(),
        Some(a)
    );
}

/// Records a confirmed anchor without a chain (the anchor tests use anvil).
async fn fake_anchor(pool: &Db, tree_size: i64, block: i64) {
    sqlx::query(
        "INSERT INTO transparency_anchors
             (tree_size, chain_id, contract, tx_hash, status, block_number, block_hash, seq, confirmed_at)
         VALUES ($1, 31337, '0x5fbdb2315678afecb367f032d93f642f64180aa3',
                 '0x' || encode(sha256(($1::text || 'tx')::bytea), 'hex'), 'confirmed', $2,
                 '0x' || encode(sha256(($1::text || 'block')::bytea), 'hex'),
                 (SELECT count(*) FROM transparency_anchors), now())",
    )
    .bind(tree_size)
    .bind(block)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn bundles_say_not_settled_then_not_anchored_then_prove_inclusion() {
    let pool = common::test_db().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let merchant = epg::ids::MerchantId::parse("mer_000000000000000000000001").unwrap();
    let source = item(3).source_id;
    assert!(matches!(
        bundle_for_source(&pool, &merchant, &source, Some(LeafKind::Payment)).await,
        Err(TransparencyError::NotSettled { .. })
    ));
    let mut conn = pool.acquire().await.unwrap();
    log.append_all(&mut conn, &(0..6).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    log.checkpoint(&mut conn).await.unwrap();
    assert!(matches!(
        bundle_for_source(&pool, &merchant, &source, None).await,
        Err(TransparencyError::NotAnchored { leaf_index: 3 })
    ));
    // Another merchant's object is simply not settled.
    let other = epg::ids::MerchantId::parse("mer_000000000000000000000002").unwrap();
    assert!(matches!(
        bundle_for_source(&pool, &other, &source, None).await,
        Err(TransparencyError::NotSettled { .. })
    ));
    fake_anchor(&pool, 6, 10).await;
    log.append_all(&mut conn, &(6..11).map(item).collect::<Vec<_>>())
        .await
        .unwrap();
    log.checkpoint(&mut conn).await.unwrap();
    fake_anchor(&pool, 11, 20).await;

    // Leaf 3: the first anchored checkpoint that holds it is size 6.
    let b = bundle_for_source(&pool, &merchant, &source, Some(LeafKind::Payment))
        .await
        .unwrap();
    assert_eq!(b.version, 1);
    assert_eq!(b.leaf_index, 3);
    assert_eq!(b.tree_size, 6);
    assert_eq!(b.checkpoint.tree_size, 6);
    assert_eq!(b.checkpoint.origin, ORIGIN);
    assert_eq!(b.anchor.block_number, 10);
    assert_eq!(b.anchor.chain_id, 31337);
    assert_eq!(b.leaf.decoded["source_id"], source);
    assert_eq!(b.leaf.decoded["amount"], "1003");
    let data = hex::decode(b.leaf.data_hex.trim_start_matches("0x")).unwrap();
    let salt: leaf::Salt = hex::decode(b.leaf.salt_hex.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    let path: Vec<_> = b
        .inclusion_path
        .iter()
        .map(|h| epg::transparency::parse_hex32(h).unwrap())
        .collect();
    let root = epg::transparency::parse_hex32(&b.checkpoint.root).unwrap();
    merkle::verify_inclusion(&leaf::leaf_hash(&data, &salt), 3, 6, &path, &root).unwrap();
    // Leaf 8 is only in the second.
    let b8 = bundle::bundle_for_leaf(&pool, LeafIndex(8)).await.unwrap();
    assert_eq!(b8.tree_size, 11);
    assert_eq!(b8.anchor.block_number, 20);
    // JSON round trip of the documented format.
    let json = serde_json::to_value(&b).unwrap();
    for key in [
        "version",
        "leaf",
        "leaf_index",
        "tree_size",
        "inclusion_path",
        "checkpoint",
        "anchor",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(
        serde_json::from_value::<bundle::ProofBundle>(json).unwrap(),
        b
    );
}

#[tokio::test]
async fn public_endpoints_serve_checkpoints_and_consistency_proofs_without_a_key() {
    let app = common::spawn_app().await;
    let log = TransparencyLog::new(ORIGIN).unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let mut sizes = Vec::new();
    for (i, batch) in [3u64, 4, 6].into_iter().enumerate() {
        let start = sizes.last().copied().unwrap_or(0);
        log.append_all(
            &mut conn,
            &(start..start + batch).map(item).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        let cp = log.checkpoint(&mut conn).await.unwrap();
        fake_anchor(
            &app.pool,
            i64::try_from(cp.tree_size).unwrap(),
            5 + i64::try_from(i).unwrap(),
        )
        .await;
        sizes.push(cp.tree_size);
    }
    // An unanchored checkpoint is not listed.
    log.append(&mut conn, &item(13)).await.unwrap();
    log.checkpoint(&mut conn).await.unwrap();

    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    let list = common::json(get("/v1/transparency/checkpoints").await.unwrap(), 200).await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    let listed: Vec<u64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tree_size"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![13, 7, 3]);
    let first = &list["data"][0];
    assert_eq!(first["object"], "checkpoint");
    assert_eq!(first["origin"], ORIGIN);
    assert_eq!(first["anchor"]["chain_id"], 31337);
    assert_eq!(first["anchor"]["block_number"], 7);
    assert!(first["root"].as_str().unwrap().starts_with("0x"));

    let page = common::json(
        get("/v1/transparency/checkpoints?limit=1&starting_after=13")
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page["data"][0]["tree_size"], 7);
    assert_eq!(page["has_more"], true);
    let back = common::json(
        get("/v1/transparency/checkpoints?ending_before=3")
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(back["data"].as_array().unwrap().len(), 2);
    assert_eq!(back["data"][0]["tree_size"], 13);
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("starting_after=x", "starting_after"),
        ("colour=red", "colour"),
    ] {
        let err = common::json(
            get(&format!("/v1/transparency/checkpoints?{query}"))
                .await
                .unwrap(),
            400,
        )
        .await;
        assert_eq!(err["error"]["param"], param, "{query}");
    }

    let proof = common::json(
        get("/v1/transparency/consistency?from=3&to=13")
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(proof["object"], "consistency_proof");
    let parse =
        |v: &serde_json::Value| epg::transparency::parse_hex32(v.as_str().unwrap()).unwrap();
    let hashes: Vec<_> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(parse)
        .collect();
    merkle::verify_consistency(
        3,
        13,
        &parse(&proof["from_root"]),
        &parse(&proof["to_root"]),
        &hashes,
    )
    .unwrap();
    assert_eq!(
        parse(&proof["to_root"]),
        TransparencyLog::root(&mut conn, 13).await.unwrap()
    );

    for (query, status, param) in [
        ("from=3", 400, "to"),
        ("to=3", 400, "from"),
        ("from=x&to=3", 400, "from"),
        ("from=-1&to=3", 400, "from"),
        ("from=3&to=1.5", 400, "to"),
        ("from=5&to=3", 400, "from"),
        ("from=3&to=15", 404, "to"),
    ] {
        let err = common::json(
            get(&format!("/v1/transparency/consistency?{query}"))
                .await
                .unwrap(),
            status,
        )
        .await;
        assert_eq!(err["error"]["param"], param, "{query}");
        if status == 404 {
            assert_eq!(err["error"]["code"], "resource_missing");
        }
    }
    // Up to the current size (14, including the unanchored leaf) is fine.
    common::json(
        get("/v1/transparency/consistency?from=0&to=14")
            .await
            .unwrap(),
        200,
    )
    .await;
}
