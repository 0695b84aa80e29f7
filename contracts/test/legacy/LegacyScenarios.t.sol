// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../../src/DevStablecoin.sol";
import {PaymentRouter} from "../../src/PaymentRouter.sol";
import {SettlementAnchor} from "../../src/SettlementAnchor.sol";
import {FeeOnTransferToken, LyingToken} from "../mocks/Mocks.sol";
import {MerkleReference} from "../utils/MerkleReference.sol";
import {TestBase} from "../utils/TestBase.sol";
import {LegacyPaymentRouter} from "./LegacyPaymentRouter.sol";
import {LegacySettlementAnchor} from "./LegacySettlementAnchor.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";

/// @dev Issue 16: each harm the audit of 81c9ebd found, first on the contract
/// deployed then (test/legacy/, a verbatim copy) where it happens, then on the
/// current contract where it is refused or harmless. A `test_Legacy_…` test
/// passes when the harm happens; its `test_Now_…` twin when it does not.
contract LegacyScenariosTest is TestBase {
    event PaymentReceived(bytes32 indexed ref, address indexed payer, address indexed token, uint256 amount);

    address internal admin = makeAddr("admin");
    address internal anchorer = makeAddr("anchorer");
    address internal thief = makeAddr("thief");
    address internal treasury = makeAddr("treasury");
    address internal payer = makeAddr("payer");
    address internal pauser = makeAddr("pauser");

    bytes32 internal constant REF = keccak256("invoice-1");
    bytes32 internal constant GARBAGE = keccak256("garbage root");

    /// The honest log: checkpoints of 100 and 250 leaves.
    bytes32 internal constant ROOT_100 = keccak256("root of 100 leaves");
    bytes32 internal constant ROOT_250 = keccak256("root of 250 leaves");
    bytes32 internal constant ROOT_400 = keccak256("root of 400 leaves");

    // ---------------------------------------------------------------- 1. one bad anchor bricks the anchor

    /// An anchor of MAX_TREE_SIZE with a garbage root: no honest anchor can ever
    /// follow, and revoking the key does not help.
    function test_Legacy_AnAnchorOfTheLargestSizeBricksTheContract() public {
        LegacySettlementAnchor old = new LegacySettlementAnchor(admin, anchorer);
        vm.startPrank(anchorer);
        old.anchor(100, ROOT_100, bytes32(0));
        old.anchor(old.MAX_TREE_SIZE(), GARBAGE, ROOT_100); // stolen key or node bug
        vm.stopPrank();
        bytes32 role = old.ANCHORER_ROLE();
        vm.prank(admin);
        old.revokeRole(role, anchorer);
        vm.prank(admin);
        old.grantRole(role, makeAddr("new anchorer"));
        uint64 max = old.MAX_TREE_SIZE();
        // The honest log grows to 250: refused, and so is every size there is.
        vm.expectRevert(abi.encodeWithSelector(LegacySettlementAnchor.TreeSizeNotIncreasing.selector, max, 250));
        vm.prank(makeAddr("new anchorer"));
        old.anchor(250, ROOT_250, ROOT_100);
        vm.expectRevert(abi.encodeWithSelector(LegacySettlementAnchor.TreeSizeTooLarge.selector, max + 1, max));
        vm.prank(makeAddr("new anchorer"));
        old.anchor(max + 1, ROOT_250, GARBAGE);
    }

    function test_Now_AnAnchorOfTheLargestSizeIsRefused() public {
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        uint64 max = anchor.MAX_TREE_SIZE();
        vm.startPrank(anchorer);
        anchor.anchor(100, ROOT_100, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, 100, max, 2 ** 24));
        anchor.anchor(max, GARBAGE, ROOT_100);
        anchor.anchor(250, ROOT_250, ROOT_100);
        vm.stopPrank();
        assertEq(anchor.checkpointCount(), 2);
    }

    // ---------------------------------------------------------------- 2. a jump with a garbage root

    /// A bounded jump with a garbage root still blocks the honest anchorer, which
    /// would have to name the garbage root and pass its size.
    function test_Legacy_AGarbageCheckpointCannotBeUndone() public {
        LegacySettlementAnchor old = new LegacySettlementAnchor(admin, anchorer);
        vm.startPrank(anchorer);
        old.anchor(100, ROOT_100, bytes32(0));
        old.anchor(1_000_000_000, GARBAGE, ROOT_100);
        vm.expectRevert(
            abi.encodeWithSelector(LegacySettlementAnchor.TreeSizeNotIncreasing.selector, 1_000_000_000, 250)
        );
        old.anchor(250, ROOT_250, ROOT_100);
        vm.stopPrank();
        // The admin has nothing to undo it with: the only way out is a new contract.
        (bool ok,) = address(old).call(abi.encodeWithSignature("supersede(uint256)", 1));
        assertFalse(ok);
    }

    /// Now the jump is bounded, and the admin revokes the key and supersedes the
    /// garbage; the honest anchorer continues from its own last checkpoint.
    function test_Now_AGarbageCheckpointIsBoundedAndSuperseded() public {
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        vm.startPrank(anchorer);
        anchor.anchor(100, ROOT_100, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, 100, 1_000_000_000, 2 ** 24));
        anchor.anchor(1_000_000_000, GARBAGE, ROOT_100);
        // The most a stolen key gets in: one limit's worth.
        anchor.anchor(100 + 2 ** 24, GARBAGE, ROOT_100);
        vm.stopPrank();

        address honest = makeAddr("new anchorer");
        bytes32 role = anchor.ANCHORER_ROLE();
        vm.startPrank(admin);
        anchor.revokeRole(role, anchorer);
        anchor.grantRole(role, honest);
        anchor.supersede(1);
        vm.stopPrank();
        vm.prank(honest);
        anchor.anchor(250, ROOT_250, ROOT_100);
        (uint256 seq, SettlementAnchor.Checkpoint memory cp) = anchor.latest();
        assertEq(seq, 1);
        assertEq(cp.treeSize, 250);
        assertEq(cp.root, ROOT_250);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, anchorer, role)
        );
        vm.prank(anchorer);
        anchor.anchor(400, GARBAGE, ROOT_250);
    }

    // ---------------------------------------------------------------- 3. an admin key redirects payments at once

    /// Propose and accept in the same block; the next payment goes to the thief
    /// and its event looks exactly like one to the treasury.
    function test_Legacy_AStolenAdminKeyRedirectsPaymentsAtOnce() public {
        DevStablecoin usdc = new DevStablecoin();
        LegacyPaymentRouter old = new LegacyPaymentRouter(admin, treasury);
        vm.prank(admin); // the thief holds the admin key
        old.proposeTreasury(thief);
        vm.prank(thief);
        old.acceptTreasury();

        usdc.mint(payer, 100e6);
        vm.startPrank(payer);
        usdc.approve(address(old), 100e6);
        vm.expectEmit(true, true, true, true, address(old));
        emit PaymentReceived(REF, payer, address(usdc), 100e6);
        old.pay(address(usdc), 100e6, REF);
        vm.stopPrank();
        assertEq(usdc.balanceOf(thief), 100e6);
        assertEq(usdc.balanceOf(treasury), 0);
    }

    /// Now the proposal waits two days, announced; the pauser cancels it, and
    /// payments never stop reaching the treasury.
    function test_Now_ARedirectWaitsTheDelayAndIsCancelled() public {
        DevStablecoin usdc = new DevStablecoin();
        address[] memory tokens = new address[](1);
        tokens[0] = address(usdc);
        PaymentRouter router = new PaymentRouter(2 days, admin, treasury, 2 days, tokens);
        bytes32 role = router.PAUSER_ROLE();
        vm.prank(admin);
        router.grantRole(role, pauser);

        vm.prank(admin); // the thief holds the admin key
        router.proposeTreasury(thief);
        vm.expectRevert(
            abi.encodeWithSelector(PaymentRouter.TreasuryProposalNotReady.selector, block.timestamp + 2 days)
        );
        vm.prank(thief);
        router.acceptTreasury();

        // The node saw TreasuryProposed and alerted; the operator cancels.
        vm.prank(pauser);
        router.cancelTreasuryProposal();
        vm.warp(block.timestamp + 2 days);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, thief));
        vm.prank(thief);
        router.acceptTreasury();

        usdc.mint(payer, 100e6);
        vm.startPrank(payer);
        usdc.approve(address(router), 100e6);
        router.pay(address(usdc), 100e6, REF);
        vm.stopPrank();
        assertEq(usdc.balanceOf(treasury), 100e6);
        assertEq(usdc.balanceOf(thief), 0);
    }

    // ---------------------------------------------------------------- 4. fake payments with a lying token

    /// Anyone emits a real-looking PaymentReceived for a live reference with a
    /// token whose transferFrom moves nothing, for about 5k gas.
    function test_Legacy_ALyingTokenEmitsAPaymentForNothing() public {
        LegacyPaymentRouter old = new LegacyPaymentRouter(admin, treasury);
        LyingToken liar = new LyingToken();
        vm.expectEmit(true, true, true, true, address(old));
        emit PaymentReceived(REF, thief, address(liar), 1_000_000e6);
        vm.prank(thief);
        old.pay(address(liar), 1_000_000e6, REF);
        assertEq(liar.balanceOf(treasury), 0);
    }

    function test_Now_ALyingTokenIsRefused() public {
        PaymentRouter router = new PaymentRouter(2 days, admin, treasury, 2 days, new address[](0));
        LyingToken liar = new LyingToken();
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(liar)));
        vm.prank(thief);
        router.pay(address(liar), 1_000_000e6, REF);
        // Even an admin who allowed it by mistake would get no event: nothing arrives.
        vm.prank(admin);
        router.setTokenAllowed(address(liar), true);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NothingReceived.selector, address(liar)));
        vm.prank(thief);
        router.pay(address(liar), 1_000_000e6, REF);
    }

    // ---------------------------------------------------------------- 5. fee-on-transfer tokens overstate

    function test_Legacy_AFeeOnTransferTokenOverstatesThePayment() public {
        LegacyPaymentRouter old = new LegacyPaymentRouter(admin, treasury);
        FeeOnTransferToken token = new FeeOnTransferToken();
        token.mint(payer, 1000e6);
        vm.startPrank(payer);
        token.approve(address(old), 1000e6);
        vm.expectEmit(true, true, true, true, address(old));
        emit PaymentReceived(REF, payer, address(token), 1000e6);
        old.pay(address(token), 1000e6, REF);
        vm.stopPrank();
        assertEq(token.balanceOf(treasury), 990e6);
    }

    function test_Now_TheEventSaysWhatArrived() public {
        FeeOnTransferToken token = new FeeOnTransferToken();
        PaymentRouter router = new PaymentRouter(2 days, admin, treasury, 2 days, new address[](0));
        token.mint(payer, 1000e6);
        vm.prank(payer);
        token.approve(address(router), 1000e6);
        // Not on the allow-list: refused.
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(token)));
        vm.prank(payer);
        router.pay(address(token), 1000e6, REF);
        // Allowed (or an allowed token that starts taking a fee): the event says 990.
        vm.prank(admin);
        router.setTokenAllowed(address(token), true);
        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, payer, address(token), 990e6);
        vm.prank(payer);
        router.pay(address(token), 1000e6, REF);
        assertEq(token.balanceOf(treasury), 990e6);
    }

    // ---------------------------------------------------------------- 6. an interior node passes for a leaf

    /// With the tree size from the prover, the node over leaves 0-1 of an
    /// anchored 8-leaf tree "is leaf 0 of a 4-leaf tree" under the 8-leaf root.
    function test_Legacy_AnInteriorNodeProvesAsALeafOfASmallerTree() public {
        LegacySettlementAnchor old = new LegacySettlementAnchor(admin, anchorer);
        (bytes32[] memory leaves, bytes32 root8, bytes32 node, bytes32[] memory path) = _eightLeafTree();
        vm.prank(anchorer);
        old.anchor(8, root8, bytes32(0));
        assertEq(old.checkpoint(0).root, root8);
        assertTrue(old.verifyInclusion(node, 0, 4, path, root8));
        assertTrue(old.verifyInclusion(leaves[0], 0, 8, MerkleReference.path(leaves, 0), root8));
    }

    function test_Now_InclusionTakesTheSizeFromTheCheckpoint() public {
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        (bytes32[] memory leaves, bytes32 root8, bytes32 node, bytes32[] memory path) = _eightLeafTree();
        vm.prank(anchorer);
        anchor.anchor(8, root8, bytes32(0));
        for (uint256 index = 0; index < 8; ++index) {
            assertFalse(anchor.verifyInclusionAt(0, node, index, path));
        }
        assertTrue(anchor.verifyInclusionAt(0, leaves[0], 0, MerkleReference.path(leaves, 0)));
        // And the size-taking verifier is gone from the interface.
        (bool ok,) = address(anchor)
            .call(
                abi.encodeWithSignature(
                    "verifyInclusion(bytes32,uint256,uint256,bytes32[],bytes32)", node, 0, 4, path, root8
                )
            );
        assertFalse(ok);
    }

    function _eightLeafTree()
        internal
        pure
        returns (bytes32[] memory leaves, bytes32 root, bytes32 node, bytes32[] memory path)
    {
        leaves = new bytes32[](8);
        for (uint256 i = 0; i < 8; ++i) {
            leaves[i] = MerkleReference.hashLeaf(abi.encode("settlement", i));
        }
        root = MerkleReference.root(leaves);
        node = MerkleReference.rangeRoot(leaves, 0, 2);
        path = new bytes32[](2);
        path[0] = MerkleReference.rangeRoot(leaves, 2, 4);
        path[1] = MerkleReference.rangeRoot(leaves, 4, 8);
    }

    // ---------------------------------------------------------------- 7. prevRoot does not prove growth

    /// Both contracts accept a root that does not extend the previous one: the
    /// contract cannot check consistency. The old NatSpec claimed it proved the
    /// log only grew; the current one says it does not, and `epg audit follow`
    /// (tests/audit_follow.rs) is what catches such a root.
    function test_Legacy_And_Now_PrevRootDoesNotProveConsistency() public {
        LegacySettlementAnchor old = new LegacySettlementAnchor(admin, anchorer);
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        vm.startPrank(anchorer);
        old.anchor(100, ROOT_100, bytes32(0));
        old.anchor(250, GARBAGE, ROOT_100);
        anchor.anchor(100, ROOT_100, bytes32(0));
        anchor.anchor(250, GARBAGE, ROOT_100);
        vm.stopPrank();
        assertEq(old.checkpoint(1).root, GARBAGE);
        assertEq(anchor.checkpoint(1).root, GARBAGE);
    }

    // ---------------------------------------------------------------- 8. one-step roles, no withdrawal, zero roots

    /// One call renounces the admin role: the treasury and the anchorer can
    /// never change again.
    function test_Legacy_RenouncingTheAdminFreezesEverything() public {
        LegacyPaymentRouter old = new LegacyPaymentRouter(admin, treasury);
        LegacySettlementAnchor oldAnchor = new LegacySettlementAnchor(admin, anchorer);
        bytes32 adminRole = old.DEFAULT_ADMIN_ROLE();
        vm.startPrank(admin);
        old.renounceRole(adminRole, admin);
        oldAnchor.renounceRole(adminRole, admin);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, adminRole)
        );
        old.proposeTreasury(makeAddr("new treasury"));
        bytes32 anchorerRole = oldAnchor.ANCHORER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, adminRole)
        );
        oldAnchor.grantRole(anchorerRole, makeAddr("new anchorer"));
        vm.stopPrank();
    }

    function test_Now_RenouncingTheAdminTakesTwoStepsAndTheDelay() public {
        PaymentRouter router = new PaymentRouter(2 days, admin, treasury, 2 days, new address[](0));
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        bytes32 adminRole = router.DEFAULT_ADMIN_ROLE();
        vm.startPrank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, 0)
        );
        router.renounceRole(adminRole, admin);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, 0)
        );
        anchor.renounceRole(adminRole, admin);
        // Begun by mistake: cancelled before it can take effect.
        router.beginDefaultAdminTransfer(address(0));
        router.cancelDefaultAdminTransfer();
        vm.stopPrank();
        assertEq(router.defaultAdmin(), admin);
        assertEq(anchor.defaultAdmin(), admin);
    }

    /// A wrong proposal cannot be withdrawn, only replaced (or accepted).
    function test_Legacy_AProposalCannotBeWithdrawn() public {
        LegacyPaymentRouter old = new LegacyPaymentRouter(admin, treasury);
        vm.prank(admin);
        old.proposeTreasury(thief);
        (bool ok,) = address(old).call(abi.encodeWithSignature("cancelTreasuryProposal()"));
        assertFalse(ok);
        assertEq(old.pendingTreasury(), thief);
    }

    function test_Now_AProposalIsWithdrawn() public {
        PaymentRouter router = new PaymentRouter(2 days, admin, treasury, 2 days, new address[](0));
        vm.startPrank(admin);
        router.proposeTreasury(thief);
        router.cancelTreasuryProposal();
        vm.stopPrank();
        assertEq(router.pendingTreasury(), address(0));
    }

    function test_Legacy_AZeroRootIsAccepted() public {
        LegacySettlementAnchor old = new LegacySettlementAnchor(admin, anchorer);
        vm.startPrank(anchorer);
        old.anchor(100, bytes32(0), bytes32(0));
        // The next anchor's prevRoot is zero, as if there were no checkpoint.
        old.anchor(250, ROOT_250, bytes32(0));
        vm.stopPrank();
        assertEq(old.checkpointCount(), 2);
    }

    function test_Now_AZeroRootIsRefused() public {
        SettlementAnchor anchor = new SettlementAnchor(2 days, admin, anchorer);
        vm.expectRevert(SettlementAnchor.ZeroRoot.selector);
        vm.prank(anchorer);
        anchor.anchor(100, bytes32(0), bytes32(0));
    }
}
