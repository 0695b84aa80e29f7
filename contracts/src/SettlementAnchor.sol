// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title SettlementAnchor
/// @notice Public anchor for the E-PG settlement transparency log, an append-only
/// Merkle tree as in RFC 6962 / RFC 9162 with SHA-256. The node periodically
/// anchors a checkpoint (tree size and root hash); anyone can then check that
/// a settlement is in the log with {verifyInclusion} against an anchored root,
/// and that the log only ever grew, since each checkpoint names the root it extends.
/// @dev Storage is laid out for a cheap {anchor}: one packed head slot
/// (count and last tree size) plus two fresh slots per checkpoint (packed
/// size/timestamp/block number, and root). Checkpoints have strictly
/// increasing tree sizes, so {checkpointBySize} is a binary search and needs
/// no index of its own.
///
/// Roles: `DEFAULT_ADMIN_ROLE` manages roles; `ANCHORER_ROLE` anchors checkpoints.
contract SettlementAnchor is AccessControl {
    /// @notice Role allowed to anchor checkpoints.
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @notice One anchored state of the log.
    struct Checkpoint {
        /// Number of leaves in the tree.
        uint64 treeSize;
        /// `block.timestamp` of the anchoring block.
        uint64 timestamp;
        /// `block.number` of the anchoring block.
        uint64 blockNumber;
        /// Merkle tree head: RFC 9162 root hash of the first `treeSize` leaves.
        bytes32 root;
    }

    /// @dev Everything {anchor} reads and writes besides the checkpoints, in one slot.
    struct Head {
        /// Number of checkpoints anchored; the next one gets this sequence number.
        uint64 count;
        /// Tree size of the latest checkpoint (0 before the first).
        uint64 treeSize;
        /// Set in the constructor so the slot is never zero: the first
        /// {anchor} then pays for updating a slot, not for creating one.
        bool initialized;
    }

    Head private _head;

    /// @dev Checkpoints by sequence number, 0 to `_head.count - 1`.
    mapping(uint256 seq => Checkpoint) private _checkpoints;

    /// @notice Checkpoint `seq` (tree of `treeSize` leaves with root `root`) was anchored,
    /// extending the previous checkpoint's root `prevRoot` (zero for the first).
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 root, bytes32 prevRoot);

    /// @notice A checkpoint must have a larger tree than the latest one (`last`, 0 if none).
    error TreeSizeNotIncreasing(uint64 last, uint64 given);

    /// @notice `given` is not the root of the latest checkpoint (`expected`, zero if none).
    error PrevRootMismatch(bytes32 expected, bytes32 given);

    /// @notice Nothing has been anchored yet.
    error NoCheckpoint();

    /// @notice There is no checkpoint with sequence number `seq`.
    error UnknownCheckpoint(uint256 seq);

    /// @notice No checkpoint has tree size `treeSize`.
    error UnknownTreeSize(uint64 treeSize);

    /// @notice A zero address was given where an account is required.
    error ZeroAddress();

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    /// @param anchorer Receives `ANCHORER_ROLE` (the E-PG node's signing address).
    constructor(address admin, address anchorer) {
        if (admin == address(0) || anchorer == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHORER_ROLE, anchorer);
        _head.initialized = true;
    }

    /// @notice Anchors a new checkpoint of the log.
    /// @param treeSize Number of leaves; must be larger than the latest checkpoint's.
    /// @param root RFC 9162 root hash of the tree of `treeSize` leaves.
    /// @param prevRoot Root of the latest checkpoint, or zero for the first checkpoint.
    function anchor(uint64 treeSize, bytes32 root, bytes32 prevRoot) external onlyRole(ANCHORER_ROLE) {
        Head memory head = _head;
        if (treeSize <= head.treeSize) revert TreeSizeNotIncreasing(head.treeSize, treeSize);
        bytes32 expected = head.count == 0 ? bytes32(0) : _checkpoints[head.count - 1].root;
        if (prevRoot != expected) revert PrevRootMismatch(expected, prevRoot);

        uint64 seq = head.count;
        _checkpoints[seq] = Checkpoint({
            treeSize: treeSize, timestamp: uint64(block.timestamp), blockNumber: uint64(block.number), root: root
        });
        _head = Head({count: seq + 1, treeSize: treeSize, initialized: true});
        emit CheckpointAnchored(seq, treeSize, root, prevRoot);
    }

    /// @notice The latest checkpoint. Reverts with {NoCheckpoint} if there is none.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function latest() external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        uint256 count = _head.count;
        if (count == 0) revert NoCheckpoint();
        seq = count - 1;
        checkpoint_ = _checkpoints[seq];
    }

    /// @notice Number of checkpoints anchored so far.
    /// @return The count; sequence numbers run from 0 to count - 1.
    function checkpointCount() external view returns (uint256) {
        return _head.count;
    }

    /// @notice Checkpoint number `seq`. Reverts with {UnknownCheckpoint} if it does not exist.
    /// @param seq Sequence number, from 0.
    /// @return The checkpoint.
    function checkpoint(uint256 seq) external view returns (Checkpoint memory) {
        if (seq >= _head.count) revert UnknownCheckpoint(seq);
        return _checkpoints[seq];
    }

    /// @notice The checkpoint with exactly `treeSize` leaves. Reverts with {UnknownTreeSize} if none.
    /// @param treeSize Tree size to look up.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function checkpointBySize(uint64 treeSize) external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        // Tree sizes strictly increase with the sequence number: binary search.
        uint256 lo = 0;
        uint256 hi = _head.count;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            uint64 size = _checkpoints[mid].treeSize;
            if (size == treeSize) return (mid, _checkpoints[mid]);
            if (size < treeSize) lo = mid + 1;
            else hi = mid;
        }
        revert UnknownTreeSize(treeSize);
    }

    /// @notice Checks an RFC 9162 (section 2.1.3.2) inclusion proof: that the leaf
    /// with hash `leafHash` is leaf number `index` of the tree of `treeSize` leaves
    /// whose root is `root`.
    /// @dev Interior nodes are SHA-256(0x01 || left || right); `leafHash` must already
    /// be the leaf hash SHA-256(0x00 || entry). Returns false, never reverts, for any
    /// wrong input, including `index >= treeSize` and a proof of the wrong length.
    /// `treeSize` and `root` must come from the same checkpoint: the root is what
    /// binds the tree, and a proof can fit several sizes of the same shape.
    /// @param leafHash Hash of the leaf.
    /// @param index Zero-based position of the leaf.
    /// @param treeSize Number of leaves in the tree.
    /// @param proof Audit path, from the leaf's sibling up to the root's child.
    /// @param root Expected root hash.
    /// @return True if the proof is valid.
    function verifyInclusion(bytes32 leafHash, uint256 index, uint256 treeSize, bytes32[] calldata proof, bytes32 root)
        external
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

    /// @dev SHA-256(0x01 || left || right), the RFC 6962 interior node hash.
    function _hashChildren(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }
}
