// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../src/DevStablecoin.sol";
import {PaymentRouter} from "../src/PaymentRouter.sol";
import {PaymentRouterHandler} from "./handlers/PaymentRouterHandler.sol";
import {
    FalseReturningToken,
    NoReturnToken,
    ReentrantToken,
    ReentrantTreasury,
    RejectingTreasury
} from "./mocks/Mocks.sol";
import {GasProbe} from "./utils/GasProbe.sol";
import {PermitSigner} from "./utils/PermitSigner.sol";
import {TestBase} from "./utils/TestBase.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

contract PaymentRouterTest is PermitSigner {
    event PaymentReceived(bytes32 indexed ref, address indexed payer, address indexed token, uint256 amount);
    event TreasuryProposed(address indexed current, address indexed proposed);
    event TreasuryChanged(address indexed previous, address indexed current);
    event Paused(address account);
    event Unpaused(address account);

    bytes32 internal constant REF = keccak256("invoice-1");
    uint256 internal constant PAYER_KEY = 0xA11CE;

    PaymentRouter internal router;
    DevStablecoin internal usdc;
    address internal admin = makeAddr("admin");
    address internal treasury = makeAddr("treasury");
    address internal payer;
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        payer = vm.addr(PAYER_KEY);
        router = new PaymentRouter(admin, treasury);
        usdc = new DevStablecoin();
        usdc.mint(payer, 1_000_000e6);
        vm.prank(payer);
        usdc.approve(address(router), type(uint256).max);
        vm.deal(payer, 100 ether);
    }

    // ---------------------------------------------------------------- constructor

    function test_Constructor_GrantsRolesAndSetsTreasury() public view {
        assertTrue(router.hasRole(router.DEFAULT_ADMIN_ROLE(), admin));
        assertTrue(router.hasRole(router.PAUSER_ROLE(), admin));
        assertEq(router.PAUSER_ROLE(), keccak256("PAUSER_ROLE"));
        assertEq(router.treasury(), treasury);
        assertEq(router.pendingTreasury(), address(0));
        assertFalse(router.paused());
    }

    function test_Constructor_EmitsTreasuryChanged() public {
        vm.expectEmit(true, true, true, true);
        emit TreasuryChanged(address(0), treasury);
        new PaymentRouter(admin, treasury);
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        new PaymentRouter(address(0), treasury);
    }

    function test_RevertWhen_ConstructorTreasuryIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        new PaymentRouter(admin, address(0));
    }

    // ---------------------------------------------------------------- pay

    function test_Pay_MovesTokensStraightToTreasury() public {
        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, payer, address(usdc), 25e6);
        vm.prank(payer);
        router.pay(address(usdc), 25e6, REF);

        assertEq(usdc.balanceOf(treasury), 25e6);
        assertEq(usdc.balanceOf(payer), 1_000_000e6 - 25e6);
        assertEq(usdc.balanceOf(address(router)), 0);
    }

    function test_Pay_WorksWithTokenThatReturnsNothing() public {
        NoReturnToken token = new NoReturnToken();
        token.mint(payer, 10);
        vm.startPrank(payer);
        token.approve(address(router), 10);
        router.pay(address(token), 10, REF);
        vm.stopPrank();
        assertEq(token.balanceOf(treasury), 10);
    }

    function test_RevertWhen_PayAmountIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAmount.selector);
        vm.prank(payer);
        router.pay(address(usdc), 0, REF);
    }

    function test_RevertWhen_PayTokenIsZero() public {
        vm.expectRevert(PaymentRouter.InvalidToken.selector);
        vm.prank(payer);
        router.pay(address(0), 1, REF);
    }

    function test_RevertWhen_PayWithoutAllowance() public {
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(router), 0, 1));
        vm.prank(stranger);
        router.pay(address(usdc), 1, REF);
    }

    function test_RevertWhen_PayExceedsBalance() public {
        uint256 balance = usdc.balanceOf(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, payer, balance, balance + 1)
        );
        vm.prank(payer);
        router.pay(address(usdc), balance + 1, REF);
    }

    function test_RevertWhen_PayTokenReturnsFalse() public {
        FalseReturningToken token = new FalseReturningToken();
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(token)));
        vm.prank(payer);
        router.pay(address(token), 1, REF);
    }

    function test_RevertWhen_PayWhilePaused() public {
        vm.prank(admin);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(payer);
        router.pay(address(usdc), 1, REF);
    }

    function test_RevertWhen_PayReenters() public {
        ReentrantToken token = new ReentrantToken();
        token.setRouter(router);
        token.mint(payer, 10);
        vm.prank(payer);
        token.approve(address(router), 10);

        vm.prank(payer);
        router.pay(address(token), 10, REF);

        assertEq(
            token.reentryError(), abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
        assertEq(token.balanceOf(treasury), 10);
    }

    function testFuzz_Pay(address from, uint256 amount, bytes32 ref) public {
        vm.assume(from != address(0) && from != treasury && from != address(router));
        amount = bound(amount, 1, type(uint128).max);
        usdc.mint(from, amount);
        vm.prank(from);
        usdc.approve(address(router), amount);

        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(ref, from, address(usdc), amount);
        vm.prank(from);
        router.pay(address(usdc), amount, ref);

        assertEq(usdc.balanceOf(treasury), amount);
        assertEq(usdc.balanceOf(from), 0);
        assertEq(usdc.allowance(from, address(router)), 0);
        assertEq(usdc.balanceOf(address(router)), 0);
    }

    // ---------------------------------------------------------------- payNative

    function test_PayNative_ForwardsEthToTreasury() public {
        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, payer, address(0), 1.5 ether);
        vm.prank(payer);
        router.payNative{value: 1.5 ether}(REF);

        assertEq(treasury.balance, 1.5 ether);
        assertEq(address(router).balance, 0);
    }

    function test_RevertWhen_PayNativeValueIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAmount.selector);
        vm.prank(payer);
        router.payNative(REF);
    }

    function test_RevertWhen_PayNativeTreasuryRejectsEth() public {
        PaymentRouter r = new PaymentRouter(admin, address(new RejectingTreasury()));
        vm.expectRevert(PaymentRouter.NativeTransferFailed.selector);
        vm.prank(payer);
        r.payNative{value: 1}(REF);
    }

    function test_RevertWhen_PayNativeWhilePaused() public {
        vm.prank(admin);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(payer);
        router.payNative{value: 1}(REF);
    }

    function test_RevertWhen_PayNativeReenters() public {
        ReentrantTreasury evil = new ReentrantTreasury();
        PaymentRouter r = new PaymentRouter(admin, address(evil));
        evil.setRouter(r);

        vm.prank(payer);
        r.payNative{value: 1 ether}(REF);

        assertEq(
            evil.reentryError(), abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
        assertEq(address(evil).balance, 1 ether);
        assertEq(address(r).balance, 0);
    }

    function testFuzz_PayNative(address from, uint256 amount, bytes32 ref) public {
        vm.assume(from != treasury && from != address(router));
        amount = bound(amount, 1, 1e30);
        vm.deal(from, amount);

        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(ref, from, address(0), amount);
        vm.prank(from);
        router.payNative{value: amount}(ref);

        assertEq(treasury.balance, amount);
        assertEq(address(router).balance, 0);
    }

    // ---------------------------------------------------------------- direct sends

    function test_RevertWhen_EthSentDirectly() public {
        vm.prank(payer);
        (bool ok,) = address(router).call{value: 1 ether}("");
        assertFalse(ok);
        assertEq(address(router).balance, 0);
    }

    function test_RevertWhen_EthSentWithUnknownCalldata() public {
        vm.prank(payer);
        (bool ok,) = address(router).call{value: 1 ether}(hex"deadbeef");
        assertFalse(ok);
        assertEq(address(router).balance, 0);
    }

    // ---------------------------------------------------------------- payWithPermit

    function test_PayWithPermit_UsesSignature() public {
        address signer = vm.addr(PAYER_KEY);
        vm.prank(signer);
        usdc.approve(address(router), 0);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usdc, PAYER_KEY, address(router), 40e6, deadline);

        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, signer, address(usdc), 40e6);
        vm.prank(signer);
        router.payWithPermit(address(usdc), 40e6, REF, deadline, v, r, s);

        assertEq(usdc.balanceOf(treasury), 40e6);
        assertEq(usdc.nonces(signer), 1);
        assertEq(usdc.allowance(signer, address(router)), 0);
    }

    function test_PayWithPermit_WhenPermitWasFrontRun() public {
        vm.prank(payer);
        usdc.approve(address(router), 0);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usdc, PAYER_KEY, address(router), 40e6, deadline);
        // Someone watching the mempool submits the same permit first.
        vm.prank(stranger);
        usdc.permit(payer, address(router), 40e6, deadline, v, r, s);

        vm.prank(payer);
        router.payWithPermit(address(usdc), 40e6, REF, deadline, v, r, s);

        assertEq(usdc.balanceOf(treasury), 40e6);
    }

    function test_RevertWhen_PayWithPermitSignatureInvalid() public {
        vm.prank(payer);
        usdc.approve(address(router), 5);
        uint256 deadline = block.timestamp + 1 hours;
        // Signed by someone else: permit fails and the allowance (5) is too small.
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usdc, 0xB0B, address(router), 40e6, deadline);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.PermitFailed.selector, 5, 40e6));
        vm.prank(payer);
        router.payWithPermit(address(usdc), 40e6, REF, deadline, v, r, s);
    }

    function test_RevertWhen_PayWithPermitExpired() public {
        vm.prank(payer);
        usdc.approve(address(router), 0);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usdc, PAYER_KEY, address(router), 40e6, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.PermitFailed.selector, 0, 40e6));
        vm.prank(payer);
        router.payWithPermit(address(usdc), 40e6, REF, deadline, v, r, s);
    }

    function test_RevertWhen_PayWithPermitAmountIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAmount.selector);
        vm.prank(payer);
        router.payWithPermit(address(usdc), 0, REF, block.timestamp, 0, 0, 0);
    }

    function test_RevertWhen_PayWithPermitTokenIsZero() public {
        vm.expectRevert(PaymentRouter.InvalidToken.selector);
        vm.prank(payer);
        router.payWithPermit(address(0), 1, REF, block.timestamp, 0, 0, 0);
    }

    function test_RevertWhen_PayWithPermitWhilePaused() public {
        vm.prank(admin);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(payer);
        router.payWithPermit(address(usdc), 1, REF, block.timestamp, 0, 0, 0);
    }

    function testFuzz_PayWithPermit(uint256 key, uint256 amount, bytes32 ref) public {
        key = bound(key, 1, SECP256K1_ORDER - 1);
        address from = vm.addr(key);
        vm.assume(from != treasury);
        amount = bound(amount, 1, type(uint128).max);
        usdc.mint(from, amount);
        uint256 deadline = block.timestamp + 1;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(usdc, key, address(router), amount, deadline);

        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(ref, from, address(usdc), amount);
        vm.prank(from);
        router.payWithPermit(address(usdc), amount, ref, deadline, v, r, s);

        assertEq(usdc.balanceOf(treasury), amount);
        assertEq(usdc.balanceOf(address(router)), 0);
    }

    // ---------------------------------------------------------------- treasury change

    function test_ProposeTreasury_SetsPending() public {
        address next = makeAddr("next");
        vm.expectEmit(true, true, true, true, address(router));
        emit TreasuryProposed(treasury, next);
        vm.prank(admin);
        router.proposeTreasury(next);

        assertEq(router.pendingTreasury(), next);
        assertEq(router.treasury(), treasury);
    }

    function test_ProposeTreasury_ReplacesPendingProposal() public {
        address first = makeAddr("first");
        address second = makeAddr("second");
        vm.startPrank(admin);
        router.proposeTreasury(first);
        router.proposeTreasury(second);
        vm.stopPrank();

        assertEq(router.pendingTreasury(), second);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, first));
        vm.prank(first);
        router.acceptTreasury();
    }

    function test_RevertWhen_ProposeTreasuryByNonAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, router.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(stranger);
        router.proposeTreasury(stranger);
    }

    function test_RevertWhen_ProposeTreasuryIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        vm.prank(admin);
        router.proposeTreasury(address(0));
    }

    function test_AcceptTreasury_SwitchesTreasury() public {
        address next = makeAddr("next");
        vm.prank(admin);
        router.proposeTreasury(next);

        vm.expectEmit(true, true, true, true, address(router));
        emit TreasuryChanged(treasury, next);
        vm.prank(next);
        router.acceptTreasury();

        assertEq(router.treasury(), next);
        assertEq(router.pendingTreasury(), address(0));

        vm.prank(payer);
        router.pay(address(usdc), 3e6, REF);
        vm.prank(payer);
        router.payNative{value: 3}(REF);
        assertEq(usdc.balanceOf(next), 3e6);
        assertEq(next.balance, 3);
        assertEq(usdc.balanceOf(treasury), 0);
    }

    function test_AcceptTreasury_WorksWhilePaused() public {
        address next = makeAddr("next");
        vm.startPrank(admin);
        router.pause();
        router.proposeTreasury(next);
        vm.stopPrank();
        vm.prank(next);
        router.acceptTreasury();
        assertEq(router.treasury(), next);
    }

    function test_RevertWhen_AcceptTreasuryWithoutProposal() public {
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, treasury));
        vm.prank(treasury);
        router.acceptTreasury();
    }

    function test_RevertWhen_AcceptTreasuryByAdmin() public {
        vm.prank(admin);
        router.proposeTreasury(makeAddr("next"));
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, admin));
        vm.prank(admin);
        router.acceptTreasury();
    }

    function test_RevertWhen_AcceptTreasuryByStranger() public {
        vm.prank(admin);
        router.proposeTreasury(makeAddr("next"));
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, stranger));
        vm.prank(stranger);
        router.acceptTreasury();
    }

    // ---------------------------------------------------------------- pause

    function test_Pause_StopsAndUnpauseResumes() public {
        vm.expectEmit(true, true, true, true, address(router));
        emit Paused(admin);
        vm.prank(admin);
        router.pause();
        assertTrue(router.paused());

        vm.expectEmit(true, true, true, true, address(router));
        emit Unpaused(admin);
        vm.prank(admin);
        router.unpause();
        assertFalse(router.paused());

        vm.prank(payer);
        router.pay(address(usdc), 1, REF);
        assertEq(usdc.balanceOf(treasury), 1);
    }

    function test_Pause_ByGrantedPauser() public {
        address pauser = makeAddr("pauser");
        bytes32 role = router.PAUSER_ROLE();
        vm.prank(admin);
        router.grantRole(role, pauser);
        vm.prank(pauser);
        router.pause();
        assertTrue(router.paused());
    }

    function test_RevertWhen_PauseByNonPauser() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, router.PAUSER_ROLE()
            )
        );
        vm.prank(stranger);
        router.pause();
    }

    function test_RevertWhen_UnpauseByNonPauser() public {
        vm.prank(admin);
        router.pause();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, router.PAUSER_ROLE()
            )
        );
        vm.prank(stranger);
        router.unpause();
    }

    function test_RevertWhen_PauseWhilePaused() public {
        vm.startPrank(admin);
        router.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        router.pause();
        vm.stopPrank();
    }

    function test_RevertWhen_UnpauseWhileNotPaused() public {
        vm.expectRevert(Pausable.ExpectedPause.selector);
        vm.prank(admin);
        router.unpause();
    }
}

/// @dev Issue 4 gas budget: an ERC-20 payment costs at most 70k gas of
/// execution (see {GasProbe}). Each test runs after setUp in a transaction of
/// its own, so storage starts cold and unmodified, as for a real payment.
contract PaymentRouterGasTest is TestBase {
    PaymentRouter internal router;
    /// Token the treasury already holds (steady state).
    DevStablecoin internal usdc;
    /// Token the treasury has never received.
    DevStablecoin internal fresh;
    /// The payer.
    GasProbe internal probe;
    address internal treasury = makeAddr("treasury");

    function setUp() public {
        router = new PaymentRouter(address(this), treasury);
        probe = new GasProbe();
        usdc = new DevStablecoin();
        fresh = new DevStablecoin();
        usdc.mint(treasury, 1);
        usdc.mint(address(probe), 1_000_000e6);
        fresh.mint(address(probe), 1_000_000e6);
        probe.run(address(usdc), abi.encodeCall(usdc.approve, (address(router), 500_000e6)));
        probe.run(address(fresh), abi.encodeCall(fresh.approve, (address(router), 500_000e6)));
    }

    /// Steady state: the treasury already holds some of the token.
    function test_Gas_PayErc20() public {
        uint256 used =
            probe.measure(address(router), abi.encodeCall(router.pay, (address(usdc), 1e6, keccak256("invoice"))));
        emit log_named_uint("pay(ERC-20): execution gas", used);
        assertLe(used, 70_000);
    }

    /// First payment in a token: creates the treasury's balance slot.
    function test_Gas_PayErc20FirstToTreasury() public {
        uint256 used =
            probe.measure(address(router), abi.encodeCall(router.pay, (address(fresh), 1e6, keccak256("invoice"))));
        emit log_named_uint("pay(ERC-20), treasury balance was zero: execution gas", used);
        assertLe(used, 70_000);
    }
}

contract PaymentRouterInvariantTest is TestBase {
    PaymentRouter internal router;
    DevStablecoin internal usdc;
    PaymentRouterHandler internal handler;
    address internal treasury = makeAddr("treasury");

    function setUp() public {
        router = new PaymentRouter(address(this), treasury);
        usdc = new DevStablecoin();
        handler = new PaymentRouterHandler(router, usdc);
        usdc.transferOwnership(address(handler));
        targetContract(address(handler));
    }

    function invariant_RouterHoldsNoEth() public view {
        assertEq(address(router).balance, 0);
    }

    function invariant_RouterHoldsNoTokens() public view {
        assertEq(usdc.balanceOf(address(router)), 0);
    }

    function invariant_TreasuryReceivedEveryPayment() public view {
        assertEq(usdc.balanceOf(treasury), handler.ghostTokenPaid());
        assertEq(treasury.balance, handler.ghostEthPaid());
    }
}
