// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DepositFactory} from "../src/DepositFactory.sol";
import {DepositForwarder} from "../src/DepositForwarder.sol";
import {DevStablecoin} from "../src/DevStablecoin.sol";
import {DepositFactoryHandler} from "./handlers/DepositFactoryHandler.sol";
import {FalseTransferToken, NoReturnToken, StipendSender} from "./mocks/Mocks.sol";
import {GasProbe} from "./utils/GasProbe.sol";
import {TestBase} from "./utils/TestBase.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

contract DepositFactoryTest is TestBase {
    event Swept(address indexed token, uint256 count);

    DepositFactory internal factory;
    DevStablecoin internal usdc;
    address internal treasury = makeAddr("treasury");
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        factory = new DepositFactory(treasury);
        usdc = new DevStablecoin();
    }

    function _salts(bytes32 a) internal pure returns (bytes32[] memory salts) {
        salts = new bytes32[](1);
        salts[0] = a;
    }

    function test_Constructor_RefusesZeroTreasury() public {
        vm.expectRevert(DepositFactory.ZeroAddress.selector);
        new DepositFactory(address(0));
    }

    function test_Predict_IsTheCreate2AddressOfTheForwarder() public view {
        bytes32 salt = keccak256("ref-1");
        bytes32 hash = keccak256(type(DepositForwarder).creationCode);
        assertEq(factory.FORWARDER_CODE_HASH(), hash);
        address expected =
            address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(factory), salt, hash)))));
        assertEq(factory.predict(salt), expected);
        assertTrue(factory.predict(salt) != factory.predict(keccak256("ref-2")));
    }

    function test_Sweep_MovesTheWholeTokenBalanceToTheTreasury() public {
        bytes32 salt = keccak256("ref");
        address deposit = factory.predict(salt);
        usdc.mint(deposit, 7e6);
        usdc.mint(deposit, 3e6);
        vm.expectEmit(true, false, false, true, address(factory));
        emit Swept(address(usdc), 1);
        vm.prank(stranger);
        factory.sweep(_salts(salt), address(usdc));
        assertEq(usdc.balanceOf(deposit), 0);
        assertEq(usdc.balanceOf(treasury), 10e6);
    }

    function test_Sweep_AlsoFlushesNativeCoin() public {
        bytes32 salt = keccak256("ref");
        address deposit = factory.predict(salt);
        usdc.mint(deposit, 1e6);
        vm.deal(deposit, 2 ether);
        factory.sweep(_salts(salt), address(usdc));
        assertEq(deposit.balance, 0);
        assertEq(treasury.balance, 2 ether);
        assertEq(usdc.balanceOf(treasury), 1e6);
    }

    function test_Sweep_EmptyAddressIsHarmless() public {
        factory.sweep(_salts(keccak256("nothing")), address(usdc));
        assertEq(usdc.balanceOf(treasury), 0);
    }

    function test_Sweep_RefusesZeroToken() public {
        vm.expectRevert(DepositFactory.ZeroAddress.selector);
        factory.sweep(_salts(keccak256("ref")), address(0));
    }

    function test_Sweep_DuplicateSaltInOneBatchReverts() public {
        bytes32[] memory salts = new bytes32[](2);
        salts[0] = keccak256("ref");
        salts[1] = keccak256("ref");
        vm.expectRevert(abi.encodeWithSelector(DepositFactory.DeployFailed.selector, salts[0]));
        factory.sweep(salts, address(usdc));
    }

    function test_Sweep_TokenReturningFalseReverts() public {
        FalseTransferToken bad = new FalseTransferToken();
        bytes32 salt = keccak256("ref");
        bad.mint(factory.predict(salt), 5);
        vm.expectRevert();
        factory.sweep(_salts(salt), address(bad));
    }

    function test_Sweep_TokenReturningNothingWorks() public {
        NoReturnToken odd = new NoReturnToken();
        bytes32 salt = keccak256("ref");
        odd.mint(factory.predict(salt), 5);
        factory.sweep(_salts(salt), address(odd));
        assertEq(odd.balanceOf(treasury), 5);
    }

    function test_SweepNative_MovesCoinOnly() public {
        bytes32 salt = keccak256("ref");
        address deposit = factory.predict(salt);
        vm.deal(deposit, 1 ether);
        usdc.mint(deposit, 1e6);
        vm.expectEmit(true, false, false, true, address(factory));
        emit Swept(address(0), 1);
        factory.sweepNative(_salts(salt));
        assertEq(treasury.balance, 1 ether);
        assertEq(usdc.balanceOf(deposit), 1e6);
    }

    function test_SweepTarget_RefusesOutsideASweep() public {
        vm.expectRevert(DepositFactory.NotSweeping.selector);
        factory.sweepTarget();
    }

    function test_Forwarder_CannotBeCreatedOutsideTheFactory() public {
        vm.expectRevert();
        new DepositForwarder();
    }

    /// EIP-6780: each sweep runs in a transaction of its own (isolate), as on
    /// a real chain; the forwarder created and destroyed by the first leaves
    /// an empty account, which a second sweep creates and flushes again.
    /// Native coin is proven the same way by the invariant test below (each
    /// handler call is a transaction): forge's isolate mode loses the coin a
    /// SELFDESTRUCT sends in a re-created account, which anvil does not
    /// (tests/it/deposits.rs sweeps an address twice on anvil).
    /// forge-config: default.isolate = true
    function test_Sweep_AgainAfterMoreMoneyArrives() public {
        bytes32 salt = keccak256("ref");
        address deposit = factory.predict(salt);
        usdc.mint(deposit, 4e6);
        factory.sweep(_salts(salt), address(usdc));
        assertEq(deposit.code.length, 0, "no code is left behind");
        assertEq(usdc.balanceOf(treasury), 4e6);
        usdc.mint(deposit, 6e6);
        factory.sweep(_salts(salt), address(usdc));
        assertEq(usdc.balanceOf(treasury), 10e6);
        assertEq(usdc.balanceOf(deposit), 0);
        assertEq(deposit.code.length, 0);
    }

    /// A contract paying with Solidity's `transfer` (2,300 gas) reaches a
    /// deposit address before and after a sweep: there is never code there.
    /// forge-config: default.isolate = true
    function test_Deposit_AcceptsStipendTransfersAfterASweep() public {
        bytes32 salt = keccak256("ref");
        address deposit = factory.predict(salt);
        StipendSender exchange = new StipendSender();
        vm.deal(address(exchange), 2 ether);
        exchange.send(payable(deposit), 1 ether);
        factory.sweepNative(_salts(salt));
        assertEq(treasury.balance, 1 ether);
        exchange.send(payable(deposit), 1 ether);
        assertEq(deposit.balance, 1 ether);
        assertEq(deposit.code.length, 0);
    }

    function testFuzz_Sweep_EverythingReachesTheTreasury(bytes32 seed, uint8 count, uint96 amount) public {
        uint256 n = bound(count, 1, 20);
        bytes32[] memory salts = new bytes32[](n);
        uint256 total;
        for (uint256 i; i < n; ++i) {
            salts[i] = keccak256(abi.encode(seed, i));
            uint256 each = uint256(amount) / (i + 1);
            usdc.mint(factory.predict(salts[i]), each);
            vm.deal(factory.predict(salts[i]), each);
            total += each;
        }
        vm.prank(stranger);
        factory.sweep(salts, address(usdc));
        assertEq(usdc.balanceOf(treasury), total);
        assertEq(treasury.balance, total);
        for (uint256 i; i < n; ++i) {
            assertEq(usdc.balanceOf(factory.predict(salts[i])), 0);
        }
    }

    function testFuzz_Predict_DependsOnFactoryAndSalt(bytes32 a, bytes32 b) public {
        vm.assume(a != b);
        DepositFactory other = new DepositFactory(treasury);
        assertTrue(factory.predict(a) != factory.predict(b));
        assertTrue(factory.predict(a) != other.predict(a));
    }
}

/// @dev Sweep gas per ERC-20 deposit, execution gas as the factory sees it
/// (GasProbe), before the refund of the cleared balance slots. The issue's
/// bound is 50,000 per deposit at batch 50.
contract DepositFactoryGasTest is TestBase {
    DepositFactory internal factory;
    DevStablecoin internal usdc;
    GasProbe internal probe;
    address internal treasury = makeAddr("treasury");

    function setUp() public {
        probe = new GasProbe();
        factory = new DepositFactory(treasury);
        usdc = new DevStablecoin();
        usdc.mint(treasury, 1);
    }

    function _measure(uint256 n, bool native) internal returns (uint256 perDeposit) {
        bytes32[] memory salts = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            salts[i] = keccak256(abi.encode("gas", i));
            if (native) vm.deal(factory.predict(salts[i]), 1 ether);
            else usdc.mint(factory.predict(salts[i]), 25e6);
        }
        bytes memory call = native
            ? abi.encodeCall(factory.sweepNative, (salts))
            : abi.encodeCall(factory.sweep, (salts, address(usdc)));
        uint256 used = probe.measure(address(factory), call);
        perDeposit = used / n;
        emit log_named_uint(
            native ? "sweepNative: execution gas per deposit" : "sweep: execution gas per deposit", perDeposit
        );
    }

    function test_Gas_SweepBatch1() public {
        _measure(1, false);
    }

    function test_Gas_SweepBatch10() public {
        _measure(10, false);
    }

    function test_Gas_SweepBatch50() public {
        assertLe(_measure(50, false), 50_000);
    }

    function test_Gas_SweepNativeBatch50() public {
        assertLe(_measure(50, true), 50_000);
    }
}

/// @dev Payers send tokens and coin to random deposit addresses, a few at
/// a time, and anyone sweeps random subsets; each handler call is its own
/// transaction, so addresses are swept again and again.
contract DepositFactoryInvariantTest is TestBase {
    DepositFactoryHandler internal handler;

    function setUp() public {
        handler = new DepositFactoryHandler();
        targetContract(address(handler));
    }

    /// Every unit paid in is either still at its deposit address or at the treasury.
    function invariant_NothingIsLostOrMisdirected() public view {
        (uint256 tokenIn, uint256 coinIn) = handler.paidIn();
        assertEq(handler.tokenAtDeposits() + handler.tokenAtTreasury(), tokenIn);
        assertEq(handler.coinAtDeposits() + handler.coinAtTreasury(), coinIn);
    }

    /// No code ever stays at a deposit address.
    function invariant_NoForwarderSurvives() public view {
        assertEq(handler.codeAtDeposits(), 0);
    }
}
