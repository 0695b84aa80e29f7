// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title PaymentRouter
/// @notice Entry point for on-chain payments to an E-PG merchant. Every payment,
/// in ETH or in an allowed ERC-20 token, moves straight from the payer to the
/// treasury in the same transaction and is announced by exactly one
/// {PaymentReceived} event, which the E-PG node watches and matches to an
/// invoice through `ref`.
/// @dev The router never holds funds: it has no `receive` or `fallback`, so a
/// plain ETH transfer to it reverts, and tokens are pulled from the payer
/// directly to the treasury.
///
/// Only tokens on the admin's allow-list are accepted: anything else reverts,
/// so no one can emit a real-looking {PaymentReceived} with a token whose
/// `transferFrom` lies. For an allowed token, {PaymentReceived} reports what
/// the treasury's balance gained, not the amount asked for. Of the two ways
/// issue 16 offered (name the treasury in the event, or measure), measuring
/// was chosen: the node books exactly what the treasury can spend, so its
/// ledger reconciles with the chain even if an allowed token takes a fee or is
/// upgraded to one, and a token that moves nothing is refused. The treasury
/// need not be named per payment because it cannot change unannounced: a
/// change waits {TREASURY_DELAY} after it is proposed, far longer than a
/// quote's lifetime, and the node stops quoting before it takes effect.
///
/// Roles (OpenZeppelin's `AccessControlDefaultAdminRules`): one
/// `DEFAULT_ADMIN_ROLE` holder, transferred or renounced only in two steps
/// with a delay, manages roles, the token allow-list, and proposes a new
/// treasury; `PAUSER_ROLE` pauses and unpauses payments. Both may cancel a
/// proposed treasury: cancelling only keeps the money flowing where it does.
///
/// Treasury change: the admin proposes; after {TREASURY_DELAY} (fixed at
/// deployment) the proposed address itself accepts, which proves that it is
/// controlled (and, for a contract, that it is the right one). Until then the
/// proposal can be cancelled. Treasury changes stay possible while paused.
contract PaymentRouter is AccessControlDefaultAdminRules, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to pause and unpause payments.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice Seconds between a treasury proposal and the earliest {acceptTreasury}.
    uint48 public immutable TREASURY_DELAY;

    /// @notice Address that receives every payment. Never zero.
    /// @dev Declared first so it shares a slot with Pausable's flag: a payment
    /// reads both with one cold storage access.
    address public treasury;

    /// @notice Address proposed by the admin as the next treasury, or zero if none.
    address public pendingTreasury;

    /// @notice Earliest time (seconds since the epoch) the pending treasury may accept; zero if none.
    uint48 public pendingTreasuryAt;

    /// @notice Whether `pay` and `payWithPermit` accept `token`.
    mapping(address token => bool) public allowedToken;

    /// @notice A payment by `payer` in `token` (zero address for ETH) reached the
    /// treasury, for the invoice or order identified by `ref`. `amount` is what the
    /// treasury's balance gained (for ETH, the value sent).
    event PaymentReceived(bytes32 indexed ref, address indexed payer, address indexed token, uint256 amount);

    /// @notice The admin proposed `proposed` to replace `current` as the treasury,
    /// acceptable from time `effectiveAt` on.
    event TreasuryProposed(address indexed current, address indexed proposed, uint48 effectiveAt);

    /// @notice The proposal of `proposed` as the treasury was withdrawn.
    event TreasuryProposalCancelled(address indexed proposed);

    /// @notice The treasury changed from `previous` to `current`.
    event TreasuryChanged(address indexed previous, address indexed current);

    /// @notice `token` was added to (`allowed`) or removed from the allow-list.
    event TokenAllowListChanged(address indexed token, bool allowed);

    /// @notice A payment of zero was attempted.
    error ZeroAmount();

    /// @notice A zero address was given where an account or token is required.
    error ZeroAddress();

    /// @notice `token` is not on the allow-list (the zero address never is; use `payNative` for ETH).
    error TokenNotAllowed(address token);

    /// @notice The treasury's balance of `token` did not grow.
    error NothingReceived(address token);

    /// @notice The treasury did not accept the forwarded ETH.
    error NativeTransferFailed();

    /// @notice `caller` tried to accept the treasury but is not the pending treasury.
    error NotPendingTreasury(address caller);

    /// @notice The pending treasury may accept only from `effectiveAt` on.
    error TreasuryProposalNotReady(uint48 effectiveAt);

    /// @notice `pending` is already proposed; cancel it first.
    error TreasuryProposalPending(address pending);

    /// @notice There is no treasury proposal to cancel.
    error NoTreasuryProposal();

    /// @notice `caller` may not cancel a treasury proposal (admin or pauser only).
    error NotAdminOrPauser(address caller);

    /// @notice The permit failed and the router's allowance (`allowance`) does not cover `amount`.
    error PermitFailed(uint256 allowance, uint256 amount);

    /// @param initialAdminDelay Seconds a transfer of `DEFAULT_ADMIN_ROLE` waits between its
    /// two steps (E-PG deploys with 48 hours).
    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `PAUSER_ROLE`.
    /// @param treasury_ Initial treasury.
    /// @param treasuryDelay {TREASURY_DELAY} (E-PG deploys with 48 hours).
    /// @param tokens Tokens allowed from the start.
    constructor(
        uint48 initialAdminDelay,
        address admin,
        address treasury_,
        uint48 treasuryDelay,
        address[] memory tokens
    ) AccessControlDefaultAdminRules(initialAdminDelay, admin) {
        if (treasury_ == address(0)) revert ZeroAddress();
        _grantRole(PAUSER_ROLE, admin);
        TREASURY_DELAY = treasuryDelay;
        treasury = treasury_;
        emit TreasuryChanged(address(0), treasury_);
        for (uint256 i = 0; i < tokens.length; ++i) {
            _setTokenAllowed(tokens[i], true);
        }
    }

    /// @notice Pays `amount` of `token` from the caller to the treasury.
    /// @dev The caller must have approved this contract for at least `amount`.
    /// @param token Allowed ERC-20 token to pay with.
    /// @param amount Amount in the token's smallest unit; must not be zero.
    /// @param ref Payment reference chosen by the merchant (e.g. an invoice id).
    function pay(address token, uint256 amount, bytes32 ref) external nonReentrant whenNotPaused {
        _checkTokenPayment(token, amount);
        _payToken(token, amount, ref);
    }

    /// @notice Pays `amount` of `token` using an EIP-2612 signature instead of a prior approval.
    /// @dev If the permit call fails (for example because someone submitted the same
    /// signature first), the payment still goes through as long as the allowance
    /// already covers `amount`; otherwise it reverts with {PermitFailed}.
    /// @param token Allowed ERC-20 token implementing EIP-2612.
    /// @param amount Amount in the token's smallest unit; must not be zero. Also the permit value.
    /// @param ref Payment reference chosen by the merchant.
    /// @param deadline Permit deadline (seconds since the epoch).
    /// @param v Signature `v`.
    /// @param r Signature `r`.
    /// @param s Signature `s`.
    function payWithPermit(address token, uint256 amount, bytes32 ref, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        whenNotPaused
    {
        _checkTokenPayment(token, amount);
        try IERC20Permit(token).permit(msg.sender, address(this), amount, deadline, v, r, s) {}
        catch {
            uint256 allowance = IERC20(token).allowance(msg.sender, address(this));
            if (allowance < amount) revert PermitFailed(allowance, amount);
        }
        _payToken(token, amount, ref);
    }

    /// @notice Pays `msg.value` wei from the caller to the treasury.
    /// @param ref Payment reference chosen by the merchant.
    function payNative(bytes32 ref) external payable nonReentrant whenNotPaused {
        if (msg.value == 0) revert ZeroAmount();
        (bool ok,) = treasury.call{value: msg.value}("");
        if (!ok) revert NativeTransferFailed();
        emit PaymentReceived(ref, msg.sender, address(0), msg.value);
    }

    /// @notice Proposes `newTreasury` as the next treasury. It takes effect when
    /// `newTreasury` calls {acceptTreasury}, at least {TREASURY_DELAY} seconds from
    /// now, unless cancelled first. Only the admin may call it, and only when no
    /// proposal is pending.
    /// @param newTreasury Proposed treasury; must not be zero.
    function proposeTreasury(address newTreasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (newTreasury == address(0)) revert ZeroAddress();
        address pending = pendingTreasury;
        if (pending != address(0)) revert TreasuryProposalPending(pending);
        uint48 effectiveAt = uint48(block.timestamp) + TREASURY_DELAY;
        pendingTreasury = newTreasury;
        pendingTreasuryAt = effectiveAt;
        emit TreasuryProposed(treasury, newTreasury, effectiveAt);
    }

    /// @notice Withdraws the pending treasury proposal. The admin or a pauser may call it.
    function cancelTreasuryProposal() external {
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender) && !hasRole(PAUSER_ROLE, msg.sender)) {
            revert NotAdminOrPauser(msg.sender);
        }
        address pending = pendingTreasury;
        if (pending == address(0)) revert NoTreasuryProposal();
        delete pendingTreasury;
        delete pendingTreasuryAt;
        emit TreasuryProposalCancelled(pending);
    }

    /// @notice Makes the caller the treasury. Only the pending treasury may call it,
    /// from {pendingTreasuryAt} on.
    function acceptTreasury() external {
        address pending = pendingTreasury;
        if (pending == address(0) || msg.sender != pending) revert NotPendingTreasury(msg.sender);
        uint48 effectiveAt = pendingTreasuryAt;
        // A validator can shift a timestamp by seconds; the delay is days.
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < effectiveAt) revert TreasuryProposalNotReady(effectiveAt);
        address previous = treasury;
        treasury = pending;
        delete pendingTreasury;
        delete pendingTreasuryAt;
        emit TreasuryChanged(previous, pending);
    }

    /// @notice Adds `token` to the allow-list or removes it. Only the admin may call it.
    /// @dev Allow only tokens whose `transferFrom` moves exactly what it is asked to
    /// and that cannot call back into payers' code; the router measures what arrived
    /// anyway (see the contract's notes).
    /// @param token The ERC-20 token; not zero.
    /// @param allowed Whether payments in it are accepted.
    function setTokenAllowed(address token, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTokenAllowed(token, allowed);
    }

    /// @notice Stops all payments until {unpause}.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resumes payments.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    function _setTokenAllowed(address token, bool allowed) private {
        if (token == address(0)) revert ZeroAddress();
        allowedToken[token] = allowed;
        emit TokenAllowListChanged(token, allowed);
    }

    function _checkTokenPayment(address token, uint256 amount) private view {
        if (amount == 0) revert ZeroAmount();
        if (!allowedToken[token]) revert TokenNotAllowed(token);
    }

    function _payToken(address token, uint256 amount, bytes32 ref) private {
        address to = treasury;
        uint256 before = IERC20(token).balanceOf(to);
        IERC20(token).safeTransferFrom(msg.sender, to, amount);
        uint256 after_ = IERC20(token).balanceOf(to);
        if (after_ <= before) revert NothingReceived(token);
        unchecked {
            emit PaymentReceived(ref, msg.sender, token, after_ - before);
        }
    }
}
