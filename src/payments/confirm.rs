//! Confirmation with a traditional method: the intent (attempt counted,
//! card sealed, risk screened, authorization operation started) committed
//! in one transaction, then the processor's authorization, then its answer
//! booked in a second one ([`super::processor`]). A payment created with
//! `confirm: true` is inserted in that first transaction, so a server-side
//! card payment takes two database transactions in all.

use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::cards;
use super::model::{Payment, Status};
use super::operations::{self, Kind, NewOperation, Operation};
use super::processor::not_found;
use super::risk;
use super::screening::{self, Verdict};
use super::service::{ConfirmMethod, NewPayment, confirmable, unavailable};
use super::{PaymentError, Payments, store};
use crate::ids::{MerchantId, PaymentId};
use crate::methods::{AuthorizeRequest, Card, MethodDetails, MethodType};
use crate::payments::model::CaptureMethod;

type Tx = Transaction<'static, Postgres>;

/// A confirmation's method with its details checked against the clock.
struct Checked {
    kind: MethodType,
    details: MethodDetails,
    billing_country: Option<String>,
}

/// Parses what the customer sent (card digits, expiry, code).
fn check(method: ConfirmMethod, now: OffsetDateTime) -> Result<Checked, PaymentError> {
    let kind = method.method();
    let (details, billing_country) = match method {
        ConfirmMethod::Card {
            number,
            exp_month,
            exp_year,
            cvc,
            billing_country,
        } => {
            let card = Card::parse(&number, exp_month, exp_year, &cvc, now)
                .map_err(|e| PaymentError::invalid(e.param(), e.to_string()))?;
            (MethodDetails::Card(card), billing_country)
        }
        ConfirmMethod::BankTransfer => (MethodDetails::BankTransfer, None),
        ConfirmMethod::Ewallet { provider } => (MethodDetails::Ewallet { provider }, None),
        ConfirmMethod::CashVoucher => (MethodDetails::CashVoucher, None),
        ConfirmMethod::Check => (MethodDetails::Check, None),
        ConfirmMethod::Crypto { .. } => {
            return Err(unavailable("payment_method.type".into(), kind));
        }
    };
    Ok(Checked {
        kind,
        details,
        billing_country,
    })
}

impl Payments {
    /// Confirms a payment with a payment method: risk check, then the
    /// processor's authorization.
    pub async fn confirm(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        method: ConfirmMethod,
        client_ip: Option<String>,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        if let ConfirmMethod::Crypto {
            chain_id,
            asset,
            mode,
        } = &method
        {
            // The crypto flow has no processor: a quote, then the chain.
            return self
                .confirm_crypto(merchant, id, *chain_id, asset, *mode, request_key)
                .await;
        }
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool().begin().await?;
        let payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Authorize, request_key)
            .await?
        {
            // A retry whose first try's answer was lost: that try's
            // outcome, finished first if it is still pending.
            tx.rollback().await?;
            return self.replay(op).await;
        }
        let kind = method.method();
        confirmable(&payment, kind)?;
        if !self.offers_in(kind, &payment.currency) {
            return Err(unavailable("payment_method.type".to_owned(), kind));
        }
        let checked = check(method, now)?;
        self.authorize_from(tx, payment, checked, client_ip, request_key, now)
            .await
    }

    /// Creates a payment and confirms it in one request (`confirm: true`):
    /// the payment is inserted in the confirmation's first transaction. Bad
    /// input (the payment's or the card's) is refused before anything is
    /// stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_confirmed(
        &self,
        merchant: &MerchantId,
        enabled_methods: &[String],
        new: NewPayment,
        method: ConfirmMethod,
        client_ip: Option<String>,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let payment = self.new_payment(merchant, enabled_methods, new)?;
        let kind = method.method();
        confirmable(&payment, kind)?;
        if let ConfirmMethod::Crypto {
            chain_id,
            asset,
            mode,
        } = &method
        {
            let mut conn = self.pool().acquire().await?;
            let id = if store::insert(&mut conn, &payment, request_key).await? {
                payment.id
            } else {
                // A retry of a request whose answer was lost: its payment,
                // confirmed again only if the first try stopped before.
                let earlier = self
                    .made_by_request(&mut conn, &payment, request_key)
                    .await?;
                if earlier.status != Status::RequiresPaymentMethod {
                    return Ok(earlier);
                }
                earlier.id
            };
            drop(conn);
            return self
                .confirm_crypto(merchant, &id, *chain_id, asset, *mode, None)
                .await;
        }
        if !self.offers_in(kind, &payment.currency) {
            return Err(unavailable("payment_method.type".to_owned(), kind));
        }
        let now = OffsetDateTime::now_utc();
        let checked = check(method, now)?;
        let mut tx = self.pool().begin().await?;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Authorize, request_key)
            .await?
        {
            // The same request again: the payment it made, as it stands.
            tx.rollback().await?;
            return self.replay(op).await;
        }
        if !store::insert(&mut tx, &payment, request_key).await? {
            // The key made a payment but no authorization: a plain create
            // whose key this request reuses. That payment, as it stands.
            let earlier = self.made_by_request(&mut tx, &payment, request_key).await;
            tx.rollback().await?;
            return earlier;
        }
        self.authorize_from(tx, payment, checked, client_ip, request_key, now)
            .await
    }

    /// In `tx`, which holds `payment` (locked or just inserted, and
    /// confirmable with `checked`): counts the attempt, seals the card,
    /// screens the risk and starts the authorization; commits; calls the
    /// processor; books its answer.
    async fn authorize_from(
        &self,
        mut tx: Tx,
        mut payment: Payment,
        checked: Checked,
        client_ip: Option<String>,
        request_key: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Payment, PaymentError> {
        let merchant = payment.merchant_id.clone();
        let prints = match &checked.details {
            MethodDetails::Card(card) => Some(cards::prints(self.fingerprints(), &merchant, card)),
            _ => None,
        };
        let email = payment
            .customer
            .as_ref()
            .and_then(|c| c.email.as_deref())
            .map(str::to_lowercase);
        let attempt = store::Attempt {
            method: checked.kind,
            card_fingerprint: prints.as_ref().map(|p| p.current.as_str()),
            customer_email: email.as_deref(),
            client_ip: client_ip.as_deref(),
        };
        // Every attempt counts, whatever happens next: a tester's declined,
        // blocked or failed tries count against the cap and in the velocity
        // of the next one. The attempt and the risk signals are one
        // statement; the median of the merchant's history is recomputed
        // only when the one this node keeps is too old.
        let max = self.max_confirm_attempts();
        let candidates: &[String] = prints.as_ref().map_or(&[], |p| p.candidates.as_slice());
        let clock = std::time::Instant::now();
        let kept = self.medians().get(&merchant, &payment.currency, clock);
        let Some(mut counts) = store::record_attempt_and_count(
            &mut tx,
            &payment,
            &attempt,
            candidates,
            max,
            risk::MIN_HISTORY,
            kept.is_none(),
        )
        .await?
        else {
            return Err(PaymentError::refused(
                "payment_attempts_exceeded",
                "payment_method",
                format!(
                    "This payment was confirmed {max} times without success, the most allowed; \
                     create a new payment to try again."
                ),
            ));
        };
        match kept {
            Some(median) => counts.median = median,
            None => self
                .medians()
                .put(&merchant, &payment.currency, counts.median, clock),
        }
        payment.method = Some(checked.kind);
        payment.last_error = None;
        payment.next_action = None;

        // Card data: sealed at rest, shown as brand/last four/fingerprint.
        let sealed = match (&checked.details, &prints) {
            (MethodDetails::Card(card), Some(prints)) => Some(cards::seal(
                self.card_sealer(),
                &payment.id,
                card,
                &prints.current,
            )),
            _ => None,
        };
        payment.card = sealed.as_ref().map(|c| c.display.clone());

        // Risk, before anything reaches the processor.
        let verdict = screening::screen(&mut payment, &counts, checked.billing_country);
        if let Verdict::Blocked(decline) = verdict {
            store::update_confirmed(&mut tx, &payment, sealed.as_ref(), client_ip.as_deref())
                .await?;
            return self.fail(tx, payment, decline).await;
        }
        let connector = self.connector_of(&payment)?;
        // The confirmation and its authorization's operation: one statement.
        let new = NewOperation {
            merchant_id: &payment.merchant_id,
            payment_id: &payment.id,
            kind: Kind::Authorize,
            refund_id: None,
            amount: payment.amount,
            reason: None,
            idempotency_key: request_key,
        };
        let Some(op_id) = store::update_confirmed_and_begin(
            &mut tx,
            &payment,
            sealed.as_ref(),
            client_ip.as_deref(),
            &new,
            OffsetDateTime::now_utc() + self.operation_lease(),
        )
        .await?
        else {
            return Err(operations::in_progress());
        };
        let op = Operation {
            id: op_id,
            merchant_id: payment.merchant_id.clone(),
            payment_id: payment.id.clone(),
            kind: Kind::Authorize,
            refund_id: None,
            amount: payment.amount,
            reason: None,
            status: operations::Status::Pending,
        };
        tx.commit().await?;

        let authorization = connector
            .authorize(AuthorizeRequest {
                key: op.id.as_str(),
                payment_id: payment.id.as_str(),
                amount: payment.amount,
                currency: &payment.currency,
                details: &checked.details,
                now,
                return_base_url: self.public_url(),
                capture: payment.capture_method == CaptureMethod::Automatic,
            })
            .await?;
        self.finish_authorization(&op, authorization).await
    }
}
