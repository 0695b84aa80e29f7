//! Merchant and key persistence.

use time::OffsetDateTime;

use super::MerchantError;
use super::keys::{ApiKey, KeyKind, NewKey};
use crate::config::Mode;
use crate::crypto::constant_time_eq;
use crate::db::Db;
use crate::ids::{ApiKeyId, MerchantId};

/// Every payment method type a merchant may take (docs/api.md names), in
/// the order they are listed.
pub const PAYMENT_METHOD_TYPES: [&str; 6] = [
    "card",
    "bank_transfer",
    "ewallet",
    "cash_voucher",
    "check",
    "crypto",
];

/// A merchant as stored.
#[derive(Debug, Clone)]
pub struct Merchant {
    /// `mer_…`.
    pub id: MerchantId,
    /// Display name.
    pub name: String,
    /// Enabled payment method types (docs/api.md names).
    pub payment_method_types: Vec<String>,
    /// Where crypto settlements are paid out, if set.
    pub payout_address: Option<String>,
    /// `manual`, `daily` or `weekly`.
    pub payout_schedule: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// Who is calling: the merchant a key belongs to, and what the key may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Every query of the request is scoped to this merchant.
    pub merchant_id: MerchantId,
    /// The key that authenticated the request.
    pub key_id: ApiKeyId,
    /// Secret or publishable.
    pub kind: KeyKind,
    /// The merchant's enabled payment method types, read with the key (a
    /// payment's create needs them; reading them here saves it a round
    /// trip; shared, as the caller is cloned by each extractor). `None`
    /// for a caller authenticated by a client secret.
    pub enabled_methods: Option<std::sync::Arc<[String]>>,
}

/// A key as listed (never its secret).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// `key_…`.
    pub id: ApiKeyId,
    /// Owner.
    pub merchant_id: MerchantId,
    /// `secret` or `publishable`.
    pub kind: String,
    /// Last four characters of the key.
    pub last4: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// When revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Merchant and key queries.
#[derive(Debug, Clone)]
pub struct MerchantStore {
    pool: Db,
}

impl MerchantStore {
    /// A store over `pool`.
    pub fn new(pool: Db) -> Self {
        Self { pool }
    }

    /// Creates a merchant with every payment method enabled.
    pub async fn create(&self, name: &str) -> Result<Merchant, MerchantError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(MerchantError::Invalid {
                param: "name",
                message: "must be 1 to 200 characters".into(),
            });
        }
        let id = MerchantId::generate();
        let row = sqlx::query!(
            r#"INSERT INTO merchants (id, name) VALUES ($1, $2)
               RETURNING payment_method_types, payout_address, payout_schedule, created_at"#,
            id.as_str(),
            name,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Merchant {
            id,
            name: name.to_owned(),
            payment_method_types: row.payment_method_types,
            payout_address: row.payout_address,
            payout_schedule: row.payout_schedule,
            created_at: row.created_at,
        })
    }

    /// One merchant.
    pub async fn get(&self, id: &MerchantId) -> Result<Merchant, MerchantError> {
        let row = sqlx::query!(
            r#"SELECT name, payment_method_types, payout_address, payout_schedule, created_at
               FROM merchants WHERE id = $1"#,
            id.as_str()
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| MerchantError::NotFound(id.to_string()))?;
        Ok(Merchant {
            id: id.clone(),
            name: row.name,
            payment_method_types: row.payment_method_types,
            payout_address: row.payout_address,
            payout_schedule: row.payout_schedule,
            created_at: row.created_at,
        })
    }

    /// Changes the name and/or payout schedule; `None` keeps a field.
    pub async fn update(
        &self,
        id: &MerchantId,
        name: Option<&str>,
        payout_schedule: Option<&str>,
    ) -> Result<Merchant, MerchantError> {
        if let Some(name) = name
            // Only ASCII white space counts as blank, as the API document says.
            && (name.trim_ascii().is_empty() || name.chars().count() > 200)
        {
            return Err(MerchantError::Invalid {
                param: "name",
                message: "must be 1 to 200 characters".into(),
            });
        }
        if let Some(schedule) = payout_schedule
            && !["manual", "daily", "weekly"].contains(&schedule)
        {
            return Err(MerchantError::Invalid {
                param: "payouts.schedule",
                message: "must be one of manual, daily, weekly".into(),
            });
        }
        let updated = sqlx::query!(
            r#"UPDATE merchants SET name = COALESCE($2, name),
                                    payout_schedule = COALESCE($3, payout_schedule)
               WHERE id = $1"#,
            id.as_str(),
            name.map(str::trim),
            payout_schedule,
        )
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MerchantError::NotFound(id.to_string()));
        }
        self.get(id).await
    }

    /// Sets or clears where the merchant's crypto payouts go.
    pub async fn set_payout_address(
        &self,
        id: &MerchantId,
        address: Option<alloy::primitives::Address>,
    ) -> Result<(), MerchantError> {
        let updated = sqlx::query!(
            "UPDATE merchants SET payout_address = $2 WHERE id = $1",
            id.as_str(),
            address.map(|a| format!("{a:#x}")),
        )
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MerchantError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Sets which payment method types the merchant takes: a subset of
    /// [`PAYMENT_METHOD_TYPES`], in that order.
    pub async fn set_payment_methods(
        &self,
        id: &MerchantId,
        types: &[String],
    ) -> Result<Vec<String>, MerchantError> {
        if let Some(unknown) = types
            .iter()
            .find(|t| !PAYMENT_METHOD_TYPES.contains(&t.as_str()))
        {
            return Err(MerchantError::Invalid {
                param: "payment_method_types",
                message: format!(
                    "unknown type `{unknown}`; expected some of {}",
                    PAYMENT_METHOD_TYPES.join(", ")
                ),
            });
        }
        let ordered: Vec<String> = PAYMENT_METHOD_TYPES
            .iter()
            .filter(|t| types.iter().any(|x| x == *t))
            .map(|t| (*t).to_owned())
            .collect();
        let updated = sqlx::query!(
            "UPDATE merchants SET payment_method_types = $2 WHERE id = $1",
            id.as_str(),
            &ordered,
        )
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MerchantError::NotFound(id.to_string()));
        }
        Ok(ordered)
    }

    /// The risk score (0–100) at or above which the merchant's payments
    /// are blocked.
    pub async fn risk_threshold(&self, id: &MerchantId) -> Result<i16, MerchantError> {
        sqlx::query_scalar!(
            "SELECT risk_threshold FROM merchants WHERE id = $1",
            id.as_str()
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| MerchantError::NotFound(id.to_string()))
    }

    /// Sets the risk threshold (0–100).
    pub async fn set_risk_threshold(
        &self,
        id: &MerchantId,
        threshold: i64,
    ) -> Result<(), MerchantError> {
        let threshold = i16::try_from(threshold)
            .ok()
            .filter(|t| (0..=100).contains(t))
            .ok_or_else(|| MerchantError::Invalid {
                param: "risk_threshold",
                message: "must be an integer from 0 to 100".into(),
            })?;
        let updated = sqlx::query!(
            "UPDATE merchants SET risk_threshold = $2 WHERE id = $1",
            id.as_str(),
            threshold,
        )
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(MerchantError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Revokes `merchant`'s key `id` (another merchant's key is not found).
    pub async fn revoke_key_of(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
    ) -> Result<(), MerchantError> {
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND merchant_id = $2 AND revoked_at IS NULL",
            id.as_str(),
            merchant.as_str()
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(MerchantError::NotFound(format!("active key {id}")));
        }
        Ok(())
    }

    /// Rolls `merchant`'s active key `id`: a new key of the same kind and
    /// mode replaces it, and the old one stops working, in one
    /// transaction (never both or neither). The [`NewKey`] is the only
    /// copy of the new key's clear text.
    pub async fn roll_key(
        &self,
        merchant: &MerchantId,
        id: &ApiKeyId,
    ) -> Result<(ApiKeyId, NewKey), MerchantError> {
        let mut tx = self.pool.begin().await?;
        let old = sqlx::query!(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND merchant_id = $2 AND revoked_at IS NULL
             RETURNING kind, mode",
            id.as_str(),
            merchant.as_str()
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| MerchantError::NotFound(format!("active key {id}")))?;
        let corrupt = |what: &str| MerchantError::Invalid {
            param: "key",
            message: format!("stored key has an unknown {what}"),
        };
        let kind: KeyKind = old.kind.parse().map_err(|_| corrupt("kind"))?;
        let mode: Mode = old.mode.parse().map_err(|_| corrupt("mode"))?;
        let key = NewKey::generate(kind, mode);
        let parsed = key.parsed().ok_or_else(|| MerchantError::Invalid {
            param: "key",
            message: "generated key did not parse".into(),
        })?;
        let new_id = ApiKeyId::generate();
        sqlx::query!(
            r#"INSERT INTO api_keys (id, merchant_id, kind, mode, lookup, key_hash, last4)
               VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
            new_id.as_str(),
            merchant.as_str(),
            kind as KeyKind,
            mode as Mode,
            parsed.lookup(),
            &parsed.hash()[..],
            &key.secret[key.secret.len() - 4..],
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((new_id, key))
    }

    /// Every merchant, oldest first.
    pub async fn list(&self) -> Result<Vec<Merchant>, MerchantError> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: MerchantId", name, payment_method_types, payout_address,
                      payout_schedule, created_at
               FROM merchants ORDER BY created_at, id"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Merchant {
                id: row.id,
                name: row.name,
                payment_method_types: row.payment_method_types,
                payout_address: row.payout_address,
                payout_schedule: row.payout_schedule,
                created_at: row.created_at,
            })
            .collect())
    }

    /// Creates a key for `merchant`; the returned [`NewKey`] is the only copy
    /// of its clear text.
    pub async fn create_key(
        &self,
        merchant: &MerchantId,
        kind: KeyKind,
        mode: Mode,
    ) -> Result<(ApiKeyId, NewKey), MerchantError> {
        let key = NewKey::generate(kind, mode);
        let parsed = key.parsed().ok_or_else(|| MerchantError::Invalid {
            param: "key",
            message: "generated key did not parse".into(),
        })?;
        let id = ApiKeyId::generate();
        let last4 = &key.secret[key.secret.len() - 4..];
        let inserted = sqlx::query!(
            r#"INSERT INTO api_keys (id, merchant_id, kind, mode, lookup, key_hash, last4)
               SELECT $1, m.id, $3, $4, $5, $6, $7 FROM merchants m WHERE m.id = $2"#,
            id.as_str(),
            merchant.as_str(),
            kind as KeyKind,
            mode as Mode,
            parsed.lookup(),
            &parsed.hash()[..],
            last4,
        )
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(MerchantError::NotFound(merchant.to_string()));
        }
        Ok((id, key))
    }

    /// Revokes a key; it stops working at once.
    pub async fn revoke_key(&self, id: &ApiKeyId) -> Result<(), MerchantError> {
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            id.as_str()
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(MerchantError::NotFound(format!("active key {id}")));
        }
        Ok(())
    }

    /// The keys of a merchant, newest first.
    pub async fn list_keys(&self, merchant: &MerchantId) -> Result<Vec<KeyInfo>, MerchantError> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: ApiKeyId", kind, last4, created_at, revoked_at FROM api_keys
               WHERE merchant_id = $1 ORDER BY created_at DESC, id"#,
            merchant.as_str()
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| KeyInfo {
                id: row.id,
                merchant_id: merchant.clone(),
                kind: row.kind,
                last4: row.last4,
                created_at: row.created_at,
                revoked_at: row.revoked_at,
            })
            .collect())
    }

    /// Finds the active key matching `key` in `mode`, comparing hashes in
    /// constant time. `None` for an unknown, revoked or wrong-mode key.
    pub async fn authenticate(
        &self,
        key: &ApiKey,
        mode: Mode,
    ) -> Result<Option<Caller>, MerchantError> {
        if key.mode() != mode {
            return Ok(None);
        }
        let candidates = sqlx::query!(
            r#"SELECT k.id AS "id: ApiKeyId", k.merchant_id AS "merchant_id: MerchantId", k.kind,
                      k.key_hash, m.payment_method_types
               FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
               WHERE k.lookup = $1 AND k.mode = $2 AND k.revoked_at IS NULL"#,
            key.lookup(),
            mode as Mode,
        )
        .fetch_all(&self.pool)
        .await?;
        let hash = key.hash();
        let mut found = None;
        // Compare against every candidate so the time does not depend on
        // which one matched.
        for row in candidates {
            if constant_time_eq(&row.key_hash, &hash) && row.kind == key.kind().to_string() {
                found = Some(row);
            }
        }
        Ok(found.map(|row| Caller {
            merchant_id: row.merchant_id,
            key_id: row.id,
            kind: key.kind(),
            enabled_methods: Some(row.payment_method_types.into()),
        }))
    }
}
