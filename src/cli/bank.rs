//! `epg bank …` and `epg reconcile bank`: the operator's bank tools,
//! talking to the database directly (`crate::bank` does the work).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use time::Date;
use time::macros::format_description;

use super::Context;
use super::{CliError, DbArgs};
use crate::bank::transfers::CreditorAccount;
use crate::bank::watcher::{self, Handled};
use crate::bank::{BankError, config as bank_config};
use crate::config::Config;
use crate::crypto::Purpose;
use crate::ids::{MerchantId, PaymentId};

#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Import bank files (camt.053, camt.054, pain.002). Each file is
    /// booked whole or not at all; entries already booked are skipped. A
    /// refused file is moved to `rejected/` beside it with the reason
    /// (line and field). Exits 1 if any file was refused or failed.
    Import {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Payout files (pain.001).
    #[command(subcommand)]
    Payouts(PayoutsCommand),
    /// Print a camt.054 notifying the credit that pays a bank-transfer
    /// payment (its RF reference, amount and collection account): what its
    /// bank would send. `epg bank import` it to see the payment succeed.
    SampleStatement {
        /// The payment (`pay_…`), confirmed with bank_transfer.
        #[arg(long)]
        payment: String,
        /// Amount in smallest units (default: the payment's).
        #[arg(long)]
        amount: Option<i64>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Where a merchant's fiat payouts go (sealed; shown masked). An
    /// operator's act, like the crypto payout address.
    SetMerchantAccount(MerchantAccountArgs),
}

#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// Write every pending payout, refund and return into pain.001.001.09
    /// files (one per payout account), marking them in transit.
    Export {
        /// Folder to write to (default: bank.outbox_dir of the config).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Requested execution date, YYYY-MM-DD (default: today).
        #[arg(long, value_parser = parse_date)]
        date: Option<Date>,
        /// The node's configuration (its database and master key); without
        /// it, EPG_DATABASE_URL and EPG_SECURITY_MASTER_KEY.
        #[arg(long, env = "EPG_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct MerchantAccountArgs {
    /// The merchant (`mer_…`).
    #[arg(long)]
    merchant: String,
    /// ISO 4217 currency of the payouts.
    #[arg(long)]
    currency: String,
    /// Account holder.
    #[arg(long)]
    holder: String,
    /// IBAN.
    #[arg(long, conflicts_with_all = ["routing_number", "account_number"])]
    iban: Option<String>,
    /// BIC of the IBAN's bank.
    #[arg(long)]
    bic: Option<String>,
    /// ABA routing number.
    #[arg(long, requires = "account_number")]
    routing_number: Option<String>,
    /// Account number.
    #[arg(long, requires = "routing_number")]
    account_number: Option<String>,
    /// The node's configuration (database, master key); without it,
    /// EPG_DATABASE_URL and EPG_SECURITY_MASTER_KEY.
    #[arg(long, env = "EPG_CONFIG")]
    config: Option<PathBuf>,
}

/// `epg reconcile bank`.
#[derive(Debug, Args)]
pub struct ReconcileBankArgs {
    /// First date (YYYY-MM-DD) of the statements to compare.
    #[arg(long, value_parser = parse_date)]
    from: Date,
    /// Last date (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date)]
    to: Date,
    #[command(flatten)]
    db: DbArgs,
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

fn failed(e: BankError) -> CliError {
    CliError::other(e)
}

fn config_of(path: Option<&Path>) -> Result<Config, CliError> {
    Ok(Config::load(path, std::env::vars())?)
}

/// Runs a bank command.
pub async fn run(cmd: BankCommand) -> Result<ExitCode, CliError> {
    match cmd {
        BankCommand::Import { files, db } => import(&files, &db).await,
        BankCommand::Payouts(PayoutsCommand::Export { out, date, config }) => {
            let config = config_of(config.as_deref())?;
            let dir = match out {
                Some(dir) => dir,
                None if !config.bank.outbox_dir.is_empty() => {
                    PathBuf::from(&config.bank.outbox_dir)
                }
                None => {
                    return Err(CliError::Usage(
                        "no folder to write to: pass --out DIR or set bank.outbox_dir".into(),
                    ));
                }
            };
            let pool = connect(&config.database.url).await?;
            let sealer = config.keyring()?.sealer(Purpose::BankAccounts);
            let date = date.unwrap_or_else(crate::bank::import::today);
            let written = crate::bank::transfers::export(&pool, &sealer, date, &dir)
                .await
                .map_err(failed)?;
            if written.is_empty() {
                println!("nothing to export");
            }
            for file in written {
                println!(
                    "{}  {} transfer(s) from {}  {}",
                    file.message_id,
                    file.transfers,
                    file.account_id,
                    file.path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BankCommand::SampleStatement {
            payment,
            amount,
            db,
        } => {
            let id = PaymentId::parse(&payment)
                .map_err(|e| CliError::Usage(format!("--payment: {e}")))?;
            let pool = db.resolve()?.pool().await?;
            let row: Option<(String, String, i64)> = sqlx::query_as(
                r#"SELECT r.reference, r.account_id, r.amount FROM bank_references r
                    WHERE r.payment_id = $1 ORDER BY r.created_at DESC LIMIT 1"#,
            )
            .bind(id.as_str())
            .fetch_optional(&pool)
            .await
            .map_err(CliError::other)?;
            let Some((reference, account_id, owed)) = row else {
                return Err(CliError::Failed(format!(
                    "{id} has no bank transfer instructions: confirm it with bank_transfer on a node whose \
                     processors.bank_transfer is \"iso20022\""
                )));
            };
            let accounts = bank_config::registered(&pool)
                .await
                .map_err(CliError::other)?;
            let account = accounts
                .iter()
                .find(|a| a.id == account_id)
                .ok_or_else(|| {
                    CliError::Failed(format!("bank account {account_id} is not registered"))
                })?;
            let bank_ref = format!("SMPL{}", crate::ids::random_base62(12).to_uppercase());
            print!(
                "{}",
                crate::bank::sample::camt054(&crate::bank::sample::Credit {
                    account,
                    amount: i128::from(amount.unwrap_or(owed)),
                    reference: &reference,
                    date: crate::bank::import::today(),
                    bank_ref: &bank_ref,
                    payer_name: "Sample Payer",
                    payer_iban: "GB33BUKB20201555555555",
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        BankCommand::SetMerchantAccount(args) => set_merchant_account(args).await,
    }
}

async fn connect(url: &str) -> Result<crate::db::Db, CliError> {
    crate::db::connect(url, 2)
        .await
        .context("cannot connect to the database")
}

async fn import(files: &[PathBuf], db: &DbArgs) -> Result<ExitCode, CliError> {
    let pool = db.resolve()?.pool().await?;
    let mut ok = true;
    for path in files {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        match watcher::handle(&pool, path, dir, None).await {
            Ok(Handled::Imported(o)) => {
                println!(
                    "{}: {} {} — {} booked, {} already booked, {} pending at the bank",
                    path.display(),
                    o.kind,
                    o.message_id,
                    o.booked,
                    o.known,
                    o.pending
                );
                for line in &o.lines {
                    println!("  {line}");
                }
            }
            Ok(Handled::Rejected(refusal)) => {
                ok = false;
                println!(
                    "{}: REJECTED at {refusal}; moved to {}",
                    path.display(),
                    dir.join("rejected").display()
                );
            }
            Err(e) => {
                ok = false;
                println!("{}: not imported: {e}", path.display());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn set_merchant_account(args: MerchantAccountArgs) -> Result<ExitCode, CliError> {
    let merchant = MerchantId::parse(&args.merchant)
        .map_err(|e| CliError::Usage(format!("--merchant: {e}")))?;
    let currency = crate::money::Currency::parse(&args.currency.to_ascii_lowercase())
        .map_err(|e| CliError::Usage(format!("--currency: {e}")))?;
    let usage = |flag: &str, e: String| CliError::Usage(format!("--{flag}: {e}"));
    let account = match (&args.iban, &args.routing_number, &args.account_number) {
        (Some(iban), None, None) => CreditorAccount {
            iban: Some(bank_config::parse_iban(iban).map_err(|e| usage("iban", e))?),
            bic: args
                .bic
                .as_deref()
                .map(bank_config::parse_bic)
                .transpose()
                .map_err(|e| usage("bic", e))?,
            routing_number: None,
            account_number: None,
        },
        (None, Some(routing), Some(number)) => CreditorAccount {
            iban: None,
            bic: None,
            routing_number: Some(
                bank_config::parse_routing_number(routing)
                    .map_err(|e| usage("routing-number", e))?,
            ),
            account_number: Some(
                bank_config::parse_account_number(number)
                    .map_err(|e| usage("account-number", e))?,
            ),
        },
        _ => {
            return Err(CliError::Usage(
                "give --iban (and --bic), or --routing-number and --account-number".into(),
            ));
        }
    };
    let config = config_of(args.config.as_deref())?;
    let pool = connect(&config.database.url).await?;
    let sealer = config.keyring()?.sealer(Purpose::BankAccounts);
    let masked = crate::bank::transfers::set_merchant_account(
        &pool,
        &sealer,
        &merchant,
        currency.code(),
        args.holder.trim(),
        &account,
    )
    .await
    .map_err(failed)?;
    println!(
        "merchant    {merchant}  {} payouts to {masked} ({})",
        currency.code(),
        args.holder.trim()
    );
    Ok(ExitCode::SUCCESS)
}

/// `epg reconcile bank --from --to`.
pub async fn reconcile(args: ReconcileBankArgs) -> Result<ExitCode, CliError> {
    let pool = args.db.resolve()?.pool().await?;
    let report = crate::bank::reconcile::reconcile(&pool, args.from, args.to)
        .await
        .map_err(failed)?;
    print!("{report}");
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
