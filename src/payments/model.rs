//! The payment as stored, its statuses, and its API representation (the
//! same JSON is answered by the API and snapshotted into events).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::ids::{MerchantId, PaymentId};

/// Statuses of docs/api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl Status {
    /// The stored / API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::RequiresPaymentMethod => "requires_payment_method",
            Status::RequiresAction => "requires_action",
            Status::Processing => "processing",
            Status::RequiresCapture => "requires_capture",
            Status::Succeeded => "succeeded",
            Status::Canceled => "canceled",
            Status::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::RequiresPaymentMethod,
            Status::RequiresAction,
            Status::Processing,
            Status::RequiresCapture,
            Status::Succeeded,
            Status::Canceled,
            Status::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// When the money of an authorization is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// At authorization.
    Automatic,
    /// By `POST /v1/payments/{id}/capture`.
    Manual,
}

impl CaptureMethod {
    /// The stored / API name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMethod::Automatic => "automatic",
            CaptureMethod::Manual => "manual",
        }
    }
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
    pub method: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Merchant's key-value pairs.
    pub metadata: Value,
    /// `{email, name}`.
    pub customer: Option<Value>,
    /// `{name, address}`.
    pub shipping: Option<Value>,
    /// Capability of the browser checkout.
    pub client_secret: String,
    /// What the customer must do.
    pub next_action: Option<Value>,
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
    pub card: Option<Value>,
    /// Risk score 0–100.
    pub risk_score: Option<i16>,
    /// Risk reasons.
    pub risk_reasons: Option<Value>,
    /// The last decline.
    pub last_error: Option<Value>,
    /// Why it was canceled.
    pub cancellation_reason: Option<String>,
    /// Authorization or voucher expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Ledger hold of the authorization.
    pub hold_id: Option<String>,
    /// The crypto view (quote, transfers seen, exception) of a crypto payment.
    pub crypto: Option<Value>,
    /// Where the hosted checkout sends the customer once the payment ends.
    pub return_url: Option<String>,
    /// Creation.
    pub created_at: OffsetDateTime,
}

/// What a browser may learn of a decline: a risk block reads as a plain
/// decline, so a card tester cannot tell the merchant's rules from the
/// issuer's answer and tune its next attempt.
pub fn browser_error(error: &Value) -> Value {
    if error["code"] == "risk_blocked" {
        json!({
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "type": "card_error",
        })
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

    /// The API object (`"object": "payment"`).
    pub fn to_api(&self, audience: Audience, livemode: bool) -> Value {
        let payment_method = self.method.as_ref().map(|method| {
            let mut pm = json!({ "type": method });
            if let Some(card) = &self.card {
                pm["card"] = card.clone();
            }
            pm
        });
        let mut object = json!({
            "id": self.id,
            "object": "payment",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "amount_refunded": self.amount_refunded,
            "amount_disputed": self.amount_disputed,
            "currency": self.currency,
            "status": self.status.as_str(),
            "capture_method": self.capture_method.as_str(),
            "payment_method_types": self.payment_method_types,
            "payment_method": payment_method,
            "next_action": self.next_action,
            "last_payment_error": match audience {
                Audience::Merchant => self.last_error.clone(),
                Audience::Checkout => self.last_error.as_ref().map(browser_error),
            },
            "client_secret": self.client_secret,
            "crypto": self.crypto,
            "return_url": self.return_url,
            "created": self.created_at.unix_timestamp(),
            "livemode": livemode,
        });
        // The hosted checkout shows what is being paid for.
        object["description"] = json!(self.description);
        if audience == Audience::Merchant {
            object["metadata"] = self.metadata.clone();
            object["customer"] = json!(self.customer);
            object["shipping"] = json!(self.shipping);
            object["cancellation_reason"] = json!(self.cancellation_reason);
            object["risk"] = match self.risk_score {
                Some(score) => json!({ "score": score, "reasons": self.risk_reasons }),
                None => Value::Null,
            };
            object["expires_at"] = json!(self.expires_at.map(OffsetDateTime::unix_timestamp));
        }
        object
    }
}
