//! `epg audit verify` against a real anvil: a genuine bundle verifies; one
//! byte changed anywhere (leaf data, salt, path, index, root), a bundle
//! pointed at another checkpoint or transaction, too few confirmations or
//! the wrong chain each fail, naming the check. Runs the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;

use epg::audit::verify::{self, names};
use epg::db::Db;
use epg::devnet::anvil::Anvil;
use serde_json::Value;

struct Fixture {
    anvil: Anvil,
    /// Bundle of leaf 3 against checkpoint 6.
    bundle: Value,
    /// Bundle of leaf 9 against checkpoint 13.
    later: Value,
    _pool: Db,
}

async fn fixture() -> Fixture {
    let anvil = common::anvil().await;
    let anchored = common::anchored::two_checkpoints(&anvil).await;
    assert_eq!(anchored.bundle["tree_size"], 6);
    assert_eq!(anchored.later["tree_size"], 13);
    Fixture {
        anvil,
        bundle: anchored.bundle,
        later: anchored.later,
        _pool: anchored.pool,
    }
}

/// Runs `epg audit verify`; returns the exit code and standard output.
async fn run_verify(
    dir: &Path,
    bundle: &Value,
    rpc_url: &str,
    confirmations: u64,
) -> (i32, String) {
    let file = dir.join(format!("bundle-{}.json", epg::ids::random_base62(8)));
    std::fs::write(&file, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["audit", "verify"])
        .arg(&file)
        .args(["--rpc-url", rpc_url])
        .args(["--confirmations", &confirmations.to_string()])
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Flips the low bit of the hex digit at `digit` (counted after `0x`).
fn flip_hex(s: &str, digit: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let at = 2 + digit;
    let v = chars[at].to_digit(16).unwrap() ^ 1;
    chars[at] = std::char::from_digit(v, 16).unwrap();
    chars.into_iter().collect()
}

fn failed(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn audit_verify_accepts_a_genuine_bundle_and_names_every_tampering() {
    let f = fixture().await;
    let rpc = f.anvil.rpc_url();
    let dir = tempfile::tempdir().unwrap();

    let (code, out) = run_verify(dir.path(), &f.bundle, &rpc, 1).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("VERIFIED"), "{out}");
    for name in [
        names::FORMAT,
        names::LEAF,
        names::INCLUSION,
        names::CHAIN,
        names::CHECKPOINT,
        names::CONTRACT_VERIFY,
        names::ANCHOR,
        names::CONFIRMATIONS,
    ] {
        assert!(out.contains(&format!("✓ {name}:")), "{name}: {out}");
    }
    let (code, out) = run_verify(dir.path(), &f.later, &rpc, 1).await;
    assert_eq!(code, 0, "{out}");

    // (what was changed, the bundle, the check that must fail)
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let b = &f.bundle;
    let data = b["leaf"]["data_hex"].as_str().unwrap();
    // The amount's last byte sits 9 bytes before the end of the data.
    let amount_digit = data.len() - 2 - 18 + 1;
    let mut v = b.clone();
    v["leaf"]["data_hex"] = flip_hex(data, amount_digit).into();
    cases.push(("one byte of the leaf data", v, names::INCLUSION));
    let mut v = b.clone();
    v["leaf"]["salt_hex"] = flip_hex(b["leaf"]["salt_hex"].as_str().unwrap(), 17).into();
    cases.push(("one byte of the salt", v, names::INCLUSION));
    let mut v = b.clone();
    v["inclusion_path"][1] = flip_hex(b["inclusion_path"][1].as_str().unwrap(), 40).into();
    cases.push(("one byte of a path element", v, names::INCLUSION));
    let mut v = b.clone();
    v["leaf_index"] = 2.into();
    cases.push(("the leaf index", v, names::INCLUSION));
    let mut v = b.clone();
    v["checkpoint"]["root"] = flip_hex(b["checkpoint"]["root"].as_str().unwrap(), 63).into();
    cases.push(("one byte of the root", v.clone(), names::INCLUSION));
    cases.push(("one byte of the root", v, names::CHECKPOINT));
    // Pointed at the other (genuine, anchored) checkpoint and its anchor.
    let mut v = b.clone();
    v["tree_size"] = f.later["tree_size"].clone();
    v["checkpoint"] = f.later["checkpoint"].clone();
    v["anchor"] = f.later["anchor"].clone();
    cases.push(("another checkpoint", v, names::INCLUSION));
    // The right checkpoint, but another anchoring transaction or block.
    let mut v = b.clone();
    v["anchor"]["tx_hash"] = f.later["anchor"]["tx_hash"].clone();
    cases.push(("another transaction", v, names::ANCHOR));
    let mut v = b.clone();
    v["anchor"]["block_number"] = (b["anchor"]["block_number"].as_u64().unwrap() + 1).into();
    cases.push(("another block", v, names::ANCHOR));
    // `decoded` claiming another amount than the data.
    let mut v = b.clone();
    v["leaf"]["decoded"]["amount"] = "999999".into();
    cases.push(("the decoded amount", v, names::LEAF));
    let mut v = b.clone();
    v["version"] = 2.into();
    cases.push(("the version", v, names::FORMAT));

    for (what, bundle, check) in &cases {
        let (code, out) = run_verify(dir.path(), bundle, &rpc, 1).await;
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains("NOT VERIFIED"), "{what}: {out}");
        assert!(
            failed(&out).iter().any(|f| f == check),
            "{what} must fail `{check}`: {out}"
        );
        assert!(
            out.lines().last().unwrap().contains(check),
            "{what}: the verdict names `{check}`: {out}"
        );
    }

    // Too few confirmations.
    let (code, out) = run_verify(dir.path(), &f.bundle, &rpc, 1000).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(failed(&out), vec![names::CONFIRMATIONS], "{out}");

    // Another chain.
    let other = common::anvil_with_chain_id(1337).await;
    let (code, out) = run_verify(dir.path(), &f.bundle, &other.rpc_url(), 1).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(failed(&out), vec![names::CHAIN], "{out}");

    // Not a bundle at all; an unreadable file.
    let (code, out) = run_verify(dir.path(), &serde_json::json!({"hello": 1}), &rpc, 1).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(failed(&out), vec![names::FORMAT], "{out}");
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args([
            "audit",
            "verify",
            "/nonexistent/bundle.json",
            "--rpc-url",
            &rpc,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn each_tampering_fails_exactly_the_checks_it_touches() {
    let f = fixture().await;
    let rpc = f.anvil.rpc_url();
    let report = |v: Value| {
        let rpc = rpc.clone();
        async move {
            let bytes = serde_json::to_vec(&v).unwrap();
            verify::verify_bundle(&bytes, &rpc, 1).await
        }
    };
    let genuine = report(f.bundle.clone()).await;
    assert!(genuine.passed(), "{:?}", genuine.checks);

    let b = &f.bundle;
    let mut v = b.clone();
    v["leaf"]["salt_hex"] = flip_hex(b["leaf"]["salt_hex"].as_str().unwrap(), 0).into();
    assert_eq!(
        report(v).await.failed(),
        vec![names::INCLUSION, names::CONTRACT_VERIFY]
    );

    let mut v = b.clone();
    let data = b["leaf"]["data_hex"].as_str().unwrap();
    v["leaf"]["data_hex"] = flip_hex(data, data.len() - 2 - 1).into();
    assert_eq!(
        report(v).await.failed(),
        vec![names::LEAF, names::INCLUSION, names::CONTRACT_VERIFY]
    );

    // The contract holds no checkpoint with that root: its verifier has
    // nothing to verify against (it takes the root from storage, not from
    // the bundle), so that check is skipped, which fails the verdict too.
    let mut v = b.clone();
    v["checkpoint"]["root"] = flip_hex(b["checkpoint"]["root"].as_str().unwrap(), 5).into();
    let tampered = report(v).await;
    assert_eq!(
        tampered.failed(),
        vec![names::INCLUSION, names::CHECKPOINT, names::ANCHOR]
    );
    assert_eq!(
        tampered.get(names::CONTRACT_VERIFY).unwrap().status,
        epg::audit::Status::Skipped
    );
    assert!(!tampered.passed());

    let mut v = b.clone();
    v["inclusion_path"] = serde_json::json!([]);
    assert_eq!(
        report(v).await.failed(),
        vec![names::INCLUSION, names::CONTRACT_VERIFY]
    );

    // The origin of the checkpoint is not the leaf's log.
    let mut v = b.clone();
    v["checkpoint"]["origin"] = "epg/1/0x0000000000000000000000000000000000000000".into();
    assert_eq!(report(v).await.failed(), vec![names::LEAF]);
}
