//! `epg audit follow`: checks the whole anchored history of a log.
//!
//! 1. `anchor events` — every `CheckpointAnchored` event of the contract,
//!    read with `eth_getLogs` in bounded block ranges; their sequence numbers
//!    run 0, 1, 2, … up to the contract's `checkpointCount()`.
//! 2. `chain links` — each checkpoint names the previous root and grows the
//!    tree (the contract enforces it; an auditor checks anyway).
//! 3. For the first checkpoint and then every consecutive pair, the node's
//!    public `GET /v1/transparency/consistency?from=&to=` answer: the proof
//!    must verify against the two ON-CHAIN roots (RFC 9162 §2.1.4.2), and the
//!    roots the node says it has must be the anchored ones. A node that
//!    rewrote, truncated or forked its log cannot produce such a proof.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::Deserialize;

use super::{Check, Report, short};
use crate::chain::contracts::SettlementAnchor;
use crate::transparency::merkle::{self, Hash};
use crate::transparency::{hex32, parse_hex32};

/// Where to look.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// First block to read events from (the contract's deployment block).
    pub from_block: u64,
    /// Blocks per `eth_getLogs` request.
    pub chunk: u64,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            from_block: 0,
            chunk: 5_000,
        }
    }
}

/// One anchored checkpoint, from its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchoredEvent {
    /// Sequence number in the contract.
    pub seq: u64,
    /// Tree size.
    pub tree_size: u64,
    /// Root.
    pub root: Hash,
    /// The root it extends (zero for the first).
    pub prev_root: Hash,
    /// Block it was anchored in.
    pub block_number: u64,
    /// Transaction that anchored it.
    pub tx_hash: Option<B256>,
}

/// The node's consistency answer (the fields this tool uses).
#[derive(Debug, Deserialize)]
struct ConsistencyAnswer {
    from_root: String,
    to_root: String,
    proof: Vec<String>,
}

/// Reads every `CheckpointAnchored` event of `anchor`, in order of sequence
/// number.
pub async fn anchored_events(
    rpc_url: &str,
    anchor: Address,
    options: &FollowOptions,
) -> Result<(Vec<AnchoredEvent>, u64, u64), String> {
    let url = rpc_url
        .parse()
        .map_err(|e| format!("bad RPC URL {rpc_url}: {e}"))?;
    let provider: DynProvider = ProviderBuilder::default().connect_http(url).erased();
    let head = provider
        .get_block_number()
        .await
        .map_err(|e| format!("{rpc_url}: {e}"))?;
    let count = SettlementAnchor::new(anchor, &provider)
        .checkpointCount()
        .call()
        .await
        .map_err(|e| format!("checkpointCount() on {anchor}: {e}"))?;
    let count = u64::try_from(count).map_err(|e| e.to_string())?;
    let chunk = options.chunk.max(1);
    let mut events = Vec::new();
    let mut from = options.from_block;
    while from <= head {
        let to = from.saturating_add(chunk - 1).min(head);
        let filter = Filter::new()
            .address(anchor)
            .event_signature(SettlementAnchor::CheckpointAnchored::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let logs = provider
            .get_logs(&filter)
            .await
            .map_err(|e| format!("eth_getLogs {from}–{to}: {e}"))?;
        for log in logs.iter().filter(|l| !l.removed) {
            let decoded = log
                .log_decode::<SettlementAnchor::CheckpointAnchored>()
                .map_err(|e| format!("undecodable CheckpointAnchored in block {from}–{to}: {e}"))?;
            let e = decoded.inner.data;
            events.push(AnchoredEvent {
                seq: u64::try_from(e.seq).map_err(|e| e.to_string())?,
                tree_size: e.treeSize,
                root: e.root.0,
                prev_root: e.prevRoot.0,
                block_number: log.block_number.unwrap_or_default(),
                tx_hash: log.transaction_hash,
            });
        }
        from = to + 1;
    }
    events.sort_by_key(|e| e.seq);
    Ok((events, count, head))
}

/// Asks the node for the consistency proof between two sizes.
async fn ask_node(
    client: &reqwest::Client,
    node_url: &str,
    from: u64,
    to: u64,
) -> Result<ConsistencyAnswer, String> {
    let url = format!(
        "{}/v1/transparency/consistency?from={from}&to={to}",
        node_url.trim_end_matches('/')
    );
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if status.as_u16() == 404 {
        return Err(format!(
            "the node has fewer than {to} leaves: its log was truncated ({body})"
        ));
    }
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: unreadable answer: {e}"))
}

/// One checkpoint pair: the proof against the on-chain roots, and the
/// node's own roots against them.
fn check_pair(
    first: Option<&AnchoredEvent>,
    second: &AnchoredEvent,
    answer: Result<ConsistencyAnswer, String>,
) -> Result<String, String> {
    let answer = answer?;
    let (m, first_root) = first.map_or((second.tree_size, second.root), |f| (f.tree_size, f.root));
    let n = second.tree_size;
    let mut problems = Vec::new();
    for (size, claimed, anchored) in [
        (m, &answer.from_root, &first_root),
        (n, &answer.to_root, &second.root),
    ] {
        match parse_hex32(claimed) {
            Some(root) if &root == anchored => {}
            _ => problems.push(format!(
                "the node's root at size {size} is {claimed}, the anchored root is {}: rewritten",
                hex32(anchored)
            )),
        }
    }
    let proof: Option<Vec<Hash>> = answer.proof.iter().map(|h| parse_hex32(h)).collect();
    match proof {
        None => problems.push("the proof has an element that is not 32 bytes of hex".into()),
        Some(proof) => {
            if let Err(e) = merkle::verify_consistency(m, n, &first_root, &second.root, &proof) {
                problems.push(format!(
                    "the node's consistency proof {m} → {n} does not hold between the anchored \
                     roots ({e}): the log was forked or rewritten"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(if first.is_some() {
            format!(
                "size {m} → {n}: the node proves the anchored root {} extends {}",
                short(&hex32(&second.root)),
                short(&hex32(&first_root))
            )
        } else {
            format!(
                "size {n}: the node's root is the anchored {}",
                short(&hex32(&second.root))
            )
        })
    } else {
        Err(problems.join("; "))
    }
}

/// Runs every check; `Err` only when the chain cannot be read at all.
pub async fn follow(
    rpc_url: &str,
    anchor: Address,
    node_url: &str,
    options: &FollowOptions,
) -> Result<Report, String> {
    let mut report = Report::default();
    let (events, count, head) = anchored_events(rpc_url, anchor, options).await?;

    let seqs_ok = events
        .iter()
        .enumerate()
        .all(|(i, e)| u64::try_from(i).is_ok_and(|i| i == e.seq));
    let complete = seqs_ok && u64::try_from(events.len()).is_ok_and(|n| n == count);
    report.checks.push(if complete {
        Check::pass(
            "anchor events",
            format!(
                "{count} CheckpointAnchored events from {anchor} in blocks {}–{head}",
                options.from_block
            ),
        )
    } else {
        Check::fail(
            "anchor events",
            format!(
                "read {} events with sequence numbers {:?}, the contract counts {count} \
                 (start earlier with --from-block?)",
                events.len(),
                events.iter().map(|e| e.seq).collect::<Vec<_>>()
            ),
        )
    });

    let mut broken = Vec::new();
    let mut prev: Option<&AnchoredEvent> = None;
    for e in &events {
        let (want_root, min_size) = prev.map_or(([0u8; 32], 0), |p| (p.root, p.tree_size));
        if e.prev_root != want_root || e.tree_size <= min_size {
            broken.push(format!("#{}", e.seq));
        }
        prev = Some(e);
    }
    report.checks.push(if broken.is_empty() {
        Check::pass(
            "chain links",
            "each checkpoint grows the tree and names the previous root",
        )
    } else {
        Check::fail(
            "chain links",
            format!(
                "checkpoints {} do not extend their predecessor",
                broken.join(", ")
            ),
        )
    });

    if events.is_empty() {
        report.checks.push(Check::pass(
            "consistency",
            "nothing anchored yet: nothing to compare",
        ));
        return Ok(report);
    }
    let client = reqwest::Client::new();
    let first = &events[0];
    let answer = ask_node(&client, node_url, first.tree_size, first.tree_size).await;
    report.checks.push(Check::from_result(
        format!("checkpoint #{}", first.seq),
        check_pair(None, first, answer),
    ));
    for pair in events.windows(2) {
        let [a, b] = pair else { continue };
        let answer = ask_node(&client, node_url, a.tree_size, b.tree_size).await;
        report.checks.push(Check::from_result(
            format!("consistency #{} → #{}", a.seq, b.seq),
            check_pair(Some(a), b, answer),
        ));
    }
    Ok(report)
}
