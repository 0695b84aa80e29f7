//! The drop folder: how SFTP and EBICS clients hand files over.
//!
//! Every `poll_interval_secs` the node imports each file of
//! `bank.inbox_dir` (oldest first) and moves it to `processed/`, or, when
//! it is refused, to `rejected/` next to a `<name>.reason.txt` naming the
//! line and field at fault. A file that fails for another reason (the
//! database) stays for the next pass. Then it exports pending transfers
//! into `bank.outbox_dir`. One node at a time does this (an advisory lock
//! held for the pass); importing twice would book nothing twice anyway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{BankConfig, BankError};
use crate::crypto::Sealer;
use crate::db::Db;

/// The drop-folder job.
#[derive(Debug)]
pub struct Watcher {
    /// The database.
    pub pool: Db,
    /// `[bank]`.
    pub config: BankConfig,
    /// Opens creditor accounts for pain.001 files.
    pub sealer: Sealer,
    /// Mode of payment objects in events.
    pub livemode: bool,
}

/// What happened to one file.
#[derive(Debug)]
pub enum Handled {
    /// Imported, moved to `processed/`.
    Imported(super::import::Outcome),
    /// Refused, moved to `rejected/` with the reason.
    Rejected(super::Refusal),
}

/// Imports `path` and files it under `processed/` or `rejected/` of
/// `dir`. Errors other than a refusal leave the file where it is.
pub async fn handle(
    pool: &Db,
    path: &Path,
    dir: &Path,
    livemode: Option<bool>,
) -> Result<Handled, BankError> {
    let io = |p: &Path, source| BankError::Io {
        path: p.display().to_string(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    match super::import::import(pool, &name, &bytes, livemode).await {
        Ok(outcome) => {
            let target = dir.join("processed");
            std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
            std::fs::rename(path, target.join(&name)).map_err(|e| io(path, e))?;
            Ok(Handled::Imported(outcome))
        }
        Err(BankError::Refused(refusal)) => {
            let target = dir.join("rejected");
            std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
            let reason = target.join(format!("{name}.reason.txt"));
            std::fs::write(&reason, format!("{refusal}\n")).map_err(|e| io(&reason, e))?;
            std::fs::rename(path, target.join(&name)).map_err(|e| io(path, e))?;
            Ok(Handled::Rejected(refusal))
        }
        Err(e) => Err(e),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.path())
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

impl Watcher {
    /// Runs passes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let period = Duration::from_secs(self.config.poll_interval_secs.max(1));
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "bank drop folder pass failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn pass(&self) -> Result<(), BankError> {
        let mut lease = self.pool.acquire().await?;
        let mine: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('epg.bank.watcher', 0))",
        )
        .fetch_one(&mut *lease)
        .await?;
        if !mine {
            return Ok(());
        }
        let result = self.work().await;
        sqlx::query("SELECT pg_advisory_unlock(hashtextextended('epg.bank.watcher', 0))")
            .execute(&mut *lease)
            .await?;
        result
    }

    async fn work(&self) -> Result<(), BankError> {
        if !self.config.inbox_dir.is_empty() {
            let dir = Path::new(&self.config.inbox_dir);
            for path in files_in(dir) {
                match handle(&self.pool, &path, dir, Some(self.livemode)).await {
                    Ok(Handled::Imported(o)) => tracing::info!(
                        file = %path.display(), kind = %o.kind, booked = o.booked, known = o.known,
                        "bank file imported"
                    ),
                    Ok(Handled::Rejected(r)) => {
                        tracing::warn!(file = %path.display(), reason = %r, "bank file rejected");
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "bank file not imported; retrying later")
                    }
                }
            }
        }
        if !self.config.outbox_dir.is_empty() {
            let written = super::transfers::export(
                &self.pool,
                &self.sealer,
                super::import::today(),
                Path::new(&self.config.outbox_dir),
            )
            .await?;
            for file in written {
                tracing::info!(message_id = %file.message_id, transfers = file.transfers,
                    path = %file.path.display(), "pain.001 written");
            }
        }
        Ok(())
    }
}
