//! `epg webhooks …`: tools for the people who receive E-PG webhooks.
//!
//! `verify` checks a delivery exactly as a receiver should (the same code
//! as the node's signer, [`crate::webhooks::signature`]); `sign` produces a
//! header for a body, to test a receiver without a node.

use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;

use super::CliError;
use super::Context;
use crate::webhooks::signature::{self, DEFAULT_TOLERANCE_SECS, SECRET_PREFIX};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Verify a delivery: reads the raw request body on stdin, prints
    /// "valid" and exits 0, or says why not and exits 1.
    Verify {
        /// The endpoint's signing secret (`whsec_…`).
        #[arg(long)]
        secret: String,
        /// The `Epg-Signature` header value (`t=…,v1=…`).
        #[arg(long)]
        header: String,
        /// Seconds the header's timestamp may be from now.
        #[arg(long, default_value_t = DEFAULT_TOLERANCE_SECS)]
        tolerance: u64,
    },
    /// Print the `Epg-Signature` header value for the body on stdin.
    Sign {
        /// The endpoint's signing secret (`whsec_…`).
        #[arg(long)]
        secret: String,
        /// Unix time to sign at (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
}

fn check_secret(secret: &str) -> Result<(), CliError> {
    if secret.starts_with(SECRET_PREFIX) && secret.len() > SECRET_PREFIX.len() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "--secret must be the endpoint's signing secret ({SECRET_PREFIX}…), as shown when it was created"
        )))
    }
}

async fn read_stdin() -> Result<Vec<u8>, CliError> {
    let read = tokio::task::spawn_blocking(|| {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).map(|_| body)
    })
    .await
    .context("cannot read the body from stdin")?;
    read.context("cannot read the body from stdin")
}

pub async fn run(command: WebhooksCommand) -> Result<ExitCode, CliError> {
    match command {
        WebhooksCommand::Verify {
            secret,
            header,
            tolerance,
        } => {
            check_secret(&secret)?;
            let body = read_stdin().await?;
            let now = OffsetDateTime::now_utc().unix_timestamp();
            match signature::verify(&secret, &header, &body, now, tolerance) {
                Ok(_) => {
                    println!("valid");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("invalid: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        WebhooksCommand::Sign { secret, timestamp } => {
            check_secret(&secret)?;
            let body = read_stdin().await?;
            let t = timestamp.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
            let header = signature::header_value(&[&secret], t, &body)
                .ok_or_else(|| CliError::Failed("cannot sign".into()))?;
            println!("{header}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
