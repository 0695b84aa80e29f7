// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DevPriceFeed} from "../src/DevPriceFeed.sol";
import {AggregatorV3Interface} from "../src/interfaces/AggregatorV3Interface.sol";
import {TestBase} from "./utils/TestBase.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract DevPriceFeedTest is TestBase {
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    DevPriceFeed internal feed;
    address internal owner = makeAddr("owner");
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.prank(owner);
        feed = new DevPriceFeed(3000e8, 8);
    }

    function _assertRound(
        uint80 id,
        int256 answer,
        uint256 updatedAt,
        uint80 gotId,
        int256 gotAnswer,
        uint256 gotStartedAt,
        uint256 gotUpdatedAt,
        uint80 gotAnsweredIn
    ) internal pure {
        assertEq(gotId, id);
        assertEq(gotAnswer, answer);
        assertEq(gotStartedAt, updatedAt);
        assertEq(gotUpdatedAt, updatedAt);
        assertEq(gotAnsweredIn, id);
    }

    function test_DecimalsAreThoseOfTheDeployment() public {
        DevPriceFeed precise = new DevPriceFeed(3000e18, 18);
        assertEq(precise.decimals(), 18);
        (, int256 answer,,,) = precise.latestRoundData();
        assertEq(answer, 3000e18);
    }

    function test_Metadata() public view {
        AggregatorV3Interface agg = feed;
        assertEq(agg.decimals(), 8);
        assertEq(agg.description(), "ETH / USD");
        assertEq(agg.version(), 1);
        assertEq(feed.owner(), owner);
    }

    function test_Constructor_OpensRoundOne() public view {
        (uint80 id, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) = feed.latestRoundData();
        _assertRound(1, 3000e8, 1_700_000_000, id, answer, startedAt, updatedAt, answeredIn);
    }

    function test_Constructor_EmitsAnswerUpdated() public {
        vm.expectEmit(true, true, true, true);
        emit AnswerUpdated(42, 1, block.timestamp);
        new DevPriceFeed(42, 8);
    }

    function test_SetAnswer_OpensNewRoundNow() public {
        vm.warp(1_700_000_600);
        vm.expectEmit(true, true, true, true, address(feed));
        emit AnswerUpdated(3100e8, 2, 1_700_000_600);
        vm.prank(owner);
        feed.setAnswer(3100e8);

        (uint80 id, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) = feed.latestRoundData();
        _assertRound(2, 3100e8, 1_700_000_600, id, answer, startedAt, updatedAt, answeredIn);
    }

    function test_SetAnswerWithTimestamp_UsesGivenTime() public {
        vm.expectEmit(true, true, true, true, address(feed));
        emit AnswerUpdated(-1, 2, 1234);
        vm.prank(owner);
        feed.setAnswerWithTimestamp(-1, 1234);

        (uint80 id, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) = feed.latestRoundData();
        _assertRound(2, -1, 1234, id, answer, startedAt, updatedAt, answeredIn);
    }

    function test_GetRoundData_ReturnsPastRounds() public {
        vm.startPrank(owner);
        feed.setAnswerWithTimestamp(2900e8, 1_700_000_100);
        feed.setAnswerWithTimestamp(2950e8, 1_700_000_200);
        vm.stopPrank();

        (uint80 id, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) = feed.getRoundData(1);
        _assertRound(1, 3000e8, 1_700_000_000, id, answer, startedAt, updatedAt, answeredIn);
        (id, answer, startedAt, updatedAt, answeredIn) = feed.getRoundData(2);
        _assertRound(2, 2900e8, 1_700_000_100, id, answer, startedAt, updatedAt, answeredIn);
        (id, answer, startedAt, updatedAt, answeredIn) = feed.getRoundData(3);
        _assertRound(3, 2950e8, 1_700_000_200, id, answer, startedAt, updatedAt, answeredIn);
    }

    function test_RevertWhen_GetRoundDataZero() public {
        vm.expectRevert(abi.encodeWithSelector(DevPriceFeed.RoundNotFound.selector, 0));
        feed.getRoundData(0);
    }

    function test_RevertWhen_GetRoundDataFuture() public {
        vm.expectRevert(abi.encodeWithSelector(DevPriceFeed.RoundNotFound.selector, 2));
        feed.getRoundData(2);
    }

    function test_RevertWhen_SetAnswerByNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        feed.setAnswer(1);
    }

    function test_RevertWhen_SetAnswerWithTimestampByNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        feed.setAnswerWithTimestamp(1, 1);
    }

    function testFuzz_SetAnswerWithTimestamp(int256[5] memory answers, uint256[5] memory times) public {
        vm.startPrank(owner);
        for (uint256 i = 0; i < 5; ++i) {
            feed.setAnswerWithTimestamp(answers[i], times[i]);
        }
        vm.stopPrank();
        // Round 1 is the constructor's; the five set above are rounds 2 to 6.
        for (uint80 round = 2; round <= 6; ++round) {
            uint256 i = round - 2;
            (uint80 id, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredIn) =
                feed.getRoundData(round);
            _assertRound(round, answers[i], times[i], id, answer, startedAt, updatedAt, answeredIn);
        }
        (uint80 latestId,,,,) = feed.latestRoundData();
        assertEq(latestId, 6);
    }
}
