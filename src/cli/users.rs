//! `epg users …`: dashboard users, made by the operator (the first admin of
//! a merchant; admins invite the others from the dashboard). Finds the
//! database as [`super::database`] says.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliError, DbArgs};
use crate::dashboard::audit_log::Origin;
use crate::dashboard::{Dashboard, DashboardError, Role};
use crate::ids::MerchantId;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a dashboard user with a one-time password, printed once.
    /// Two-factor sign-in is set up at the first sign-in.
    Create {
        /// The merchant (`mer_…`).
        #[arg(long, value_parser = parse_merchant)]
        merchant: MerchantId,
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// `admin`, `developer`, `analyst` (read-only) or `support`.
        #[arg(long, value_parser = parse_role, default_value = "admin")]
        role: Role,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a merchant's dashboard users.
    List {
        /// The merchant (`mer_…`).
        #[arg(long, value_parser = parse_merchant)]
        merchant: MerchantId,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_merchant(s: &str) -> Result<MerchantId, String> {
    MerchantId::parse(s).map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>()
        .map_err(|_| format!("`{s}` is not a role: use admin, developer, analyst or support"))
}

/// A fresh password of 20 letters and digits (≈119 bits).
pub fn one_time_password() -> String {
    crate::ids::random_base62(20)
}

async fn dashboard(db: &DbArgs) -> Result<(Dashboard, crate::merchants::MerchantStore), CliError> {
    let target = db.resolve()?;
    let (keys, _) = target.keyring()?;
    let pool = target.pool().await?;
    let config = target
        .config
        .as_ref()
        .map(|c| c.dashboard.clone())
        .unwrap_or_default();
    Ok((
        Dashboard::new(pool.clone(), &keys, config),
        crate::merchants::MerchantStore::new(pool),
    ))
}

pub async fn run(cmd: UsersCommand) -> Result<ExitCode, CliError> {
    match cmd {
        UsersCommand::Create {
            merchant,
            email,
            role,
            db,
        } => {
            let (dashboard, merchants) = dashboard(&db).await?;
            merchants.get(&merchant).await?;
            let password = one_time_password();
            let user = dashboard
                .create_user_one_time(
                    &merchant,
                    &email,
                    role,
                    &password,
                    &Origin::default(),
                    "epg users create",
                )
                .await
                .map_err(|e| match e {
                    DashboardError::Invalid { param, message } => {
                        CliError::Usage(format!("--{param}: {message}"))
                    }
                    e => CliError::Failed(e.to_string()),
                })?;
            println!("user      {}", user.id);
            println!("email     {}", user.email);
            println!("role      {}", user.role);
            println!("password  {password}");
            println!(
                "(shown once; sign in at /dashboard, set up two-factor sign-in and choose your own password)"
            );
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::List { merchant, db } => {
            let target = db.resolve()?;
            let (keys, _) = target.keyring()?;
            let dashboard = Dashboard::new(target.pool().await?, &keys, Default::default());
            println!("{:<28}  {:<10}  {:<5}  email", "id", "role", "2fa");
            for u in dashboard
                .users_of(&merchant)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?
            {
                let two_factor = if u.totp_secret.is_some() { "yes" } else { "no" };
                println!(
                    "{:<28}  {:<10}  {:<5}  {}",
                    u.id, u.role, two_factor, u.email
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
