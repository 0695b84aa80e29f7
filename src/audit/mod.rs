//! The auditor's tools, `epg audit`: check the node's claims against the
//! chain alone.
//!
//! * [`verify`]: one proof bundle — its leaf hashes into the anchored root,
//!   and that root is what `SettlementAnchor` holds, in a block with enough
//!   confirmations.
//! * [`follow`]: the whole history — every anchored checkpoint extends the
//!   previous one, proven by the node's consistency proofs checked against
//!   the on-chain roots; a rewritten, truncated or forked log shows up.
//!
//! Nothing here reads the node's database or trusts the node: the only
//! inputs are the bundle (or the node's public HTTP answers) and an RPC
//! endpoint of the chain.

pub mod follow;
pub mod verify;

use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not hold.
    Fail,
    /// Not run, because a check it depends on failed.
    Skipped,
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short stable name (`inclusion`, `checkpoint on chain`, …).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
}

impl Check {
    /// A check that holds.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
        }
    }

    /// A check that fails.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
        }
    }

    /// A check not run.
    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Skipped,
            detail: detail.into(),
        }
    }

    /// Pass or fail on `ok`.
    pub fn from_result(name: impl Into<String>, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self::pass(name, detail),
            Err(detail) => Self::fail(name, detail),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Skipped => "–",
        };
        write!(f, "{mark} {}: {}", self.name, self.detail)
    }
}

/// Checks and their verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check ran and passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.status == Status::Pass)
    }

    /// Names of the checks that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The check of this name, if it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// `0x`-prefixed hex, shortened for people (`0x1234abcd…9f00`).
pub fn short(hex: &str) -> String {
    if hex.len() <= 18 {
        return hex.to_owned();
    }
    let head = hex.get(..10).unwrap_or(hex);
    let tail = hex.get(hex.len() - 4..).unwrap_or_default();
    format!("{head}…{tail}")
}
