//! Money: assets and exact amounts.
//!
//! An amount is an integer number of its asset's smallest unit (cents, wei,
//! USDC's 6-decimal units), never a float. [`Amount`] holds it in an `i128`
//! bounded by 10^28 - 1, so 18-decimal tokens are exact far beyond 10^27
//! base units; PostgreSQL stores it as `NUMERIC` and `rust_decimal` carries
//! it across.
//!
//! Every asset has a scale: ISO 4217 currencies from a static table
//! ([`iso4217::CURRENCIES`]: USD 2, JPY 0, KWD 3, CLF 4 …), on-chain assets
//! (ETH 18, USDC 6 …) registered per chain at start-up from configuration
//! ([`AssetRegistry::register_chain_asset`]). The database holds the same
//! list in `assets`, which every ledger account references, so it refuses
//! postings in an unknown asset.
//!
//! Values are parsed at the edge: [`Currency::parse`], [`AssetCode::parse`],
//! [`Amount::from_api_json`] (an integer for fiat, a decimal string of base
//! units for crypto) and [`Amount::to_api_json`] back.

mod amount;
mod asset;
pub mod iso4217;

pub use amount::{Amount, AmountError, MAX_JSON_INTEGER, MAX_UNITS};
pub use asset::{Asset, AssetCode, AssetKind, AssetRegistry, ChainAsset, Currency};

/// Errors about currencies, assets and amounts.
#[derive(Debug, thiserror::Error)]
pub enum MoneyError {
    /// Not an ISO 4217 currency the node knows.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// A malformed asset code or definition.
    #[error("invalid asset {0:?}")]
    InvalidAsset(String),
    /// An asset registered again with a different definition.
    #[error("asset {code} is already registered as {existing}")]
    AssetConflict {
        /// The code being registered.
        code: String,
        /// What is registered.
        existing: String,
    },
    /// An invalid amount.
    #[error("amount {0}")]
    Amount(#[from] AmountError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
