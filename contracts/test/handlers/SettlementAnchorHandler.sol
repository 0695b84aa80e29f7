// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementAnchor} from "../../src/SettlementAnchor.sol";
import {Cheats} from "../utils/TestBase.sol";

/// @dev Deploys the anchor holding both roles, and drives the anchor with valid checkpoints
/// (random growth, now and then a jump towards the largest tree size, random roots)
/// and with invalid ones that must be refused. Records the size, prevRoot and root
/// of every accepted checkpoint.
contract SettlementAnchorHandler is Cheats {
    SettlementAnchor public immutable anchor;
    uint64 public immutable maxTreeSize;

    uint64 public lastSize;
    bytes32 public lastRoot;
    uint64[] private _sizes;
    bytes32[] private _prevRoots;
    bytes32[] private _roots;

    constructor() {
        anchor = new SettlementAnchor(address(this), address(this));
        maxTreeSize = anchor.MAX_TREE_SIZE();
    }

    function acceptedCount() external view returns (uint256) {
        return _roots.length;
    }

    function sizeOf(uint256 seq) external view returns (uint64) {
        return _sizes[seq];
    }

    function prevRootOf(uint256 seq) external view returns (bytes32) {
        return _prevRoots[seq];
    }

    function rootOf(uint256 seq) external view returns (bytes32) {
        return _roots[seq];
    }

    /// A checkpoint a little larger than the latest; refused once the largest size is reached.
    function anchorNext(uint64 growth, bytes32 root) external {
        _anchorOrRefuse(lastSize + uint64(bound(growth, 1, 1_000_000)), root);
    }

    /// A checkpoint anywhere between the latest size and a little above the largest.
    function anchorJump(uint64 size, bytes32 root) external {
        _anchorOrRefuse(uint64(bound(size, lastSize + 1, maxTreeSize + 1000)), root);
    }

    function anchorNotGrowing(uint64 shrink, bytes32 root) external {
        uint64 size = lastSize - uint64(bound(shrink, 0, lastSize));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, lastSize, size));
        anchor.anchor(size, root, lastRoot);
    }

    function anchorWrongPrevRoot(uint64 growth, bytes32 root, bytes32 prevRoot) external {
        if (lastSize == maxTreeSize) return;
        if (prevRoot == lastRoot) prevRoot = ~prevRoot;
        uint64 size = uint64(bound(growth, lastSize + 1, maxTreeSize));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, lastRoot, prevRoot));
        anchor.anchor(size, root, prevRoot);
    }

    function _anchorOrRefuse(uint64 size, bytes32 root) private {
        if (size > maxTreeSize) {
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, size, maxTreeSize));
            anchor.anchor(size, root, lastRoot);
            return;
        }
        anchor.anchor(size, root, lastRoot);
        _sizes.push(size);
        _prevRoots.push(lastRoot);
        _roots.push(root);
        lastSize = size;
        lastRoot = root;
    }
}
