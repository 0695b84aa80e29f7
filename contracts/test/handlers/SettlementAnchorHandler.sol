// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SettlementAnchor} from "../../src/SettlementAnchor.sol";
import {Cheats, Vm} from "../utils/TestBase.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @dev Deploys the anchor as its admin and drives it: anchors from granted and
/// revoked accounts, with honest and wrong previous roots, zero roots, growth
/// within and beyond the limit, jumps towards the largest tree size; changes the
/// growth limit and the anchorers; supersedes; looks up sizes and sequence
/// numbers that may be absent. Before each call it works out from its model
/// whether the contract must accept or with which error it must refuse, and
/// expects exactly that.
///
/// The model's sizes and roots are the contract's own: what its
/// {SettlementAnchor-CheckpointAnchored} and {SettlementAnchor-CheckpointsSuperseded}
/// logs said, recorded as emitted. The invariants compare them with storage.
contract SettlementAnchorHandler is Cheats {
    SettlementAnchor public immutable anchor;
    uint64 public immutable maxTreeSize;
    bytes32 private immutable _anchorerRole;

    /// Accounts that may hold `ANCHORER_ROLE`; the handler itself is never one.
    address[3] private _accounts;

    /// The growth limit, as last set.
    uint64 public limit;

    /// Lookups made (which also keeps the lookup functions from being `view`,
    /// which the invariant fuzzer would not call).
    uint256 public lookups;

    // Per live sequence number, from the logs.
    uint64[] private _sizes;
    bytes32[] private _roots;
    bytes32[] private _prevRoots;
    /// The growth limit in force when each checkpoint was anchored.
    uint64[] private _limits;

    constructor() {
        anchor = new SettlementAnchor(1 days, address(this), address(0xA1));
        maxTreeSize = anchor.MAX_TREE_SIZE();
        _anchorerRole = anchor.ANCHORER_ROLE();
        limit = anchor.maxGrowth();
        _accounts = [address(0xA1), address(0xA2), address(0xA3)];
    }

    // ------------------------------------------------------------ read by the invariants

    function liveCount() external view returns (uint256) {
        return _roots.length;
    }

    function loggedSize(uint256 seq) external view returns (uint64) {
        return _sizes[seq];
    }

    function loggedRoot(uint256 seq) external view returns (bytes32) {
        return _roots[seq];
    }

    function loggedPrevRoot(uint256 seq) external view returns (bytes32) {
        return _prevRoots[seq];
    }

    function limitAt(uint256 seq) external view returns (uint64) {
        return _limits[seq];
    }

    // ------------------------------------------------------------ anchoring

    /// A checkpoint a little larger than the latest, from one of the accounts,
    /// with the latest root or, now and then, another.
    function anchorNext(uint256 who, uint64 growth, bytes32 root, bytes32 otherPrev, bool honest) external {
        uint64 size = _lastSize() + uint64(bound(growth, 1, uint256(limit) + 10));
        _anchor(_accounts[who % 3], size, root, honest ? _lastRoot() : otherPrev);
    }

    /// A checkpoint anywhere between the latest size and a little above the largest.
    function anchorJump(uint256 who, uint64 size, bytes32 root) external {
        if (_lastSize() >= maxTreeSize) return;
        _anchor(
            _accounts[who % 3], uint64(bound(size, _lastSize() + 1, uint256(maxTreeSize) + 1000)), root, _lastRoot()
        );
    }

    /// Lifts the growth limit and anchors within a thousand leaves of the largest size.
    function anchorNearMax(uint256 who, uint64 below, bytes32 root) external {
        _setLimit(maxTreeSize);
        uint64 size = maxTreeSize - uint64(bound(below, 0, 1000));
        if (size <= _lastSize()) size = _lastSize() + 1;
        _anchor(_accounts[who % 3], size, root, _lastRoot());
    }

    /// A checkpoint that does not grow, or one with a zero root.
    function anchorInvalid(uint256 who, uint64 shrink, bool zeroRoot) external {
        uint64 last = _lastSize();
        uint64 size = zeroRoot ? last + 1 : last - uint64(bound(shrink, 0, last));
        _anchor(_accounts[who % 3], size, zeroRoot ? bytes32(0) : keccak256(abi.encode(shrink)), _lastRoot());
    }

    // ------------------------------------------------------------ administration

    function setMaxGrowth(uint64 newLimit) external {
        if (newLimit == 0 || newLimit > maxTreeSize) {
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.InvalidMaxGrowth.selector, newLimit));
            anchor.setMaxGrowth(newLimit);
            return;
        }
        _setLimit(newLimit);
    }

    function grantAnchorer(uint256 who) external {
        anchor.grantRole(_anchorerRole, _accounts[who % 3]);
    }

    function revokeAnchorer(uint256 who) external {
        anchor.revokeRole(_anchorerRole, _accounts[who % 3]);
    }

    function renounceAnchorer(uint256 who) external {
        address account = _accounts[who % 3];
        vm.prank(account);
        anchor.renounceRole(_anchorerRole, account);
    }

    function supersede(uint256 keep) external {
        uint256 count = _roots.length;
        keep = bound(keep, 0, count + 1);
        if (keep >= count) {
            vm.expectRevert(abi.encodeWithSelector(SettlementAnchor.NothingToSupersede.selector, keep, count));
            anchor.supersede(keep);
            return;
        }
        vm.recordLogs();
        anchor.supersede(keep);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(logs.length == 1 && logs[0].topics[0] == SettlementAnchor.CheckpointsSuperseded.selector, "no log");
        require(uint256(logs[0].topics[1]) == keep, "logged the wrong fromSeq");
        (uint256 previousCount, uint64 size, bytes32 root) = abi.decode(logs[0].data, (uint256, uint64, bytes32));
        require(previousCount == count, "logged the wrong count");
        while (_roots.length > keep) {
            _sizes.pop();
            _roots.pop();
            _prevRoots.pop();
            _limits.pop();
        }
        require(size == _lastSize() && root == _lastRoot(), "logged the wrong latest checkpoint");
    }

    // ------------------------------------------------------------ lookups

    /// A size that may or may not be a checkpoint's: found exactly when it is one.
    function lookupSize(uint64 size, uint256 pick, bool existing) external {
        ++lookups;
        uint256 count = _roots.length;
        if (existing && count > 0) size = _sizes[pick % count];
        (bool known, uint256 seq) = _find(size);
        try anchor.checkpointBySize(size) returns (uint256 found, SettlementAnchor.Checkpoint memory cp) {
            require(known && found == seq && cp.treeSize == size && cp.root == _roots[seq], "found a wrong one");
        } catch (bytes memory err) {
            require(!known, "missed a checkpoint");
            require(
                keccak256(err) == keccak256(abi.encodeWithSelector(SettlementAnchor.UnknownTreeSize.selector, size)),
                "wrong error"
            );
        }
    }

    /// A sequence number at, below or above the count.
    function lookupSeq(uint256 seq) external {
        ++lookups;
        uint256 count = _roots.length;
        seq = bound(seq, 0, count + 3);
        try anchor.checkpoint(seq) returns (SettlementAnchor.Checkpoint memory cp) {
            require(seq < count && cp.treeSize == _sizes[seq] && cp.root == _roots[seq], "wrong checkpoint");
        } catch (bytes memory err) {
            require(seq >= count, "missed a checkpoint");
            require(
                keccak256(err) == keccak256(abi.encodeWithSelector(SettlementAnchor.UnknownCheckpoint.selector, seq)),
                "wrong error"
            );
        }
    }

    // ------------------------------------------------------------ model

    function _lastSize() private view returns (uint64) {
        return _roots.length == 0 ? 0 : _sizes[_roots.length - 1];
    }

    function _lastRoot() private view returns (bytes32) {
        return _roots.length == 0 ? bytes32(0) : _roots[_roots.length - 1];
    }

    function _find(uint64 size) private view returns (bool, uint256) {
        for (uint256 seq = 0; seq < _sizes.length; ++seq) {
            if (_sizes[seq] == size) return (true, seq);
        }
        return (false, 0);
    }

    function _setLimit(uint64 newLimit) private {
        anchor.setMaxGrowth(newLimit);
        limit = newLimit;
    }

    /// The error the contract must answer, or nothing if it must accept.
    function _refusal(address from, uint64 size, bytes32 root, bytes32 prevRoot) private view returns (bytes memory) {
        if (!anchor.hasRole(_anchorerRole, from)) {
            return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, from, _anchorerRole);
        }
        uint64 last = _lastSize();
        if (size <= last) return abi.encodeWithSelector(SettlementAnchor.TreeSizeNotIncreasing.selector, last, size);
        if (size > maxTreeSize) {
            return abi.encodeWithSelector(SettlementAnchor.TreeSizeTooLarge.selector, size, maxTreeSize);
        }
        if (size - last > limit) {
            return abi.encodeWithSelector(SettlementAnchor.GrowthTooLarge.selector, last, size, limit);
        }
        if (root == bytes32(0)) return abi.encodeWithSelector(SettlementAnchor.ZeroRoot.selector);
        if (prevRoot != _lastRoot()) {
            return abi.encodeWithSelector(SettlementAnchor.PrevRootMismatch.selector, _lastRoot(), prevRoot);
        }
        return "";
    }

    function _anchor(address from, uint64 size, bytes32 root, bytes32 prevRoot) private {
        bytes memory refusal = _refusal(from, size, root, prevRoot);
        if (refusal.length != 0) {
            vm.expectRevert(refusal);
            vm.prank(from);
            anchor.anchor(size, root, prevRoot);
            return;
        }
        vm.recordLogs();
        vm.prank(from);
        anchor.anchor(size, root, prevRoot);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        require(logs.length == 1 && logs[0].topics[0] == SettlementAnchor.CheckpointAnchored.selector, "no log");
        require(uint256(logs[0].topics[1]) == _roots.length, "logged the wrong seq");
        (uint64 size_, bytes32 root_, bytes32 prev_) = abi.decode(logs[0].data, (uint64, bytes32, bytes32));
        _sizes.push(size_);
        _roots.push(root_);
        _prevRoots.push(prev_);
        _limits.push(limit);
    }
}
