//! Payment methods: the processor side of each traditional method, behind
//! one [`Connector`] trait.
//!
//! The payments subsystem owns state, ledger and events; a connector only
//! talks to "the processor" (a card network, a bank, an e-wallet, a store
//! chain). In test mode every method is served by a deterministic sandbox
//! connector (`sandbox`); a real processor adapter implements the same
//! trait and is selected per method in live mode.

pub mod card;
pub mod memory;
pub mod processors;
pub mod sandbox;

use std::future::Future;
use std::pin::Pin;

use time::OffsetDateTime;

pub use card::{Brand, Card, CardError, CardNumber};
pub use processors::{Processor, ProcessorsConfig};

/// A boxed future, so connectors can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The payment method types of docs/api.md.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[schema(as = PaymentMethodType)]
pub enum MethodType {
    /// Cards, with 3-D Secure.
    Card,
    /// Bank transfer / e-check.
    BankTransfer,
    /// E-wallet with a redirect.
    Ewallet,
    /// Cash voucher paid at a store.
    CashVoucher,
    /// Paper check.
    Check,
    /// On-chain transfer through the PaymentRouter.
    Crypto,
}

impl MethodType {
    /// Every type, in API order.
    pub const ALL: [MethodType; 6] = [
        MethodType::Card,
        MethodType::BankTransfer,
        MethodType::Ewallet,
        MethodType::CashVoucher,
        MethodType::Check,
        MethodType::Crypto,
    ];
}

crate::names!(MethodType);

/// What the customer gave, already validated.
#[derive(Debug, Clone)]
pub enum MethodDetails {
    /// A card.
    Card(Card),
    /// A bank transfer.
    BankTransfer,
    /// An e-wallet of `provider`.
    Ewallet {
        /// e.g. `paypal`, `alipay`.
        provider: String,
    },
    /// A cash voucher.
    CashVoucher,
    /// A paper check.
    Check,
}

impl MethodDetails {
    /// The method type.
    pub fn method(&self) -> MethodType {
        match self {
            MethodDetails::Card(_) => MethodType::Card,
            MethodDetails::BankTransfer => MethodType::BankTransfer,
            MethodDetails::Ewallet { .. } => MethodType::Ewallet,
            MethodDetails::CashVoucher => MethodType::CashVoucher,
            MethodDetails::Check => MethodType::Check,
        }
    }
}

/// An authorization request to the processor.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    /// The call's idempotency key (the operation's id): the processor
    /// answers a repeated key with its first answer and acts only once.
    pub key: &'a str,
    /// The payment (processors get it as their order reference).
    pub payment_id: &'a str,
    /// Amount in minor units.
    pub amount: i64,
    /// Lower-case ISO 4217.
    pub currency: &'a str,
    /// The customer's method.
    pub details: &'a MethodDetails,
    /// Now, as the node sees it (vouchers expire relative to it).
    pub now: OffsetDateTime,
    /// Base URL of the node, for redirects back to it.
    pub return_base_url: &'a str,
    /// Capture in the same call when approved (a "sale"), so automatic
    /// capture is one processor call, not two.
    pub capture: bool,
}

/// What the customer must do before the processor decides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CustomerAction {
    /// Enter the one-time code of 3-D Secure.
    OtpChallenge,
    /// Go to the e-wallet and approve.
    Redirect {
        /// Where to send the customer.
        url: String,
    },
    /// Pay the voucher at a store before it expires.
    DisplayVoucher {
        /// Reference printed on the voucher.
        reference: String,
        /// Expiry.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// Transfer to the given reference.
    BankTransferInstructions {
        /// Reference to quote on the transfer.
        reference: String,
        /// The account to pay, when the processor names a real one (the
        /// sandbox does not).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payee: Option<Payee>,
    },
    /// Mail or deposit the check.
    MailCheck {
        /// Reference to write on the check.
        reference: String,
    },
}

/// A bank account payers are told to pay into, with what to pay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payee {
    /// Account holder.
    pub holder: String,
    /// IBAN.
    pub iban: Option<String>,
    /// BIC.
    pub bic: Option<String>,
    /// ABA routing number.
    pub routing_number: Option<String>,
    /// Account number.
    pub account_number: Option<String>,
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
}

/// The processor's answer to an authorization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Authorization {
    /// Funds are held and may be captured; or, when the request asked for
    /// it, already captured.
    Approved {
        /// The processor's id of the authorization.
        reference: String,
        /// The capture made in the same call, if the request asked for one.
        captured: Option<Captured>,
    },
    /// The customer must act first; the outcome comes later.
    ActionRequired {
        /// The processor's id.
        reference: String,
        /// What the customer must do.
        action: CustomerAction,
    },
    /// The money is on its way; the processor will say when it arrived.
    Pending {
        /// The processor's id.
        reference: String,
        /// Instructions for the customer, if any.
        action: Option<CustomerAction>,
    },
    /// Refused.
    Declined(Decline),
}

/// A refusal by the processor or issuer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decline {
    /// Stripe-style code (`card_declined`, `incorrect_otp`).
    pub code: String,
    /// Issuer's reason (`generic_decline`, `insufficient_funds`).
    pub decline_code: Option<String>,
    /// For the customer.
    pub message: String,
}

/// Something the processor tells us later about a payment (bank cleared,
/// check bounced, dispute opened). In test mode the sandbox helpers
/// produce these; a real adapter would from the processor's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProcessorEvent {
    /// The money arrived (bank transfer cleared, voucher paid, check
    /// cleared, e-wallet approved).
    Succeeded,
    /// The customer or their bank refused (e-wallet declined).
    Failed(Decline),
    /// Money that had arrived was taken back (bank return, check bounce).
    Reversed {
        /// `bank_return` or `check_bounce`.
        reason: String,
    },
    /// The cardholder disputed the charge.
    DisputeOpened {
        /// Network reason.
        reason: String,
    },
}

/// What capture returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    /// Events the processor will send later (a dispute for the sandbox's
    /// dispute card), applied by the payments layer after the capture.
    pub followups: Vec<ProcessorEvent>,
}

/// A connector failed to reach or understand its processor.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The processor could not be reached, refused the call or answered
    /// nonsense.
    #[error("processor error: {0}")]
    Processor(String),
    /// The node's own database, where a processor run by the node (the
    /// sandbox, the bank-transfer processor) keeps its records, failed. Not
    /// the processor's answer: the call's outcome is unknown and its retry
    /// under the same key is safe, like any request the database failed.
    #[error("processor's records in the database")]
    Storage(#[source] sqlx::Error),
}

impl ConnectorError {
    /// A processor failure described by `message`.
    pub fn processor(message: impl Into<String>) -> Self {
        Self::Processor(message.into())
    }
}

/// What a processor answered to an earlier call, found by its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Answer {
    /// To `authorize` or `answer_challenge`.
    Authorization {
        /// The answer.
        authorization: Authorization,
    },
    /// To `capture`.
    Captured {
        /// The answer.
        captured: Captured,
    },
    /// To `void` or `refund`: done.
    Done,
}

/// The processor side of one payment method.
///
/// Every call carries an idempotency key (the id of the node's operation
/// record, committed before the call): a processor that receives a key a
/// second time must answer as the first time and act only once. That is
/// what makes a retry after a crash, a timeout or a lost answer safe, and
/// [`Connector::recover`] is how the node learns the outcome of a call
/// whose answer it never received.
pub trait Connector: Send + Sync + 'static {
    /// Whether payments in `currency` (lower-case ISO 4217) can be taken
    /// (a bank transfer needs a collection account in it).
    fn serves(&self, _currency: &str) -> bool {
        true
    }

    /// Asks the processor to authorize (or start) a payment.
    fn authorize<'a>(
        &'a self,
        request: AuthorizeRequest<'a>,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>>;

    /// Completes a one-time-code challenge of `reference`, capturing too
    /// when `capture`.
    fn answer_challenge<'a>(
        &'a self,
        _key: &'a str,
        _reference: &'a str,
        _code: &'a str,
        _capture: bool,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::processor("no challenge is pending")) })
    }

    /// Captures `amount` (≤ the authorized amount); the rest is released.
    fn capture<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<Captured, ConnectorError>>;

    /// Releases an authorization without capturing.
    fn void<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// Returns `amount` of a captured payment to the customer.
    fn refund<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// The answer the processor gave to the call made with `key`; `None`
    /// when no call with that key ever reached it.
    ///
    /// The default is for a processor that cannot be asked: an error, so
    /// the operation stays pending and is asked about again later, never
    /// guessed (`None` would have the node give up an authorization the
    /// processor may have approved, or repeat a call). The simulators keep
    /// it: [`memory::Remembering`], which wraps each of them, answers from
    /// what it recorded.
    fn recover<'a>(
        &'a self,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Answer>, ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::processor(
                "this processor cannot look up earlier calls by key",
            ))
        })
    }
}

/// The connector serving each method; `None` where no processor is
/// configured, so the method is not offered.
pub struct Connectors {
    card: Option<Box<dyn Connector>>,
    bank_transfer: Option<Box<dyn Connector>>,
    ewallet: Option<Box<dyn Connector>>,
    cash_voucher: Option<Box<dyn Connector>>,
    check: Option<Box<dyn Connector>>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offered: Vec<MethodType> = MethodType::ALL
            .into_iter()
            .filter(|m| self.get(*m).is_some())
            .collect();
        f.debug_struct("Connectors")
            .field("offered", &offered)
            .finish()
    }
}

impl Connectors {
    /// The deterministic sandbox connectors of test mode, for every
    /// method, remembering their calls in `pool`.
    pub fn sandbox(pool: crate::db::Db) -> Self {
        Self::configured(
            &ProcessorsConfig::default(),
            crate::config::Mode::Test,
            pool,
        )
    }

    /// The connectors `config` names for `mode`. The configuration check
    /// refuses `sandbox` in live mode; this refuses it once more, so that no
    /// path can wire a simulator into a live node. Sandbox processors keep
    /// their memory of idempotency keys in `pool` (see [`memory`]).
    pub fn configured(
        config: &ProcessorsConfig,
        mode: crate::config::Mode,
        pool: crate::db::Db,
    ) -> Self {
        Self::configured_with_bank(config, mode, pool, None)
    }

    /// As [`Connectors::configured`], with the `iso20022` bank-transfer
    /// processor when `bank` is given and `[processors]` names it.
    pub fn configured_with_bank(
        config: &ProcessorsConfig,
        mode: crate::config::Mode,
        pool: crate::db::Db,
        bank: Option<crate::bank::connector::Iso20022>,
    ) -> Self {
        let pick = |method: MethodType, sandbox: fn() -> Box<dyn Connector>| match (
            config.processor(method, mode),
            mode,
        ) {
            (Processor::Sandbox, crate::config::Mode::Test) => {
                Some(Box::new(memory::Remembering::new(sandbox(), pool.clone()))
                    as Box<dyn Connector>)
            }
            (Processor::Sandbox | Processor::None | Processor::Iso20022, _) => None,
        };
        let bank_transfer = match (config.processor(MethodType::BankTransfer, mode), bank) {
            (Processor::Iso20022, Some(bank)) => Some(Box::new(bank) as Box<dyn Connector>),
            _ => pick(MethodType::BankTransfer, || {
                Box::new(sandbox::SandboxBankTransfer)
            }),
        };
        Self {
            card: pick(MethodType::Card, || Box::new(sandbox::SandboxCard)),
            bank_transfer,
            ewallet: pick(MethodType::Ewallet, || Box::new(sandbox::SandboxEwallet)),
            cash_voucher: pick(MethodType::CashVoucher, || {
                Box::new(sandbox::SandboxCashVoucher)
            }),
            check: pick(MethodType::Check, || Box::new(sandbox::SandboxCheck)),
        }
    }

    /// The connector of `method`; `None` for crypto, which settles on-chain,
    /// and for a method no processor serves.
    pub fn get(&self, method: MethodType) -> Option<&dyn Connector> {
        match method {
            MethodType::Card => self.card.as_deref(),
            MethodType::BankTransfer => self.bank_transfer.as_deref(),
            MethodType::Ewallet => self.ewallet.as_deref(),
            MethodType::CashVoucher => self.cash_voucher.as_deref(),
            MethodType::Check => self.check.as_deref(),
            MethodType::Crypto => None,
        }
    }
}
