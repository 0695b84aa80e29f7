//! An anvil devnet with E-PG's contracts deployed, for the benches that
//! drive the chain watcher (chain, deposits).

use alloy::primitives::{Address, U64};
use alloy::providers::{Provider, RootProvider};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::config::ChainConfig;
use epg::chain::deploy::{self, DeployPlan, Deployment};
use epg::devnet::anvil::{Anvil, AnvilOptions, DEV_KEY_0};

/// A running anvil, the deployment on it and a provider to drive it.
pub struct Chain {
    pub anvil: Anvil,
    pub deployment: Deployment,
    pub provider: RootProvider,
}

impl Chain {
    /// Starts anvil and deploys the contracts with the dev helpers (the
    /// stablecoin and the price feed), paying into `treasury`.
    pub async fn start(treasury: Address) -> Self {
        let anvil = Anvil::start(AnvilOptions::default()).await.unwrap();
        let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
        let admin = deployer.address();
        let deployment = deploy::deploy(
            &anvil.rpc_url(),
            deployer,
            &DeployPlan {
                treasury,
                admin,
                anchorer: admin,
                dev_helpers: true,
                ..DeployPlan::default()
            },
        )
        .await
        .unwrap();
        let provider = RootProvider::new_http(anvil.rpc_url().parse().unwrap());
        Self {
            anvil,
            deployment,
            provider,
        }
    }

    pub async fn mine(&self, n: u64) {
        let _: serde_json::Value = self
            .provider
            .raw_request("anvil_mine".into(), (U64::from(n),))
            .await
            .unwrap();
    }

    /// Turns mining on every transaction on or off (off: blocks come only
    /// from [`Chain::mine`]).
    pub async fn automine(&self, on: bool) {
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    pub async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }

    /// The dev stablecoin (USDC, 6 decimals).
    pub fn usdc(&self) -> Address {
        self.deployment.stablecoin.unwrap()
    }

    /// The devnet's chain configuration with `confirmations`.
    pub fn config(&self, confirmations: u64) -> ChainConfig {
        let mut chain = ChainConfig::devnet(&self.deployment, &self.anvil.rpc_url());
        chain.confirmations = confirmations;
        chain
    }
}
