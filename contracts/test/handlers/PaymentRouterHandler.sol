// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevStablecoin} from "../../src/DevStablecoin.sol";
import {PaymentRouter} from "../../src/PaymentRouter.sol";
import {Cheats} from "../utils/TestBase.sol";

/// @dev Drives the router with random payments from a few payers, and with
/// direct ETH sends that must bounce. Keeps the totals the treasury must have
/// received. Owns the token so it can mint what each payment needs.
contract PaymentRouterHandler is Cheats {
    PaymentRouter public immutable router;
    DevStablecoin public immutable usdc;

    uint256 public ghostTokenPaid;
    uint256 public ghostEthPaid;

    uint256[] private _payerKeys;

    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    constructor(PaymentRouter router_, DevStablecoin usdc_) {
        router = router_;
        usdc = usdc_;
        for (uint256 i = 1; i <= 4; ++i) {
            _payerKeys.push(uint256(keccak256(abi.encode("payer", i))) % (SECP256K1_ORDER - 1) + 1);
        }
    }

    function pay(uint256 payerSeed, uint256 amount, bytes32 ref) external {
        address payer = _payer(payerSeed);
        amount = bound(amount, 1, 1e15);
        usdc.mint(payer, amount);
        vm.startPrank(payer);
        usdc.approve(address(router), amount);
        router.pay(address(usdc), amount, ref);
        vm.stopPrank();
        ghostTokenPaid += amount;
    }

    function payWithPermit(uint256 payerSeed, uint256 amount, bytes32 ref) external {
        uint256 key = _payerKeys[payerSeed % _payerKeys.length];
        address payer = vm.addr(key);
        amount = bound(amount, 1, 1e15);
        usdc.mint(payer, amount);
        uint256 deadline = block.timestamp + 1;
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, payer, address(router), amount, usdc.nonces(payer), deadline));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash)));
        vm.prank(payer);
        router.payWithPermit(address(usdc), amount, ref, deadline, v, r, s);
        ghostTokenPaid += amount;
    }

    function payNative(uint256 payerSeed, uint256 amount, bytes32 ref) external {
        address payer = _payer(payerSeed);
        amount = bound(amount, 1, 1e24);
        vm.deal(payer, amount);
        vm.prank(payer);
        router.payNative{value: amount}(ref);
        ghostEthPaid += amount;
    }

    function sendEthDirectly(uint256 payerSeed, uint256 amount, bytes calldata data) external {
        address payer = _payer(payerSeed);
        amount = bound(amount, 1, 1e24);
        vm.deal(payer, amount);
        vm.prank(payer);
        (bool ok,) = address(router).call{value: amount}(data);
        // A direct send must bounce unless it happens to be a valid payNative call.
        if (ok) {
            require(data.length >= 4 && bytes4(data[:4]) == PaymentRouter.payNative.selector, "router kept ETH");
            ghostEthPaid += amount;
        }
    }

    function _payer(uint256 seed) private view returns (address) {
        return vm.addr(_payerKeys[seed % _payerKeys.length]);
    }
}
