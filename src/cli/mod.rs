//! The `epg` command line: `dev`, `serve`, `migrate` and the admin tools.
//!
//! Every admin command that uses the database finds it the same way
//! ([`database`]): `--database-url`, `EPG_DATABASE_URL`, `--config`, or the
//! `epg dev` node of the current folder.

mod admin;
mod audit;
mod bank;
mod contracts;
mod database;
mod dev;
mod ledger;
mod reconcile;
mod serve;
pub mod users;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use database::DbArgs;

/// E-PG payment gateway node.
#[derive(Debug, Parser)]
#[command(name = "epg", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a complete local node: private PostgreSQL, anvil devnet,
    /// deployed contracts, a demo merchant, the API.
    Dev(dev::DevArgs),
    /// Run the node from a configuration file (production).
    Serve {
        /// Path to the TOML configuration.
        #[arg(long, env = "EPG_CONFIG")]
        config: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage merchants.
    #[command(subcommand)]
    Merchants(admin::MerchantsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Ledger tools.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Webhook tools for receivers: verify (or produce) an Epg-Signature.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Deploy E-PG's contracts.
    #[command(subcommand)]
    Contracts(contracts::ContractsCommand),
    /// Compare the node's records with the chains and the banks.
    #[command(subcommand)]
    Reconcile(reconcile::ReconcileCommand),
    /// Bank files: import statements, export payouts (ISO 20022).
    #[command(subcommand)]
    Bank(bank::BankCommand),
    /// Auditor's tools: verify proof bundles and the log's anchored history
    /// against the chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Dashboard users: create a merchant's first admin, list the team.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Print the API's OpenAPI 3.1 document (what a node serves at
    /// `/openapi.json`), generated from the API's types.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an annotated example configuration.
    Example,
    /// Validate a configuration (file plus EPG_… overrides) and exit.
    Check {
        /// Path to the TOML configuration.
        #[arg(long, env = "EPG_CONFIG")]
        config: PathBuf,
    },
}

/// A command that failed; printed as `error: …` with every cause under
/// it (`error: migration failed: error returned from database: …`), exit
/// status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The invocation is incomplete or contradictory.
    #[error("{0}")]
    Usage(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command ran and failed.
    #[error("{0}")]
    Failed(String),
    /// A step of the command failed: what it was doing, and why.
    #[error("{context}")]
    Step {
        /// What the command was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node (or a part of it) failed.
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    /// A library call failed; its own message says what.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl CliError {
    /// A library error, kept with its causes.
    pub fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        CliError::Other(Box::new(e))
    }
}

/// Context for a failing step, as `anyhow`'s: the CLI's errors are chains
/// of what was being done, down to the cause.
pub trait Context<T> {
    /// Fails with `context`, keeping the error as its cause.
    fn context(self, context: impl Into<String>) -> Result<T, CliError>;
    /// [`Context::context`], built only on failure.
    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, CliError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError> {
        self.map_err(|e| CliError::Step {
            context: context.into(),
            source: Box::new(e),
        })
    }

    fn with_context(self, context: impl FnOnce() -> String) -> Result<T, CliError> {
        self.map_err(|e| CliError::Step {
            context: context(),
            source: Box::new(e),
        })
    }
}

impl From<crate::merchants::MerchantError> for CliError {
    fn from(e: crate::merchants::MerchantError) -> Self {
        CliError::other(e)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::telemetry::ErrorChain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Serve { config } => serve::run(&config).await,
        Command::Migrate(db) => {
            let pool = db.resolve()?.pool().await?;
            crate::db::migrate(pool.pool())
                .await
                .context("migration failed")?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", crate::api::openapi::DOCUMENT_TEXT.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", Config::example());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { config }) => {
            Config::load(Some(&config), std::env::vars())?;
            println!("{}: valid", config.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Merchants(cmd) => admin::merchants(cmd).await,
        Command::Keys(cmd) => admin::keys(cmd).await,
        Command::Ledger(cmd) => ledger::run(cmd).await,
        Command::Webhooks(cmd) => webhooks::run(cmd).await,
        Command::Contracts(cmd) => contracts::run(cmd).await,
        Command::Reconcile(cmd) => reconcile::run(cmd).await,
        Command::Bank(cmd) => bank::run(cmd).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Users(cmd) => users::run(cmd).await,
    }
}
