//! New-head notifications over a WebSocket subscription.
//!
//! Only a wake-up call: the watcher reads the head over HTTP itself and
//! polls anyway, so a subscription that drops, lags or lies costs latency,
//! never correctness. While it is down the watcher is on polling and this
//! task reconnects with the chain's back-off.

use std::sync::Arc;

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::status::{ChainStatus, HeadSource};
use crate::chain::config::ChainConfig;
use crate::chain::rpc::redact;

/// Follows `newHeads` on the chain's `ws_url` until `shutdown`, waking
/// `wake` on each new head and on every change of source.
pub async fn follow(
    chain: ChainConfig,
    ws_url: String,
    wake: Arc<Notify>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) {
    let endpoint = redact(&ws_url);
    let mut failures = 0u32;
    loop {
        let connect = async {
            // One reconnection attempt inside alloy; after that the stream
            // ends and this loop takes over with the chain's back-off.
            let ws = WsConnect::new(ws_url.clone())
                .with_max_retries(1)
                .with_retry_interval(chain.retry_delay(1));
            let provider = ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect_ws(ws)
                .await?;
            let subscription = provider.subscribe_blocks().await?;
            Ok::<_, alloy::transports::TransportError>((provider, subscription))
        };
        let connected = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(chain.rpc_timeout(), connect) => r,
        };
        match connected {
            Ok(Ok((_provider, subscription))) => {
                failures = 0;
                status.update(chain.chain_id, |h| h.new_heads = HeadSource::Subscription);
                tracing::info!(chain_id = chain.chain_id, %endpoint, "new heads by subscription");
                wake.notify_one();
                let mut heads = subscription.into_stream();
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        next = heads.next() => match next {
                            Some(_) => wake.notify_one(),
                            None => break,
                        },
                    }
                }
                tracing::warn!(chain_id = chain.chain_id, %endpoint, "head subscription ended; polling");
            }
            Ok(Err(e)) => {
                let message = e.to_string().replace(&ws_url, &endpoint);
                tracing::warn!(chain_id = chain.chain_id, %endpoint, error = %message, "cannot subscribe to new heads; polling");
            }
            Err(_) => {
                tracing::warn!(chain_id = chain.chain_id, %endpoint, "head subscription timed out; polling");
            }
        }
        status.update(chain.chain_id, |h| h.new_heads = HeadSource::Polling);
        wake.notify_one();
        failures = failures.saturating_add(1);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(chain.retry_delay(failures)) => {}
        }
    }
}
