// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../src/DevStablecoin.sol";
import {PaymentRouter} from "../src/PaymentRouter.sol";
import {PaymentRouterChaosHandler, PaymentRouterHandler} from "./handlers/PaymentRouterHandler.sol";
import {
    FalseReturningToken,
    FeeOnTransferToken,
    LyingToken,
    NoReturnToken,
    ReentrantToken,
    ReentrantTreasury,
    RejectingTreasury
} from "./mocks/Mocks.sol";
import {GasProbe} from "./utils/GasProbe.sol";
import {PermitSigner} from "./utils/PermitSigner.sol";
import {TestBase} from "./utils/TestBase.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @dev The deployment the tests share: the router with its delays and allowed tokens.
abstract contract RouterFixture is PermitSigner {
    uint48 internal constant ADMIN_DELAY = 2 days;
    uint48 internal constant TREASURY_DELAY = 2 days;

    function _router(address admin, address treasury_, address[] memory tokens) internal returns (PaymentRouter) {
        return new PaymentRouter(ADMIN_DELAY, admin, treasury_, TREASURY_DELAY, tokens);
    }

    function _one(address token) internal pure returns (address[] memory tokens) {
        tokens = new address[](1);
        tokens[0] = token;
    }
}

contract PaymentRouterTest is RouterFixture {
    event PaymentReceived(bytes32 indexed ref, address indexed payer, address indexed token, uint256 amount);
    event TreasuryProposed(address indexed current, address indexed proposed, uint48 effectiveAt);
    event TreasuryProposalCancelled(address indexed proposed);
    event TreasuryChanged(address indexed previous, address indexed current);
    event TokenAllowListChanged(address indexed token, bool allowed);
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
        usdc = new DevStablecoin();
        router = _router(admin, treasury, _one(address(usdc)));
        usdc.mint(payer, 1_000_000e6);
        vm.prank(payer);
        usdc.approve(address(router), type(uint256).max);
        vm.deal(payer, 100 ether);
    }

    /// Allows `token` on the router, as the admin.
    function _allow(address token) internal {
        vm.prank(admin);
        router.setTokenAllowed(token, true);
    }

    // ---------------------------------------------------------------- constructor and roles

    function test_Constructor_GrantsRolesAndSetsTreasury() public view {
        assertTrue(router.hasRole(router.DEFAULT_ADMIN_ROLE(), admin));
        assertEq(router.defaultAdmin(), admin);
        assertEq(router.defaultAdminDelay(), ADMIN_DELAY);
        assertTrue(router.hasRole(router.PAUSER_ROLE(), admin));
        assertEq(router.PAUSER_ROLE(), keccak256("PAUSER_ROLE"));
        assertEq(router.treasury(), treasury);
        assertEq(router.pendingTreasury(), address(0));
        assertEq(router.pendingTreasuryAt(), 0);
        assertEq(router.TREASURY_DELAY(), TREASURY_DELAY);
        assertTrue(router.allowedToken(address(usdc)));
        assertFalse(router.allowedToken(address(0)));
        assertFalse(router.paused());
    }

    function test_Constructor_AnnouncesTreasuryAndTokens() public {
        vm.expectEmit(true, true, true, true);
        emit TreasuryChanged(address(0), treasury);
        vm.expectEmit(true, true, true, true);
        emit TokenAllowListChanged(address(usdc), true);
        _router(admin, treasury, _one(address(usdc)));
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlInvalidDefaultAdmin.selector, address(0)
            )
        );
        _router(address(0), treasury, new address[](0));
    }

    function test_RevertWhen_ConstructorTreasuryIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        _router(admin, address(0), new address[](0));
    }

    function test_RevertWhen_ConstructorTokenIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        _router(admin, treasury, _one(address(0)));
    }

    function test_RevertWhen_AdminRenouncesInOneStep() public {
        bytes32 role = router.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, 0)
        );
        vm.prank(admin);
        router.renounceRole(role, admin);
        assertEq(router.defaultAdmin(), admin);
    }

    function test_AdminTransfer_TakesTwoStepsAndTheDelay() public {
        address next = makeAddr("next admin");
        vm.prank(admin);
        router.beginDefaultAdminTransfer(next);
        (, uint48 schedule) = router.pendingDefaultAdmin();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, schedule
            )
        );
        vm.prank(next);
        router.acceptDefaultAdminTransfer();
        vm.warp(schedule + 1);
        vm.prank(next);
        router.acceptDefaultAdminTransfer();
        assertEq(router.defaultAdmin(), next);
        assertFalse(router.hasRole(router.DEFAULT_ADMIN_ROLE(), admin));
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
        _allow(address(token));
        token.mint(payer, 10);
        vm.startPrank(payer);
        token.approve(address(router), 10);
        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, payer, address(token), 10);
        router.pay(address(token), 10, REF);
        vm.stopPrank();
        assertEq(token.balanceOf(treasury), 10);
    }

    /// The event says what the treasury gained, not what was asked.
    function test_Pay_ReportsWhatAFeeOnTransferTokenDelivered() public {
        FeeOnTransferToken token = new FeeOnTransferToken();
        _allow(address(token));
        token.mint(payer, 1000);
        vm.startPrank(payer);
        token.approve(address(router), 1000);
        vm.expectEmit(true, true, true, true, address(router));
        emit PaymentReceived(REF, payer, address(token), 990);
        router.pay(address(token), 1000, REF);
        vm.stopPrank();
        assertEq(token.balanceOf(treasury), 990);
    }

    function test_RevertWhen_PayTokenDeliversNothing() public {
        LyingToken token = new LyingToken();
        _allow(address(token));
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NothingReceived.selector, address(token)));
        vm.prank(payer);
        router.pay(address(token), 1e6, REF);
    }

    function test_RevertWhen_PayTokenNotAllowed() public {
        DevStablecoin other = new DevStablecoin();
        other.mint(payer, 10);
        vm.prank(payer);
        other.approve(address(router), 10);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(other)));
        vm.prank(payer);
        router.pay(address(other), 10, REF);
    }

    function test_RevertWhen_PayAmountIsZero() public {
        vm.expectRevert(PaymentRouter.ZeroAmount.selector);
        vm.prank(payer);
        router.pay(address(usdc), 0, REF);
    }

    function test_RevertWhen_PayTokenIsZero() public {
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(0)));
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
        _allow(address(token));
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
        _allow(address(token));
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

    // ---------------------------------------------------------------- token allow-list

    function test_SetTokenAllowed_AddsAndRemoves() public {
        DevStablecoin other = new DevStablecoin();
        vm.expectEmit(true, true, true, true, address(router));
        emit TokenAllowListChanged(address(other), true);
        vm.prank(admin);
        router.setTokenAllowed(address(other), true);
        assertTrue(router.allowedToken(address(other)));

        vm.expectEmit(true, true, true, true, address(router));
        emit TokenAllowListChanged(address(usdc), false);
        vm.prank(admin);
        router.setTokenAllowed(address(usdc), false);
        assertFalse(router.allowedToken(address(usdc)));
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(usdc)));
        vm.prank(payer);
        router.pay(address(usdc), 1, REF);
    }

    function test_RevertWhen_SetTokenAllowedByNonAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, router.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(stranger);
        router.setTokenAllowed(stranger, true);
    }

    function test_RevertWhen_SetTokenAllowedZero() public {
        vm.expectRevert(PaymentRouter.ZeroAddress.selector);
        vm.prank(admin);
        router.setTokenAllowed(address(0), true);
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
        PaymentRouter r = _router(admin, address(new RejectingTreasury()), new address[](0));
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
        PaymentRouter r = _router(admin, address(evil), new address[](0));
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

    function test_RevertWhen_PayWithPermitTokenNotAllowed() public {
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, address(0)));
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

    function test_ProposeTreasury_SetsPendingWithTheDelay() public {
        address next = makeAddr("next");
        uint48 effectiveAt = uint48(block.timestamp) + TREASURY_DELAY;
        vm.expectEmit(true, true, true, true, address(router));
        emit TreasuryProposed(treasury, next, effectiveAt);
        vm.prank(admin);
        router.proposeTreasury(next);

        assertEq(router.pendingTreasury(), next);
        assertEq(router.pendingTreasuryAt(), effectiveAt);
        assertEq(router.treasury(), treasury);
    }

    function test_RevertWhen_ProposeTreasuryWhileOneIsPending() public {
        address first = makeAddr("first");
        vm.startPrank(admin);
        router.proposeTreasury(first);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TreasuryProposalPending.selector, first));
        router.proposeTreasury(makeAddr("second"));
        vm.stopPrank();
        assertEq(router.pendingTreasury(), first);
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

    function test_AcceptTreasury_SwitchesTreasuryAfterTheDelay() public {
        address next = makeAddr("next");
        vm.prank(admin);
        router.proposeTreasury(next);

        vm.warp(block.timestamp + TREASURY_DELAY);
        vm.expectEmit(true, true, true, true, address(router));
        emit TreasuryChanged(treasury, next);
        vm.prank(next);
        router.acceptTreasury();

        assertEq(router.treasury(), next);
        assertEq(router.pendingTreasury(), address(0));
        assertEq(router.pendingTreasuryAt(), 0);

        vm.prank(payer);
        router.pay(address(usdc), 3e6, REF);
        vm.prank(payer);
        router.payNative{value: 3}(REF);
        assertEq(usdc.balanceOf(next), 3e6);
        assertEq(next.balance, 3);
        assertEq(usdc.balanceOf(treasury), 0);
    }

    function test_RevertWhen_AcceptTreasuryBeforeTheDelay() public {
        address next = makeAddr("next");
        vm.prank(admin);
        router.proposeTreasury(next);
        uint48 effectiveAt = router.pendingTreasuryAt();
        vm.warp(effectiveAt - 1);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TreasuryProposalNotReady.selector, effectiveAt));
        vm.prank(next);
        router.acceptTreasury();
        assertEq(router.treasury(), treasury);
    }

    function test_AcceptTreasury_WorksWhilePaused() public {
        address next = makeAddr("next");
        vm.startPrank(admin);
        router.pause();
        router.proposeTreasury(next);
        vm.stopPrank();
        vm.warp(block.timestamp + TREASURY_DELAY);
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
        vm.warp(block.timestamp + TREASURY_DELAY);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, admin));
        vm.prank(admin);
        router.acceptTreasury();
    }

    function test_RevertWhen_AcceptTreasuryByStranger() public {
        vm.prank(admin);
        router.proposeTreasury(makeAddr("next"));
        vm.warp(block.timestamp + TREASURY_DELAY);
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, stranger));
        vm.prank(stranger);
        router.acceptTreasury();
    }

    function test_CancelTreasuryProposal_ByAdminOrPauser() public {
        address pauser = makeAddr("pauser");
        bytes32 role = router.PAUSER_ROLE();
        vm.prank(admin);
        router.grantRole(role, pauser);
        address[2] memory cancellers = [admin, pauser];
        for (uint256 i = 0; i < cancellers.length; ++i) {
            address next = makeAddr("next");
            vm.prank(admin);
            router.proposeTreasury(next);
            vm.expectEmit(true, true, true, true, address(router));
            emit TreasuryProposalCancelled(next);
            vm.prank(cancellers[i]);
            router.cancelTreasuryProposal();
            assertEq(router.pendingTreasury(), address(0));
            assertEq(router.pendingTreasuryAt(), 0);
            vm.warp(block.timestamp + TREASURY_DELAY);
            vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, next));
            vm.prank(next);
            router.acceptTreasury();
        }
        assertEq(router.treasury(), treasury);
    }

    function test_RevertWhen_CancelTreasuryProposalByStranger() public {
        vm.prank(admin);
        router.proposeTreasury(makeAddr("next"));
        vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotAdminOrPauser.selector, stranger));
        vm.prank(stranger);
        router.cancelTreasuryProposal();
    }

    function test_RevertWhen_CancelWithoutProposal() public {
        vm.expectRevert(PaymentRouter.NoTreasuryProposal.selector);
        vm.prank(admin);
        router.cancelTreasuryProposal();
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

/// @dev Issue 4 and 16 gas budget: an ERC-20 payment costs at most 70k gas of
/// execution (see {GasProbe}); the transaction figure (21k, calldata and
/// execution) is logged too. Each test runs after setUp in a transaction of its
/// own, so storage starts cold and unmodified, as for a real payment.
contract PaymentRouterGasTest is RouterFixture {
    PaymentRouter internal router;
    /// Token the treasury already holds (steady state).
    DevStablecoin internal usdc;
    /// Token the treasury has never received.
    DevStablecoin internal fresh;
    /// The payer.
    GasProbe internal probe;
    address internal treasury = makeAddr("treasury");

    function setUp() public {
        probe = new GasProbe();
        usdc = new DevStablecoin();
        fresh = new DevStablecoin();
        address[] memory tokens = new address[](2);
        tokens[0] = address(usdc);
        tokens[1] = address(fresh);
        router = _router(address(this), treasury, tokens);
        usdc.mint(treasury, 1);
        usdc.mint(address(probe), 1_000_000e6);
        fresh.mint(address(probe), 1_000_000e6);
        probe.run(address(usdc), abi.encodeCall(usdc.approve, (address(router), 500_000e6)));
        probe.run(address(fresh), abi.encodeCall(fresh.approve, (address(router), 500_000e6)));
    }

    function _measure(DevStablecoin token, string memory what) internal returns (uint256 used) {
        bytes memory call = abi.encodeCall(router.pay, (address(token), 1e6, keccak256("invoice")));
        used = probe.measure(address(router), call);
        uint256 transaction = 21_000 + used;
        for (uint256 i = 0; i < call.length; ++i) {
            transaction += call[i] == 0 ? 4 : 16;
        }
        emit log_named_uint(string.concat(what, ": execution gas"), used);
        emit log_named_uint(string.concat(what, ": transaction gas"), transaction);
    }

    /// Steady state: the treasury already holds some of the token.
    function test_Gas_PayErc20() public {
        assertLe(_measure(usdc, "pay(ERC-20)"), 70_000);
    }

    /// First payment in a token: creates the treasury's balance slot.
    function test_Gas_PayErc20FirstToTreasury() public {
        assertLe(_measure(fresh, "pay(ERC-20), treasury balance was zero"), 70_000);
    }
}

/// @dev A fixed set of tokens (honest with permit, fee-on-transfer, lying,
/// returning no value, and one never allowed), payments in all of them,
/// pauses, treasury proposals, cancellations and acceptances at random times,
/// allow-list changes. The handler expects each refusal the rules demand.
contract PaymentRouterInvariantTest is TestBase {
    PaymentRouter internal router;
    PaymentRouterHandler internal handler;

    function setUp() public {
        handler = new PaymentRouterHandler();
        router = handler.router();
        targetContract(address(handler));
    }

    function invariant_RouterHoldsNothing() public view {
        assertEq(address(router).balance, 0);
        for (uint256 i = 0; i < handler.tokenCount(); ++i) {
            assertEq(handler.balanceOf(i, address(router)), 0);
        }
    }

    /// What the events announced, per token, is what the treasuries gained:
    /// the events' amounts come from the router, the balances from the tokens.
    function invariant_EventsReportWhatTheTreasuriesGained() public view {
        for (uint256 i = 0; i < handler.tokenCount(); ++i) {
            uint256 held = 0;
            for (uint256 t = 0; t < handler.treasuryCount(); ++t) {
                held += handler.balanceOf(i, handler.treasuryAt(t));
            }
            assertEq(held, handler.reported(i), "reported payments differ from what arrived");
        }
        uint256 eth = 0;
        for (uint256 t = 0; t < handler.treasuryCount(); ++t) {
            eth += handler.treasuryAt(t).balance;
        }
        assertEq(eth, handler.reportedEth());
    }

    function invariant_LyingAndUnlistedTokensNeverPay() public view {
        assertEq(handler.reported(handler.LYING()), 0);
        assertEq(handler.reported(handler.UNLISTED()), 0);
    }

    /// The treasury is the one the handler saw accepted after its delay.
    function invariant_TreasuryChangesOnlyThroughADelayedAcceptance() public view {
        assertEq(router.treasury(), handler.expectedTreasury());
        if (router.pendingTreasury() != address(0)) {
            assertEq(router.pendingTreasuryAt(), handler.proposedAt() + router.TREASURY_DELAY());
        }
    }
}

/// @dev Strangers call every function of the router with random arguments,
/// most of which revert; reverts are the point, so `fail_on_revert` is off.
/// Nothing they do may move the treasury, the allow-list, the pause flag or
/// the roles, or leave funds in the router.
/// forge-config: default.invariant.fail-on-revert = false
contract PaymentRouterChaosInvariantTest is TestBase {
    PaymentRouter internal router;
    PaymentRouterChaosHandler internal handler;

    function setUp() public {
        handler = new PaymentRouterChaosHandler();
        router = handler.router();
        targetContract(address(handler));
    }

    function invariant_StrangersChangeNothing() public view {
        assertEq(router.treasury(), handler.TREASURY());
        assertEq(router.pendingTreasury(), address(0));
        assertFalse(router.paused());
        assertTrue(router.allowedToken(address(handler.usdc())));
        assertEq(router.defaultAdmin(), handler.ADMIN());
        assertEq(address(router).balance, 0);
        assertEq(handler.usdc().balanceOf(address(router)), 0);
        // Only honest payments reached the treasury.
        assertEq(handler.usdc().balanceOf(handler.TREASURY()), handler.paid());
    }
}
