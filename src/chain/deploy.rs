//! Deploying E-PG's contracts: all four on a devnet (`epg dev`), or the
//! router and the anchor on a real chain (`epg contracts deploy`).
//!
//! The deployment is written to a JSON file that the node's chain
//! configuration is made from; a devnet restarted from its saved state
//! reuses the contracts already there.

use std::path::Path;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use super::ChainError;
use super::contracts::{
    DepositFactory, DevPriceFeed, DevStablecoin, PaymentRouter, SettlementAnchor,
};

/// The version of E-PG's contracts this build deploys and reads. Version 2
/// (issue 16): the router's delayed treasury change and token allow-list,
/// the anchor's growth limit and `supersede`. A deployment file without the
/// field was written for version 1.
pub const CONTRACTS_VERSION: u32 = 2;

/// Seconds a treasury change, or a transfer of either contract's admin role,
/// waits by default: 48 hours, time for an operator to see the node's alert
/// and cancel, far longer than a quote lives.
pub const DEFAULT_DELAY_SECS: u64 = 48 * 3600;

fn version_one() -> u32 {
    1
}

/// Where E-PG's contracts live on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// [`CONTRACTS_VERSION`] of the contracts deployed.
    #[serde(default = "version_one")]
    pub contracts_version: u32,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `PaymentRouter`.
    pub router: Address,
    /// `SettlementAnchor`.
    pub anchor: Address,
    /// Where the router forwards payments.
    pub treasury: Address,
    /// Holder of the admin roles.
    pub admin: Address,
    /// Holder of the anchorer role (the node's anchoring key).
    pub anchorer: Address,
    /// `DevStablecoin` (devnets only).
    pub stablecoin: Option<Address>,
    /// `DevPriceFeed` ETH/USD (devnets only).
    pub price_feed: Option<Address>,
    /// `DepositFactory` paying `treasury` (issue 17); absent in deployment
    /// files written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_factory: Option<Address>,
    /// Block of the first deployment transaction: watchers start there.
    pub start_block: u64,
}

/// What to deploy and who holds which role.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// Router payments go here.
    pub treasury: Address,
    /// Admin of both contracts.
    pub admin: Address,
    /// May anchor checkpoints.
    pub anchorer: Address,
    /// Also deploy the devnet stablecoin and price feed (the stablecoin is
    /// then allowed on the router too).
    pub dev_helpers: bool,
    /// Seconds a transfer of either contract's admin role waits (at most
    /// 2^48 - 1).
    pub admin_delay_secs: u64,
    /// Seconds between a treasury proposal and its acceptance; fixed for the
    /// router's lifetime (at most 2^48 - 1).
    pub treasury_delay_secs: u64,
    /// ERC-20 tokens the router accepts from the start.
    pub tokens: Vec<Address>,
}

impl Default for DeployPlan {
    /// Zero addresses (which the contracts refuse: set them), the default
    /// delays, no tokens, no devnet helpers.
    fn default() -> Self {
        Self {
            treasury: Address::ZERO,
            admin: Address::ZERO,
            anchorer: Address::ZERO,
            dev_helpers: false,
            admin_delay_secs: DEFAULT_DELAY_SECS,
            treasury_delay_secs: DEFAULT_DELAY_SECS,
            tokens: Vec::new(),
        }
    }
}

/// Initial ETH/USD answer of the devnet price feed: $3,000 with 8 decimals.
pub const DEV_ETH_USD: i64 = 300_000_000_000;
/// Dev USDC minted to each funded devnet account: 1,000,000 USDC.
pub const DEV_MINT_PER_ACCOUNT: u64 = 1_000_000_000_000;

fn rpc_err(url: &str, e: impl Into<super::BoxError>) -> ChainError {
    ChainError::Rpc {
        url: url.to_owned(),
        source: e.into(),
    }
}

fn contract_err(what: &str, e: impl Into<super::BoxError>) -> ChainError {
    ChainError::Contract {
        what: what.to_owned(),
        source: e.into(),
    }
}

/// Deploys per `plan` with `signer`, waiting for each receipt.
pub async fn deploy(
    rpc_url: &str,
    signer: PrivateKeySigner,
    plan: &DeployPlan,
) -> Result<Deployment, ChainError> {
    let url = rpc_url.parse().map_err(|e| rpc_err(rpc_url, e))?;
    let signer_address = signer.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url);
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| rpc_err(rpc_url, e))?;
    let start_block = provider
        .get_block_number()
        .await
        .map_err(|e| rpc_err(rpc_url, e))?;

    let delay = |name: &str, secs: u64| {
        alloy::primitives::aliases::U48::try_from(secs)
            .map_err(|_| contract_err(name, format!("{secs} s is more than 2^48 - 1")))
    };
    let admin_delay = delay("admin delay", plan.admin_delay_secs)?;
    let treasury_delay = delay("treasury delay", plan.treasury_delay_secs)?;

    // The devnet token is deployed right after the router and the anchor
    // (so that devnet addresses stay those epg.example.toml shows), and the
    // router allows it from its constructor: its address is the deployer's
    // third contract from here.
    let deployer = signer_address;
    let nonce = provider
        .get_transaction_count(deployer)
        .pending()
        .await
        .map_err(|e| rpc_err(rpc_url, e))?;
    let token_at = deployer.create(nonce + 2);
    let mut tokens = plan.tokens.clone();
    if plan.dev_helpers {
        tokens.push(token_at);
    }
    let router = PaymentRouter::deploy(
        &provider,
        admin_delay,
        plan.admin,
        plan.treasury,
        treasury_delay,
        tokens,
    )
    .await
    .map_err(|e| contract_err("deploy PaymentRouter", e))?;
    let anchor = SettlementAnchor::deploy(&provider, admin_delay, plan.admin, plan.anchorer)
        .await
        .map_err(|e| contract_err("deploy SettlementAnchor", e))?;
    let token = if plan.dev_helpers {
        let token = DevStablecoin::deploy(&provider)
            .await
            .map_err(|e| contract_err("deploy DevStablecoin", e))?;
        if *token.address() != token_at {
            // Another transaction of the same key came in between.
            return Err(contract_err(
                "deploy DevStablecoin",
                format!(
                    "deployed at {}, not at {token_at} which the router allows; deploy again \
                     without other transactions from {deployer}",
                    token.address()
                ),
            ));
        }
        Some(token)
    } else {
        None
    };

    let (stablecoin, price_feed) = if let Some(token) = token {
        let feed = DevPriceFeed::deploy(
            &provider,
            alloy::primitives::I256::try_from(DEV_ETH_USD).unwrap_or_default(),
            8,
        )
        .await
        .map_err(|e| contract_err("deploy DevPriceFeed", e))?;
        // Anvil funds its dev accounts with ETH; give them dev USDC too so a
        // payment can be tried with `cast send` straight away.
        let accounts = provider
            .get_accounts()
            .await
            .map_err(|e| rpc_err(rpc_url, e))?;
        for account in accounts {
            token
                .mint(account, U256::from(DEV_MINT_PER_ACCOUNT))
                .send()
                .await
                .map_err(|e| contract_err("mint DevStablecoin", e))?
                .get_receipt()
                .await
                .map_err(|e| contract_err("mint DevStablecoin", e))?;
        }
        (Some(*token.address()), Some(*feed.address()))
    } else {
        (None, None)
    };

    // Last, so that the addresses of the contracts above stay those of
    // deployments made before the factory existed.
    let factory = DepositFactory::deploy(&provider, plan.treasury)
        .await
        .map_err(|e| contract_err("deploy DepositFactory", e))?;

    Ok(Deployment {
        contracts_version: CONTRACTS_VERSION,
        chain_id,
        router: *router.address(),
        anchor: *anchor.address(),
        treasury: plan.treasury,
        admin: plan.admin,
        anchorer: plan.anchorer,
        stablecoin,
        price_feed,
        deposit_factory: Some(*factory.address()),
        start_block,
    })
}

/// The chain id answered by `rpc_url`.
pub async fn chain_id(rpc_url: &str) -> Result<u64, ChainError> {
    let url = rpc_url.parse().map_err(|e| rpc_err(rpc_url, e))?;
    ProviderBuilder::new()
        .connect_http(url)
        .get_chain_id()
        .await
        .map_err(|e| rpc_err(rpc_url, e))
}

/// The head block number of the chain at `rpc_url`.
pub async fn head(rpc_url: &str) -> Result<u64, ChainError> {
    let url = rpc_url.parse().map_err(|e| rpc_err(rpc_url, e))?;
    ProviderBuilder::new()
        .connect_http(url)
        .get_block_number()
        .await
        .map_err(|e| rpc_err(rpc_url, e))
}

/// Whether every contract of `deployment` still has code on the chain at
/// `rpc_url` (false after the devnet was reset).
pub async fn is_live(rpc_url: &str, deployment: &Deployment) -> Result<bool, ChainError> {
    let url = rpc_url.parse().map_err(|e| rpc_err(rpc_url, e))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| rpc_err(rpc_url, e))?;
    if chain_id != deployment.chain_id {
        return Ok(false);
    }
    let addresses = [
        Some(deployment.router),
        Some(deployment.anchor),
        deployment.stablecoin,
        deployment.price_feed,
        deployment.deposit_factory,
    ];
    for address in addresses.into_iter().flatten() {
        let code = provider
            .get_code_at(address)
            .await
            .map_err(|e| rpc_err(rpc_url, e))?;
        if code.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads a deployment file; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Deployment>, ChainError> {
    let file_err = |source: super::BoxError| ChainError::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| file_err(e.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(e.into())),
    }
}

/// Writes a deployment file (pretty JSON).
pub fn write(path: &Path, deployment: &Deployment) -> Result<(), ChainError> {
    let json = serde_json::to_vec_pretty(deployment).map_err(|e| ChainError::File {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    std::fs::write(path, json).map_err(|e| ChainError::File {
        path: path.display().to_string(),
        source: e.into(),
    })
}

/// The deployer key from the environment: `EPG_DEPLOYER_KEY` (hex), or a
/// keystore file whose password is in `EPG_DEPLOYER_PASSWORD`. Never from a
/// command-line argument, which other users of the machine could read.
pub fn signer_from_env(keystore: Option<&Path>) -> Result<PrivateKeySigner, ChainError> {
    if let Some(path) = keystore {
        let password = std::env::var("EPG_DEPLOYER_PASSWORD").map_err(|_| {
            ChainError::Key(format!(
                "keystore {} needs its password in EPG_DEPLOYER_PASSWORD",
                path.display()
            ))
        })?;
        return PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
            ChainError::Keystore {
                path: path.display().to_string(),
                source: e.into(),
            }
        });
    }
    let hex = std::env::var("EPG_DEPLOYER_KEY").map_err(|_| {
        ChainError::Key(
            "set EPG_DEPLOYER_KEY (hex private key) or pass --keystore FILE with EPG_DEPLOYER_PASSWORD"
                .into(),
        )
    })?;
    hex.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| ChainError::Key("EPG_DEPLOYER_KEY is not a 32-byte hex private key".into()))
}
