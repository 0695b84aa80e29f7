// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDepositSweepTarget} from "./interfaces/IDepositSweepTarget.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title DepositForwarder
/// @notice The contract behind a deposit address: it exists only for the
/// duration of a sweep. Its constructor sends the address's balance of the
/// token being swept, then its native coin, to the factory's treasury.
/// @dev No constructor arguments, so that the creation code, and with it every
/// deposit address, depends only on the factory and the salt.
contract DepositForwarder {
    using SafeERC20 for IERC20;

    /// @notice Flushes this address to the treasury named by the creating factory and self-destructs.
    constructor() {
        (address token, address to) = IDepositSweepTarget(msg.sender).sweepTarget();
        if (token != address(0)) {
            uint256 balance = IERC20(token).balanceOf(address(this));
            if (balance != 0) IERC20(token).safeTransfer(to, balance);
        }
        // EIP-6780: in the creating transaction this deletes the account, so
        // the address can be created (and flushed) again by a later sweep.
        // forge-lint: disable-next-line
        selfdestruct(payable(to));
    }
}
