//! Which node's database an admin command works on: one convention for
//! every command that reads or writes it (`migrate`, `merchants`, `keys`,
//! `ledger`, `reconcile`).
//!
//! The first of these that is given wins:
//!
//! 1. `--database-url URL`;
//! 2. `EPG_DATABASE_URL`;
//! 3. `--config FILE` (or `EPG_CONFIG`): its `database.url`;
//! 4. the `epg dev` node of this folder: the database its `dev.json`
//!    records, when its data folder (`.epg/dev`, or `EPG_DATA_DIR`) exists.
//!    The command says so on stderr, in one line.
//!
//! The order is `Config::load`'s too (`EPG_DATABASE_URL` overrides the
//! file's `database.url`), so a file and the environment never disagree
//! about which database a node and its admin commands use. A configuration
//! that is given is loaded even when the URL comes from elsewhere: commands
//! take more from it (the master keys, the chains).

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use super::Context;
use super::dev::DevState;
use crate::chain::config::ChainConfig;
use crate::config::Config;
use crate::crypto::Keyring;

/// The data folder `epg dev` uses when not told otherwise.
pub const DEV_DATA_DIR: &str = ".epg/dev";

/// Where an admin command finds the database (see the module docs).
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL of the node's database. Without it, EPG_DATABASE_URL,
    /// then --config, then the `epg dev` node of this folder.
    // A URL can hold a password: `--help` must not print the variable's value.
    #[arg(long, env = "EPG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The node's configuration file (its `database.url`, and what else the
    /// command needs of it).
    #[arg(long, env = "EPG_CONFIG")]
    config: Option<PathBuf>,
}

/// The database an admin command works on, and what its source says
/// about the node.
#[derive(Debug)]
pub struct Target {
    /// The PostgreSQL URL.
    pub url: String,
    /// The configuration, when one was given.
    pub config: Option<Config>,
    /// The `epg dev` node, when the database is its.
    pub dev: Option<DevNode>,
}

/// A local `epg dev` node, as its data folder describes it.
#[derive(Debug)]
pub struct DevNode {
    /// Its data folder.
    pub dir: PathBuf,
    /// Its `dev.json`.
    state: DevState,
}

impl DbArgs {
    /// The target, looking for an `epg dev` node in `EPG_DATA_DIR` or
    /// `.epg/dev` when nothing names a database.
    pub fn resolve(&self) -> Result<Target, CliError> {
        let dev_dir = std::env::var_os("EPG_DATA_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(DEV_DATA_DIR), PathBuf::from);
        self.resolve_in(&dev_dir)
    }

    fn resolve_in(&self, dev_dir: &Path) -> Result<Target, CliError> {
        let config = match &self.config {
            Some(path) => Some(Config::load(Some(path), std::env::vars())?),
            None => None,
        };
        // `Config::load` already put EPG_DATABASE_URL in `database.url`;
        // the flag goes over both.
        let url = self
            .database_url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| config.as_ref().map(|c| c.database.url.clone()));
        if let Some(url) = url {
            let config = config.map(|mut c| {
                c.database.url.clone_from(&url);
                c
            });
            return Ok(Target {
                url,
                config,
                dev: None,
            });
        }
        let Some(dev) = DevNode::find(dev_dir)? else {
            return Err(CliError::Usage(format!(
                "no database given: pass --database-url URL, set EPG_DATABASE_URL, or pass \
                 --config FILE (or set EPG_CONFIG); or run this beside `epg dev` \
                 (no {} here)",
                dev_dir.display()
            )));
        };
        let url = dev.state.database_url.clone().ok_or_else(|| {
            CliError::Failed(format!(
                "{} does not name its database (written by an older epg); \
                 start `epg dev` again, or pass --database-url",
                dev.state_path().display()
            ))
        })?;
        eprintln!(
            "epg: no --database-url, EPG_DATABASE_URL or --config: using the database of \
             `epg dev` in {} ({})",
            dev.dir.display(),
            without_password(&url)
        );
        Ok(Target {
            url,
            config: None,
            dev: Some(dev),
        })
    }
}

impl Target {
    /// A small pool on the target's database.
    pub async fn pool(&self) -> Result<crate::db::Db, CliError> {
        crate::db::connect(&self.url, 2)
            .await
            .map_err(|e| CliError::Step {
                context: match &self.dev {
                    Some(dev) => format!(
                        "cannot connect to the database of `epg dev` in {} (is it running?)",
                        dev.dir.display()
                    ),
                    None => "cannot connect to the database".to_owned(),
                },
                source: Box::new(e),
            })
    }

    /// The node's master keys: from the configuration, from `epg dev`'s
    /// state, or else from `EPG_SECURITY_MASTER_KEY` (and
    /// `EPG_SECURITY_PREVIOUS_MASTER_KEYS`).
    pub fn keyring(&self) -> Result<(Keyring, usize), CliError> {
        if let Some(config) = &self.config {
            return Ok((
                config.keyring()?,
                config.security.previous_master_keys.len(),
            ));
        }
        if let Some(dev) = &self.dev {
            let key = dev.state.master_key.as_deref().ok_or_else(|| {
                CliError::Failed(format!(
                    "{} holds no master key",
                    dev.state_path().display()
                ))
            })?;
            let keys =
                Keyring::new(key, &[]).with_context(|| dev.state_path().display().to_string())?;
            return Ok((keys, 0));
        }
        // No file: the environment gives the keys, this URL the database
        // (as `epg serve` would read them).
        let env = std::env::vars()
            .filter(|(k, _)| k != "EPG_DATABASE_URL")
            .chain([("EPG_DATABASE_URL".to_owned(), self.url.clone())]);
        let config = Config::load(None, env).map_err(|e| {
            CliError::Usage(format!(
                "the master keys are needed: pass --config FILE or set \
                 EPG_SECURITY_MASTER_KEY ({e})"
            ))
        })?;
        Ok((
            config.keyring()?,
            config.security.previous_master_keys.len(),
        ))
    }

    /// The chains the node watches, when the source names them: the
    /// configuration's `[[chains]]`, or the `epg dev` node's devnet.
    pub fn chains(&self) -> Result<Option<Vec<ChainConfig>>, CliError> {
        if let Some(config) = &self.config {
            return Ok(Some(config.chains.clone()));
        }
        let Some(dev) = &self.dev else {
            return Ok(None);
        };
        let rpc_url = dev.state.rpc_url.as_deref().ok_or_else(|| {
            CliError::Failed(format!(
                "{} does not name its chain (written by an older epg); \
                 start `epg dev` again, or pass --rpc-url",
                dev.state_path().display()
            ))
        })?;
        let path = dev.dir.join("deployment.json");
        let deployment = crate::chain::deploy::read(&path)
            .map_err(CliError::other)?
            .ok_or_else(|| CliError::Failed(format!("{} is missing", path.display())))?;
        Ok(Some(vec![ChainConfig::devnet(&deployment, rpc_url)]))
    }
}

impl DevNode {
    /// The node whose data folder is `dir`, if there is one.
    fn find(dir: &Path) -> Result<Option<Self>, CliError> {
        if !dir.is_dir() {
            return Ok(None);
        }
        let path = dir.join(super::dev::STATE_FILE);
        if !path.exists() {
            return Err(CliError::Failed(format!(
                "{} has no {}: is it the data folder of `epg dev`? Pass --database-url or \
                 --config instead",
                dir.display(),
                super::dev::STATE_FILE
            )));
        }
        Ok(Some(Self {
            dir: dir.to_owned(),
            state: super::dev::read_state(&path)?,
        }))
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(super::dev::STATE_FILE)
    }
}

/// `url` with any password replaced by `***`, to print.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            without_password("postgres://epg:s3cret@db:5432/epg?sslmode=require"),
            "postgres://epg:***@db:5432/epg?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1:55432/epg"),
            "postgres://postgres@127.0.0.1:55432/epg"
        );
        assert_eq!(without_password("not a url"), "not a url");
    }
}
