//! A supervised anvil devnet process, for `epg dev` and the tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::DevnetError;

/// Anvil's default mnemonic account #0, funded with 10,000 ETH on every
/// anvil. Public knowledge: never use it outside a devnet.
pub const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Anvil's default mnemonic account #9: the devnet's anchorer. Anchoring
/// gas then never leaves the treasury (account #0), whose every movement
/// the ledger books, so `epg reconcile chain` stays exact on the devnet.
pub const DEV_ANCHOR_KEY: &str =
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6";

/// How to start anvil.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    /// Listening port on 127.0.0.1 (0: pick a free one).
    pub port: u16,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Load the chain from, and dump it to, this file (keeps a devnet
    /// across restarts).
    pub state_file: Option<PathBuf>,
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<u64>,
    /// Where anvil's own output goes; `None` discards it.
    pub log_file: Option<PathBuf>,
    /// Keep every block's state, also across a restart from `state_file`
    /// (anvil otherwise keeps only recent states in memory and dumps
    /// none), as an archive node does. Costly: anvil then holds a full
    /// copy of the state per block, in memory and in the state file
    /// (160 MB for 760 blocks of 800 accounts). `epg reconcile chain` does
    /// not need it: without the start block's state it starts from its
    /// last clean run's checkpoint.
    pub keep_history: bool,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self {
            port: 0,
            chain_id: 31337,
            state_file: None,
            block_time: None,
            log_file: None,
            keep_history: false,
        }
    }
}

/// A running anvil. Killed when dropped, so a test that panics leaves no
/// process behind.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    chain_id: u64,
}

impl Anvil {
    /// Starts anvil and waits until it answers JSON-RPC.
    pub async fn start(options: AnvilOptions) -> Result<Self, DevnetError> {
        let bin = find_bin().ok_or_else(|| {
            DevnetError::Missing(
                "anvil: run scripts/setup (installs @foundry-rs/anvil from npm), or set EPG_ANVIL_BIN".into(),
            )
        })?;
        let port = if options.port == 0 {
            free_port()?
        } else {
            options.port
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &options.chain_id.to_string()])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(state) = &options.state_file {
            cmd.arg("--state").arg(state);
        }
        if options.keep_history {
            cmd.args([
                "--prune-history",
                "100000000",
                "--preserve-historical-states",
            ]);
        }
        if let Some(secs) = options.block_time {
            cmd.args(["--block-time", &secs.to_string()]);
        }
        match &options.log_file {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|e| DevnetError::io(path, e))?;
                let err = file.try_clone().map_err(|e| DevnetError::io(path, e))?;
                cmd.stdout(file).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().map_err(|e| DevnetError::io(&bin, e))?;
        let mut anvil = Self {
            child,
            port,
            chain_id: options.chain_id,
        };
        anvil.wait_ready().await?;
        Ok(anvil)
    }

    /// The HTTP JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The WebSocket JSON-RPC URL.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The chain id it was started with.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Asks anvil to exit (SIGTERM, so it dumps `--state`), then kills it if
    /// it has not within five seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    async fn wait_ready(&mut self) -> Result<(), DevnetError> {
        let client = reqwest::Client::new();
        let url = self.rpc_url();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DevnetError::Command {
                    program: "anvil".into(),
                    output: format!(
                        "exited with {status} before answering (port {} taken?)",
                        self.port
                    ),
                });
            }
            let answered = client
                .post(&url)
                .json(
                    &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}),
                )
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DevnetError::Command {
            program: "anvil".into(),
            output: "did not answer within 30 s".into(),
        })
    }
}

/// The anvil binary: `$EPG_ANVIL_BIN`, else [`find_tool`].
pub fn find_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("EPG_ANVIL_BIN") {
        return Some(PathBuf::from(bin));
    }
    find_tool("anvil")
}

/// A Foundry tool (`anvil`, `cast`, `forge`): the npm install of this
/// checkout (or of the working directory), else `$PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let roots = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    let platform_prefix = format!("{name}-");
    for root in roots.into_iter().flatten() {
        // The npm package's `.bin/<tool>` is a node script that spawns the
        // native binary of the platform package; run that binary directly so
        // signals reach the tool itself and no wrapper process is left over.
        let packages = root.join("node_modules/@foundry-rs");
        if let Ok(entries) = std::fs::read_dir(&packages) {
            for entry in entries.flatten() {
                let native = entry.path().join("bin").join(name);
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&platform_prefix)
                    && native.is_file()
                {
                    return Some(native);
                }
            }
        }
        let wrapper = root.join("node_modules/.bin").join(name);
        if wrapper.is_file() {
            return Some(wrapper);
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|bin| Path::new(bin).is_file())
}

/// A currently free TCP port on loopback.
pub fn free_port() -> Result<u16, DevnetError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DevnetError::io(Path::new("127.0.0.1:0"), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| DevnetError::io(Path::new("127.0.0.1:0"), e))
}
