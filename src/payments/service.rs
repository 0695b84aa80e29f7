//! The payment state machine.
//!
//! Every operation locks the payment row (`SELECT … FOR UPDATE`), checks
//! the transition, talks to the processor, then writes the new state, its
//! ledger entries and its event in the same transaction. Two requests on
//! one payment therefore run one after the other, and a crash leaves either
//! all of a transition or none of it.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};

use super::model::{Audience, CaptureMethod, Payment, Status};
use super::operations::{self, Kind};
use super::processor::{not_found, unexpected_state};
use super::risk::{self, RiskSignals};
use super::{MAX_AMOUNT, PaymentError, postings, store};
use crate::crypto::{Fingerprints, Keyring, Purpose, Sealer};
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PaymentId, random_base62};
use crate::metadata::Metadata;
use crate::methods::{
    AuthorizeRequest, Card, Connectors, CustomerAction, Decline, MethodDetails, MethodType,
    ProcessorEvent,
};

/// A payment to create, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Minor units, 1 ..= [`MAX_AMOUNT`].
    pub amount: i64,
    /// Lower-case ISO 4217, known to the asset registry.
    pub currency: String,
    /// Allowed methods; `None`: every method enabled for the merchant.
    pub payment_method_types: Option<Vec<MethodType>>,
    /// Automatic or manual capture.
    pub capture_method: CaptureMethod,
    /// Free text.
    pub description: Option<String>,
    /// Key-value pairs.
    pub metadata: Metadata,
    /// `{email, name}`.
    pub customer: Option<Customer>,
    /// Shipping name and address.
    pub shipping: Option<Shipping>,
}

/// The paying customer.
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    /// Lower-cased email.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// Where goods go.
#[derive(Debug, Clone, Serialize)]
pub struct Shipping {
    /// Recipient.
    pub name: String,
    /// Complete address.
    pub address: Address,
}

/// A postal address; `line1`, `city`, `postal_code` and `country` required.
#[derive(Debug, Clone, Serialize)]
pub struct Address {
    /// Street.
    pub line1: String,
    /// Second line.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

/// A confirmation's payment method, parsed at the edge (card digits still
/// to be validated against the clock).
#[derive(Debug, Clone)]
pub enum ConfirmMethod {
    /// Card details as sent.
    Card {
        /// Digits.
        number: String,
        /// 1–12.
        exp_month: i64,
        /// Two or four digits.
        exp_year: i64,
        /// 3–4 digits.
        cvc: String,
        /// Billing country, if given.
        billing_country: Option<String>,
    },
    /// Bank transfer.
    BankTransfer,
    /// E-wallet.
    Ewallet {
        /// Provider name.
        provider: String,
    },
    /// Cash voucher.
    CashVoucher,
    /// Paper check.
    Check,
    /// On-chain: the chain and the asset's symbol.
    Crypto {
        /// EIP-155 chain id.
        chain_id: u64,
        /// `usdc`, `eth`, …
        asset: String,
    },
}

impl ConfirmMethod {
    fn method(&self) -> MethodType {
        match self {
            ConfirmMethod::Crypto { .. } => MethodType::Crypto,
            ConfirmMethod::Card { .. } => MethodType::Card,
            ConfirmMethod::BankTransfer => MethodType::BankTransfer,
            ConfirmMethod::Ewallet { .. } => MethodType::Ewallet,
            ConfirmMethod::CashVoucher => MethodType::CashVoucher,
            ConfirmMethod::Check => MethodType::Check,
        }
    }
}

/// The payments subsystem.
#[derive(Clone)]
pub struct Payments {
    pool: PgPool,
    connectors: Arc<Connectors>,
    /// Seals card numbers (their own subkey).
    cards: Sealer,
    /// Per-merchant card fingerprints.
    fingerprints: Fingerprints,
    livemode: bool,
    /// An uncaptured authorization is voided after this.
    authorization_ttl: Duration,
    /// Base URL of the node, for redirects.
    public_url: String,
    /// Chains crypto payments may use.
    chains: super::crypto::Chains,
    /// Chains whose hot wallet runs on this node (crypto refunds).
    wallet_chains: Arc<Vec<u64>>,
    /// Confirmations a payment may take before it is refused (card testing).
    max_confirm_attempts: i32,
    /// See [`Payments::with_operation_lease`].
    operation_lease: Duration,
    /// What the chain watchers' contract guard found: quotes it refuses.
    chain_status: Option<Arc<crate::chain::watcher::ChainStatus>>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

/// How long a processor operation is its node's, unless configured.
pub const DEFAULT_OPERATION_LEASE: Duration = Duration::seconds(60);

/// Confirmation attempts of one payment, unless configured.
pub const DEFAULT_MAX_CONFIRM_ATTEMPTS: i32 = 5;

/// Card countries of the sandbox cards (all issued in the US, as Stripe's).
const SANDBOX_CARD_COUNTRY: &str = "US";

impl Payments {
    /// The subsystem over `pool`.
    pub fn new(
        pool: PgPool,
        connectors: Arc<Connectors>,
        keys: &Keyring,
        livemode: bool,
        authorization_ttl: Duration,
        public_url: String,
        chains: Vec<crate::chain::config::ChainConfig>,
    ) -> Self {
        Self {
            pool,
            connectors,
            cards: keys.sealer(Purpose::Cards),
            fingerprints: keys.fingerprints(),
            livemode,
            authorization_ttl,
            public_url,
            chains: super::crypto::Chains(Arc::new(chains)),
            wallet_chains: Arc::new(Vec::new()),
            max_confirm_attempts: DEFAULT_MAX_CONFIRM_ATTEMPTS,
            operation_lease: DEFAULT_OPERATION_LEASE,
            chain_status: None,
        }
    }

    /// The subsystem, refusing a payment's confirmation after `max` attempts.
    #[must_use]
    pub fn with_max_confirm_attempts(mut self, max: u32) -> Self {
        self.max_confirm_attempts = i32::try_from(max).unwrap_or(i32::MAX);
        self
    }

    /// The subsystem, refusing crypto quotes the contract guard refuses
    /// (see [`crate::chain::guard`]).
    #[must_use]
    pub fn with_chain_status(mut self, status: Arc<crate::chain::watcher::ChainStatus>) -> Self {
        self.chain_status = Some(status);
        self
    }

    /// The chain watchers' status, when the node runs them.
    pub(super) fn chain_status(&self) -> Option<&crate::chain::watcher::ChainStatus> {
        self.chain_status.as_deref()
    }

    /// The subsystem, refunding crypto payments on `chains` through this
    /// node's hot wallet.
    #[must_use]
    pub fn with_wallet_chains(mut self, chains: Vec<u64>) -> Self {
        self.wallet_chains = Arc::new(chains);
        self
    }

    /// Chains on which this node sends crypto refunds.
    pub(super) fn wallet_chains(&self) -> &[u64] {
        &self.wallet_chains
    }

    /// The chains crypto payments may use.
    pub(super) fn chains(&self) -> &super::crypto::Chains {
        &self.chains
    }

    /// Whether this node offers `method`: a traditional method needs a
    /// configured processor, crypto a configured chain.
    pub fn offers(&self, method: MethodType) -> bool {
        match method {
            MethodType::Crypto => !self.chains.0.is_empty(),
            other => self.connectors.get(other).is_some(),
        }
    }

    /// Whether this node takes `method` for a payment in `currency` (a
    /// bank transfer needs a collection account in it).
    pub fn offers_in(&self, method: MethodType, currency: &str) -> bool {
        match method {
            MethodType::Crypto => self.offers(method),
            other => self
                .connectors
                .get(other)
                .is_some_and(|c| c.serves(currency)),
        }
    }

    /// Of a merchant's enabled methods, those this node offers, in order.
    pub fn offered(&self, enabled: &[String]) -> Vec<String> {
        enabled
            .iter()
            .filter(|m| MethodType::parse(m).is_some_and(|m| self.offers(m)))
            .cloned()
            .collect()
    }

    /// Whether objects are live-mode.
    pub fn livemode(&self) -> bool {
        self.livemode
    }

    /// How long an uncaptured authorization lives.
    pub(super) fn authorization_ttl(&self) -> Duration {
        self.authorization_ttl
    }

    /// How long a node holds a processor operation it started before
    /// others may resume it.
    pub(super) fn operation_lease(&self) -> Duration {
        self.operation_lease
    }

    /// The subsystem, holding processor operations for `lease` (at least the
    /// request timeout, so a live request is never resumed under it).
    #[must_use]
    pub fn with_operation_lease(mut self, lease: std::time::Duration) -> Self {
        self.operation_lease = Duration::try_from(lease).unwrap_or(DEFAULT_OPERATION_LEASE);
        self
    }

    /// The pool (for the refund and dispute modules).
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connectors (for the refund module).
    pub(super) fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    /// The merchant API object of `payment`.
    pub fn object(&self, payment: &Payment) -> Value {
        payment.to_api(Audience::Merchant, self.livemode)
    }

    /// Records `event_type` for `payment` in the caller's transaction.
    pub(super) async fn announce(
        &self,
        conn: &mut PgConnection,
        payment: &Payment,
        event_type: EventType,
    ) -> Result<(), PaymentError> {
        events::record(
            conn,
            &payment.merchant_id,
            event_type,
            &self.object(payment),
        )
        .await?;
        Ok(())
    }

    /// Creates a payment in `requires_payment_method`.
    pub async fn create(
        &self,
        merchant: &MerchantId,
        enabled_methods: &[String],
        new: NewPayment,
    ) -> Result<Payment, PaymentError> {
        if new.amount <= 0 {
            return Err(PaymentError::invalid(
                "amount",
                "amount must be a positive integer",
            ));
        }
        if new.amount > MAX_AMOUNT {
            return Err(PaymentError::invalid(
                "amount",
                format!("amount must be at most {MAX_AMOUNT}"),
            ));
        }
        let types: Vec<String> = match &new.payment_method_types {
            Some(types) => {
                if types.is_empty() {
                    return Err(PaymentError::invalid(
                        "payment_method_types",
                        "payment_method_types must not be empty",
                    ));
                }
                for (i, t) in types.iter().enumerate() {
                    if !enabled_methods.iter().any(|m| m == t.as_str()) {
                        return Err(PaymentError::invalid(
                            format!("payment_method_types[{i}]"),
                            format!("{} is not enabled for this account", t.as_str()),
                        ));
                    }
                    if !self.offers_in(*t, &new.currency) {
                        return Err(unavailable(format!("payment_method_types[{i}]"), *t));
                    }
                }
                let mut names: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
                names.dedup();
                names
            }
            None => {
                let offered: Vec<String> = self
                    .offered(enabled_methods)
                    .into_iter()
                    .filter(|m| {
                        MethodType::parse(m).is_some_and(|m| self.offers_in(m, &new.currency))
                    })
                    .collect();
                if offered.is_empty() {
                    return Err(PaymentError::refused(
                        "payment_method_unavailable",
                        "payment_method_types",
                        "None of this account's payment methods is offered by this node.",
                    ));
                }
                offered
            }
        };
        let id = PaymentId::generate();
        let payment = Payment {
            client_secret: format!("{id}_secret_{}", random_base62(24)),
            id,
            merchant_id: merchant.clone(),
            amount: new.amount,
            currency: new.currency,
            status: Status::RequiresPaymentMethod,
            capture_method: new.capture_method,
            payment_method_types: types,
            method: None,
            description: new.description,
            metadata: new.metadata.to_json(),
            customer: new.customer.map(|c| json!(c)),
            shipping: new.shipping.map(|s| json!(s)),
            next_action: None,
            processor_reference: None,
            amount_capturable: 0,
            amount_received: 0,
            amount_refunded: 0,
            amount_disputed: 0,
            card: None,
            risk_score: None,
            risk_reasons: None,
            last_error: None,
            cancellation_reason: None,
            expires_at: None,
            hold_id: None,
            crypto: None,
            created_at: now_micros(),
        };
        let mut conn = self.pool.acquire().await?;
        store::insert(&mut conn, &payment).await?;
        Ok(payment)
    }

    /// One payment of `merchant`.
    pub async fn get(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
    ) -> Result<Payment, PaymentError> {
        let mut payment = store::get(&self.pool, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        super::crypto::live_confirmations(&self.pool, std::slice::from_mut(&mut payment)).await?;
        Ok(payment)
    }

    /// A payment by id and client secret (browser checkout, no key).
    pub async fn get_for_checkout(
        &self,
        id: &PaymentId,
        client_secret: &str,
    ) -> Result<Payment, PaymentError> {
        let mut payment = store::get_by_client_secret(&self.pool, id, client_secret)
            .await?
            .ok_or_else(|| not_found(id))?;
        super::crypto::live_confirmations(&self.pool, std::slice::from_mut(&mut payment)).await?;
        Ok(payment)
    }

    /// A page of payments, newest first.
    pub async fn list(
        &self,
        merchant: &MerchantId,
        status: Option<Status>,
        starting_after: Option<&PaymentId>,
        ending_before: Option<&PaymentId>,
        limit: i64,
    ) -> Result<(Vec<Payment>, bool), PaymentError> {
        for (param, cursor) in [
            ("starting_after", starting_after),
            ("ending_before", ending_before),
        ] {
            if let Some(cursor) = cursor
                && !store::exists(&self.pool, merchant, cursor).await?
            {
                return Err(PaymentError::invalid(
                    param,
                    format!("No such payment: '{cursor}'"),
                ));
            }
        }
        let mut rows = store::list(
            &self.pool,
            merchant,
            status.map(Status::as_str),
            starting_after,
            ending_before,
            limit + 1,
        )
        .await?;
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        if has_more {
            if ending_before.is_some() {
                rows.remove(0);
            } else {
                rows.truncate(limit);
            }
        }
        super::crypto::live_confirmations(&self.pool, &mut rows).await?;
        Ok((rows, has_more))
    }

    /// Payments matching the dashboard's filters and search, newest first.
    pub async fn search(
        &self,
        merchant: &MerchantId,
        search: &store::Search,
        limit: i64,
    ) -> Result<Vec<Payment>, PaymentError> {
        let mut rows = store::search(&self.pool, merchant, search, limit).await?;
        super::crypto::live_confirmations(&self.pool, &mut rows).await?;
        Ok(rows)
    }

    /// Volume and success per method and currency since `since`.
    pub async fn volume_by_method(
        &self,
        merchant: &MerchantId,
        since: OffsetDateTime,
    ) -> Result<Vec<store::MethodVolume>, PaymentError> {
        Ok(store::volume_by_method(&self.pool, merchant, since).await?)
    }

    /// Succeeded volume per UTC day and currency since `since`.
    pub async fn daily_volume(
        &self,
        merchant: &MerchantId,
        since: OffsetDateTime,
    ) -> Result<Vec<(time::Date, String, i64)>, PaymentError> {
        Ok(store::daily_volume(&self.pool, merchant, since).await?)
    }

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
        if let ConfirmMethod::Crypto { chain_id, asset } = &method {
            // The crypto flow has no processor: a quote, then the chain.
            return self.confirm_crypto(merchant, id, *chain_id, asset).await;
        }
        if let Some(key) = request_key {
            let mut conn = self.pool.acquire().await?;
            if let Some(op) =
                operations::by_request(&mut conn, merchant, Kind::Authorize, key).await?
            {
                // A retry whose first try's answer was lost: that try's
                // outcome, finished first if it is still pending.
                drop(conn);
                return self.replay(op).await;
            }
        }
        let kind = method.method();
        let seen = store::get(&self.pool, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        confirmable(&seen, kind)?;
        if !self.offers_in(kind, &seen.currency) {
            return Err(unavailable("payment_method.type".to_owned(), kind));
        }
        let now = OffsetDateTime::now_utc();
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
        let (fingerprint, fingerprint_candidates) = match &details {
            MethodDetails::Card(card) => {
                let number = card.number.expose().as_bytes();
                (
                    Some(self.fingerprints.of(merchant.as_str(), number)),
                    // Velocity counts the card under every fingerprint it
                    // may still have at rest (a rotation may be under way).
                    self.fingerprints.candidates(merchant.as_str(), number),
                )
            }
            _ => (None, Vec::new()),
        };
        let email = seen
            .customer
            .as_ref()
            .and_then(|c| c.get("email"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let attempt = store::Attempt {
            method: kind.as_str(),
            card_fingerprint: fingerprint.as_deref(),
            customer_email: email.as_deref(),
            client_ip: client_ip.as_deref(),
        };

        // The intent: attempt counted, card sealed, risk scored and the
        // authorization operation started, all committed before the
        // processor is called.
        let mut tx = self.pool.begin().await?;
        let mut payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(op) = self
            .earlier_request(&mut tx, merchant, Kind::Authorize, request_key)
            .await?
        {
            // A retry whose first try's answer was lost.
            tx.rollback().await?;
            return self.replay(op).await;
        }
        // Another request may have moved it since it was first read.
        confirmable(&payment, kind)?;
        // Every attempt counts, whatever happens next: a tester's declined,
        // blocked or failed tries count against the cap and in the velocity
        // of the next one.
        if !store::record_attempt(&mut tx, merchant, id, &attempt, self.max_confirm_attempts)
            .await?
        {
            return Err(PaymentError::refused(
                "payment_attempts_exceeded",
                "payment_method",
                format!(
                    "This payment was confirmed {} times without success, the most allowed; \
                     create a new payment to try again.",
                    self.max_confirm_attempts
                ),
            ));
        }
        payment.method = Some(kind.as_str().to_owned());
        payment.last_error = None;
        payment.next_action = None;

        // Card data: sealed at rest, shown as brand/last four/fingerprint.
        if let MethodDetails::Card(card) = &details {
            let fingerprint = fingerprint.clone().unwrap_or_default();
            let display = json!({
                "brand": card.number.brand().as_str(),
                "last4": card.number.last4(),
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "fingerprint": fingerprint,
                "country": SANDBOX_CARD_COUNTRY,
            });
            let sealed = self.cards.seal(
                card.number.expose().as_bytes(),
                payment.id.as_str().as_bytes(),
            );
            store::set_card(
                &mut tx,
                &payment.id,
                &store::StoredCard {
                    display: display.clone(),
                    sealed_number: sealed,
                    fingerprint,
                },
            )
            .await?;
            payment.card = Some(display);
        } else {
            payment.card = None;
        }
        if let Some(ip) = &client_ip {
            store::set_client_ip(&mut tx, &payment.id, ip).await?;
        }

        // Risk, before anything reaches the processor.
        let counts = store::risk_counts(
            &mut tx,
            &payment,
            &attempt,
            &fingerprint_candidates,
            risk::MIN_HISTORY,
        )
        .await?;
        let assessment = risk::assess(&RiskSignals {
            card_attempts_last_hour: counts.card,
            email_attempts_last_hour: counts.email,
            ip_attempts_last_hour: counts.ip,
            amount: payment.amount,
            merchant_median_amount: counts.median,
            card_country: payment
                .card
                .as_ref()
                .map(|_| SANDBOX_CARD_COUNTRY.to_owned()),
            billing_country,
            shipping_country: payment
                .shipping
                .as_ref()
                .and_then(|s| s["address"]["country"].as_str())
                .map(str::to_owned),
        });
        payment.risk_score = Some(i16::from(assessment.score));
        payment.risk_reasons = Some(json!(assessment.reasons));
        let threshold = store::risk_threshold(&mut tx, merchant).await?;
        if i16::from(assessment.score) >= threshold {
            // The score and reasons are on the payment for the merchant;
            // the message, which reaches browsers, does not help a tester
            // learn what tripped the check.
            let decline = Decline {
                code: "risk_blocked".into(),
                decline_code: None,
                message: "The payment was blocked by the merchant's risk checks.".into(),
            };
            return self.fail(tx, payment, decline).await;
        }

        let connector = self.connector_of(&payment)?;
        store::update(&mut tx, &payment).await?;
        let op = self
            .begin(
                &mut tx,
                &payment,
                Kind::Authorize,
                payment.amount,
                None,
                request_key,
            )
            .await?;
        tx.commit().await?;

        let authorization = connector
            .authorize(AuthorizeRequest {
                key: op.id.as_str(),
                payment_id: payment.id.as_str(),
                amount: payment.amount,
                currency: &payment.currency,
                details: &details,
                now,
                return_base_url: &self.public_url,
                capture: payment.capture_method == CaptureMethod::Automatic,
            })
            .await?;
        self.finish_authorization(&op, authorization).await
    }

    /// Applies something the processor reported later (sandbox helpers in
    /// test mode): a bank transfer cleared or returned, a voucher paid, a
    /// check cleared or bounced, an e-wallet approved or declined.
    pub async fn apply_processor_event(
        &self,
        merchant: &MerchantId,
        id: &PaymentId,
        expected: MethodType,
        event: ProcessorEvent,
    ) -> Result<Payment, PaymentError> {
        let mut tx = self.pool.begin().await?;
        let mut payment = store::lock(&mut tx, merchant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if payment.method.as_deref() != Some(expected.as_str()) {
            return Err(PaymentError::state(
                "payment_method_unexpected",
                format!(
                    "This payment was not confirmed with {} (method: {}).",
                    expected.as_str(),
                    payment.method.as_deref().unwrap_or("none")
                ),
            ));
        }
        match event {
            ProcessorEvent::Succeeded => {
                if !matches!(payment.status, Status::Processing | Status::RequiresAction) {
                    return Err(unexpected_state(&payment, "complete"));
                }
                if payment
                    .expires_at
                    .is_some_and(|at| at <= OffsetDateTime::now_utc())
                {
                    return Err(PaymentError::state(
                        "payment_expired",
                        "The voucher of this payment has expired.",
                    ));
                }
                payment.amount_received = payment.amount;
                payment.status = Status::Succeeded;
                payment.next_action = None;
                payment.expires_at = None;
                postings::receive(&mut tx, &payment).await?;
                store::update(&mut tx, &payment).await?;
                self.announce(&mut tx, &payment, EventType::PaymentSucceeded)
                    .await?;
            }
            ProcessorEvent::Failed(decline) => {
                if !matches!(payment.status, Status::Processing | Status::RequiresAction) {
                    return Err(unexpected_state(&payment, "decline"));
                }
                return self.fail(tx, payment, decline).await;
            }
            ProcessorEvent::Reversed { reason } => {
                if payment.status != Status::Succeeded {
                    return Err(unexpected_state(&payment, "return"));
                }
                let outstanding = payment.refundable();
                if outstanding <= 0 {
                    return Err(PaymentError::state(
                        "payment_fully_refunded",
                        "Nothing left to return: the payment was fully refunded.",
                    ));
                }
                postings::reverse_receipt(&mut tx, &payment, outstanding, &reason).await?;
                payment.amount_refunded += outstanding;
                payment.status = Status::Failed;
                payment.last_error = Some(json!({
                    "code": reason,
                    "message": match reason.as_str() {
                        "check_bounce" => "The check bounced; the funds were taken back.",
                        _ => "The bank returned the transfer; the funds were taken back.",
                    },
                }));
                store::update(&mut tx, &payment).await?;
                self.announce(&mut tx, &payment, EventType::PaymentFailed)
                    .await?;
            }
            ProcessorEvent::DisputeOpened { reason } => {
                tx.rollback().await?;
                super::disputes::open(self, &payment, &reason).await?;
                return self.get(merchant, id).await;
            }
        }
        tx.commit().await?;
        Ok(payment)
    }
}

/// docs/api.md's `next_action` object of a customer action.
pub(super) fn next_action(action: &CustomerAction) -> Value {
    match action {
        CustomerAction::OtpChallenge => json!({ "type": "otp_challenge" }),
        CustomerAction::Redirect { url } => json!({ "type": "redirect", "redirect_url": url }),
        CustomerAction::DisplayVoucher {
            reference,
            expires_at,
        } => json!({
            "type": "display_voucher",
            "voucher": { "reference": reference, "expires_at": expires_at.unix_timestamp() },
        }),
        CustomerAction::BankTransferInstructions {
            reference,
            payee: Some(payee),
        } => json!({
            "type": "bank_transfer_instructions",
            "reference": reference,
            "account_holder": payee.holder,
            "iban": payee.iban,
            "bic": payee.bic,
            "routing_number": payee.routing_number,
            "account_number": payee.account_number,
            "amount": payee.amount,
            "currency": payee.currency,
        }),
        CustomerAction::BankTransferInstructions {
            reference,
            payee: None,
        } => json!({
            "type": "bank_transfer_instructions",
            "reference": reference,
            "account_holder": "E-PG Sandbox Clearing",
            "iban": "XX00EPGSANDBOX0000000000",
        }),
        CustomerAction::MailCheck { reference } => json!({
            "type": "mail_check",
            "reference": reference,
            "payable_to": "E-PG Sandbox Lockbox",
        }),
    }
}

/// Whether `payment` may be confirmed with `kind` now.
fn confirmable(payment: &Payment, kind: MethodType) -> Result<(), PaymentError> {
    if !matches!(
        payment.status,
        Status::RequiresPaymentMethod | Status::Failed
    ) {
        return Err(unexpected_state(payment, "confirm"));
    }
    if !payment
        .payment_method_types
        .iter()
        .any(|t| t == kind.as_str())
    {
        return Err(PaymentError::invalid(
            "payment_method.type",
            format!(
                "{} is not among this payment's payment_method_types",
                kind.as_str()
            ),
        ));
    }
    Ok(())
}

/// `method` has no processor (or chain) on this node.
fn unavailable(param: String, method: MethodType) -> PaymentError {
    PaymentError::refused(
        "payment_method_unavailable",
        param,
        format!(
            "{} payments are not available on this node.",
            method.as_str()
        ),
    )
}

/// Now, truncated to microseconds as PostgreSQL stores it, so an object
/// answered before and after a round trip through the database is equal.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}
