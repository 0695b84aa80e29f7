//! Naming ledger accounts.

use std::fmt;

use crate::ids::MerchantId;

/// A merchant's balance accounts (by their serde names in
/// `ledger_account_kinds`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MerchantAccount {
    /// Received (captured, confirmed) but not yet available.
    Pending,
    /// Available to pay out or refund from.
    Available,
    /// Withheld (rolling or dispute reserve).
    Reserve,
    /// Owed by the merchant when reversals exceeded its balances (a
    /// negative balance; no floor). Defined in migrations/0004_payments.sql.
    Receivable,
}

/// The gateway's own accounts (by their serde names in
/// `ledger_account_kinds`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GatewayAccount {
    /// Fees earned (qualifier: optionally a payment method).
    FeeRevenue,
    /// Owed to us by a method's processor until it settles (qualifier: the
    /// method).
    Clearing,
    /// Held on a chain (qualifier: the chain id).
    Treasury,
    /// Refunds owed to customers, not yet sent.
    RefundsPayable,
    /// Received but not attributable yet.
    Suspense,
    /// Withdrawn by processors for open disputes.
    Disputes,
    /// Payouts sent, not yet confirmed.
    PayoutsInTransit,
    /// Gas paid on a chain (qualifier: the chain id).
    NetworkFees,
    /// Cash at one of the gateway's bank accounts (qualifier: its id).
    Bank,
    /// What a bank account held before the node read its first statement.
    BankOpening,
    /// Bank debits nothing explains yet.
    BankSuspense,
    /// What the reconciliation desk wrote off.
    WriteOffs,
    /// At deposit addresses on a chain, not yet swept to the treasury
    /// (qualifier: the chain id).
    Deposits,
}

crate::names!(MerchantAccount, GatewayAccount);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Merchant(MerchantAccount),
    Gateway(GatewayAccount),
}

/// An account, by name: whose, which kind, and a qualifier (a payment
/// method or a chain id, or empty). The asset is given next to it in each
/// posting. Accounts come into existence on first use; the database checks
/// the qualifier against the kind.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountRef {
    merchant: Option<MerchantId>,
    kind: Kind,
    qualifier: String,
}

impl AccountRef {
    /// One of `merchant`'s accounts.
    pub fn merchant(merchant: &MerchantId, account: MerchantAccount) -> Self {
        Self {
            merchant: Some(merchant.clone()),
            kind: Kind::Merchant(account),
            qualifier: String::new(),
        }
    }

    /// A gateway account with a qualifier (`""` for none).
    pub fn gateway(account: GatewayAccount, qualifier: &str) -> Self {
        Self {
            merchant: None,
            kind: Kind::Gateway(account),
            qualifier: qualifier.to_owned(),
        }
    }

    /// Fees earned.
    pub fn fee_revenue() -> Self {
        Self::gateway(GatewayAccount::FeeRevenue, "")
    }

    /// Owed by the processor of `method` (`card`, `bank_transfer`, …).
    pub fn clearing(method: &str) -> Self {
        Self::gateway(GatewayAccount::Clearing, method)
    }

    /// Held on chain `chain_id` (in the asset of the posting).
    pub fn treasury(chain_id: u64) -> Self {
        Self::gateway(GatewayAccount::Treasury, &chain_id.to_string())
    }

    /// At deposit addresses on chain `chain_id`, not yet swept.
    pub fn deposits(chain_id: u64) -> Self {
        Self::gateway(GatewayAccount::Deposits, &chain_id.to_string())
    }

    /// Refunds owed to customers.
    pub fn refunds_payable() -> Self {
        Self::gateway(GatewayAccount::RefundsPayable, "")
    }

    /// Unattributed funds.
    pub fn suspense() -> Self {
        Self::gateway(GatewayAccount::Suspense, "")
    }

    /// Disputed amounts withdrawn by processors.
    pub fn disputes() -> Self {
        Self::gateway(GatewayAccount::Disputes, "")
    }

    /// Payouts sent, not yet confirmed.
    pub fn payouts_in_transit() -> Self {
        Self::gateway(GatewayAccount::PayoutsInTransit, "")
    }

    /// Gas paid on chain `chain_id`.
    pub fn network_fees(chain_id: u64) -> Self {
        Self::gateway(GatewayAccount::NetworkFees, &chain_id.to_string())
    }

    /// Cash at the gateway's bank account `id` (migrations/0021).
    pub fn bank(id: &str) -> Self {
        Self::gateway(GatewayAccount::Bank, id)
    }

    /// The counterpart of bank account `id`'s opening balance.
    pub fn bank_opening(id: &str) -> Self {
        Self::gateway(GatewayAccount::BankOpening, id)
    }

    /// Bank debits nothing explains yet.
    pub fn bank_suspense() -> Self {
        Self::gateway(GatewayAccount::BankSuspense, "")
    }

    /// What the reconciliation desk wrote off.
    pub fn write_offs() -> Self {
        Self::gateway(GatewayAccount::WriteOffs, "")
    }

    /// The owning merchant, for merchant accounts.
    pub fn merchant_id(&self) -> Option<&MerchantId> {
        self.merchant.as_ref()
    }

    /// Which merchant account, for merchant accounts.
    pub fn merchant_account(&self) -> Option<MerchantAccount> {
        match self.kind {
            Kind::Merchant(m) => Some(m),
            Kind::Gateway(_) => None,
        }
    }

    /// The owner as stored: the merchant id, or `""` for the gateway.
    pub(crate) fn owner(&self) -> &str {
        self.merchant.as_ref().map_or("", MerchantId::as_str)
    }

    /// The kind as stored.
    pub fn kind(&self) -> String {
        match self.kind {
            Kind::Merchant(m) => m.to_string(),
            Kind::Gateway(g) => g.to_string(),
        }
    }

    /// The qualifier (`""` for none).
    pub fn qualifier(&self) -> &str {
        &self.qualifier
    }

    /// Rebuilds a name from a `ledger_accounts` row.
    pub(crate) fn from_row(owner: &str, kind: &str, qualifier: &str) -> Option<Self> {
        if owner.is_empty() {
            let account: GatewayAccount = kind.parse().ok()?;
            return Some(Self::gateway(account, qualifier));
        }
        let merchant = MerchantId::parse(owner).ok()?;
        let account: MerchantAccount = kind.parse().ok()?;
        Some(Self::merchant(&merchant, account))
    }
}

impl fmt::Display for AccountRef {
    /// `mer_…/pending`, `clearing/card`, `fee_revenue`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.merchant {
            write!(f, "{m}/")?;
        }
        f.write_str(&self.kind())?;
        if !self.qualifier.is_empty() {
            write!(f, "/{}", self.qualifier)?;
        }
        Ok(())
    }
}

impl fmt::Debug for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountRef({self})")
    }
}
