//! The sandbox processors' memory of idempotency keys.
//!
//! A real processor answers a call it has seen before (same idempotency
//! key) with its first answer and moves no money again; the node's
//! exactly-once guarantees rest on that. The sandbox simulators are pure
//! functions, so this decorator gives them that memory: every call is
//! recorded under its key in `sandbox_processor_calls`, a repeated key is
//! answered from the record (and counted), and [`Connector::recover`]
//! reads it back. The table lives in the node's database but is the
//! processor's side: it commits on its own, whatever the node's
//! transaction does, like a processor a network hop away.

use serde_json::Value;

use super::{
    Answer, Authorization, AuthorizeRequest, BoxFuture, Captured, Connector, ConnectorError,
};
use crate::db::Db;

/// A connector whose calls are remembered by key.
pub struct Remembering {
    inner: Box<dyn Connector>,
    pool: Db,
}

impl std::fmt::Debug for Remembering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembering").finish_non_exhaustive()
    }
}

/// One call the sandbox processor received, by idempotency key (test
/// mode), as the test helpers list it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ProcessorCall)]
pub struct RememberedCall {
    /// The call's idempotency key: the id of the node's processor
    /// operation (`pop_…`).
    pub key: String,
    /// What was asked.
    #[schema(schema_with = call_names)]
    pub call: String,
    /// Amount the call moved, when it moves one.
    #[schema(required = true)]
    pub amount: Option<i64>,
    /// How many times the key was received; the processor acted once.
    pub calls: i32,
    /// What the processor answered, every time (stored as given).
    #[schema(value_type = Object)]
    pub answer: Value,
}

/// The calls [`Remembering`] records (`record`'s `call`).
const CALLS: [&str; 5] = ["authorize", "challenge", "capture", "void", "refund"];

fn call_names() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(CALLS))
        .build()
}

/// The payment a sandbox reference (`sb_card_pay_…`) belongs to.
fn payment_of(reference: &str) -> &str {
    reference
        .find("pay_")
        .map_or(reference, |at| &reference[at..])
}

/// A stored answer that does not read back: the records are corrupt, which
/// no retry mends.
fn unreadable(e: serde_json::Error) -> ConnectorError {
    ConnectorError::processor(format!("sandbox processor's stored answer: {e}"))
}

impl Remembering {
    /// `inner`, remembering its calls in `pool`.
    pub fn new(inner: Box<dyn Connector>, pool: Db) -> Self {
        Self { inner, pool }
    }

    /// The answer recorded for `key`, counting this call.
    async fn recall(&self, key: &str) -> Result<Option<Answer>, ConnectorError> {
        let answer: Option<Value> = sqlx::query_scalar(
            "UPDATE sandbox_processor_calls SET calls = calls + 1 WHERE key = $1 RETURNING answer",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(ConnectorError::Storage)?;
        answer
            .map(|a| serde_json::from_value(a).map_err(unreadable))
            .transpose()
    }

    /// Records `answer` under `key`; if another call recorded one first,
    /// that one is the answer.
    async fn record(
        &self,
        key: &str,
        call: &str,
        payment: &str,
        amount: Option<i64>,
        answer: &Answer,
    ) -> Result<Answer, ConnectorError> {
        let json = serde_json::to_value(answer).map_err(unreadable)?;
        let stored: Value = sqlx::query_scalar(
            "INSERT INTO sandbox_processor_calls (key, call, payment_id, amount, answer)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET calls = sandbox_processor_calls.calls + 1
             RETURNING answer",
        )
        .bind(key)
        .bind(call)
        .bind(payment)
        .bind(amount)
        .bind(json)
        .fetch_one(&self.pool)
        .await
        .map_err(ConnectorError::Storage)?;
        serde_json::from_value(stored).map_err(unreadable)
    }

    /// The calls recorded for `payment`, oldest first.
    pub async fn calls_of(pool: &Db, payment: &str) -> Result<Vec<RememberedCall>, sqlx::Error> {
        let rows: Vec<(String, String, Option<i64>, i32, Value)> = sqlx::query_as(
            "SELECT key, call, amount, calls, answer FROM sandbox_processor_calls
              WHERE payment_id = $1 ORDER BY created_at, key",
        )
        .bind(payment)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, call, amount, calls, answer)| RememberedCall {
                key,
                call,
                amount,
                calls,
                answer,
            })
            .collect())
    }
}

fn authorization(answer: Answer) -> Result<Authorization, ConnectorError> {
    match answer {
        Answer::Authorization { authorization } => Ok(authorization),
        other => Err(ConnectorError::processor(format!(
            "idempotency key reused for another call (first answer: {other:?})"
        ))),
    }
}

impl Connector for Remembering {
    fn authorize<'a>(
        &'a self,
        request: AuthorizeRequest<'a>,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async move {
            // No recall first: the simulator is a pure function of the
            // request and has no side effect, so its answer is computed and
            // `record` keeps the first one stored under the key (counting a
            // repeat), one statement where a recall and a record were two.
            let (key, payment, amount) = (request.key, request.payment_id, request.amount);
            let authorization = self.inner.authorize(request).await?;
            let answer = Answer::Authorization { authorization };
            let stored = self
                .record(key, "authorize", payment, Some(amount), &answer)
                .await?;
            self::authorization(stored)
        })
    }

    fn answer_challenge<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        code: &'a str,
        capture: bool,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async move {
            if let Some(answer) = self.recall(key).await? {
                return authorization(answer);
            }
            let authorization = self
                .inner
                .answer_challenge(key, reference, code, capture)
                .await?;
            let answer = Answer::Authorization { authorization };
            let stored = self
                .record(key, "challenge", payment_of(reference), None, &answer)
                .await?;
            self::authorization(stored)
        })
    }

    fn capture<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<Captured, ConnectorError>> {
        Box::pin(async move {
            let answer = match self.recall(key).await? {
                Some(answer) => answer,
                None => {
                    let captured = self.inner.capture(key, reference, amount).await?;
                    self.record(
                        key,
                        "capture",
                        payment_of(reference),
                        Some(amount),
                        &Answer::Captured { captured },
                    )
                    .await?
                }
            };
            match answer {
                Answer::Captured { captured } => Ok(captured),
                other => Err(ConnectorError::processor(format!(
                    "idempotency key reused for another call (first answer: {other:?})"
                ))),
            }
        })
    }

    fn void<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            if self.recall(key).await?.is_none() {
                self.inner.void(key, reference).await?;
                self.record(key, "void", payment_of(reference), None, &Answer::Done)
                    .await?;
            }
            Ok(())
        })
    }

    fn refund<'a>(
        &'a self,
        key: &'a str,
        reference: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            if self.recall(key).await?.is_none() {
                self.inner.refund(key, reference, amount).await?;
                self.record(
                    key,
                    "refund",
                    payment_of(reference),
                    Some(amount),
                    &Answer::Done,
                )
                .await?;
            }
            Ok(())
        })
    }

    fn recover<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Answer>, ConnectorError>> {
        Box::pin(async move {
            let answer: Option<Value> =
                sqlx::query_scalar("SELECT answer FROM sandbox_processor_calls WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(ConnectorError::Storage)?;
            answer
                .map(|a| serde_json::from_value(a).map_err(unreadable))
                .transpose()
        })
    }
}
