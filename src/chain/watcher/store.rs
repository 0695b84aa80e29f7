//! The watcher's tables (migrations/0006_chain.sql): cursor, processed
//! blocks, transfers, reorg journal. Every function runs on the caller's
//! connection, inside the step's transaction.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::sink::Transfer;
use crate::chain::config::ChainConfig;
use crate::chain::rpc::BlockHeader;

/// The last processed block of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its height.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
}

/// A `PaymentReceived` log found in a canonical block, not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLog {
    /// The transaction.
    pub tx_hash: B256,
    /// Position among the router's `PaymentReceived` logs of the transaction.
    pub tx_log_ordinal: u32,
    /// Index in the block.
    pub log_index: u64,
    /// Block height.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block time.
    pub block_timestamp: OffsetDateTime,
    /// `ref`.
    pub reference: B256,
    /// `payer`.
    pub payer: Address,
    /// `token` (zero: native coin).
    pub token: Address,
    /// Configured symbol of `token`, if any.
    pub asset: Option<String>,
    /// `amount`.
    pub amount: U256,
}

impl FoundLog {
    /// Whether `transfer` is the same payment (same event content), which
    /// may sit at another position.
    pub fn same_payment(&self, transfer: &Transfer) -> bool {
        self.reference == transfer.reference
            && self.payer == transfer.payer
            && self.token == transfer.token
            && self.amount == transfer.amount
    }
}

/// Lower-case `0x…` hex, as stored.
pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("chain tables: bad {what} `{value}`").into())
}

fn b256(value: &str) -> Result<B256, sqlx::Error> {
    B256::from_str(value).map_err(|_| corrupt("hash", value))
}

fn address(value: &str) -> Result<Address, sqlx::Error> {
    Address::from_str(value).map_err(|_| corrupt("address", value))
}

/// `u64` → `BIGINT` (chain ids, heights and indexes are far below 2^63;
/// configuration refuses larger chain ids).
pub fn int8(value: u64) -> Result<i64, sqlx::Error> {
    i64::try_from(value).map_err(|_| sqlx::Error::Encode(format!("{value} exceeds BIGINT").into()))
}

fn uint8(value: i64) -> Result<u64, sqlx::Error> {
    u64::try_from(value).map_err(|_| corrupt("number", &value.to_string()))
}

/// Seconds since the epoch → timestamp.
pub fn timestamp(seconds: u64) -> Result<OffsetDateTime, sqlx::Error> {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| sqlx::Error::Encode(format!("block timestamp {seconds}").into()))
}

struct TransferRow {
    id: i64,
    chain_id: i64,
    tx_hash: String,
    tx_log_ordinal: i32,
    log_index: i64,
    block_number: i64,
    block_hash: String,
    block_timestamp: OffsetDateTime,
    router: String,
    reference: String,
    payer: String,
    token: String,
    asset: Option<String>,
    amount: String,
    status: String,
    removals: i32,
    detected_at: OffsetDateTime,
}

impl TryFrom<TransferRow> for Transfer {
    type Error = sqlx::Error;

    fn try_from(r: TransferRow) -> Result<Self, sqlx::Error> {
        Ok(Transfer {
            id: r.id,
            chain_id: uint8(r.chain_id)?,
            tx_hash: b256(&r.tx_hash)?,
            tx_log_ordinal: u32::try_from(r.tx_log_ordinal)
                .map_err(|_| corrupt("ordinal", &r.tx_log_ordinal.to_string()))?,
            log_index: uint8(r.log_index)?,
            block_number: uint8(r.block_number)?,
            block_hash: b256(&r.block_hash)?,
            block_timestamp: r.block_timestamp,
            router: address(&r.router)?,
            reference: b256(&r.reference)?,
            payer: address(&r.payer)?,
            token: address(&r.token)?,
            asset: r.asset,
            amount: U256::from_str_radix(&r.amount, 10)
                .map_err(|_| corrupt("amount", &r.amount))?,
            status: r.status.parse().map_err(|_| corrupt("status", &r.status))?,
            removals: u32::try_from(r.removals)
                .map_err(|_| corrupt("removals", &r.removals.to_string()))?,
            detected_at: r.detected_at,
        })
    }
}

fn transfers(rows: Vec<TransferRow>) -> Result<Vec<Transfer>, sqlx::Error> {
    let mut out = rows
        .into_iter()
        .map(Transfer::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|t| (t.block_number, t.log_index, t.id));
    Ok(out)
}

fn cursor_of(number: Option<i64>, hash: Option<String>) -> Result<Option<Cursor>, sqlx::Error> {
    match (number, hash) {
        (Some(n), Some(h)) => Ok(Some(Cursor {
            number: uint8(n)?,
            hash: b256(&h)?,
        })),
        _ => Ok(None),
    }
}

/// The chain's cursor row, created on first use, with the configuration
/// snapshot refreshed; returns the cursor and the first block to scan.
pub async fn ensure_cursor(
    conn: &mut PgConnection,
    chain: &ChainConfig,
) -> Result<(Option<Cursor>, u64), sqlx::Error> {
    let assets = serde_json::Value::Array(
        chain
            .assets
            .iter()
            .map(|a| {
                serde_json::json!({
                    "symbol": a.symbol,
                    "decimals": a.decimals,
                    "token": hex0x(a.token().as_slice()),
                })
            })
            .collect(),
    );
    let row = sqlx::query!(
        r#"INSERT INTO chain_cursors (chain_id, start_block, router, treasury, confirmations, assets)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (chain_id) DO UPDATE
              SET router = EXCLUDED.router, treasury = EXCLUDED.treasury,
                  confirmations = EXCLUDED.confirmations, assets = EXCLUDED.assets,
                  updated_at = now()
           RETURNING block_number, block_hash, start_block"#,
        int8(chain.chain_id)?,
        int8(chain.start_block)?,
        hex0x(chain.router.as_slice()),
        hex0x(chain.treasury.as_slice()),
        int8(chain.confirmations)?,
        assets,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        cursor_of(row.block_number, row.block_hash)?,
        uint8(row.start_block)?,
    ))
}

/// Locks the cursor row for the step and returns its value.
pub async fn lock_cursor(
    conn: &mut PgConnection,
    chain_id: u64,
) -> Result<Option<Cursor>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT block_number, block_hash FROM chain_cursors WHERE chain_id = $1 FOR UPDATE",
        int8(chain_id)?,
    )
    .fetch_one(&mut *conn)
    .await?;
    cursor_of(row.block_number, row.block_hash)
}

/// Moves the cursor; `time` is its block's timestamp when known (crypto
/// quotes expire by it, see migrations/0019).
pub async fn set_cursor(
    conn: &mut PgConnection,
    chain_id: u64,
    cursor: Option<Cursor>,
    time: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    let number = cursor.map(|c| int8(c.number)).transpose()?;
    let hash = cursor.map(|c| hex0x(c.hash.as_slice()));
    sqlx::query!(
        "UPDATE chain_cursors
            SET block_number = $2, block_hash = $3, block_timestamp = $4, updated_at = now()
          WHERE chain_id = $1",
        int8(chain_id)?,
        number,
        hash,
        time,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stored block hashes at or below `top`, highest first.
pub async fn blocks_at_or_below(
    conn: &mut PgConnection,
    chain_id: u64,
    top: u64,
) -> Result<Vec<(u64, B256)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT block_number, block_hash FROM chain_blocks
          WHERE chain_id = $1 AND block_number <= $2 ORDER BY block_number DESC",
        int8(chain_id)?,
        int8(top)?,
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| Ok((uint8(r.block_number)?, b256(&r.block_hash)?)))
        .collect()
}

/// The stored hash of block `number`, if kept.
pub async fn block_hash(
    conn: &mut PgConnection,
    chain_id: u64,
    number: u64,
) -> Result<Option<B256>, sqlx::Error> {
    let hash = sqlx::query_scalar!(
        "SELECT block_hash FROM chain_blocks WHERE chain_id = $1 AND block_number = $2",
        int8(chain_id)?,
        int8(number)?,
    )
    .fetch_optional(&mut *conn)
    .await?;
    hash.as_deref().map(b256).transpose()
}

/// Records processed blocks (replacing what a reorg left at their heights).
pub async fn put_blocks(
    conn: &mut PgConnection,
    chain_id: u64,
    headers: &[BlockHeader],
) -> Result<(), sqlx::Error> {
    let numbers = headers
        .iter()
        .map(|h| int8(h.number))
        .collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<String> = headers.iter().map(|h| hex0x(h.hash.as_slice())).collect();
    let parents: Vec<String> = headers
        .iter()
        .map(|h| hex0x(h.parent_hash.as_slice()))
        .collect();
    sqlx::query!(
        "INSERT INTO chain_blocks (chain_id, block_number, block_hash, parent_hash)
         SELECT $1, n, h, p FROM UNNEST($2::int8[], $3::text[], $4::text[]) AS u(n, h, p)
         ON CONFLICT (chain_id, block_number) DO UPDATE
            SET block_hash = EXCLUDED.block_hash, parent_hash = EXCLUDED.parent_hash,
                processed_at = now()",
        int8(chain_id)?,
        &numbers,
        &hashes,
        &parents,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets blocks above `number` (dropped by a reorg).
pub async fn delete_blocks_above(
    conn: &mut PgConnection,
    chain_id: u64,
    number: Option<u64>,
) -> Result<(), sqlx::Error> {
    let above = number.map(int8).transpose()?.unwrap_or(-1);
    sqlx::query!(
        "DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number > $2",
        int8(chain_id)?,
        above,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets blocks below `number` (out of the reorg window).
pub async fn prune_blocks_below(
    conn: &mut PgConnection,
    chain_id: u64,
    number: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM chain_blocks WHERE chain_id = $1 AND block_number < $2",
        int8(chain_id)?,
        int8(number)?,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Live (detected or confirmed) transfers in blocks above `number`, locked.
pub async fn live_transfers_above(
    conn: &mut PgConnection,
    chain_id: u64,
    number: Option<u64>,
) -> Result<Vec<Transfer>, sqlx::Error> {
    let above = number.map(int8).transpose()?.unwrap_or(-1);
    let rows = sqlx::query_as!(
        TransferRow,
        r#"SELECT id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                  block_timestamp, router, ref AS reference, payer, token, asset,
                  amount::text AS "amount!", status, removals, detected_at
             FROM chain_transfers
            WHERE chain_id = $1 AND block_number > $2 AND status <> 'removed'
            FOR UPDATE"#,
        int8(chain_id)?,
        above,
    )
    .fetch_all(&mut *conn)
    .await?;
    transfers(rows)
}

/// Records new transfers, or brings back removed ones with the same
/// identity; those in blocks up to `confirmed_up_to` are written confirmed
/// straight away (a backlog then costs one write per row, not two).
/// Returns the rows written (each one needs a `detected` call, and a
/// `confirmed` call if so written); a log whose identity is already live is
/// not returned.
pub async fn insert_transfers(
    conn: &mut PgConnection,
    chain_id: u64,
    router: Address,
    logs: &[FoundLog],
    confirmed_up_to: Option<u64>,
) -> Result<Vec<Transfer>, sqlx::Error> {
    if logs.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx_hashes = Vec::with_capacity(logs.len());
    let mut ordinals = Vec::with_capacity(logs.len());
    let mut log_indexes = Vec::with_capacity(logs.len());
    let mut numbers = Vec::with_capacity(logs.len());
    let mut block_hashes = Vec::with_capacity(logs.len());
    let mut times = Vec::with_capacity(logs.len());
    let mut refs = Vec::with_capacity(logs.len());
    let mut payers = Vec::with_capacity(logs.len());
    let mut tokens = Vec::with_capacity(logs.len());
    let mut assets = Vec::with_capacity(logs.len());
    let mut amounts = Vec::with_capacity(logs.len());
    for log in logs {
        tx_hashes.push(hex0x(log.tx_hash.as_slice()));
        ordinals.push(
            i32::try_from(log.tx_log_ordinal)
                .map_err(|_| sqlx::Error::Encode("log ordinal exceeds INTEGER".into()))?,
        );
        log_indexes.push(int8(log.log_index)?);
        numbers.push(int8(log.block_number)?);
        block_hashes.push(hex0x(log.block_hash.as_slice()));
        times.push(log.block_timestamp);
        refs.push(hex0x(log.reference.as_slice()));
        payers.push(hex0x(log.payer.as_slice()));
        tokens.push(hex0x(log.token.as_slice()));
        // Empty stands for NULL (no configured asset) in the text array.
        assets.push(log.asset.clone().unwrap_or_default());
        amounts.push(log.amount.to_string());
    }
    let rows = sqlx::query_as!(
        TransferRow,
        r#"INSERT INTO chain_transfers AS t
                (chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                 block_timestamp, router, ref, payer, token, asset, amount, status,
                 confirmed_at)
           SELECT $1, u.tx_hash, u.ordinal, u.log_index, u.block_number, u.block_hash,
                  u.block_timestamp, $2, u.ref, u.payer, u.token, NULLIF(u.asset, ''),
                  u.amount::numeric,
                  CASE WHEN u.block_number <= $14 THEN 'confirmed' ELSE 'detected' END,
                  CASE WHEN u.block_number <= $14 THEN now() END
             FROM UNNEST($3::text[], $4::int4[], $5::int8[], $6::int8[], $7::text[],
                         $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::text[])
                  AS u(tx_hash, ordinal, log_index, block_number, block_hash, block_timestamp,
                       ref, payer, token, asset, amount)
           ON CONFLICT ON CONSTRAINT chain_transfers_identity DO UPDATE
              SET log_index = EXCLUDED.log_index, block_number = EXCLUDED.block_number,
                  block_hash = EXCLUDED.block_hash, block_timestamp = EXCLUDED.block_timestamp,
                  router = EXCLUDED.router, ref = EXCLUDED.ref, payer = EXCLUDED.payer,
                  token = EXCLUDED.token, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
                  status = EXCLUDED.status, detected_at = now(),
                  confirmed_at = EXCLUDED.confirmed_at, updated_at = now()
            WHERE t.status = 'removed'
           RETURNING id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                     block_timestamp, router, ref AS reference, payer, token, asset,
                     amount::text AS "amount!", status, removals, detected_at"#,
        int8(chain_id)?,
        hex0x(router.as_slice()),
        &tx_hashes,
        &ordinals,
        &log_indexes,
        &numbers,
        &block_hashes,
        &times,
        &refs,
        &payers,
        &tokens,
        &assets,
        &amounts,
        confirmed_up_to.map(int8).transpose()?.unwrap_or(-1),
    )
    .fetch_all(&mut *conn)
    .await?;
    transfers(rows)
}

/// Moves a live transfer to where the canonical chain has it now (same
/// payment, new block or index); its status is kept.
pub async fn move_transfer(
    conn: &mut PgConnection,
    chain_id: u64,
    log: &FoundLog,
) -> Result<Option<Transfer>, sqlx::Error> {
    let row = sqlx::query_as!(
        TransferRow,
        r#"UPDATE chain_transfers
              SET log_index = $4, block_number = $5, block_hash = $6, block_timestamp = $7,
                  updated_at = now()
            WHERE chain_id = $1 AND tx_hash = $2 AND tx_log_ordinal = $3
           RETURNING id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                     block_timestamp, router, ref AS reference, payer, token, asset,
                     amount::text AS "amount!", status, removals, detected_at"#,
        int8(chain_id)?,
        hex0x(log.tx_hash.as_slice()),
        i32::try_from(log.tx_log_ordinal)
            .map_err(|_| sqlx::Error::Encode("log ordinal exceeds INTEGER".into()))?,
        int8(log.log_index)?,
        int8(log.block_number)?,
        hex0x(log.block_hash.as_slice()),
        log.block_timestamp,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Transfer::try_from).transpose()
}

/// Marks a transfer removed by a reorg.
pub async fn mark_removed(conn: &mut PgConnection, id: i64) -> Result<Transfer, sqlx::Error> {
    let row = sqlx::query_as!(
        TransferRow,
        r#"UPDATE chain_transfers
              SET status = 'removed', removed_at = now(), removals = removals + 1,
                  updated_at = now()
            WHERE id = $1
           RETURNING id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                     block_timestamp, router, ref AS reference, payer, token, asset,
                     amount::text AS "amount!", status, removals, detected_at"#,
        id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Transfer::try_from(row)
}

/// Detected transfers in blocks up to `number` become confirmed.
pub async fn confirm_up_to(
    conn: &mut PgConnection,
    chain_id: u64,
    number: u64,
) -> Result<Vec<Transfer>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TransferRow,
        r#"UPDATE chain_transfers
              SET status = 'confirmed', confirmed_at = now(), updated_at = now()
            WHERE chain_id = $1 AND status = 'detected' AND block_number <= $2
           RETURNING id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                     block_timestamp, router, ref AS reference, payer, token, asset,
                     amount::text AS "amount!", status, removals, detected_at"#,
        int8(chain_id)?,
        int8(number)?,
    )
    .fetch_all(&mut *conn)
    .await?;
    transfers(rows)
}

/// What a reorg did, for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorgRecord {
    /// The cursor before.
    pub old: Cursor,
    /// The common ancestor (`None`: below the first block scanned).
    pub ancestor: Option<u64>,
    /// Blocks dropped.
    pub depth: u64,
    /// Whether a dropped block had reached the confirmation depth (or the
    /// ancestor was not within the window).
    pub deep: bool,
    /// Whether the common ancestor was among the stored hashes.
    pub within_window: bool,
    /// Transfers removed.
    pub removed: u32,
    /// Of which confirmed.
    pub confirmed_removed: u32,
    /// Transfers the new chain included again.
    pub kept: u32,
}

/// Appends to `chain_reorgs`.
pub async fn record_reorg(
    conn: &mut PgConnection,
    chain_id: u64,
    r: &ReorgRecord,
) -> Result<(), sqlx::Error> {
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query!(
        "INSERT INTO chain_reorgs (chain_id, old_block_number, old_block_hash, ancestor_number,
                                   depth, deep, transfers_removed, confirmed_removed,
                                   transfers_kept)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        int8(chain_id)?,
        int8(r.old.number)?,
        hex0x(r.old.hash.as_slice()),
        r.ancestor.map(int8).transpose()?,
        int8(r.depth)?,
        r.deep,
        to_i32(r.removed),
        to_i32(r.confirmed_removed),
        to_i32(r.kept),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Confirmed transfers of a chain, for reconciliation.
pub async fn confirmed_transfers(
    conn: &mut PgConnection,
    chain_id: u64,
) -> Result<Vec<Transfer>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TransferRow,
        r#"SELECT id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                  block_timestamp, router, ref AS reference, payer, token, asset,
                  amount::text AS "amount!", status, removals, detected_at
             FROM chain_transfers
            WHERE chain_id = $1 AND status = 'confirmed'"#,
        int8(chain_id)?,
    )
    .fetch_all(&mut *conn)
    .await?;
    transfers(rows)
}

/// A transfer by id.
pub async fn transfer(conn: &mut PgConnection, id: i64) -> Result<Option<Transfer>, sqlx::Error> {
    let row = sqlx::query_as!(
        TransferRow,
        r#"SELECT id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                  block_timestamp, router, ref AS reference, payer, token, asset,
                  amount::text AS "amount!", status, removals, detected_at
             FROM chain_transfers WHERE id = $1"#,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Transfer::try_from).transpose()
}

/// Transfers paying `reference` on any chain, oldest first.
pub async fn transfers_by_reference(
    conn: &mut PgConnection,
    reference: B256,
) -> Result<Vec<Transfer>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TransferRow,
        r#"SELECT id, chain_id, tx_hash, tx_log_ordinal, log_index, block_number, block_hash,
                  block_timestamp, router, ref AS reference, payer, token, asset,
                  amount::text AS "amount!", status, removals, detected_at
             FROM chain_transfers WHERE ref = $1"#,
        hex0x(reference.as_slice()),
    )
    .fetch_all(&mut *conn)
    .await?;
    transfers(rows)
}
