//! `epg reconcile chain`: the node's chain records and treasury ledger
//! against the chains themselves (see `crate::chain::reconcile`).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{CliError, DbArgs};
use crate::chain::reconcile::{self, Target};

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
    #[command(flatten)]
    db: DbArgs,
    /// The JSON-RPC URL of a chain to check (repeat the flag); router,
    /// treasury and assets are what its watcher recorded in the database.
    /// Without it: the `[[chains]]` of --config, or the `epg dev` node's
    /// devnet.
    #[arg(long = "rpc-url")]
    rpc_urls: Vec<String>,
    /// Only this chain.
    #[arg(long)]
    chain_id: Option<u64>,
}

/// Runs a reconcile command.
pub async fn run(cmd: ReconcileCommand) -> Result<ExitCode, CliError> {
    let args = match cmd {
        ReconcileCommand::Chain(args) => args,
        ReconcileCommand::Bank(args) => return super::bank::reconcile(args).await,
    };
    let failed = CliError::other::<reconcile::ReconcileError>;
    let target = args.db.resolve()?;
    let pool = target.pool().await?;
    let mut targets = Vec::new();
    if args.rpc_urls.is_empty() {
        let Some(chains) = target.chains()? else {
            return Err(CliError::Usage(
                "no chain to reconcile: pass --rpc-url URL (once per chain), or --config FILE \
                 with [[chains]]"
                    .into(),
            ));
        };
        for chain in &chains {
            targets.push(Target::from_config(chain).map_err(failed)?);
        }
    } else {
        for rpc_url in &args.rpc_urls {
            targets.push(
                Target::from_database(&pool, rpc_url)
                    .await
                    .map_err(failed)?,
            );
        }
    }
    targets.retain(|t| args.chain_id.is_none_or(|id| id == t.chain_id));
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
