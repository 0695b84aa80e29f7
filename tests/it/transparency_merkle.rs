//! The Merkle tree against the certificate-transparency test vectors and
//! against a naive recursive implementation written straight from RFC 9162
//! §2.1: every inclusion proof and every consistency proof of every tree up
//! to 300 leaves, plus property tests that any tampering is rejected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use epg::transparency::merkle::{
    self, Frontier, Hash, MemoryTree, ProofError, empty_root, hash_children, hash_leaf,
};
use proptest::prelude::*;

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// RFC 9162 §2.1 taken literally, with MTH memoised by range (which changes
/// nothing but the running time).
struct Naive<'a> {
    leaves: &'a [Hash],
    memo: HashMap<(usize, usize), Hash>,
}

impl<'a> Naive<'a> {
    fn new(leaves: &'a [Hash]) -> Self {
        Self {
            leaves,
            memo: HashMap::new(),
        }
    }

    /// The largest power of two smaller than n.
    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[start:end]).
    fn mth(&mut self, start: usize, end: usize) -> Hash {
        if let Some(h) = self.memo.get(&(start, end)) {
            return *h;
        }
        let n = end - start;
        let out = match n {
            0 => empty_root(),
            1 => self.leaves[start],
            _ => {
                let k = Self::k(n);
                let left = self.mth(start, start + k);
                let right = self.mth(start + k, end);
                hash_children(&left, &right)
            }
        };
        self.memo.insert((start, end), out);
        out
    }

    /// PATH(m, D[start:end]).
    fn path(&mut self, m: usize, start: usize, end: usize) -> Vec<Hash> {
        let n = end - start;
        if n <= 1 {
            return Vec::new();
        }
        let k = Self::k(n);
        if m < k {
            let mut p = self.path(m, start, start + k);
            p.push(self.mth(start + k, end));
            p
        } else {
            let mut p = self.path(m - k, start + k, end);
            p.push(self.mth(start, start + k));
            p
        }
    }

    /// SUBPROOF(m, D[start:end], b).
    fn subproof(&mut self, m: usize, start: usize, end: usize, b: bool) -> Vec<Hash> {
        let n = end - start;
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![self.mth(start, end)]
            };
        }
        let k = Self::k(n);
        if m <= k {
            let mut p = self.subproof(m, start, start + k, b);
            p.push(self.mth(start + k, end));
            p
        } else {
            let mut p = self.subproof(m - k, start + k, end, false);
            p.push(self.mth(start, start + k));
            p
        }
    }

    /// PROOF(m, D[n]).
    fn proof(&mut self, m: usize, n: usize) -> Vec<Hash> {
        if m == 0 || m == n {
            return Vec::new();
        }
        self.subproof(m, 0, n, true)
    }
}

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| hash_leaf(&[seed.to_be_bytes(), (i as u64).to_be_bytes()].concat()))
        .collect()
}

/// The eight entries of the certificate-transparency reference tests (the
/// same as contracts/test/SettlementAnchor.t.sol).
fn ct_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|e| hash_leaf(&hex::decode(e).unwrap()))
    .collect()
}

#[test]
fn ct_roots() {
    let roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let tree = MemoryTree::from_leaf_hashes(ct_leaves());
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), h(roots[0]));
    for (n, root) in roots.iter().enumerate() {
        assert_eq!(tree.root(n as u64).unwrap(), h(root), "root of {n}");
        if n > 0 {
            frontier.push(ct_leaves()[n - 1]);
            assert_eq!(frontier.root(), h(root), "frontier root of {n}");
        }
    }
}

#[test]
fn ct_inclusion_proofs() {
    let tree = MemoryTree::from_leaf_hashes(ct_leaves());
    let cases: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof, expected, "PATH({index}, D[{size}])");
        let root = tree.root(size).unwrap();
        merkle::verify_inclusion(
            &ct_leaves()[usize::try_from(index).unwrap()],
            index,
            size,
            &proof,
            &root,
        )
        .unwrap();
    }
}

#[test]
fn ct_consistency_proofs() {
    let tree = MemoryTree::from_leaf_hashes(ct_leaves());
    let cases: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (m, n, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
        let proof = tree.consistency_proof(m, n).unwrap();
        assert_eq!(proof, expected, "PROOF({m}, D[{n}])");
        merkle::verify_consistency(m, n, &tree.root(m).unwrap(), &tree.root(n).unwrap(), &proof)
            .unwrap();
    }
}

const ALL: usize = 300;

#[test]
fn every_inclusion_proof_up_to_300_leaves_matches_the_rfc() {
    let leaves = leaves(ALL, 1);
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
    let mut naive = Naive::new(&leaves);
    let mut frontier = Frontier::new();
    for n in 1..=ALL {
        frontier.push(leaves[n - 1]);
        let root = naive.mth(0, n);
        assert_eq!(tree.root(n as u64).unwrap(), root, "MTH(D[{n}])");
        assert_eq!(frontier.root(), root, "frontier root at {n}");
        for (m, leaf) in leaves.iter().enumerate().take(n) {
            let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
            assert_eq!(proof, naive.path(m, 0, n), "PATH({m}, D[{n}])");
            merkle::verify_inclusion(leaf, m as u64, n as u64, &proof, &root)
                .unwrap_or_else(|e| panic!("PATH({m}, D[{n}]) does not verify: {e}"));
        }
    }
}

#[test]
fn every_consistency_proof_up_to_300_leaves_matches_the_rfc() {
    let leaves = leaves(ALL, 2);
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
    let mut naive = Naive::new(&leaves);
    for n in 0..=ALL {
        let new_root = naive.mth(0, n);
        for m in 0..=n {
            let old_root = naive.mth(0, m);
            let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
            assert_eq!(proof, naive.proof(m, n), "PROOF({m}, D[{n}])");
            merkle::verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof)
                .unwrap_or_else(|e| panic!("PROOF({m}, D[{n}]) does not verify: {e}"));
        }
    }
}

#[test]
fn malformed_requests_are_refused() {
    let leaves = leaves(10, 3);
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
    let root = tree.root(10).unwrap();
    assert!(matches!(
        tree.inclusion_proof(10, 10),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        tree.inclusion_proof(0, 11),
        Err(ProofError::SizeBeyondTree { .. })
    ));
    assert!(matches!(
        tree.consistency_proof(5, 4),
        Err(ProofError::SizesOutOfOrder { .. })
    ));
    let proof = tree.inclusion_proof(3, 10).unwrap();
    assert!(merkle::verify_inclusion(&leaves[3], 10, 10, &proof, &root).is_err());
    let mut long = proof.clone();
    long.push(root);
    assert_eq!(
        merkle::verify_inclusion(&leaves[3], 3, 10, &long, &root),
        Err(ProofError::TooLong)
    );
    assert_eq!(
        merkle::verify_inclusion(&leaves[3], 3, 10, &proof[..proof.len() - 1], &root),
        Err(ProofError::TooShort)
    );
    // A single-leaf tree: the root is the leaf, the path is empty.
    merkle::verify_inclusion(&leaves[0], 0, 1, &[], &leaves[0]).unwrap();
    // The empty tree is a prefix of everything, with an empty proof only.
    merkle::verify_consistency(0, 10, &empty_root(), &root, &[]).unwrap();
    assert!(merkle::verify_consistency(0, 10, &empty_root(), &root, &[root]).is_err());
    assert!(merkle::verify_consistency(0, 10, &root, &root, &[]).is_err());
    // Equal sizes need equal roots.
    merkle::verify_consistency(10, 10, &root, &root, &[]).unwrap();
    assert!(merkle::verify_consistency(10, 10, &root, &leaves[0], &[]).is_err());
    // A non-trivial consistency proof cannot be empty.
    assert_eq!(
        merkle::verify_consistency(3, 10, &tree.root(3).unwrap(), &root, &[]),
        Err(ProofError::TooShort)
    );
}

fn flip(hash: &mut Hash, byte: usize, bit: u8) {
    hash[byte % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tampered_inclusion_proofs_are_rejected(
        seed in any::<u64>(),
        size in 1usize..=ALL,
        index in any::<prop::sample::Index>(),
        other in any::<prop::sample::Index>(),
        which in any::<prop::sample::Index>(),
        byte in 0usize..32,
        bit in any::<u8>(),
    ) {
        let leaves = leaves(size, seed);
        let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
        let m = index.index(size);
        let (n, m64) = (size as u64, m as u64);
        let root = tree.root(n).unwrap();
        let proof = tree.inclusion_proof(m64, n).unwrap();
        prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &proof, &root).is_ok());

        // One bit of the leaf hash.
        let mut leaf = leaves[m];
        flip(&mut leaf, byte, bit);
        prop_assert!(merkle::verify_inclusion(&leaf, m64, n, &proof, &root).is_err());
        // One bit of the root.
        let mut bad_root = root;
        flip(&mut bad_root, byte, bit);
        prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &proof, &bad_root).is_err());
        // One bit of one path element.
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which.index(bad.len());
            flip(&mut bad[i], byte, bit);
            prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &bad, &root).is_err());
            // A dropped or duplicated element.
            prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &proof[1..], &root).is_err());
            let mut longer = proof.clone();
            longer.push(proof[i]);
            prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &longer, &root).is_err());
        }
        // Another index.
        let o = other.index(size);
        if o != m {
            prop_assert!(merkle::verify_inclusion(&leaves[m], o as u64, n, &proof, &root).is_err());
            // Another leaf at this index.
            prop_assert!(merkle::verify_inclusion(&leaves[o], m64, n, &proof, &root).is_err());
        }
        // The root of another size (a proof can fit several sizes of one
        // shape, but never another tree's root).
        let s = other.index(size) + 1;
        if s != size && s > m {
            let other_root = tree.root(s as u64).unwrap();
            prop_assert!(merkle::verify_inclusion(&leaves[m], m64, n, &proof, &other_root).is_err());
        }
    }

    #[test]
    fn tampered_consistency_proofs_are_rejected(
        seed in any::<u64>(),
        size in 2usize..=ALL,
        first in any::<prop::sample::Index>(),
        which in any::<prop::sample::Index>(),
        byte in 0usize..32,
        bit in any::<u8>(),
        fork_at in any::<prop::sample::Index>(),
    ) {
        let leaves = leaves(size, seed);
        let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
        let m = first.index(size - 1) + 1; // 1 ..= size-1
        let (m64, n) = (m as u64, size as u64);
        let old = tree.root(m64).unwrap();
        let new = tree.root(n).unwrap();
        let proof = tree.consistency_proof(m64, n).unwrap();
        prop_assert!(merkle::verify_consistency(m64, n, &old, &new, &proof).is_ok());

        let mut bad = proof.clone();
        let i = which.index(bad.len());
        flip(&mut bad[i], byte, bit);
        prop_assert!(merkle::verify_consistency(m64, n, &old, &new, &bad).is_err());
        let mut bad_old = old;
        flip(&mut bad_old, byte, bit);
        prop_assert!(merkle::verify_consistency(m64, n, &bad_old, &new, &proof).is_err());
        let mut bad_new = new;
        flip(&mut bad_new, byte, bit);
        prop_assert!(merkle::verify_consistency(m64, n, &old, &bad_new, &proof).is_err());
        prop_assert!(merkle::verify_consistency(m64, n, &old, &new, &proof[1..]).is_err());

        // A fork: leaf `f` rewritten. If it is in the old tree, no proof
        // from the forked tree links the old root to the forked new root.
        let f = fork_at.index(size);
        let mut forked_leaves = leaves.clone();
        flip(&mut forked_leaves[f], byte, bit);
        let forked = MemoryTree::from_leaf_hashes(forked_leaves);
        let forked_new = forked.root(n).unwrap();
        let forked_proof = forked.consistency_proof(m64, n).unwrap();
        if f < m {
            prop_assert!(merkle::verify_consistency(m64, n, &old, &forked_new, &forked_proof).is_err());
        } else {
            // Appended leaves may differ: that is just another extension.
            prop_assert!(merkle::verify_consistency(m64, n, &old, &forked_new, &forked_proof).is_ok());
        }
    }
}
