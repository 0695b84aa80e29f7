//! Crypto payments: the quote at confirmation, and the payments side of the
//! chain watcher ([`PaymentsSink`]).
//!
//! Confirming with `crypto` locks a quote (fiat amount → base units of the
//! asset, stablecoins at par, ETH through the price feed) until
//! `expires_at`, draws an unguessable 32-byte reference, and answers
//! `next_action.crypto_transfer`. The watcher then reports each router
//! event carrying that reference:
//!
//! - detected on time → counted, the payment becomes `processing`
//!   (`payment.crypto_detected`);
//! - confirmed → booked from the chain's treasury into suspense; once the
//!   confirmed total reaches the quote, one entry moves it to the merchant
//!   (the surplus of an overpayment to `refunds_payable`) and the payment
//!   `succeeded`;
//! - late, in the wrong token, or with an unknown reference → held in
//!   suspense with an exception for the merchant's decision;
//! - removed by a reorg before confirmation → uncounted; after confirmation
//!   (deeper than the confirmation depth) → reversed in the ledger and
//!   reported as an exception.

mod quote;
mod sink;
mod view;

use std::sync::Arc;

use alloy::primitives::Address;

use crate::chain::config::ChainConfig;

pub use quote::{AddChain, CryptoOption, NativeCurrency, QUOTE_TTL};
pub use sink::{PaymentsSink, flag_underpaid};
pub use view::live_confirmations;

/// Which instructions a crypto quote gives the payer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum CryptoMode {
    /// The router call and, where the chain has a deposit factory, the
    /// deposit address.
    #[default]
    Any,
    /// Only the deposit address (for payers who can only send to an
    /// address: exchanges, hardware wallets, QR codes).
    Deposit,
}

crate::names!(CryptoMode);

/// The chains crypto payments may use.
#[derive(Debug, Clone, Default)]
pub struct Chains(pub Arc<Vec<ChainConfig>>);

impl Chains {
    fn get(&self, chain_id: u64) -> Option<&ChainConfig> {
        self.0.iter().find(|c| c.chain_id == chain_id)
    }
}

fn hex_lower(address: Address) -> String {
    format!("{address:#x}")
}
