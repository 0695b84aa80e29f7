//! The nodes under test: real `epg serve` processes on one database, each
//! killable with SIGKILL and restartable on the same port and config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// One node's process, when it runs.
struct Slot {
    config: PathBuf,
    log: PathBuf,
    url: String,
    child: Option<Child>,
}

/// N nodes sharing a database, a chain and a master key.
pub struct Nodes {
    slots: Mutex<Vec<Slot>>,
    wallet_key: String,
}

impl Nodes {
    /// Writes one config per node under `dir` (`[database]` from
    /// `database_url`, the rest from `common`) and starts them all.
    pub fn start(
        dir: &Path,
        count: usize,
        database_url: &str,
        common: &str,
        wallet_key: &str,
    ) -> Self {
        let mut slots = Vec::new();
        for i in 0..count {
            let port = epg::devnet::anvil::free_port().unwrap();
            let config = dir.join(format!("node{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    "mode = \"test\"\n[server]\nlisten = \"127.0.0.1:{port}\"\ndev = true\n\
                     request_timeout_secs = 5\nshutdown_grace_secs = 1\n\
                     [database]\nurl = \"{database_url}\"\nmax_connections = 10\n{common}"
                ),
            )
            .unwrap();
            slots.push(Slot {
                config,
                log: dir.join(format!("node{i}.log")),
                url: format!("http://127.0.0.1:{port}"),
                child: None,
            });
        }
        let nodes = Self {
            slots: Mutex::new(slots),
            wallet_key: wallet_key.to_owned(),
        };
        for i in 0..count {
            nodes.revive(i);
        }
        nodes
    }

    /// Every node's base URL, whether it runs or not.
    pub fn urls(&self) -> Vec<String> {
        self.slots
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.url.clone())
            .collect()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
    }

    /// Starts node `i` again if it is down.
    pub fn revive(&self, i: usize) {
        let mut slots = self.slots.lock().unwrap();
        let slot = &mut slots[i];
        if slot.child.is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_epg"))
            .args(["serve", "--config"])
            .arg(&slot.config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EPG_WALLET_KEY", &self.wallet_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        slot.child = Some(child);
    }

    /// `kill -9` of node `i`.
    pub fn kill(&self, i: usize) {
        let mut slots = self.slots.lock().unwrap();
        if let Some(mut child) = slots[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until node `i` answers `/healthz`.
    pub async fn ready(&self, i: usize, client: &reqwest::Client) {
        let url = format!("{}/healthz", self.urls()[i]);
        for _ in 0..600 {
            if let Ok(r) = client.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {i} did not come up (see its log)");
    }

    /// Stops every node.
    pub fn kill_all(&self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.kill_all();
    }
}
