//! `epg audit`: the auditor's commands. They use nothing from the node's
//! database; `verify` needs only the bundle and a chain RPC endpoint,
//! `follow` the chain and the node's public HTTP endpoints.
//!
//! Exit status: 0 when every check holds, 1 when one fails (the verdict
//! names it; an unreachable chain fails the checks that need it), 2 when
//! the command could not run (unreadable bundle file; for `follow`, a chain
//! whose events cannot be read).

use std::path::PathBuf;
use std::process::ExitCode;

use alloy::primitives::Address;
use clap::{Args, Subcommand};

use super::CliError;
use crate::audit::follow::{self, FollowOptions};
use crate::audit::{Report, verify};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a proof bundle (from GET /v1/payments/{id}/proof) against the
    /// chain: leaf hash, inclusion path, the anchored checkpoint, the anchoring
    /// transaction and its confirmations.
    Verify(VerifyArgs),
    /// Check the whole anchored history: every CheckpointAnchored event, every
    /// supersede by the contract's admin (failing until accepted), and the
    /// node's consistency proofs between consecutive checkpoints against the
    /// on-chain roots. Reports any fork or rewrite.
    Follow(FollowArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The proof bundle (JSON file; `-` reads standard input).
    bundle: PathBuf,
    /// JSON-RPC URL of the chain the bundle names.
    #[arg(long, env = "EPG_RPC_URL")]
    rpc_url: String,
    /// Blocks required on top of the anchoring block (counting it).
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "EPG_RPC_URL")]
    rpc_url: String,
    /// Address of the SettlementAnchor contract.
    #[arg(long)]
    anchor: Address,
    /// Base URL of the node (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    node: String,
    /// First block to read events from (the anchor's deployment block).
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    /// Blocks per eth_getLogs request.
    #[arg(long, default_value_t = 5_000)]
    chunk: u64,
    /// A CheckpointsSuperseded transaction you have reviewed (repeat for
    /// several): its check then passes instead of failing.
    #[arg(long = "accept-supersede", value_name = "TX_HASH")]
    accept_supersedes: Vec<alloy::primitives::B256>,
    /// The anchor this log was anchored in before --anchor (after a
    /// migration): checks that its latest checkpoint and --anchor's first
    /// are states of one log. Follow that one too.
    #[arg(long)]
    previous_anchor: Option<Address>,
}

fn print(report: &Report) {
    for check in &report.checks {
        println!("{check}");
    }
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode, CliError> {
    match cmd {
        AuditCommand::Verify(args) => {
            let read = if args.bundle.as_os_str() == "-" {
                use std::io::Read;
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map(|_| buf)
            } else {
                tokio::fs::read(&args.bundle).await
            };
            let bytes = match read {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("error: {}: {e}", args.bundle.display());
                    return Ok(ExitCode::from(2));
                }
            };
            let report = verify::verify_bundle(&bytes, &args.rpc_url, args.confirmations).await;
            print(&report);
            println!("{}", verify::verdict(&report, &bytes));
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Follow(args) => {
            let options = FollowOptions {
                from_block: args.from_block,
                chunk: args.chunk,
                accepted_supersedes: args.accept_supersedes,
                previous_anchor: args.previous_anchor,
            };
            let report =
                match follow::follow(&args.rpc_url, args.anchor, &args.node, &options).await {
                    Ok(report) => report,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::from(2));
                    }
                };
            print(&report);
            if report.passed() {
                println!("CONSISTENT: the node's log extends every anchored checkpoint");
                Ok(ExitCode::SUCCESS)
            } else if report
                .failed()
                .iter()
                .all(|name| name.starts_with("supersede #"))
            {
                println!(
                    "SUPERSEDED: the contract's admin removed anchored checkpoints; review {} \
                     (above), then pass each transaction with --accept-supersede",
                    report.failed().join(", ")
                );
                Ok(ExitCode::from(1))
            } else {
                println!(
                    "INCONSISTENT: the node's log does not match the anchors; failed: {}",
                    report.failed().join(", ")
                );
                Ok(ExitCode::from(1))
            }
        }
    }
}
