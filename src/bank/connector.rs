//! `bank_transfer = "iso20022"`: bank transfers into the gateway's own
//! collection accounts, allowed in live mode.
//!
//! The "processor" is the gateway's bank: confirming a payment gives the
//! payer instructions (the collection account of the payment's currency,
//! the amount, and an ISO 11649 RF reference unique to this confirmation)
//! and leaves the payment `processing`; the money arrives later in a
//! statement ([`super::import`]). The reference is drawn once per
//! operation key and stored (`bank_references`, reference UNIQUE), so a
//! retried call answers the same instructions and [`Connector::recover`]
//! finds them. A refund queues a credit transfer back to the account the
//! statement says paid ([`super::transfers::queue_refund`]).

use rand::Rng;

use super::rf::CreditorReference;
use super::{BankAccount, BankError};
use crate::crypto::Sealer;
use crate::db::Db;
use crate::methods::{
    Answer, Authorization, AuthorizeRequest, BoxFuture, Captured, Connector, ConnectorError,
    CustomerAction, MethodDetails, Payee,
};

/// The `iso20022` bank-transfer processor.
pub struct Iso20022 {
    pool: Db,
    accounts: Vec<BankAccount>,
    sealer: Sealer,
}

impl std::fmt::Debug for Iso20022 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iso20022")
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl Iso20022 {
    /// The processor over the configured `accounts`.
    pub fn new(pool: Db, accounts: Vec<BankAccount>, sealer: Sealer) -> Self {
        Self {
            pool,
            accounts,
            sealer,
        }
    }

    fn collection(&self, currency: &str) -> Option<&BankAccount> {
        self.accounts
            .iter()
            .find(|a| a.collection && a.currency == currency)
    }

    fn answer(
        &self,
        reference: &str,
        account: &BankAccount,
        amount: i64,
        currency: &str,
    ) -> Authorization {
        Authorization::Pending {
            reference: reference.to_owned(),
            action: Some(CustomerAction::BankTransferInstructions {
                reference: reference.to_owned(),
                payee: Some(Payee {
                    holder: account.holder.clone(),
                    iban: account.iban.clone(),
                    bic: account.bic.clone(),
                    routing_number: account.routing_number.clone(),
                    account_number: account.account_number.clone(),
                    amount,
                    currency: currency.to_owned(),
                }),
            }),
        }
    }

    async fn stored(&self, key: &str) -> Result<Option<Authorization>, ConnectorError> {
        let row: Option<(String, String, i64, String)> = sqlx::query_as(
            "SELECT reference, account_id, amount, currency FROM bank_references WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(ConnectorError::Storage)?;
        Ok(row.and_then(|(reference, account, amount, currency)| {
            self.accounts
                .iter()
                .find(|a| a.id == account)
                .map(|a| self.answer(&reference, a, amount, &currency))
        }))
    }
}

/// 16 random letters and digits: 36^16 ≈ 8·10^24 references.
fn random_body() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

impl Connector for Iso20022 {
    fn serves(&self, currency: &str) -> bool {
        self.collection(currency).is_some()
    }

    fn authorize<'a>(
        &'a self,
        request: AuthorizeRequest<'a>,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async move {
            if !matches!(request.details, MethodDetails::BankTransfer) {
                return Err(ConnectorError::processor(
                    "the iso20022 processor only takes bank transfers",
                ));
            }
            if let Some(answer) = self.stored(request.key).await? {
                return Ok(answer);
            }
            let account = self.collection(request.currency).ok_or_else(|| {
                ConnectorError::processor(format!("no collection account for {}", request.currency))
            })?;
            // A drawn reference that some other payment already has (one
            // chance in 10^24) is drawn again.
            for _ in 0..3 {
                let Some(reference) = CreditorReference::for_body(&random_body()) else {
                    continue;
                };
                let inserted = sqlx::query(
                    r#"INSERT INTO bank_references (reference, key, payment_id, account_id, amount, currency)
                       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"#,
                )
                .bind(reference.as_str())
                .bind(request.key)
                .bind(request.payment_id)
                .bind(&account.id)
                .bind(request.amount)
                .bind(request.currency)
                .execute(&self.pool)
                .await
                .map_err(ConnectorError::Storage)?;
                if inserted.rows_affected() == 1 {
                    return Ok(self.answer(
                        reference.as_str(),
                        account,
                        request.amount,
                        request.currency,
                    ));
                }
                if let Some(answer) = self.stored(request.key).await? {
                    return Ok(answer);
                }
            }
            Err(ConnectorError::processor(
                "could not draw a unique RF reference",
            ))
        })
    }

    fn capture<'a>(
        &'a self,
        _key: &'a str,
        _reference: &'a str,
        _amount: i64,
    ) -> BoxFuture<'a, Result<Captured, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::processor("a bank transfer is not captured")) })
    }

    fn void<'a>(
        &'a self,
        _key: &'a str,
        _reference: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async {
            Err(ConnectorError::processor(
                "a bank transfer holds nothing to void",
            ))
        })
    }

    fn refund<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            super::transfers::queue_refund(&self.pool, &self.sealer, key, reference, amount)
                .await
                .map_err(|e| match e {
                    BankError::Database(e) => ConnectorError::Storage(e),
                    other => ConnectorError::processor(other.to_string()),
                })
        })
    }

    fn recover<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Answer>, ConnectorError>> {
        Box::pin(async move {
            if let Some(authorization) = self.stored(key).await? {
                return Ok(Some(Answer::Authorization { authorization }));
            }
            let refund: Option<String> =
                sqlx::query_scalar("SELECT id FROM bank_transfers_out WHERE refund_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(ConnectorError::Storage)?;
            Ok(refund.map(|_| Answer::Done))
        })
    }
}
