// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// TEST ONLY, NEVER DEPLOYED. contracts/src/PaymentRouter.sol as of commit 81c9ebd,
// verbatim except for the contract's name (LegacyPaymentRouter), so that
// test/legacy/LegacyScenarios.t.sol can show each harm of issue 16 on the
// contract that was deployed then and its refusal by the current one.

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title PaymentRouter
/// @notice Entry point for on-chain payments to an E-PG merchant. Every payment,
/// in ETH or in an ERC-20 token, moves straight from the payer to the treasury
/// in the same transaction and is announced by exactly one {PaymentReceived}
/// event, which the E-PG node watches and matches to an invoice through `ref`.
/// @dev The router never holds funds: it has no `receive` or `fallback`, so a
/// plain ETH transfer to it reverts, and tokens are pulled from the payer
/// directly to the treasury. Fee-on-transfer or rebasing tokens are not
/// supported: the event reports the amount requested, not the amount the
/// treasury ended up with.
///
/// Roles: `DEFAULT_ADMIN_ROLE` manages roles and proposes a new treasury;
/// `PAUSER_ROLE` pauses and unpauses payments. The constructor grants both to
/// `admin`.
///
/// Treasury change is two-step: the admin proposes, and the proposed address
/// itself accepts. Requiring the new treasury to send a transaction proves
/// that the address is controlled (and, for a contract, that it is the right
/// one) before any payment is routed to it. A new proposal replaces the
/// pending one. Treasury changes stay possible while paused.
contract LegacyPaymentRouter is AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to pause and unpause payments.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice Address that receives every payment. Never zero.
    /// @dev Declared first so it shares a slot with Pausable's flag: a payment
    /// reads both with one cold storage access.
    address public treasury;

    /// @notice Address proposed by the admin as the next treasury, or zero if none.
    address public pendingTreasury;

    /// @notice A payment of `amount` of `token` (zero address for ETH) by `payer`
    /// reached the treasury, for the invoice or order identified by `ref`.
    event PaymentReceived(bytes32 indexed ref, address indexed payer, address indexed token, uint256 amount);

    /// @notice The admin proposed `proposed` as the next treasury.
    event TreasuryProposed(address indexed current, address indexed proposed);

    /// @notice The treasury changed from `previous` to `current`.
    event TreasuryChanged(address indexed previous, address indexed current);

    /// @notice A payment of zero was attempted.
    error ZeroAmount();

    /// @notice A zero address was given where an account is required.
    error ZeroAddress();

    /// @notice `pay` was called with the zero address as token; use `payNative` for ETH.
    error InvalidToken();

    /// @notice The treasury did not accept the forwarded ETH.
    error NativeTransferFailed();

    /// @notice `caller` tried to accept the treasury but is not the pending treasury.
    error NotPendingTreasury(address caller);

    /// @notice The permit failed and the router's allowance (`allowance`) does not cover `amount`.
    error PermitFailed(uint256 allowance, uint256 amount);

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `PAUSER_ROLE`.
    /// @param treasury_ Initial treasury.
    constructor(address admin, address treasury_) {
        if (admin == address(0) || treasury_ == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        treasury = treasury_;
        emit TreasuryChanged(address(0), treasury_);
    }

    /// @notice Pays `amount` of `token` from the caller to the treasury.
    /// @dev The caller must have approved this contract for at least `amount`.
    /// @param token ERC-20 token to pay with.
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
    /// @param token ERC-20 token implementing EIP-2612.
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

    /// @notice Proposes `newTreasury` as the next treasury; it takes effect once
    /// `newTreasury` calls {acceptTreasury}. Replaces any pending proposal.
    /// @param newTreasury Proposed treasury; must not be zero.
    function proposeTreasury(address newTreasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (newTreasury == address(0)) revert ZeroAddress();
        pendingTreasury = newTreasury;
        emit TreasuryProposed(treasury, newTreasury);
    }

    /// @notice Makes the caller the treasury. Only the pending treasury may call it.
    function acceptTreasury() external {
        address pending = pendingTreasury;
        if (pending == address(0) || msg.sender != pending) revert NotPendingTreasury(msg.sender);
        address previous = treasury;
        treasury = pending;
        delete pendingTreasury;
        emit TreasuryChanged(previous, pending);
    }

    /// @notice Stops all payments until {unpause}.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resumes payments.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    function _checkTokenPayment(address token, uint256 amount) private pure {
        if (token == address(0)) revert InvalidToken();
        if (amount == 0) revert ZeroAmount();
    }

    function _payToken(address token, uint256 amount, bytes32 ref) private {
        IERC20(token).safeTransferFrom(msg.sender, treasury, amount);
        emit PaymentReceived(ref, msg.sender, token, amount);
    }
}
