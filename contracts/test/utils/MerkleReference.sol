// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Straightforward, recursive RFC 6962 / RFC 9162 Merkle tree for tests:
/// MTH (section 2.1.1) and the inclusion proof PATH (section 2.1.3.1), written
/// from the RFC's definitions with no attempt at efficiency, so that the
/// contract's iterative verifier is checked against an independent version.
/// Inputs are leaf hashes, i.e. SHA-256(0x00 || entry).
library MerkleReference {
    /// @dev SHA-256(0x00 || entry).
    function hashLeaf(bytes memory entry) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), entry));
    }

    /// @dev SHA-256(0x01 || left || right).
    function hashChildren(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// @dev MTH(D[n]) of the whole list.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        return _mth(leaves, 0, leaves.length);
    }

    /// @dev MTH of leaves[start:end]: for an aligned power-of-two range, an interior node of the tree.
    function rangeRoot(bytes32[] memory leaves, uint256 start, uint256 end) internal pure returns (bytes32) {
        return _mth(leaves, start, end);
    }

    /// @dev PATH(m, D[n]): the inclusion proof of leaf `m` in the whole list.
    function path(bytes32[] memory leaves, uint256 m) internal pure returns (bytes32[] memory) {
        require(m < leaves.length, "MerkleReference: index out of range");
        return _path(leaves, m, 0, leaves.length);
    }

    /// @dev Largest power of two strictly smaller than `n` (n > 1).
    function split(uint256 n) internal pure returns (uint256 k) {
        k = 1;
        while (k << 1 < n) k <<= 1;
    }

    /// @dev MTH of leaves[start:end].
    function _mth(bytes32[] memory leaves, uint256 start, uint256 end) private pure returns (bytes32) {
        uint256 n = end - start;
        if (n == 0) return sha256("");
        if (n == 1) return leaves[start];
        uint256 k = split(n);
        return hashChildren(_mth(leaves, start, start + k), _mth(leaves, start + k, end));
    }

    /// @dev PATH(m, leaves[start:end]).
    function _path(bytes32[] memory leaves, uint256 m, uint256 start, uint256 end)
        private
        pure
        returns (bytes32[] memory)
    {
        uint256 n = end - start;
        if (n <= 1) return new bytes32[](0);
        uint256 k = split(n);
        bytes32[] memory sub;
        bytes32 sibling;
        if (m < k) {
            sub = _path(leaves, m, start, start + k);
            sibling = _mth(leaves, start + k, end);
        } else {
            sub = _path(leaves, m - k, start + k, end);
            sibling = _mth(leaves, start, start + k);
        }
        bytes32[] memory out = new bytes32[](sub.length + 1);
        for (uint256 i = 0; i < sub.length; ++i) {
            out[i] = sub[i];
        }
        out[sub.length] = sibling;
        return out;
    }
}
