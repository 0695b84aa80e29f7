//! The payment as stored, its statuses, and its API representation (the
//! same JSON is answered by the API and snapshotted into events).
//!
//! Every part of a payment keeps its type here: JSON appears only where a
//! part is stored (a JSONB column, through [`Json`]) or answered
//! ([`PaymentObject`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::crypto::CryptoMode;
use super::risk::RiskReason;
use crate::ids::{MerchantId, PaymentId};
use crate::methods::MethodType;

/// Statuses of docs/api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[schema(as = PaymentStatus)]
pub enum Status {
    /// Created; waiting for a payment method.
    RequiresPaymentMethod,
    /// The customer must act (3-D Secure, redirect, voucher).
    RequiresAction,
    /// Money is on its way (bank transfer, check, crypto confirmations).
    Processing,
    /// Authorized; the merchant must capture.
    RequiresCapture,
    /// Money received.
    Succeeded,
    /// Canceled by the merchant or expired.
    Canceled,
    /// Declined or blocked; may be confirmed again with another method.
    Failed,
}

/// When the money of an authorization is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum CaptureMethod {
    /// At authorization.
    Automatic,
    /// By `POST /v1/payments/{id}/capture`.
    Manual,
}

crate::names!(Status, CaptureMethod);

/// The paying customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Email, lower-cased.
    #[schema(required = true)]
    pub email: Option<String>,
    /// Name.
    #[schema(required = true)]
    pub name: Option<String>,
}

/// Where goods go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Shipping {
    /// Recipient.
    pub name: String,
    /// Complete address.
    pub address: Address,
}

/// A postal address; `line1`, `city`, `postal_code` and `country` required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    /// Street.
    pub line1: String,
    /// Second line.
    #[schema(required = true)]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// State or region.
    #[schema(required = true)]
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

/// What is shown of the card a payment was confirmed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardDetails {
    /// `visa`, `mastercard`, `amex`, `discover`, `jcb`, `diners`, `unionpay`.
    pub brand: String,
    /// The number's last four digits.
    pub last4: String,
    /// Expiry month, 1–12.
    pub exp_month: u8,
    /// Expiry year, four digits.
    pub exp_year: u16,
    /// The merchant's keyed fingerprint of the number: equal for the same
    /// card on two payments of one merchant, unrelated across merchants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fingerprint: Option<String>,
    /// Issuing country (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub country: Option<String>,
}

/// What the customer must do next (`next_action`), by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// Enter the one-time code of 3-D Secure
    /// (`POST /v1/payments/{id}/challenge`).
    OtpChallenge,
    /// Go to the e-wallet and approve.
    Redirect {
        /// Where to send the customer.
        redirect_url: String,
    },
    /// Pay the voucher at a store before it expires.
    DisplayVoucher {
        /// The voucher.
        voucher: Voucher,
    },
    /// Transfer the amount to the account, quoting the reference.
    BankTransferInstructions {
        /// The reference to quote on the transfer.
        reference: String,
        /// Account holder.
        account_holder: String,
        /// IBAN of the account to pay.
        #[schema(required = true)]
        iban: Option<String>,
        /// The rest of a real account's details (absent in the sandbox).
        #[serde(flatten)]
        #[schema(schema_with = payee_details)]
        payee: Option<PayeeDetails>,
    },
    /// Mail or deposit the check.
    MailCheck {
        /// Reference to write on the check.
        reference: String,
        /// Whom the check is made out to.
        payable_to: String,
    },
    /// Send the crypto transfer.
    CryptoTransfer {
        /// The transfer to make.
        crypto: CryptoInstructions,
    },
}

/// A cash voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Voucher {
    /// The reference printed on the voucher.
    pub reference: String,
    /// When it stops being payable (Unix seconds).
    pub expires_at: i64,
}

/// The fields of [`PayeeDetails`] in bank transfer instructions: a
/// reference, as the sandbox leaves them out rather than sending `null`.
fn payee_details() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("PayeeDetails")
}

/// A real collection account's details besides holder and IBAN: all of
/// them for a real account (null when the bank has none), none in the
/// sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PayeeDetails {
    /// BIC of the account's bank.
    pub bic: Option<String>,
    /// ABA routing number (US accounts).
    pub routing_number: Option<String>,
    /// Account number (US accounts).
    pub account_number: Option<String>,
    /// The amount to transfer, in the smallest unit.
    #[schema(required = false)]
    pub amount: i64,
    /// Lower-case ISO 4217.
    #[schema(required = false)]
    pub currency: String,
}

/// How to pay a crypto payment: the transfer it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CryptoTransfer)]
pub struct CryptoInstructions {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Asset symbol (`usdc`, `eth`, …).
    pub asset: String,
    /// The token's contract; null for the chain's native coin.
    #[schema(required = true)]
    pub token_address: Option<String>,
    /// The PaymentRouter to call; null in deposit mode.
    #[schema(required = true)]
    pub router_address: Option<String>,
    /// Base units to send, as a decimal string.
    pub amount: String,
    /// The 32-byte reference the router call must carry.
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    pub payment_reference: String,
    /// An EIP-681 URI of the transfer (the deposit address's in deposit mode).
    pub uri: String,
    /// Which instructions are given: `any` (router call and, where the
    /// chain has one, a deposit address) or `deposit` (the address only).
    #[serde(default)]
    #[schema(required = true)]
    pub mode: CryptoMode,
    /// An address of this payment alone that a plain transfer may pay.
    #[serde(default)]
    #[schema(required = true, pattern = "^0x[0-9a-f]{40}$")]
    pub deposit_address: Option<String>,
    /// An EIP-681 URI paying the deposit address.
    #[serde(default)]
    #[schema(required = true)]
    pub deposit_uri: Option<String>,
    /// When the quote lapses (Unix seconds).
    pub expires_at: i64,
    /// Confirmations before the payment succeeds.
    pub confirmations_required: u64,
}

/// The last decline or reversal of a payment (`last_payment_error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = PaymentError)]
pub struct LastError {
    /// Machine-readable code (`card_declined`, `risk_blocked`, `bank_return`, …).
    pub code: String,
    /// The issuer's or bank's reason, when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schema(value_type = Option<String>, required = false)]
    pub decline_code: Option<Option<String>>,
    /// For the customer.
    pub message: String,
    /// `card_error` for a decline of a confirmation.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub kind: Option<LastErrorType>,
}

/// The kind of a payment error: `card_error` for a declined confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LastErrorType {
    /// A confirmation was declined or could not be processed.
    CardError,
}

impl LastError {
    /// A decline of a confirmation.
    pub fn card_error(code: &str, decline_code: Option<String>, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            decline_code: Some(decline_code),
            message: message.to_owned(),
            kind: Some(LastErrorType::CardError),
        }
    }

    /// A failure after the fact (a return, a reorg, a short transfer).
    pub fn later(code: &str, message: &str) -> Self {
        Self {
            code: code.to_owned(),
            decline_code: None,
            message: message.to_owned(),
            kind: None,
        }
    }
}

/// A key that is present, even as null: `Some(None)`, where a missing key
/// is `None` (through `default`). Keeps `"decline_code": null` apart from
/// no `decline_code` at all.
fn present<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(de).map(Some)
}

/// A crypto payment's quote and what the chain watcher saw: the `crypto`
/// view of a crypto payment (written by the database, see `crypto::view`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CryptoPayment)]
pub struct CryptoView {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Asset symbol.
    pub asset: String,
    /// The token's contract; null for the native coin.
    #[schema(required = true)]
    pub token_address: Option<String>,
    /// The 32-byte reference of the quote.
    #[schema(pattern = "^0x[0-9a-f]{64}$")]
    pub payment_reference: String,
    /// The payment's deposit address, when the chain has a deposit factory.
    #[serde(default)]
    #[schema(required = true, pattern = "^0x[0-9a-f]{40}$")]
    pub deposit_address: Option<String>,
    /// `any` or `deposit`.
    #[serde(default)]
    #[schema(required = true)]
    pub mode: CryptoMode,
    /// Base units owed, as a decimal string.
    pub amount: String,
    /// Base units seen on time, as a decimal string.
    pub amount_received: String,
    /// Base units confirmed, as a decimal string.
    pub amount_confirmed: String,
    /// When the quote lapses (Unix seconds).
    pub expires_at: i64,
    /// Confirmations needed.
    #[schema(minimum = 1)]
    pub confirmations_required: i64,
    /// Depth of the shallowest transfer now.
    #[schema(minimum = 0)]
    pub confirmations: i64,
    /// `underpaid`, `overpaid`, `paid_late`, `wrong_asset` or `unbookable`:
    /// money held for the merchant's decision.
    #[schema(required = true)]
    pub exception: Option<String>,
    /// The transfers seen, oldest first.
    pub transfers: Vec<CryptoTransfer>,
}

/// A transfer seen for a crypto payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CryptoTransferSeen)]
pub struct CryptoTransfer {
    /// Transaction hash.
    pub tx_hash: String,
    /// Index of the log in its block.
    pub log_index: i64,
    /// Block number.
    pub block_number: i64,
    /// Base units, as a decimal string.
    pub amount: String,
    /// Sender.
    pub payer: String,
    /// `detected`, `confirmed` or `removed`.
    pub status: String,
    /// How it was booked: `payment`, `late`, `wrong_asset`, `unmatched`, …
    pub booking: String,
}

/// A payment row.
#[derive(Debug, Clone)]
pub struct Payment {
    /// `pay_…`.
    pub id: PaymentId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
    /// Current status.
    pub status: Status,
    /// Automatic or manual capture.
    pub capture_method: CaptureMethod,
    /// Allowed method types.
    pub payment_method_types: Vec<String>,
    /// Method chosen at confirmation.
    pub method: Option<MethodType>,
    /// Free text.
    pub description: Option<String>,
    /// Merchant's key-value pairs.
    pub metadata: BTreeMap<String, String>,
    /// The paying customer.
    pub customer: Option<Customer>,
    /// Where goods go.
    pub shipping: Option<Shipping>,
    /// Capability of the browser checkout.
    pub client_secret: String,
    /// What the customer must do.
    pub next_action: Option<NextAction>,
    /// The processor's id.
    pub processor_reference: Option<String>,
    /// Authorized, not yet captured or released.
    pub amount_capturable: i64,
    /// Captured.
    pub amount_received: i64,
    /// Refunded.
    pub amount_refunded: i64,
    /// Under dispute, or lost to one: neither refundable nor returnable.
    pub amount_disputed: i64,
    /// Displayable card details.
    pub card: Option<CardDetails>,
    /// Risk score 0–100.
    pub risk_score: Option<i16>,
    /// Risk reasons.
    pub risk_reasons: Option<Vec<RiskReason>>,
    /// The last decline.
    pub last_error: Option<LastError>,
    /// Why it was canceled.
    pub cancellation_reason: Option<String>,
    /// Authorization or voucher expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Ledger hold of the authorization.
    pub hold_id: Option<String>,
    /// The crypto view (quote, transfers seen, exception) of a crypto payment.
    pub crypto: Option<CryptoView>,
    /// Where the hosted checkout sends the customer once the payment ends.
    pub return_url: Option<String>,
    /// Creation.
    pub created_at: OffsetDateTime,
}

/// What a browser may learn of a decline: a risk block reads as a plain
/// decline, so a card tester cannot tell the merchant's rules from the
/// issuer's answer and tune its next attempt.
pub fn browser_error(error: &LastError) -> LastError {
    if error.code == "risk_blocked" {
        LastError::card_error(
            "card_declined",
            Some("generic_decline".into()),
            "Your card was declined.",
        )
    } else {
        error.clone()
    }
}

/// Which view of a payment the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The merchant (secret key): everything.
    Merchant,
    /// A browser checkout (publishable key or client secret): no metadata,
    /// customer or shipping details.
    Checkout,
}

impl Payment {
    /// What may still be refunded or returned: received, less refunds and
    /// what is (or was lost) under dispute.
    pub fn refundable(&self) -> i64 {
        self.amount_received - self.amount_refunded - self.amount_disputed
    }

    /// Whether `candidate` is this payment's client secret, compared in
    /// constant time (the secret is what lets a browser act on the
    /// payment, so its bytes must not be learnable from response times).
    pub fn client_secret_matches(&self, candidate: Option<&str>) -> bool {
        candidate.is_some_and(|candidate| {
            crate::crypto::constant_time_eq(candidate.as_bytes(), self.client_secret.as_bytes())
        })
    }

    /// The API object (`"object": "payment"`), without the node's
    /// checkout link (see `Payments::view`).
    pub fn to_api(&self, audience: Audience, livemode: bool) -> PaymentObject {
        PaymentObject {
            id: self.id.clone(),
            object: PaymentObjectName::Payment,
            amount: self.amount,
            amount_capturable: self.amount_capturable,
            amount_received: self.amount_received,
            amount_refunded: self.amount_refunded,
            amount_disputed: self.amount_disputed,
            currency: self.currency.clone(),
            status: self.status,
            capture_method: self.capture_method,
            payment_method_types: self.payment_method_types.clone(),
            payment_method: self.method.map(|kind| PaymentMethodObject {
                kind,
                card: self.card.clone(),
            }),
            next_action: self.next_action.clone(),
            last_payment_error: match audience {
                Audience::Merchant => self.last_error.clone(),
                Audience::Checkout => self.last_error.as_ref().map(browser_error),
            },
            client_secret: self.client_secret.clone(),
            crypto: self.crypto.clone(),
            return_url: self.return_url.clone(),
            created: self.created_at.unix_timestamp(),
            livemode,
            // The hosted checkout shows what is being paid for.
            description: self.description.clone(),
            merchant: (audience == Audience::Merchant).then(|| MerchantView {
                metadata: self.metadata.clone(),
                customer: self.customer.clone(),
                shipping: self.shipping.clone(),
                cancellation_reason: self.cancellation_reason.clone(),
                risk: self.risk_score.map(|score| Risk {
                    score,
                    reasons: self.risk_reasons.clone(),
                }),
                expires_at: self.expires_at.map(OffsetDateTime::unix_timestamp),
            }),
            checkout_url: None,
            merchant_name: None,
            crypto_options: None,
        }
    }
}

/// `"payment"`: what the object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentObjectName {
    /// A payment.
    Payment,
}

/// A payment. A secret key sees every field (the merchant view); a
/// publishable key with the client secret sees the checkout view, without
/// the fields of `MerchantView` (`metadata`, `customer`, `shipping`,
/// `cancellation_reason`, `risk`, `expires_at`), and with `merchant_name`
/// and `crypto_options`.
///
/// As the API answers it and events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentObject {
    /// Unique identifier, `pay_…`.
    #[schema(value_type = String, example = "pay_3MtwBwLkdIwHu7ix28a3tqPa", pattern = "^pay_[A-Za-z0-9]{24}$")]
    pub id: PaymentId,
    /// Always `payment`.
    #[schema(schema_with = payment_object_name)]
    pub object: PaymentObjectName,
    /// Amount to collect, in the currency's smallest unit.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// Authorized and not yet captured or released.
    #[schema(minimum = 0)]
    pub amount_capturable: i64,
    /// Received so far.
    #[schema(minimum = 0)]
    pub amount_received: i64,
    /// Refunded or returned so far.
    #[schema(minimum = 0)]
    pub amount_refunded: i64,
    /// Under dispute, or lost to one.
    #[schema(minimum = 0)]
    pub amount_disputed: i64,
    /// Lower-case ISO 4217 currency code.
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
    /// Where the payment is in its life cycle.
    pub status: Status,
    /// When the money of an authorization is taken.
    pub capture_method: CaptureMethod,
    /// The methods the payment may be confirmed with.
    pub payment_method_types: Vec<String>,
    /// The method it was confirmed with; null before confirmation.
    #[schema(required = true)]
    pub payment_method: Option<PaymentMethodObject>,
    /// What the customer must do next; null when nothing.
    #[schema(required = true)]
    pub next_action: Option<NextAction>,
    /// Why the last attempt failed; null when it did not.
    #[schema(required = true)]
    pub last_payment_error: Option<LastError>,
    /// The secret a browser checkout acts on the payment with.
    #[schema(pattern = "^pay_[A-Za-z0-9]{24}_secret_[A-Za-z0-9]{24}$")]
    pub client_secret: String,
    /// The quote and transfers of a crypto payment; null otherwise.
    #[schema(required = true)]
    pub crypto: Option<CryptoView>,
    /// Where the hosted checkout sends the customer once the payment ends.
    #[schema(required = true)]
    pub return_url: Option<String>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Whether the payment is live (false: test mode).
    pub livemode: bool,
    /// Free text shown to the customer.
    #[schema(required = true)]
    pub description: Option<String>,
    /// What only the merchant sees (absent for a browser checkout).
    #[serde(flatten)]
    #[schema(schema_with = merchant_view)]
    pub merchant: Option<MerchantView>,
    /// The hosted checkout page of the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub checkout_url: Option<String>,
    /// The merchant's name (browser checkout reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub merchant_name: Option<String>,
    /// The chains and assets the payment may be paid with now (browser
    /// checkout reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub crypto_options: Option<Vec<super::crypto::CryptoOption>>,
}

crate::object_name_schema!(payment_object_name, "payment");

/// The fields of [`MerchantView`], after the rest of the payment's: a
/// reference, not the `null`-or-view of the `Option`, as a checkout view
/// leaves them out rather than sending `null`.
fn merchant_view() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("MerchantView")
}

/// What only the merchant sees of a payment: every field is there (null
/// when unset) for a secret key, and none of them for a browser checkout.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MerchantView {
    /// The merchant's key-value pairs, as given.
    #[schema(required = false)]
    pub metadata: BTreeMap<String, String>,
    /// The paying customer; null when not given.
    pub customer: Option<Customer>,
    /// Where goods go; null when not given.
    pub shipping: Option<Shipping>,
    /// Why it was canceled: `requested_by_customer`, `expired`, …
    pub cancellation_reason: Option<String>,
    /// The risk assessment of the last card confirmation; null before one.
    pub risk: Option<Risk>,
    /// When the authorization, voucher or quote lapses (Unix seconds).
    pub expires_at: Option<i64>,
}

/// A payment's risk assessment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RiskAssessment)]
pub struct Risk {
    /// 0 (no concern) to 100.
    pub score: i16,
    /// What added to the score, largest first.
    #[schema(required = true)]
    pub reasons: Option<Vec<RiskReason>>,
}

/// The method chosen at confirmation; `card` for card payments.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PaymentMethodDetails)]
pub struct PaymentMethodObject {
    /// The method.
    #[serde(rename = "type")]
    pub kind: MethodType,
    /// What is shown of the card (card payments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub card: Option<CardDetails>,
}
