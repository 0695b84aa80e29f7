//! Everything that talks to EVM chains: contract bindings and deployment.

pub mod config;
pub mod contracts;
pub mod deploy;
pub mod reconcile;
pub mod rpc;
pub mod watcher;

/// Errors talking to a chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint failed or is unreachable.
    #[error("RPC {url}: {message}")]
    Rpc {
        /// Endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A contract call or deployment reverted or could not be sent.
    #[error("{what}: {message}")]
    Contract {
        /// Which operation.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A key could not be loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// A deployment file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}
