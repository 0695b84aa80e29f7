// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementAnchor} from "../src/SettlementAnchor.sol";
import {SettlementAnchorHandler} from "./handlers/SettlementAnchorHandler.sol";
import {GasProbe} from "./utils/GasProbe.sol";
import {MerkleReference} from "./utils/MerkleReference.sol";
import {TestBase} from "./utils/TestBase.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract SettlementAnchorTest is TestBase {
    event CheckpointAnchored(uint256 indexed seq, uint64 treeSize, bytes32 root, bytes32 prevRoot);

    SettlementAnchor internal anchor;
    address internal admin = makeAddr("admin");
    address internal anchorer = makeAddr("anchorer");
    address internal stranger = makeAddr("stranger");

    bytes32 internal constant ROOT_A = keccak256("root a");
    bytes32 internal constant ROOT_B = keccak256("root b");
    bytes32 internal constant ROOT_C = keccak256("root c");

    function setUp() public {
        anchor = new SettlementAnchor(admin, anchorer);
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

    // ---------------------------------------------------------------- constructor

    function test_Constructor_GrantsRoles() public view {
        assertTrue(anchor.hasRole(anchor.DEFAULT_ADMIN_ROLE(), admin));
        assertTrue(anchor.hasRole(anchor.ANCHORER_ROLE(), anchorer));
        assertFalse(anchor.hasRole(anchor.ANCHORER_ROLE(), admin));
        assertEq(anchor.ANCHORER_ROLE(), keccak256("ANCHORER_ROLE"));
        assertEq(anchor.checkpointCount(), 0);
    }

    function test_MaxTreeSize_Is2Pow36Minus1() public view {
        assertEq(anchor.MAX_TREE_SIZE(), (uint256(1) << 36) - 1);
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(SettlementAnchor.ZeroAddress.selector);
        new SettlementAnchor(address(0), anchorer);
    }

    function test_RevertWhen_ConstructorAnchorerIsZero() public {
        vm.expectRevert(SettlementAnchor.ZeroAddress.selector);
        new SettlementAnchor(admin, address(0));
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

    function test_Anchor_AcceptsMaxTreeSize() public {
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
        // Chunks hold seven sizes: 0-6 and 7-13 are archived when 6 and 13 are anchored,
        // 14-20 after 20; 21 starts the fourth chunk.
        uint256[6] memory boundaries = [uint256(6), 7, 13, 14, 20, 21];
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
        // After 9 checkpoints the head's size fields 2-5 still hold checkpoints
        // 2-5 of the archived first chunk, and 6 is only in the archive.
        _anchorMany(0, 9);
        _assertViews(9);
        (uint256 seq,) = anchor.checkpointBySize(_sizeOf(3));
        assertEq(seq, 3);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 9));
        anchor.checkpoint(9);
        // The next checkpoint is checked against checkpoint 8, not a stale field.
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(8), _sizeOf(5)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(5), _rootOf(9), _rootOf(8));
    }

    function test_Anchor_AfterAFullChunkChecksItsLastSize() public {
        // Checkpoint 13 fills the second chunk; the next is checked against it.
        _anchorMany(0, 14);
        uint64[2] memory tooSmall = [_sizeOf(12) + 1, _sizeOf(13)];
        for (uint256 i = 0; i < tooSmall.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(13), tooSmall[i])
            );
            vm.prank(anchorer);
            anchor.anchor(tooSmall[i], _rootOf(14), _rootOf(13));
        }
        _anchorMany(14, 15);
        _assertViews(15);
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
        _anchorMany(0, 7);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, _sizeOf(6), _sizeOf(6)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(6), _rootOf(7), _rootOf(6));
    }

    function test_RevertWhen_AnchorTreeSizeTooLarge() public {
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
        _anchorMany(0, 7);
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, _rootOf(6), _rootOf(5)));
        vm.prank(anchorer);
        anchor.anchor(_sizeOf(7), _rootOf(7), _rootOf(5));
    }

    /// Random growth, from 1 to two billion per checkpoint, over up to five chunks:
    /// every view returns what was anchored.
    function testFuzz_Anchor_ViewsReturnWhatWasAnchored(uint256 seed, uint8 count) public {
        count = uint8(bound(count, 1, 32));
        uint64[] memory sizes = new uint64[](count);
        bytes32[] memory roots = new bytes32[](count);
        uint64 size = 0;
        vm.startPrank(anchorer);
        for (uint256 i = 0; i < count; ++i) {
            size += uint64(bound(uint256(keccak256(abi.encode(seed, i))), 1, 2_000_000_000));
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
        // Two archived chunks (0-6, 7-13) and three checkpoints in the head (14-16).
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

    // ---------------------------------------------------------------- verifyInclusion: known answers

    /// The eight test entries of the certificate-transparency reference
    /// implementation, whose tree roots for sizes 1 to 8 are widely published.
    function _ctLeaves(uint256 n) internal pure returns (bytes32[] memory leaves) {
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
            assertEq(MerkleReference.root(_ctLeaves(n)), roots[n], "RFC 6962 root");
        }
    }

    function test_VerifyInclusion_KnownProofs() public view {
        bytes32 root8 = 0x5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328;
        bytes32[] memory leaves = _ctLeaves(8);

        bytes32[] memory proof0 = new bytes32[](3);
        proof0[0] = 0x96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7;
        proof0[1] = 0x5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e;
        proof0[2] = 0x6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4;
        assertEq(MerkleReference.path(leaves, 0), proof0);
        assertTrue(anchor.verifyInclusion(leaves[0], 0, 8, proof0, root8));

        bytes32[] memory proof5 = new bytes32[](3);
        proof5[0] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        proof5[1] = 0xca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0;
        proof5[2] = 0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7;
        assertEq(MerkleReference.path(leaves, 5), proof5);
        assertTrue(anchor.verifyInclusion(leaves[5], 5, 8, proof5, root8));

        // Leaf 2 of the 3-leaf tree: the rightmost leaf, one level below its sibling.
        bytes32 root3 = 0xaeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77;
        bytes32[] memory proof2of3 = new bytes32[](1);
        proof2of3[0] = 0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125;
        assertTrue(anchor.verifyInclusion(leaves[2], 2, 3, proof2of3, root3));
    }

    function test_VerifyInclusion_EveryLeafOfSmallTrees() public view {
        for (uint256 n = 1; n <= 8; ++n) {
            bytes32[] memory leaves = _ctLeaves(n);
            bytes32 root = MerkleReference.root(leaves);
            for (uint256 m = 0; m < n; ++m) {
                assertTrue(anchor.verifyInclusion(leaves[m], m, n, MerkleReference.path(leaves, m), root));
            }
        }
    }

    function test_VerifyInclusion_SingleLeafTreeHasEmptyProof() public view {
        bytes32 leaf = MerkleReference.hashLeaf("only");
        assertTrue(anchor.verifyInclusion(leaf, 0, 1, new bytes32[](0), leaf));
        assertFalse(anchor.verifyInclusion(leaf, 0, 1, new bytes32[](1), leaf));
    }

    // ---------------------------------------------------------------- verifyInclusion: rejections

    function test_VerifyInclusion_FalseWhenIndexNotBelowTreeSize() public view {
        bytes32[] memory leaves = _ctLeaves(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 7);
        assertFalse(anchor.verifyInclusion(leaves[7], 8, 8, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[7], type(uint256).max, 8, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[0], 0, 0, new bytes32[](0), sha256("")));
    }

    function test_VerifyInclusion_FalseWhenProofTooShort() public view {
        bytes32[] memory leaves = _ctLeaves(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 3);
        bytes32[] memory short = new bytes32[](2);
        short[0] = proof[0];
        short[1] = proof[1];
        assertFalse(anchor.verifyInclusion(leaves[3], 3, 8, short, root));
        // Even if the "root" given is what the short proof leads to.
        bytes32 partialRoot = MerkleReference.hashChildren(proof[1], MerkleReference.hashChildren(proof[0], leaves[3]));
        assertFalse(anchor.verifyInclusion(leaves[3], 3, 8, short, partialRoot));
    }

    function test_VerifyInclusion_FalseWhenProofTooLong() public view {
        bytes32[] memory leaves = _ctLeaves(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 3);
        bytes32[] memory long = new bytes32[](4);
        for (uint256 i = 0; i < 3; ++i) {
            long[i] = proof[i];
        }
        assertFalse(anchor.verifyInclusion(leaves[3], 3, 8, long, root));
    }

    function test_VerifyInclusion_FalseWhenLeafOrRootWrong() public view {
        bytes32[] memory leaves = _ctLeaves(8);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, 4);
        assertTrue(anchor.verifyInclusion(leaves[4], 4, 8, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[5], 4, 8, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[4], 5, 8, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[4], 4, 8, proof, ROOT_A));
        // The raw entry instead of its leaf hash (second-preimage guard).
        assertFalse(anchor.verifyInclusion(sha256(hex"3031"), 4, 8, proof, root));
    }

    // ---------------------------------------------------------------- verifyInclusion: fuzz

    function _randomLeaves(uint256 seed, uint256 n) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            leaves[i] = MerkleReference.hashLeaf(abi.encode(seed, i));
        }
    }

    function testFuzz_VerifyInclusion_AcceptsReferenceProof(uint256 seed, uint256 size, uint256 index) public view {
        size = bound(size, 1, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = _randomLeaves(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        assertTrue(anchor.verifyInclusion(leaves[index], index, size, proof, root));
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
        bytes32[] memory leaves = _randomLeaves(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        pos = bound(pos, 0, proof.length - 1);
        proof[pos] ^= bytes32(uint256(1) << bit);
        assertFalse(anchor.verifyInclusion(leaves[index], index, size, proof, root));
    }

    function testFuzz_VerifyInclusion_RejectsOtherLeafOrIndex(uint256 seed, uint256 size, uint256 index, uint256 other)
        public
        view
    {
        size = bound(size, 2, 300);
        index = bound(index, 0, size - 1);
        other = bound(other, 0, size - 1);
        vm.assume(other != index);
        bytes32[] memory leaves = _randomLeaves(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);
        assertFalse(anchor.verifyInclusion(leaves[other], index, size, proof, root));
        assertFalse(anchor.verifyInclusion(leaves[index], other, size, proof, root));
    }

    function testFuzz_VerifyInclusion_RejectsTruncatedOrExtendedProof(uint256 seed, uint256 size, uint256 index)
        public
        view
    {
        size = bound(size, 2, 300);
        index = bound(index, 0, size - 1);
        bytes32[] memory leaves = _randomLeaves(seed, size);
        bytes32 root = MerkleReference.root(leaves);
        bytes32[] memory proof = MerkleReference.path(leaves, index);

        bytes32[] memory shorter = new bytes32[](proof.length - 1);
        bytes32[] memory longer = new bytes32[](proof.length + 1);
        for (uint256 i = 0; i < proof.length; ++i) {
            if (i < shorter.length) shorter[i] = proof[i];
            longer[i] = proof[i];
        }
        longer[proof.length] = keccak256(abi.encode(seed));
        assertFalse(anchor.verifyInclusion(leaves[index], index, size, shorter, root));
        assertFalse(anchor.verifyInclusion(leaves[index], index, size, longer, root));
    }
}

/// @dev Issue 4 gas budgets: `anchor` at most 60k and `verifyInclusion` on a
/// 2^20-leaf tree at most 40k gas of execution (see {GasProbe}). Each test runs
/// after setUp in a transaction of its own, so storage starts cold and
/// unmodified, as on chain.
contract SettlementAnchorGasTest is TestBase {
    /// Nine checkpoints: the next is in the middle of the second chunk.
    SettlementAnchor internal anchor;
    /// Never anchored to.
    SettlementAnchor internal fresh;
    /// Thirteen checkpoints: the next fills the second chunk and archives it.
    SettlementAnchor internal filling;
    /// The anchorer.
    GasProbe internal probe;

    function setUp() public {
        probe = new GasProbe();
        anchor = new SettlementAnchor(address(this), address(probe));
        fresh = new SettlementAnchor(address(this), address(probe));
        filling = new SettlementAnchor(address(this), address(probe));
        _prepare(anchor, 9);
        _prepare(filling, 13);
    }

    function _prepare(SettlementAnchor target, uint256 count) internal {
        for (uint256 seq = 0; seq < count; ++seq) {
            probe.run(address(target), GasCheckpoints.anchorCall(seq));
        }
    }

    function test_Gas_Anchor() public {
        uint256 used = probe.measure(address(anchor), GasCheckpoints.anchorCall(9));
        emit log_named_uint("anchor: execution gas", used);
        assertLe(used, 60_000);
    }

    function test_Gas_AnchorFirst() public {
        uint256 used = probe.measure(address(fresh), GasCheckpoints.anchorCall(0));
        emit log_named_uint("anchor, first checkpoint: execution gas", used);
        assertLe(used, 60_000);
    }

    /// The anchor that fills a chunk also creates its archive slot: 22.1k more.
    function test_Gas_AnchorFillingChunk() public {
        uint256 used = probe.measure(address(filling), GasCheckpoints.anchorCall(13));
        emit log_named_uint("anchor, filling a chunk: execution gas", used);
        assertLe(used, 60_000);
    }

    /// Average over a chunk: six anchors like {test_Gas_Anchor} and one like
    /// {test_Gas_AnchorFillingChunk}, each with cold storage.
    function test_Gas_AnchorMeanOverChunk() public {
        uint256 plain = probe.measure(address(anchor), GasCheckpoints.anchorCall(9));
        uint256 full = probe.measure(address(filling), GasCheckpoints.anchorCall(13));
        uint256 mean = (6 * plain + full) / 7;
        emit log_named_uint("anchor, mean over a chunk of seven: execution gas", mean);
        assertLe(mean, 60_000);
    }

    /// A valid proof for leaf `index` of a 2^20-leaf tree: 20 random siblings
    /// hashed upward. In a perfect tree the RFC 9162 path is exactly that.
    function test_Gas_VerifyInclusion2Pow20() public {
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

        assertTrue(anchor.verifyInclusion(leaf, index, size, proof, node));
        uint256 used =
            probe.measure(address(anchor), abi.encodeCall(anchor.verifyInclusion, (leaf, index, size, proof, node)));
        emit log_named_uint("verifyInclusion, 2^20 leaves: execution gas", used);
        assertLe(used, 40_000);

        // And for the last leaf of a tree one larger than 2^20, whose path has 1 element.
        bytes32[] memory one = new bytes32[](1);
        one[0] = node;
        bytes32 extra = MerkleReference.hashLeaf("one more");
        assertTrue(anchor.verifyInclusion(extra, size, size + 1, one, MerkleReference.hashChildren(node, extra)));
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
}

/// @dev What `forge test --gas-report` shows for {SettlementAnchor-anchor}: it
/// runs each top-level call of a test as a transaction of its own (21k base
/// and calldata included, storage cold), so this test's 28 anchors, four full
/// chunks from the first checkpoint on, give the figures of a long-running
/// anchor: `forge test --gas-report --match-test test_GasReport_AnchorSteadyState`.
/// Without `--gas-report` the calls share one transaction and only the
/// results are checked.
contract SettlementAnchorGasReportTest is TestBase {
    SettlementAnchor internal anchor;
    address internal anchorer = makeAddr("anchorer");

    function setUp() public {
        anchor = new SettlementAnchor(address(this), anchorer);
    }

    function test_GasReport_AnchorSteadyState() public {
        for (uint256 seq = 0; seq < 28; ++seq) {
            vm.prank(anchorer);
            anchor.anchor(
                GasCheckpoints.size(seq), GasCheckpoints.root(seq), seq == 0 ? bytes32(0) : GasCheckpoints.root(seq - 1)
            );
        }
        (uint256 last, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(last, 27);
        assertEq(cp.treeSize, GasCheckpoints.size(27));
        assertEq(cp.root, GasCheckpoints.root(27));
    }
}

contract SettlementAnchorInvariantTest is TestBase {
    SettlementAnchor internal anchor;
    SettlementAnchorHandler internal handler;

    function setUp() public {
        handler = new SettlementAnchorHandler();
        anchor = handler.anchor();
        targetContract(address(handler));
    }

    function invariant_CountMatchesAcceptedAnchors() public view {
        assertEq(anchor.checkpointCount(), handler.acceptedCount());
    }

    function invariant_TreeSizesStrictlyGrow() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 1; seq < count; ++seq) {
            assertGt(anchor.checkpoint(seq).treeSize, anchor.checkpoint(seq - 1).treeSize, "tree size did not grow");
        }
    }

    function invariant_EachCheckpointExtendsThePreviousRoot() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 0; seq < count; ++seq) {
            bytes32 expected = seq == 0 ? bytes32(0) : anchor.checkpoint(seq - 1).root;
            assertEq(handler.prevRootOf(seq), expected, "prevRoot is not the previous root");
            assertEq(anchor.checkpoint(seq).root, handler.rootOf(seq), "root not stored");
        }
    }

    function invariant_LatestIsLastCheckpoint() public view {
        uint256 count = anchor.checkpointCount();
        if (count == 0) return;
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(seq, count - 1);
        assertEq(cp.treeSize, handler.lastSize());
        assertEq(cp.root, handler.rootOf(seq));
    }

    function invariant_SizesAreTheAnchoredOnesAndWithinTheLimit() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 0; seq < count; ++seq) {
            uint64 size = anchor.checkpoint(seq).treeSize;
            assertEq(size, handler.sizeOf(seq), "size not stored");
            assertLe(size, anchor.MAX_TREE_SIZE());
        }
    }

    function invariant_CheckpointBySizeFindsEach() public view {
        uint256 count = anchor.checkpointCount();
        for (uint256 seq = 0; seq < count; ++seq) {
            (uint256 found, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(handler.sizeOf(seq));
            assertEq(found, seq);
            assertEq(cp.root, handler.rootOf(seq));
        }
    }
}
