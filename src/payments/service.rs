//! The payment state machine.
//!
//! Every operation locks the payment row (`SELECT … FOR UPDATE`), checks
//! the transition, talks to the processor, then writes the new state, its
//! ledger entries and its event in the same transaction. Two requests on
//! one payment therefore run one after the other, and a crash leaves either
//! all of a transition or none of it.

use std::sync::Arc;

use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

pub use super::model::{Address, Customer, Shipping};
use super::model::{
    Audience, CaptureMethod, LastError, NextAction, PayeeDetails, Payment, PaymentObject, Status,
    Voucher,
};
use super::processor::{not_found, unexpected_state};
use super::{MAX_AMOUNT, PaymentError, postings, store};
use crate::crypto::{Fingerprints, Keyring, Purpose, Sealer};
use crate::db::Db;
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PaymentId, random_base62};
use crate::metadata::Metadata;
use crate::methods::{Connectors, CustomerAction, MethodType, ProcessorEvent};
use crate::page::{Listed, Page};

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
    /// Where the hosted checkout sends the customer once the payment
    /// ends (already validated by the API).
    pub return_url: Option<String>,
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
        /// Which instructions the quote gives.
        mode: super::crypto::CryptoMode,
    },
}

impl ConfirmMethod {
    pub(super) fn method(&self) -> MethodType {
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
    pool: Db,
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
    /// Merchants' median amounts for the risk score, kept a while.
    medians: Arc<super::medians::Medians>,
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

impl Payments {
    /// The subsystem over `pool`.
    pub fn new(
        pool: Db,
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
            medians: Arc::default(),
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
            .filter(|m| m.parse().is_ok_and(|m| self.offers(m)))
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

    /// Seals card numbers (for the confirmation module).
    pub(super) fn card_sealer(&self) -> &Sealer {
        &self.cards
    }

    /// Per-merchant card fingerprints (for the confirmation module).
    pub(super) fn fingerprints(&self) -> &Fingerprints {
        &self.fingerprints
    }

    /// Confirmations a payment may take.
    pub(super) fn max_confirm_attempts(&self) -> i32 {
        self.max_confirm_attempts
    }

    /// Merchants' median amounts, kept a while for the risk score.
    pub(super) fn medians(&self) -> &super::medians::Medians {
        &self.medians
    }

    /// Base URL of the node, for redirects.
    pub(super) fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The pool (for the refund and dispute modules).
    pub(super) fn pool(&self) -> &Db {
        &self.pool
    }

    /// The connectors (for the refund module).
    pub(super) fn connectors(&self) -> &Connectors {
        &self.connectors
    }

    /// The merchant API object of `payment`: what its events carry (and
    /// the dashboard shows).
    pub fn object(&self, payment: &Payment) -> PaymentObject {
        self.view(payment, Audience::Merchant)
    }

    /// The API object of `payment` for `audience`, with its hosted
    /// checkout link.
    pub fn view(&self, payment: &Payment, audience: Audience) -> PaymentObject {
        PaymentObject {
            checkout_url: Some(self.checkout_url(payment)),
            ..payment.to_api(audience, self.livemode)
        }
    }

    /// The hosted checkout of `payment`: the page authenticates with the
    /// client secret alone, so the link needs no key.
    pub fn checkout_url(&self, payment: &Payment) -> String {
        format!(
            "{}/checkout/{}?client_secret={}",
            self.public_url.trim_end_matches('/'),
            payment.id,
            payment.client_secret
        )
    }

    /// Writes every mutable field of `payment` and the event announcing
    /// it, in one statement ([`store::update_announcing`]): what
    /// `store::update` then [`Payments::announce`] did in two.
    pub(super) async fn save_and_announce(
        &self,
        conn: &mut PgConnection,
        payment: &Payment,
        event_type: EventType,
    ) -> Result<(), PaymentError> {
        let draft = events::draft(&self.object(payment))?;
        store::update_announcing(conn, payment, event_type, &draft).await?;
        Ok(())
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
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let payment = self.new_payment(merchant, enabled_methods, new)?;
        // On the pool, not a connection taken for it: a connection taken
        // goes back with a ping (see `db::pool`), a round trip a payment's
        // create does not need.
        if store::insert(&self.pool, &payment, request_key).await? {
            return Ok(payment);
        }
        self.made_by_request(&self.pool, &payment, request_key)
            .await
    }

    /// The payment an earlier request with `request_key` made, where
    /// `payment` (what this request describes) could not be stored under
    /// the same key: that payment as it stands, so a retry whose first
    /// answer was lost never makes a second one. A key that made a payment
    /// of another amount or currency is refused.
    pub(super) async fn made_by_request(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        payment: &Payment,
        request_key: Option<&str>,
    ) -> Result<Payment, PaymentError> {
        let earlier = match request_key {
            Some(key) => store::by_request(db, &payment.merchant_id, key).await?,
            None => None,
        };
        // The insert only skips a row on this key's conflict.
        let Some(earlier) = earlier else {
            return Err(PaymentError::Busy {
                message: "This request's Idempotency-Key is being used by another request; retry in a moment.".into(),
            });
        };
        let earlier = self.get(&payment.merchant_id, &earlier).await?;
        if earlier.amount != payment.amount || earlier.currency != payment.currency {
            return Err(PaymentError::refused(
                "idempotency_key_reused",
                "Idempotency-Key",
                format!(
                    "This Idempotency-Key made payment {} of another amount or currency.",
                    earlier.id
                ),
            ));
        }
        Ok(earlier)
    }

    /// The payment `new` describes, checked, not yet stored.
    pub(super) fn new_payment(
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
                    if !enabled_methods.iter().any(|m| *m == t.to_string()) {
                        return Err(PaymentError::invalid(
                            format!("payment_method_types[{i}]"),
                            format!("{t} is not enabled for this account"),
                        ));
                    }
                    if !self.offers_in(*t, &new.currency) {
                        return Err(unavailable(format!("payment_method_types[{i}]"), *t));
                    }
                }
                let mut names: Vec<String> = types.iter().map(MethodType::to_string).collect();
                names.dedup();
                names
            }
            None => {
                let offered: Vec<String> = self
                    .offered(enabled_methods)
                    .into_iter()
                    .filter(|m| m.parse().is_ok_and(|m| self.offers_in(m, &new.currency)))
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
            metadata: new.metadata.into_map(),
            customer: new.customer,
            shipping: new.shipping,
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
            return_url: new.return_url,
            created_at: now_micros(),
        };
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
        page: &Page<PaymentId>,
        limit: i64,
    ) -> Result<Listed<Payment>, PaymentError> {
        if let Some(cursor) = page.cursor()
            && !store::exists(&self.pool, merchant, cursor).await?
        {
            return Err(PaymentError::invalid(
                page.param(),
                format!("No such payment: '{cursor}'"),
            ));
        }
        let (starting_after, ending_before) = page.bounds();
        let rows = store::list(
            &self.pool,
            merchant,
            status,
            starting_after,
            ending_before,
            limit + 1,
        )
        .await?;
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut listed = Listed::from_newest_first(rows, limit, page.backwards());
        super::crypto::live_confirmations(&self.pool, &mut listed.data).await?;
        Ok(listed)
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
        if payment.method != Some(expected) {
            return Err(PaymentError::state(
                "payment_method_unexpected",
                format!(
                    "This payment was not confirmed with {expected} (method: {}).",
                    payment
                        .method
                        .map_or_else(|| "none".to_owned(), |m| m.to_string())
                ),
            ));
        }
        match event {
            // The same success told twice (a processor's notification sent
            // again, a retry whose answer was lost) changes nothing: it is
            // answered with the payment as it stands, booked once.
            ProcessorEvent::Succeeded if payment.status == Status::Succeeded => {
                tx.rollback().await?;
                return Ok(payment);
            }
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
                payment.last_error = Some(LastError::later(
                    &reason,
                    match reason.as_str() {
                        "check_bounce" => "The check bounced; the funds were taken back.",
                        _ => "The bank returned the transfer; the funds were taken back.",
                    },
                ));
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
pub(super) fn next_action(action: &CustomerAction) -> NextAction {
    match action {
        CustomerAction::OtpChallenge => NextAction::OtpChallenge,
        CustomerAction::Redirect { url } => NextAction::Redirect {
            redirect_url: url.clone(),
        },
        CustomerAction::DisplayVoucher {
            reference,
            expires_at,
        } => NextAction::DisplayVoucher {
            voucher: Voucher {
                reference: reference.clone(),
                expires_at: expires_at.unix_timestamp(),
            },
        },
        CustomerAction::BankTransferInstructions {
            reference,
            payee: Some(payee),
        } => NextAction::BankTransferInstructions {
            reference: reference.clone(),
            account_holder: payee.holder.clone(),
            iban: payee.iban.clone(),
            payee: Some(PayeeDetails {
                bic: payee.bic.clone(),
                routing_number: payee.routing_number.clone(),
                account_number: payee.account_number.clone(),
                amount: payee.amount,
                currency: payee.currency.clone(),
            }),
        },
        CustomerAction::BankTransferInstructions {
            reference,
            payee: None,
        } => NextAction::BankTransferInstructions {
            reference: reference.clone(),
            account_holder: "E-PG Sandbox Clearing".into(),
            iban: Some("XX00EPGSANDBOX0000000000".into()),
            payee: None,
        },
        CustomerAction::MailCheck { reference } => NextAction::MailCheck {
            reference: reference.clone(),
            payable_to: "E-PG Sandbox Lockbox".into(),
        },
    }
}

/// Whether `payment` may be confirmed with `kind` now.
pub(super) fn confirmable(payment: &Payment, kind: MethodType) -> Result<(), PaymentError> {
    if !matches!(
        payment.status,
        Status::RequiresPaymentMethod | Status::Failed
    ) {
        return Err(unexpected_state(payment, "confirm"));
    }
    if !payment
        .payment_method_types
        .iter()
        .any(|t| *t == kind.to_string())
    {
        return Err(PaymentError::invalid(
            "payment_method.type",
            format!("{kind} is not among this payment's payment_method_types"),
        ));
    }
    Ok(())
}

/// `method` has no processor (or chain) on this node.
pub(super) fn unavailable(param: String, method: MethodType) -> PaymentError {
    PaymentError::refused(
        "payment_method_unavailable",
        param,
        format!("{method} payments are not available on this node."),
    )
}

/// Now, truncated to microseconds as PostgreSQL stores it, so an object
/// answered before and after a round trip through the database is equal.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}
