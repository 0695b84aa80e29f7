//! The database the nodes share: the one `scripts/faults` started (a
//! pg_auto_failover formation in full mode, one server with WAL archiving
//! in quick mode), or, when the test runs on its own, a private PostgreSQL
//! of its own. Each can be restarted; the formation can fail over.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use epg::devnet::postgres::PrivateCluster;

pub enum Storage {
    Private {
        dir: PathBuf,
        port: u16,
        cluster: tokio::sync::Mutex<Option<PrivateCluster>>,
    },
    External {
        url: String,
        /// The pg_auto_failover monitor's data folder, when a formation.
        monitor: Option<String>,
        /// Data folders of the formation's nodes, in the URL's host order.
        pgdata: Vec<String>,
    },
}

impl Storage {
    pub async fn start(dir: &Path) -> Self {
        if let (Ok(url), Ok(pgdata)) = (
            std::env::var("EPG_FAULTS_DATABASE_URL"),
            std::env::var("EPG_FAULTS_PGDATA"),
        ) {
            return Self::External {
                url,
                monitor: std::env::var("EPG_FAULTS_MONITOR")
                    .ok()
                    .filter(|m| !m.is_empty()),
                pgdata: pgdata.split(',').map(str::to_owned).collect(),
            };
        }
        let port = epg::devnet::anvil::free_port().unwrap();
        let pg_dir = dir.join("pg");
        let cluster = PrivateCluster::start(&pg_dir, port).await.unwrap();
        let admin = epg::db::connect(&cluster.url("postgres"), 1).await.unwrap();
        epg::db::create_database_if_missing(&admin, "epg")
            .await
            .unwrap();
        admin.close().await;
        Self::Private {
            dir: pg_dir,
            port,
            cluster: tokio::sync::Mutex::new(Some(cluster)),
        }
    }

    pub fn is_ha(&self) -> bool {
        matches!(
            self,
            Self::External {
                monitor: Some(_),
                ..
            }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Private { port, .. } => format!("a private PostgreSQL on port {port}"),
            Self::External {
                url,
                monitor: Some(_),
                ..
            } => format!("pg_auto_failover ({url})"),
            Self::External { url, .. } => format!("PostgreSQL at {url}"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Private { port, .. } => format!("postgres://postgres@127.0.0.1:{port}/epg"),
            Self::External { url, .. } => url.clone(),
        }
    }

    /// A fast shutdown and a start: every connection is cut (57P01), the
    /// server is unreachable for a moment, then comes back.
    pub async fn restart(&self) {
        match self {
            Self::Private { dir, port, cluster } => {
                let mut slot = cluster.lock().await;
                if let Some(running) = slot.take() {
                    running.stop().await.unwrap();
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                *slot = Some(PrivateCluster::start(dir, *port).await.unwrap());
            }
            Self::External {
                url,
                pgdata,
                monitor: None,
            } => {
                let primary = primary_index(url).await;
                as_postgres(&[
                    "pg_ctl",
                    "-D",
                    &pgdata[primary],
                    "-m",
                    "fast",
                    "-w",
                    "restart",
                ]);
            }
            Self::External {
                url,
                pgdata,
                monitor: Some(_),
            } => {
                // pg_autoctl's keeper keeps its PostgreSQL running: a fast
                // shutdown of the primary is followed by its keeper's start.
                let primary = primary_index(url).await;
                as_postgres(&["pg_ctl", "-D", &pgdata[primary], "-m", "fast", "-w", "stop"]);
                for _ in 0..600 {
                    if writable_index(url).await.is_some() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("no writable host in {url} after the primary's restart");
            }
        }
    }

    /// The monitor promotes the standby; the old primary follows it. A
    /// failover needs a standby that has caught up: after an earlier one,
    /// the old primary is rewound and catches up first.
    ///
    /// `pg_autoctl perform failover` waits 60 s for the new primary's
    /// notification and fails after that, but the failover it started goes
    /// on: on a loaded machine it can take longer. What counts is that the
    /// other node accepts writes and the formation settles; the command is
    /// only sent again if nothing moved.
    pub async fn failover(&self) {
        if let Self::External {
            url,
            monitor: Some(monitor),
            ..
        } = self
        {
            for _ in 0..1200 {
                if settled(monitor) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let before = primary_index(url).await;
            for attempt in 1..=3 {
                if !try_as_postgres(&["pg_autoctl", "perform", "failover", "--pgdata", monitor]) {
                    eprintln!(
                        "faults: pg_autoctl perform failover returned an error (attempt {attempt}); waiting for the switch"
                    );
                }
                for _ in 0..1800 {
                    if writable_index(url).await.is_some_and(|now| now != before)
                        && settled(monitor)
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            panic!("no failover away from host {before} of {url} after three attempts");
        }
    }

    pub async fn stop(self) {
        if let Self::Private { cluster, .. } = self
            && let Some(running) = cluster.into_inner()
        {
            let _ = running.stop().await;
        }
    }
}

/// Whether the formation is one primary and one secondary, each in the
/// state the monitor assigned.
fn settled(monitor: &str) -> bool {
    let Some(state) = output_as_postgres(&["pg_autoctl", "show", "state", "--pgdata", monitor])
    else {
        return false;
    };
    let settled = state
        .lines()
        .filter(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            cells.len() == 7 && matches!(cells[5], "primary" | "secondary") && cells[5] == cells[6]
        })
        .count();
    settled == 2
}

/// Which host of `url` accepts writes now.
async fn primary_index(url: &str) -> usize {
    writable_index(url)
        .await
        .unwrap_or_else(|| panic!("no writable host in {url}"))
}

/// Which host of `url` accepts writes now, if any.
async fn writable_index(url: &str) -> Option<usize> {
    let targets = epg::db::Targets::parse(url).unwrap();
    for (i, host) in targets.hosts.iter().enumerate() {
        let single = epg::db::Targets {
            hosts: vec![host.clone()],
            read_write: true,
        };
        if let Ok(options) = single.pick().await
            && let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
        {
            let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                .fetch_one(&pool)
                .await
                .unwrap_or_default();
            pool.close().await;
            if read_only == "off" {
                return Some(i);
            }
        }
    }
    None
}

/// Runs a PostgreSQL tool as the `postgres` user (it refuses root), with
/// the environment `scripts/faults` set for pg_autoctl.
fn as_postgres(args: &[&str]) {
    assert!(try_as_postgres(args), "{args:?} failed");
}

fn try_as_postgres(args: &[&str]) -> bool {
    command_as_postgres(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn output_as_postgres(args: &[&str]) -> Option<String> {
    let out = command_as_postgres(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn command_as_postgres(args: &[&str]) -> Command {
    let bin = epg::devnet::postgres::find_bin_dir().unwrap();
    let program = if args[0] == "pg_autoctl" {
        PathBuf::from("pg_autoctl")
    } else {
        bin.join(args[0])
    };
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    command.args(&args[1..]).env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    // pg_autoctl finds a node's configuration under XDG_CONFIG_HOME, set by
    // scripts/lib/ha-pg.sh for the formation it made.
    if let Ok(dir) = std::env::var("HA_PG_DIR") {
        command
            .env("XDG_CONFIG_HOME", format!("{dir}/xdg/config"))
            .env("XDG_DATA_HOME", format!("{dir}/xdg/data"))
            .env("XDG_RUNTIME_DIR", format!("{dir}/xdg/run"));
    }
    // runuser from the repository: `postgres` may not read it.
    command.current_dir("/");
    command
}

fn is_root() -> bool {
    // The data folders belong to `postgres` when the suite runs as root.
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
