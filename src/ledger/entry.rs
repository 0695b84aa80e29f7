//! Journal entries: building them, and writing them once.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{AccountRef, LedgerError, TxnId};
use crate::money::{Amount, AssetCode};

/// What an entry records; shown as the balance transaction's `type`.
/// Subsystems may name their own with [`EntryKind::custom`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryKind(&'static str);

impl EntryKind {
    /// A payment captured or received (card capture, bank transfer cleared,
    /// crypto confirmed).
    pub const PAYMENT: EntryKind = EntryKind("payment");
    /// A card authorization (opens a hold).
    pub const AUTHORIZATION: EntryKind = EntryKind("authorization");
    /// A refund to the customer.
    pub const REFUND: EntryKind = EntryKind("refund");
    /// A refund that failed and came back.
    pub const REFUND_FAILURE: EntryKind = EntryKind("refund_failure");
    /// Funds withdrawn for a dispute.
    pub const DISPUTE: EntryKind = EntryKind("dispute");
    /// Dispute funds returned (dispute won).
    pub const DISPUTE_REVERSAL: EntryKind = EntryKind("dispute_reversal");
    /// A bank transfer returned or a check bounced after clearing.
    pub const PAYMENT_REVERSAL: EntryKind = EntryKind("payment_reversal");
    /// A crypto receipt undone by a reorg deeper than its confirmations.
    pub const CHAIN_REVERSAL: EntryKind = EntryKind("chain_reversal");
    /// Pending funds becoming available.
    pub const AVAILABILITY: EntryKind = EntryKind("availability");
    /// Funds moved into or out of the reserve.
    pub const RESERVE: EntryKind = EntryKind("reserve");
    /// A settlement batch.
    pub const SETTLEMENT: EntryKind = EntryKind("settlement");
    /// A payout to the merchant.
    pub const PAYOUT: EntryKind = EntryKind("payout");
    /// A payout that failed and came back.
    pub const PAYOUT_FAILURE: EntryKind = EntryKind("payout_failure");
    /// An operator's correction.
    pub const ADJUSTMENT: EntryKind = EntryKind("adjustment");
    /// A hold released by [`super::void_hold`].
    pub const HOLD_VOID: EntryKind = EntryKind("hold_void");
    /// A hold released by [`super::expire_holds`].
    pub const HOLD_EXPIRY: EntryKind = EntryKind("hold_expiry");

    /// Another kind: lower-case letters and `_`, at most 40 (checked when
    /// the entry is posted).
    pub const fn custom(name: &'static str) -> Self {
        EntryKind(name)
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// One line of an entry: an amount of one asset on one account, positive
/// for a debit, negative for a credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// The account.
    pub account: AccountRef,
    /// The asset (the account exists per asset).
    pub asset: AssetCode,
    /// Smallest units; > 0 debit, < 0 credit, never 0.
    pub amount: Amount,
    /// A fee charged (or returned), shown apart in balance transactions.
    pub fee: bool,
}

/// Where a row's amount goes on its balance (stored by its serde name).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    Posted,
    /// The debit leg of a hold (+ opening it, - releasing it).
    PendingDebit,
    /// The credit leg of a hold (- opening it, + releasing it).
    PendingCredit,
}

crate::names!(Phase);

/// A posting as written, with its phase.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub account: AccountRef,
    pub asset: AssetCode,
    pub amount: Amount,
    pub phase: Phase,
    pub fee: bool,
}

impl From<&Posting> for Row {
    fn from(p: &Posting) -> Self {
        Row {
            account: p.account.clone(),
            asset: p.asset.clone(),
            amount: p.amount,
            phase: Phase::Posted,
            fee: p.fee,
        }
    }
}

/// A journal entry to post: its key, what it is, the object it belongs to,
/// and its postings. Built with the methods below, which take positive
/// amounts and give them their sign.
#[derive(Debug, Clone)]
pub struct Entry {
    pub(crate) key: String,
    pub(crate) kind: EntryKind,
    pub(crate) source: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) postings: Vec<Posting>,
    /// The first builder misuse (a non-positive amount), reported on post.
    invalid: Option<String>,
}

impl Entry {
    /// An entry with no postings yet. `key` makes it idempotent: derive it
    /// from the object and the step (`pay_…:capture`, `re_…`).
    pub fn new(key: impl Into<String>, kind: EntryKind) -> Self {
        Self {
            key: key.into(),
            kind,
            source: None,
            description: None,
            postings: Vec::new(),
            invalid: None,
        }
    }

    /// The object it belongs to (`pay_…`, `re_…`, `dp_…`, `st_…`).
    #[must_use]
    pub fn source(mut self, id: impl Into<String>) -> Self {
        self.source = Some(id.into());
        self
    }

    /// A human-readable description (at most 500 characters).
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    fn push(mut self, account: AccountRef, asset: &AssetCode, amount: Amount, fee: bool) -> Self {
        self.postings.push(Posting {
            account,
            asset: asset.clone(),
            amount,
            fee,
        });
        self
    }

    fn positive(&mut self, amount: Amount, what: &str) -> bool {
        if amount.is_positive() {
            return true;
        }
        if self.invalid.is_none() {
            self.invalid = Some(format!("{what} amount must be positive, got {amount}"));
        }
        false
    }

    /// Debits `account` by `amount` (> 0).
    #[must_use]
    pub fn debit(mut self, account: AccountRef, asset: &AssetCode, amount: Amount) -> Self {
        if !self.positive(amount, "a debit") {
            return self;
        }
        self.push(account, asset, amount, false)
    }

    /// Credits `account` by `amount` (> 0).
    #[must_use]
    pub fn credit(mut self, account: AccountRef, asset: &AssetCode, amount: Amount) -> Self {
        if !self.positive(amount, "a credit") {
            return self;
        }
        self.push(account, asset, amount.negated(), false)
    }

    /// Debits `debit` and credits `credit` by `amount` (> 0): a card
    /// capture debits `clearing/card` and credits the merchant's `pending`.
    #[must_use]
    pub fn transfer(
        self,
        debit: AccountRef,
        credit: AccountRef,
        asset: &AssetCode,
        amount: Amount,
    ) -> Self {
        self.debit(debit, asset, amount)
            .credit(credit, asset, amount)
    }

    /// Charges a fee: debits `payer` and credits `fee_revenue`, both
    /// flagged as fee. A zero fee adds nothing.
    #[must_use]
    pub fn fee(self, payer: AccountRef, asset: &AssetCode, amount: Amount) -> Self {
        self.fee_to(payer, AccountRef::fee_revenue(), asset, amount)
    }

    /// As [`Entry::fee`], into a given revenue account (e.g. per method).
    #[must_use]
    pub fn fee_to(
        mut self,
        payer: AccountRef,
        revenue: AccountRef,
        asset: &AssetCode,
        amount: Amount,
    ) -> Self {
        if amount.is_zero() || !self.positive(amount, "a fee") {
            return self;
        }
        self.push(payer, asset, amount, true)
            .push(revenue, asset, amount.negated(), true)
    }

    /// Returns a fee (a fee refund): the reverse of [`Entry::fee`].
    #[must_use]
    pub fn fee_refund(mut self, payer: AccountRef, asset: &AssetCode, amount: Amount) -> Self {
        if amount.is_zero() || !self.positive(amount, "a fee refund") {
            return self;
        }
        self.push(AccountRef::fee_revenue(), asset, amount, true)
            .push(payer, asset, amount.negated(), true)
    }

    /// Adds a posting as is.
    #[must_use]
    pub fn posting(mut self, posting: Posting) -> Self {
        self.postings.push(posting);
        self
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The postings so far.
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Checks what does not depend on the postings' phases.
    pub(crate) fn validate_header(&self) -> Result<(), LedgerError> {
        let invalid = |m: String| Err(LedgerError::Invalid(m));
        if let Some(message) = &self.invalid {
            return invalid(message.clone());
        }
        let key_len = self.key.chars().count();
        if key_len == 0 || key_len > 255 {
            return invalid(format!(
                "the key must be 1 to 255 characters, got {key_len}"
            ));
        }
        let kind = self.kind.as_str();
        let kind_ok = kind.len() <= 40
            && kind.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !kind_ok {
            return invalid(format!("invalid entry kind {kind:?}"));
        }
        if let Some(source) = &self.source {
            let ok = source.split_once('_').is_some_and(|(prefix, rest)| {
                (2..=6).contains(&prefix.len())
                    && prefix.bytes().all(|b| b.is_ascii_lowercase())
                    && (1..=64).contains(&rest.len())
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            if !ok {
                return invalid(format!("source {source:?} is not an object id"));
            }
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 500)
        {
            return invalid("the description is longer than 500 characters".into());
        }
        Ok(())
    }

    /// What the content hash covers, besides what the operation adds.
    pub(crate) fn canonical(&self) -> serde_json::Value {
        json!({
            "kind": self.kind.as_str(),
            "source": self.source,
            "description": self.description,
            "postings": self.postings.iter().map(|p| json!([
                p.account.to_string(), p.asset.as_str(), p.amount.to_string(), p.fee
            ])).collect::<Vec<_>>(),
        })
    }
}

/// What was written (or found, on a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The balance transaction id.
    pub id: TxnId,
    /// Internal order of entries.
    pub seq: i64,
    /// The caller's key.
    pub key: String,
    /// When it was first written.
    pub created_at: OffsetDateTime,
    /// Whether this call found the entry already written.
    pub replayed: bool,
}

/// Checks rows before they go to the database (which checks them again):
/// amounts non-zero, each phase summing to zero per asset, and a merchant
/// touched in one asset only (its balance transaction has one currency).
pub(crate) fn validate_rows(rows: &[Row], min: usize) -> Result<(), LedgerError> {
    let invalid = |m: String| Err(LedgerError::Invalid(m));
    if rows.len() < min {
        return invalid(format!(
            "an entry needs at least {min} postings, got {}",
            rows.len()
        ));
    }
    if rows.len() > 1000 {
        return invalid("an entry has at most 1000 postings".into());
    }
    let mut sums: BTreeMap<(&str, bool), i128> = BTreeMap::new();
    let mut merchant_assets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for row in rows {
        if row.amount.is_zero() {
            return invalid(format!("a posting to {} is zero", row.account));
        }
        // 1000 amounts of at most 10^28 cannot overflow an i128.
        *sums
            .entry((row.asset.as_str(), row.phase == Phase::Posted))
            .or_default() += row.amount.units();
        if let Some(merchant) = row.account.merchant_id()
            && row.phase == Phase::Posted
        {
            merchant_assets
                .entry(merchant.as_str())
                .or_default()
                .insert(row.asset.as_str());
        }
    }
    if let Some(((asset, posted), sum)) = sums.iter().find(|(_, sum)| **sum != 0) {
        let what = if *posted { "posted" } else { "pending" };
        return invalid(format!(
            "the entry does not balance: its {what} {asset} postings sum to {sum}"
        ));
    }
    if let Some((merchant, assets)) = merchant_assets.iter().find(|(_, a)| a.len() > 1) {
        return invalid(format!(
            "an entry may touch merchant {merchant} in one asset only, not {assets:?}"
        ));
    }
    Ok(())
}

/// SHA-256 of the canonical JSON of an operation.
pub(crate) fn content_hash(op: &serde_json::Value) -> [u8; 32] {
    crate::crypto::sha256(op.to_string().as_bytes())
}

/// Posts a journal entry in the caller's transaction. Posting the same
/// entry (same key, same content) again returns the first one with
/// `replayed: true`; other content under a used key is
/// [`LedgerError::KeyConflict`].
#[tracing::instrument(skip_all, fields(key = %entry.key))]
pub async fn post(conn: &mut PgConnection, entry: &Entry) -> Result<Posted, LedgerError> {
    entry.validate_header()?;
    let rows: Vec<Row> = entry.postings.iter().map(Row::from).collect();
    validate_rows(&rows, 2)?;
    let hash = content_hash(&json!({ "op": "post", "entry": entry.canonical() }));
    write(conn, entry, &rows, &hash).await
}

/// The row of an entry already written under `key`, with its content hash.
pub(crate) async fn find(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Option<(Posted, Vec<u8>)>, LedgerError> {
    let row = sqlx::query!(
        r#"SELECT id, public_id, created_at, content_hash FROM ledger_entries WHERE key = $1"#,
        key
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        (
            Posted {
                id: TxnId(r.public_id),
                seq: r.id,
                key: key.to_owned(),
                created_at: r.created_at,
                replayed: true,
            },
            r.content_hash,
        )
    }))
}

/// The entry already written under `key`, if its content hash is `hash`.
pub(crate) async fn replay(
    conn: &mut PgConnection,
    key: &str,
    hash: &[u8; 32],
) -> Result<Option<Posted>, LedgerError> {
    match find(conn, key).await? {
        None => Ok(None),
        Some((posted, stored)) if stored.as_slice() == hash.as_slice() => Ok(Some(posted)),
        Some(_) => Err(LedgerError::KeyConflict {
            key: key.to_owned(),
        }),
    }
}

/// Writes an entry (`post_entry.sql`), or finds it under its key.
pub(crate) async fn write(
    conn: &mut PgConnection,
    entry: &Entry,
    rows: &[Row],
    hash: &[u8; 32],
) -> Result<Posted, LedgerError> {
    let mut owners = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut qualifiers = Vec::with_capacity(rows.len());
    let mut assets = Vec::with_capacity(rows.len());
    let mut amounts: Vec<Decimal> = Vec::with_capacity(rows.len());
    let mut phases = Vec::with_capacity(rows.len());
    let mut fees = Vec::with_capacity(rows.len());
    for row in rows {
        owners.push(row.account.owner().to_owned());
        kinds.push(row.account.kind());
        qualifiers.push(row.account.qualifier().to_owned());
        assets.push(row.asset.as_str().to_owned());
        amounts.push(row.amount.to_decimal());
        phases.push(row.phase.to_string());
        fees.push(row.fee);
    }
    let id = TxnId::generate();
    let written = sqlx::query_file!(
        "src/ledger/sql/post_entry.sql",
        id.as_str(),
        entry.key,
        &hash[..],
        entry.kind.as_str(),
        entry.source.as_deref(),
        entry.description.as_deref(),
        &owners,
        &kinds,
        &qualifiers,
        &assets,
        &amounts,
        &phases,
        &fees,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match written {
        Some(row) => {
            if usize::try_from(row.postings).ok() != Some(rows.len()) {
                return Err(LedgerError::Invalid(format!(
                    "wrote {} of {} postings",
                    row.postings,
                    rows.len()
                )));
            }
            Ok(Posted {
                id: TxnId(row.public_id),
                seq: row.id,
                key: entry.key.clone(),
                created_at: row.created_at,
                replayed: false,
            })
        }
        None => replay(conn, &entry.key, hash).await?.ok_or_else(|| {
            LedgerError::Invalid(format!("key {:?} conflicted but is not there", entry.key))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MerchantId;
    use crate::ledger::MerchantAccount;

    fn usd() -> AssetCode {
        AssetCode::parse("usd").unwrap()
    }

    fn rows(entry: &Entry) -> Vec<Row> {
        entry.postings.iter().map(Row::from).collect()
    }

    #[test]
    fn a_capture_with_fee_balances() {
        let m = MerchantId::generate();
        let pending = AccountRef::merchant(&m, MerchantAccount::Pending);
        let entry = Entry::new("pay_x:capture", EntryKind::PAYMENT)
            .source("pay_abc")
            .transfer(
                AccountRef::clearing("card"),
                pending.clone(),
                &usd(),
                Amount::from_minor(1000),
            )
            .fee(pending, &usd(), Amount::from_minor(59));
        entry.validate_header().unwrap();
        validate_rows(&rows(&entry), 2).unwrap();
        assert_eq!(entry.postings.len(), 4);
        assert_eq!(
            entry.postings.iter().filter(|p| p.fee).count(),
            2,
            "both fee legs are flagged"
        );
    }

    #[test]
    fn builder_and_validation_refuse_nonsense() {
        let m = MerchantId::generate();
        let pending = AccountRef::merchant(&m, MerchantAccount::Pending);
        let negative = Entry::new("k", EntryKind::PAYMENT).debit(
            AccountRef::suspense(),
            &usd(),
            Amount::from_minor(-1),
        );
        assert!(negative.validate_header().is_err());
        let unbalanced = Entry::new("k", EntryKind::PAYMENT)
            .debit(AccountRef::suspense(), &usd(), Amount::from_minor(2))
            .credit(pending.clone(), &usd(), Amount::from_minor(1));
        assert!(validate_rows(&rows(&unbalanced), 2).is_err());
        let single = Entry::new("k", EntryKind::PAYMENT).debit(
            AccountRef::suspense(),
            &usd(),
            Amount::from_minor(2),
        );
        assert!(validate_rows(&rows(&single), 2).is_err());
        let eth = AssetCode::parse("eth:1").unwrap();
        let two_assets = Entry::new("k", EntryKind::PAYMENT)
            .transfer(
                AccountRef::suspense(),
                pending.clone(),
                &usd(),
                Amount::from_minor(1),
            )
            .transfer(
                AccountRef::treasury(1),
                pending,
                &eth,
                Amount::from_minor(1),
            );
        assert!(validate_rows(&rows(&two_assets), 2).is_err());
        assert!(
            Entry::new("", EntryKind::PAYMENT)
                .validate_header()
                .is_err()
        );
        assert!(
            Entry::new("k", EntryKind::custom("Bad Kind"))
                .validate_header()
                .is_err()
        );
        assert!(
            Entry::new("k", EntryKind::PAYMENT)
                .source("not an id")
                .validate_header()
                .is_err()
        );
        // A zero fee is simply no fee.
        let no_fee =
            Entry::new("k", EntryKind::PAYMENT).fee(AccountRef::suspense(), &usd(), Amount::ZERO);
        assert!(no_fee.postings.is_empty() && no_fee.validate_header().is_ok());
    }

    #[test]
    fn the_hash_covers_every_field() {
        let base = || {
            Entry::new("k", EntryKind::PAYMENT).transfer(
                AccountRef::clearing("card"),
                AccountRef::suspense(),
                &usd(),
                Amount::from_minor(5),
            )
        };
        let h = |e: &Entry| content_hash(&e.canonical());
        assert_eq!(h(&base()), h(&base()));
        assert_ne!(h(&base()), h(&base().source("pay_x")));
        assert_ne!(h(&base()), h(&base().description("x")));
        assert_ne!(
            h(&base()),
            h(&Entry::new("k", EntryKind::REFUND).transfer(
                AccountRef::clearing("card"),
                AccountRef::suspense(),
                &usd(),
                Amount::from_minor(5),
            ))
        );
        assert_ne!(
            h(&base()),
            h(&Entry::new("k", EntryKind::PAYMENT).transfer(
                AccountRef::clearing("card"),
                AccountRef::suspense(),
                &usd(),
                Amount::from_minor(6),
            ))
        );
    }
}
