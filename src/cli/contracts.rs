//! `epg contracts deploy`: deploys the router and the anchor (and, with
//! `--dev-helpers`, the devnet token and price feed) to any chain.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy::primitives::Address;
use clap::Subcommand;

use super::CliError;
use crate::chain::deploy::{self, DeployPlan};

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Deploy E-PG's contracts. The deployer key comes from EPG_DEPLOYER_KEY,
    /// or from --keystore with its password in EPG_DEPLOYER_PASSWORD; never
    /// from the command line.
    Deploy {
        /// JSON-RPC URL of the chain.
        #[arg(long, env = "EPG_RPC_URL", hide_env_values = true)]
        rpc_url: String,
        /// Encrypted JSON keystore of the deployer.
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// Where the router forwards payments (default: the deployer).
        #[arg(long)]
        treasury: Option<Address>,
        /// Admin of both contracts (default: the deployer).
        #[arg(long)]
        admin: Option<Address>,
        /// Holder of the anchorer role (default: the deployer).
        #[arg(long)]
        anchorer: Option<Address>,
        /// Also deploy DevStablecoin and DevPriceFeed (devnets only); the
        /// router then accepts DevStablecoin.
        #[arg(long)]
        dev_helpers: bool,
        /// An ERC-20 token the router accepts (repeat for several). Allow
        /// only tokens whose transfers move exactly what they are asked to.
        #[arg(long = "allow-token", value_name = "ADDRESS")]
        allow_tokens: Vec<Address>,
        /// Seconds between a treasury proposal and its acceptance, fixed for
        /// the router's lifetime.
        #[arg(long, default_value_t = deploy::DEFAULT_DELAY_SECS)]
        treasury_delay_secs: u64,
        /// Seconds a transfer of either contract's admin role waits.
        #[arg(long, default_value_t = deploy::DEFAULT_DELAY_SECS)]
        admin_delay_secs: u64,
        /// Where to write the deployment file.
        #[arg(long, default_value = "deployment.json")]
        out: PathBuf,
    },
}

pub async fn run(cmd: ContractsCommand) -> Result<ExitCode, CliError> {
    let ContractsCommand::Deploy {
        rpc_url,
        keystore,
        treasury,
        admin,
        anchorer,
        dev_helpers,
        allow_tokens,
        treasury_delay_secs,
        admin_delay_secs,
        out,
    } = cmd;
    let signer = deploy::signer_from_env(keystore.as_deref()).map_err(fail)?;
    let deployer = signer.address();
    let plan = DeployPlan {
        treasury: treasury.unwrap_or(deployer),
        admin: admin.unwrap_or(deployer),
        anchorer: anchorer.unwrap_or(deployer),
        dev_helpers,
        admin_delay_secs,
        treasury_delay_secs,
        tokens: allow_tokens,
    };
    let deployment = deploy::deploy(&rpc_url, signer, &plan)
        .await
        .map_err(fail)?;
    deploy::write(&out, &deployment).map_err(fail)?;
    println!("chain id          {}", deployment.chain_id);
    println!("PaymentRouter     {}", deployment.router);
    println!("SettlementAnchor  {}", deployment.anchor);
    println!("treasury delay    {treasury_delay_secs} s");
    if let (Some(token), Some(feed)) = (deployment.stablecoin, deployment.price_feed) {
        println!("DevStablecoin     {token}");
        println!("DevPriceFeed      {feed}");
    }
    println!("written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn fail(e: crate::chain::ChainError) -> CliError {
    CliError::other(e)
}
