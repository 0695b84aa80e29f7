//! The chain side of the fault suite: anvil with its state in a file, so
//! it can be stopped and started again with the same chain; a TCP proxy
//! between the nodes and anvil that can cut every connection (HTTP and
//! WebSocket alike) for a while; and reorganizations of the latest blocks
//! whose transactions come back afterwards, as they do on a real network
//! when the orphaned blocks' transactions return to the mempool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, Bytes};
use alloy::providers::{Provider, ProviderBuilder};
use epg::devnet::anvil::{Anvil, AnvilOptions};
use serde_json::Value;

use crate::tcp_proxy::CutProxy;

/// Anvil on a fixed port with its state in a file, behind a [`CutProxy`].
pub struct Chain {
    options: AnvilOptions,
    anvil: tokio::sync::Mutex<Option<Anvil>>,
    pub proxy: CutProxy,
    /// Held by whoever sends the customer's transactions, and by the
    /// faults that stop anvil or rewrite its blocks, so that no customer
    /// transaction is half sent while they do.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

impl Chain {
    /// `keep_history`: anvil as an archive node, see
    /// [`AnvilOptions::keep_history`].
    pub async fn start(dir: &Path, keep_history: bool) -> Self {
        let options = AnvilOptions {
            port: epg::devnet::anvil::free_port().unwrap(),
            chain_id: 31337,
            state_file: Some(dir.join("anvil-state.json")),
            log_file: Some(dir.join("anvil.log")),
            // Off by default: a full node, not an archive (see the caller).
            keep_history,
            ..AnvilOptions::default()
        };
        let anvil = Anvil::start(options.clone())
            .await
            .expect("anvil (run scripts/setup)");
        let proxy = CutProxy::start(options.port).await;
        Self {
            options,
            anvil: tokio::sync::Mutex::new(Some(anvil)),
            proxy,
            lock: Arc::default(),
        }
    }

    /// Anvil itself, for the suite's own calls (customers, mining).
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.options.port)
    }

    /// Through the proxy, for the nodes.
    pub fn node_http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port())
    }

    pub fn node_ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.proxy.port())
    }

    /// Anvil while it runs, for the suite's own set-up (deploying).
    pub async fn anvil(&self) -> tokio::sync::MutexGuard<'_, Option<Anvil>> {
        self.anvil.lock().await
    }

    /// Stops anvil (SIGTERM: it writes its state file) and starts it again
    /// on the same port from that file, after `down`.
    pub async fn restart(&self, down: Duration) {
        let _customers = self.lock.lock().await;
        let mut slot = self.anvil.lock().await;
        if let Some(anvil) = slot.take() {
            anvil.stop().await;
        }
        tokio::time::sleep(down).await;
        *slot = Some(Anvil::start(self.options.clone()).await.unwrap());
    }

    /// Replaces the latest `depth` blocks with empty ones (`anvil_reorg`),
    /// then sends their transactions again, in their order, so each is
    /// mined once more in a later block. Returns how many came back.
    /// Blocks up to `floor` (the contracts' deployment) are never replaced:
    /// empty blocks are mined first when the chain is that young.
    pub async fn reorg(&self, depth: u64, floor: u64) -> usize {
        let _customers = self.lock.lock().await;
        let provider = ProviderBuilder::new().connect_http(self.rpc_url().parse().unwrap());
        let mut head = provider.get_block_number().await.unwrap();
        if head < floor + depth {
            let _: Value = provider
                .raw_request(
                    "anvil_mine".into(),
                    (format!("{:#x}", floor + depth - head),),
                )
                .await
                .unwrap();
            head = provider.get_block_number().await.unwrap();
        }
        let mut raws: Vec<Bytes> = Vec::new();
        for number in head + 1 - depth..=head {
            let block: Value = provider
                .raw_request(
                    "eth_getBlockByNumber".into(),
                    (format!("{number:#x}"), false),
                )
                .await
                .unwrap();
            for hash in block["transactions"].as_array().unwrap() {
                let hash: B256 = hash.as_str().unwrap().parse().unwrap();
                let raw: Bytes = provider
                    .raw_request("eth_getRawTransactionByHash".into(), (hash,))
                    .await
                    .unwrap();
                raws.push(raw);
            }
        }
        let _: Value = provider
            .raw_request("anvil_reorg".into(), (depth, Vec::<(Bytes, u64)>::new()))
            .await
            .unwrap();
        let mut back = 0;
        for raw in &raws {
            // A node may have sent its own transaction again first. Each is
            // waited for: the customers' next nonce is read from mined
            // blocks.
            if let Ok(pending) = provider.send_raw_transaction(raw).await
                && pending.get_receipt().await.is_ok()
            {
                back += 1;
            }
        }
        back
    }

    pub async fn stop(&self) {
        if let Some(anvil) = self.anvil.lock().await.take() {
            anvil.stop().await;
        }
    }
}
