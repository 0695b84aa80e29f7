//! `epg reconcile chain`: the node's chain records and treasury ledger
//! against the chains themselves (see `crate::chain::reconcile`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::CliError;
use crate::chain::reconcile::{self, Target};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Check every confirmed transfer against its receipt on the chain, and
    /// each chain's treasury balance change per asset against the ledger.
    /// Prints each discrepancy; exits 1 if there is one.
    Chain(ChainArgs),
    /// Per bank account, each statement's opening and closing balance
    /// against the ledger's on those dates, and the open reconciliation
    /// exceptions. Exits 1 on a difference.
    Bank(super::bank::ReconcileBankArgs),
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    /// The node's configuration: its database and every `[[chains]]` entry.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Without --config: the node's database …
    #[arg(long, conflicts_with = "config")]
    database_url: Option<String>,
    /// … and the JSON-RPC URL of each chain to check (repeat the flag);
    /// router, treasury and assets are what its watcher recorded.
    #[arg(long = "rpc-url", conflicts_with = "config")]
    rpc_urls: Vec<String>,
    /// Only this chain (with --config).
    #[arg(long)]
    chain_id: Option<u64>,
}

/// Runs a reconcile command.
pub async fn run(cmd: ReconcileCommand) -> Result<ExitCode, CliError> {
    let args = match cmd {
        ReconcileCommand::Chain(args) => args,
        ReconcileCommand::Bank(args) => return super::bank::reconcile(args).await,
    };
    let failed = |e: reconcile::ReconcileError| CliError::Failed(e.to_string());
    let (pool, targets) = if let Some(path) = &args.config {
        let config = Config::load(Some(path), std::env::vars())?;
        let pool = connect(&config.database.url).await?;
        let targets = config
            .chains
            .iter()
            .filter(|c| args.chain_id.is_none_or(|id| id == c.chain_id))
            .map(Target::from_config)
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        (pool, targets)
    } else {
        let (Some(url), false) = (&args.database_url, args.rpc_urls.is_empty()) else {
            return Err(CliError::Usage(
                "pass --config FILE, or --database-url URL with one --rpc-url per chain".into(),
            ));
        };
        let pool = connect(url).await?;
        let mut targets = Vec::new();
        for rpc_url in &args.rpc_urls {
            targets.push(
                Target::from_database(&pool, rpc_url)
                    .await
                    .map_err(failed)?,
            );
        }
        (pool, targets)
    };
    if targets.is_empty() {
        return Err(CliError::Usage("no chain to reconcile".into()));
    }
    let report = reconcile::reconcile(&pool, &targets)
        .await
        .map_err(failed)?;
    print!("{report}");
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn connect(url: &str) -> Result<sqlx::PgPool, CliError> {
    crate::db::connect(url, 2)
        .await
        .map_err(|e| CliError::Failed(format!("cannot connect to the database: {e}")))
}
