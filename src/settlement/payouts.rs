//! The end of a crypto payout. A batch moves the payout from the
//! merchant's `available` to `payouts_in_transit` and queues the hot
//! wallet's transfer ([`crate::chain::sender`]); when the transfer is
//! confirmed the money leaves the treasury (`payouts_in_transit` →
//! `treasury:<chain>`, payout `paid`); when it reverts it goes back to the
//! merchant's `available` (payout `failed`) and the next batch pays it again.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{PayoutObject, PayoutObjectName, PayoutStatus, SettlementError};
use crate::chain::sender::{ChainSend, SendOutcome};
use crate::db::Db;
use crate::ledger::{self, AccountRef, Entry, EntryKind, MerchantAccount};

/// Books the end of the payout `send` pays, inside the sender's transaction.
pub async fn on_chain_finished(
    conn: &mut PgConnection,
    send: &ChainSend,
    outcome: SendOutcome,
) -> Result<(), SettlementError> {
    let merchant = send
        .merchant_id
        .as_ref()
        .ok_or_else(|| SettlementError::Corrupt(format!("send {} has no merchant", send.id)))?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: PayoutStatus" FROM payouts
            WHERE id = $1 AND merchant_id = $2 FOR UPDATE"#,
        send.object_id,
        merchant.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| SettlementError::Corrupt(format!("send {} pays no payout", send.id)))?;
    if status != PayoutStatus::Pending {
        return Ok(());
    }
    let (entry, status) = match outcome {
        SendOutcome::Confirmed => (
            Entry::new(
                format!("{}:sent", send.object_id),
                EntryKind::custom("payout_sent"),
            )
            .transfer(
                AccountRef::payouts_in_transit(),
                AccountRef::treasury(send.chain_id),
                &send.asset,
                send.amount,
            ),
            PayoutStatus::Paid,
        ),
        SendOutcome::Reverted => (
            Entry::new(
                format!("{}:failed", send.object_id),
                EntryKind::PAYOUT_FAILURE,
            )
            .transfer(
                AccountRef::payouts_in_transit(),
                AccountRef::merchant(merchant, MerchantAccount::Available),
                &send.asset,
                send.amount,
            ),
            PayoutStatus::Failed,
        ),
    };
    ledger::post(conn, &entry.source(send.object_id.as_str())).await?;
    sqlx::query!(
        "UPDATE payouts SET status = $2, tx_hash = $3 WHERE id = $1",
        send.object_id,
        status as PayoutStatus,
        send.tx_hash.map(|h| format!("{h:#x}")),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The payouts of each of `settlements`, as API objects, oldest first.
pub(super) async fn of_settlements(
    pool: &Db,
    settlements: &[&str],
) -> Result<HashMap<String, Vec<PayoutObject>>, SettlementError> {
    let rows = sqlx::query!(
        r#"SELECT id, settlement_id, asset, amount, destination,
                  status AS "status: PayoutStatus", tx_hash, created_at
             FROM payouts WHERE settlement_id = ANY($1) ORDER BY created_at, id"#,
        settlements as &[&str]
    )
    .fetch_all(pool)
    .await?;
    let mut by_settlement: HashMap<String, Vec<PayoutObject>> = HashMap::new();
    for r in rows {
        by_settlement
            .entry(r.settlement_id)
            .or_default()
            .push(PayoutObject {
                id: r.id,
                object: PayoutObjectName::Payout,
                asset: r.asset,
                amount: r.amount.to_string(),
                destination: r.destination,
                status: r.status,
                tx_hash: r.tx_hash,
                created: r.created_at.unix_timestamp(),
            });
    }
    Ok(by_settlement)
}
