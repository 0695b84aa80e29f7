//! The settlement schedule: every merchant on a `daily` or `weekly`
//! schedule is settled once its period has passed, and new checkpoints are
//! anchored. Batches take an advisory lock per merchant and entries are
//! settled once, so several nodes may run this.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{SettlementError, anchoring, batch};
use crate::db::Db;
use crate::ids::MerchantId;
use crate::transparency::TransparencyLog;
use crate::transparency::anchor::Anchorer;

/// Merchants whose last batch is older than their schedule's period.
async fn due(pool: &Db, now: OffsetDateTime) -> Result<Vec<MerchantId>, SettlementError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT m.id AS "id: MerchantId" FROM merchants m
            WHERE m.payout_schedule <> 'manual'
              AND coalesce((SELECT max(period_end) FROM settlements s WHERE s.merchant_id = m.id),
                           m.created_at)
                  <= $1::timestamptz - CASE m.payout_schedule WHEN 'weekly' THEN interval '7 days'
                                                 ELSE interval '1 day' END"#,
        now
    )
    .fetch_all(pool)
    .await?)
}

/// One pass: settle every merchant that is due, then anchor.
pub async fn settle_due(
    pool: &Db,
    log: &TransparencyLog,
    anchorer: Option<&Anchorer>,
    now: OffsetDateTime,
) -> Result<usize, SettlementError> {
    let mut settled = 0;
    for merchant in due(pool, now).await? {
        if batch::run(pool, log, &merchant, now).await?.is_some() {
            settled += 1;
        }
    }
    if let Some(anchorer) = anchorer {
        anchoring::anchor_pending(pool, anchorer).await?;
    }
    Ok(settled)
}

/// Runs [`settle_due`] every `every` until `shutdown`.
pub async fn run(
    pool: Db,
    log: TransparencyLog,
    anchorer: Option<Anchorer>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                match settle_due(&pool, &log, anchorer.as_ref(), OffsetDateTime::now_utc()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(settled = n, "settlement batches"),
                    Err(e) => tracing::warn!(error = %e, "settlement pass failed"),
                }
            }
        }
    }
}
