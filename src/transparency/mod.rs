//! The settlement transparency log: one append-only RFC 6962 / RFC 9162
//! Merkle tree of every settled item, persisted in PostgreSQL, checkpointed
//! and anchored on-chain in `SettlementAnchor` (DESIGN.md, "Settlement and
//! the transparency log").
//!
//! * [`merkle`]: the tree's hashing, proofs and their verification, pure.
//! * [`leaf`]: the canonical, versioned encoding of a settled item.
//! * [`TransparencyLog`]: appends (inside the caller's transaction), roots,
//!   inclusion and consistency proofs, checkpoints, all O(log n).
//! * [`anchor`]: sends a checkpoint to `SettlementAnchor`, waits for its
//!   confirmations and re-sends it if a reorg drops it.
//! * [`bundle`]: the self-contained proof bundle of one leaf that
//!   `epg audit verify` checks against the chain.
//!
//! The log knows nothing about payments or HTTP: the settlement job hands
//! it [`LeafData`], the API reads proofs and checkpoints from it.

pub mod anchor;
pub mod bundle;
pub mod leaf;
pub mod merkle;
mod store;

use std::fmt;

use serde::Serialize;

pub use leaf::{LeafData, LeafEntry, LeafKind};
pub use merkle::Hash;
pub use store::{AnchorRecord, AnchoredCheckpoint, CheckpointPage, Listed, TransparencyLog};

/// Position of a leaf in the log, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LeafIndex(pub u64);

impl LeafIndex {
    /// The index as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A state of the log the node commits to: RFC 9162's tree head, named by
/// the log's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name.
    pub origin: String,
    /// Number of leaves.
    pub tree_size: u64,
    /// Root hash of those leaves.
    pub root: Hash,
}

/// The conventional origin of a log anchored in `contract` on `chain_id`:
/// `epg/<chain id>/<contract, lower-case hex>`.
pub fn origin_for_anchor(chain_id: u64, contract: alloy::primitives::Address) -> String {
    format!("epg/{chain_id}/0x{}", hex::encode(contract.as_slice()))
}

/// `0x`-prefixed lower-case hex of a hash.
pub fn hex32(hash: &Hash) -> String {
    format!("0x{}", hex::encode(hash))
}

/// Parses 32 bytes of hex, with or without `0x`.
pub fn parse_hex32(s: &str) -> Option<Hash> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum TransparencyError {
    /// The tree size asked for is beyond the log.
    #[error("the log has {tree_size} leaves; size {size} is beyond it")]
    SizeBeyondTree {
        /// Size asked for.
        size: u64,
        /// Leaves in the log.
        tree_size: u64,
    },
    /// The sizes or index do not make a proof.
    #[error(transparent)]
    Proof(#[from] merkle::ProofError),
    /// No such leaf.
    #[error("no leaf {0}")]
    NoSuchLeaf(u64),
    /// The object has no leaf in the log: it is not settled yet.
    #[error("{source_id} is not settled yet")]
    NotSettled {
        /// The object asked about.
        source_id: String,
    },
    /// The leaf exists but no anchored checkpoint covers it yet.
    #[error("leaf {leaf_index} is not anchored on-chain yet")]
    NotAnchored {
        /// The leaf.
        leaf_index: u64,
    },
    /// The object already has a leaf of this kind in this batch (a double
    /// settlement).
    #[error("{source_id} already has a {kind} leaf in this batch")]
    AlreadySettled {
        /// The object.
        source_id: String,
        /// The kind.
        kind: LeafKind,
    },
    /// A checkpoint of an empty log was asked for.
    #[error("the log is empty: nothing to checkpoint")]
    Empty,
    /// The database holds another origin than this log's.
    #[error("the log in this database is `{stored}`, not `{ours}`")]
    OriginMismatch {
        /// Origin in the database.
        stored: String,
        /// Origin of this `TransparencyLog`.
        ours: String,
    },
    /// A leaf cannot be encoded or stored bytes cannot be decoded.
    #[error(transparent)]
    Leaf(#[from] leaf::LeafError),
    /// The stored tree contradicts itself.
    #[error("the stored log is inconsistent: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
