//! `epg audit verify`: checks one proof bundle
//! ([`crate::transparency::bundle`]) against the chain.
//!
//! The checks, in order (a check whose inputs are unusable is skipped and
//! the verdict fails):
//!
//! 1. `bundle format` — the JSON is a version-1 proof bundle.
//! 2. `leaf data` — `data` is a canonical version-1 leaf, `decoded` says what
//!    `data` says, the salt is 32 bytes, and the leaf's origin is the
//!    checkpoint's.
//! 3. `inclusion` — `SHA-256(0x00 ‖ data ‖ salt)` and the path lead to the
//!    checkpoint's root, for the checkpoint's tree size (RFC 9162 §2.1.3.2).
//! 4. `chain id` — the RPC endpoint serves the bundle's chain.
//! 5. `checkpoint on chain` — `checkpointBySize(tree_size)` on the bundle's
//!    contract returns the bundle's root, and the contract's
//!    `CheckpointAnchored` log of that checkpoint (found with `eth_getLogs`
//!    by its sequence number) names the same size and root; its block is
//!    where the checkpoint was anchored.
//! 6. `contract verifyInclusionAt` — the contract's own verifier accepts the
//!    leaf hash and path for the checkpoint check 5 found, with the size and
//!    root the contract stores (it takes neither from the bundle).
//! 7. `anchor transaction` — the named transaction succeeded in the named
//!    block, that block is canonical, and the transaction emitted
//!    `CheckpointAnchored` with this size and root from the contract, in the
//!    block check 5 found.
//! 8. `confirmations` — that block has at least N confirmations.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};

use super::{Check, Report, short};
use crate::chain::contracts::SettlementAnchor;
use crate::transparency::anchor::{AnchoringLog, find_anchoring_log};
use crate::transparency::bundle::{BUNDLE_VERSION, ProofBundle};
use crate::transparency::leaf::{self, LeafEntry, SALT_LEN};
use crate::transparency::merkle::{self, Hash};
use crate::transparency::{hex32, parse_hex32};

/// Check names, for callers that look for one.
pub mod names {
    /// The JSON is a version-1 bundle.
    pub const FORMAT: &str = "bundle format";
    /// The leaf bytes decode and match `decoded` and the origin.
    pub const LEAF: &str = "leaf data";
    /// Leaf hash and path lead to the checkpoint root.
    pub const INCLUSION: &str = "inclusion";
    /// The RPC serves the bundle's chain.
    pub const CHAIN: &str = "chain id";
    /// The contract holds the checkpoint.
    pub const CHECKPOINT: &str = "checkpoint on chain";
    /// The contract's verifier accepts the path for its stored checkpoint.
    pub const CONTRACT_VERIFY: &str = "contract verifyInclusionAt";
    /// The anchoring transaction and its event.
    pub const ANCHOR: &str = "anchor transaction";
    /// Enough blocks on top.
    pub const CONFIRMATIONS: &str = "confirmations";
}

use names::*;

/// What the offline checks extracted for the on-chain ones.
struct Parsed {
    leaf_hash: Option<Hash>,
    path: Option<Vec<Hash>>,
    root: Option<Hash>,
}

fn parse_hex(field: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| format!("{field} is not hex: {e}"))
}

/// The checks that need no chain (1–3).
fn offline(bundle: &ProofBundle, report: &mut Report) -> Parsed {
    report.checks.push(if bundle.version == BUNDLE_VERSION {
        Check::pass(FORMAT, format!("proof bundle version {}", bundle.version))
    } else {
        Check::fail(
            FORMAT,
            format!(
                "version {} (this tool reads version {BUNDLE_VERSION})",
                bundle.version
            ),
        )
    });

    let data = parse_hex("leaf.data_hex", &bundle.leaf.data_hex);
    let salt = parse_hex("leaf.salt_hex", &bundle.leaf.salt_hex).and_then(|s| {
        <[u8; SALT_LEN]>::try_from(s.as_slice())
            .map_err(|_| format!("leaf.salt_hex has {} bytes, not {SALT_LEN}", s.len()))
    });
    report
        .checks
        .push(Check::from_result(LEAF, leaf_check(bundle, &data, &salt)));

    let leaf_hash = match (&data, &salt) {
        (Ok(data), Ok(salt)) => Some(leaf::leaf_hash(data, salt)),
        _ => None,
    };
    let path: Option<Vec<Hash>> = bundle
        .inclusion_path
        .iter()
        .map(|h| parse_hex32(h))
        .collect();
    let root = parse_hex32(&bundle.checkpoint.root);
    let inclusion = match (&leaf_hash, &path, &root) {
        (None, _, _) => Check::skipped(INCLUSION, "no leaf hash: the leaf bytes are unusable"),
        (_, None, _) => Check::fail(
            INCLUSION,
            "inclusion_path has an element that is not 32 bytes of hex",
        ),
        (_, _, None) => Check::fail(INCLUSION, "checkpoint.root is not 32 bytes of hex"),
        (Some(h), Some(p), Some(r)) => {
            Check::from_result(INCLUSION, inclusion_check(bundle, h, p, r))
        }
    };
    report.checks.push(inclusion);
    Parsed {
        leaf_hash,
        path,
        root,
    }
}

fn leaf_check(
    bundle: &ProofBundle,
    data: &Result<Vec<u8>, String>,
    salt: &Result<[u8; SALT_LEN], String>,
) -> Result<String, String> {
    let data = data.as_ref().map_err(Clone::clone)?;
    salt.as_ref().map_err(Clone::clone)?;
    let entry = LeafEntry::decode(data).map_err(|e| format!("leaf.data_hex: {e}"))?;
    let decoded = serde_json::to_value(&entry).map_err(|e| e.to_string())?;
    if decoded != bundle.leaf.decoded {
        return Err(format!(
            "leaf.decoded does not say what leaf.data_hex says: the data decodes to {decoded}"
        ));
    }
    if entry.origin != bundle.checkpoint.origin {
        return Err(format!(
            "the leaf belongs to log `{}`, the checkpoint to `{}`",
            entry.origin, bundle.checkpoint.origin
        ));
    }
    let d = &entry.data;
    Ok(format!(
        "{} {} of {}: {} {}, settlement {}, settled at {}",
        d.kind,
        d.source_id,
        d.merchant_id,
        d.amount,
        d.asset,
        d.settlement_id,
        i64::try_from(d.settled_at)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| t
                .format(&time::format_description::well_known::Rfc3339)
                .ok())
            .unwrap_or_else(|| d.settled_at.to_string())
    ))
}

fn inclusion_check(
    bundle: &ProofBundle,
    leaf_hash: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<String, String> {
    if bundle.tree_size != bundle.checkpoint.tree_size {
        return Err(format!(
            "the path is for a tree of {} leaves, the checkpoint has {}",
            bundle.tree_size, bundle.checkpoint.tree_size
        ));
    }
    match merkle::root_from_inclusion(leaf_hash, bundle.leaf_index, bundle.tree_size, path) {
        Ok(computed) if &computed == root => Ok(format!(
            "leaf {} (hash {}) and {} path hashes lead to root {} of the {}-leaf tree",
            bundle.leaf_index,
            short(&hex32(leaf_hash)),
            path.len(),
            hex32(root),
            bundle.tree_size
        )),
        Ok(computed) => Err(format!(
            "leaf {} and its path lead to root {}, not the checkpoint's {}",
            bundle.leaf_index,
            hex32(&computed),
            hex32(root)
        )),
        Err(e) => Err(format!(
            "the path does not fit leaf {} of a {}-leaf tree: {e}",
            bundle.leaf_index, bundle.tree_size
        )),
    }
}

/// Runs every check of `bundle_json` against the chain at `rpc_url`,
/// requiring `confirmations` blocks on the anchoring block.
pub async fn verify_bundle(bundle_json: &[u8], rpc_url: &str, confirmations: u64) -> Report {
    let mut report = Report::default();
    let bundle: ProofBundle = match serde_json::from_slice(bundle_json) {
        Ok(b) => b,
        Err(e) => {
            report
                .checks
                .push(Check::fail(FORMAT, format!("not a proof bundle: {e}")));
            for name in [
                LEAF,
                INCLUSION,
                CHAIN,
                CHECKPOINT,
                CONTRACT_VERIFY,
                ANCHOR,
                CONFIRMATIONS,
            ] {
                report
                    .checks
                    .push(Check::skipped(name, "no bundle to check"));
            }
            return report;
        }
    };
    let parsed = offline(&bundle, &mut report);
    on_chain(&bundle, &parsed, rpc_url, confirmations, &mut report).await;
    report
}

/// Checks 4–8.
async fn on_chain(
    bundle: &ProofBundle,
    parsed: &Parsed,
    rpc_url: &str,
    confirmations: u64,
    report: &mut Report,
) {
    let skip_rest = |report: &mut Report, from: usize, why: &str| {
        for name in [CHECKPOINT, CONTRACT_VERIFY, ANCHOR, CONFIRMATIONS]
            .into_iter()
            .skip(from)
        {
            report.checks.push(Check::skipped(name, why));
        }
    };
    let provider = match rpc_url.parse() {
        Ok(url) => ProviderBuilder::default().connect_http(url).erased(),
        Err(e) => {
            report
                .checks
                .push(Check::fail(CHAIN, format!("bad RPC URL {rpc_url}: {e}")));
            skip_rest(report, 0, "no chain to ask");
            return;
        }
    };
    match provider.get_chain_id().await {
        Ok(id) if id == bundle.anchor.chain_id => report
            .checks
            .push(Check::pass(CHAIN, format!("{rpc_url} serves chain {id}"))),
        Ok(id) => {
            report.checks.push(Check::fail(
                CHAIN,
                format!(
                    "{rpc_url} serves chain {id}, the bundle names chain {}",
                    bundle.anchor.chain_id
                ),
            ));
            skip_rest(report, 0, "wrong chain");
            return;
        }
        Err(e) => {
            report.checks.push(Check::fail(
                CHAIN,
                format!("{rpc_url} does not answer: {e}"),
            ));
            skip_rest(report, 0, "no chain to ask");
            return;
        }
    }
    let Ok(contract) = bundle.anchor.contract.parse::<Address>() else {
        report.checks.push(Check::fail(
            CHECKPOINT,
            format!(
                "anchor.contract `{}` is not an address",
                bundle.anchor.contract
            ),
        ));
        skip_rest(report, 1, "no contract");
        return;
    };
    let anchor = SettlementAnchor::new(contract, &provider);

    let (anchored, seq) =
        match checkpoint_check(&provider, &anchor, bundle, parsed.root.as_ref()).await {
            Ok((detail, log, seq)) => {
                report.checks.push(Check::pass(CHECKPOINT, detail));
                (Some(log), Some(seq))
            }
            Err(detail) => {
                report.checks.push(Check::fail(CHECKPOINT, detail));
                (None, None)
            }
        };

    report
        .checks
        .push(match (seq, &parsed.leaf_hash, &parsed.path) {
            (None, _, _) => {
                Check::skipped(CONTRACT_VERIFY, "no checkpoint on chain to verify against")
            }
            (Some(seq), Some(leaf_hash), Some(path)) => {
                let accepted = anchor
                    .verifyInclusionAt(
                        U256::from(seq),
                        B256::from(*leaf_hash),
                        U256::from(bundle.leaf_index),
                        path.iter().map(|h| B256::from(*h)).collect(),
                    )
                    .call()
                    .await;
                match accepted {
                    Ok(true) => Check::pass(
                        CONTRACT_VERIFY,
                        format!(
                            "{contract} accepts the leaf hash and path for its checkpoint #{seq}"
                        ),
                    ),
                    Ok(false) => Check::fail(
                        CONTRACT_VERIFY,
                        format!(
                            "{contract} rejects the leaf hash and path for its checkpoint #{seq}"
                        ),
                    ),
                    Err(e) => Check::fail(CONTRACT_VERIFY, format!("call failed: {e}")),
                }
            }
            _ => Check::skipped(CONTRACT_VERIFY, "the bundle's hashes are unusable"),
        });

    let block = match anchor_check(
        &provider,
        contract,
        bundle,
        parsed.root.as_ref(),
        anchored.as_ref(),
    )
    .await
    {
        Ok((detail, block)) => {
            report.checks.push(Check::pass(ANCHOR, detail));
            block
        }
        Err(detail) => {
            report.checks.push(Check::fail(ANCHOR, detail));
            report.checks.push(Check::skipped(
                CONFIRMATIONS,
                "no canonical anchoring block to count from",
            ));
            return;
        }
    };
    report.checks.push(match provider.get_block_number().await {
        Ok(head) => {
            let have = (head + 1).saturating_sub(block);
            if have >= confirmations {
                Check::pass(
                    CONFIRMATIONS,
                    format!("{have} ≥ {confirmations} (block {block}, head {head})"),
                )
            } else {
                Check::fail(
                    CONFIRMATIONS,
                    format!("only {have} of {confirmations} (block {block}, head {head})"),
                )
            }
        }
        Err(e) => Check::fail(CONFIRMATIONS, format!("no chain head: {e}")),
    });
}

/// Check 5; on success also the checkpoint's `CheckpointAnchored` log and
/// its sequence number.
async fn checkpoint_check(
    provider: &DynProvider,
    anchor: &SettlementAnchor::SettlementAnchorInstance<&DynProvider>,
    bundle: &ProofBundle,
    root: Option<&Hash>,
) -> Result<(String, AnchoringLog, u64), String> {
    let size = bundle.checkpoint.tree_size;
    let found = anchor.checkpointBySize(size).call().await.map_err(|e| {
        use SettlementAnchor::SettlementAnchorErrors as E;
        match e.as_decoded_interface_error::<E>() {
            Some(E::UnknownTreeSize(_)) => {
                format!("{} holds no checkpoint of {size} leaves", anchor.address())
            }
            _ => format!(
                "checkpointBySize({size}) on {} failed: {e}",
                anchor.address()
            ),
        }
    })?;
    let cp = found.checkpoint_;
    if cp.treeSize != size {
        return Err(format!(
            "the contract answered size {} for {size}",
            cp.treeSize
        ));
    }
    let root = root.ok_or("checkpoint.root is not 32 bytes of hex")?;
    if cp.root.0 != *root {
        return Err(format!(
            "the contract's checkpoint #{} of {size} leaves has root {:#x}, the bundle {}",
            found.seq,
            cp.root,
            hex32(root)
        ));
    }
    // The contract keeps no block number: its event's block says where the
    // checkpoint was anchored. The bundle's block is only where to look first.
    let seq = u64::try_from(found.seq).map_err(|e| format!("sequence number: {e}"))?;
    let log = find_anchoring_log(
        provider,
        *anchor.address(),
        seq,
        Some(bundle.anchor.block_number),
    )
    .await?
    .ok_or_else(|| {
        format!(
            "{} holds checkpoint #{seq} but the chain has no CheckpointAnchored #{seq} from it",
            anchor.address()
        )
    })?;
    if log.tree_size != size || log.root.0 != *root {
        return Err(format!(
            "CheckpointAnchored #{seq} names size {} root {:#x}, not the contract's checkpoint",
            log.tree_size, log.root
        ));
    }
    Ok((
        format!(
            "{} holds checkpoint #{seq}: {size} leaves, root {}, anchored in block {}",
            anchor.address(),
            hex32(root),
            log.block_number
        ),
        log,
        seq,
    ))
}

/// The anchoring transaction's checks (7), against the checkpoint's log
/// that check 5 found if it did; the block number on success.
async fn anchor_check(
    provider: &DynProvider,
    contract: Address,
    bundle: &ProofBundle,
    root: Option<&Hash>,
    anchored: Option<&AnchoringLog>,
) -> Result<(String, u64), String> {
    let tx: B256 = bundle
        .anchor
        .tx_hash
        .parse()
        .map_err(|_| format!("anchor.tx_hash `{}` is not a hash", bundle.anchor.tx_hash))?;
    let receipt = provider
        .get_transaction_receipt(tx)
        .await
        .map_err(|e| format!("receipt of {tx:#x}: {e}"))?
        .ok_or_else(|| format!("transaction {tx:#x} is not on this chain"))?;
    if !receipt.status() {
        return Err(format!("transaction {tx:#x} reverted"));
    }
    let (Some(number), Some(hash)) = (receipt.block_number, receipt.block_hash) else {
        return Err(format!("transaction {tx:#x} is not in a block yet"));
    };
    if number != bundle.anchor.block_number {
        return Err(format!(
            "transaction {tx:#x} is in block {number}, the bundle says {}",
            bundle.anchor.block_number
        ));
    }
    let canonical = provider
        .get_block_by_number(number.into())
        .await
        .map_err(|e| format!("block {number}: {e}"))?
        .map(|b| b.header.hash);
    if canonical != Some(hash) {
        return Err(format!(
            "block {number} of the receipt ({hash:#x}) is not the canonical block at that height"
        ));
    }
    let root = root.ok_or("checkpoint.root is not 32 bytes of hex")?;
    let event = receipt.inner.logs().iter().find_map(|log| {
        if log.address() != contract {
            return None;
        }
        log.log_decode::<SettlementAnchor::CheckpointAnchored>()
            .ok()
            .map(|l| l.inner.data)
    });
    let Some(event) = event else {
        return Err(format!(
            "transaction {tx:#x} emitted no CheckpointAnchored from {contract}"
        ));
    };
    if event.treeSize != bundle.checkpoint.tree_size || event.root.0 != *root {
        return Err(format!(
            "transaction {tx:#x} anchored size {} root {:#x}, not the bundle's checkpoint",
            event.treeSize, event.root
        ));
    }
    if let Some(log) = anchored
        && (log.tx_hash != tx || log.block_number != number)
    {
        return Err(format!(
            "the contract's checkpoint was anchored by {:#x} in block {}, not by {tx:#x} in block {number}",
            log.tx_hash, log.block_number
        ));
    }
    Ok((
        format!(
            "{tx:#x} in canonical block {number} emitted CheckpointAnchored(#{}, {}, {})",
            event.seq,
            event.treeSize,
            short(&format!("{:#x}", event.root))
        ),
        number,
    ))
}

/// The verdict line.
pub fn verdict(report: &Report, bundle_json: &[u8]) -> String {
    if report.passed() {
        let what = serde_json::from_slice::<ProofBundle>(bundle_json)
            .map(|b| {
                format!(
                    "leaf {} is in the log state anchored by {} on chain {} in block {}",
                    b.leaf_index, b.anchor.contract, b.anchor.chain_id, b.anchor.block_number
                )
            })
            .unwrap_or_default();
        format!("VERIFIED: {what}")
    } else {
        let failed = report.failed();
        if failed.is_empty() {
            "NOT VERIFIED: some checks could not run".into()
        } else {
            format!("NOT VERIFIED: failed check(s): {}", failed.join(", "))
        }
    }
}
