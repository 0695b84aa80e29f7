// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementAnchor} from "../src/SettlementAnchor.sol";
import {SettlementAnchorHandler} from "./handlers/SettlementAnchorHandler.sol";
import {GasProbe} from "./utils/GasProbe.sol";
import {MerkleReference} from "./utils/MerkleReference.sol";
import {TestBase} from "./utils/TestBase.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";

/// @dev Exposes the contract's pure RFC 9162 verifier, which the contract itself
/// only runs against stored checkpoints ({SettlementAnchor-verifyInclusionAt}),
/// so that the algorithm can be tested on any tree.
contract SettlementAnchorHarness is SettlementAnchor {
    constructor() SettlementAnchor(0, msg.sender, msg.sender) {}

    function verifyInclusion(bytes32 leafHash, uint256 index, uint256 treeSize, bytes32[] calldata proof, bytes32 root)
        external
        pure
        returns (bool)
    {
        return _verifyInclusion(leafHash, index, treeSize, proof, root);
    }
}

/// @dev The eight test entries of the certificate-transparency reference
/// implementation, whose tree roots for sizes 1 to 8 are widely published.
library CtLeaves {
    function first(uint256 n) internal pure returns (bytes32[] memory leaves) {
        bytes[8] memory entries = [
            bytes(hex""),
            hex"00",
            hex"10",
            hex"2021",
            hex"3031",
            hex"40414243",
            hex"5051525354555657",
            hex"606162636465666768696a6b6c6d6e6f"
        ];
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = MerkleReference.hashLeaf(entries[i]);
        }
    }

    function random(uint256 seed, uint256 n) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = MerkleReference.hashLeaf(abi.encode(seed, i));
        }
    }
}

contract SettlementAnchorTest is TestBase {
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 root, bytes32 prevRoot);
    event CheckpointsSuperseded(uint256 indexed fromSeq, uint256 previousCount, uint64 treeSize, bytes32 root);
    event MaxGrowthChanged(uint64 previous, uint64 current);

    uint48 internal constant ADMIN_DELAY = 2 days;

    SettlementAnchor internal anchor;
    address internal admin = makeAddr("admin");
    address internal anchorer = makeAddr("anchorer");
    address internal stranger = makeAddr("stranger");

    bytes32 internal constant ROOT_A = keccak256("root a");
    bytes32 internal constant ROOT_B = keccak256("root b");
    bytes32 internal constant ROOT_C = keccak256("root c");

    function setUp() public {
        anchor = new SettlementAnchor(ADMIN_DELAY, admin, anchorer);
    }

    function _anchorThree() internal {
        vm.startPrank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));
        anchor.anchor(25, ROOT_B, ROOT_A);
        anchor.anchor(26, ROOT_C, ROOT_B);
        vm.stopPrank();
    }

    /// Size of checkpoint `seq` in {_anchorMany}: uneven gaps of 3 to 11.
    function _sizeOf(uint256 seq) internal pure returns (uint64) {
        // Tests use small sequence numbers.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 n = uint64(seq);
        return 100 + n * 7 + (n * n) % 5;
    }

    function _rootOf(uint256 seq) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", seq));
    }

    /// Anchors checkpoints `from` to `to - 1` of the {_sizeOf}/{_rootOf} sequence,
    /// checking after each that the views see it.
    function _anchorMany(uint256 from, uint256 to) internal {
        for (uint256 seq = from; seq < to; ++seq) {
            vm.prank(anchorer);
            anchor.anchor(_sizeOf(seq), _rootOf(seq), seq == 0 ? bytes32(0) : _rootOf(seq - 1));
            (uint256 latestSeq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
            assertEq(latestSeq, seq);
            assertEq(cp.treeSize, _sizeOf(seq));
            assertEq(cp.root, _rootOf(seq));
            assertEq(anchor.checkpointCount(), seq + 1);
        }
    }

    /// Every view agrees with the {_sizeOf}/{_rootOf} sequence for checkpoints 0 to `count - 1`.
    function _assertViews(uint256 count) internal view {
        for (uint256 seq = 0; seq < count; ++seq) {
            SettlementAnchor.Checkpoint memory cp = anchor.checkpoint(seq);
            assertEq(cp.treeSize, _sizeOf(seq), "checkpoint(seq).treeSize");
            assertEq(cp.root, _rootOf(seq), "checkpoint(seq).root");
            (uint256 found, SettlementAnchor.Checkpoint memory bySize) = anchor.checkpointBySize(_sizeOf(seq));
            assertEq(found, seq, "checkpointBySize seq");
            assertEq(bySize.treeSize, _sizeOf(seq), "checkpointBySize treeSize");
            assertEq(bySize.root, _rootOf(seq), "checkpointBySize root");
        }
    }

    function _liftGrowthLimit() internal {
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.prank(admin);
        anchor.setMaxGrowth(max);
    }

    // ---------------------------------------------------------------- constructor and roles

    function test_Constructor_GrantsRolesAndSetsDefaults() public view {
        assertTrue(anchor.hasRole(anchor.DEFAULT_ADMIN_ROLE(), admin));
        assertEq(anchor.defaultAdmin(), admin);
        assertEq(anchor.defaultAdminDelay(), ADMIN_DELAY);
        assertTrue(anchor.hasRole(anchor.ANCHORER_ROLE(), anchorer));
        assertFalse(anchor.hasRole(anchor.ANCHORER_ROLE(), admin));
        assertEq(anchor.ANCHORER_ROLE(), keccak256("ANCHORER_ROLE"));
        assertEq(anchor.checkpointCount(), 0);
        assertEq(anchor.maxGrowth(), 2 ** 24);
        assertEq(anchor.DEFAULT_MAX_GROWTH(), 2 ** 24);
    }

    function test_Constructor_AnnouncesTheGrowthLimit() public {
        vm.expectEmit(true, true, true, true);
        emit MaxGrowthChanged(0, 2 ** 24);
        new SettlementAnchor(ADMIN_DELAY, admin, anchorer);
    }

    function test_MaxTreeSize_Is2Pow36Minus1() public view {
        assertEq(anchor.MAX_TREE_SIZE(), (uint256(1) << 36) - 1);
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlInvalidDefaultAdmin.selector, address(0)
            )
        );
        new SettlementAnchor(ADMIN_DELAY, address(0), anchorer);
    }

    function test_RevertWhen_ConstructorAnchorerIsZero() public {
        vm.expectRevert(SettlementAnchor.ZeroAddress.selector);
        new SettlementAnchor(ADMIN_DELAY, admin, address(0));
    }

    function test_RevertWhen_AdminRenouncesInOneStep() public {
        bytes32 role = anchor.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, 0)
        );
        vm.prank(admin);
        anchor.renounceRole(role, admin);
        assertEq(anchor.defaultAdmin(), admin);
    }

    function test_RevertWhen_AdminRoleIsGranted() public {
        bytes32 role = anchor.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminRules.selector);
        vm.prank(admin);
        anchor.grantRole(role, stranger);
    }

    function test_AdminTransfer_TakesTwoStepsAndTheDelay() public {
        address next = makeAddr("next admin");
        vm.prank(admin);
        anchor.beginDefaultAdminTransfer(next);
        (, uint48 schedule) = anchor.pendingDefaultAdmin();
        assertEq(schedule, block.timestamp + ADMIN_DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, schedule
            )
        );
        vm.prank(next);
        anchor.acceptDefaultAdminTransfer();

        vm.warp(schedule + 1);
        vm.prank(next);
        anchor.acceptDefaultAdminTransfer();
        assertEq(anchor.defaultAdmin(), next);
        vm.prank(next);
        anchor.setMaxGrowth(5);
        assertEq(anchor.maxGrowth(), 5);
    }

    // ---------------------------------------------------------------- anchor

    function test_Anchor_StoresFirstCheckpoint() public {
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointAnchored(0, 10, ROOT_A, bytes32(0));
        vm.prank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));

        assertEq(anchor.checkpointCount(), 1);
        SettlementAnchor.Checkpoint memory cp = anchor.checkpoint(0);
        assertEq(cp.treeSize, 10);
        assertEq(cp.root, ROOT_A);
    }

    function test_Anchor_ChainsCheckpoints() public {
        vm.startPrank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointAnchored(1, 25, ROOT_B, ROOT_A);
        anchor.anchor(25, ROOT_B, ROOT_A);
        vm.stopPrank();

        assertEq(anchor.checkpointCount(), 2);
        assertEq(anchor.checkpoint(1).treeSize, 25);
        assertEq(anchor.checkpoint(1).root, ROOT_B);
        assertEq(anchor.checkpoint(0).treeSize, 10);
    }

    function test_Anchor_ByGrantedAnchorer() public {
        address other = makeAddr("other");
        bytes32 role = anchor.ANCHORER_ROLE();
        vm.prank(admin);
        anchor.grantRole(role, other);
        vm.prank(other);
        anchor.anchor(1, ROOT_A, bytes32(0));
        assertEq(anchor.checkpointCount(), 1);
    }

    function test_RevertWhen_AnchorByRevokedAnchorer() public {
        bytes32 role = anchor.ANCHORER_ROLE();
        vm.prank(admin);
        anchor.revokeRole(role, anchorer);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, anchorer, role)
        );
        vm.prank(anchorer);
        anchor.anchor(1, ROOT_A, bytes32(0));
    }

    function test_Anchor_AcceptsMaxTreeSize() public {
        _liftGrowthLimit();
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.startPrank(anchorer);
        anchor.anchor(max - 1, ROOT_A, bytes32(0));
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointAnchored(1, max, ROOT_B, ROOT_A);
        anchor.anchor(max, ROOT_B, ROOT_A);
        vm.stopPrank();
        assertEq(anchor.checkpoint(0).treeSize, max - 1);
        assertEq(anchor.checkpoint(1).treeSize, max);
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(max);
        assertEq(seq, 1);
        assertEq(cp.root, ROOT_B);
        // Nothing can follow a checkpoint of the largest size.
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, max + 1, max));
        vm.prank(anchorer);
        anchor.anchor(max + 1, ROOT_C, ROOT_B);
    }

    function test_Anchor_ChunkBoundaries() public {
        // Chunks hold six sizes: 0-5 and 6-11 are archived when 5 and 11 are anchored,
        // 12-17 after 17; 18 starts the fourth chunk.
        uint256[6] memory boundaries = [uint256(5), 6, 11, 12, 17, 18];
        uint256 next = 0;
        for (uint256 i = 0; i < boundaries.length; ++i) {
            _anchorMany(next, boundaries[i] + 1);
            next = boundaries[i] + 1;
            _assertViews(next);
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, next));
            anchor.checkpoint(next);
        }
    }

    function test_Anchor_StaleHeadFieldsAreNotCheckpoints() public {
        // After 8 checkpoints the head's size fields 2-4 still hold checkpoints
        // 2-4 of the archived first chunk, and 5 is only in the archive.
        _anchorMany(0, 8);
        _assertViews(8);
        (uint256 seq,) = anchor.checkpointBySize(_sizeOf(3));
        assertEq(seq, 3);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 8));
        anchor.checkpoint(8);
        // The next checkpoint is checked against checkpoint 7, not a stale field.
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(7), _sizeOf(4)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(4), _rootOf(8), _rootOf(7));
    }

    function test_Anchor_AfterAFullChunkChecksItsLastSize() public {
        // Checkpoint 11 fills the second chunk; the next is checked against it.
        _anchorMany(0, 12);
        uint64[2] memory tooSmall = [_sizeOf(10) + 1, _sizeOf(11)];
        for (uint256 i = 0; i < tooSmall.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(11), tooSmall[i])
            );
            vm.prank(anchorer);
            anchor.anchor(tooSmall[i], _rootOf(12), _rootOf(11));
        }
        _anchorMany(12, 13);
        _assertViews(13);
    }

    function test_RevertWhen_AnchorByNonAnchorer() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, admin, anchor.ANCHORER_ROLE()
            )
        );
        vm.prank(admin);
        anchor.anchor(1, ROOT_A, bytes32(0));
    }

    function test_RevertWhen_AnchorFirstTreeSizeIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, 0, 0));
        vm.prank(anchorer);
        anchor.anchor(0, ROOT_A, bytes32(0));
    }

    function test_RevertWhen_AnchorTreeSizeUnchanged() public {
        vm.startPrank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, 10, 10));
        anchor.anchor(10, ROOT_B, ROOT_A);
        vm.stopPrank();
    }

    function test_RevertWhen_AnchorTreeSizeShrinks() public {
        vm.startPrank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, 10, 9));
        anchor.anchor(9, ROOT_B, ROOT_A);
        vm.stopPrank();
    }

    function test_RevertWhen_AnchorTreeSizeShrinksAcrossChunks() public {
        _anchorMany(0, 6);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(5), _sizeOf(5)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(5), _rootOf(6), _rootOf(5));
    }

    function test_RevertWhen_AnchorTreeSizeTooLarge() public {
        _liftGrowthLimit();
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.startPrank(anchorer);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, max + 1, max));
        anchor.anchor(max + 1, ROOT_A, bytes32(0));
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, type(uint64).max, max));
        anchor.anchor(type(uint64).max, ROOT_B, ROOT_A);
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 1);
    }

    function testFuzz_RevertWhen_AnchorTreeSizeTooLarge(uint64 size, uint8 before) public {
        uint64 max = anchor.MAX_TREE_SIZE();
        size = uint64(bound(size, uint256(max) + 1, type(uint64).max));
        before = uint8(bound(before, 0, 16));
        _anchorMany(0, before);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, size, max));
        vm.prank(anchorer);
        anchor.anchor(size, ROOT_A, before == 0 ? bytes32(0) : _rootOf(before - 1));
        assertEq(anchor.checkpointCount(), before);
    }

    function test_RevertWhen_AnchorFirstPrevRootIsNotZero() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, bytes32(0), ROOT_C));
        vm.prank(anchorer);
        anchor.anchor(10, ROOT_A, ROOT_C);
    }

    function test_RevertWhen_AnchorPrevRootMismatch() public {
        vm.startPrank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, ROOT_A, ROOT_C));
        anchor.anchor(11, ROOT_B, ROOT_C);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, ROOT_A, bytes32(0)));
        anchor.anchor(11, ROOT_B, bytes32(0));
        vm.stopPrank();
    }

    function test_RevertWhen_AnchorPrevRootMismatchAcrossChunks() public {
        _anchorMany(0, 6);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, _rootOf(5), _rootOf(4)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(6), _rootOf(6), _rootOf(4));
    }

    function test_RevertWhen_AnchorRootIsZero() public {
        vm.startPrank(anchorer);
        vm.expectRevert(SettlementAnchor.ZeroRoot.selector);
        anchor.anchor(10, bytes32(0), bytes32(0));
        anchor.anchor(10, ROOT_A, bytes32(0));
        vm.expectRevert(SettlementAnchor.ZeroRoot.selector);
        anchor.anchor(11, bytes32(0), ROOT_A);
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 1);
    }

    /// Random growth, from 1 to the default limit per checkpoint, over up to five chunks:
    /// every view returns what was anchored.
    function testFuzz_Anchor_ViewsReturnWhatWasAnchored(uint256 seed, uint8 count) public {
        count = uint8(bound(count, 1, 32));
        uint64[] memory sizes = new uint64[](count);
        bytes32[] memory roots = new bytes32[](count);
        uint64 size = 0;
        vm.startPrank(anchorer);
        for (uint256 i = 0; i < count; ++i) {
            size += uint64(bound(uint256(keccak256(abi.encode(seed, i))), 1, 2 ** 24));
            sizes[i] = size;
            roots[i] = keccak256(abi.encode(seed, "root", i));
            vm.expectEmit(true, true, true, true, address(anchor));
            emit CheckpointAnchored(i, size, roots[i], i == 0 ? bytes32(0) : roots[i - 1]);
            anchor.anchor(size, roots[i], i == 0 ? bytes32(0) : roots[i - 1]);
        }
        vm.stopPrank();

        assertEq(anchor.checkpointCount(), count);
        (uint256 last, SettlementAnchor.Checkpoint memory top) = anchor.latest();
        assertEq(last, count - 1);
        assertEq(top.treeSize, size);
        assertEq(top.root, roots[count - 1]);
        for (uint256 i = 0; i < count; ++i) {
            SettlementAnchor.Checkpoint memory cp = anchor.checkpoint(i);
            assertEq(cp.treeSize, sizes[i]);
            assertEq(cp.root, roots[i]);
        }
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, uint256(count)));
        anchor.checkpoint(count);
    }

    // ---------------------------------------------------------------- growth limit

    function test_Anchor_GrowsUpToTheLimitAndNoFurther() public {
        uint64 limit = anchor.maxGrowth();
        vm.startPrank(anchorer);
        anchor.anchor(limit, ROOT_A, bytes32(0));
        anchor.anchor(2 * limit, ROOT_B, ROOT_A);
        vm.expectRevert(
            abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, 2 * limit, 3 * limit + 1, limit)
        );
        anchor.anchor(3 * limit + 1, ROOT_C, ROOT_B);
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 2);
    }

    function test_RevertWhen_FirstAnchorGrowsTooMuch() public {
        uint64 limit = anchor.maxGrowth();
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, 0, limit + 1, limit));
        vm.prank(anchorer);
        anchor.anchor(limit + 1, ROOT_A, bytes32(0));
    }

    function testFuzz_Anchor_GrowthLimit(uint64 limit, uint64 start, uint64 growth) public {
        uint64 max = anchor.MAX_TREE_SIZE();
        limit = uint64(bound(limit, 1, max));
        start = uint64(bound(start, 1, max - 1));
        growth = uint64(bound(growth, 1, max - start));
        _liftGrowthLimit();
        vm.prank(anchorer);
        anchor.anchor(start, ROOT_A, bytes32(0));
        vm.prank(admin);
        anchor.setMaxGrowth(limit);
        if (growth > limit) {
            vm.expectRevert(
                abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, start, start + growth, limit)
            );
        }
        vm.prank(anchorer);
        anchor.anchor(start + growth, ROOT_B, ROOT_A);
        assertEq(anchor.checkpointCount(), growth > limit ? 1 : 2);
    }

    function test_SetMaxGrowth_ChangesTheLimitAndKeepsCheckpoints() public {
        _anchorMany(0, 13);
        vm.expectEmit(true, true, true, true, address(anchor));
        emit MaxGrowthChanged(2 ** 24, 3);
        vm.prank(admin);
        anchor.setMaxGrowth(3);
        assertEq(anchor.maxGrowth(), 3);
        _assertViews(13);
        vm.expectRevert(
            abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, _sizeOf(12), _sizeOf(12) + 4, 3)
        );
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(12) + 4, ROOT_A, _rootOf(12));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(12) + 3, ROOT_A, _rootOf(12));

        uint64 max = anchor.MAX_TREE_SIZE();
        vm.prank(admin);
        anchor.setMaxGrowth(max);
        assertEq(anchor.maxGrowth(), max);
        _assertViews(13);
    }

    function test_RevertWhen_SetMaxGrowthOutOfRange() public {
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.InvalidMaxGrowth.selector, 0));
        anchor.setMaxGrowth(0);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.InvalidMaxGrowth.selector, max + 1));
        anchor.setMaxGrowth(max + 1);
        vm.stopPrank();
        assertEq(anchor.maxGrowth(), 2 ** 24);
    }

    function test_RevertWhen_SetMaxGrowthByNonAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, anchorer, anchor.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(anchorer);
        anchor.setMaxGrowth(1);
    }

    // ---------------------------------------------------------------- near the largest size

    /// Sizes just below, at and above the largest, from a checkpoint just below it.
    function testFuzz_Anchor_NearMaxTreeSize(uint64 below, uint64 growth) public {
        uint64 max = anchor.MAX_TREE_SIZE();
        below = uint64(bound(below, 1, 1000));
        growth = uint64(bound(growth, 1, 2000));
        _liftGrowthLimit();
        vm.prank(anchorer);
        anchor.anchor(max - below, ROOT_A, bytes32(0));
        uint64 size = max - below + growth;
        if (size > max) {
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, size, max));
        }
        vm.prank(anchorer);
        anchor.anchor(size, ROOT_B, ROOT_A);
        if (size > max) {
            assertEq(anchor.checkpointCount(), 1);
            return;
        }
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(size);
        assertEq(seq, 1);
        assertEq(cp.root, ROOT_B);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, size + 1));
        anchor.checkpointBySize(size + 1);
    }

    /// The 36-bit fields hold the largest size and the largest limit next to each
    /// other without one spilling into the next, in the head and in a chunk.
    function test_Anchor_FieldsHoldTheLargestValues() public {
        _liftGrowthLimit();
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.startPrank(anchorer);
        bytes32 prev = bytes32(0);
        for (uint256 i = 0; i < 6; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            uint64 size = max - 5 + uint64(i);
            bytes32 root = keccak256(abi.encode("near max", i));
            anchor.anchor(size, root, prev);
            prev = root;
        }
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 6);
        assertEq(anchor.maxGrowth(), max);
        for (uint256 i = 0; i < 6; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            assertEq(anchor.checkpoint(i).treeSize, max - 5 + uint64(i));
        }
        (uint256 seq,) = anchor.checkpointBySize(max);
        assertEq(seq, 5);
    }

    // ---------------------------------------------------------------- supersede

    function test_Supersede_DropsTheTailAndAnchoringContinues() public {
        _anchorMany(0, 10);
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointsSuperseded(4, 10, _sizeOf(3), _rootOf(3));
        vm.prank(admin);
        anchor.supersede(4);

        assertEq(anchor.checkpointCount(), 4);
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(seq, 3);
        assertEq(cp.treeSize, _sizeOf(3));
        assertEq(cp.root, _rootOf(3));
        _assertViews(4);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 4));
        anchor.checkpoint(4);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, _sizeOf(9)));
        anchor.checkpointBySize(_sizeOf(9));

        // The next anchor extends checkpoint 3, with a size the dropped ones had passed.
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointAnchored(4, _sizeOf(3) + 1, ROOT_A, _rootOf(3));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(3) + 1, ROOT_A, _rootOf(3));
        assertEq(anchor.checkpoint(4).root, ROOT_A);
    }

    function test_Supersede_ToNothing() public {
        _anchorMany(0, 3);
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointsSuperseded(0, 3, 0, bytes32(0));
        vm.prank(admin);
        anchor.supersede(0);
        assertEq(anchor.checkpointCount(), 0);
        vm.expectRevert(SettlementAnchor.NoCheckpoint.selector);
        anchor.latest();
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, bytes32(0), _rootOf(2)));
        vm.prank(anchorer);
        anchor.anchor(1, ROOT_A, _rootOf(2));
        vm.prank(anchorer);
        anchor.anchor(1, ROOT_A, bytes32(0));
        assertEq(anchor.checkpoint(0).treeSize, 1);
    }

    function test_Supersede_AtChunkBoundaries() public {
        uint256[8] memory keeps = [uint256(1), 5, 6, 7, 11, 12, 13, 17];
        for (uint256 i = 0; i < keeps.length; ++i) {
            setUp();
            _anchorMany(0, 20);
            vm.prank(admin);
            anchor.supersede(keeps[i]);
            _assertViews(keeps[i]);
            // Anchoring the dropped sequence again rebuilds exactly what was there.
            _anchorMany(keeps[i], 20);
            _assertViews(20);
        }
    }

    /// After a supersede and more anchors, every view answers as on a contract
    /// that was only ever given the surviving checkpoints.
    function testFuzz_Supersede_ViewsMatchAFreshAnchor(uint256 seed, uint8 count, uint8 keep, uint8 more) public {
        count = uint8(bound(count, 1, 30));
        keep = uint8(bound(keep, 0, count - 1));
        more = uint8(bound(more, 0, 14));
        SettlementAnchor fresh = new SettlementAnchor(ADMIN_DELAY, admin, anchorer);
        uint64 size = 0;
        bytes32 prev = bytes32(0);
        vm.startPrank(anchorer);
        for (uint256 i = 0; i < count; ++i) {
            size += uint64(bound(uint256(keccak256(abi.encode(seed, i))), 1, 1000));
            bytes32 root = keccak256(abi.encode(seed, "root", i));
            anchor.anchor(size, root, prev);
            if (i < keep) fresh.anchor(size, root, prev);
            prev = root;
        }
        vm.stopPrank();
        vm.prank(admin);
        anchor.supersede(keep);
        (size, prev) = keep == 0
            ? (uint64(0), bytes32(0))
            : (anchor.checkpoint(keep - 1).treeSize, anchor.checkpoint(keep - 1).root);
        vm.startPrank(anchorer);
        for (uint256 i = 0; i < more; ++i) {
            size += uint64(bound(uint256(keccak256(abi.encode(seed, "more", i))), 1, 1000));
            bytes32 root = keccak256(abi.encode(seed, "more root", i));
            anchor.anchor(size, root, prev);
            fresh.anchor(size, root, prev);
            prev = root;
        }
        vm.stopPrank();

        uint256 total = uint256(keep) + more;
        assertEq(anchor.checkpointCount(), total);
        for (uint256 seq = 0; seq < total; ++seq) {
            SettlementAnchor.Checkpoint memory a = anchor.checkpoint(seq);
            SettlementAnchor.Checkpoint memory b = fresh.checkpoint(seq);
            assertEq(a.treeSize, b.treeSize, "size");
            assertEq(a.root, b.root, "root");
            (uint256 found,) = anchor.checkpointBySize(b.treeSize);
            assertEq(found, seq, "checkpointBySize");
        }
        if (total > 0) {
            (uint256 s1, SettlementAnchor.Checkpoint memory l1) = anchor.latest();
            (uint256 s2, SettlementAnchor.Checkpoint memory l2) = fresh.latest();
            assertEq(s1, s2);
            assertEq(l1.treeSize, l2.treeSize);
            assertEq(l1.root, l2.root);
        }
    }

    function test_Supersede_KeepsTheGrowthLimit() public {
        _anchorMany(0, 4);
        vm.prank(admin);
        anchor.setMaxGrowth(77);
        vm.prank(admin);
        anchor.supersede(2);
        assertEq(anchor.maxGrowth(), 77);
    }

    function test_RevertWhen_SupersedeDropsNothing() public {
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.NothingToSupersede.selector, 0, 0));
        anchor.supersede(0);
        vm.stopPrank();
        _anchorThree();
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.NothingToSupersede.selector, 3, 3));
        anchor.supersede(3);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.NothingToSupersede.selector, 4, 3));
        anchor.supersede(4);
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 3);
    }

    function test_RevertWhen_SupersedeByNonAdmin() public {
        _anchorThree();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, anchorer, anchor.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(anchorer);
        anchor.supersede(1);
    }

    // ---------------------------------------------------------------- views

    function test_RevertWhen_LatestWithoutCheckpoint() public {
        vm.expectRevert(SettlementAnchor.NoCheckpoint.selector);
        anchor.latest();
    }

    function test_Latest_ReturnsLastCheckpoint() public {
        _anchorThree();
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(seq, 2);
        assertEq(cp.treeSize, 26);
        assertEq(cp.root, ROOT_C);
    }

    function test_Latest_AtChunkBoundaries() public {
        // _anchorMany checks latest() after every anchor, here across three full chunks.
        _anchorMany(0, 22);
    }

    function test_CheckpointCount_CountsAnchors() public {
        assertEq(anchor.checkpointCount(), 0);
        _anchorThree();
        assertEq(anchor.checkpointCount(), 3);
        // A refused anchor counts nothing.
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, 26, 26));
        vm.prank(anchorer);
        anchor.anchor(26, ROOT_A, ROOT_C);
        assertEq(anchor.checkpointCount(), 3);
    }

    function test_Checkpoint_ReturnsEach() public {
        _anchorThree();
        assertEq(anchor.checkpoint(0).root, ROOT_A);
        assertEq(anchor.checkpoint(1).root, ROOT_B);
        assertEq(anchor.checkpoint(2).root, ROOT_C);
        assertEq(anchor.checkpoint(0).treeSize, 10);
        assertEq(anchor.checkpoint(1).treeSize, 25);
        assertEq(anchor.checkpoint(2).treeSize, 26);
    }

    function test_Checkpoint_ReturnsEachAcrossChunks() public {
        _anchorMany(0, 17);
        _assertViews(17);
    }

    function test_RevertWhen_CheckpointSeqUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 0));
        anchor.checkpoint(0);
        _anchorThree();
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 3));
        anchor.checkpoint(3);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, type(uint256).max));
        anchor.checkpoint(type(uint256).max);
    }

    function test_CheckpointBySize_FindsEach() public {
        _anchorThree();
        uint64[3] memory sizes = [uint64(10), 25, 26];
        bytes32[3] memory roots = [ROOT_A, ROOT_B, ROOT_C];
        for (uint256 i = 0; i < 3; ++i) {
            (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(sizes[i]);
            assertEq(seq, i);
            assertEq(cp.treeSize, sizes[i]);
            assertEq(cp.root, roots[i]);
        }
    }

    function test_CheckpointBySize_AcrossArchivedAndHeadChunks() public {
        // Two archived chunks (0-5, 6-11) and five checkpoints in the head (12-16).
        _anchorMany(0, 17);
        _assertViews(17);
        // Sizes between, below and above the checkpoints belong to none.
        for (uint256 seq = 0; seq <= 17; ++seq) {
            uint64 size = _sizeOf(seq) - 1;
            if (seq > 0 && size == _sizeOf(seq - 1)) continue;
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, size));
            anchor.checkpointBySize(size);
        }
    }

    function test_RevertWhen_CheckpointBySizeWithoutCheckpoint() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, 10));
        anchor.checkpointBySize(10);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, 0));
        anchor.checkpointBySize(0);
    }

    function test_RevertWhen_CheckpointBySizeUnknown() public {
        _anchorThree();
        uint64[5] memory absent = [uint64(0), 9, 11, 27, type(uint64).max];
        for (uint256 i = 0; i < absent.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, absent[i]));
            anchor.checkpointBySize(absent[i]);
        }
    }

    function testFuzz_CheckpointBySize(uint256 seed, uint8 count) public {
        count = uint8(bound(count, 1, 40));
        uint64[] memory sizes = new uint64[](count);
        uint64 size = 0;
        bytes32 prev = bytes32(0);
        vm.startPrank(anchorer);
        for (uint256 i = 0; i < count; ++i) {
            size += uint64(bound(uint256(keccak256(abi.encode(seed, i))), 1, 1000));
            sizes[i] = size;
            bytes32 root = keccak256(abi.encode(seed, "root", i));
            anchor.anchor(size, root, prev);
            prev = root;
        }
        vm.stopPrank();

        for (uint256 i = 0; i < count; ++i) {
            (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(sizes[i]);
            assertEq(seq, i);
            assertEq(cp.treeSize, sizes[i]);
            assertEq(cp.root, keccak256(abi.encode(seed, "root", i)));
            // The size just below a checkpoint's belongs to no checkpoint unless it is the previous one.
            uint64 below = sizes[i] - 1;
            if (i == 0 || below != sizes[i - 1]) {
                vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, below));
                anchor.checkpointBySize(below);
            }
        }
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, size + 1));
        anchor.checkpointBySize(size + 1);
    }

    // ---------------------------------------------------------------- verifyInclusionAt

    /// Anchors the reference roots of the first 1 to `n` CT test leaves as checkpoints 0 to n - 1.
    function _anchorCtTrees(uint256 n) internal {
        bytes32 prev = bytes32(0);
        vm.startPrank(anchorer);
        for (uint256 size = 1; size <= n; ++size) {
            bytes32 root = MerkleReference.root(CtLeaves.first(size));
            // forge-lint: disable-next-line(unsafe-typecast)
            anchor.anchor(uint64(size), root, prev);
            prev = root;
        }
        vm.stopPrank();
    }

    function test_VerifyInclusionAt_KnownProofs() public {
        _anchorCtTrees(8);
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32[] memory proof5 = new bytes32[](3);
        proof5[0] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        proof5[1] = 0xca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0;
        proof5[2] = 0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7;
        assertTrue(anchor.verifyInclusionAt(7, leaves[5], 5, proof5));
        // Checkpoint 2 is the 3-leaf tree: leaf 2 is one level below its sibling.
        bytes32[] memory proof2of3 = new bytes32[](1);
        proof2of3[0] = 0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125;
        assertTrue(anchor.verifyInclusionAt(2, leaves[2], 2, proof2of3));
        // The same proof against another checkpoint's size and root fails.
        assertFalse(anchor.verifyInclusionAt(3, leaves[2], 2, proof2of3));
        assertFalse(anchor.verifyInclusionAt(7, leaves[2], 2, proof2of3));
    }

    function test_VerifyInclusionAt_EveryLeafOfEveryCheckpoint() public {
        _anchorCtTrees(8);
        for (uint256 n = 1; n <= 8; ++n) {
            bytes32[] memory leaves = CtLeaves.first(n);
            for (uint256 m = 0; m < n; ++m) {
                assertTrue(anchor.verifyInclusionAt(n - 1, leaves[m], m, MerkleReference.path(leaves, m)));
                assertFalse(anchor.verifyInclusionAt(n - 1, leaves[m], m + n, MerkleReference.path(leaves, m)));
            }
        }
    }

    /// The interior node over leaves 0 and 1 of the 8-leaf tree, with its real path,
    /// is "leaf 0 of a 4-leaf tree" with the 8-leaf root; given the checkpoint it is nothing.
    function test_VerifyInclusionAt_RefusesAnInteriorNode() public {
        _anchorCtTrees(8);
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32 node = MerkleReference.rangeRoot(leaves, 0, 2);
        bytes32[] memory path = new bytes32[](2);
        path[0] = MerkleReference.rangeRoot(leaves, 2, 4);
        path[1] = MerkleReference.rangeRoot(leaves, 4, 8);
        for (uint256 index = 0; index < 8; ++index) {
            assertFalse(anchor.verifyInclusionAt(7, node, index, path));
        }
        assertTrue(anchor.verifyInclusionAt(7, leaves[0], 0, MerkleReference.path(leaves, 0)));
    }

    /// Any interior node of a random tree, at any claimed index, with its real path:
    /// refused once the size is the checkpoint's.
    function testFuzz_VerifyInclusionAt_RefusesInteriorNodes(
        uint256 seed,
        uint256 size,
        uint256 level,
        uint256 position,
        uint256 index
    ) public {
        size = bound(size, 2, 200);
        level = bound(level, 1, 7);
        vm.assume(size >> level > 0);
        position = bound(position, 0, (size >> level) - 1);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        vm.prank(anchorer);
        // forge-lint: disable-next-line(unsafe-typecast)
        anchor.anchor(uint64(size), root, bytes32(0));

        uint256 first = position << level;
        bytes32 node = MerkleReference.rangeRoot(leaves, first, first + 2 ** level);
        // The node's path is its first leaf's, less the `level` siblings inside the node.
        bytes32[] memory leafPath = MerkleReference.path(leaves, first);
        bytes32[] memory path = new bytes32[](leafPath.length - level);
        for (uint256 i = 0; i < path.length; ++i) {
            path[i] = leafPath[i + level];
        }
        assertFalse(anchor.verifyInclusionAt(0, node, index, path));
    }

    function testFuzz_VerifyInclusionAt_AcceptsReferenceProof(uint256 seed, uint256 size, uint256 index) public {
        size = bound(size, 1, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        vm.prank(anchorer);
        // forge-lint: disable-next-line(unsafe-typecast)
        anchor.anchor(uint64(size), root, bytes32(0));
        assertTrue(anchor.verifyInclusionAt(0, leaves[index], index, MerkleReference.path(leaves, index)));
    }

    function test_RevertWhen_VerifyInclusionAtUnknownCheckpoint() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 0));
        anchor.verifyInclusionAt(0, ROOT_A, 0, new bytes32[](0));
        _anchorThree();
        vm.prank(admin);
        anchor.supersede(1);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 1));
        anchor.verifyInclusionAt(1, ROOT_A, 0, new bytes32[](0));
    }
}

/// @dev The RFC 9162 verifier itself, on any tree (through {SettlementAnchorHarness}).
contract SettlementAnchorVerifierTest is TestBase {
    SettlementAnchorHarness internal verifier;

    bytes32 internal constant ROOT_A = keccak256("root a");

    function setUp() public {
        verifier = new SettlementAnchorHarness();
    }

    // ---------------------------------------------------------------- verifyInclusion: known answers

    function test_Reference_MatchesKnownRoots() public pure {
        bytes32[9] memory roots = [
            bytes32(0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855),
            0x6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d,
            0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125,
            0xaeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77,
            0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7,
            0x4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4,
            0x76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef,
            0xddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c,
            0x5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
        ];
        for (uint256 n = 0; n <= 8; ++n) {
            assertEq(MerkleReference.root(CtLeaves.first(n)), roots[n], "RFC 6962 root");
        }
    }

    function test_VerifyInclusion_KnownProofs() public view {
        bytes32 root8 = 0x5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328;
        bytes32[] memory leaves = CtLeaves.first(8);

        bytes32[] memory proof0 = new bytes32[](3);
        proof0[0] = 0x96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7;
        proof0[1] = 0x5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e;
        proof0[2] = 0x6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4;
        assertEq(MerkleReference.path(leaves, 0), proof0);
        assertTrue(verifier.verifyInclusion(leaves[0], 0, 8, proof0, root8));

        bytes32[] memory proof5 = new bytes32[](3);
        proof5[0] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        proof5[1] = 0xca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0;
        proof5[2] = 0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7;
        assertEq(MerkleReference.path(leaves, 5), proof5);
        assertTrue(verifier.verifyInclusion(leaves[5], 5, 8, proof5, root8));

        // Leaf 2 of the 3-leaf tree: the rightmost leaf, one level below its sibling.
        bytes32 root3 = 0xaeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77;
        bytes32[] memory proof2of3 = new bytes32[](1);
        proof2of3[0] = 0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125;
        assertTrue(verifier.verifyInclusion(leaves[2], 2, 3, proof2of3, root3));
    }

    function test_VerifyInclusion_EveryLeafOfSmallTrees() public view {
        for (uint256 n = 1; n <= 8; ++n) {
            bytes32[] memory leaves = CtLeaves.first(n);
            bytes32 root = MerkleReference.root(leaves);
            for (uint256 m = 0; m < n; ++m) {
                assertTrue(verifier.verifyInclusion(leaves[m], m, n, MerkleReference.path(leaves, m), root));
            }
        }
    }

    function test_VerifyInclusion_SingleLeafTreeHasEmptyProof() public view {
        bytes32 leaf = MerkleReference.hashLeaf("only");
        assertTrue(verifier.verifyInclusion(leaf, 0, 1, new bytes32[](0), leaf));
        assertFalse(verifier.verifyInclusion(leaf, 0, 1, new bytes32[](1), leaf));
    }

    // ---------------------------------------------------------------- verifyInclusion: rejections

    function test_VerifyInclusion_FalseWhenIndexNotBelowTreeSize() public view {
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 7);
        assertFalse(verifier.verifyInclusion(leaves[7], 8, 8, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[7], type(uint256).max, 8, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[0], 0, 0, new bytes32[](0), sha256("")));
    }

    function test_VerifyInclusion_FalseWhenProofTooShort() public view {
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 3);
        bytes32[] memory short = new bytes32[](2);
        short[0] = proof[0];
        short[1] = proof[1];
        assertFalse(verifier.verifyInclusion(leaves[3], 3, 8, short, root));
        // Even if the "root" given is what the short proof leads to.
        bytes32 partialRoot = MerkleReference.hashChildren(proof[1], MerkleReference.hashChildren(proof[0], leaves[3]));
        assertFalse(verifier.verifyInclusion(leaves[3], 3, 8, short, partialRoot));
    }

    function test_VerifyInclusion_FalseWhenProofTooLong() public view {
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 3);
        bytes32[] memory long = new bytes32[](4);
        for (uint256 i = 0; i < 3; ++i) {
            long[i] = proof[i];
        }
        assertFalse(verifier.verifyInclusion(leaves[3], 3, 8, long, root));
    }

    function test_VerifyInclusion_FalseWhenLeafOrRootWrong() public view {
        bytes32[] memory leaves = CtLeaves.first(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 4);
        assertTrue(verifier.verifyInclusion(leaves[4], 4, 8, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[5], 4, 8, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[4], 5, 8, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[4], 4, 8, proof, ROOT_A));
        // The raw entry instead of its leaf hash (second-preimage guard).
        assertFalse(verifier.verifyInclusion(sha256(hex"3031"), 4, 8, proof, root));
    }

    // ---------------------------------------------------------------- verifyInclusion: fuzz

    function testFuzz_VerifyInclusion_AcceptsReferenceProof(uint256 seed, uint256 size, uint256 index) public view {
        size = bound(size, 1, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        assertTrue(verifier.verifyInclusion(leaves[index], index, size, proof, root));
    }

    function testFuzz_VerifyInclusion_RejectsTamperedProof(
        uint256 seed,
        uint256 size,
        uint256 index,
        uint256 pos,
        uint8 bit
    ) public view {
        size = bound(size, 2, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        pos = bound(pos, 0, proof.length - 1);
        proof[pos] ^= bytes32(uint256(1) << bit);
        assertFalse(verifier.verifyInclusion(leaves[index], index, size, proof, root));
    }

    function testFuzz_VerifyInclusion_RejectsOtherLeafOrIndex(uint256 seed, uint256 size, uint256 index, uint256 other)
        public
        view
    {
        size = bound(size, 2, 300);
        index = bound(index, 0, size - 1);
        other = bound(other, 0, size - 1);
        vm.assume(other != index);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        assertFalse(verifier.verifyInclusion(leaves[other], index, size, proof, root));
        assertFalse(verifier.verifyInclusion(leaves[index], other, size, proof, root));
    }

    function testFuzz_VerifyInclusion_RejectsTruncatedOrExtendedProof(uint256 seed, uint256 size, uint256 index)
        public
        view
    {
        size = bound(size, 2, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = CtLeaves.random(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);

        bytes32[] memory shorter = new bytes32[](proof.length - 1);
        bytes32[] memory longer = new bytes32[](proof.length + 1);
        for (uint256 i = 0; i < proof.length; ++i) {
            if (i < shorter.length) shorter[i] = proof[i];
            longer[i] = proof[i];
        }
        longer[proof.length] = keccak256(abi.encode(seed));
        assertFalse(verifier.verifyInclusion(leaves[index], index, size, shorter, root));
        assertFalse(verifier.verifyInclusion(leaves[index], index, size, longer, root));
    }
}

/// @dev Gas budgets. Execution gas as the called contract sees it (see
/// {GasProbe}), and, for `anchor`, the whole transaction: the 21k base, the
/// calldata (4 gas per zero byte, 16 per other byte) and the execution.
/// Issue 16's budget is a typical anchor transaction of at most 60k gas. Each
/// test runs after setUp in a transaction of its own, so storage starts cold
/// and unmodified, as on chain.
contract SettlementAnchorGasTest is TestBase {
    /// Nine checkpoints: the next is in the middle of the second chunk.
    SettlementAnchor internal anchor;
    /// Never anchored to.
    SettlementAnchor internal fresh;
    /// Eleven checkpoints: the next fills the second chunk and archives it.
    SettlementAnchor internal filling;
    /// The anchorer.
    GasProbe internal probe;

    function setUp() public {
        probe = new GasProbe();
        anchor = new SettlementAnchor(0, address(this), address(probe));
        fresh = new SettlementAnchor(0, address(this), address(probe));
        filling = new SettlementAnchor(0, address(this), address(probe));
        _prepare(anchor, 9);
        _prepare(filling, 11);
    }

    function _prepare(SettlementAnchor target, uint256 count) internal {
        for (uint256 seq = 0; seq < count; ++seq) {
            probe.run(address(target), GasCheckpoints.anchorCall(seq));
        }
    }

    function test_Gas_Anchor() public {
        bytes memory call = GasCheckpoints.anchorCall(9);
        uint256 used = probe.measure(address(anchor), call);
        uint256 transaction = GasCheckpoints.transactionGas(call, used);
        emit log_named_uint("anchor: execution gas", used);
        emit log_named_uint("anchor: transaction gas", transaction);
        assertLe(transaction, 60_000, "a typical anchor transaction costs at most 60k gas");
    }

    function test_Gas_AnchorFirst() public {
        bytes memory call = GasCheckpoints.anchorCall(0);
        uint256 used = probe.measure(address(fresh), call);
        emit log_named_uint("anchor, first checkpoint: execution gas", used);
        emit log_named_uint("anchor, first checkpoint: transaction gas", GasCheckpoints.transactionGas(call, used));
        assertLe(GasCheckpoints.transactionGas(call, used), 60_000);
    }

    /// The anchor that fills a chunk also creates its archive slot: 22.1k more.
    function test_Gas_AnchorFillingChunk() public {
        bytes memory call = GasCheckpoints.anchorCall(11);
        uint256 used = probe.measure(address(filling), call);
        emit log_named_uint("anchor, filling a chunk: execution gas", used);
        emit log_named_uint("anchor, filling a chunk: transaction gas", GasCheckpoints.transactionGas(call, used));
        assertLe(used, 60_000);
    }

    /// Average over a chunk: five anchors like {test_Gas_Anchor} and one like
    /// {test_Gas_AnchorFillingChunk}, each with cold storage.
    function test_Gas_AnchorMeanOverChunk() public {
        bytes memory plainCall = GasCheckpoints.anchorCall(9);
        bytes memory fullCall = GasCheckpoints.anchorCall(11);
        uint256 plain = probe.measure(address(anchor), plainCall);
        uint256 full = probe.measure(address(filling), fullCall);
        uint256 mean = (5 * plain + full) / 6;
        uint256 meanTransaction =
            (5 * GasCheckpoints.transactionGas(plainCall, plain) + GasCheckpoints.transactionGas(fullCall, full)) / 6;
        emit log_named_uint("anchor, mean over a chunk of six: execution gas", mean);
        emit log_named_uint("anchor, mean over a chunk of six: transaction gas", meanTransaction);
        assertLe(mean, 60_000);
    }

    /// A valid proof for leaf `index` of an anchored 2^20-leaf tree: 20 random
    /// siblings hashed upward. In a perfect tree the RFC 9162 path is exactly that.
    function test_Gas_VerifyInclusionAt2Pow20() public {
        uint256 size = 1 << 20;
        uint256 index = 0x5A5A5;
        bytes32 leaf = MerkleReference.hashLeaf("settlement 0x5A5A5");
        bytes32[] memory proof = new bytes32[](20);
        bytes32 node = leaf;
        for (uint256 level = 0; level < 20; ++level) {
            proof[level] = keccak256(abi.encode("sibling", level));
            node = (index >> level) & 1 == 1
                ? MerkleReference.hashChildren(proof[level], node)
                : MerkleReference.hashChildren(node, proof[level]);
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        probe.run(address(fresh), abi.encodeCall(SettlementAnchor.anchor, (uint64(size), node, bytes32(0))));

        assertTrue(fresh.verifyInclusionAt(0, leaf, index, proof));
        uint256 used =
            probe.measure(address(fresh), abi.encodeCall(fresh.verifyInclusionAt, (uint256(0), leaf, index, proof)));
        emit log_named_uint("verifyInclusionAt, 2^20 leaves: execution gas", used);
        assertLe(used, 40_000);
    }
}

/// @dev Realistic checkpoints for the gas tests: a few hundred thousand leaves,
/// growing, and random-looking roots (calldata costs more for nonzero bytes).
library GasCheckpoints {
    function size(uint256 seq) internal pure returns (uint64) {
        // Tests use small sequence numbers.
        // forge-lint: disable-next-line(unsafe-typecast)
        return 300_000 + 1000 * uint64(seq);
    }

    function root(uint256 seq) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", seq));
    }

    function anchorCall(uint256 seq) internal pure returns (bytes memory) {
        return abi.encodeCall(SettlementAnchor.anchor, (size(seq), root(seq), seq == 0 ? bytes32(0) : root(seq - 1)));
    }

    /// The gas of a transaction sending `data` whose execution used `execution`:
    /// 21k, plus 4 per zero and 16 per other calldata byte (no access list, not a
    /// contract creation). EIP-7623's calldata floor, 21k + 10 per token, is far
    /// below that for a call this short.
    function transactionGas(bytes memory data, uint256 execution) internal pure returns (uint256 gas) {
        gas = 21_000 + execution;
        for (uint256 i = 0; i < data.length; ++i) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }
}

/// @dev What `forge test --gas-report` shows for {SettlementAnchor-anchor}: it
/// runs each top-level call of a test as a transaction of its own (21k base
/// and calldata included, storage cold), so this test's 24 anchors, four full
/// chunks from the first checkpoint on, give the figures of a long-running
/// anchor: `forge test --gas-report --match-test test_GasReport_AnchorSteadyState`.
/// Without `--gas-report` the calls share one transaction and only the
/// results are checked.
contract SettlementAnchorGasReportTest is TestBase {
    SettlementAnchor internal anchor;
    address internal anchorer = makeAddr("anchorer");

    function setUp() public {
        anchor = new SettlementAnchor(0, address(this), anchorer);
    }

    function test_GasReport_AnchorSteadyState() public {
        for (uint256 seq = 0; seq < 24; ++seq) {
            vm.prank(anchorer);
            anchor.anchor(
                GasCheckpoints.size(seq), GasCheckpoints.root(seq), seq == 0 ? bytes32(0) : GasCheckpoints.root(seq - 1)
            );
        }
        (uint256 last, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(last, 23);
        assertEq(cp.treeSize, GasCheckpoints.size(23));
        assertEq(cp.root, GasCheckpoints.root(23));
    }
}

/// @dev The handler anchors, supersedes, changes the growth limit and the
/// anchorers, and looks up sizes and sequence numbers, expecting the contract
/// to accept exactly what its rules allow. The invariants compare the
/// contract's storage with its own {SettlementAnchor-CheckpointAnchored} logs,
/// which the handler records as emitted: neither side is a value the handler
/// chose.
contract SettlementAnchorInvariantTest is TestBase {
    SettlementAnchor internal anchor;
    SettlementAnchorHandler internal handler;

    function setUp() public {
        handler = new SettlementAnchorHandler();
        anchor = handler.anchor();
        targetContract(address(handler));
    }

    function invariant_CountMatchesTheLogs() public view {
        assertEq(anchor.checkpointCount(), handler.liveCount());
    }

    function invariant_TreeSizesStrictlyGrowWithinTheLimit() public view {
        uint256 count = anchor.checkpointCount();
        uint64 previous = 0;
        for (uint256 seq = 0; seq < count; ++seq) {
            uint64 size = anchor.checkpoint(seq).treeSize;
            assertGt(size, previous, "tree size did not grow");
            assertLe(size - previous, handler.limitAt(seq), "grew by more than the limit in force");
            assertLe(size, anchor.MAX_TREE_SIZE());
            previous = size;
        }
    }

    /// The `prevRoot` the contract announced for each live checkpoint is the
    /// root it stores for the one before; the announced size and root are the
    /// stored ones; no stored root is zero.
    function invariant_EachCheckpointExtendsThePreviousRoot() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 0; seq < count; ++seq) {
            SettlementAnchor.Checkpoint memory cp = anchor.checkpoint(seq);
            bytes32 expected = seq == 0 ? bytes32(0) : anchor.checkpoint(seq - 1).root;
            assertEq(handler.loggedPrevRoot(seq), expected, "prevRoot is not the previous stored root");
            assertEq(handler.loggedRoot(seq), cp.root, "logged root is not the stored one");
            assertEq(handler.loggedSize(seq), cp.treeSize, "logged size is not the stored one");
            assertNotEq(cp.root, bytes32(0));
        }
    }

    function invariant_LatestIsLastCheckpoint() public view {
        uint256 count = anchor.checkpointCount();
        if (count == 0) return;
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(seq, count - 1);
        assertEq(cp.treeSize, anchor.checkpoint(seq).treeSize);
        assertEq(cp.root, handler.loggedRoot(seq));
    }

    function invariant_CheckpointBySizeFindsEach() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 0; seq < count; ++seq) {
            (uint256 found, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(handler.loggedSize(seq));
            assertEq(found, seq);
            assertEq(cp.root, handler.loggedRoot(seq));
        }
    }

    function invariant_GrowthLimitIsTheLastOneSet() public view {
        assertEq(anchor.maxGrowth(), handler.limit());
    }
}
