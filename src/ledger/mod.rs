//! The double-entry ledger, kept balanced by PostgreSQL itself.
//!
//! Every movement of money is a journal entry: two or more postings, each
//! an integer amount of one asset on one account, positive for a debit and
//! negative for a credit, summing to zero per asset. Entries are immutable
//! and idempotent: each carries the caller's key (`pay_…:capture`), posting
//! the same key again returns the first entry, and the same key with other
//! content is [`LedgerError::KeyConflict`] (a SHA-256 of the content is
//! stored next to the key). Corrections are new entries, never edits.
//!
//! # Calling it
//!
//! Every function takes the caller's `&mut PgConnection`, normally
//! `&mut *tx` of the caller's own transaction: a payment's new state, its
//! postings and its outbox event commit together or not at all. The ledger
//! never begins or commits a transaction (except [`check`], which reads a
//! snapshot of its own). Use READ COMMITTED (PostgreSQL's default). Any
//! error leaves the caller's transaction aborted: roll it back; retry the
//! whole transaction on [`LedgerError::is_retryable`].
//!
//! ```ignore
//! let mut tx = pool.begin().await?;
//! // … the payment's own UPDATE …
//! let fee = ledger::fee_rule(&mut tx, &merchant, "card", &usd).await?.fee_for(amount);
//! let pending = AccountRef::merchant(&merchant, MerchantAccount::Pending);
//! ledger::post(&mut tx, &Entry::new(format!("{payment}:capture"), EntryKind::PAYMENT)
//!     .source(payment.as_str())
//!     .transfer(AccountRef::clearing("card"), pending.clone(), &usd, amount)
//!     .fee(pending, &usd, fee)).await?;
//! // … the outbox event …
//! tx.commit().await?;
//! ```
//!
//! # What the database enforces (migrations/0002_ledger.sql)
//!
//! - `ledger_entries` and `ledger_postings` refuse UPDATE, DELETE and
//!   TRUNCATE; postings may only join an entry written by the same
//!   transaction, so a committed entry never grows.
//! - A deferred constraint trigger checks at commit that each new entry has
//!   at least two postings, that its posted and its pending amounts each sum
//!   to zero per asset, and that its pending postings are exactly the legs
//!   of the hold it opens, or their reversal for the hold it closes.
//! - A statement trigger on `ledger_postings` applies each account's net
//!   change to `ledger_balances` in the same statement, so even a raw INSERT
//!   keeps balances equal to the sum of the postings; balance rows refuse
//!   any other writer.
//! - A posting's asset must be its account's (a composite foreign key), and
//!   accounts reference `assets`, so unknown assets are refused.
//! - Merchant balances (`pending`, `available`, `reserve`) have a floor: a
//!   CHECK on every balance row keeps the credit balance, minus what holds
//!   promise away, at or above zero ([`LedgerError::InsufficientFunds`]).
//!   Gateway accounts have none: they mirror positions outside the node (a
//!   processor owing us, a chain wallet), which the ledger records rather
//!   than controls, so a late chargeback or a deep reorg can always be
//!   booked.
//!
//! [`check`] recomputes all of it from the postings (`epg ledger check`).
//!
//! # Accounts
//!
//! An account is (owner, kind, qualifier, asset) and is created on first
//! use with its kind's rules (`ledger_account_kinds`, [`AccountRef`]): per
//! merchant `pending`, `available`, `reserve` (credit-normal, floor at
//! zero) and `receivable` (debit-normal, no floor: what the merchant owes
//! after refunds or disputes beyond its balance; its kind is added by
//! migrations/0004); for the gateway `fee_revenue[/method]`,
//! `clearing/<method>`, `treasury/<chain id>`, `refunds_payable`,
//! `suspense`, `disputes`, `payouts_in_transit`, `network_fees/<chain id>`.
//! [`AccountBalance::spendable`] is what a credit-normal account can still
//! be debited by.
//!
//! # Hot accounts
//!
//! Every capture credits `fee_revenue` and debits `clearing:card`; every
//! crypto receipt debits one `treasury`. With one balance row per account,
//! each of those transactions would hold that row's lock from its posting to
//! its commit, and the whole node would go as fast as one row can be locked
//! and released. So an account's balance is split over N rows (shards; 32
//! for the hot gateway kinds, 4–8 for merchant balances, 1 for `reserve`).
//! A writer takes, starting at a random shard, the first one that no other
//! transaction holds (`FOR UPDATE SKIP LOCKED`) and can take the change;
//! concurrent writers land on different rows and never wait for each other
//! while fewer writers than shards are in flight. A balance is the sum of
//! its shards, read in one statement (one snapshot).
//!
//! The floor holds shard by shard, hence for the sum. A debit that no
//! single shard can cover, though the sum could, locks every shard in order,
//! gathers the balance into shard 0 and applies there; only if the sum cannot
//! cover it is the debit refused. Credits, the common case, never do that.
//! Accounts without a floor never consolidate. `ledger_reshard(account, n)`
//! changes an account's shard count online.
//!
//! The alternative, an append-only table of deltas folded into the balance
//! later, avoids even the shard lock, but its balance is only right after a
//! fold (or costs a scan of the unfolded deltas on each read), and a floor
//! cannot be enforced by a CHECK on a row, which is the guarantee we want
//! for merchant money. Shards keep balances exact at every commit and the
//! floor a plain constraint. `scripts/bench ledger` measures both cases.
//!
//! # Holds (two-phase transfers)
//!
//! [`open_hold`] reserves an amount between two accounts, like a
//! TigerBeetle pending transfer: the debit account's `pending_debits` and
//! the credit account's `pending_credits` grow, and a floor counts pending
//! debits, so held funds cannot be spent twice. [`post_hold`] posts all or
//! part of it (the rest is released) and may add postings of its own (the
//! fee); [`void_hold`] releases it; [`expire_holds`] releases those past
//! their `expires_at`, claiming them with `FOR UPDATE SKIP LOCKED` so many
//! workers can run it. A hold closes exactly once.
//!
//! # Fees
//!
//! See [`fees`]: basis points plus a fixed amount per merchant, method and
//! asset, rounded half up, posted as their own postings flagged `fee`.

mod account;
mod check;
mod entry;
pub mod fees;
mod hold;
mod read;

use std::fmt;

use crate::money;

pub use account::{AccountRef, GatewayAccount, MerchantAccount};
pub use check::{CheckReport, Problem, check};
pub use entry::{Entry, EntryKind, Posted, Posting, post};
pub use fees::{FeeRule, StoredFeeRule, fee_rule, set_fee_rule};
pub use hold::{
    Hold, HoldStatus, NewHold, expire_holds, get_hold, open_hold, post_hold, void_hold,
};
pub use read::{
    AccountBalance, BalanceTransaction, Listed, MerchantBalance, Page, account_balance,
    balance_transaction, balance_transactions, merchant_balances, transactions_of_sources,
};

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The request is malformed (unbalanced, empty key, zero amount …).
    #[error("invalid ledger request: {0}")]
    Invalid(String),
    /// The key was used for an entry with different content.
    #[error("ledger key {key:?} was already used for a different entry")]
    KeyConflict {
        /// The key.
        key: String,
    },
    /// An account with a floor would go below zero.
    #[error("{0}")]
    InsufficientFunds(String),
    /// The asset is not registered.
    #[error("{0}")]
    UnknownAsset(String),
    /// The merchant does not exist.
    #[error("unknown merchant")]
    UnknownMerchant,
    /// No hold has this key.
    #[error("no hold with key {0:?}")]
    HoldNotFound(String),
    /// The hold was already posted, voided or expired.
    #[error("hold {key:?} is {status}, not pending")]
    HoldNotPending {
        /// The hold's key.
        key: String,
        /// Its status.
        status: HoldStatus,
    },
    /// More than the hold holds.
    #[error("cannot post {requested} of hold {key:?}: it holds {held}")]
    HoldExceeded {
        /// The hold's key.
        key: String,
        /// What it holds.
        held: money::Amount,
        /// What was asked.
        requested: money::Amount,
    },
    /// No balance transaction with this id for this merchant.
    #[error("no such balance transaction: {0}")]
    UnknownTransaction(String),
    /// The database refused a change that would break an invariant.
    #[error("refused by the ledger: {0}")]
    Refused(String),
    /// A serialization failure or deadlock: retry the whole transaction.
    #[error("transaction conflict, retry: {0}")]
    Retryable(#[source] sqlx::Error),
    /// The database failed.
    #[error(transparent)]
    Database(sqlx::Error),
}

impl LedgerError {
    /// Whether retrying the caller's whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerError::Retryable(_))
    }
}

impl From<sqlx::Error> for LedgerError {
    /// Sorts the ledger's own SQLSTATEs (migrations/0002_ledger.sql) from
    /// other failures.
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_conflict(&e) {
            return LedgerError::Retryable(e);
        }
        let (code, constraint, message) = match &e {
            sqlx::Error::Database(db) => (
                db.code().map(|c| c.into_owned()),
                db.constraint().map(str::to_owned),
                db.message().to_owned(),
            ),
            _ => return LedgerError::Database(e),
        };
        match (code.as_deref(), constraint.as_deref()) {
            (Some("EL003"), _) => LedgerError::InsufficientFunds(message),
            (Some("EL004"), _) => LedgerError::UnknownAsset(message),
            (Some("EL001" | "EL002"), _) => LedgerError::Refused(message),
            (Some("23503"), Some("ledger_accounts_merchant_id_fkey")) => {
                LedgerError::UnknownMerchant
            }
            _ => LedgerError::Database(e),
        }
    }
}

impl From<money::MoneyError> for LedgerError {
    fn from(e: money::MoneyError) -> Self {
        match e {
            money::MoneyError::Database(e) => e.into(),
            other => LedgerError::Invalid(other.to_string()),
        }
    }
}

/// A balance transaction's id (`txn_…`), the public name of a journal
/// entry.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TxnId(String);

impl TxnId {
    /// The type prefix, without the underscore.
    pub const PREFIX: &'static str = "txn";

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(format!("txn_{}", crate::ids::random_base62(24)))
    }

    /// Parses an id received from outside.
    pub fn parse(s: &str) -> Result<Self, crate::ids::InvalidId> {
        let ok = s.strip_prefix("txn_").is_some_and(|random| {
            random.len() == 24 && random.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(crate::ids::InvalidId { prefix: "txn" })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
