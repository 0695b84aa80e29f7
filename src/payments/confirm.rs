//! Confirmation with a traditional method: the intent (attempt counted,
//! card sealed, risk screened, authorization operation started) committed
//! in one transaction, then the processor's authorization, then its answer
//! booked in a second one ([`super::processor`]). A payment created with
//! `confirm: true` is inserted in that first transaction, so a server-side
//! card payment takes two database transactions in all.

use time::OffsetDateTime;

use super::cards::{self, CardPrints};
use super::model::{Payment, Status};
use super::operations::{self, Kind, NewOperation, Operation};
use super::processor::not_found;
use super::risk;
use super::screening::{self, Verdict};
use super::service::{ConfirmMethod, NewPayment, confirmable, unavailable};
use super::store::RiskCounts;
use super::{PaymentError, Payments, store};
use crate::ids::{MerchantId, PaymentId};
use crate::methods::{AuthorizeRequest, Card, MethodDetails, MethodType};
use crate::payments::model::CaptureMethod;

type Tx = crate::db::DbTx;

/// Times a confirmation counts its attempt again when another confirmation
/// of the payment committed while it waited for the payment's lock; past
/// it (a storm of confirmations of one payment) it goes on with what it
/// counted. The attempts' cap is exact either way.
const RACED_TRIES: u32 = 3;

/// A confirmation's method with its details checked against the clock.
struct Checked {
    kind: MethodType,
    details: MethodDetails,
    billing_country: Option<String>,
}

/// A checked method with what the attempt's statement read for its risk
/// screening (`counts`: `None` when the payment reached its attempts).
struct Screened {
    checked: Checked,
    prints: Option<CardPrints>,
    counts: Option<RiskCounts>,
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

/// A confirmation under the key of an earlier one of `payment` with other
/// method details.
fn key_reused(payment: &PaymentId) -> PaymentError {
    PaymentError::refused(
        "idempotency_key_reused",
        "Idempotency-Key",
        format!(
            "This Idempotency-Key confirmed payment {payment} with another payment method; \
             use a new key for a new confirmation."
        ),
    )
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
        let kind = method.method();
        let checked = match check(method, now) {
            Ok(checked) => checked,
            Err(bad) => {
                return self
                    .refuse_unparsed(merchant, id, kind, request_key, bad)
                    .await;
            }
        };
        let prints = self.prints_of(merchant, &checked);
        let mut tries = 0;
        let (mut tx, locked) = loop {
            let mut tx = self.pool().begin().await?;
            let locked = self
                .lock_and_record_attempt(
                    &mut tx,
                    merchant,
                    id,
                    &checked,
                    prints.as_ref(),
                    client_ip.as_deref(),
                )
                .await?
                .ok_or_else(|| not_found(id))?;
            tries += 1;
            if locked.raced && tries < RACED_TRIES {
                // Its counts miss the attempt of the confirmation it
                // waited for: count again, in a snapshot that has it.
                tx.rollback().await?;
                continue;
            }
            break (tx, locked);
        };
        let store::LockedAttempt {
            payment, counts, ..
        } = locked;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Authorize, request_key)
            .await?
        {
            // A retry whose first try's answer was lost: that try's
            // outcome, finished first if it is still pending. (The attempt
            // just recorded is rolled back.)
            tx.rollback().await?;
            return self
                .replay_confirmation(op, &checked, prints.as_ref(), now)
                .await;
        }
        // A payment that may not be confirmed rolls the attempt back with
        // the transaction: only real tries count.
        self.may_confirm_with(&payment, kind)?;
        let screened = Screened {
            checked,
            prints,
            counts,
        };
        self.authorize_from(tx, payment, screened, client_ip, request_key, now)
            .await
    }

    /// A confirmation whose method details do not parse (a bad card
    /// number, an expired card): refused with what a good card would have
    /// met first (no such payment, a retry to answer from its first try, a
    /// payment that may not be confirmed, a method not offered), else with
    /// `bad`. Nothing is written.
    async fn refuse_unparsed(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        kind: MethodType,
        request_key: Option<&str>,
        bad: PaymentError,
    ) -> Result<Payment, PaymentError> {
        let mut conn = self.pool().acquire().await?;
        let payment = store::get(&mut *conn, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let earlier = self
            .earlier_request(&mut conn, merchant, Kind::Authorize, request_key)
            .await?;
        drop(conn);
        if let Some(op) = earlier {
            if op.status == operations::Status::Pending {
                // The first try's details parsed (it started an operation),
                // so this is another request under its key. Resuming here
                // would give up an authorization the first try may still
                // be waiting for.
                return Err(key_reused(&op.payment_id));
            }
            return self.replay(op).await;
        }
        self.may_confirm_with(&payment, kind)?;
        Err(bad)
    }

    /// Whether `payment` may be confirmed with `kind` on this node: in a
    /// state that takes a confirmation, the method among the payment's and
    /// offered here in its currency.
    fn may_confirm_with(&self, payment: &Payment, kind: MethodType) -> Result<(), PaymentError> {
        confirmable(payment, kind)?;
        if !self.offers_in(kind, &payment.currency) {
            return Err(unavailable("payment_method.type".to_owned(), kind));
        }
        Ok(())
    }

    /// The fingerprints of a confirmation's card, for its velocity counts.
    fn prints_of(&self, merchant: &MerchantId, checked: &Checked) -> Option<CardPrints> {
        match &checked.details {
            MethodDetails::Card(card) => Some(cards::prints(self.fingerprints(), merchant, card)),
            _ => None,
        }
    }

    /// Locks payment `id`, records the attempt and reads its risk counts
    /// ([`store::lock_and_record_attempt`]), with the merchant's median
    /// from this node's [`super::medians`] when it keeps a fresh one.
    async fn lock_and_record_attempt(
        &self,
        tx: &mut Tx,
        merchant: &MerchantId,
        id: &PaymentId,
        checked: &Checked,
        prints: Option<&CardPrints>,
        client_ip: Option<&str>,
    ) -> Result<Option<store::LockedAttempt>, PaymentError> {
        let clock = std::time::Instant::now();
        let kept = self.medians().kept(merchant, clock);
        let currencies: Vec<String> = kept.iter().map(|(c, _)| c.clone()).collect();
        let attempt = store::Attempt {
            method: checked.kind,
            card_fingerprint: prints.map(|p| p.current.as_str()),
            client_ip,
        };
        let Some(mut locked) = store::lock_and_record_attempt(
            tx,
            merchant,
            id,
            &attempt,
            prints.map_or(&[], |p| p.candidates.as_slice()),
            self.max_confirm_attempts(),
            risk::MIN_HISTORY,
            &currencies,
        )
        .await?
        else {
            return Ok(None);
        };
        let currency = &locked.payment.currency;
        if let Some(counts) = locked.counts.as_mut() {
            match kept.into_iter().find(|(c, _)| c == currency) {
                Some((_, median)) => counts.median = median,
                None => self.medians().put(merchant, currency, counts.median, clock),
            }
        }
        Ok(Some(locked))
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
            let id = if store::insert(self.pool(), &payment, request_key).await? {
                payment.id
            } else {
                // A retry of a request whose answer was lost: its payment,
                // confirmed again only if the first try stopped before.
                let earlier = self
                    .made_by_request(self.pool(), &payment, request_key)
                    .await?;
                if earlier.status != Status::RequiresPaymentMethod {
                    return Ok(earlier);
                }
                earlier.id
            };
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
            let prints = self.prints_of(merchant, &checked);
            return self
                .replay_confirmation(op, &checked, prints.as_ref(), now)
                .await;
        }
        if !store::insert(&mut *tx, &payment, request_key).await? {
            // The key made a payment but no authorization: a plain create
            // whose key this request reuses. That payment, as it stands.
            let earlier = self.made_by_request(&mut *tx, &payment, request_key).await;
            tx.rollback().await?;
            return earlier;
        }
        let prints = self.prints_of(merchant, &checked);
        // Inserted by this transaction: nobody else can confirm it yet, so
        // the counts cannot have raced.
        let store::LockedAttempt {
            payment, counts, ..
        } = self
            .lock_and_record_attempt(
                &mut tx,
                merchant,
                &payment.id,
                &checked,
                prints.as_ref(),
                client_ip.as_deref(),
            )
            .await?
            .ok_or_else(|| not_found(&payment.id))?;
        let screened = Screened {
            checked,
            prints,
            counts,
        };
        self.authorize_from(tx, payment, screened, client_ip, request_key, now)
            .await
    }

    /// Answers a retried confirmation (same `Idempotency-Key`) from its
    /// first try. An authorization that try left pending (its call failed
    /// on the way, its answer was lost, its node died) is asked for again
    /// under the operation's key with the retry's details: the processor
    /// answers a key it saw as it did the first time, and acts once. Only a
    /// retry can: the security code is never stored, so the reconciler,
    /// which has no retry to read it from, gives such an authorization up.
    /// The retry must be the same request: the same method, the same card.
    async fn replay_confirmation(
        &self,
        op: Operation,
        checked: &Checked,
        prints: Option<&CardPrints>,
        now: OffsetDateTime,
    ) -> Result<Payment, PaymentError> {
        self.call_again(op, |key, payment| async move {
            let same_card = match (&payment.card, prints) {
                (Some(card), Some(prints)) => card
                    .fingerprint
                    .as_ref()
                    .is_some_and(|f| *f == prints.current || prints.candidates.contains(f)),
                (None, None) => true,
                _ => false,
            };
            if payment.method != Some(checked.kind) || !same_card {
                return Err(key_reused(&payment.id));
            }
            let connector = self.connector_of(&payment)?;
            let request = self.authorize_request(key.as_str(), &payment, &checked.details, now);
            Ok(connector.authorize(request).await?)
        })
        .await
    }

    /// In `tx`, which holds `payment` (locked, confirmable with the
    /// screened method, its attempt recorded): seals the card, screens the
    /// risk and starts the authorization; commits; calls the processor;
    /// books its answer.
    async fn authorize_from(
        &self,
        mut tx: Tx,
        mut payment: Payment,
        screened: Screened,
        client_ip: Option<String>,
        request_key: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Payment, PaymentError> {
        let Screened {
            checked,
            prints,
            counts,
        } = screened;
        // A payment tried `max` times takes no more tries. Every attempt
        // counted, whatever happened next: a tester's declined, blocked or
        // failed tries count against the cap and in the velocity of the
        // next one.
        let Some(counts) = counts else {
            let max = self.max_confirm_attempts();
            return Err(PaymentError::refused(
                "payment_attempts_exceeded",
                "payment_method",
                format!(
                    "This payment was confirmed {max} times without success, the most allowed; \
                     create a new payment to try again."
                ),
            ));
        };
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

        let request = self.authorize_request(op.id.as_str(), &payment, &checked.details, now);
        let authorization = connector.authorize(request).await?;
        self.finish_authorization(&op, authorization).await
    }

    /// The processor call authorizing `payment` with `details`, under
    /// idempotency key `key`.
    fn authorize_request<'a>(
        &'a self,
        key: &'a str,
        payment: &'a Payment,
        details: &'a MethodDetails,
        now: OffsetDateTime,
    ) -> AuthorizeRequest<'a> {
        AuthorizeRequest {
            key,
            payment_id: payment.id.as_str(),
            amount: payment.amount,
            currency: &payment.currency,
            details,
            now,
            return_base_url: self.public_url(),
            capture: payment.capture_method == CaptureMethod::Automatic,
        }
    }
}
