//! Everything that talks to EVM chains: contract bindings, deployment, the
//! watcher of incoming payments and its guard of the contracts themselves,
//! the hot wallet's sender and reconciliation.

pub mod config;
pub mod contracts;
pub mod deploy;
pub mod deposits;
pub mod guard;
pub mod reconcile;
pub mod rpc;
pub mod sender;
pub mod sweeper;
pub mod watcher;

/// The error beneath a [`ChainError`], kept whole for the cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors talking to a chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint failed or is unreachable.
    #[error("RPC {url}")]
    Rpc {
        /// Endpoint.
        url: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A contract call or deployment reverted or could not be sent.
    #[error("{what}")]
    Contract {
        /// Which operation.
        what: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A key could not be loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// A keystore file could not be opened.
    #[error("signing key: keystore {path}")]
    Keystore {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A deployment file could not be read or written.
    #[error("{path}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Parses an account address given by a person: `0x` and 40 hex digits,
/// all one case or with a valid EIP-55 checksum (a mixed-case address with
/// a wrong checksum is a typo, refused before money is sent to it).
pub fn parse_address(s: &str) -> Result<alloy::primitives::Address, String> {
    let hex = s
        .strip_prefix("0x")
        .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`{s}` is not an address (0x and 40 hex digits)"))?;
    let one_case = hex == hex.to_ascii_lowercase() || hex == hex.to_ascii_uppercase();
    if one_case {
        return s
            .parse()
            .map_err(|e| format!("`{s}` is not an address: {e}"));
    }
    alloy::primitives::Address::parse_checksummed(s, None)
        .map_err(|_| format!("`{s}` has a wrong EIP-55 checksum (mixed case)"))
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses_are_checked_for_form_and_checksum() {
        let good = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert!(parse_address(good).is_ok());
        assert!(parse_address(&good.to_ascii_lowercase()).is_ok());
        assert!(parse_address("0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266").is_ok());
        assert!(parse_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267").is_err());
        assert!(parse_address("0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266").is_err());
        assert!(parse_address("f39fd6e51aad88f6f4ce6ab8827279cfffb92266").is_err());
        assert!(parse_address("0x1234").is_err());
        assert!(parse_address("0xz39fd6e51aad88f6f4ce6ab8827279cfffb92266").is_err());
    }
}
