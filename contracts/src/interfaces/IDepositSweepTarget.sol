// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDepositSweepTarget
/// @notice What a {DepositForwarder} asks the factory creating it.
interface IDepositSweepTarget {
    /// @notice What the forwarder being created sweeps, and where to.
    /// @dev Called by each forwarder's constructor; outside a sweep it reverts.
    /// @return token The token to sweep, zero for native coin only.
    /// @return to The treasury.
    function sweepTarget() external view returns (address token, address to);
}
