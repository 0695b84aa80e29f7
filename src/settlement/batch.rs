//! One settlement batch: select, append, move, pay out — in one
//! transaction.

use std::collections::BTreeMap;

use alloy::primitives::U256;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::{AssetTotals, Settlement, SettlementError, SettlementItem};
use crate::db::Db;
use crate::events::{self, EventType};
use crate::ids::{MerchantId, PayoutId, SettlementId};
use crate::ledger::{self, AccountRef, Entry, EntryKind, MerchantAccount};
use crate::money::{Amount, AssetCode};
use crate::transparency::TransparencyLog;
use crate::transparency::leaf::{LeafData, LeafKind};

/// A ledger entry of the merchant that no batch has settled.
#[derive(Debug)]
struct Unsettled {
    entry_id: i64,
    txn_id: String,
    kind: String,
    source: Option<String>,
    asset: String,
    /// Credits minus debits on the merchant's accounts, fees excluded.
    amount: Decimal,
    /// Fees the merchant was charged.
    fee: Decimal,
}

/// Entry kinds that are settlement's own bookkeeping, not settled items.
const OWN_KINDS: [&str; 3] = ["availability", "settlement", "payout"];

/// Settles everything of `merchant` not settled yet, as of `now`. Returns
/// `None` when there was nothing to settle.
pub async fn run(
    pool: &Db,
    log: &TransparencyLog,
    merchant: &MerchantId,
    now: OffsetDateTime,
) -> Result<Option<Settlement>, SettlementError> {
    let mut tx = pool.begin().await?;
    // One batch per merchant at a time, across nodes.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('epg.settle:' || $1, 0))",
        merchant.as_str()
    )
    .execute(&mut *tx)
    .await?;
    let period_start = sqlx::query_scalar!(
        r#"SELECT coalesce(
               (SELECT max(period_end) FROM settlements WHERE merchant_id = $1),
               (SELECT created_at FROM merchants WHERE id = $1)) AS "start!""#,
        merchant.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    let unsettled = sqlx::query_as!(
        Unsettled,
        r#"SELECT e.id AS entry_id, e.public_id AS txn_id, e.kind, e.source, p.asset,
                  coalesce(-sum(p.amount) FILTER (WHERE NOT p.fee), 0) AS "amount!",
                  coalesce(sum(p.amount) FILTER (WHERE p.fee), 0) AS "fee!"
             FROM ledger_entries e
             JOIN ledger_postings p ON p.entry_id = e.id
            WHERE p.owner = $1 AND p.owner <> '' AND p.phase = 'posted'
              AND e.kind <> ALL ($2)
              AND e.created_at <= $3
              AND NOT EXISTS (SELECT 1 FROM settlement_items i WHERE i.entry_id = e.id)
            GROUP BY e.id, p.asset
            ORDER BY e.id"#,
        merchant.as_str(),
        &OWN_KINDS.map(str::to_owned),
        now,
    )
    .fetch_all(&mut *tx)
    .await?;
    if unsettled.is_empty() {
        return Ok(None);
    }

    let id = SettlementId::generate();
    let settled_at = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    // Leaves: one per (source, kind, asset), and one per fee, in the
    // order of the kinds' names.
    let mut leaves: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
    for item in &unsettled {
        let source = item.source.clone().unwrap_or_else(|| item.txn_id.clone());
        let kind = leaf_kind(&item.kind, item.amount, item.asset.contains(':'));
        *leaves
            .entry((source.clone(), kind.to_string(), item.asset.clone()))
            .or_default() += item.amount.abs();
        if !item.fee.is_zero() {
            *leaves
                .entry((source, LeafKind::Fee.to_string(), item.asset.clone()))
                .or_default() += item.fee.abs();
        }
    }
    let mut data = Vec::new();
    for ((source, kind, asset), amount) in &leaves {
        if amount.is_zero() {
            continue;
        }
        let kind: LeafKind = kind
            .parse()
            .map_err(|_| SettlementError::Corrupt(format!("leaf kind {kind}")))?;
        data.push(LeafData {
            settlement_id: id.to_string(),
            merchant_id: merchant.to_string(),
            source_id: source.clone(),
            kind,
            asset: asset.clone(),
            amount: decimal_to_u256(*amount)?,
            settled_at,
        });
    }
    let indices = log.append_all(&mut tx, &data).await?;
    let first_leaf = indices.first().map_or(0, |i| i.get());
    if !indices.is_empty() {
        // The checkpoint that covers this batch, for the anchoring job.
        log.checkpoint(&mut tx).await?;
    }

    let mut totals: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for item in &unsettled {
        let entry = totals.entry(item.asset.clone()).or_default();
        entry.0 += item.amount;
        entry.1 += item.fee;
    }

    sqlx::query!(
        r#"INSERT INTO settlements (id, merchant_id, period_start, period_end, totals, first_leaf, leaf_count)
           VALUES ($1, $2, $3, $4, '{}', $5, $6)"#,
        id.as_str(),
        merchant.as_str(),
        period_start,
        now,
        i64::try_from(first_leaf).unwrap_or(0),
        i64::try_from(indices.len()).unwrap_or(0),
    )
    .execute(&mut *tx)
    .await?;
    for item in &unsettled {
        sqlx::query!(
            r#"INSERT INTO settlement_items (settlement_id, entry_id, txn_id, kind, source_id, asset, amount, fee)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
            id.as_str(),
            item.entry_id,
            item.txn_id,
            item.kind,
            item.source,
            item.asset,
            item.amount,
            item.fee,
        )
        .execute(&mut *tx)
        .await?;
    }
    // Record which leaf each source got, for the items view.
    for (leaf, index) in data.iter().zip(&indices) {
        sqlx::query!(
            r#"UPDATE settlement_items SET leaf_index = $3
               WHERE settlement_id = $1 AND coalesce(source_id, txn_id) = $2 AND leaf_index IS NULL"#,
            id.as_str(),
            leaf.source_id,
            i64::try_from(index.get()).unwrap_or(0),
        )
        .execute(&mut *tx)
        .await?;
    }

    let payout_address = sqlx::query_scalar!(
        "SELECT payout_address FROM merchants WHERE id = $1",
        merchant.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut totals_by_asset = BTreeMap::new();
    for (asset, (gross, fee)) in &totals {
        let code = AssetCode::parse(asset).map_err(|e| SettlementError::Corrupt(e.to_string()))?;
        let moved = make_available(&mut tx, merchant, &id, &code).await?;
        let paid = pay_out(&mut tx, merchant, &id, &code, payout_address.as_deref()).await?;
        totals_by_asset.insert(
            asset.clone(),
            AssetTotals {
                gross: gross.to_string(),
                fees: fee.to_string(),
                net: (gross - fee).to_string(),
                made_available: moved.units().to_string(),
                paid_out: paid.units().to_string(),
            },
        );
    }
    // Crypto made available by earlier batches (before the merchant set a
    // payout address) is paid out too.
    if payout_address.is_some() {
        for balance in ledger::merchant_balances(&mut tx, merchant).await? {
            let code = balance.asset.code;
            if !code.is_crypto() || totals.contains_key(code.as_str()) {
                continue;
            }
            let paid = pay_out(&mut tx, merchant, &id, &code, payout_address.as_deref()).await?;
            if paid.is_positive() {
                totals_by_asset.insert(
                    code.to_string(),
                    AssetTotals {
                        gross: "0".into(),
                        fees: "0".into(),
                        net: "0".into(),
                        made_available: "0".into(),
                        paid_out: paid.units().to_string(),
                    },
                );
            }
        }
    }
    sqlx::query!(
        "UPDATE settlements SET totals = $2 WHERE id = $1",
        id.as_str(),
        Json(&totals_by_asset) as _
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    load(pool, merchant, &id)
        .await?
        .ok_or_else(|| SettlementError::Corrupt("settlement vanished after commit".into()))
        .map(Some)
}

/// The leaf kind of a ledger entry kind.
fn leaf_kind(entry_kind: &str, amount: Decimal, crypto: bool) -> LeafKind {
    match entry_kind {
        "payment" if crypto => LeafKind::CryptoReceipt,
        "payment" => LeafKind::Payment,
        "refund" | "refund_failure" => LeafKind::Refund,
        "dispute" if amount.is_sign_negative() => LeafKind::Dispute,
        "dispute" | "dispute_reversal" => LeafKind::DisputeReversal,
        _ => LeafKind::Adjustment,
    }
}

fn decimal_to_u256(d: Decimal) -> Result<U256, SettlementError> {
    let amount = Amount::try_from(d).map_err(|e| SettlementError::Corrupt(e.to_string()))?;
    u128::try_from(amount.units())
        .map(U256::from)
        .map_err(|_| SettlementError::Corrupt(format!("negative leaf amount {d}")))
}

/// Moves the merchant's spendable pending balance to available, then pays
/// what it owes (`receivable`) from available. Returns what was moved.
async fn make_available(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &SettlementId,
    asset: &AssetCode,
) -> Result<Amount, SettlementError> {
    let pending = AccountRef::merchant(merchant, MerchantAccount::Pending);
    let available = AccountRef::merchant(merchant, MerchantAccount::Available);
    let receivable = AccountRef::merchant(merchant, MerchantAccount::Receivable);
    let balance = ledger::account_balance(conn, &pending, asset).await?;
    let movable = balance.spendable();
    let moved = Amount::new(movable.max(0)).map_err(|e| SettlementError::Corrupt(e.to_string()))?;
    if moved.is_positive() {
        let entry = Entry::new(format!("{id}:{asset}:available"), EntryKind::AVAILABILITY)
            .source(id.as_str())
            .transfer(pending, available.clone(), asset, moved);
        ledger::post(conn, &entry).await?;
    }
    let owed = ledger::account_balance(conn, &receivable, asset)
        .await?
        .posted;
    let spendable = ledger::account_balance(conn, &available, asset)
        .await?
        .spendable();
    let settle = owed.units().min(spendable).max(0);
    if settle > 0 {
        let amount = Amount::new(settle).map_err(|e| SettlementError::Corrupt(e.to_string()))?;
        let entry = Entry::new(format!("{id}:{asset}:receivable"), EntryKind::SETTLEMENT)
            .source(id.as_str())
            .transfer(available, receivable, asset, amount);
        ledger::post(conn, &entry).await?;
    }
    Ok(moved)
}

/// Pays out the merchant's available balance: a record for fiat (the bank
/// file), a pending on-chain payout for crypto when an address is set.
async fn pay_out(
    conn: &mut PgConnection,
    merchant: &MerchantId,
    id: &SettlementId,
    asset: &AssetCode,
    payout_address: Option<&str>,
) -> Result<Amount, SettlementError> {
    let available = AccountRef::merchant(merchant, MerchantAccount::Available);
    let balance = ledger::account_balance(conn, &available, asset).await?;
    let spendable = balance.spendable();
    if spendable <= 0 {
        return Ok(Amount::ZERO);
    }
    let bank_rail = !asset.is_crypto()
        && crate::bank::transfers::can_pay_out(conn, merchant, asset.as_str()).await?;
    let (destination, status) = match (asset.is_crypto(), payout_address) {
        // Through the gateway's payout account: a pain.001 line, `pending`
        // until exported, `paid` when its debit is in a statement.
        (false, _) if bank_rail => ("bank_account".to_owned(), "pending"),
        (false, _) => ("bank_account".to_owned(), "paid"),
        (true, Some(address)) => (address.to_owned(), "pending"),
        // No address: crypto funds stay available in the treasury.
        (true, None) => return Ok(Amount::ZERO),
    };
    let amount = Amount::new(spendable).map_err(|e| SettlementError::Corrupt(e.to_string()))?;
    let payout = PayoutId::generate();
    let entry = Entry::new(format!("{payout}:payout"), EntryKind::PAYOUT)
        .source(payout.as_str())
        .transfer(available, AccountRef::payouts_in_transit(), asset, amount);
    ledger::post(conn, &entry).await?;
    sqlx::query!(
        r#"INSERT INTO payouts (id, merchant_id, settlement_id, asset, amount, destination, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        payout.as_str(),
        merchant.as_str(),
        id.as_str(),
        asset.as_str(),
        amount.to_decimal(),
        destination,
        status,
    )
    .execute(&mut *conn)
    .await?;
    if bank_rail {
        let units = i64::try_from(amount.units())
            .map_err(|_| SettlementError::Corrupt(format!("payout amount {amount:?}")))?;
        crate::bank::transfers::queue_payout(
            conn,
            merchant,
            payout.as_str(),
            asset.as_str(),
            units,
        )
        .await?;
    } else if status == "pending" {
        let to: alloy::primitives::Address = destination
            .parse()
            .map_err(|_| SettlementError::Corrupt(format!("payout address {destination}")))?;
        let chain_id = asset
            .chain_id()
            .ok_or_else(|| SettlementError::Corrupt(format!("{asset} has no chain")))?;
        crate::chain::sender::queue(
            conn,
            &crate::chain::sender::NewSend {
                chain_id,
                purpose: crate::chain::sender::Purpose::Payout,
                object_id: payout.as_str(),
                merchant,
                asset,
                to,
                amount,
            },
        )
        .await?;
    }
    Ok(amount)
}

/// Loads a settlement of `merchant`.
pub(super) async fn load(
    pool: &Db,
    merchant: &MerchantId,
    id: &SettlementId,
) -> Result<Option<Settlement>, SettlementError> {
    let row = sqlx::query!(
        r#"SELECT period_start, period_end, totals AS "totals: Json<BTreeMap<String, AssetTotals>>",
                  first_leaf, leaf_count, checkpoint_size,
                  checkpoint_root, anchor_chain_id, anchor_contract, anchor_tx_hash, anchor_block,
                  created_at
             FROM settlements WHERE id = $1 AND merchant_id = $2"#,
        id.as_str(),
        merchant.as_str()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Settlement {
        id: id.clone(),
        merchant_id: merchant.clone(),
        period_start: r.period_start,
        period_end: r.period_end,
        totals: r.totals.0,
        first_leaf: r.first_leaf,
        leaf_count: r.leaf_count,
        checkpoint: r.checkpoint_size.zip(r.checkpoint_root),
        anchor: match (
            r.anchor_chain_id,
            r.anchor_contract,
            r.anchor_tx_hash,
            r.anchor_block,
        ) {
            (Some(c), Some(a), Some(t), Some(b)) => Some((c, a, t, b)),
            _ => None,
        },
        created_at: r.created_at,
    }))
}

/// A page of settlements of `merchant`, newest first.
pub(super) async fn list(
    pool: &Db,
    merchant: &MerchantId,
    starting_after: Option<&SettlementId>,
    limit: i64,
) -> Result<Vec<Settlement>, SettlementError> {
    let ids = sqlx::query_scalar!(
        r#"SELECT s.id AS "id: SettlementId" FROM settlements s
            WHERE s.merchant_id = $1
              AND ($2::text IS NULL OR (s.created_at, s.id) <
                   (SELECT c.created_at, c.id FROM settlements c WHERE c.id = $2 AND c.merchant_id = $1))
            ORDER BY s.created_at DESC, s.id DESC LIMIT $3"#,
        merchant.as_str(),
        starting_after.map(SettlementId::as_str),
        limit
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = load(pool, merchant, &id).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// The items of a settlement, as API objects.
pub(super) async fn items(
    pool: &Db,
    id: &SettlementId,
) -> Result<Vec<SettlementItem>, SettlementError> {
    let rows = sqlx::query!(
        r#"SELECT txn_id, kind, source_id, asset, amount, fee, leaf_index
             FROM settlement_items WHERE settlement_id = $1 ORDER BY entry_id"#,
        id.as_str()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SettlementItem {
            balance_transaction: r.txn_id,
            kind: r.kind,
            source: r.source_id,
            asset: r.asset,
            amount: r.amount.to_string(),
            fee: r.fee.to_string(),
            leaf_index: r.leaf_index,
        })
        .collect())
}

/// Announces `settlement.anchored` for a settlement, in the caller's
/// transaction.
pub(super) async fn announce_anchored(
    conn: &mut PgConnection,
    settlement: &Settlement,
    contents: &super::Contents,
) -> Result<(), SettlementError> {
    events::record(
        conn,
        &settlement.merchant_id,
        EventType::SettlementAnchored,
        &settlement.to_api(contents),
    )
    .await?;
    Ok(())
}
