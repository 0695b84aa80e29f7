// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DevPriceFeed
/// @notice An ETH / USD price feed for development and tests that answers like a
/// Chainlink aggregator, with answers set by the owner. Not for production use.
/// @dev Rounds are numbered from 1; each `setAnswer*` call opens a new round
/// with `startedAt == updatedAt` and `answeredInRound == roundId`.
contract DevPriceFeed is AggregatorV3Interface, Ownable {
    /// @dev One round as stored; the round id is the mapping key.
    struct Round {
        /// The price, with {decimals} decimals.
        int256 answer;
        /// When the answer was set (seconds since the epoch).
        uint256 updatedAt;
    }

    /// @dev Decimals of every answer, fixed at deployment (Chainlink's USD feeds use 8, some 18).
    uint8 private immutable _decimals;

    /// @dev Id of the latest round; rounds 1 to `_latestRound` exist.
    uint80 private _latestRound;

    /// @dev Rounds by id.
    mapping(uint80 roundId => Round) private _rounds;

    /// @notice Round `roundId` was set to `current` at `updatedAt` (as Chainlink's AggregatorInterface).
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @notice There is no round `roundId`.
    error RoundNotFound(uint80 roundId);

    /// @notice Deploys the feed with round 1 set to `initialAnswer` now; the deployer becomes the owner.
    /// @param initialAnswer Initial price with `decimals_` decimals (e.g. 3000e8 for 3000 USD with 8).
    /// @param decimals_ Decimals of every answer.
    constructor(int256 initialAnswer, uint8 decimals_) Ownable(msg.sender) {
        _decimals = decimals_;
        _newRound(initialAnswer, block.timestamp);
    }

    /// @inheritdoc AggregatorV3Interface
    function decimals() external view returns (uint8) {
        return _decimals;
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external pure returns (string memory) {
        return "ETH / USD";
    }

    /// @inheritdoc AggregatorV3Interface
    function version() external pure returns (uint256) {
        return 1;
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts with {RoundNotFound} for a round that was never set.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (_roundId == 0 || _roundId > _latestRound) revert RoundNotFound(_roundId);
        return _roundData(_roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _roundData(_latestRound);
    }

    /// @notice Opens a new round with price `answer`, updated now. Only the owner may call it.
    /// @param answer Price with {decimals} decimals.
    function setAnswer(int256 answer) external onlyOwner {
        _newRound(answer, block.timestamp);
    }

    /// @notice Opens a new round with price `answer` and an explicit update time,
    /// e.g. in the past to test staleness checks. Only the owner may call it.
    /// @param answer Price with {decimals} decimals.
    /// @param updatedAt Update time to report (seconds since the epoch).
    function setAnswerWithTimestamp(int256 answer, uint256 updatedAt) external onlyOwner {
        _newRound(answer, updatedAt);
    }

    function _newRound(int256 answer, uint256 updatedAt) private {
        uint80 roundId = _latestRound + 1;
        _latestRound = roundId;
        _rounds[roundId] = Round({answer: answer, updatedAt: updatedAt});
        emit AnswerUpdated(answer, roundId, updatedAt);
    }

    function _roundData(uint80 roundId) private view returns (uint80, int256, uint256, uint256, uint80) {
        Round storage round = _rounds[roundId];
        return (roundId, round.answer, round.updatedAt, round.updatedAt, roundId);
    }
}
