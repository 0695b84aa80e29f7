//! The payment's `crypto` view: the quote and its transfers as the API
//! shows them.

use sqlx::PgConnection;
use sqlx::types::Json;

use crate::ids::PaymentId;
use crate::payments::model::CryptoView;
use crate::payments::{Payment, PaymentError};

/// Rewrites the payment's `crypto` view from the quote and its transfers;
/// returns it.
pub(super) async fn refresh_view(
    conn: &mut PgConnection,
    payment: &PaymentId,
) -> Result<Option<CryptoView>, PaymentError> {
    let view = sqlx::query_scalar!(
        r#"UPDATE payments p SET crypto = v.view FROM (
             SELECT jsonb_build_object(
               'chain_id', c.chain_id,
               'asset', split_part(c.asset, ':', 1),
               'token_address', CASE WHEN c.token = '0x0000000000000000000000000000000000000000'
                                     THEN NULL ELSE c.token END,
               'payment_reference', c.reference,
               'deposit_address', c.deposit_address,
               'mode', c.mode,
               'amount', c.expected::text,
               'amount_received', c.received::text,
               'amount_confirmed', c.confirmed::text,
               'expires_at', extract(epoch FROM c.expires_at)::bigint,
               'confirmations_required', c.confirmations,
               'confirmations', coalesce((
                   SELECT min(greatest(0, cur.block_number - t.block_number + 1))
                     FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
                     JOIN chain_cursors cur ON cur.chain_id = t.chain_id
                    WHERE b.payment_id = c.payment_id AND t.status <> 'removed'), 0),
               'exception', c.exception,
               'transfers', coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                            'tx_hash', t.tx_hash, 'log_index', t.log_index,
                            'block_number', t.block_number, 'amount', t.amount::text,
                            'payer', t.payer, 'status', t.status, 'booking', b.booking)
                          ORDER BY t.id)
                     FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
                    WHERE b.payment_id = c.payment_id), '[]'::jsonb)
             ) AS view
             FROM crypto_payments c WHERE c.payment_id = $1
           ) v
           WHERE p.id = $1
           RETURNING p.crypto AS "crypto: Json<CryptoView>""#,
        payment.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(view.flatten().map(|Json(view)| view))
}

/// Sets `crypto.confirmations` of each crypto payment to its depth now.
///
/// The stored view is rewritten only when a transfer moves, so between
/// detection and confirmation it would keep the depth seen at detection;
/// the watcher's cursor is the head it has processed, which gives the
/// depth at read time in one query for a whole page.
pub async fn live_confirmations(
    pool: &crate::db::Db,
    payments: &mut [Payment],
) -> Result<(), PaymentError> {
    let ids: Vec<String> = payments
        .iter()
        .filter(|p| p.crypto.is_some())
        .map(|p| p.id.as_str().to_owned())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let depths = sqlx::query!(
        r#"SELECT b.payment_id AS "payment_id!",
                  min(greatest(0, cur.block_number - t.block_number + 1)) AS "depth!"
             FROM crypto_bookings b JOIN chain_transfers t ON t.id = b.transfer_id
             JOIN chain_cursors cur ON cur.chain_id = t.chain_id
            WHERE b.payment_id = ANY($1) AND t.status <> 'removed'
              AND cur.block_number IS NOT NULL
            GROUP BY b.payment_id"#,
        &ids
    )
    .fetch_all(pool)
    .await?;
    for row in depths {
        if let Some(view) = payments
            .iter_mut()
            .find(|p| p.id.as_str() == row.payment_id)
            .and_then(|p| p.crypto.as_mut())
        {
            view.confirmations = row.depth;
        }
    }
    Ok(())
}
