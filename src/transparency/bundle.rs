//! The proof bundle: everything needed to check, against the chain alone,
//! that one settled item is in the log.
//!
//! # Format, version 1
//!
//! ```json
//! {
//!   "object": "proof_bundle",
//!   "version": 1,
//!   "leaf": {
//!     "data_hex": "0x01…",
//!     "salt_hex": "0x…(32 bytes)",
//!     "decoded": {"version": 1, "origin": "epg/31337/0x…", "settlement_id": "st_…",
//!                 "merchant_id": "mer_…", "source_id": "pay_…", "kind": "payment",
//!                 "asset": "usd", "amount": "1234", "settled_at": 1700000000}
//!   },
//!   "leaf_index": 41,
//!   "tree_size": 64,
//!   "inclusion_path": ["0x…", "0x…"],
//!   "checkpoint": {"origin": "epg/31337/0x…", "tree_size": 64, "root": "0x…"},
//!   "anchor": {"chain_id": 31337, "contract": "0x…", "tx_hash": "0x…", "block_number": 17}
//! }
//! ```
//!
//! * `leaf.data_hex` is the leaf's canonical encoding ([`super::leaf`]) and
//!   `leaf.salt_hex` its salt; the leaf hash is
//!   `SHA-256(0x00 ‖ data ‖ salt)`. `decoded` is `data` decoded, for people
//!   to read: a verifier decodes `data` itself and must find the same.
//! * `inclusion_path` is RFC 9162's `PATH(leaf_index, D[tree_size])`, from the
//!   leaf's sibling up; `tree_size` equals `checkpoint.tree_size`.
//! * `checkpoint` is the log state the path leads to; `anchor` says where it
//!   was anchored: `SettlementAnchor.checkpointBySize(tree_size)` at
//!   `contract` on `chain_id` returns `root`, and transaction `tx_hash` in
//!   block `block_number` emitted `CheckpointAnchored` for it. The contract
//!   stores no block number: a verifier finds that log itself with
//!   `eth_getLogs` (its sequence number is an indexed topic) and checks that
//!   it is in `block_number`.
//!
//! All byte strings are `0x`-prefixed lower-case hex. The checkpoint is the
//! first anchored one that contains the leaf, so a leaf's bundle does not
//! change once issued, unless a reorg deeper than the confirmation depth
//! takes that anchor away: the node then anchors again and the bundle points
//! at the new transaction (the old one no longer verifies).

use serde::{Deserialize, Serialize};

use super::leaf::{LeafEntry, LeafKind, Salt};
use super::store::AnchoredCheckpoint;
use super::{Hash, LeafIndex, TransparencyError, TransparencyLog, hex32};
use crate::db::Db;
use crate::ids::MerchantId;

/// The bundle format version.
pub const BUNDLE_VERSION: u64 = 1;

/// Everything an auditor needs to verify that a settled payment is in the
/// anchored transparency log (`epg audit verify`): a proof bundle (see the
/// module documentation). Fields are kept as received so that a verifier
/// can report exactly which one is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofBundle {
    /// Always `proof_bundle`.
    #[serde(default = "object_name")]
    #[schema(schema_with = bundle_object_name, required = true)]
    pub object: String,
    /// Format version: 1.
    pub version: u64,
    /// The leaf's bytes.
    pub leaf: BundleLeaf,
    /// The leaf's position.
    pub leaf_index: u64,
    /// Size of the tree the path is for.
    pub tree_size: u64,
    /// RFC 9162 inclusion path `PATH(leaf_index, D[tree_size])`, hex hashes.
    pub inclusion_path: Vec<String>,
    /// The log state the path leads to.
    pub checkpoint: BundleCheckpoint,
    /// Where that state is anchored.
    pub anchor: BundleAnchor,
}

fn object_name() -> String {
    "proof_bundle".into()
}

crate::object_name_schema!(bundle_object_name, "proof_bundle");

/// The leaf of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ProofBundleLeaf)]
pub struct BundleLeaf {
    /// Canonical encoding, hex.
    pub data_hex: String,
    /// Salt, hex.
    pub salt_hex: String,
    /// `data` decoded, for reading.
    #[schema(value_type = Object)]
    pub decoded: serde_json::Value,
}

/// The checkpoint of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ProofBundleCheckpoint)]
pub struct BundleCheckpoint {
    /// The log's origin.
    pub origin: String,
    /// Number of leaves.
    pub tree_size: u64,
    /// Root, hex.
    pub root: String,
}

/// The anchor of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ProofBundleAnchor)]
pub struct BundleAnchor {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `SettlementAnchor` address, hex.
    pub contract: String,
    /// The anchoring transaction, hex.
    pub tx_hash: String,
    /// Its block.
    pub block_number: u64,
}

/// Assembles a bundle from its parts.
pub fn build(
    index: LeafIndex,
    data: &[u8],
    salt: &Salt,
    path: &[Hash],
    anchored: &AnchoredCheckpoint,
) -> Result<ProofBundle, TransparencyError> {
    let decoded = serde_json::to_value(LeafEntry::decode(data)?)
        .map_err(|e| TransparencyError::Corrupt(format!("leaf {index} as JSON: {e}")))?;
    let cp = &anchored.checkpoint;
    let anchor = &anchored.anchor;
    Ok(ProofBundle {
        object: object_name(),
        version: BUNDLE_VERSION,
        leaf: BundleLeaf {
            data_hex: format!("0x{}", hex::encode(data)),
            salt_hex: format!("0x{}", hex::encode(salt)),
            decoded,
        },
        leaf_index: index.get(),
        tree_size: cp.tree_size,
        inclusion_path: path.iter().map(hex32).collect(),
        checkpoint: BundleCheckpoint {
            origin: cp.origin.clone(),
            tree_size: cp.tree_size,
            root: hex32(&cp.root),
        },
        anchor: BundleAnchor {
            chain_id: anchor.chain_id,
            contract: format!("0x{}", hex::encode(anchor.contract.as_slice())),
            tx_hash: format!("{:#x}", anchor.tx_hash),
            block_number: anchor.block_number,
        },
    })
}

/// The bundle of leaf `index` against the first anchored checkpoint that
/// contains it. [`TransparencyError::NotAnchored`] until there is one.
pub async fn bundle_for_leaf(
    pool: &Db,
    index: LeafIndex,
) -> Result<ProofBundle, TransparencyError> {
    let mut conn = pool.acquire().await?;
    let (data, salt) = TransparencyLog::leaf(&mut conn, index.get()).await?;
    let anchored = TransparencyLog::anchored_checkpoint_covering(&mut conn, index.get())
        .await?
        .ok_or(TransparencyError::NotAnchored {
            leaf_index: index.get(),
        })?;
    let path =
        TransparencyLog::inclusion_proof(&mut conn, index.get(), anchored.checkpoint.tree_size)
            .await?;
    build(index, &data, &salt, &path, &anchored)
}

/// The bundle of a settled object of `merchant` (`pay_…`, `re_…`): its leaf
/// of `kind`, or its first leaf when `kind` is `None`.
/// [`TransparencyError::NotSettled`] if the object has no leaf yet (including
/// another merchant's object), [`TransparencyError::NotAnchored`] if its leaf
/// is not anchored yet.
pub async fn bundle_for_source(
    pool: &Db,
    merchant: &MerchantId,
    source_id: &str,
    kind: Option<LeafKind>,
) -> Result<ProofBundle, TransparencyError> {
    let index = {
        let mut conn = pool.acquire().await?;
        TransparencyLog::find_leaf(&mut conn, merchant.as_str(), source_id, kind).await?
    };
    let index = index.ok_or_else(|| TransparencyError::NotSettled {
        source_id: source_id.to_owned(),
    })?;
    bundle_for_leaf(pool, index).await
}
