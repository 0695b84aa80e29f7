//! Read-only JSON-RPC to one chain: every call bounded by a timeout, every
//! error naming the call and the endpoint — without the endpoint's path or
//! query, where providers put API keys.
//!
//! Retrying is the caller's business (the watcher backs off per step, so a
//! step is redone from a consistent start rather than call by call).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, U64, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest};
use alloy::sol_types::{SolCall, SolEvent};
use futures::future::try_join_all;

use super::contracts::PaymentRouter;

alloy::sol! {
    /// The one ERC-20 read the node needs.
    interface IErc20Balance {
        function balanceOf(address account) external view returns (uint256);
    }
}

/// Concurrent requests when fetching many headers or receipts.
const CONCURRENCY: usize = 16;

/// A failed RPC call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} on {endpoint}: {message}")]
pub struct RpcError {
    /// The endpoint, reduced to scheme, host and port.
    pub endpoint: String,
    /// The JSON-RPC method.
    pub method: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What the watcher needs of a block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHeader {
    number: U64,
    hash: B256,
    parent_hash: B256,
    timestamp: U64,
}

/// A block header: number, hash, parent, time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent's hash.
    pub parent_hash: B256,
    /// Seconds since the epoch.
    pub timestamp: u64,
}

/// A JSON-RPC client for one chain over HTTP(S).
#[derive(Clone)]
pub struct ChainRpc {
    provider: RootProvider,
    endpoint: String,
    full_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for ChainRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRpc")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port` of `url`: safe to log (API keys live in paths and
/// query strings).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

impl ChainRpc {
    /// A client of `url` whose calls fail after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RpcError> {
        let endpoint = redact(url);
        let parsed = reqwest::Url::parse(url).map_err(|e| RpcError {
            endpoint: endpoint.clone(),
            method: "connect",
            message: e.to_string(),
        })?;
        Ok(Self {
            provider: RootProvider::new_http(parsed.clone()),
            endpoint,
            full_url: parsed.to_string(),
            timeout,
        })
    }

    /// The endpoint as shown in errors and status.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call<T, E: std::fmt::Display>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, RpcError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(method, e.to_string())),
            Err(_) => Err(self.error(
                method,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    fn error(&self, method: &'static str, message: String) -> RpcError {
        // Transport errors quote the URL they failed on; keep only the
        // redacted endpoint.
        let message = message
            .replace(&self.full_url, &self.endpoint)
            .replace(self.full_url.trim_end_matches('/'), &self.endpoint);
        RpcError {
            endpoint: self.endpoint.clone(),
            method,
            message,
        }
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        self.call("eth_chainId", self.provider.get_chain_id().into_future())
            .await
    }

    /// `eth_blockNumber`: the head.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        self.call(
            "eth_blockNumber",
            self.provider.get_block_number().into_future(),
        )
        .await
    }

    /// The header of block `number`, `None` if the chain is not that long.
    pub async fn header(&self, number: u64) -> Result<Option<BlockHeader>, RpcError> {
        let raw: Option<RawHeader> = self
            .call(
                "eth_getBlockByNumber",
                self.provider
                    .raw_request("eth_getBlockByNumber".into(), (U64::from(number), false)),
            )
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let header = BlockHeader {
            number: raw.number.to(),
            hash: raw.hash,
            parent_hash: raw.parent_hash,
            timestamp: u64::try_from(raw.timestamp).unwrap_or(u64::MAX),
        };
        if header.number != number {
            return Err(self.error(
                "eth_getBlockByNumber",
                format!("asked for block {number}, got block {}", header.number),
            ));
        }
        Ok(Some(header))
    }

    /// The headers of `numbers` that exist (a few requests at a time).
    pub async fn headers(
        &self,
        numbers: impl IntoIterator<Item = u64>,
    ) -> Result<BTreeMap<u64, BlockHeader>, RpcError> {
        let numbers: Vec<u64> = numbers.into_iter().collect();
        let mut found = BTreeMap::new();
        for chunk in numbers.chunks(CONCURRENCY) {
            let headers = try_join_all(chunk.iter().map(|n| self.header(*n))).await?;
            found.extend(headers.into_iter().flatten().map(|h| (h.number, h)));
        }
        Ok(found)
    }

    /// `eth_getLogs` for `PaymentReceived` of `router` in `from..=to`.
    pub async fn payment_logs(
        &self,
        router: Address,
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, RpcError> {
        let filter = Filter::new()
            .address(router)
            .event_signature(PaymentRouter::PaymentReceived::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        self.call("eth_getLogs", self.provider.get_logs(&filter))
            .await
    }

    /// `eth_getLogs` for any filter (the contract guard's admin events).
    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, RpcError> {
        self.call("eth_getLogs", self.provider.get_logs(filter))
            .await
    }

    /// `eth_call` of `input` on `to` after block `block`: the contract's
    /// answer, or an error if it reverted (or the call failed).
    pub async fn call_at(
        &self,
        to: Address,
        input: Vec<u8>,
        block: u64,
    ) -> Result<Bytes, RpcError> {
        let request = TransactionRequest::default()
            .to(to)
            .input(Bytes::from(input).into());
        self.call(
            "eth_call",
            self.provider
                .call(request)
                .block(BlockId::number(block))
                .into_future(),
        )
        .await
    }

    /// `eth_getTransactionReceipt`.
    pub async fn receipt(&self, tx: B256) -> Result<Option<TransactionReceipt>, RpcError> {
        self.call(
            "eth_getTransactionReceipt",
            self.provider.get_transaction_receipt(tx).into_future(),
        )
        .await
    }

    /// A transaction by hash (mined or pending).
    pub async fn transaction(
        &self,
        tx: B256,
    ) -> Result<Option<alloy::rpc::types::Transaction>, RpcError> {
        self.call(
            "eth_getTransactionByHash",
            self.provider.get_transaction_by_hash(tx).into_future(),
        )
        .await
    }

    /// The native balance of `account` after block `block`.
    pub async fn native_balance(&self, account: Address, block: u64) -> Result<U256, RpcError> {
        self.call(
            "eth_getBalance",
            self.provider
                .get_balance(account)
                .block_id(BlockId::number(block))
                .into_future(),
        )
        .await
    }

    /// The native balance of `account` after the block with hash `block`
    /// (EIP-1898: an error rather than another fork's state if the block
    /// is no longer known).
    pub async fn native_balance_at(&self, account: Address, block: B256) -> Result<U256, RpcError> {
        self.call(
            "eth_getBalance",
            self.provider
                .get_balance(account)
                .block_id(BlockId::hash(block))
                .into_future(),
        )
        .await
    }

    /// `token.balanceOf(account)` after block `block` (zero before the
    /// token existed).
    pub async fn token_balance(
        &self,
        token: Address,
        account: Address,
        block: u64,
    ) -> Result<U256, RpcError> {
        let input = IErc20Balance::balanceOfCall { account }.abi_encode();
        let request = TransactionRequest::default()
            .to(token)
            .input(Bytes::from(input).into());
        let out: Bytes = self
            .call(
                "eth_call",
                self.provider
                    .call(request)
                    .block(BlockId::number(block))
                    .into_future(),
            )
            .await?;
        if out.is_empty() {
            // No code at `token` at that block (not deployed yet): nobody
            // holds any.
            return Ok(U256::ZERO);
        }
        IErc20Balance::balanceOfCall::abi_decode_returns(&out)
            .map_err(|e| self.error("eth_call", format!("balanceOf answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shown_without_path_or_query() {
        assert_eq!(
            redact("https://mainnet.example.com/v3/SECRETKEY?x=1"),
            "https://mainnet.example.com"
        );
        assert_eq!(redact("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact("not a url"), "<invalid url>");
    }

    #[tokio::test]
    async fn errors_do_not_quote_the_full_url() {
        let port = crate::devnet::anvil::free_port().unwrap();
        let rpc = ChainRpc::new(
            &format!("http://127.0.0.1:{port}/key/SECRETKEY"),
            Duration::from_secs(2),
        )
        .unwrap();
        let err = rpc.block_number().await.unwrap_err().to_string();
        assert!(!err.contains("SECRETKEY"), "{err}");
        assert!(err.contains("eth_blockNumber"), "{err}");
    }
}
