//! `epg merchants …` and `epg keys …`: the operator's admin tools, talking
//! to the database directly (they run next to the node, not through its API).
//! Each finds the database as [`super::database`] says.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliError, DbArgs};
use crate::config::Mode;
use crate::ids::{ApiKeyId, MerchantId};
use crate::merchants::{KeyKind, MerchantStore};

#[derive(Debug, Subcommand)]
pub enum MerchantsCommand {
    /// Create a merchant; with --with-keys also a secret and a publishable key.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Also create a secret and a publishable key and print them once.
        #[arg(long)]
        with_keys: bool,
        /// Key mode.
        #[arg(long, value_parser = parse_mode, default_value = "test")]
        mode: Mode,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List merchants.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set (or with --clear remove) where a merchant's crypto payouts are
    /// sent. An operator's act, deliberately not in the merchant API.
    SetPayoutAddress {
        /// The merchant (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// The 0x address (EIP-55 checksum checked when mixed case).
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        address: Option<String>,
        /// Remove the address: crypto balances then stay in the treasury.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; it is printed once and only its hash is kept.
    Create {
        /// The merchant (`mer_…`).
        #[arg(long, value_parser = parse_merchant)]
        merchant: MerchantId,
        /// `secret` or `publishable`.
        #[arg(long, value_parser = parse_kind, default_value = "secret")]
        kind: KeyKind,
        /// `test` or `live`.
        #[arg(long, value_parser = parse_mode, default_value = "test")]
        mode: Mode,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a merchant's keys (never their secrets).
    List {
        /// The merchant (`mer_…`).
        #[arg(long, value_parser = parse_merchant)]
        merchant: MerchantId,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key; requests with it fail at once.
    Revoke {
        /// The key's id (`key_…`), as printed by `keys create` / `keys list`.
        #[arg(value_parser = parse_key_id)]
        id: ApiKeyId,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-seal every sealed value (card numbers, webhook secrets, saved
    /// responses) under `security.master_key`, opening them with the keys
    /// in `security.previous_master_keys`; prints what it did and what is
    /// left. Nodes do the same in the background; this finishes it now.
    ///
    /// The master keys come from --config, from the `epg dev` node whose
    /// database this is, or else from EPG_SECURITY_MASTER_KEY (and
    /// EPG_SECURITY_PREVIOUS_MASTER_KEYS).
    RotateMaster {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_merchant(s: &str) -> Result<MerchantId, String> {
    MerchantId::parse(s).map_err(|e| e.to_string())
}

fn parse_key_id(s: &str) -> Result<ApiKeyId, String> {
    ApiKeyId::parse(s).map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<KeyKind, String> {
    s.parse()
        .map_err(|_| "expected `secret` or `publishable`".to_owned())
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
        .map_err(|_| "expected `test` or `live`".to_owned())
}

pub async fn merchants(cmd: MerchantsCommand) -> Result<ExitCode, CliError> {
    match cmd {
        MerchantsCommand::Create {
            name,
            with_keys,
            mode,
            db,
        } => {
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            let merchant = store.create(&name).await?;
            println!("merchant    {}  {}", merchant.id, merchant.name);
            if with_keys {
                for kind in [KeyKind::Secret, KeyKind::Publishable] {
                    let (id, key) = store.create_key(&merchant.id, kind, mode).await?;
                    println!("{:<11} {}  {}", kind, id, key.secret);
                }
                println!("(keys are shown once; only their hashes are stored)");
            }
            Ok(ExitCode::SUCCESS)
        }
        MerchantsCommand::SetPayoutAddress {
            merchant,
            address,
            clear: _,
            db,
        } => {
            let id = MerchantId::parse(&merchant)
                .map_err(|e| CliError::Usage(format!("--merchant: {e}")))?;
            let address = address
                .as_deref()
                .map(crate::chain::parse_address)
                .transpose()
                .map_err(|e| CliError::Usage(format!("--address: {e}")))?;
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            store.set_payout_address(&id, address).await?;
            match address {
                Some(a) => println!(
                    "merchant    {id}  crypto payouts to {}",
                    a.to_checksum(None)
                ),
                None => println!("merchant    {id}  no crypto payout address"),
            }
            Ok(ExitCode::SUCCESS)
        }
        MerchantsCommand::List { db } => {
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            let merchants = store.list().await?;
            println!("{:<28}  {:<20}  name", "id", "created");
            for m in merchants {
                println!(
                    "{:<28}  {:<20}  {}",
                    m.id,
                    m.created_at.date().to_string(),
                    m.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn keys(cmd: KeysCommand) -> Result<ExitCode, CliError> {
    match cmd {
        KeysCommand::Create {
            merchant,
            kind,
            mode,
            db,
        } => {
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            let (id, key) = store.create_key(&merchant, kind, mode).await?;
            println!("id   {id}");
            println!("key  {}", key.secret);
            println!("(shown once; only its hash is stored)");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { merchant, db } => {
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            println!("{:<28}  {:<11}  {:<6}  status", "id", "kind", "last4");
            for k in store.list_keys(&merchant).await? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{:<28}  {:<11}  {:<6}  {status}", k.id, k.kind, k.last4);
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { id, db } => {
            let store = MerchantStore::new(db.resolve()?.pool().await?);
            store.revoke_key(&id).await?;
            println!("revoked {id}");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::RotateMaster { db } => rotate_master(&db).await,
    }
}

async fn rotate_master(db: &DbArgs) -> Result<ExitCode, CliError> {
    let target = db.resolve()?;
    let (keys, previous) = target.keyring()?;
    let pool = target.pool().await?;
    let failed = |e: sqlx::Error| CliError::Step {
        context: "re-sealing failed".to_owned(),
        source: Box::new(e),
    };
    println!("master key {} ({previous} previous)", keys.current_id());
    let report = crate::rotation::rotate(
        &pool,
        &keys,
        &crate::rotation::Options::COMMAND,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .map_err(failed)?;
    for (what, counts) in [
        ("cards", report.cards),
        ("webhook secrets", report.webhook_secrets),
        ("saved responses", report.saved_responses),
        ("bank details", report.bank_details),
        ("TOTP secrets", report.totp_secrets),
    ] {
        println!(
            "{what:<16} re-sealed {:>8}  unreadable {:>4}",
            counts.resealed, counts.unreadable
        );
    }
    let left = crate::rotation::remaining(&pool, &keys)
        .await
        .map_err(failed)?;
    println!(
        "left on old keys: {} sealed values, {} idempotency request MACs (these expire within a day)",
        left.sealed(),
        left.request_macs
    );
    if report.unreadable() > 0 {
        return Err(CliError::Failed(format!(
            "{} sealed values open with no configured master key: was a previous key removed too early?",
            report.unreadable()
        )));
    }
    if left.sealed() == 0 && left.request_macs == 0 {
        println!("previous master keys can now be removed from security.previous_master_keys");
    }
    Ok(ExitCode::SUCCESS)
}
