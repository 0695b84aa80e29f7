// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DepositForwarder} from "./DepositForwarder.sol";
import {IDepositSweepTarget} from "./interfaces/IDepositSweepTarget.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title DepositFactory
/// @notice Per-payment deposit addresses for payers who can only `transfer` a
/// token or send coin to an address (exchange withdrawals, hardware wallets,
/// QR codes). Each address is the counterfactual CREATE2 address of a
/// {DepositForwarder} for a salt (E-PG uses the payment reference): nothing is
/// deployed when money arrives. {sweep} and {sweepNative} move whatever the
/// addresses hold to the {treasury}, fixed at deployment.
/// @dev Create, flush, destroy. A sweep deploys the forwarder of each salt with
/// CREATE2; its constructor asks this factory what to sweep ({sweepTarget}),
/// transfers its whole balance of that token to the treasury and then
/// self-destructs to the treasury, which also sends any native coin. Since
/// EIP-6780 a SELFDESTRUCT deletes the account only when it runs in the
/// transaction that created it, which is exactly the case here: after every
/// sweep the address is again an empty account without code or nonce, so
/// more money may arrive and the next sweep deploys there again. No runtime
/// code is ever stored, so a sweep pays no code deposit (200 gas a byte), and
/// no one can call a forwarder between sweeps: there is nothing to call, and
/// plain transfers of coin to the address (even with a 2,300-gas stipend)
/// always succeed.
///
/// The forwarder can send only to this factory's treasury: its code has no
/// other destination, its constructor runs only inside {sweep} or
/// {sweepNative} (CREATE2 from this factory), and the factory names the
/// treasury. Anyone may sweep: the money can only reach the treasury, so a
/// stranger's sweep merely pays the gas for it. Changing the treasury means
/// deploying a new factory (and thus new deposit addresses); payments already
/// quoted keep the old ones, which remain sweepable.
contract DepositFactory is IDepositSweepTarget, ReentrancyGuardTransient {
    /// @notice Where every sweep sends the money. Never zero.
    address public immutable treasury;

    /// @notice keccak256 of the forwarder's creation code, the CREATE2 init code hash.
    bytes32 public immutable FORWARDER_CODE_HASH;

    /// @dev The token of the sweep in progress (zero: native coin only), read
    /// by each forwarder's constructor through {sweepTarget}.
    address private transient _sweepToken;

    /// @dev Whether a sweep is in progress (a zero token is a native sweep).
    bool private transient _sweeping;

    /// @notice `count` deposit addresses were swept of `token` (zero: native coin).
    event Swept(address indexed token, uint256 count);

    /// @notice A zero address was given for the treasury.
    error ZeroAddress();

    /// @notice {sweepTarget} was called outside a sweep.
    error NotSweeping();

    /// @notice The forwarder of `salt` could not be created (its address holds
    /// code or has a nonce, which only a forwarder that failed to self-destruct could cause).
    error DeployFailed(bytes32 salt);

    /// @param treasury_ Address every sweep pays to.
    constructor(address treasury_) {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        FORWARDER_CODE_HASH = keccak256(type(DepositForwarder).creationCode);
    }

    /// @notice The deposit address of `salt`.
    /// @param salt The CREATE2 salt (E-PG: the payment reference).
    /// @return The address, whether or not anything was ever deployed there.
    function predict(bytes32 salt) external view returns (address) {
        return
            address(
                uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, FORWARDER_CODE_HASH))))
            );
    }

    /// @notice Moves the whole balance of `token` (and any native coin) held by
    /// the deposit address of each salt to the treasury.
    /// @param salts Salts of the deposit addresses.
    /// @param token The ERC-20 token to sweep; never zero (use {sweepNative}).
    function sweep(bytes32[] calldata salts, address token) external nonReentrant {
        if (token == address(0)) revert ZeroAddress();
        _sweepToken = token;
        _run(salts);
        emit Swept(token, salts.length);
    }

    /// @notice Moves the native coin held by the deposit address of each salt to the treasury.
    /// @param salts Salts of the deposit addresses.
    function sweepNative(bytes32[] calldata salts) external nonReentrant {
        _run(salts);
        emit Swept(address(0), salts.length);
    }

    /// @inheritdoc IDepositSweepTarget
    function sweepTarget() external view returns (address token, address to) {
        if (!_sweeping) revert NotSweeping();
        return (_sweepToken, treasury);
    }

    /// @dev Deploys (and thereby flushes and destroys) the forwarder of each
    /// salt. The creation code is copied to memory once for the whole batch.
    function _run(bytes32[] calldata salts) private {
        _sweeping = true;
        bytes memory code = type(DepositForwarder).creationCode;
        uint256 n = salts.length;
        for (uint256 i; i < n; ++i) {
            bytes32 salt = salts[i];
            address made;
            assembly ("memory-safe") {
                made := create2(0, add(code, 0x20), mload(code), salt)
            }
            if (made == address(0)) revert DeployFailed(salt);
        }
        _sweeping = false;
    }
}
