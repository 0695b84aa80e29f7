//! The sender's tables (migrations/0009_chain_sends.sql).

use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes};
use rust_decimal::Decimal;
use sqlx::PgConnection;

use super::tx::{self, Fees, Signed};
use super::{ChainSend, Job, NewCall, NewSend, Purpose, SendOutcome};
use crate::chain::watcher::store::{hex0x, int8};
use crate::db::Db;
use crate::ids::{ChainSendId, MerchantId};
use crate::money::{Amount, AssetCode};

fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("chain_sends: bad {what} `{value}`").into())
}

fn address(value: &str) -> Result<Address, sqlx::Error> {
    Address::from_str(value).map_err(|_| corrupt("address", value))
}

fn hash(value: &str) -> Result<B256, sqlx::Error> {
    B256::from_str(value).map_err(|_| corrupt("hash", value))
}

fn uint(value: i64) -> Result<u64, sqlx::Error> {
    u64::try_from(value).map_err(|_| corrupt("number", &value.to_string()))
}

fn wei(value: Decimal) -> Result<u128, sqlx::Error> {
    Amount::try_from(value)
        .ok()
        .and_then(|a| u128::try_from(a.units()).ok())
        .ok_or_else(|| corrupt("fee", &value.to_string()))
}

fn wei_decimal(value: u128) -> Result<Decimal, sqlx::Error> {
    i128::try_from(value)
        .ok()
        .and_then(|v| Amount::new(v).ok())
        .map(Amount::to_decimal)
        .ok_or_else(|| sqlx::Error::Encode(format!("fee {value} out of range").into()))
}

fn interval(d: Duration) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Queues `send` in the caller's transaction; its token comes from the
/// asset table (NULL: the native coin).
pub async fn queue(
    conn: &mut PgConnection,
    send: &NewSend<'_>,
) -> Result<ChainSendId, sqlx::Error> {
    let id = ChainSendId::generate();
    let token = sqlx::query_scalar!(
        "SELECT token_address FROM assets WHERE code = $1 AND chain_id = $2",
        send.asset.as_str(),
        int8(send.chain_id)?,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        sqlx::Error::Protocol(format!(
            "asset {} is not registered on chain {}",
            send.asset, send.chain_id
        ))
    })?
    .unwrap_or_else(|| hex0x(Address::ZERO.as_slice()));
    sqlx::query!(
        r#"INSERT INTO chain_sends (id, chain_id, purpose, object_id, merchant_id, asset, token,
                                    to_address, amount, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued')"#,
        id.as_str(),
        int8(send.chain_id)?,
        send.purpose as Purpose,
        send.object_id,
        send.merchant.as_str(),
        send.asset.as_str(),
        token,
        hex0x(send.to.as_slice()),
        send.amount.to_decimal(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// A sweep to queue: a call of `factory` with `input`, for no merchant;
/// `amount` is what it is booked to move (base units of `asset`).
#[derive(Debug, Clone)]
pub struct NewSweep<'a> {
    /// The chain.
    pub chain_id: u64,
    /// Unique among sweeps.
    pub object_id: &'a str,
    /// Ledger asset swept.
    pub asset: &'a AssetCode,
    /// Its token (zero: the native coin).
    pub token: Address,
    /// The chain's `DepositFactory`.
    pub factory: Address,
    /// Base units booked to move.
    pub amount: Amount,
    /// `sweep(salts, token)` or `sweepNative(salts)`.
    pub input: &'a [u8],
}

/// Queues `sweep` in the caller's transaction.
pub async fn queue_sweep(
    conn: &mut PgConnection,
    sweep: &NewSweep<'_>,
) -> Result<ChainSendId, sqlx::Error> {
    let id = ChainSendId::generate();
    sqlx::query!(
        r#"INSERT INTO chain_sends (id, chain_id, purpose, object_id, merchant_id, asset, token,
                                    to_address, amount, status, input)
           VALUES ($1, $2, 'sweep', $3, NULL, $4, $5, $6, $7, 'queued', $8)"#,
        id.as_str(),
        int8(sweep.chain_id)?,
        sweep.object_id,
        sweep.asset.as_str(),
        hex0x(sweep.token.as_slice()),
        hex0x(sweep.factory.as_slice()),
        sweep.amount.to_decimal(),
        sweep.input,
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

struct Row {
    id: String,
    chain_id: i64,
    purpose: String,
    object_id: String,
    merchant_id: Option<String>,
    asset: Option<String>,
    token: String,
    to_address: String,
    amount: Decimal,
    input: Option<Vec<u8>>,
    nonce: Option<i64>,
    tx_hash: Option<String>,
    block_number: Option<i64>,
    failures: i32,
}

impl Row {
    fn into_job(self) -> Result<Job, sqlx::Error> {
        let id = ChainSendId::parse(&self.id).map_err(|_| corrupt("id", &self.id))?;
        let chain_id = uint(self.chain_id)?;
        let purpose = self
            .purpose
            .parse::<Purpose>()
            .map_err(|_| corrupt("purpose", &self.purpose))?;
        let to = address(&self.to_address)?;
        let nonce = self.nonce.map(uint).transpose()?;
        let failures = u32::try_from(self.failures).unwrap_or(0);
        let (call, money) = match (self.input, self.merchant_id, self.asset) {
            (Some(input), None, None) => (tx::contract_call(to, input), None),
            // A refund or payout (a merchant's money, no input), or a sweep
            // (the gateway's own deposits, moved by a call of the factory):
            // both book their gas and finish through the sink.
            (input, merchant_id, Some(asset))
                if (purpose == Purpose::Sweep) == (merchant_id.is_none() && input.is_some()) =>
            {
                let send = ChainSend {
                    id: id.clone(),
                    chain_id,
                    purpose,
                    object_id: self.object_id.clone(),
                    merchant_id: merchant_id
                        .as_deref()
                        .map(|m| MerchantId::parse(m).map_err(|_| corrupt("merchant", m)))
                        .transpose()?,
                    asset: AssetCode::parse(&asset).map_err(|_| corrupt("asset", &asset))?,
                    token: address(&self.token)?,
                    to,
                    amount: Amount::try_from(self.amount)
                        .map_err(|_| corrupt("amount", &self.amount.to_string()))?,
                    nonce,
                    tx_hash: self.tx_hash.as_deref().map(hash).transpose()?,
                    block_number: self.block_number.map(uint).transpose()?,
                    failures,
                    input: input.map(Bytes::from),
                };
                (tx::transfer_call(&send), Some(send))
            }
            _ => return Err(corrupt("send", &self.id)),
        };
        Ok(Job {
            id,
            chain_id,
            purpose,
            object_id: self.object_id,
            to,
            nonce,
            failures,
            call,
            money,
        })
    }
}

/// Whose sends a sender works: one signer's, of some purposes, on one
/// chain. A send queued without a signer is the treasury's.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The chain.
    pub chain_id: u64,
    /// The signing address.
    pub signer: Address,
    /// Whether it is the chain's treasury.
    pub treasury: bool,
    /// The purposes it sends.
    pub purposes: &'a [String],
}

/// Queues a contract call in the caller's transaction; `None` if a send
/// of that purpose and object is already queued.
pub async fn queue_call(
    conn: &mut PgConnection,
    call: &NewCall<'_>,
) -> Result<Option<ChainSendId>, sqlx::Error> {
    let id = ChainSendId::generate();
    let inserted = sqlx::query!(
        r#"INSERT INTO chain_sends (id, chain_id, purpose, object_id, token, signer, to_address,
                                    amount, input, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, 'queued')
           ON CONFLICT (purpose, object_id) DO NOTHING"#,
        id.as_str(),
        int8(call.chain_id)?,
        call.purpose as Purpose,
        call.object_id,
        hex0x(Address::ZERO.as_slice()),
        hex0x(call.signer.as_slice()),
        hex0x(call.to.as_slice()),
        call.input,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(id))
}

/// Where a send stands, for its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendState {
    /// `cs_…`.
    pub id: ChainSendId,
    /// Its owner's name for it.
    pub object_id: String,
    /// `queued`, `sent`, `confirmed`, `failed` or `cancelled`.
    pub status: String,
    /// Times it could not be made (gas estimation refused, broadcast
    /// refused) in a row.
    pub failures: u32,
    /// Why, the last time.
    pub last_error: Option<String>,
}

/// The sends of `purpose` whose object ids start with `prefix`, oldest
/// first.
pub async fn sends_of(
    pool: &Db,
    purpose: Purpose,
    prefix: &str,
) -> Result<Vec<SendState>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, object_id, status, failures, last_error FROM chain_sends
            WHERE purpose = $1 AND starts_with(object_id, $2)
            ORDER BY created_at, id"#,
        purpose as Purpose,
        prefix,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(SendState {
                id: ChainSendId::parse(&r.id).map_err(|_| corrupt("id", &r.id))?,
                object_id: r.object_id,
                status: r.status,
                failures: u32::try_from(r.failures).unwrap_or(0),
                last_error: r.last_error,
            })
        })
        .collect()
}

/// Gives up a send no transaction of which was signed yet; false if one
/// was (the pipeline then sees it through).
pub async fn cancel_queued(pool: &Db, id: &ChainSendId) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE chain_sends SET status = 'cancelled', updated_at = now()
          WHERE id = $1 AND status = 'queued'",
        id.as_str(),
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Locks the wallet's nonce row (creating it) and returns the next nonce
/// the node would use. Held until the caller's transaction ends: every
/// sender of this address, on any node, waits here.
pub async fn lock_nonce(
    conn: &mut PgConnection,
    chain_id: u64,
    from: Address,
) -> Result<u64, sqlx::Error> {
    let address = hex0x(from.as_slice());
    sqlx::query!(
        "INSERT INTO chain_nonces (chain_id, address, next_nonce) VALUES ($1, $2, 0)
         ON CONFLICT DO NOTHING",
        int8(chain_id)?,
        address
    )
    .execute(&mut *conn)
    .await?;
    let next = sqlx::query_scalar!(
        "SELECT next_nonce FROM chain_nonces WHERE chain_id = $1 AND address = $2 FOR UPDATE",
        int8(chain_id)?,
        address
    )
    .fetch_one(&mut *conn)
    .await?;
    uint(next)
}

/// Sets the wallet's next nonce (its row is locked by [`lock_nonce`]).
pub async fn set_next_nonce(
    conn: &mut PgConnection,
    chain_id: u64,
    from: Address,
    next: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE chain_nonces SET next_nonce = $3 WHERE chain_id = $1 AND address = $2",
        int8(chain_id)?,
        hex0x(from.as_slice()),
        int8(next)?,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The lowest nonce of `from` held by a send with a transaction out.
pub(super) async fn lowest_open_nonce(
    conn: &mut PgConnection,
    chain_id: u64,
    from: Address,
) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT min(nonce) FROM chain_sends
          WHERE chain_id = $1 AND from_address = $2 AND status = 'sent'",
        int8(chain_id)?,
        hex0x(from.as_slice()),
    )
    .fetch_one(conn)
    .await?
    .map(uint)
    .transpose()
}

/// The owner's oldest due queued sends (at most `limit`), locked.
pub(super) async fn claim_queued(
    conn: &mut PgConnection,
    owner: &Owner<'_>,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, chain_id, purpose, object_id, merchant_id, asset, token, to_address, amount,
                  input, nonce, tx_hash, block_number, failures
             FROM chain_sends
            WHERE chain_id = $1 AND status = 'queued' AND next_attempt_at <= now()
              AND (signer = $2 OR (signer IS NULL AND $3)) AND purpose = ANY($4)
            ORDER BY created_at, id
            LIMIT $5
            FOR UPDATE SKIP LOCKED"#,
        int8(owner.chain_id)?,
        hex0x(owner.signer.as_slice()),
        owner.treasury,
        owner.purposes,
        limit,
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(Row::into_job)
    .collect()
}

/// The owner's sends with a transaction out.
pub(super) async fn sent(pool: &Db, owner: &Owner<'_>) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, chain_id, purpose, object_id, merchant_id, asset, token, to_address, amount,
                  input, nonce, tx_hash, block_number, failures
             FROM chain_sends
            WHERE chain_id = $1 AND status = 'sent'
              AND (signer = $2 OR (signer IS NULL AND $3)) AND purpose = ANY($4)
            ORDER BY nonce"#,
        int8(owner.chain_id)?,
        hex0x(owner.signer.as_slice()),
        owner.treasury,
        owner.purposes,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Row::into_job)
    .collect()
}

/// Leaves a queued send for later, saying why.
pub async fn postpone(
    conn: &mut PgConnection,
    id: &ChainSendId,
    error: &str,
    delay: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE chain_sends
              SET failures = failures + 1, last_error = $2, next_attempt_at = now() + $3,
                  updated_at = now()
            WHERE id = $1"#,
        id.as_str(),
        error,
        interval(delay),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a signed transaction of a queued send, before it is broadcast.
pub async fn record_signed(
    conn: &mut PgConnection,
    id: &ChainSendId,
    from: Address,
    signed: &Signed,
) -> Result<(), sqlx::Error> {
    insert_tx(conn, id, signed).await?;
    sqlx::query!(
        r#"UPDATE chain_sends
              SET status = 'sent', nonce = $2, from_address = $3, updated_at = now()
            WHERE id = $1"#,
        id.as_str(),
        int8(signed.nonce)?,
        hex0x(from.as_slice()),
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_tx(
    conn: &mut PgConnection,
    id: &ChainSendId,
    signed: &Signed,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO chain_send_txs (tx_hash, send_id, nonce, gas_limit, max_fee_per_gas,
                                       max_priority_fee_per_gas, raw, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'signed')"#,
        hex0x(signed.hash.as_slice()),
        id.as_str(),
        int8(signed.nonce)?,
        int8(signed.gas_limit)?,
        wei_decimal(signed.fees.max_fee_per_gas)?,
        wei_decimal(signed.fees.max_priority_fee_per_gas)?,
        signed.raw,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The transaction may be in a mempool now: the endpoint took it, or
/// answered something other than a refusal, or it is about to be sent
/// again. From then on its nonce is never given back. False if the row is
/// no longer live (rejected or replaced meanwhile, by another node).
pub async fn mark_broadcast(pool: &Db, tx_hash: &B256) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE chain_send_txs SET status = 'broadcast'
          WHERE tx_hash = $1 AND status IN ('signed', 'broadcast')",
        hex0x(tx_hash.as_slice())
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// How a refused transaction is to be handled by [`reject`].
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    /// What the endpoint said.
    pub message: &'a str,
    /// Back-off before the send is tried again.
    pub delay: Duration,
    /// The chain's pending transaction count of the wallet, read under the
    /// nonce lock.
    pub pending: u64,
    /// Whether the send may go back to the queue: false when one of its
    /// other transactions is mined (the tracker finishes it with that one).
    pub requeue: bool,
}

/// The endpoint refused `signed` with one of the answers that say it did
/// not take it. Its nonce is given back, and the send waits in the queue,
/// only when nothing can still use it:
///
/// - the row is still `signed`: no broadcast of it ever had another
///   outcome, so no mempool can hold it;
/// - no other transaction of the send holds the nonce (a refused fee bump
///   is only marked rejected: the one it replaces still may be mined);
/// - it is the wallet's last nonce (later ones would be stuck behind a gap,
///   so it stays to be broadcast again);
/// - the chain's pending count shows the nonce unused.
///
/// Otherwise the transaction stays, to be tracked like any sent one.
/// Returns whether the nonce was given back. The nonce row must be locked.
pub(super) async fn reject(
    conn: &mut PgConnection,
    send: &Job,
    signed: &Signed,
    from: Address,
    refusal: Refusal<'_>,
) -> Result<bool, sqlx::Error> {
    let tx_hash = hex0x(signed.hash.as_slice());
    let message = refusal.message;
    sqlx::query!(
        "UPDATE chain_sends SET last_error = $2, updated_at = now() WHERE id = $1",
        send.id.as_str(),
        message
    )
    .execute(&mut *conn)
    .await?;
    let status = sqlx::query_scalar!(
        "SELECT status FROM chain_send_txs WHERE tx_hash = $1 FOR UPDATE",
        tx_hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    if status.as_deref() != Some("signed") {
        return Ok(false);
    }
    let others = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM chain_send_txs
            WHERE send_id = $1 AND nonce = $2 AND tx_hash <> $3 AND status <> 'rejected'"#,
        send.id.as_str(),
        int8(signed.nonce)?,
        tx_hash,
    )
    .fetch_one(&mut *conn)
    .await?;
    if others > 0 {
        sqlx::query!(
            "UPDATE chain_send_txs SET status = 'rejected', error = $2 WHERE tx_hash = $1",
            tx_hash,
            message
        )
        .execute(&mut *conn)
        .await?;
        return Ok(false);
    }
    if refusal.pending > signed.nonce {
        // Something holds the nonce on the chain, maybe this very
        // transaction through another path: it is tracked, never retired.
        sqlx::query!(
            "UPDATE chain_send_txs SET status = 'broadcast' WHERE tx_hash = $1",
            tx_hash
        )
        .execute(&mut *conn)
        .await?;
        return Ok(false);
    }
    let next = sqlx::query_scalar!(
        "SELECT next_nonce FROM chain_nonces WHERE chain_id = $1 AND address = $2",
        int8(send.chain_id)?,
        hex0x(from.as_slice()),
    )
    .fetch_one(&mut *conn)
    .await?;
    if uint(next)? != signed.nonce + 1 {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE chain_send_txs SET status = 'rejected', error = $2 WHERE tx_hash = $1",
        tx_hash,
        message
    )
    .execute(&mut *conn)
    .await?;
    set_next_nonce(conn, send.chain_id, from, signed.nonce).await?;
    if refusal.requeue {
        sqlx::query!(
            r#"UPDATE chain_sends
                  SET status = 'queued', nonce = NULL, failures = failures + 1,
                      next_attempt_at = now() + $2, updated_at = now()
                WHERE id = $1 AND status = 'sent'"#,
            send.id.as_str(),
            interval(refusal.delay),
        )
        .execute(conn)
        .await?;
    }
    Ok(true)
}

/// A transaction of a sent send that may still be mined.
#[derive(Debug, Clone)]
pub struct SentTx {
    /// Its hash.
    pub hash: B256,
    raw: Vec<u8>,
    nonce: u64,
    /// Its gas limit (kept by replacements).
    pub gas_limit: u64,
    /// Its fees.
    pub fees: Fees,
    /// Time since it was signed.
    pub age: Duration,
}

impl SentTx {
    /// As signed.
    pub(super) fn signed(&self) -> Signed {
        Signed {
            hash: self.hash,
            raw: self.raw.clone(),
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            fees: self.fees,
        }
    }
}

/// For each send paying one of `objects` (refund or payout ids, as
/// `purpose` says) that has signed a transaction, the newest one that may
/// still be mined, in the order of [`transactions`]: `(object id, tx hash)`.
pub async fn newest_transactions(
    pool: &Db,
    purpose: Purpose,
    objects: &[String],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (s.object_id) s.object_id, t.tx_hash
             FROM chain_sends s JOIN chain_send_txs t ON t.send_id = s.id
            WHERE s.purpose = $1 AND s.object_id = ANY($2) AND t.status <> 'rejected'
            ORDER BY s.object_id, t.created_at DESC, t.max_fee_per_gas DESC"#,
        purpose as Purpose,
        objects,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.object_id, r.tx_hash)).collect())
}

/// The transactions of `send` at `nonce` that may be mined, newest first.
pub async fn transactions(
    pool: &Db,
    send: &ChainSendId,
    nonce: u64,
) -> Result<Vec<SentTx>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT tx_hash, raw, nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas,
                  (EXTRACT(EPOCH FROM now() - created_at) * 1000)::bigint AS "age_ms!"
             FROM chain_send_txs
            WHERE send_id = $1 AND nonce = $2 AND status <> 'rejected'
            ORDER BY created_at DESC, max_fee_per_gas DESC"#,
        send.as_str(),
        int8(nonce)?,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(SentTx {
                hash: hash(&r.tx_hash)?,
                raw: r.raw,
                nonce: uint(r.nonce)?,
                gas_limit: uint(r.gas_limit)?,
                fees: Fees {
                    max_fee_per_gas: wei(r.max_fee_per_gas)?,
                    max_priority_fee_per_gas: wei(r.max_priority_fee_per_gas)?,
                },
                age: Duration::from_millis(u64::try_from(r.age_ms).unwrap_or(0)),
            })
        })
        .collect()
}

/// Every transaction `send` ever signed, at any nonce and in any status,
/// newest first: any of them may be the one mined (a refusal or a
/// replacement does not take a transaction out of every mempool).
pub async fn all_transactions(pool: &Db, send: &ChainSendId) -> Result<Vec<B256>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT tx_hash FROM chain_send_txs WHERE send_id = $1
          ORDER BY created_at DESC, max_fee_per_gas DESC",
        send.as_str(),
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|h| hash(h))
    .collect()
}

/// Sends `send` back to the queue: another transaction, now deep, took
/// its nonce, so none of its transactions can be mined any more.
pub(super) async fn requeue(pool: &Db, send: &Job, nonce: u64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let message = format!("nonce {nonce} was used by another transaction");
    let updated = sqlx::query!(
        r#"UPDATE chain_sends
              SET status = 'queued', nonce = NULL, last_error = $3, updated_at = now()
            WHERE id = $1 AND status = 'sent' AND nonce = $2"#,
        send.id.as_str(),
        int8(nonce)?,
        message,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        sqlx::query!(
            r#"UPDATE chain_send_txs SET status = 'replaced', error = $3
                WHERE send_id = $1 AND nonce = $2 AND status IN ('signed', 'broadcast')"#,
            send.id.as_str(),
            int8(nonce)?,
            message,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Records `signed` as the replacement of `old`, if `send` is still sent
/// at `nonce` and `old` is still its newest transaction; false if not
/// (another node moved it first).
pub(super) async fn record_replacement(
    pool: &Db,
    send: &Job,
    nonce: u64,
    old: &B256,
    signed: &Signed,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query_scalar!(
        "SELECT id FROM chain_sends WHERE id = $1 AND status = 'sent' AND nonce = $2 FOR UPDATE",
        send.id.as_str(),
        int8(nonce)?,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let newest = sqlx::query_scalar!(
        r#"SELECT tx_hash FROM chain_send_txs
            WHERE send_id = $1 AND nonce = $2 AND status <> 'rejected'
            ORDER BY created_at DESC, max_fee_per_gas DESC LIMIT 1"#,
        send.id.as_str(),
        int8(nonce)?,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() || newest.as_deref() != Some(hex0x(old.as_slice()).as_str()) {
        return Ok(false);
    }
    insert_tx(&mut tx, &send.id, signed).await?;
    sqlx::query!(
        "UPDATE chain_send_txs SET status = 'replaced', error = 'fee bump' WHERE tx_hash = $1",
        hex0x(old.as_slice())
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A send still `sent`, locked; `None` if it moved on.
pub(super) async fn lock_sent(
    conn: &mut PgConnection,
    id: &ChainSendId,
) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, chain_id, purpose, object_id, merchant_id, asset, token, to_address, amount,
                  input, nonce, tx_hash, block_number, failures
             FROM chain_sends
            WHERE id = $1 AND status = 'sent'
            FOR UPDATE"#,
        id.as_str(),
    )
    .fetch_optional(conn)
    .await?
    .map(Row::into_job)
    .transpose()
}

/// Where and at what cost a send's transaction was mined.
#[derive(Debug, Clone)]
pub struct Mined {
    /// The transaction.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// Wei paid for gas.
    pub gas_fee: Amount,
}

/// Ends a locked send.
pub async fn finish(
    conn: &mut PgConnection,
    send: &ChainSendId,
    outcome: SendOutcome,
    mined: &Mined,
) -> Result<(), sqlx::Error> {
    let status = match outcome {
        SendOutcome::Confirmed => "confirmed",
        SendOutcome::Reverted => "failed",
    };
    let tx_hash = hex0x(mined.tx_hash.as_slice());
    sqlx::query!(
        r#"UPDATE chain_sends
              SET status = $2, tx_hash = $3, block_number = $4, block_hash = $5, gas_fee = $6,
                  last_error = CASE WHEN $2 = 'failed' THEN 'transaction reverted' END,
                  updated_at = now()
            WHERE id = $1"#,
        send.as_str(),
        status,
        tx_hash,
        int8(mined.block_number)?,
        hex0x(mined.block_hash.as_slice()),
        mined.gas_fee.to_decimal(),
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"UPDATE chain_send_txs SET status = 'replaced'
            WHERE send_id = $1 AND tx_hash <> $2 AND status IN ('signed', 'broadcast')"#,
        send.as_str(),
        tx_hash,
    )
    .execute(conn)
    .await?;
    Ok(())
}
