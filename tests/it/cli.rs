//! The `epg` binary as an operator uses it: `epg dev` end to end, config
//! errors, and the admin commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const EPG: &str = env!("CARGO_BIN_EXE_epg");

fn free_port() -> u16 {
    epg::devnet::anvil::free_port().unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose; read its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// Processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

#[tokio::test]
async fn epg_dev_serves_the_demo_merchant_and_leaves_nothing_running_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("dev");
    let (port, pg_port, anvil_port) = (free_port(), free_port(), free_port());
    let start = || {
        let mut cmd = Command::new(EPG);
        cmd.arg("dev")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--port", &port.to_string()])
            .args(["--pg-port", &pg_port.to_string()])
            .args(["--anvil-port", &anvil_port.to_string()])
            .env_remove("EPG_DATABASE_URL")
            .env_remove("EPG_RPC_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    };

    let mut secret_keys = Vec::new();
    for run in 0..2 {
        let mut child = start();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        let secret = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(key) = line.trim().strip_prefix("Secret key") {
                    return key.trim().to_owned();
                }
            }
            panic!("epg dev exited before its banner:\n{banner}");
        })
        .await
        .expect("banner within 3 minutes");
        for line in [
            "Publishable key",
            "Chain RPC",
            "chain id 31337",
            "PaymentRouter",
            "SettlementAnchor",
            "USDC (dev)",
            "curl -s",
        ] {
            // The banner continues after the key line; read the rest.
            if !banner.contains(line) {
                while let Ok(Some(next)) =
                    tokio::time::timeout(Duration::from_secs(5), lines.next_line())
                        .await
                        .unwrap_or(Ok(None))
                {
                    banner.push_str(&next);
                    banner.push('\n');
                    if banner.contains(line) {
                        break;
                    }
                }
            }
            assert!(banner.contains(line), "banner lacks {line}:\n{banner}");
        }

        let client = reqwest::Client::new();
        let account: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/v1/account"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(account["object"], "account", "run {run}: {account}");
        let unauthorized = client
            .get(format!("http://127.0.0.1:{port}/v1/account"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status(), 401);

        let postmaster = std::fs::read_to_string(data_dir.join("pg/postmaster.pid")).unwrap();
        let pg_pid: u32 = postmaster.lines().next().unwrap().trim().parse().unwrap();
        assert!(alive(pg_pid));
        let anvil_needle = format!("--port {anvil_port}");
        assert_eq!(pids_with(&anvil_needle).len(), 1, "one anvil running");

        // Ctrl-C.
        let pid = child.id().unwrap();
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("epg dev exits after Ctrl-C")
            .unwrap();
        assert!(status.success(), "{status}");
        assert!(!alive(pg_pid), "postgres {pg_pid} still running");
        assert!(pids_with(&anvil_needle).is_empty(), "anvil still running");
        let router = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("PaymentRouter"))
            .unwrap()
            .trim()
            .to_owned();
        secret_keys.push((secret, router));
    }
    // The second run kept the data and the chain: same demo merchant and
    // key, same contracts (loaded from anvil's saved state, not redeployed).
    assert_eq!(secret_keys[0], secret_keys[1]);
}

#[tokio::test]
async fn serve_refuses_a_bad_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epg.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"postgres://x@127.0.0.1/y\"\nmax_connections = \"ten\"\n[security]\nmaster_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
    )
    .unwrap();
    let output = Command::new(EPG)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.max_connections"), "{stderr}");

    let output = Command::new(EPG)
        .args(["config", "check", "--config"])
        .arg(&path)
        .env("EPG_DATABASE_MAX_CONNECTIONS", "5")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_config_with_the_old_name_of_the_master_key_is_refused_with_the_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epg.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"postgres://x@127.0.0.1/y\"\n[security]\ncard_encryption_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
    )
    .unwrap();
    let output = Command::new(EPG)
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("security.card_encryption_key"), "{stderr}");
    assert!(
        stderr.contains("renamed to `security.master_key`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn admin_commands_create_list_and_revoke() {
    let (_pool, url) = common::test_database().await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(EPG);
        cmd.args(args)
            .env("EPG_DATABASE_URL", &url)
            .env_remove("EPG_CONFIG");
        cmd.output()
    };
    let created = run(&["merchants", "create", "--name", "Acme", "--with-keys"])
        .await
        .unwrap();
    assert!(created.status.success());
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    let merchant = out
        .split_whitespace()
        .find(|w| w.starts_with("mer_"))
        .unwrap()
        .to_owned();
    assert!(
        out.contains("sk_test_") && out.contains("pk_test_"),
        "{out}"
    );

    let listed = run(&["merchants", "list"]).await.unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&merchant));

    let key = run(&["keys", "create", "--merchant", &merchant])
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&key.stdout).into_owned();
    let key_id = out
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap()
        .to_owned();
    let revoked = run(&["keys", "revoke", &key_id]).await.unwrap();
    assert!(revoked.status.success());
    let again = run(&["keys", "revoke", &key_id]).await.unwrap();
    assert!(!again.status.success(), "revoking twice is an error");

    let bad = run(&["keys", "create", "--merchant", "acme"])
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("mer_"));
}
