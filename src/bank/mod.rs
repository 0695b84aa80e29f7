//! Bank rails: the gateway's own bank accounts, reached through files.
//!
//! A bank connection is files, exchanged by an SFTP or EBICS client:
//!
//! - **statements in** — camt.053 (end of day) and camt.054 (notification)
//!   are imported by `epg bank import` or from the drop folder
//!   (`bank.inbox_dir`, [`watcher`]). Every booked entry is identified by
//!   the bank's own reference (account, booking date, AcctSvcrRef or
//!   NtryRef; UNIQUE in the database), so a file imported twice, or an
//!   entry notified by camt.054 and reported again by camt.053, is booked
//!   once. A file is imported in one transaction: all of it or nothing.
//!   A malformed or unknown file is refused with its line and field
//!   ([`xml::Refusal`]) and moved to `rejected/` with the reason.
//! - **matching** ([`import`]) — a credit is matched to a bank-transfer
//!   payment by the ISO 11649 reference ([`rf`]) in its remittance
//!   information, structured or not, else by amount and currency when
//!   exactly one open payment fits. Every credit is booked from
//!   `bank:<account>` into suspense; [`crate::payments::bank`] then pays
//!   the payment from there (exact or over: `succeeded`, under: held,
//!   late: left). What is not exactly a payment opens a reconciliation
//!   exception ([`exceptions`]): underpaid, overpaid, paid late, an
//!   unmatched credit or debit. A debit with a return reason reverses its
//!   payment.
//! - **payouts out** ([`transfers`]) — a settlement's fiat payouts (and
//!   refunds of bank-transfer payments, and money the desk sends back)
//!   become pain.001.001.09 files per payout account and execution date
//!   ([`pain001`]), each transfer with its EndToEndId. Exported:
//!   `in_transit`; its debit in a statement: `paid`; a pain.002 rejection
//!   or a return: `failed`, with the money back.
//! - **reconciliation** ([`reconcile`]) — each statement's opening and
//!   closing balance against the ledger's `bank:<account>` on those dates.
//!
//! The processor side of the `bank_transfer` method in live mode is
//! [`connector::Iso20022`]: it gives payer instructions (collection
//! account, amount, a unique RF reference).
//!
//! This module knows nothing about HTTP; the API's reconciliation desk
//! (`api::reconciliation`) and the command line (`cli::bank`) call it.

pub mod config;
pub mod connector;
pub mod exceptions;
pub mod import;
pub mod messages;
pub mod pain001;
pub mod reconcile;
pub mod rf;
pub mod sample;
pub mod transfers;
pub mod watcher;
pub mod xml;

pub use config::{BankAccount, BankConfig};
pub use xml::Refusal;

use crate::ledger::LedgerError;
use crate::payments::PaymentError;

/// Errors of the bank subsystem.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The file is malformed, unknown, or not for this gateway.
    #[error("file refused: {0}")]
    Refused(#[from] Refusal),
    /// A request that is not valid, naming the parameter.
    #[error("{message}")]
    Invalid {
        /// Parameter at fault.
        param: String,
        /// Why.
        message: String,
    },
    /// The object's state does not allow the request.
    #[error("{message}")]
    State {
        /// Machine-readable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// No such object.
    #[error("no such {kind}: {id}")]
    NotFound {
        /// What.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The payments subsystem refused or failed.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Bank details could not be sealed or opened (wrong or missing
    /// master key), or a bank file not written.
    #[error("{what}")]
    Sealed {
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BankError {
    /// Shorthand for [`BankError::Invalid`].
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        BankError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`BankError::State`].
    pub fn state(code: &'static str, message: impl Into<String>) -> Self {
        BankError::State {
            code,
            message: message.into(),
        }
    }
}

/// Amount `units` of a currency with `exponent` decimals, as ISO 20022
/// writes it (`1234` at 2 → `12.34`).
pub fn decimal(units: i128, exponent: u8) -> String {
    let negative = units < 0;
    let digits = units.unsigned_abs().to_string();
    let exponent = usize::from(exponent);
    let text = if exponent == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = exponent + 1);
        let (whole, fraction) = padded.split_at(padded.len() - exponent);
        format!("{whole}.{fraction}")
    };
    if negative { format!("-{text}") } else { text }
}

/// The exponent of a lower-case ISO 4217 code (2 when unknown).
pub fn exponent(currency: &str) -> u8 {
    crate::money::Currency::parse(currency).map_or(2, |c| c.exponent())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_exactly() {
        assert_eq!(decimal(1234, 2), "12.34");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(1000, 0), "1000");
        assert_eq!(decimal(-150, 2), "-1.50");
        assert_eq!(decimal(1, 3), "0.001");
    }
}
