//! Payments of the traditional methods: the state machine of docs/api.md,
//! with every state change, its ledger postings and its event written in
//! one transaction.
//!
//! The API layer parses requests into the types here and calls
//! [`Payments`]; the processors are reached through [`crate::methods`].

pub mod bank;
mod cards;
mod confirm;
mod conflicts;
pub mod crypto;
pub mod disputes;
pub mod jobs;
mod medians;
pub mod model;
pub mod operations;
mod postings;
mod processor;
pub mod quote;
pub mod refunds;
pub mod risk;
mod screening;
pub mod service;
pub mod store;

pub use model::{Audience, CaptureMethod, Payment, Status};
pub use service::Payments;

use crate::methods::{ConnectorError, Decline};

/// Most any single payment may be, in minor units (as Stripe: 99,999,999).
pub const MAX_AMOUNT: i64 = 99_999_999;

/// Errors of the payments subsystem.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Invalid input, naming the parameter.
    #[error("{message}")]
    Invalid {
        /// Dotted parameter path.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// A well-formed request this node or this payment cannot serve
    /// (a 400 with its own code, e.g. `payment_method_unavailable`).
    #[error("{message}")]
    Refused {
        /// Machine-readable code.
        code: &'static str,
        /// Dotted parameter path, when one parameter is at fault.
        param: Option<String>,
        /// Explanation.
        message: String,
    },
    /// No such object for this merchant.
    #[error("no such {kind}: {id}")]
    NotFound {
        /// `payment`, `refund`, `dispute`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The object's state does not allow the request.
    #[error("{message}")]
    State {
        /// Machine-readable code.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// Another state-changing operation of the payment (or another request
    /// with the same idempotency key) is under way; retry in a moment. The
    /// API answers it 409 `payment_operation_in_progress`.
    #[error("{message}")]
    Busy {
        /// Explanation.
        message: String,
    },
    /// Something outside the payment refuses the request for now (the
    /// chain's contracts are not as configured), naming the parameter that
    /// chose it.
    #[error("{message}")]
    Unavailable {
        /// Machine-readable code.
        code: &'static str,
        /// Dotted parameter path.
        param: &'static str,
        /// Explanation.
        message: String,
    },
    /// The processor or the risk check declined; the payment was updated.
    #[error("{}", .decline.message)]
    Declined {
        /// Why.
        decline: Decline,
        /// The payment after the decline.
        payment: Box<Payment>,
    },
    /// The processor could not be reached or answered nonsense.
    #[error(transparent)]
    Connector(ConnectorError),
    /// Something the ledger needs is not as it should be (an operation
    /// without its object).
    #[error("ledger: {0}")]
    Ledger(String),
    /// A stored currency or asset the node does not know.
    #[error("the ledger does not know the currency or asset")]
    Money(#[source] crate::money::MoneyError),
    /// A step that cannot fail with sound data or configuration did (a
    /// stored number out of range, a malformed RPC URL).
    #[error("{what}")]
    Unexpected {
        /// What was being done.
        what: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The ledger refused or failed to book.
    #[error("the ledger refused the booking")]
    Booking(#[source] crate::ledger::LedgerError),
    /// An amount out of the ledger's range.
    #[error("the ledger cannot hold the amount")]
    Amount(#[source] crate::money::AmountError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ConnectorError> for PaymentError {
    /// A node-run processor's records failing is the database failing: the
    /// client is told to retry (503), as for any other statement, and the
    /// payment is left as the call left it, never marked failed.
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Storage(e) => PaymentError::Database(e),
            processor @ ConnectorError::Processor(_) => PaymentError::Connector(processor),
        }
    }
}

impl PaymentError {
    /// Shorthand for [`PaymentError::Invalid`].
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        PaymentError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`PaymentError::Refused`] of one parameter.
    pub fn refused(
        code: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PaymentError::Refused {
            code,
            param: Some(param.into()),
            message: message.into(),
        }
    }

    /// Shorthand for [`PaymentError::State`].
    pub fn state(code: &'static str, message: impl Into<String>) -> Self {
        PaymentError::State {
            code,
            message: message.into(),
        }
    }
}
