//! `epg audit follow`: checks the whole anchored history of a log.
//!
//! 1. `anchor events` — every `CheckpointAnchored` and `CheckpointsSuperseded`
//!    event of the contract, read with `eth_getLogs` in bounded block ranges
//!    and replayed in chain order: sequence numbers run 0, 1, 2, …, a
//!    supersede removes the checkpoints from its `fromSeq` on (whose numbers
//!    the next anchors use again), and what is left is the contract's
//!    `checkpointCount()` live checkpoints.
//! 2. `supersede #k` — one check per `CheckpointsSuperseded`: the admin
//!    removed anchored checkpoints. It FAILS, loudly, until the auditor has
//!    looked at it and passes its transaction with `--accept-supersede`; its
//!    detail says which checkpoints went and, asking the node, whether they
//!    were states of its log (a recovery from a stolen key or a bug removes
//!    checkpoints that were not; removing ones that were rewrites history).
//! 3. `chain links` — each live checkpoint names the previous root and grows
//!    the tree (the contract enforces it; an auditor checks anyway).
//! 4. With `--previous-anchor` (after a migration to a new contract),
//!    `handover`: the previous contract's latest checkpoint and this one's
//!    first are states of one log, by the node's consistency proof.
//! 5. For the first live checkpoint and then every consecutive pair, the
//!    node's public `GET /v1/transparency/consistency?from=&to=` answer: the
//!    proof must verify against the two ON-CHAIN roots (RFC 9162 §2.1.4.2),
//!    and the roots the node says it has must be the anchored ones. A node
//!    that rewrote, truncated or forked its log cannot produce such a proof.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::Deserialize;

use super::{Check, Report, short};
use crate::chain::contracts::SettlementAnchor;
use crate::transparency::merkle::{self, Hash};
use crate::transparency::{hex32, parse_hex32};

/// Where to look, and what the auditor already reviewed.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// First block to read events from (the contract's deployment block).
    pub from_block: u64,
    /// Blocks per `eth_getLogs` request.
    pub chunk: u64,
    /// Transactions of `CheckpointsSuperseded` events the auditor has
    /// reviewed: their checks pass (still saying what was removed).
    pub accepted_supersedes: Vec<B256>,
    /// The anchor the log was anchored in before this one (after a
    /// migration, ARCHITECTURE.md): its latest checkpoint and this
    /// contract's first must be states of one log.
    pub previous_anchor: Option<Address>,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            from_block: 0,
            chunk: 5_000,
            accepted_supersedes: Vec::new(),
            previous_anchor: None,
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

/// A `CheckpointsSuperseded` event: the admin removed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupersedeEvent {
    /// The first sequence number removed (and the next one anchored).
    pub from_seq: u64,
    /// The checkpoint count before.
    pub previous_count: u64,
    /// The checkpoints removed, as they were anchored.
    pub removed: Vec<AnchoredEvent>,
    /// Block of the event.
    pub block_number: u64,
    /// Transaction of the event.
    pub tx_hash: Option<B256>,
}

/// The contract's events replayed in chain order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The checkpoints that stand, by sequence number.
    pub live: Vec<AnchoredEvent>,
    /// Every supersede, in chain order.
    pub supersedes: Vec<SupersedeEvent>,
    /// `CheckpointAnchored` events read, superseded ones included.
    pub anchored_events: usize,
    /// Events that do not fit the replay (a sequence number out of turn, a
    /// supersede of checkpoints that were never anchored): a log read from
    /// too late a block, or a contract that is not a `SettlementAnchor`.
    pub misfits: Vec<String>,
}

/// The node's consistency answer (the fields this tool uses).
#[derive(Debug, Deserialize)]
struct ConsistencyAnswer {
    from_root: String,
    to_root: String,
    proof: Vec<String>,
}

/// An event of either kind, with its position in the chain.
enum Logged {
    Anchored(AnchoredEvent),
    Superseded {
        from_seq: u64,
        previous_count: u64,
        block_number: u64,
        tx_hash: Option<B256>,
    },
}

/// Reads every `CheckpointAnchored` and `CheckpointsSuperseded` event of
/// `anchor` and replays them in chain order; also the contract's
/// `checkpointCount()` and the head read up to.
pub async fn anchored_history(
    rpc_url: &str,
    anchor: Address,
    options: &FollowOptions,
) -> Result<(History, u64, u64), String> {
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
    let mut logged = Vec::new();
    let mut from = options.from_block;
    while from <= head {
        let to = from.saturating_add(chunk - 1).min(head);
        let filter = Filter::new()
            .address(anchor)
            .event_signature(vec![
                SettlementAnchor::CheckpointAnchored::SIGNATURE_HASH,
                SettlementAnchor::CheckpointsSuperseded::SIGNATURE_HASH,
            ])
            .from_block(from)
            .to_block(to);
        let logs = provider
            .get_logs(&filter)
            .await
            .map_err(|e| format!("eth_getLogs {from}–{to}: {e}"))?;
        for log in logs.iter().filter(|l| !l.removed) {
            let block_number = log.block_number.unwrap_or_default();
            let position = (block_number, log.log_index.unwrap_or_default());
            let event = if let Ok(decoded) =
                log.log_decode::<SettlementAnchor::CheckpointAnchored>()
            {
                let e = decoded.inner.data;
                Logged::Anchored(AnchoredEvent {
                    seq: u64::try_from(e.seq).map_err(|e| e.to_string())?,
                    tree_size: e.treeSize,
                    root: e.root.0,
                    prev_root: e.prevRoot.0,
                    block_number,
                    tx_hash: log.transaction_hash,
                })
            } else {
                let decoded = log
                    .log_decode::<SettlementAnchor::CheckpointsSuperseded>()
                    .map_err(|e| format!("undecodable event in block {block_number}: {e}"))?;
                let e = decoded.inner.data;
                Logged::Superseded {
                    from_seq: u64::try_from(e.fromSeq).map_err(|e| e.to_string())?,
                    previous_count: u64::try_from(e.previousCount).map_err(|e| e.to_string())?,
                    block_number,
                    tx_hash: log.transaction_hash,
                }
            };
            logged.push((position, event));
        }
        from = to + 1;
    }
    logged.sort_by_key(|(position, _)| *position);
    Ok((replay(logged.into_iter().map(|(_, e)| e)), count, head))
}

/// The history the events make, in chain order.
fn replay(events: impl IntoIterator<Item = Logged>) -> History {
    let mut history = History::default();
    for event in events {
        match event {
            Logged::Anchored(e) => {
                history.anchored_events += 1;
                if usize::try_from(e.seq).ok() != Some(history.live.len()) {
                    history.misfits.push(format!(
                        "CheckpointAnchored #{} in block {} while {} checkpoints stood",
                        e.seq,
                        e.block_number,
                        history.live.len()
                    ));
                }
                history.live.push(e);
            }
            Logged::Superseded {
                from_seq,
                previous_count,
                block_number,
                tx_hash,
            } => {
                let stood = history.live.len();
                if u64::try_from(stood).ok() != Some(previous_count) {
                    history.misfits.push(format!(
                        "CheckpointsSuperseded in block {block_number} says {previous_count} \
                         checkpoints stood, the events before it make {stood}"
                    ));
                }
                let keep = usize::try_from(from_seq).unwrap_or(usize::MAX).min(stood);
                let removed = history.live.split_off(keep);
                history.supersedes.push(SupersedeEvent {
                    from_seq,
                    previous_count,
                    removed,
                    block_number,
                    tx_hash,
                });
            }
        }
    }
    history
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

/// The loud check of one supersede: it fails unless the auditor accepted its
/// transaction, and says what was removed and whether each removed
/// checkpoint was a state of the node's log.
async fn supersede_check(
    client: &reqwest::Client,
    node_url: &str,
    k: usize,
    supersede: &SupersedeEvent,
    accepted: &[B256],
) -> Check {
    let name = format!("supersede #{}", k + 1);
    let tx = supersede.tx_hash.map_or_else(
        || "an unknown transaction".to_owned(),
        |h| format!("{h:#x}"),
    );
    let mut removed = Vec::new();
    for e in &supersede.removed {
        // The node's root at that size, if it has one.
        let verdict = match ask_node(client, node_url, e.tree_size, e.tree_size).await {
            Ok(answer) => match parse_hex32(&answer.to_root) {
                Some(root) if root == e.root => "a state of the node's log",
                _ => "NOT a state of the node's log",
            },
            Err(_) => "not a state the node can show",
        };
        removed.push(format!(
            "#{} ({} leaves, root {}, block {}: {verdict})",
            e.seq,
            e.tree_size,
            short(&hex32(&e.root)),
            e.block_number
        ));
    }
    let detail = format!(
        "SUPERSEDED: the contract's admin removed checkpoints #{}–#{} in {tx} (block {}): {}",
        supersede.from_seq,
        supersede.previous_count.saturating_sub(1),
        supersede.block_number,
        removed.join(", ")
    );
    if supersede.tx_hash.is_some_and(|h| accepted.contains(&h)) {
        Check::pass(name, format!("{detail}; accepted with --accept-supersede"))
    } else {
        Check::fail(
            name,
            format!("{detail}; review it, then pass --accept-supersede {tx}"),
        )
    }
}

/// The `handover` check of a migration: the previous anchor's latest
/// checkpoint and this contract's first are states of one log, by the
/// node's consistency proof between them (in size order) against both
/// on-chain roots.
async fn handover(
    rpc_url: &str,
    previous: Address,
    client: &reqwest::Client,
    node_url: &str,
    first: &AnchoredEvent,
) -> Check {
    let name = "handover";
    let latest = async {
        let url = rpc_url
            .parse()
            .map_err(|e| format!("bad RPC URL {rpc_url}: {e}"))?;
        let provider: DynProvider = ProviderBuilder::default().connect_http(url).erased();
        SettlementAnchor::new(previous, &provider)
            .latest()
            .call()
            .await
            .map_err(|e| format!("latest() on the previous anchor {previous}: {e}"))
    };
    let latest = match latest.await {
        Ok(latest) => latest,
        Err(e) => return Check::fail(name, e),
    };
    let old = AnchoredEvent {
        seq: u64::try_from(latest.seq).unwrap_or(u64::MAX),
        tree_size: latest.checkpoint_.treeSize,
        root: latest.checkpoint_.root.0,
        prev_root: [0u8; 32],
        block_number: 0,
        tx_hash: None,
    };
    let (a, b) = if old.tree_size <= first.tree_size {
        (&old, first)
    } else {
        (first, &old)
    };
    let answer = ask_node(client, node_url, a.tree_size, b.tree_size).await;
    Check::from_result(
        name,
        check_pair(Some(a), b, answer).map(|detail| {
            format!(
                "{previous}'s latest checkpoint (#{}, {} leaves) and this contract's first \
                 ({} leaves) are one log: {detail}",
                old.seq, old.tree_size, first.tree_size
            )
        }),
    )
}

/// Runs every check; `Err` only when the chain cannot be read at all.
pub async fn follow(
    rpc_url: &str,
    anchor: Address,
    node_url: &str,
    options: &FollowOptions,
) -> Result<Report, String> {
    let mut report = Report::default();
    let (history, count, head) = anchored_history(rpc_url, anchor, options).await?;
    let events = &history.live;

    let complete =
        history.misfits.is_empty() && u64::try_from(events.len()).is_ok_and(|n| n == count);
    report.checks.push(if complete {
        Check::pass(
            "anchor events",
            format!(
                "{} CheckpointAnchored and {} CheckpointsSuperseded events from {anchor} in \
                 blocks {}–{head}: {count} checkpoints stand",
                history.anchored_events,
                history.supersedes.len(),
                options.from_block
            ),
        )
    } else {
        Check::fail(
            "anchor events",
            format!(
                "the events leave {} checkpoints with sequence numbers {:?}, the contract \
                 counts {count} (start earlier with --from-block?){}",
                events.len(),
                events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                history
                    .misfits
                    .iter()
                    .map(|m| format!("; {m}"))
                    .collect::<String>()
            ),
        )
    });

    let client = reqwest::Client::new();
    for (k, supersede) in history.supersedes.iter().enumerate() {
        report.checks.push(
            supersede_check(
                &client,
                node_url,
                k,
                supersede,
                &options.accepted_supersedes,
            )
            .await,
        );
    }

    let mut broken = Vec::new();
    let mut prev: Option<&AnchoredEvent> = None;
    for e in events {
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
    let first = &events[0];
    let answer = ask_node(&client, node_url, first.tree_size, first.tree_size).await;
    report.checks.push(Check::from_result(
        format!("checkpoint #{}", first.seq),
        check_pair(None, first, answer),
    ));
    if let Some(previous) = options.previous_anchor {
        report
            .checks
            .push(handover(rpc_url, previous, &client, node_url, first).await);
    }
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
