// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DevStablecoin
/// @notice A USDC look-alike for development and tests: 6 decimals, EIP-2612
/// permit, and free minting by the owner. Not for production use.
contract DevStablecoin is ERC20, ERC20Permit, Ownable {
    /// @notice Deploys the token; the deployer becomes the owner.
    constructor() ERC20("Dev USD Coin", "USDC") ERC20Permit("Dev USD Coin") Ownable(msg.sender) {}

    /// @notice Token decimals, as USDC.
    /// @return Always 6.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Creates `amount` tokens for `to`. Only the owner may call it.
    /// @param to Recipient.
    /// @param amount Amount in the smallest unit (1e6 is one dollar).
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
