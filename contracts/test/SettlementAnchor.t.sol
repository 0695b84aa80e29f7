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

    // ---------------------------------------------------------------- constructor

    function test_Constructor_GrantsRoles() public view {
        assertTrue(anchor.hasRole(anchor.DEFAULT_ADMIN_ROLE(), admin));
        assertTrue(anchor.hasRole(anchor.ANCHORER_ROLE(), anchorer));
        assertFalse(anchor.hasRole(anchor.ANCHORER_ROLE(), admin));
        assertEq(anchor.ANCHORER_ROLE(), keccak256("ANCHORER_ROLE"));
        assertEq(anchor.checkpointCount(), 0);
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
        vm.warp(1_700_000_000);
        vm.roll(123);
        vm.expectEmit(true, true, true, true, address(anchor));
        emit CheckpointAnchored(0, 10, ROOT_A, bytes32(0));
        vm.prank(anchorer);
        anchor.anchor(10, ROOT_A, bytes32(0));

        assertEq(anchor.checkpointCount(), 1);
        SettlementAnchor.Checkpoint memory cp = anchor.checkpoint(0);
        assertEq(cp.treeSize, 10);
        assertEq(cp.root, ROOT_A);
        assertEq(cp.timestamp, 1_700_000_000);
        assertEq(cp.blockNumber, 123);
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

    function test_CheckpointCount_CountsAnchors() public {
        assertEq(anchor.checkpointCount(), 0);
        _anchorThree();
        assertEq(anchor.checkpointCount(), 3);
    }

    function test_Checkpoint_ReturnsEach() public {
        vm.warp(1000);
        vm.roll(7);
        _anchorThree();
        assertEq(anchor.checkpoint(0).root, ROOT_A);
        assertEq(anchor.checkpoint(1).root, ROOT_B);
        assertEq(anchor.checkpoint(2).root, ROOT_C);
        assertEq(anchor.checkpoint(2).timestamp, 1000);
        assertEq(anchor.checkpoint(2).blockNumber, 7);
    }

    function test_RevertWhen_CheckpointSeqUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 0));
        anchor.checkpoint(0);
        _anchorThree();
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, 3));
        anchor.checkpoint(3);
    }

    function test_CheckpointBySize_FindsEach() public {
        _anchorThree();
        uint64[3] memory sizes = [uint64(10), 25, 26];
        bytes32[3] memory roots = [ROOT_A, ROOT_B, ROOT_C];
        for (uint256 i = 0; i < 3; ++i) {
            (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.checkpointBySize(sizes[i]);
            assertEq(seq, i);
            assertEq(cp.root, roots[i]);
        }
    }

    function test_RevertWhen_CheckpointBySizeWithoutCheckpoint() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, 10));
        anchor.checkpointBySize(10);
    }

    function test_RevertWhen_CheckpointBySizeUnknown() public {
        _anchorThree();
        uint64[4] memory absent = [uint64(0), 9, 11, 27];
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
    SettlementAnchor internal anchor;
    /// Never anchored to.
    SettlementAnchor internal fresh;
    /// The anchorer.
    GasProbe internal probe;
    bytes32 internal lastRoot = keccak256("root 1");

    function setUp() public {
        probe = new GasProbe();
        anchor = new SettlementAnchor(address(this), address(probe));
        fresh = new SettlementAnchor(address(this), address(probe));
        probe.run(address(anchor), abi.encodeCall(anchor.anchor, (1000, keccak256("root 0"), bytes32(0))));
        probe.run(address(anchor), abi.encodeCall(anchor.anchor, (2000, lastRoot, keccak256("root 0"))));
    }

    function test_Gas_Anchor() public {
        uint256 used =
            probe.measure(address(anchor), abi.encodeCall(anchor.anchor, (3000, keccak256("root 2"), lastRoot)));
        emit log_named_uint("anchor: execution gas", used);
        assertLe(used, 60_000);
    }

    function test_Gas_AnchorFirst() public {
        uint256 used = probe.measure(address(fresh), abi.encodeCall(fresh.anchor, (1, keccak256("root"), bytes32(0))));
        emit log_named_uint("anchor, first checkpoint: execution gas", used);
        assertLe(used, 60_000);
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
        assertEq(cp.root, handler.rootOf(seq));
    }
}
