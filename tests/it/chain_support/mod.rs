//! Shared by the `chain_*` tests: a devnet with E-PG's contracts, payers,
//! chain manipulation (mine, reorg), a sink that records its calls in the
//! test database (inside the watcher's transaction, so a rolled-back step
//! leaves no record, exactly as the real payments side), and a sink that
//! also books the ledger as the payments side will, for reconciliation.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U64, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use epg::chain::config::ChainConfig;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::chain::deploy::{self, DeployPlan, Deployment};
use epg::chain::watcher::{ChainStatus, SinkError, Transfer, TransferSink, Watcher};
use epg::db::Db;
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use epg::ledger::{AccountRef, Entry, EntryKind};
use epg::money::AssetRegistry;
use epg::telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use sqlx::PgConnection;

/// Anvil's default accounts #1–#3 (public devnet keys).
pub const PAYER_KEYS: [&str; 3] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// The treasury of test deployments: an address nobody else touches, so
/// its balance changes only with payments.
pub const TREASURY: Address = Address::repeat_byte(0x7e);

/// A devnet with the contracts deployed.
pub struct Devnet {
    /// The anvil (killed on drop).
    pub anvil: Anvil,
    /// Where the contracts are.
    pub deployment: Deployment,
}

impl Devnet {
    /// Deploys the contracts (treasury [`TREASURY`]) on `anvil`.
    pub async fn on(anvil: Anvil) -> Self {
        let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
        let admin = deployer.address();
        let deployment = deploy::deploy(
            &anvil.rpc_url(),
            deployer,
            &DeployPlan {
                treasury: TREASURY,
                admin,
                anchorer: admin,
                dev_helpers: true,
                ..DeployPlan::default()
            },
        )
        .await
        .unwrap();
        Self { anvil, deployment }
    }

    /// A devnet on a fresh anvil with `chain_id`.
    pub async fn start(chain_id: u64) -> Self {
        Self::on(crate::common::anvil_with_chain_id(chain_id).await).await
    }

    /// A read-only provider.
    pub fn provider(&self) -> impl Provider + Clone + use<> {
        ProviderBuilder::new().connect_http(self.anvil.rpc_url().parse().unwrap())
    }

    /// The chain as the watcher sees it, fast to retry, with
    /// `confirmations`.
    pub fn chain(&self, confirmations: u64) -> ChainConfig {
        let mut chain = ChainConfig::devnet(&self.deployment, &self.anvil.rpc_url());
        chain.confirmations = confirmations;
        chain.poll_interval_ms = 50;
        chain.retry_base_ms = 20;
        chain.retry_cap_ms = 400;
        chain.rpc_timeout_ms = 3000;
        chain
    }

    /// The dev stablecoin.
    pub fn usdc(&self) -> Address {
        self.deployment.stablecoin.unwrap()
    }

    /// The head.
    pub async fn head(&self) -> u64 {
        self.provider().get_block_number().await.unwrap()
    }

    /// Mines `n` blocks.
    pub async fn mine(&self, n: u64) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("anvil_mine".into(), (U64::from(n),))
            .await
            .unwrap();
    }

    /// Replaces the last `depth` blocks by as many new ones, with `txs`
    /// (signed raw transactions) included at the given offset from the
    /// first new block.
    pub async fn reorg(&self, depth: u64, txs: &[(Bytes, u64)]) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("anvil_reorg".into(), (depth, txs.to_vec()))
            .await
            .unwrap();
    }

    /// Sends a signed raw transaction and waits for its receipt.
    pub async fn send_raw(&self, raw: &Bytes) -> B256 {
        let pending = self.provider().send_raw_transaction(raw).await.unwrap();
        let receipt = pending.get_receipt().await.unwrap();
        assert!(receipt.status(), "transaction reverted");
        receipt.transaction_hash
    }

    /// Turns automining off (transactions wait for `mine`) or on.
    pub async fn automine(&self, on: bool) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    /// A payer with dev USDC approved to the router (and a few blocks on
    /// top, so that test reorgs never undo the approval).
    pub async fn payer(&self, index: usize) -> Payer {
        let signer: PrivateKeySigner = PAYER_KEYS[index].parse().unwrap();
        let payer = Payer {
            address: signer.address(),
            wallet: EthereumWallet::from(signer),
            rpc_url: self.anvil.rpc_url(),
            router: self.deployment.router,
            usdc: self.usdc(),
        };
        let provider = payer.provider();
        DevStablecoin::new(self.usdc(), &provider)
            .approve(self.deployment.router, U256::MAX)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        self.mine(5).await;
        payer
    }
}

/// An account paying through the router.
pub struct Payer {
    /// Its address.
    pub address: Address,
    wallet: EthereumWallet,
    rpc_url: String,
    router: Address,
    usdc: Address,
}

impl Payer {
    fn provider(&self) -> impl Provider + Clone + use<> {
        ProviderBuilder::new()
            .wallet(self.wallet.clone())
            .connect_http(self.rpc_url.parse().unwrap())
    }

    fn usdc_request(&self, amount: u64, reference: B256) -> TransactionRequest {
        let input = PaymentRouter::payCall {
            token: self.usdc,
            amount: U256::from(amount),
            r#ref: reference,
        }
        .abi_encode();
        TransactionRequest::default()
            .with_from(self.address)
            .with_to(self.router)
            .with_input(input)
            .with_gas_limit(200_000)
    }

    fn eth_request(&self, wei: U256, reference: B256) -> TransactionRequest {
        let input = PaymentRouter::payNativeCall { r#ref: reference }.abi_encode();
        TransactionRequest::default()
            .with_from(self.address)
            .with_to(self.router)
            .with_input(input)
            .with_value(wei)
            .with_gas_limit(200_000)
    }

    async fn send(&self, request: TransactionRequest) -> B256 {
        let receipt = self
            .provider()
            .send_transaction(request)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status(), "payment reverted");
        receipt.transaction_hash
    }

    /// Pays `amount` dev USDC units for `reference`; waits for the receipt.
    pub async fn pay_usdc(&self, amount: u64, reference: B256) -> B256 {
        self.send(self.usdc_request(amount, reference)).await
    }

    /// Pays `wei` for `reference`; waits for the receipt.
    pub async fn pay_eth(&self, wei: U256, reference: B256) -> B256 {
        self.send(self.eth_request(wei, reference)).await
    }

    /// Sends a USDC payment without waiting (automine off: it waits for a
    /// block), with an explicit nonce.
    pub async fn submit_usdc(&self, amount: u64, reference: B256, nonce: u64) -> B256 {
        let request = self
            .usdc_request(amount, reference)
            .with_nonce(nonce)
            .with_max_fee_per_gas(10_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000)
            .with_chain_id(self.chain_id().await);
        *self
            .provider()
            .send_transaction(request)
            .await
            .unwrap()
            .tx_hash()
    }

    async fn chain_id(&self) -> u64 {
        self.provider().get_chain_id().await.unwrap()
    }

    /// The next nonce.
    pub async fn nonce(&self) -> u64 {
        self.provider()
            .get_transaction_count(self.address)
            .pending()
            .await
            .unwrap()
    }

    /// A signed USDC payment, not sent: (hash, raw bytes).
    pub async fn sign_usdc(&self, amount: u64, reference: B256) -> (B256, Bytes) {
        let nonce = self.nonce().await;
        let request = self
            .usdc_request(amount, reference)
            .with_nonce(nonce)
            .with_max_fee_per_gas(10_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000)
            .with_chain_id(self.chain_id().await);
        let envelope = request.build(&self.wallet).await.unwrap();
        let hash = *envelope.tx_hash();
        (hash, Bytes::from(envelope.encoded_2718()))
    }
}

/// A reference from a number.
pub fn reference(n: u64) -> B256 {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(b"epg-test");
    bytes[24..].copy_from_slice(&n.to_be_bytes());
    B256::from(bytes)
}

/// Records every call in `test_sink_calls`, through the watcher's
/// connection.
#[derive(Debug, Clone, Default)]
pub struct RecordingSink;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The transfer.
    pub transfer: i64,
    /// `detected`, `confirmed`, `removed`.
    pub kind: String,
    /// For `removed`.
    pub was_confirmed: bool,
    /// Where the transfer was at the call.
    pub block_number: i64,
}

impl RecordingSink {
    /// Creates the table the sink writes to.
    pub async fn install(pool: &Db) -> Arc<dyn TransferSink> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS test_sink_calls (
                seq BIGSERIAL PRIMARY KEY, transfer_id BIGINT NOT NULL, kind TEXT NOT NULL,
                was_confirmed BOOLEAN NOT NULL, block_number BIGINT NOT NULL)",
        )
        .execute(pool)
        .await
        .unwrap();
        Arc::new(RecordingSink)
    }
}

async fn record(
    conn: &mut PgConnection,
    t: &Transfer,
    kind: &str,
    was_confirmed: bool,
) -> Result<(), SinkError> {
    sqlx::query(
        "INSERT INTO test_sink_calls (transfer_id, kind, was_confirmed, block_number)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(t.id)
    .bind(kind)
    .bind(was_confirmed)
    .bind(i64::try_from(t.block_number).unwrap())
    .execute(conn)
    .await?;
    Ok(())
}

impl TransferSink for RecordingSink {
    fn detected<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(record(conn, transfer, "detected", false))
    }

    fn confirmed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(record(conn, transfer, "confirmed", false))
    }

    fn removed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
        was_confirmed: bool,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(record(conn, transfer, "removed", was_confirmed))
    }
}

/// Every recorded call, in order.
pub async fn calls(pool: &Db) -> Vec<Call> {
    let rows: Vec<(i64, String, bool, i64)> = sqlx::query_as(
        "SELECT transfer_id, kind, was_confirmed, block_number FROM test_sink_calls ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(transfer, kind, was_confirmed, block_number)| Call {
            transfer,
            kind,
            was_confirmed,
            block_number,
        })
        .collect()
}

/// How many calls of `kind` were recorded.
pub async fn count(pool: &Db, kind: &str) -> usize {
    calls(pool).await.iter().filter(|c| c.kind == kind).count()
}

/// Asserts every transfer got exactly one `detected` and one `confirmed`
/// call and nothing else, and returns how many transfers there were.
pub async fn assert_each_detected_and_confirmed_once(pool: &Db) -> usize {
    let calls = calls(pool).await;
    let mut per: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for c in &calls {
        per.entry(c.transfer).or_default().push(c.kind.clone());
    }
    for (transfer, kinds) in &per {
        assert_eq!(
            kinds,
            &["detected".to_owned(), "confirmed".to_owned()],
            "transfer {transfer}"
        );
    }
    per.len()
}

/// A transfer row as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub chain_id: i64,
    pub tx_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub status: String,
    pub removals: i32,
    pub r#ref: String,
    pub token: String,
    pub asset: Option<String>,
    pub amount: String,
}

/// Every transfer row, by id.
pub async fn rows(pool: &Db) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, chain_id, tx_hash, log_index, block_number, status, removals, ref, token,
                asset, amount::text AS amount
           FROM chain_transfers ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A watcher of `chain` with its own metrics and status.
pub fn watcher(
    chain: ChainConfig,
    pool: &Db,
    sink: &Arc<dyn TransferSink>,
) -> (Watcher, Arc<Metrics>, Arc<ChainStatus>) {
    let metrics = Arc::new(Metrics::default());
    let status = Arc::new(ChainStatus::new([chain.chain_id]));
    let watcher = Watcher::new(
        chain,
        pool.clone(),
        sink.clone(),
        metrics.clone(),
        status.clone(),
    )
    .unwrap();
    (watcher, metrics, status)
}

/// The value of counter `epg_<name>_total` (0 if never bumped).
pub fn counter(metrics: &Metrics, name: &str) -> u64 {
    let prefix = format!("epg_{name}_total ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Waits until `check` is true, or panics after `timeout` with `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Books the ledger as the payments side will: a confirmed transfer debits
/// `treasury:<chain>` and credits `suspense`; a removed confirmed one is
/// reversed. (Also records the calls, like [`RecordingSink`].)
#[derive(Debug, Clone, Default)]
pub struct LedgerSink;

impl LedgerSink {
    /// Registers the chain's assets and creates the call table.
    pub async fn install(pool: &Db, chains: &[&ChainConfig]) -> Arc<dyn TransferSink> {
        RecordingSink::install(pool).await;
        let mut conn = pool.acquire().await.unwrap();
        let registry = AssetRegistry::new();
        for chain in chains {
            for asset in &chain.assets {
                registry
                    .register_chain_asset(&mut conn, &asset.chain_asset(chain.chain_id))
                    .await
                    .unwrap();
            }
        }
        Arc::new(LedgerSink)
    }
}

async fn book(conn: &mut PgConnection, t: &Transfer, reverse: bool) -> Result<(), SinkError> {
    let Some(asset) = t.asset_code() else {
        return Ok(());
    };
    let amount = t.ledger_amount().map_err(SinkError::msg)?;
    let (kind, key) = if reverse {
        (
            EntryKind::CHAIN_REVERSAL,
            format!("test:{}:{}:reverse", t.id, t.removals),
        )
    } else {
        (
            EntryKind::PAYMENT,
            format!("test:{}:{}:receipt", t.id, t.removals),
        )
    };
    let treasury = AccountRef::treasury(t.chain_id);
    let entry = if reverse {
        Entry::new(key, kind).transfer(AccountRef::suspense(), treasury, &asset, amount)
    } else {
        Entry::new(key, kind).transfer(treasury, AccountRef::suspense(), &asset, amount)
    };
    epg::ledger::post(conn, &entry).await?;
    Ok(())
}

impl TransferSink for LedgerSink {
    fn detected<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(record(conn, transfer, "detected", false))
    }

    fn confirmed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            book(&mut *conn, transfer, false).await?;
            record(conn, transfer, "confirmed", false).await
        })
    }

    fn removed<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        transfer: &'a Transfer,
        was_confirmed: bool,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if was_confirmed {
                book(&mut *conn, transfer, true).await?;
            }
            record(conn, transfer, "removed", was_confirmed).await
        })
    }
}
