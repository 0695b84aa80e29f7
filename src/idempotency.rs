//! Saved responses for `Idempotency-Key` (docs/api.md, "Idempotency and retries").
//!
//! The first request under a key inserts a row and runs; its response is
//! saved. A retry with the same method, path and body gets the saved
//! response; anything else under that key is refused. The insert's primary
//! key decides which of two concurrent requests runs, so exactly one does.
//!
//! Keys belong to a merchant and a kind of key: the publishable key sits in
//! every customer's browser, so it must neither replay what the secret key
//! saved nor claim a key the merchant's server is about to use. A record
//! keeps a keyed MAC of its request, never a plain hash: a confirmation
//! body is a card number and a CVC away from fully known, and a card number
//! is a BIN, last four and a Luhn digit away from guessed.

use std::time::Duration;

use time::OffsetDateTime;

use crate::crypto::{Keyring, Purpose, RequestMac, Sealer};
use crate::db::Db;
use crate::merchants::{Caller, KeyKind};

/// How long saved responses are kept.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do with a request carrying an idempotency key.
#[derive(Debug)]
pub enum Claim {
    /// This request owns the key: run it, then [`IdempotencyStore::complete`].
    Run,
    /// A finished twin: answer its saved response.
    Replay {
        /// Saved HTTP status.
        status: u16,
        /// Saved JSON body.
        body: Vec<u8>,
    },
    /// The key was used for a different request.
    Mismatch,
    /// The twin is still running.
    InProgress,
}

/// Whether a response with `status` is saved for retries. A server error
/// is the node's fault, so the retry runs again. 401, 403 and 429 judge
/// the caller or the moment, not the request: saved, they would let
/// whoever sent first decide what every retry gets.
pub fn is_saved(status: u16) -> bool {
    !(status >= 500 || matches!(status, 401 | 403 | 429))
}

/// Idempotency records.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    pool: Db,
    /// Saved responses are sealed: they can hold secrets shown once (a
    /// webhook endpoint's signing secret, a payment's client secret).
    sealer: Sealer,
    /// MACs the request a key was first used for.
    mac: RequestMac,
    /// How long a running request keeps its claim; a node that died
    /// mid-request releases the key after this.
    lease: Duration,
}

/// What a sealed response is bound to: it opens for this merchant's key
/// of this kind only.
pub(crate) fn context(merchant: &str, kind: &str, key: &str) -> Vec<u8> {
    format!("epg.idempotency.v2:{merchant}:{kind}:{key}").into_bytes()
}

impl IdempotencyStore {
    /// A store whose claims last `lease`, sealing responses and MACing
    /// requests with subkeys of `keys`.
    pub fn new(pool: Db, lease: Duration, keys: &Keyring) -> Self {
        Self {
            pool,
            sealer: keys.sealer(Purpose::IdempotentResponses),
            mac: keys.idempotency_mac(),
            lease,
        }
    }

    /// How long a claim lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Claims `key` of `caller` for a request, or tells how to answer it.
    pub async fn claim(
        &self,
        caller: &Caller,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Claim, sqlx::Error> {
        Ok(self.claim_leased(caller, key, method, path, body).await?.0)
    }

    /// [`Self::claim`], with, for [`Claim::Run`], the end of the claim's
    /// lease: it tells this claim from a later one of the same key, for
    /// [`Self::end_claim`] and [`Self::complete_claim`].
    pub async fn claim_leased(
        &self,
        caller: &Caller,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(Claim, Option<OffsetDateTime>), sqlx::Error> {
        let merchant = caller.merchant_id.as_str();
        let kind = caller.kind.to_string();
        let kind = kind.as_str();
        let request: [&[u8]; 3] = [method.as_bytes(), path.as_bytes(), body];
        let tag = self.mac.tag(&request);
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let retention_s = i64::try_from(RETENTION.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query_scalar!(
            r#"INSERT INTO idempotency_keys
                   (merchant_id, key_kind, key, request_method, request_path, request_hash,
                    locked_until)
               VALUES ($1, $2::text, $3::text, $4, $5, $6::bytea,
                       now() + $7::bigint * interval '1 millisecond')
               ON CONFLICT DO NOTHING
               RETURNING locked_until"#,
            merchant,
            kind,
            key,
            method,
            path,
            &tag,
            lease_ms,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(until) = inserted {
            tx.commit().await?;
            return Ok((Claim::Run, Some(until)));
        }
        let row = sqlx::query!(
            r#"SELECT request_hash, response_status, response_body,
                      locked_until < now() AS "lease_expired!",
                      created_at < now() - $4::bigint * interval '1 second' AS "expired!"
               FROM idempotency_keys WHERE merchant_id = $1 AND key_kind = $2 AND key = $3
               FOR UPDATE"#,
            merchant,
            kind,
            key,
            retention_s,
        )
        .fetch_one(&mut *tx)
        .await?;
        let take_over = if row.expired {
            // Past retention the key is free again, whatever it held.
            true
        } else if !self.mac.verify(&row.request_hash, &request) {
            return Ok((Claim::Mismatch, None));
        } else if let (Some(status), Some(sealed)) = (row.response_status, row.response_body) {
            let body = self
                .sealer
                .open(&sealed, &context(merchant, kind, key))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            return Ok((
                Claim::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    body,
                },
                None,
            ));
        } else {
            row.lease_expired
        };
        if !take_over {
            return Ok((Claim::InProgress, None));
        }
        let until = sqlx::query_scalar!(
            r#"UPDATE idempotency_keys
               SET request_method = $4, request_path = $5, request_hash = $6::bytea,
                   response_status = NULL, response_body = NULL, created_at = now(),
                   locked_until = now() + $7::bigint * interval '1 millisecond'
               WHERE merchant_id = $1 AND key_kind = $2 AND key = $3
               RETURNING locked_until"#,
            merchant,
            kind,
            key,
            method,
            path,
            &tag,
            lease_ms,
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((Claim::Run, Some(until)))
    }

    /// Ends the lease of the claim that lasts `until`, if it is still
    /// running: its request is over, so a retry may run now instead of
    /// after the lease. For a request that ended without knowing whether
    /// its writes committed (the database connection broke): nothing of
    /// it runs any more, and what it committed carries the key, so the
    /// retry finds it — exactly what it would find after the lease, only
    /// sooner. Returns whether the claim was ended.
    pub async fn end_claim(
        &self,
        caller: &Caller,
        key: &str,
        until: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            r#"UPDATE idempotency_keys SET locked_until = now()
               WHERE merchant_id = $1 AND key_kind = $2 AND key = $3
                 AND response_status IS NULL AND locked_until = $4"#,
            caller.merchant_id.as_str(),
            caller.kind as KeyKind,
            key,
            until,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// [`Self::complete`] for the claim that lasts `until` only, and only
    /// while no response is saved: late, it must not overwrite what a
    /// later claim of the key saved.
    pub async fn complete_claim(
        &self,
        caller: &Caller,
        key: &str,
        until: OffsetDateTime,
        status: u16,
        body: &[u8],
    ) -> Result<bool, sqlx::Error> {
        let merchant = caller.merchant_id.as_str();
        let kind = caller.kind.to_string();
        let kind = kind.as_str();
        let done = sqlx::query!(
            r#"UPDATE idempotency_keys SET response_status = $4, response_body = $5
               WHERE merchant_id = $1 AND key_kind = $2 AND key = $3
                 AND response_status IS NULL AND locked_until = $6"#,
            merchant,
            kind,
            key,
            i16::try_from(status).unwrap_or(500),
            self.sealer.seal(body, &context(merchant, kind, key)),
            until,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Saves the response of a request that ran.
    pub async fn complete(
        &self,
        caller: &Caller,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), sqlx::Error> {
        let merchant = caller.merchant_id.as_str();
        let kind = caller.kind.to_string();
        let kind = kind.as_str();
        sqlx::query!(
            r#"UPDATE idempotency_keys SET response_status = $4, response_body = $5
               WHERE merchant_id = $1 AND key_kind = $2 AND key = $3"#,
            merchant,
            kind,
            key,
            i16::try_from(status).unwrap_or(500),
            self.sealer.seal(body, &context(merchant, kind, key)),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a claim whose response is not to be saved ([`is_saved`]), so
    /// that a retry runs again instead of replaying it.
    pub async fn release(&self, caller: &Caller, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            r#"DELETE FROM idempotency_keys
               WHERE merchant_id = $1 AND key_kind = $2 AND key = $3 AND response_status IS NULL"#,
            caller.merchant_id.as_str(),
            caller.kind as KeyKind,
            key,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes records past retention; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, sqlx::Error> {
        let retention_s = i64::try_from(RETENTION.as_secs()).unwrap_or(i64::MAX);
        let done = sqlx::query!(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::bigint * interval '1 second'",
            retention_s,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::is_saved;

    #[test]
    fn refusals_and_server_errors_are_never_saved() {
        for status in [200, 201, 400, 402, 404, 409] {
            assert!(is_saved(status), "{status}");
        }
        for status in [401, 403, 429, 500, 503] {
            assert!(!is_saved(status), "{status}");
        }
    }
}
