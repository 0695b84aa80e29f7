//! The `epg` binary as an operator uses it: `epg dev` end to end, config
//! errors, and the admin commands, which all find the node's database the
//! same way (flag, environment, configuration file, `epg dev` beside them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
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

/// `epg` in `dir`, with nothing in its environment that names a database
/// or an `epg dev` data folder.
fn epg_in(dir: &Path) -> Command {
    let mut cmd = Command::new(EPG);
    cmd.current_dir(dir)
        .env_remove("EPG_DATABASE_URL")
        .env_remove("EPG_CONFIG")
        .env_remove("EPG_DATA_DIR")
        .env_remove("EPG_RPC_URL");
    cmd
}

/// The value after `label` on a line of `text` (`Database   postgres://…`).
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
        .split_whitespace()
        .next()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What `epg dev` does for an operator beside it: admin commands in its
/// folder use its database and chain without being told, and say so.
async fn admin_commands_work_beside(dir: &Path, banner: &str, port: u16) {
    let created = epg_in(dir)
        .args(["merchants", "create", "--name", "Beside Dev", "--with-keys"])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (text(&created.stdout), text(&created.stderr));
    assert!(created.status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line says where: {stderr}");
    assert!(
        stderr.contains("epg dev") && stderr.contains(".epg/dev"),
        "{stderr}"
    );
    let secret = stdout
        .split_whitespace()
        .find(|w| w.starts_with("sk_test_"))
        .unwrap();
    // The running node knows the new merchant's key: it is the same database.
    let account: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/account"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["name"], "Beside Dev", "{account}");

    for args in [&["ledger", "check"][..], &["reconcile", "chain"]] {
        let out = epg_in(dir).args(args).output().await.unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    // Elsewhere, EPG_DATABASE_URL names the database; `reconcile chain`
    // used to ignore it.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = epg_in(elsewhere.path())
        .env("EPG_DATABASE_URL", field(banner, "Database"))
        .args([
            "reconcile",
            "chain",
            "--rpc-url",
            field(banner, "Chain RPC"),
        ])
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("no discrepancy"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[tokio::test]
async fn epg_dev_serves_the_demo_merchant_and_leaves_nothing_running_after_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // The default data folder, as an operator gets it.
    let data_dir = dir.path().join(".epg/dev");
    let (port, pg_port, anvil_port) = (free_port(), free_port(), free_port());
    let start = || {
        let mut cmd = epg_in(dir.path());
        cmd.arg("dev")
            .args(["--port", &port.to_string()])
            .args(["--pg-port", &pg_port.to_string()])
            .args(["--anvil-port", &anvil_port.to_string()])
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
        if run == 0 {
            admin_commands_work_beside(dir.path(), &banner, port).await;
        }

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

/// Writes the data folder of an `epg dev` node in `dir` whose database is
/// `database_url` (the node itself need not run for the database to be
/// found).
fn dev_state_in(dir: &Path, database_url: &str, master_key: &str) {
    let data = dir.join(".epg/dev");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("dev.json"),
        serde_json::json!({"database_url": database_url, "master_key": master_key}).to_string(),
    )
    .unwrap();
}

async fn merchant_names(pool: &epg::db::Db) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM merchants ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_commands_take_the_database_from_the_flag_then_the_environment_then_the_config_then_epg_dev()
 {
    let (flag, env, file, dev) = tokio::join!(
        common::test_database(),
        common::test_database(),
        common::test_database(),
        common::test_database()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("epg.toml");
    std::fs::write(
        &config,
        toml::to_string(&common::test_config(&file.1)).unwrap(),
    )
    .unwrap();
    dev_state_in(dir.path(), &dev.1, &epg::crypto::Keyring::generate_base64());

    let create = |name: &str| {
        let mut cmd = epg_in(dir.path());
        cmd.args(["merchants", "create", "--name", name]);
        cmd
    };
    let cases = [
        ("all four", {
            let mut cmd = create("all four");
            cmd.args(["--database-url", &flag.1])
                .env("EPG_DATABASE_URL", &env.1)
                .arg("--config")
                .arg(&config);
            cmd
        }),
        ("env, config and dev", {
            let mut cmd = create("env, config and dev");
            cmd.env("EPG_DATABASE_URL", &env.1)
                .env("EPG_CONFIG", &config);
            cmd
        }),
        ("config and dev", {
            let mut cmd = create("config and dev");
            cmd.arg("--config").arg(&config);
            cmd
        }),
        ("dev", create("dev")),
    ];
    for (name, mut cmd) in cases {
        let out = cmd.output().await.unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        if name == "dev" {
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{stderr}");
            assert!(lines[0].contains("`epg dev` in .epg/dev"), "{stderr}");
            assert!(lines[0].contains(&dev.1), "names the database: {stderr}");
        } else {
            assert!(stderr.is_empty(), "{name}: {stderr}");
        }
    }
    assert_eq!(merchant_names(&flag.0).await, ["all four"]);
    assert_eq!(merchant_names(&env.0).await, ["env, config and dev"]);
    assert_eq!(merchant_names(&file.0).await, ["config and dev"]);
    assert_eq!(merchant_names(&dev.0).await, ["dev"]);
}

#[tokio::test]
async fn keys_rotate_master_beside_epg_dev_uses_its_database_and_master_key_found_by_epg_data_dir()
{
    let (pool, url) = common::test_database().await;
    let dir = tempfile::tempdir().unwrap();
    let master = epg::crypto::Keyring::generate_base64();
    dev_state_in(dir.path(), &url, &master);
    // From another folder, with EPG_DATA_DIR naming the data folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = epg_in(elsewhere.path())
        .env("EPG_DATA_DIR", dir.path().join(".epg/dev"))
        .args(["keys", "rotate-master"])
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let keys = epg::crypto::Keyring::new(&master, &[]).unwrap();
    assert!(
        stdout.contains(&format!("master key {} (0 previous)", keys.current_id())),
        "{stdout}"
    );
    drop(pool);
}

#[tokio::test]
async fn every_admin_command_without_a_database_names_the_ways_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let merchant = epg::ids::MerchantId::generate().to_string();
    let commands: [&[&str]; 8] = [
        &["migrate"],
        &["merchants", "create", "--name", "Nowhere"],
        &["merchants", "list"],
        &["keys", "list", "--merchant", &merchant],
        &["keys", "rotate-master"],
        &["ledger", "check"],
        &["reconcile", "chain"],
        &["reconcile", "chain", "--rpc-url", "http://127.0.0.1:9"],
    ];
    for args in commands {
        let out = epg_in(dir.path()).args(args).output().await.unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        for way in [
            "--database-url",
            "EPG_DATABASE_URL",
            "--config",
            "`epg dev`",
            ".epg/dev",
        ] {
            assert!(
                stderr.contains(way),
                "{args:?} does not name {way}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn help_never_prints_the_database_or_rpc_url_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["ledger", "check", "--help"][..],
        &["dev", "--help"],
        &["contracts", "deploy", "--help"],
        &["audit", "verify", "--help"],
    ] {
        let out = epg_in(dir.path())
            .env("EPG_DATABASE_URL", "postgres://epg:hunter2@db/epg")
            .env("EPG_RPC_URL", "https://rpc.example/v3/hunter2")
            .args(args)
            .output()
            .await
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout.contains("EPG_"), "{args:?}: {stdout}");
        assert!(!stdout.contains("hunter2"), "{args:?}: {stdout}");
    }
}
