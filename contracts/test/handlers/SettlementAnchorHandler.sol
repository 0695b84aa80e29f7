// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementAnchor} from "../../src/SettlementAnchor.sol";
import {Cheats} from "../utils/TestBase.sol";

/// @dev Deploys the anchor holding both roles, and drives the anchor with valid checkpoints
/// (random growth, random roots, time passing) and with invalid ones that must
/// be refused. Records the prevRoot and root of every accepted checkpoint.
contract SettlementAnchorHandler is Cheats {
    SettlementAnchor public immutable anchor;

    uint64 public lastSize;
    bytes32 public lastRoot;
    bytes32[] private _prevRoots;
    bytes32[] private _roots;

    constructor() {
        anchor = new SettlementAnchor(address(this), address(this));
    }

    function acceptedCount() external view returns (uint256) {
        return _roots.length;
    }

    function prevRootOf(uint256 seq) external view returns (bytes32) {
        return _prevRoots[seq];
    }

    function rootOf(uint256 seq) external view returns (bytes32) {
        return _roots[seq];
    }

    function anchorNext(uint64 growth, bytes32 root, uint32 elapsed) external {
        growth = uint64(bound(growth, 1, 1_000_000));
        vm.warp(block.timestamp + bound(elapsed, 0, 1 days));
        vm.roll(block.number + 1);
        uint64 size = lastSize + growth;
        anchor.anchor(size, root, lastRoot);
        _prevRoots.push(lastRoot);
        _roots.push(root);
        lastSize = size;
        lastRoot = root;
    }

    function anchorNotGrowing(uint64 shrink, bytes32 root) external {
        uint64 size = lastSize - uint64(bound(shrink, 0, lastSize));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, lastSize, size));
        anchor.anchor(size, root, lastRoot);
    }

    function anchorWrongPrevRoot(uint64 growth, bytes32 root, bytes32 prevRoot) external {
        if (prevRoot == lastRoot) prevRoot = ~prevRoot;
        uint64 size = lastSize + uint64(bound(growth, 1, 1_000_000));
        vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, lastRoot, prevRoot));
        anchor.anchor(size, root, prevRoot);
    }
}
