//! A private, throw-away PostgreSQL cluster in a folder of our own, for
//! `epg dev` and for test runs on machines without a running server.
//!
//! PostgreSQL refuses to run as root; when we are root, the server binaries
//! run as the `postgres` system user (created by Debian's package).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::DevnetError;

/// A running private cluster. Stopped by [`PrivateCluster::stop`], or by
/// `Drop` as a last resort, so that no server outlives `epg dev`.
#[derive(Debug)]
pub struct PrivateCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl PrivateCluster {
    /// Initializes `data_dir` if it is new and starts a server on
    /// `127.0.0.1:port` (TCP only, trust authentication, user `postgres`).
    pub async fn start(data_dir: &Path, port: u16) -> Result<Self, DevnetError> {
        let bin_dir = find_bin_dir().ok_or_else(|| {
            DevnetError::Missing(
                "PostgreSQL server binaries (initdb, pg_ctl): run scripts/setup, or install Debian's `postgresql` package".into(),
            )
        })?;
        let run_as = if is_root() {
            Some(system_user("postgres").ok_or_else(|| {
                DevnetError::Missing(
                    "a `postgres` system user to run PostgreSQL as (it refuses root); install Debian's `postgresql` package".into(),
                )
            })?)
        } else {
            None
        };
        std::fs::create_dir_all(data_dir).map_err(|e| DevnetError::io(data_dir, e))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| DevnetError::io(data_dir, e))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&data_dir, Some(uid), Some(gid))
                .map_err(|e| DevnetError::io(&data_dir, e))?;
        }
        let mut cluster = Self {
            bin_dir,
            data_dir,
            port,
            run_as,
            stopped: true,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            let data = cluster.data_dir.display().to_string();
            cluster
                .run(
                    "initdb",
                    &[
                        "-D",
                        &data,
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--no-locale",
                    ],
                )
                .await?;
        }
        // A previous `epg dev` that was killed with SIGKILL leaves its server
        // running; stop it so this one starts with our settings.
        if cluster.data_dir.join("postmaster.pid").exists() {
            let _ = cluster.pg_ctl_stop().await;
        }
        let data = cluster.data_dir.display().to_string();
        let log = cluster.data_dir.join("server.log").display().to_string();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200 -c fsync=off"
        );
        cluster
            .run(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
                ],
            )
            .await
            .map_err(|e| match e {
                DevnetError::Command { program, output } => DevnetError::Command {
                    program,
                    output: format!("{output}\n(see {log}; is port {port} free?)"),
                },
                other => other,
            })?;
        cluster.stopped = false;
        Ok(cluster)
    }

    /// A URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Fast shutdown: disconnects clients and stops the server.
    pub async fn stop(mut self) -> Result<(), DevnetError> {
        self.stopped = true;
        self.pg_ctl_stop().await
    }

    async fn pg_ctl_stop(&self) -> Result<(), DevnetError> {
        let data = self.data_dir.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<(), DevnetError> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .map_err(|_| DevnetError::Command {
                program: program.to_owned(),
                output: "timed out after 120 s".into(),
            })?
            .map_err(|e| DevnetError::io(&self.bin_dir.join(program), e))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(DevnetError::Command {
                program: program.to_owned(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let mut cmd = std::process::Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        let _ = cmd.status();
    }
}

/// Where `initdb` and `pg_ctl` live: `$PATH`, or Debian's versioned folder
/// (the package does not put them on `$PATH`).
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    }) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (read from procfs, no libc needed).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// uid and gid of a system user, from `/etc/passwd`.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}
