// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Measures the execution gas of one call as the called contract sees
/// it: the gas figure of the issue's budgets, without the 21k transaction base
/// and calldata cost. Because the measured call is nested, the figure is the
/// same with and without `--gas-report` (which runs each top-level call of a
/// test as a transaction of its own, intrinsic cost included).
/// @dev The probe is the caller (`msg.sender`) of what it runs: give it the
/// roles, tokens and approvals it needs with {run} in setUp, then measure in
/// the test, when storage is cold and unmodified as at the start of a real
/// transaction.
contract GasProbe {
    /// Runs `data` on `target`, bubbling up a revert.
    function run(address target, bytes calldata data) public returns (bytes memory result) {
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    /// Runs `data` on `target` and returns the gas the call used, with the
    /// target's account warm as the `to` of a transaction is. Reverts if the call does.
    function measure(address target, bytes calldata data) external returns (uint256 used) {
        require(target.code.length > 0, "GasProbe: no code"); // also warms the account
        uint256 before = gasleft();
        (bool ok, bytes memory result) = target.call(data);
        used = before - gasleft();
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }
}
