//! Which processor serves each traditional method (`[processors]` in the
//! configuration), and the rule that keeps simulators out of live mode.
//!
//! A method is offered only when a processor is configured for it. The
//! sandbox processors approve well-known test card numbers, so a live node
//! that wired them would credit merchants with money that never existed:
//! `sandbox` is therefore refused in live mode, and a live node whose
//! configuration says nothing about a method does not offer it.

use serde::{Deserialize, Serialize};

use super::MethodType;
use crate::config::Mode;

/// A processor a traditional method can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Processor {
    /// The deterministic simulators of test mode (`crate::methods::sandbox`).
    Sandbox,
    /// The method is not offered.
    None,
    /// Bank transfers into the gateway's own accounts, reconciled from ISO
    /// 20022 statements (`crate::bank`); `bank_transfer` only; allowed in
    /// live mode.
    Iso20022,
}

// The configuration word is the serde name.
crate::names!(Processor);

/// `[processors]`: one entry per traditional method. An absent entry means
/// `sandbox` in test mode and `none` in live mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorsConfig {
    /// Cards.
    pub card: Option<Processor>,
    /// Bank transfers / e-checks.
    pub bank_transfer: Option<Processor>,
    /// E-wallets.
    pub ewallet: Option<Processor>,
    /// Cash vouchers.
    pub cash_voucher: Option<Processor>,
    /// Paper checks.
    pub check: Option<Processor>,
}

impl ProcessorsConfig {
    /// The configured entry of `method` (crypto has none: it settles on chain).
    fn entry(&self, method: MethodType) -> Option<Processor> {
        match method {
            MethodType::Card => self.card,
            MethodType::BankTransfer => self.bank_transfer,
            MethodType::Ewallet => self.ewallet,
            MethodType::CashVoucher => self.cash_voucher,
            MethodType::Check => self.check,
            MethodType::Crypto => None,
        }
    }

    /// The processor serving `method` in `mode`.
    pub fn processor(&self, method: MethodType, mode: Mode) -> Processor {
        self.entry(method).unwrap_or(match mode {
            Mode::Test => Processor::Sandbox,
            Mode::Live => Processor::None,
        })
    }

    /// The first entry that `mode` cannot run, as (key, why).
    pub fn problem(&self, mode: Mode) -> Option<(String, String)> {
        if let Some(m) = MethodType::ALL
            .into_iter()
            .find(|m| *m != MethodType::BankTransfer && self.entry(*m) == Some(Processor::Iso20022))
        {
            return Some((
                format!("processors.{m}"),
                "\"iso20022\" is a bank-transfer processor; only processors.bank_transfer may name it"
                    .to_owned(),
            ));
        }
        if mode != Mode::Live {
            return None;
        }
        MethodType::ALL
            .into_iter()
            .find(|m| self.entry(*m) == Some(Processor::Sandbox))
            .map(|m| {
                (
                    format!("processors.{m}"),
                    "the sandbox processor only simulates payments and is refused in live mode; \
                     configure a real processor for this method or set it to \"none\""
                        .to_owned(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_entries_are_sandbox_in_test_mode_and_none_in_live_mode() {
        let config = ProcessorsConfig::default();
        assert_eq!(
            config.processor(MethodType::Card, Mode::Test),
            Processor::Sandbox
        );
        assert_eq!(
            config.processor(MethodType::Card, Mode::Live),
            Processor::None
        );
        assert_eq!(config.problem(Mode::Live), None);
    }

    #[test]
    fn live_mode_names_the_first_sandbox_entry() {
        let config = ProcessorsConfig {
            check: Some(Processor::Sandbox),
            card: Some(Processor::None),
            ..Default::default()
        };
        assert_eq!(config.problem(Mode::Test), None);
        let (key, why) = config.problem(Mode::Live).unwrap_or_default();
        assert_eq!(key, "processors.check");
        assert!(why.contains("live mode"), "{why}");
    }
}
