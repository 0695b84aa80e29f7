//! Re-sealing every sealed value under the current master key.
//!
//! To rotate, an operator moves the current key to
//! `security.previous_master_keys` and sets a new `security.master_key`.
//! From then on values are sealed under the new key, and those sealed under
//! an old one still open (their envelope names the key, see
//! [`crate::crypto`]). [`rotate`] re-seals the old ones: it walks each
//! column below in key order, in small batches, each batch one short
//! transaction that locks its rows `FOR UPDATE SKIP LOCKED` (a row a request
//! holds is left for the next pass), opens each value with the key that
//! sealed it and seals it again under the current key. Card fingerprints
//! are keyed too, so a card's fingerprint is recomputed with its number, in
//! the payment and in the payment's events: under the old key, a
//! fingerprint is a 10^5-guess path back to the card number.
//!
//! This module is the one place that knows where sealed values live:
//!
//! | column | context |
//! |---|---|
//! | `payments.card_number_sealed` (+ `card_fingerprint`, `card`, events) | the payment id |
//! | `webhook_endpoints.secret_sealed` | `webhooks::secret_context`, from the endpoint id |
//! | `idempotency_keys.response_body` | `idempotency::context`, from the record's key |
//! | `merchant_bank_accounts.sealed` | `bank::transfers::merchant_context`, from merchant and currency |
//! | `bank_transfers_out.creditor_sealed` | the transfer's id |
//!
//! `idempotency_keys.request_hash` is a MAC that cannot be recomputed
//! without the request; it names its key, still verifies under a previous
//! key, and expires with its record within a day. [`remaining`] counts it.
//!
//! `epg keys rotate-master` runs [`rotate`] to the end and prints what it
//! did; every node also runs it in the background ([`run`]): at start and
//! then hourly, pausing between batches so it never competes with
//! requests, so a rotation completes by itself (values sealed by a node
//! still on the old key during a rolling restart included). Several nodes
//! may run it at once: a row goes to whoever locks it first, and a row
//! already under the current key is not selected.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::crypto::{Fingerprints, Keyring, Purpose, Sealer};
use crate::db::Db;
use crate::telemetry::metrics::Metrics;

/// How often a node looks for values still sealed under an old key.
pub const PASS_INTERVAL: Duration = Duration::from_secs(3600);

/// How a rotation paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Rows per batch (one transaction).
    pub batch_size: i64,
    /// Pause after each batch, leaving the database to requests.
    pub pause: Duration,
}

impl Options {
    /// The node's background job: small batches, a pause after each.
    pub const BACKGROUND: Options = Options {
        batch_size: 100,
        pause: Duration::from_millis(100),
    };
    /// `epg keys rotate-master`: as fast as the database goes.
    pub const COMMAND: Options = Options {
        batch_size: 500,
        pause: Duration::ZERO,
    };
}

/// What one batch did, and where the next one starts.
#[derive(Debug)]
struct Batch<C> {
    resealed: u64,
    unreadable: u64,
    /// The key of the last row looked at; `None` when there was none.
    last: Option<C>,
}

/// Values of one column.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Re-sealed under the current key.
    pub resealed: u64,
    /// Opened by no configured key (a previous key removed too early, or
    /// tampered data); left as they are.
    pub unreadable: u64,
}

/// What a rotation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Card numbers (and their fingerprints).
    pub cards: Counts,
    /// Webhook endpoints' signing secrets.
    pub webhook_secrets: Counts,
    /// Saved idempotent responses.
    pub saved_responses: Counts,
    /// Bank account details: merchants' payout accounts and the creditors
    /// of outgoing transfers.
    pub bank_details: Counts,
    /// Dashboard users' TOTP secrets (enrolled and offered).
    pub totp_secrets: Counts,
}

impl Report {
    /// Values re-sealed in all.
    pub fn resealed(&self) -> u64 {
        self.cards.resealed
            + self.webhook_secrets.resealed
            + self.saved_responses.resealed
            + self.bank_details.resealed
            + self.totp_secrets.resealed
    }

    /// Values no configured key opens, in all.
    pub fn unreadable(&self) -> u64 {
        self.cards.unreadable
            + self.webhook_secrets.unreadable
            + self.saved_responses.unreadable
            + self.bank_details.unreadable
            + self.totp_secrets.unreadable
    }
}

/// What is still under an old key (or unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// Sealed card numbers.
    pub cards: i64,
    /// Sealed webhook secrets.
    pub webhook_secrets: i64,
    /// Sealed saved responses.
    pub saved_responses: i64,
    /// Sealed bank account details.
    pub bank_details: i64,
    /// Sealed TOTP secrets.
    pub totp_secrets: i64,
    /// Idempotency request MACs under an old key (they expire within a day).
    pub request_macs: i64,
}

impl Remaining {
    /// Sealed values not under the current key.
    pub fn sealed(&self) -> i64 {
        self.cards
            + self.webhook_secrets
            + self.saved_responses
            + self.bank_details
            + self.totp_secrets
    }
}

/// Re-seals every value not sealed under the current key of `keys`, in
/// passes until one finds nothing more it can do, or until `stop`.
/// Unreadable values are counted by the last pass.
pub async fn rotate(
    pool: &Db,
    keys: &Keyring,
    options: &Options,
    stop: &CancellationToken,
) -> Result<Report, sqlx::Error> {
    let mut total = Report::default();
    loop {
        let pass = pass(pool, keys, options, stop).await?;
        for (sum, this) in [
            (&mut total.cards, pass.cards),
            (&mut total.webhook_secrets, pass.webhook_secrets),
            (&mut total.saved_responses, pass.saved_responses),
            (&mut total.bank_details, pass.bank_details),
            (&mut total.totp_secrets, pass.totp_secrets),
        ] {
            sum.resealed += this.resealed;
            sum.unreadable = this.unreadable;
        }
        if pass.resealed() == 0 || stop.is_cancelled() {
            return Ok(total);
        }
    }
}

/// One walk over every sealed column.
async fn pass(
    pool: &Db,
    keys: &Keyring,
    options: &Options,
    stop: &CancellationToken,
) -> Result<Report, sqlx::Error> {
    let cards = keys.sealer(Purpose::Cards);
    let fingerprints = keys.fingerprints();
    let secrets = keys.sealer(Purpose::WebhookSecrets);
    let responses = keys.sealer(Purpose::IdempotentResponses);
    let bank = keys.sealer(Purpose::BankAccounts);
    let totp = keys.sealer(Purpose::TotpSecrets);
    let header = keys.current_header();
    let n = options.batch_size;
    Ok(Report {
        cards: drain(options, stop, |after| {
            cards_batch(pool, &header, &cards, &fingerprints, after, n)
        })
        .await?,
        webhook_secrets: drain(options, stop, |after| {
            webhook_secrets_batch(pool, &header, &secrets, after, n)
        })
        .await?,
        saved_responses: drain(options, stop, |after| {
            saved_responses_batch(pool, &header, &responses, after, n)
        })
        .await?,
        bank_details: {
            let accounts = drain(options, stop, |after| {
                merchant_bank_accounts_batch(pool, &header, &bank, after, n)
            })
            .await?;
            let transfers = drain(options, stop, |after| {
                bank_transfers_batch(pool, &header, &bank, after, n)
            })
            .await?;
            Counts {
                resealed: accounts.resealed + transfers.resealed,
                unreadable: accounts.unreadable + transfers.unreadable,
            }
        },
        totp_secrets: drain(options, stop, |after| {
            totp_secrets_batch(pool, &header, &totp, after, n)
        })
        .await?,
    })
}

/// Dashboard users' TOTP secrets, sealed with the user id as context.
async fn totp_secrets_batch(
    pool: &Db,
    header: &[u8],
    totp: &Sealer,
    after: Option<String>,
    limit: i64,
) -> Result<Batch<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT id, totp_secret, totp_pending FROM dashboard_users
           WHERE (substring(totp_secret FROM 1 FOR 9) <> $1
                  OR substring(totp_pending FROM 1 FOR 9) <> $1)
             AND id > $2
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
        header,
        after.as_deref().unwrap_or(""),
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows.last().map(|r| r.id.clone());
    let (mut ids, mut secrets, mut pendings) = (vec![], vec![], vec![]);
    let mut resealing = Resealing::new(totp);
    for row in rows {
        let context = row.id.as_bytes();
        let mut reseal = |sealed: Option<&[u8]>| match sealed {
            None => Some(None),
            Some(sealed) => resealing
                .reseal(sealed, context, "TOTP secret", &row.id)
                .map(Some),
        };
        // Both or neither: a user's row is written whole.
        let secret = reseal(row.totp_secret.as_deref());
        let pending = reseal(row.totp_pending.as_deref());
        if let (Some(secret), Some(pending)) = (secret, pending) {
            ids.push(row.id);
            secrets.push(secret);
            pendings.push(pending);
        }
    }
    for ((id, secret), pending) in ids.iter().zip(&secrets).zip(&pendings) {
        sqlx::query!(
            "UPDATE dashboard_users SET totp_secret = $2, totp_pending = $3 WHERE id = $1",
            id,
            secret.as_deref(),
            pending.as_deref(),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Batch {
        resealed: ids.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// Merchants' payout bank accounts.
async fn merchant_bank_accounts_batch(
    pool: &Db,
    header: &[u8],
    bank: &Sealer,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Batch<(String, String)>, sqlx::Error> {
    let (after_merchant, after_currency) = after.unwrap_or_default();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT merchant_id, currency, sealed FROM merchant_bank_accounts
           WHERE substring(sealed FROM 1 FOR 9) <> $1 AND (merchant_id, currency) > ($2, $3)
           ORDER BY merchant_id, currency LIMIT $4 FOR UPDATE SKIP LOCKED"#,
        header,
        after_merchant,
        after_currency,
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows
        .last()
        .map(|r| (r.merchant_id.clone(), r.currency.clone()));
    let (mut merchants, mut currencies, mut sealed) = (vec![], vec![], vec![]);
    let mut resealing = Resealing::new(bank);
    for row in rows {
        // A row whose merchant id does not parse has no context to open
        // with: counted as unreadable like one no key opens.
        let context = crate::ids::MerchantId::parse(&row.merchant_id)
            .map(|m| crate::bank::transfers::merchant_context(&m, &row.currency))
            .unwrap_or_default();
        let Some(resealed) = resealing.reseal(
            &row.sealed,
            context.as_bytes(),
            "bank account",
            &row.merchant_id,
        ) else {
            continue;
        };
        sealed.push(resealed);
        merchants.push(row.merchant_id);
        currencies.push(row.currency);
    }
    sqlx::query!(
        r#"UPDATE merchant_bank_accounts a SET sealed = u.sealed
           FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(merchant_id, currency, sealed)
           WHERE a.merchant_id = u.merchant_id AND a.currency = u.currency"#,
        &merchants,
        &currencies,
        &sealed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batch {
        resealed: merchants.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// Creditors of outgoing bank transfers.
async fn bank_transfers_batch(
    pool: &Db,
    header: &[u8],
    bank: &Sealer,
    after: Option<String>,
    limit: i64,
) -> Result<Batch<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT id, creditor_sealed FROM bank_transfers_out
           WHERE substring(creditor_sealed FROM 1 FOR 9) <> $1 AND id > $2
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
        header,
        after.as_deref().unwrap_or(""),
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows.last().map(|r| r.id.clone());
    let (mut ids, mut sealed) = (vec![], vec![]);
    let mut resealing = Resealing::new(bank);
    for row in rows {
        if let Some(resealed) = resealing.reseal(
            &row.creditor_sealed,
            row.id.as_bytes(),
            "creditor account",
            &row.id,
        ) {
            sealed.push(resealed);
            ids.push(row.id);
        }
    }
    sqlx::query!(
        r#"UPDATE bank_transfers_out t SET creditor_sealed = u.sealed
           FROM unnest($1::text[], $2::bytea[]) AS u(id, sealed) WHERE t.id = u.id"#,
        &ids,
        &sealed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batch {
        resealed: ids.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// The re-sealing of one batch: each value opened with whichever
/// configured key sealed it and sealed again under the current key. A value
/// no configured key opens is left as it is, counted, and named in a
/// warning, so an operator learns which rows a removed key still guards.
struct Resealing<'a> {
    sealer: &'a Sealer,
    unreadable: u64,
}

impl<'a> Resealing<'a> {
    fn new(sealer: &'a Sealer) -> Self {
        Self {
            sealer,
            unreadable: 0,
        }
    }

    /// The plaintext of `sealed`, or `None` (counted) when no key opens it.
    fn open(&mut self, sealed: &[u8], context: &[u8], what: &str, row: &str) -> Option<Vec<u8>> {
        let opened = self.sealer.open(sealed, context).ok();
        if opened.is_none() {
            tracing::warn!(row, "{what} opens with no configured master key");
            self.unreadable += 1;
        }
        opened
    }

    /// `sealed` sealed again under the current key, or `None` (counted).
    fn reseal(&mut self, sealed: &[u8], context: &[u8], what: &str, row: &str) -> Option<Vec<u8>> {
        self.open(sealed, context, what, row)
            .map(|plain| self.sealer.seal(&plain, context))
    }
}

/// Runs `batch` from the start of a column to its end (or until `stop`).
async fn drain<C, F, Fut>(
    options: &Options,
    stop: &CancellationToken,
    mut batch: F,
) -> Result<Counts, sqlx::Error>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Batch<C>, sqlx::Error>>,
{
    let mut counts = Counts::default();
    let mut after = None;
    while !stop.is_cancelled() {
        let done = batch(after.take()).await?;
        counts.resealed += done.resealed;
        counts.unreadable += done.unreadable;
        match done.last {
            Some(last) => after = Some(last),
            None => break,
        }
        if !options.pause.is_zero() {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(options.pause) => {}
            }
        }
    }
    Ok(counts)
}

/// Card numbers, their fingerprints, and the fingerprints in the
/// payments' events.
async fn cards_batch(
    pool: &Db,
    header: &[u8],
    cards: &Sealer,
    fingerprints: &Fingerprints,
    after: Option<String>,
    limit: i64,
) -> Result<Batch<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT id, merchant_id, card_number_sealed AS "sealed!" FROM payments
           WHERE card_number_sealed IS NOT NULL
             AND substring(card_number_sealed FROM 1 FOR 9) <> $1 AND id > $2
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
        header,
        after.as_deref().unwrap_or(""),
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows.last().map(|r| r.id.clone());
    let (mut ids, mut merchants, mut sealed, mut prints) = (vec![], vec![], vec![], vec![]);
    let mut resealing = Resealing::new(cards);
    for row in rows {
        // Opened rather than re-sealed in one go: the fingerprint is
        // recomputed from the number under the current key too.
        let Some(number) = resealing.open(&row.sealed, row.id.as_bytes(), "card number", &row.id)
        else {
            continue;
        };
        sealed.push(cards.seal(&number, row.id.as_bytes()));
        prints.push(fingerprints.of(&row.merchant_id, &number));
        ids.push(row.id);
        merchants.push(row.merchant_id);
    }
    sqlx::query!(
        r#"UPDATE payments p
           SET card_number_sealed = u.sealed, card_fingerprint = u.fingerprint,
               card = CASE WHEN p.card ? 'fingerprint'
                           THEN jsonb_set(p.card, '{fingerprint}', to_jsonb(u.fingerprint))
                           ELSE p.card END
           FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(id, sealed, fingerprint)
           WHERE p.id = u.id"#,
        &ids,
        &sealed,
        &prints,
    )
    .execute(&mut *tx)
    .await?;
    // An event is the payment as it was; its card is the same card, so it
    // shows the fingerprint the API now shows.
    sqlx::query!(
        r#"UPDATE events e
           SET data = jsonb_set(e.data, '{object,payment_method,card,fingerprint}',
                                to_jsonb(u.fingerprint))
           FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, merchant_id, fingerprint)
           WHERE e.merchant_id = u.merchant_id AND e.object_id = u.id
             AND e.data #> '{object,payment_method,card,fingerprint}' IS NOT NULL"#,
        &ids,
        &merchants,
        &prints,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batch {
        resealed: ids.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// Webhook endpoints' signing secrets (deleted endpoints' included).
async fn webhook_secrets_batch(
    pool: &Db,
    header: &[u8],
    secrets: &Sealer,
    after: Option<String>,
    limit: i64,
) -> Result<Batch<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT id, secret_sealed FROM webhook_endpoints
           WHERE substring(secret_sealed FROM 1 FOR 9) <> $1 AND id > $2
           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"#,
        header,
        after.as_deref().unwrap_or(""),
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows.last().map(|r| r.id.clone());
    let (mut ids, mut sealed) = (vec![], vec![]);
    let mut resealing = Resealing::new(secrets);
    for row in rows {
        let context = crate::webhooks::secret_context(&row.id);
        if let Some(resealed) =
            resealing.reseal(&row.secret_sealed, &context, "webhook secret", &row.id)
        {
            sealed.push(resealed);
            ids.push(row.id);
        }
    }
    sqlx::query!(
        r#"UPDATE webhook_endpoints w SET secret_sealed = u.sealed
           FROM unnest($1::text[], $2::bytea[]) AS u(id, sealed) WHERE w.id = u.id"#,
        &ids,
        &sealed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batch {
        resealed: ids.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// The primary key of an idempotency record.
type RecordKey = (String, String, String);

/// Saved idempotent responses.
async fn saved_responses_batch(
    pool: &Db,
    header: &[u8],
    responses: &Sealer,
    after: Option<RecordKey>,
    limit: i64,
) -> Result<Batch<RecordKey>, sqlx::Error> {
    let (merchant, kind, key) = after.unwrap_or_default();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT merchant_id, key_kind, key, response_body AS "sealed!" FROM idempotency_keys
           WHERE response_body IS NOT NULL
             AND substring(response_body FROM 1 FOR 9) <> $1
             AND (merchant_id, key_kind, key) > ($2, $3, $4)
           ORDER BY merchant_id, key_kind, key LIMIT $5 FOR UPDATE SKIP LOCKED"#,
        header,
        merchant,
        kind,
        key,
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    let last = rows
        .last()
        .map(|r| (r.merchant_id.clone(), r.key_kind.clone(), r.key.clone()));
    let (mut merchants, mut kinds, mut keys, mut sealed) = (vec![], vec![], vec![], vec![]);
    let mut resealing = Resealing::new(responses);
    for row in rows {
        let context = crate::idempotency::context(&row.merchant_id, &row.key_kind, &row.key);
        if let Some(resealed) =
            resealing.reseal(&row.sealed, &context, "saved response", &row.merchant_id)
        {
            sealed.push(resealed);
            merchants.push(row.merchant_id);
            kinds.push(row.key_kind);
            keys.push(row.key);
        }
    }
    sqlx::query!(
        r#"UPDATE idempotency_keys i SET response_body = u.sealed
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
                AS u(merchant_id, key_kind, key, sealed)
           WHERE i.merchant_id = u.merchant_id AND i.key_kind = u.key_kind AND i.key = u.key"#,
        &merchants,
        &kinds,
        &keys,
        &sealed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Batch {
        resealed: keys.len() as u64,
        unreadable: resealing.unreadable,
        last,
    })
}

/// Counts what is not yet under the current key of `keys`.
pub async fn remaining(pool: &Db, keys: &Keyring) -> Result<Remaining, sqlx::Error> {
    let header = keys.current_header();
    let key_id = keys.current_id();
    let row = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM payments WHERE card_number_sealed IS NOT NULL
                AND substring(card_number_sealed FROM 1 FOR 9) <> $1) AS "cards!",
             (SELECT count(*) FROM webhook_endpoints
                WHERE substring(secret_sealed FROM 1 FOR 9) <> $1) AS "webhook_secrets!",
             (SELECT count(*) FROM idempotency_keys WHERE response_body IS NOT NULL
                AND substring(response_body FROM 1 FOR 9) <> $1) AS "saved_responses!",
             (SELECT count(*) FROM merchant_bank_accounts
                WHERE substring(sealed FROM 1 FOR 9) <> $1)
             + (SELECT count(*) FROM bank_transfers_out
                WHERE substring(creditor_sealed FROM 1 FOR 9) <> $1) AS "bank_details!",
             (SELECT count(*) FROM dashboard_users
                WHERE substring(totp_secret FROM 1 FOR 9) <> $1
                   OR substring(totp_pending FROM 1 FOR 9) <> $1) AS "totp_secrets!",
             (SELECT count(*) FROM idempotency_keys WHERE octet_length(request_hash) > 0
                AND substring(request_hash FROM 1 FOR 8) <> $2) AS "request_macs!""#,
        &header[..],
        key_id.as_bytes(),
    )
    .fetch_one(pool)
    .await?;
    Ok(Remaining {
        cards: row.cards,
        webhook_secrets: row.webhook_secrets,
        saved_responses: row.saved_responses,
        bank_details: row.bank_details,
        totp_secrets: row.totp_secrets,
        request_macs: row.request_macs,
    })
}

/// The background job of a node: a low-priority [`rotate`] at start and
/// every [`PASS_INTERVAL`], until `shutdown`.
pub async fn run(pool: Db, keys: Keyring, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PASS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match rotate(&pool, &keys, &Options::BACKGROUND, &shutdown).await {
            Ok(report) => {
                metrics.add("master_key_resealed", report.resealed());
                if report.resealed() > 0 {
                    tracing::info!(key = %keys.current_id(), cards = report.cards.resealed,
                        webhook_secrets = report.webhook_secrets.resealed,
                        saved_responses = report.saved_responses.resealed,
                        "re-sealed values under the current master key");
                }
                if report.unreadable() > 0 {
                    tracing::error!(
                        unreadable = report.unreadable(),
                        "sealed values open with no configured master key (was a previous key removed too early?)"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e,
                "re-sealing under the current master key failed; retrying at the next pass"),
        }
    }
}
