//! Merchants (the tenants of the node) and their API keys.
//!
//! A key is shown once, when created; only its SHA-256 is stored. The
//! authentication path narrows the candidates by a short lookup prefix and
//! compares hashes in constant time.

mod keys;
mod store;

pub use keys::{ApiKey, KeyKind, NewKey};
pub use store::{Caller, Merchant, MerchantStore, PAYMENT_METHOD_TYPES};

/// Errors of the merchant subsystem.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    /// No such merchant (or key).
    #[error("{0} not found")]
    NotFound(String),
    /// Invalid input, naming the parameter.
    #[error("invalid {param}: {message}")]
    Invalid {
        /// The offending parameter.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
