// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../../src/DevStablecoin.sol";
import {PaymentRouter} from "../../src/PaymentRouter.sol";
import {FeeOnTransferToken, LyingToken, NoReturnToken} from "../mocks/Mocks.sol";
import {Cheats, Vm} from "../utils/TestBase.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @dev Deploys the router as its admin and pauser, with five tokens: an honest
/// one with permit (allowed), a fee-on-transfer one (allowed), a lying one whose
/// transferFrom moves nothing (allowed), one returning no value (allowed) and an
/// honest one never allowed. Drives payments in all of them from a few payers,
/// direct ETH sends, pauses, treasury proposals, cancellations and acceptances at
/// random times, and allow-list changes. Before each call it works out whether the
/// router must refuse, and expects exactly that refusal.
///
/// What the router announced is taken from its {PaymentRouter-PaymentReceived}
/// logs as emitted; the invariants compare those sums with token balances.
contract PaymentRouterHandler is Cheats {
    uint256 public constant HONEST = 0;
    uint256 public constant FEE = 1;
    uint256 public constant LYING = 2;
    uint256 public constant NO_RETURN = 3;
    uint256 public constant UNLISTED = 4;

    PaymentRouter public immutable router;
    DevStablecoin private immutable _usdc;
    FeeOnTransferToken private immutable _fee;
    LyingToken private immutable _liar;
    NoReturnToken private immutable _noReturn;
    DevStablecoin private immutable _unlisted;
    address private immutable _pauser = address(0xB0);

    address[3] private _treasuries;
    uint256[4] private _payerKeys;

    /// Per token index, the sum of the amounts the router announced.
    uint256[5] private _reported;
    uint256 public reportedEth;

    /// The treasury after the last acceptance the handler saw succeed.
    address public expectedTreasury;
    /// When the pending proposal was made.
    uint48 public proposedAt;

    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    constructor() {
        _usdc = new DevStablecoin();
        _fee = new FeeOnTransferToken();
        _liar = new LyingToken();
        _noReturn = new NoReturnToken();
        _unlisted = new DevStablecoin();
        for (uint256 i = 0; i < 3; ++i) {
            _treasuries[i] = address(uint160(uint256(keccak256(abi.encode("treasury", i)))));
        }
        for (uint256 i = 0; i < 4; ++i) {
            _payerKeys[i] = uint256(keccak256(abi.encode("payer", i))) % (SECP256K1_ORDER - 1) + 1;
        }
        address[] memory tokens = new address[](4);
        tokens[0] = address(_usdc);
        tokens[1] = address(_fee);
        tokens[2] = address(_liar);
        tokens[3] = address(_noReturn);
        router = new PaymentRouter(1 days, address(this), _treasuries[0], 2 days, tokens);
        router.grantRole(router.PAUSER_ROLE(), _pauser);
        expectedTreasury = _treasuries[0];
    }

    // ------------------------------------------------------------ read by the invariants

    function tokenCount() external pure returns (uint256) {
        return 5;
    }

    function balanceOf(uint256 index, address account) external view returns (uint256) {
        return IERC20(_token(index)).balanceOf(account);
    }

    function treasuryCount() external pure returns (uint256) {
        return 3;
    }

    function treasuryAt(uint256 i) external view returns (address) {
        return _treasuries[i];
    }

    function reported(uint256 index) external view returns (uint256) {
        return _reported[index];
    }

    // ------------------------------------------------------------ payments

    function pay(uint256 tokenSeed, uint256 payerSeed, uint256 amount, bytes32 ref) external {
        uint256 index = tokenSeed % 5;
        address token = _token(index);
        address payer = vm.addr(_payerKeys[payerSeed % 4]);
        amount = bound(amount, 1, 1e15);
        _fund(index, payer, amount);
        bytes memory refusal = _refusal(token);
        if (index == LYING && refusal.length == 0) {
            refusal = abi.encodeWithSelector(PaymentRouter.NothingReceived.selector, token);
        }
        _expectOrRecord(refusal);
        vm.prank(payer);
        router.pay(token, amount, ref);
        if (refusal.length == 0) _record(index);
    }

    function payWithPermit(uint256 payerSeed, uint256 amount, bytes32 ref) external {
        uint256 key = _payerKeys[payerSeed % 4];
        address payer = vm.addr(key);
        amount = bound(amount, 1, 1e15);
        _usdc.mint(payer, amount);
        uint256 deadline = block.timestamp + 1;
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, payer, address(router), amount, _usdc.nonces(payer), deadline));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", _usdc.DOMAIN_SEPARATOR(), structHash)));
        bytes memory refusal = _refusal(address(_usdc));
        _expectOrRecord(refusal);
        vm.prank(payer);
        router.payWithPermit(address(_usdc), amount, ref, deadline, v, r, s);
        if (refusal.length == 0) _record(HONEST);
    }

    function payNative(uint256 payerSeed, uint256 amount, bytes32 ref) external {
        address payer = vm.addr(_payerKeys[payerSeed % 4]);
        amount = bound(amount, 1, 1e24);
        vm.deal(payer, amount);
        bool paused = router.paused();
        if (paused) vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(payer);
        router.payNative{value: amount}(ref);
        if (!paused) reportedEth += amount;
    }

    function sendEthDirectly(uint256 payerSeed, uint256 amount, bytes calldata data) external {
        address payer = vm.addr(_payerKeys[payerSeed % 4]);
        amount = bound(amount, 1, 1e24);
        vm.deal(payer, amount);
        vm.prank(payer);
        (bool ok,) = address(router).call{value: amount}(data);
        // A direct send must bounce unless it happens to be a valid payNative call.
        if (ok) {
            require(data.length >= 4 && bytes4(data[:4]) == PaymentRouter.payNative.selector, "router kept ETH");
            reportedEth += amount;
        }
    }

    // ------------------------------------------------------------ administration

    function setPaused(bool paused) external {
        if (paused == router.paused()) return;
        vm.prank(_pauser);
        if (paused) router.pause();
        else router.unpause();
    }

    function setTokenAllowed(uint256 tokenSeed, bool allowed) external {
        // The unlisted token stays off the list.
        router.setTokenAllowed(_token(tokenSeed % 4), allowed);
    }

    function proposeTreasury(uint256 candidate) external {
        address next = _treasuries[candidate % 3];
        address pending = router.pendingTreasury();
        if (pending != address(0)) {
            vm.expectRevert(abi.encodeWithSelector(PaymentRouter.TreasuryProposalPending.selector, pending));
            router.proposeTreasury(next);
            return;
        }
        router.proposeTreasury(next);
        proposedAt = uint48(block.timestamp);
    }

    function cancelTreasuryProposal(bool asPauser) external {
        if (router.pendingTreasury() == address(0)) {
            vm.expectRevert(PaymentRouter.NoTreasuryProposal.selector);
        }
        if (asPauser) vm.prank(_pauser);
        router.cancelTreasuryProposal();
    }

    /// Waits up to three days, then the pending treasury (or a former one) tries to accept.
    function acceptTreasury(uint256 wait, uint256 caller) external {
        vm.warp(block.timestamp + bound(wait, 0, 3 days));
        address pending = router.pendingTreasury();
        address from = pending != address(0) && caller % 4 != 0 ? pending : _treasuries[caller % 3];
        if (pending == address(0) || from != pending) {
            vm.expectRevert(abi.encodeWithSelector(PaymentRouter.NotPendingTreasury.selector, from));
            // forge-lint: disable-next-line(block-timestamp)
        } else if (block.timestamp < router.pendingTreasuryAt()) {
            vm.expectRevert(
                abi.encodeWithSelector(PaymentRouter.TreasuryProposalNotReady.selector, router.pendingTreasuryAt())
            );
        } else {
            // forge-lint: disable-next-line(block-timestamp)
            require(block.timestamp >= proposedAt + router.TREASURY_DELAY(), "accepted before the delay");
            expectedTreasury = pending;
        }
        vm.prank(from);
        router.acceptTreasury();
    }

    // ------------------------------------------------------------ helpers

    function _token(uint256 index) private view returns (address) {
        if (index == HONEST) return address(_usdc);
        if (index == FEE) return address(_fee);
        if (index == LYING) return address(_liar);
        if (index == NO_RETURN) return address(_noReturn);
        return address(_unlisted);
    }

    /// Gives `payer` `amount` of the token and the router an allowance for it.
    function _fund(uint256 index, address payer, uint256 amount) private {
        if (index == NO_RETURN) {
            // Its approve returns nothing, which IERC20's would not accept.
            _noReturn.mint(payer, amount);
            vm.prank(payer);
            _noReturn.approve(address(router), amount);
            return;
        }
        if (index == HONEST) _usdc.mint(payer, amount);
        else if (index == FEE) _fee.mint(payer, amount);
        else if (index == LYING) _liar.mint(payer, amount);
        else _unlisted.mint(payer, amount);
        vm.prank(payer);
        IERC20(_token(index)).approve(address(router), amount);
    }

    /// The refusal a token payment must meet before it reaches the token, if any.
    function _refusal(address token) private view returns (bytes memory) {
        if (router.paused()) return abi.encodeWithSelector(Pausable.EnforcedPause.selector);
        if (!router.allowedToken(token)) return abi.encodeWithSelector(PaymentRouter.TokenNotAllowed.selector, token);
        return "";
    }

    function _expectOrRecord(bytes memory refusal) private {
        if (refusal.length != 0) vm.expectRevert(refusal);
        else vm.recordLogs();
    }

    /// Adds the amount of the router's PaymentReceived log to the token's sum.
    function _record(uint256 index) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 found = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(router) && logs[i].topics[0] == PaymentRouter.PaymentReceived.selector) {
                require(address(uint160(uint256(logs[i].topics[3]))) == _token(index), "wrong token logged");
                _reported[index] += abi.decode(logs[i].data, (uint256));
                ++found;
            }
        }
        require(found == 1, "one payment, one PaymentReceived");
    }
}

/// @dev Strangers (never the admin or the pauser) call the router's functions
/// with random arguments. Most calls revert, which the chaos invariant test
/// ignores; the invariants check that nothing changed all the same.
contract PaymentRouterChaosHandler is Cheats {
    address public constant ADMIN = address(0xAD);
    address public constant TREASURY = address(0x7E);

    PaymentRouter public immutable router;
    DevStablecoin public immutable usdc;

    /// What honest payments sent to the treasury.
    uint256 public paid;

    constructor() {
        usdc = new DevStablecoin();
        address[] memory tokens = new address[](1);
        tokens[0] = address(usdc);
        router = new PaymentRouter(1 days, ADMIN, TREASURY, 2 days, tokens);
    }

    function _stranger(uint256 seed) private pure returns (address) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return address(uint160(0x5000 + seed % 8));
    }

    function callAdminFunction(uint256 which, uint256 callerSeed, address arg, bool flag) external {
        address caller = _stranger(callerSeed);
        vm.startPrank(caller);
        which %= 11;
        if (which == 0) router.proposeTreasury(arg);
        else if (which == 1) router.cancelTreasuryProposal();
        else if (which == 2) router.acceptTreasury();
        else if (which == 3) router.setTokenAllowed(arg, flag);
        else if (which == 4) router.pause();
        else if (which == 5) router.unpause();
        else if (which == 6) router.grantRole(flag ? router.PAUSER_ROLE() : router.DEFAULT_ADMIN_ROLE(), caller);
        else if (which == 7) router.revokeRole(router.PAUSER_ROLE(), ADMIN);
        else if (which == 8) router.beginDefaultAdminTransfer(caller);
        else if (which == 9) router.acceptDefaultAdminTransfer();
        else router.renounceRole(router.DEFAULT_ADMIN_ROLE(), caller);
        vm.stopPrank();
    }

    function payHonestly(uint256 callerSeed, uint256 amount, bytes32 ref) external {
        address caller = _stranger(callerSeed);
        amount = bound(amount, 1, 1e15);
        usdc.mint(caller, amount);
        vm.startPrank(caller);
        usdc.approve(address(router), amount);
        router.pay(address(usdc), amount, ref);
        vm.stopPrank();
        paid += amount;
    }

    function payWithAnyToken(uint256 callerSeed, address token, uint256 amount, bytes32 ref) external {
        vm.prank(_stranger(callerSeed));
        router.pay(token, amount, ref);
    }

    function wait(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 0, 30 days));
    }
}
