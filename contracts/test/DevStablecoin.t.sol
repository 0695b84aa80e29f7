// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../src/DevStablecoin.sol";
import {PermitSigner} from "./utils/PermitSigner.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

contract DevStablecoinTest is PermitSigner {
    event Transfer(address indexed from, address indexed to, uint256 value);

    DevStablecoin internal token;
    address internal owner = makeAddr("owner");
    address internal alice = makeAddr("alice");
    address internal spender = makeAddr("spender");

    function setUp() public {
        vm.prank(owner);
        token = new DevStablecoin();
    }

    function test_Metadata() public view {
        assertEq(token.name(), "Dev USD Coin");
        assertEq(token.symbol(), "USDC");
        assertEq(token.decimals(), 6);
        assertEq(token.totalSupply(), 0);
        assertEq(token.owner(), owner);
    }

    function test_Mint_ByOwner() public {
        vm.expectEmit(true, true, true, true, address(token));
        emit Transfer(address(0), alice, 5e6);
        vm.prank(owner);
        token.mint(alice, 5e6);
        assertEq(token.balanceOf(alice), 5e6);
        assertEq(token.totalSupply(), 5e6);
    }

    function test_RevertWhen_MintByNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        token.mint(alice, 1);
    }

    function test_RevertWhen_MintToZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        vm.prank(owner);
        token.mint(address(0), 1);
    }

    function test_Permit_SetsAllowance() public {
        uint256 key = 0xA11CE;
        address signer = vm.addr(key);
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, key, spender, 7e6, deadline);
        token.permit(signer, spender, 7e6, deadline, v, r, s);
        assertEq(token.allowance(signer, spender), 7e6);
        assertEq(token.nonces(signer), 1);
    }

    function test_RevertWhen_PermitReplayed() public {
        uint256 key = 0xA11CE;
        address signer = vm.addr(key);
        uint256 deadline = block.timestamp + 1 days;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, key, spender, 7e6, deadline);
        token.permit(signer, spender, 7e6, deadline, v, r, s);
        vm.expectRevert();
        token.permit(signer, spender, 7e6, deadline, v, r, s);
    }

    function test_RevertWhen_PermitExpired() public {
        uint256 key = 0xA11CE;
        address signer = vm.addr(key);
        uint256 deadline = block.timestamp + 1;
        (uint8 v, bytes32 r, bytes32 s) = _signPermit(token, key, spender, 7e6, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        token.permit(signer, spender, 7e6, deadline, v, r, s);
    }

    function testFuzz_Mint(address to, uint256 amount) public {
        vm.assume(to != address(0));
        vm.prank(owner);
        token.mint(to, amount);
        assertEq(token.balanceOf(to), amount);
        assertEq(token.totalSupply(), amount);
    }
}
