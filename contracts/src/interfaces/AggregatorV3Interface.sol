// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title AggregatorV3Interface
/// @notice The read interface of a Chainlink price feed, declared here so the
/// contracts need no Chainlink package. Any consumer written against
/// Chainlink's interface can read {DevPriceFeed} unchanged.
interface AggregatorV3Interface {
    /// @notice Number of decimals in every answer (an answer of 1e8 is 1.0 at 8 decimals).
    function decimals() external view returns (uint8);

    /// @notice Human-readable pair, e.g. "ETH / USD".
    function description() external view returns (string memory);

    /// @notice Version of the aggregator implementation.
    function version() external view returns (uint256);

    /// @notice Data of one past round.
    /// @param _roundId The round to read.
    /// @return roundId The round read.
    /// @return answer The price.
    /// @return startedAt When the round started (seconds since the epoch).
    /// @return updatedAt When the answer was last updated (seconds since the epoch).
    /// @return answeredInRound The round in which the answer was computed.
    function getRoundData(uint80 _roundId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    /// @notice Data of the latest round.
    /// @return roundId The latest round.
    /// @return answer The price.
    /// @return startedAt When the round started (seconds since the epoch).
    /// @return updatedAt When the answer was last updated (seconds since the epoch).
    /// @return answeredInRound The round in which the answer was computed.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
