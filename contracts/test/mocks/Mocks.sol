// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PaymentRouter} from "../../src/PaymentRouter.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @dev ERC-20 whose transferFrom returns false instead of reverting.
contract FalseReturningToken is ERC20 {
    constructor() ERC20("False", "FALSE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }
}

/// @dev ERC-20 whose transferFrom returns nothing at all (as USDT on mainnet).
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transferFrom(address from, address to, uint256 amount) external {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
    }
}

/// @dev ERC-20 that calls back into the router during transferFrom and records
/// the error the router answered with.
contract ReentrantToken is ERC20 {
    PaymentRouter public router;
    bytes public reentryError;

    constructor() ERC20("Reentrant", "RE") {}

    function setRouter(PaymentRouter router_) external {
        router = router_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        try router.pay(address(this), 1, keccak256("reentry")) {}
        catch (bytes memory err) {
            reentryError = err;
        }
        return super.transferFrom(from, to, amount);
    }
}

/// @dev A treasury that cannot receive ETH.
contract RejectingTreasury {}

/// @dev A treasury that tries to pay again while receiving ETH and records
/// the error the router answered with.
contract ReentrantTreasury {
    PaymentRouter public router;
    bytes public reentryError;

    function setRouter(PaymentRouter router_) external {
        router = router_;
    }

    receive() external payable {
        if (address(router) == address(0)) return;
        try router.payNative{value: msg.value}(keccak256("reentry")) {}
        catch (bytes memory err) {
            reentryError = err;
        }
    }
}

/// @dev ERC-20 that keeps 1% of every transferFrom as a fee (burnt), as some
/// tokens do or can be switched or upgraded to do.
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        _spendAllowance(from, msg.sender, amount);
        uint256 fee = amount / 100;
        _burn(from, fee);
        _transfer(from, to, amount - fee);
        return true;
    }
}

/// @dev ERC-20 whose transferFrom says it succeeded and moves nothing: the
/// token of a fake payment.
contract LyingToken is ERC20 {
    constructor() ERC20("Lie", "LIE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return true;
    }
}

/// @dev An ERC-20 whose `transfer` moves nothing and returns false.
contract FalseTransferToken is ERC20 {
    constructor() ERC20("False", "FALSE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function transfer(address, uint256) public pure override returns (bool) {
        return false;
    }
}

/// @dev Pays with Solidity's `transfer`, forwarding only the 2,300-gas
/// stipend, as many exchange hot wallets do.
contract StipendSender {
    receive() external payable {}

    function send(address payable to, uint256 amount) external {
        to.transfer(amount);
    }
}
