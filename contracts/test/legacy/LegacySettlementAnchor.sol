// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// TEST ONLY, NEVER DEPLOYED. contracts/src/SettlementAnchor.sol as of commit 81c9ebd,
// verbatim except for the contract's name (LegacySettlementAnchor), so that
// test/legacy/LegacyScenarios.t.sol can show each harm of issue 16 on the
// contract that was deployed then and its refusal by the current one.

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title SettlementAnchor
/// @notice Public anchor for the E-PG settlement transparency log, an append-only
/// Merkle tree as in RFC 6962 / RFC 9162 with SHA-256. The node periodically
/// anchors a checkpoint (tree size and root hash); anyone can then check that
/// a settlement is in the log with {verifyInclusion} against an anchored root,
/// and that the log only ever grew, since each checkpoint names the root it extends.
/// @dev Storage is laid out so that {anchor} creates one storage slot, the
/// root's, and otherwise writes only slots that already exist, except once per
/// seven checkpoints. A checkpoint is its tree size and root: the block and
/// time of anchoring are those of its {CheckpointAnchored} log, just as
/// trustless, so they are not stored.
///
/// - `_head`, one slot: the tree sizes of the current chunk of seven
///   checkpoints in six 36-bit fields (bits 0-215; checkpoint `seq` in field
///   `seq % 7`), the checkpoint count (bits 216-254) and bit 255, set in the
///   constructor so that the slot is never zero and the first {anchor} pays
///   for an update, not a creation. Fields at and above `count % 7` are not
///   live: they still hold the previous chunk and are overwritten in turn.
/// - `_roots[seq]`: one fresh slot per checkpoint.
/// - `_chunks[seq / 7]`: the seven sizes of a full chunk. The anchor of the
///   seventh (`seq % 7 == 6`) writes the head's six fields and its own size
///   here, and its size into head field 0, so that the latest size is always
///   in the head: at `(count - 1) % 7`, or at 0 when that is 6.
///
/// Gas of {anchor} (storage cold, as at the start of a transaction): about
/// 34.7k of execution, 22.1k more for the seventh of a chunk, 37.9k on
/// average; as a whole transaction, with the 21k base and the calldata,
/// about 56.7k, 78.9k for the seventh, and 59.9k on average.
///
/// Tree sizes are at most {MAX_TREE_SIZE} = 2^36 - 1 (68.7 billion leaves),
/// the widest with which seven fit one slot; six per slot would cost every
/// anchor 0.5k more on average, above 60k. Sizes strictly increase from at
/// least 1, so the count is never larger than the latest size and its 39 bits
/// cannot overflow. Checkpoints have strictly increasing tree sizes, so
/// {checkpointBySize} is a binary search and needs no index of its own.
///
/// Roles: `DEFAULT_ADMIN_ROLE` manages roles; `ANCHORER_ROLE` anchors checkpoints.
contract LegacySettlementAnchor is AccessControl {
    /// @notice Role allowed to anchor checkpoints.
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @notice Largest tree size a checkpoint can have: 2^36 - 1.
    uint64 public constant MAX_TREE_SIZE = 2 ** 36 - 1;

    /// @notice One anchored state of the log.
    struct Checkpoint {
        /// Number of leaves in the tree.
        uint64 treeSize;
        /// Merkle tree head: RFC 9162 root hash of the first `treeSize` leaves.
        bytes32 root;
    }

    // Layout constants. Each is a plain literal: an expression naming another
    // constant would be evaluated, with overflow checks, at every use.
    /// @dev Width of a tree size field.
    uint256 private constant _SIZE_BITS = 36;
    /// @dev A tree size field's bits: 2^36 - 1.
    uint256 private constant _SIZE_MASK = 2 ** 36 - 1;
    /// @dev Checkpoints per chunk: the tree sizes one slot of `_chunks` holds (7 × 36 = 252 bits).
    uint256 private constant _CHUNK = 7;
    /// @dev Where the count starts in `_head`, after `_CHUNK - 1` size fields: 6 × 36.
    uint256 private constant _COUNT_SHIFT = 216;
    /// @dev The count's bits once shifted down, 216 to 254: 39, more than a size has.
    uint256 private constant _COUNT_MASK = 2 ** 39 - 1;
    /// @dev The `_CHUNK - 1` size fields of `_head`, bits 0 to 215.
    uint256 private constant _SIZES_MASK = 2 ** 216 - 1;
    /// @dev The count's lowest bit: adding it adds one to the count.
    uint256 private constant _COUNT_ONE = 2 ** 216;
    /// @dev Keeps `_head` nonzero; above the count.
    uint256 private constant _INITIALIZED = 2 ** 255;

    /// @dev Count and the current chunk's tree sizes (see the contract's @dev).
    uint256 private _head;

    /// @dev Roots by sequence number, 0 to count - 1.
    mapping(uint256 seq => bytes32 root) private _roots;

    /// @dev The tree sizes of each full chunk, checkpoint `seq` in field `seq % 7` of slot `seq / 7`.
    mapping(uint256 chunk => uint256 sizes) private _chunks;

    /// @notice Checkpoint `seq` (tree of `treeSize` leaves with root `root`) was anchored,
    /// extending the previous checkpoint's root `prevRoot` (zero for the first).
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 root, bytes32 prevRoot);

    /// @notice A checkpoint must have a larger tree than the latest one (`last`, 0 if none).
    error TreeSizeNotIncreasing(uint64 last, uint64 given);

    /// @notice Tree size `given` is above the largest this contract can hold, `max`.
    error TreeSizeTooLarge(uint64 given, uint64 max);

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
        _head = _INITIALIZED;
    }

    /// @notice Anchors a new checkpoint of the log.
    /// @param treeSize Number of leaves; must be larger than the latest checkpoint's
    /// and at most {MAX_TREE_SIZE}.
    /// @param root RFC 9162 root hash of the tree of `treeSize` leaves.
    /// @param prevRoot Root of the latest checkpoint, or zero for the first checkpoint.
    function anchor(uint64 treeSize, bytes32 root, bytes32 prevRoot) external onlyRole(ANCHORER_ROLE) {
        uint256 head = _head;
        uint256 seq = (head >> _COUNT_SHIFT) & _COUNT_MASK;
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
        if (prevRoot != expected) revert PrevRootMismatch(expected, prevRoot);

        _roots[seq] = root;
        unchecked {
            uint256 pos = seq % _CHUNK;
            if (pos == _CHUNK - 1) {
                // The chunk is full: archive its sizes, this one in the last field,
                // and keep this one in field 0 of the head as the latest.
                // (Field 6 of a chunk slot starts where the head's count does.)
                _chunks[seq / _CHUNK] = (head & _SIZES_MASK) | (uint256(treeSize) << _COUNT_SHIFT);
                pos = 0;
            }
            uint256 shift = pos * _SIZE_BITS;
            // seq + 1 <= treeSize <= _SIZE_MASK < _COUNT_MASK: the count cannot carry.
            head = (head & ~(_SIZE_MASK << shift)) | (uint256(treeSize) << shift);
            head += _COUNT_ONE;
        }
        _head = head;
        emit CheckpointAnchored(seq, treeSize, root, prevRoot);
    }

    /// @notice The latest checkpoint. Reverts with {NoCheckpoint} if there is none.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function latest() external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _COUNT_MASK;
        if (count == 0) revert NoCheckpoint();
        seq = count - 1;
        checkpoint_ = Checkpoint({treeSize: _latestSize(head, count), root: _roots[seq]});
    }

    /// @notice Number of checkpoints anchored so far.
    /// @return The count; sequence numbers run from 0 to count - 1.
    function checkpointCount() external view returns (uint256) {
        return (_head >> _COUNT_SHIFT) & _COUNT_MASK;
    }

    /// @notice Checkpoint number `seq`. Reverts with {UnknownCheckpoint} if it does not exist.
    /// @param seq Sequence number, from 0.
    /// @return The checkpoint.
    function checkpoint(uint256 seq) external view returns (Checkpoint memory) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _COUNT_MASK;
        if (seq >= count) revert UnknownCheckpoint(seq);
        return Checkpoint({treeSize: _sizeOf(seq, head, count), root: _roots[seq]});
    }

    /// @notice The checkpoint with exactly `treeSize` leaves. Reverts with {UnknownTreeSize} if none.
    /// @param treeSize Tree size to look up.
    /// @return seq Its sequence number.
    /// @return checkpoint_ The checkpoint.
    function checkpointBySize(uint64 treeSize) external view returns (uint256 seq, Checkpoint memory checkpoint_) {
        uint256 head = _head;
        uint256 count = (head >> _COUNT_SHIFT) & _COUNT_MASK;
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

    /// @dev Size field `pos` of a head or chunk word.
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
