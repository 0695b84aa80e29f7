//! `epg ledger …`: the operator's ledger tools.

use std::process::ExitCode;

use clap::Subcommand;

use super::Context;
use super::{CliError, DbArgs};

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every balance from the postings and verify the ledger:
    /// every entry balances per asset, every stored balance matches, every
    /// asset sums to zero over all accounts, no floor is broken, every hold
    /// matches its postings. Exits 1 on any problem.
    Check {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Runs a ledger command.
pub async fn run(cmd: LedgerCommand) -> Result<ExitCode, CliError> {
    match cmd {
        LedgerCommand::Check { db } => {
            let pool = db.resolve()?.pool().await?;
            let report = crate::ledger::check(&pool)
                .await
                .context("ledger check could not run")?;
            print!("{report}");
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
