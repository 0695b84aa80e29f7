//! RFC 6962 / RFC 9162 Merkle tree hashing with SHA-256, as pure functions.
//!
//! * Leaf hash `SHA-256(0x00 ‖ entry)`, interior node `SHA-256(0x01 ‖ left ‖ right)`,
//!   empty tree `SHA-256("")` (RFC 9162 §2.1.1).
//! * A tree of any size `n` splits at `k`, the largest power of two smaller
//!   than `n`: `MTH(D[n]) = H(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))`.
//! * Inclusion proofs `PATH(m, D[n])` (§2.1.3) and consistency proofs
//!   `PROOF(m, D[n])` (§2.1.4), and their verification (§2.1.3.2, §2.1.4.2).
//!
//! Storage-independent: the proof generators return the [`Span`]s (runs of
//! leaves) whose hashes make up a proof, and every span that the RFC's
//! recursion produces is a handful of *perfect* subtrees ([`NodeId`]: 2^level
//! leaves at an aligned offset). A store keeps the perfect subtrees' hashes,
//! fetches the nodes a proof needs in one go, and folds them with
//! [`span_hash`]. Of the ≤ log2(n) spans of a proof at most two are not
//! themselves perfect, so a proof needs O(log n) stored nodes.
//! [`Frontier`] is the right edge of a tree: what an append needs.
//! [`MemoryTree`] runs the same code over an in-memory tree.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: leaf hash, node hash or root.
pub type Hash = [u8; 32];

/// Domain separation prefix of leaf hashes.
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of interior node hashes.
pub const NODE_PREFIX: u8 = 0x01;

/// The root of the empty tree, SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 ‖ entry)`.
pub fn hash_leaf(entry: &[u8]) -> Hash {
    hash_leaf_parts(&[entry])
}

/// `SHA-256(0x00 ‖ parts[0] ‖ parts[1] ‖ …)`: the leaf hash of the
/// concatenation, without building it.
pub fn hash_leaf_parts(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly smaller than `n` (`n ≥ 2`); 1 below.
pub fn split(n: u64) -> u64 {
    if n < 2 {
        return 1;
    }
    // n - 1 ≥ 1, so its highest bit is at most 63.
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A perfect subtree: the `2^level` leaves from `index · 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0: a leaf).
    pub level: u8,
    /// Position among the subtrees of this level, from 0.
    pub index: u64,
}

impl NodeId {
    /// The first leaf it covers.
    pub fn start(self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf it covers.
    pub fn end(self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// The leaves `start..end` of one tree, as a subtree of the RFC's recursion
/// (`start` is aligned to a power of two at least as large as the span's
/// largest perfect part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// First leaf.
    pub start: u64,
    /// One past the last leaf.
    pub end: u64,
}

impl Span {
    /// `start..end`.
    pub fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Number of leaves.
    pub fn len(self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it has no leaves.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The perfect subtrees that make it up, largest (leftmost) first: the
    /// binary decomposition of its length. Its hash is their right fold
    /// (see [`span_hash`]).
    pub fn perfect_nodes(self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        let mut at = self.start;
        while at < self.end {
            let remaining = self.end - at;
            // The largest power of two that fits, and that `at` is aligned to
            // (always the former for spans of the RFC's recursion).
            let mut level = 63 - remaining.leading_zeros();
            if at != 0 {
                level = level.min(at.trailing_zeros());
            }
            // level ≤ 63, so it fits a u8.
            let level_u8 = u8::try_from(level).unwrap_or(63);
            nodes.push(NodeId {
                level: level_u8,
                index: at >> level,
            });
            at += 1u64 << level;
        }
        nodes
    }
}

/// Why a proof cannot be produced or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// Leaf index given.
        index: u64,
        /// Tree size given.
        size: u64,
    },
    /// The first tree size is larger than the second.
    #[error("tree size {first} is larger than {second}")]
    SizesOutOfOrder {
        /// First (older) size.
        first: u64,
        /// Second (newer) size.
        second: u64,
    },
    /// The proof has more hashes than the sizes call for.
    #[error("the proof has too many hashes")]
    TooLong,
    /// The proof has fewer hashes than the sizes call for.
    #[error("the proof has too few hashes")]
    TooShort,
    /// The proof leads to another root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// Root the proof leads to (hex).
        computed: String,
        /// Root it was checked against (hex).
        expected: String,
    },
    /// A size beyond the tree's.
    #[error("tree size {size} is beyond the tree's {tree_size} leaves")]
    SizeBeyondTree {
        /// Size asked for.
        size: u64,
        /// Leaves in the tree.
        tree_size: u64,
    },
    /// A stored node a proof needs is missing.
    #[error("node {level}/{index} is missing")]
    MissingNode {
        /// Level of the missing node.
        level: u8,
        /// Index of the missing node.
        index: u64,
    },
}

fn mismatch(computed: &Hash, expected: &Hash) -> ProofError {
    ProofError::RootMismatch {
        computed: hex::encode(computed),
        expected: hex::encode(expected),
    }
}

/// The hash of `span` from the hashes of its perfect parts; `None` if
/// `lookup` lacks one of them. The empty span hashes to [`empty_root`].
pub fn span_hash(span: Span, mut lookup: impl FnMut(NodeId) -> Option<Hash>) -> Option<Hash> {
    let nodes = span.perfect_nodes();
    let mut hashes = Vec::with_capacity(nodes.len());
    for node in nodes {
        hashes.push(lookup(node)?);
    }
    Some(fold_right(&hashes))
}

/// `H(h0, H(h1, … H(h_{k-2}, h_{k-1})))`: the root of perfect subtrees laid
/// side by side, largest first. Empty: [`empty_root`].
pub fn fold_right(hashes: &[Hash]) -> Hash {
    let Some((last, rest)) = hashes.split_last() else {
        return empty_root();
    };
    rest.iter()
        .rev()
        .fold(*last, |acc, left| hash_children(left, &acc))
}

/// The spans whose hashes form `PATH(index, D[size])` (RFC 9162 §2.1.3.1),
/// from the leaf's sibling up to the root's child.
pub fn inclusion_spans(index: u64, size: u64) -> Result<Vec<Span>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut siblings = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split(end - start);
        if index < start + k {
            siblings.push(Span::new(start + k, end));
            end = start + k;
        } else {
            siblings.push(Span::new(start, start + k));
            start += k;
        }
    }
    siblings.reverse();
    Ok(siblings)
}

/// The spans whose hashes form `PROOF(first, D[second])` (RFC 9162
/// §2.1.4.1). Empty when `first` is 0 or equal to `second`.
pub fn consistency_spans(first: u64, second: u64) -> Result<Vec<Span>, ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b), unrolled: `m` counts from `start`.
    let mut siblings = Vec::new();
    let (mut start, mut end, mut m, mut whole) = (0u64, second, first, true);
    let base = loop {
        let len = end - start;
        if m == len {
            // The old tree is exactly this subtree: its hash is needed unless
            // it is the whole old tree, which the verifier already knows.
            break (!whole).then_some(Span::new(start, end));
        }
        let k = split(len);
        if m <= k {
            siblings.push(Span::new(start + k, end));
            end = start + k;
        } else {
            siblings.push(Span::new(start, start + k));
            start += k;
            m -= k;
            whole = false;
        }
    };
    Ok(base.into_iter().chain(siblings.into_iter().rev()).collect())
}

/// Hashes `spans` with `lookup`; the first missing node is an error.
pub fn hash_spans(
    spans: &[Span],
    mut lookup: impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let mut missing = None;
        let hash = span_hash(*span, |node| {
            let found = lookup(node);
            if found.is_none() {
                missing = Some(node);
            }
            found
        });
        match (hash, missing) {
            (Some(hash), _) => out.push(hash),
            (None, Some(node)) => {
                return Err(ProofError::MissingNode {
                    level: node.level,
                    index: node.index,
                });
            }
            (None, None) => return Err(ProofError::MissingNode { level: 0, index: 0 }),
        }
    }
    Ok(out)
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–5),
/// or why it cannot lead anywhere.
pub fn root_from_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in path {
        if snode == 0 {
            return Err(ProofError::TooLong);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = hash_children(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = hash_children(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::TooShort);
    }
    Ok(r)
}

/// Verifies that the leaf with hash `leaf_hash` is leaf `index` of the tree
/// of `size` leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf_hash, index, size, path)?;
    if &computed != root {
        return Err(mismatch(&computed, root));
    }
    Ok(())
}

/// Verifies that the tree of `first` leaves with root `first_root` is a
/// prefix of the tree of `second` leaves with root `second_root`
/// (RFC 9162 §2.1.4.2). Size 0 (root [`empty_root`]) is a prefix of every tree.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second || first == 0 {
        if !proof.is_empty() {
            return Err(ProofError::TooLong);
        }
        let expected = if first == 0 {
            empty_root()
        } else {
            *second_root
        };
        if first_root != &expected {
            return Err(mismatch(first_root, &expected));
        }
        return Ok(());
    }
    let Some((head, tail)) = proof.split_first() else {
        return Err(ProofError::TooShort);
    };
    // Step 2: a power-of-two old tree is a complete subtree; its root is the
    // starting point and the proof leaves it out.
    let (seed, rest) = if first.is_power_of_two() {
        (*first_root, proof)
    } else {
        (*head, tail)
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::TooLong);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = hash_children(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::TooShort);
    }
    if &fr != first_root {
        return Err(mismatch(&fr, first_root));
    }
    if &sr != second_root {
        return Err(mismatch(&sr, second_root));
    }
    Ok(())
}

/// The right edge of a tree: the hashes of the perfect subtrees of its
/// size's binary decomposition, largest (leftmost) first. Enough to append
/// and to compute the current root, in O(log n).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier as stored; `None` unless there is one hash per bit set in
    /// `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (u64::from(size.count_ones()) == u64::try_from(hashes.len()).ok()?)
            .then_some(Self { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree hashes, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The nodes these hashes belong to, largest first.
    pub fn nodes(&self) -> Vec<NodeId> {
        Span::new(0, self.size).perfect_nodes()
    }

    /// Root of the tree.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// Appends a leaf; returns its index and the perfect subtrees of level
    /// ≥ 1 it completes (as many as trailing ones in its index), lowest first.
    pub fn push(&mut self, leaf_hash: Hash) -> (u64, Vec<(NodeId, Hash)>) {
        let index = self.size;
        let mut completed = Vec::new();
        let mut node = NodeId { level: 0, index };
        let mut hash = leaf_hash;
        while node.index & 1 == 1 {
            // A right child: its left sibling is the smallest frontier entry.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = hash_children(&left, &hash);
            node = NodeId {
                level: node.level + 1,
                index: node.index >> 1,
            };
            completed.push((node, hash));
        }
        self.hashes.push(hash);
        self.size += 1;
        (index, completed)
    }
}

/// A whole tree in memory: every perfect subtree hash, level by level.
/// The same algorithms as the PostgreSQL store, for tests and tools.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]`: hash of node `(l, i)`; level 0 holds the leaf hashes.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of these leaf hashes.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf_hash: Hash) -> u64 {
        let (index, completed) = self.frontier.push(leaf_hash);
        self.store(NodeId { level: 0, index }, leaf_hash);
        for (node, hash) in completed {
            self.store(node, hash);
        }
        index
    }

    fn store(&mut self, node: NodeId, hash: Hash) {
        let level = usize::from(node.level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        // Nodes of a level complete in order, so this is always a push.
        self.levels[level].push(hash);
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The hash of perfect subtree `node`, if complete.
    pub fn node(&self, node: NodeId) -> Option<Hash> {
        let index = usize::try_from(node.index).ok()?;
        self.levels
            .get(usize::from(node.level))?
            .get(index)
            .copied()
    }

    /// Root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeBeyondTree {
                size,
                tree_size: self.size(),
            });
        }
        Ok(hash_spans(&[Span::new(0, size)], |n| self.node(n))?
            .pop()
            .unwrap_or_else(empty_root))
    }

    /// `PATH(index, D[size])`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeBeyondTree {
                size,
                tree_size: self.size(),
            });
        }
        hash_spans(&inclusion_spans(index, size)?, |n| self.node(n))
    }

    /// `PROOF(first, D[second])`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        if second > self.size() {
            return Err(ProofError::SizeBeyondTree {
                size: second,
                tree_size: self.size(),
            });
        }
        hash_spans(&consistency_spans(first, second)?, |n| self.node(n))
    }
}

/// The distinct perfect nodes that `spans` need, for one batched fetch.
pub fn nodes_needed(spans: &[Span]) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = spans.iter().flat_map(|s| s.perfect_nodes()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Hashes `spans` from a map of fetched nodes.
pub fn hash_spans_from(
    spans: &[Span],
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Vec<Hash>, ProofError> {
    hash_spans(spans, |n| nodes.get(&n).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn spans_decompose_into_aligned_perfect_nodes() {
        assert_eq!(
            Span::new(0, 7).perfect_nodes(),
            vec![
                NodeId { level: 2, index: 0 },
                NodeId { level: 1, index: 2 },
                NodeId { level: 0, index: 6 }
            ]
        );
        assert_eq!(
            Span::new(8, 12).perfect_nodes(),
            vec![NodeId { level: 2, index: 2 }]
        );
        assert!(Span::new(3, 3).perfect_nodes().is_empty());
    }

    #[test]
    fn frontier_round_trips_through_its_parts() {
        let mut f = Frontier::new();
        for i in 0u8..11 {
            f.push(hash_leaf(&[i]));
        }
        assert_eq!(f.hashes().len(), 3);
        let again = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        assert_eq!(again, f);
        assert!(Frontier::from_parts(12, f.hashes().to_vec()).is_none());
    }
}
