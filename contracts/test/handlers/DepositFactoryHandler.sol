// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DepositFactory} from "../../src/DepositFactory.sol";
import {DevStablecoin} from "../../src/DevStablecoin.sol";
import {StipendSender} from "../mocks/Mocks.sol";
import {Cheats} from "../utils/TestBase.sol";

/// @dev Eight deposit addresses of one factory. Payers mint tokens to them,
/// send coin (from an EOA or, with a 2,300-gas stipend, from a contract), and
/// anyone sweeps a random subset of them, of the token or of coin.
contract DepositFactoryHandler is Cheats {
    uint256 private constant ADDRESSES = 8;

    DepositFactory public immutable factory;
    DevStablecoin public immutable token;
    StipendSender private immutable _exchange;
    address private immutable _treasury = address(0x7EA5);

    uint256 private _tokenIn;
    uint256 private _coinIn;

    constructor() {
        factory = new DepositFactory(_treasury);
        token = new DevStablecoin();
        _exchange = new StipendSender();
    }

    function _salt(uint256 i) private pure returns (bytes32) {
        return keccak256(abi.encode("deposit", i % ADDRESSES));
    }

    function _subset(uint256 mask) private pure returns (bytes32[] memory salts) {
        uint256 n;
        for (uint256 i; i < ADDRESSES; ++i) {
            if ((mask >> i) & 1 == 1) ++n;
        }
        salts = new bytes32[](n);
        uint256 j;
        for (uint256 i; i < ADDRESSES; ++i) {
            if ((mask >> i) & 1 == 1) salts[j++] = _salt(i);
        }
    }

    function payToken(uint256 which, uint256 amount) external {
        amount = bound(amount, 1, 1e15);
        token.mint(factory.predict(_salt(which)), amount);
        _tokenIn += amount;
    }

    function payCoin(uint256 which, uint256 amount, bool fromContract) external {
        amount = bound(amount, 1, 100 ether);
        address deposit = factory.predict(_salt(which));
        if (fromContract) {
            vm.deal(address(_exchange), address(_exchange).balance + amount);
            _exchange.send(payable(deposit), amount);
        } else {
            address payer = address(uint160(0xBEEF));
            vm.deal(payer, amount);
            vm.prank(payer);
            (bool ok,) = deposit.call{value: amount}("");
            require(ok, "plain send refused");
        }
        _coinIn += amount;
    }

    function sweep(uint256 mask, address caller) external {
        vm.prank(caller);
        factory.sweep(_subset(mask), address(token));
    }

    function sweepNative(uint256 mask, address caller) external {
        vm.prank(caller);
        factory.sweepNative(_subset(mask));
    }

    function paidIn() external view returns (uint256, uint256) {
        return (_tokenIn, _coinIn);
    }

    function tokenAtDeposits() external view returns (uint256 sum) {
        for (uint256 i; i < ADDRESSES; ++i) {
            sum += token.balanceOf(factory.predict(_salt(i)));
        }
    }

    function coinAtDeposits() external view returns (uint256 sum) {
        for (uint256 i; i < ADDRESSES; ++i) {
            sum += factory.predict(_salt(i)).balance;
        }
    }

    function codeAtDeposits() external view returns (uint256 sum) {
        for (uint256 i; i < ADDRESSES; ++i) {
            sum += factory.predict(_salt(i)).code.length;
        }
    }

    function tokenAtTreasury() external view returns (uint256) {
        return token.balanceOf(_treasury);
    }

    function coinAtTreasury() external view returns (uint256) {
        return _treasury.balance;
    }
}
