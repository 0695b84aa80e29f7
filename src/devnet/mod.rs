//! Local infrastructure that `epg dev` and the tests start and stop: a
//! private PostgreSQL cluster and an anvil devnet.

pub mod anvil;
pub mod postgres;

use std::path::Path;

/// Errors starting or stopping local infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A required program is not installed.
    #[error("missing {0}")]
    Missing(String),
    /// A program ran and failed.
    #[error("{program} failed: {output}")]
    Command {
        /// The program.
        program: String,
        /// What it printed.
        output: String,
    },
    /// A file or process operation failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl DevnetError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        DevnetError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
