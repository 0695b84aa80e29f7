// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

/// @title SettlementAnchor
/// @notice Public anchor for the E-PG settlement transparency log, an append-only
/// Merkle tree as in RFC 6962 / RFC 9162 with SHA-256. The node periodically
/// anchors a checkpoint (tree size and root hash); anyone can then check that a
/// settlement is in the log with {verifyInclusionAt}, against a checkpoint's
/// stored size and root.
///
/// What the contract proves, and what it does not: sizes strictly grow, each
/// by at most {maxGrowth}; no root is zero; and `prevRoot` of each anchor is
/// the stored root of the checkpoint before it, so the anchorer saw the latest
/// checkpoint and no twin or stale transaction overwrote it. The contract does
/// NOT prove that a new tree extends the previous one: any holder of
/// `ANCHORER_ROLE` can anchor any root. That the log only grew is checked off
/// chain, by `epg audit follow`, which verifies the node's RFC 9162 consistency
/// proof between every two consecutive anchored roots.
///
/// @dev Storage is laid out so that {anchor} creates one storage slot, the
/// root's, and otherwise writes only a slot that already exists, except once
/// per six checkpoints. A checkpoint is its tree size and root: the block and
/// time of anchoring are those of its {CheckpointAnchored} log, just as
/// trustless, so they are not stored.
///
/// - `_head`, one slot: the tree sizes of the current chunk of six checkpoints
///   in five 36-bit fields (bits 0-179; checkpoint `seq` in field `seq % 6`),
///   the checkpoint count (bits 180-215) and {maxGrowth} (bits 216-251).
///   {maxGrowth} is never zero, so neither is the slot, and the first {anchor}
///   pays for an update, not a creation. Fields at and above `count % 6` are
///   not live: they still hold the previous chunk and are overwritten in turn.
/// - `_roots[seq]`: one fresh slot per checkpoint.
/// - `_chunks[seq / 6]`: the six sizes of a full chunk. The anchor of the
///   sixth (`seq % 6 == 5`) writes the head's five fields and its own size
///   here, and its size into head field 0, so that the latest size is always
///   in the head: at `(count - 1) % 6`, or at 0 when that is 5.
///
/// Keeping {maxGrowth} in the head costs the head one size field (chunks of
/// six, not seven), so the limit is checked without a storage read of its own.
/// Gas of {anchor} (storage cold, as at the start of a transaction): about
/// 34.9k of execution, 22.2k more for the sixth of a chunk; as a whole
/// transaction, with the 21k base and the calldata, about 56.9k, 79.1k for the
/// sixth, and 60.6k on average. A slot of its own would cost every anchor 2.1k.
///
/// Tree sizes are at most {MAX_TREE_SIZE} = 2^36 - 1 (68.7 billion leaves).
/// Sizes strictly increase from at least 1, so the count is never larger than
/// the latest size and fits 36 bits. Checkpoints have strictly increasing tree
/// sizes, so {checkpointBySize} is a binary search and needs no index.
///
/// Roles (OpenZeppelin's `AccessControlDefaultAdminRules`): one
/// `DEFAULT_ADMIN_ROLE` holder, transferred or renounced only in two steps
/// with a delay, manages roles, sets {maxGrowth} and may {supersede};
/// `ANCHORER_ROLE` anchors checkpoints.
contract SettlementAnchor is AccessControlDefaultAdminRules {
    /// @notice Role allowed to anchor checkpoints.
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @notice Largest tree size a checkpoint can have: 2^36 - 1.
    uint64 public constant MAX_TREE_SIZE = 2 ** 36 - 1;

    /// @notice {maxGrowth} at deployment: 2^24 = 16,777,216 leaves per anchor.
    /// @dev Large enough that an honest node never meets it: the node anchors
    /// after every settlement run (every 5 minutes by default), and 2^24 leaves
    /// are more than 15 hours of settling 300 items a second, so even a long
    /// anchoring outage is caught up in one anchor (and a larger backlog in
    /// several, see the node's anchoring). Small enough to matter: one stolen
    /// key or one wrong size computed by a node bug moves the log at most 2^24
    /// leaves per transaction, a 4,096th of {MAX_TREE_SIZE}, instead of
    /// exhausting it at once; and the node, which anchors only its own roots,
    /// notices the foreign checkpoint at its next anchor.
    uint64 public constant DEFAULT_MAX_GROWTH = 2 ** 24;

    /// @notice One anchored state of the log.
    struct Checkpoint {
        /// Number of leaves in the tree.
        uint64 treeSize;
        /// Merkle tree head: RFC 9162 root hash of the first `treeSize` leaves.
        bytes32 root;
    }

    // Layout constants. Each is a plain literal: an expression naming another
    // constant would be evaluated, with overflow checks, at every use.
    /// @dev Width of a tree size field, of the count and of the growth limit.
    uint256 private constant _SIZE_BITS = 36;
    /// @dev A 36-bit field's bits: 2^36 - 1.
    uint256 private constant _SIZE_MASK = 2 ** 36 - 1;
    /// @dev Checkpoints per chunk: the tree sizes one slot of `_chunks` holds.
    uint256 private constant _CHUNK = 6;
    /// @dev Where the count starts in `_head`, after `_CHUNK - 1` size fields: 5 × 36.
    uint256 private constant _COUNT_SHIFT = 180;
    /// @dev Where {maxGrowth} starts in `_head`, after the count: 180 + 36.
    uint256 private constant _GROWTH_SHIFT = 216;
    /// @dev The `_CHUNK - 1` size fields of `_head`, bits 0 to 179.
    uint256 private constant _SIZES_MASK = 2 ** 180 - 1;
    /// @dev The count's lowest bit: adding it adds one to the count.
    uint256 private constant _COUNT_ONE = 2 ** 180;

    /// @dev Count, growth limit and the current chunk's tree sizes (see the contract's @dev).
    uint256 private _head;

    /// @dev Roots by sequence number, 0 to count - 1.
    mapping(uint256 seq => bytes32 root) private _roots;

    /// @dev The tree sizes of each full chunk, checkpoint `seq` in field `seq % 6` of slot `seq / 6`.
    mapping(uint256 chunk => uint256 sizes) private _chunks;

    /// @notice Checkpoint `seq` (tree of `treeSize` leaves with root `root`) was anchored;
    /// `prevRoot` is the root of checkpoint `seq - 1` as stored when it was (zero for the first).
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 root, bytes32 prevRoot);

    /// @notice The admin removed checkpoints `fromSeq` to `previousCount - 1`. The latest
    /// checkpoint is now `fromSeq - 1`, of `treeSize` leaves and root `root` (both zero if none
    /// is left), and the next anchor gets sequence number `fromSeq` again.
    event CheckpointsSuperseded(uint256 indexed fromSeq, uint256 previousCount, uint64 treeSize, bytes32 root);

    /// @notice The largest growth of one anchor changed from `previous` to `current` leaves.
    event MaxGrowthChanged(uint64 previous, uint64 current);

    /// @notice A checkpoint must have a larger tree than the latest one (`last`, 0 if none).
    error TreeSizeNotIncreasing(uint64 last, uint64 given);

    /// @notice Tree size `given` is above the largest this contract can hold, `max`.
    error TreeSizeTooLarge(uint64 given, uint64 max);

    /// @notice Tree size `given` grows the latest (`last`) by more than {maxGrowth} (`max`).
    error GrowthTooLarge(uint64 last, uint64 given, uint64 max);

    /// @notice A root of zero was given; zero is what "no previous checkpoint" reads as.
    error ZeroRoot();

    /// @notice `given` is not the root of the latest checkpoint (`expected`, zero if none).
    error PrevRootMismatch(bytes32 expected, bytes32 given);

    /// @notice Nothing has been anchored yet.
    error NoCheckpoint();

    /// @notice There is no checkpoint with sequence number `seq`.
    error UnknownCheckpoint(uint256 seq);

    /// @notice No checkpoint has tree size `treeSize`.
    error UnknownTreeSize(uint64 treeSize);

    /// @notice {supersede} would keep `keep` of `count` checkpoints: it must drop at least one.
    error NothingToSupersede(uint256 keep, uint256 count);

    /// @notice A growth limit must be between 1 and {MAX_TREE_SIZE}.
    error InvalidMaxGrowth(uint64 given);

    /// @notice A zero address was given where an account is required.
    error ZeroAddress();

    /// @param initialAdminDelay Seconds a transfer of `DEFAULT_ADMIN_ROLE` waits between its
    /// two steps (E-PG deploys with 48 hours).
    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    /// @param anchorer Receives `ANCHORER_ROLE` (the E-PG node's signing address).
    constructor(uint48 initialAdminDelay, address admin, address anchorer)
        AccessControlDefaultAdminRules(initialAdminDelay, admin)
    {
        if (anchorer == address(0)) revert ZeroAddress();
        _grantRole(ANCHORER_ROLE, anchorer);
        _head = uint256(DEFAULT_MAX_GROWTH) << _GROWTH_SHIFT;
        emit MaxGrowthChanged(0, DEFAULT_MAX_GROWTH);
    }

    /// @notice Anchors a new checkpoint of the log.
    /// @param treeSize Number of leaves; larger than the latest checkpoint's by at
    /// most {maxGrowth}, and at most {MAX_TREE_SIZE}.
    /// @param root RFC 9162 root hash of the tree of `treeSize` leaves; not zero.
    /// @param prevRoot Root of the latest checkpoint, or zero for the first checkpoint.
    /// It shows that the sender saw the latest checkpoint; it does not show that
    /// `root` extends it (see the contract's notice).
    function anchor(uint64 treeSize, bytes32 root, bytes32 prevRoot) external onlyRole(ANCHORER_ROLE) {
        uint256 head = _head;
        uint256 seq = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        uint64 last = 0;
        bytes32 expected = bytes32(0);
        if (seq != 0) {
            last = _latestSize(head, seq);
            unchecked {
                expected = _roots[seq - 1];
            }
        }
        if (treeSize <= last) revert TreeSizeNotIncreasing(last, treeSize);
        if (treeSize > MAX_TREE_SIZE) revert TreeSizeTooLarge(treeSize, MAX_TREE_SIZE);
        uint64 maxGrowth_ = _field(head >> _GROWTH_SHIFT, 0);
        unchecked {
            if (treeSize - last > maxGrowth_) revert GrowthTooLarge(last, treeSize, maxGrowth_);
        }
        if (root == bytes32(0)) revert ZeroRoot();
        if (prevRoot != expected) revert PrevRootMismatch(expected, prevRoot);

        _roots[seq] = root;
        unchecked {
            uint256 pos = seq % _CHUNK;
            if (pos == _CHUNK - 1) {
                // The chunk is full: archive its sizes, this one in the last field,
                // and keep this one in field 0 of the head as the latest.
                // (Field 5 of a chunk slot starts where the head's count does.)
                _chunks[seq / _CHUNK] = (head & _SIZES_MASK) | (uint256(treeSize) << _COUNT_SHIFT);
                pos = 0;
            }
            uint256 shift = pos * _SIZE_BITS;
            // seq + 1 <= treeSize <= _SIZE_MASK: the count cannot carry into the growth limit.
            head = (head & ~(_SIZE_MASK << shift)) | (uint256(treeSize) << shift);
            head += _COUNT_ONE;
        }
        _head = head;
        emit CheckpointAnchored(seq, treeSize, root, prevRoot);
    }

    /// @notice Sets the largest number of leaves one anchor may add. Only the admin may call it.
    /// @param newMaxGrowth Between 1 and {MAX_TREE_SIZE} (which lifts the limit).
    function setMaxGrowth(uint64 newMaxGrowth) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (newMaxGrowth == 0 || newMaxGrowth > MAX_TREE_SIZE) revert InvalidMaxGrowth(newMaxGrowth);
        uint256 head = _head;
        uint64 previous = _field(head >> _GROWTH_SHIFT, 0);
        _head = (head & ~(_SIZE_MASK << _GROWTH_SHIFT)) | (uint256(newMaxGrowth) << _GROWTH_SHIFT);
        emit MaxGrowthChanged(previous, newMaxGrowth);
    }

    /// @notice Removes every checkpoint from sequence number `keep` on, so that the
    /// anchorer can continue from checkpoint `keep - 1` (or from nothing if `keep` is 0).
    /// Only the admin may call it. The recovery from a checkpoint that is not a state of
    /// the log (a stolen anchorer key, a node bug): revoke the key, then supersede.
    /// @dev Auditors see it: the removed checkpoints' {CheckpointAnchored} logs stay on
    /// chain, the {CheckpointsSuperseded} log says which were removed and by which
    /// transaction, and `epg audit follow` fails until an auditor acknowledges it.
    /// Sequence numbers from `keep` on are used again by the next anchors.
    /// @param keep How many checkpoints remain; fewer than the current count.
    function supersede(uint256 keep) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        if (keep >= count) revert NothingToSupersede(keep, count);
        // Rebuild the head as `keep` anchors from nothing would have left it.
        uint256 sizes = 0;
        uint64 lastSize = 0;
        bytes32 lastRoot = bytes32(0);
        if (keep != 0) {
            uint256 first = keep - (keep % _CHUNK);
            for (uint256 seq = first; seq < keep; ++seq) {
                sizes |= uint256(_sizeOf(seq, head, count)) << ((seq - first) * _SIZE_BITS);
            }
            lastSize = _sizeOf(keep - 1, head, count);
            // A full chunk leaves its last size in field 0.
            if (first == keep) sizes = lastSize;
            lastRoot = _roots[keep - 1];
        }
        _head = (head & ~(_SIZE_MASK << _COUNT_SHIFT) & ~_SIZES_MASK) | (keep << _COUNT_SHIFT) | sizes;
        emit CheckpointsSuperseded(keep, count, lastSize, lastRoot);
    }

    /// @notice The largest number of leaves one anchor may add.
    /// @return The limit, between 1 and {MAX_TREE_SIZE}.
    function maxGrowth() external view returns (uint64) {
        return _field(_head >> _GROWTH_SHIFT, 0);
    }

    /// @notice The latest checkpoint. Reverts with {NoCheckpoint} if there is none.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function latest() external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        if (count == 0) revert NoCheckpoint();
        seq = count - 1;
        checkpoint_ = Checkpoint({treeSize: _latestSize(head, count), root: _roots[seq]});
    }

    /// @notice Number of checkpoints anchored so far (less those superseded).
    /// @return The count; sequence numbers run from 0 to count - 1.
    function checkpointCount() external view returns (uint256) {
        return (_head >> _COUNT_SHIFT) & _SIZE_MASK;
    }

    /// @notice Checkpoint number `seq`. Reverts with {UnknownCheckpoint} if it does not exist.
    /// @param seq Sequence number, from 0.
    /// @return The checkpoint.
    function checkpoint(uint256 seq) external view returns (Checkpoint memory) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        if (seq >= count) revert UnknownCheckpoint(seq);
        return Checkpoint({treeSize: _sizeOf(seq, head, count), root: _roots[seq]});
    }

    /// @notice The checkpoint with exactly `treeSize` leaves. Reverts with {UnknownTreeSize} if none.
    /// @param treeSize Tree size to look up.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function checkpointBySize(uint64 treeSize) external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        // Tree sizes strictly increase with the sequence number: binary search.
        uint256 lo = 0;
        uint256 hi = count;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            uint64 size = _sizeOf(mid, head, count);
            if (size == treeSize) return (mid, Checkpoint({treeSize: treeSize, root: _roots[mid]}));
            if (size < treeSize) lo = mid + 1;
            else hi = mid;
        }
        revert UnknownTreeSize(treeSize);
    }

    /// @notice Checks an RFC 9162 (section 2.1.3.2) inclusion proof against checkpoint
    /// `seq`: that the leaf with hash `leafHash` is leaf number `index` of that
    /// checkpoint's tree. The tree size and root are the stored ones, never the
    /// caller's. Reverts with {UnknownCheckpoint} if there is no checkpoint `seq`.
    /// @dev Interior nodes are SHA-256(0x01 || left || right); `leafHash` must already
    /// be the leaf hash SHA-256(0x00 || entry). Returns false, never reverts, for a
    /// wrong proof, including `index` not below the tree size and a proof of the
    /// wrong length. With the size fixed by the checkpoint, the proof's length and
    /// the side of each sibling are fixed too, and they name one node of the tree:
    /// an interior node cannot pass for a leaf without a SHA-256 collision. (Given a
    /// smaller size of the prover's choosing, it could: the old, size-taking
    /// `verifyInclusion` of this contract was removed for that reason.)
    /// @param seq The checkpoint, by sequence number.
    /// @param leafHash Hash of the leaf.
    /// @param index Zero-based position of the leaf.
    /// @param proof Audit path, from the leaf's sibling up to the root's child.
    /// @return True if the proof is valid.
    function verifyInclusionAt(uint256 seq, bytes32 leafHash, uint256 index, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _SIZE_MASK;
        if (seq >= count) revert UnknownCheckpoint(seq);
        return _verifyInclusion(leafHash, index, _sizeOf(seq, head, count), proof, _roots[seq]);
    }

    /// @dev The RFC 9162 section 2.1.3.2 verifier for a tree of `treeSize` leaves with
    /// root `root`; see {verifyInclusionAt}.
    function _verifyInclusion(bytes32 leafHash, uint256 index, uint256 treeSize, bytes32[] calldata proof, bytes32 root)
        internal
        pure
        returns (bool)
    {
        if (index >= treeSize) return false;
        uint256 fn = index;
        uint256 sn = treeSize - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return false;
            if (fn & 1 == 1 || fn == sn) {
                r = _hashChildren(proof[i], r);
                if (fn & 1 == 0) {
                    // fn == sn, even: the last node of its level has no right sibling and is
                    // carried up unchanged until it is a right child, whose left sibling is p.
                    while (fn != 0 && fn & 1 == 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = _hashChildren(r, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    /// @dev Tree size of checkpoint `seq` < `count`: in its chunk's slot if the
    /// chunk is full, else in the head.
    function _sizeOf(uint256 seq, uint256 head, uint256 count) private view returns (uint64) {
        uint256 chunk = seq / _CHUNK;
        uint256 word = chunk < count / _CHUNK ? _chunks[chunk] : head;
        return _field(word, seq % _CHUNK);
    }

    /// @dev Tree size of the latest checkpoint, `count - 1`, from the head: in its
    /// own field, or in field 0 if it filled a chunk.
    function _latestSize(uint256 head, uint256 count) private pure returns (uint64) {
        unchecked {
            uint256 pos = (count - 1) % _CHUNK;
            return _field(head, pos == _CHUNK - 1 ? 0 : pos);
        }
    }

    /// @dev 36-bit field `pos` of a head or chunk word.
    function _field(uint256 word, uint256 pos) private pure returns (uint64) {
        // Truncating to 64 bits keeps the 36 wanted ones, which the mask then isolates.
        unchecked {
            // forge-lint: disable-next-line(unsafe-typecast)
            return uint64(word >> (pos * _SIZE_BITS)) & MAX_TREE_SIZE;
        }
    }

    /// @dev SHA-256(0x01 || left || right), the RFC 6962 interior node hash.
    function _hashChildren(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }
}
