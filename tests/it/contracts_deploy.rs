//! The contracts deployed from Rust on a real anvil: payments through the
//! router emit `PaymentReceived` with the reference, found by one
//! `eth_getLogs` filter on the indexed reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use epg::chain::contracts::{DevStablecoin, PaymentRouter, SettlementAnchor};
use epg::chain::deploy::{self, DEV_MINT_PER_ACCOUNT, DeployPlan};
use epg::devnet::anvil::DEV_KEY_0;

/// Anvil's default account #1 (public devnet key).
const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn plan(deployer: Address) -> DeployPlan {
    DeployPlan {
        treasury: deployer,
        admin: deployer,
        anchorer: deployer,
        dev_helpers: true,
        ..DeployPlan::default()
    }
}

#[tokio::test]
async fn deployed_router_takes_erc20_and_eth_payments_found_by_reference() {
    let anvil = common::anvil().await;
    let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let treasury = deployer.address();
    let deployment = deploy::deploy(&anvil.rpc_url(), deployer, &plan(treasury))
        .await
        .unwrap();
    assert_eq!(deployment.chain_id, 31337);
    assert!(
        deploy::is_live(&anvil.rpc_url(), &deployment)
            .await
            .unwrap()
    );

    let payer: PrivateKeySigner = DEV_KEY_1.parse().unwrap();
    let payer_address = payer.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(payer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let token = DevStablecoin::new(deployment.stablecoin.unwrap(), &provider);
    assert_eq!(
        token.balanceOf(payer_address).call().await.unwrap(),
        U256::from(DEV_MINT_PER_ACCOUNT),
        "funded accounts got dev USDC"
    );
    assert_eq!(token.decimals().call().await.unwrap(), 6);

    let router = PaymentRouter::new(deployment.router, &provider);
    let reference = B256::repeat_byte(0xab);
    let amount = U256::from(12_340_000u64);
    token
        .approve(deployment.router, amount)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let before = token.balanceOf(treasury).call().await.unwrap();
    router
        .pay(*token.address(), amount, reference)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        token.balanceOf(treasury).call().await.unwrap() - before,
        amount,
        "straight to the treasury"
    );
    assert_eq!(
        token.balanceOf(deployment.router).call().await.unwrap(),
        U256::ZERO
    );

    let filter = Filter::new()
        .address(deployment.router)
        .event_signature(PaymentRouter::PaymentReceived::SIGNATURE_HASH)
        .topic1(reference)
        .from_block(0);
    let logs = provider.get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1);
    let event = PaymentRouter::PaymentReceived::decode_log(&logs[0].inner)
        .unwrap()
        .data;
    assert_eq!(event.r#ref, reference);
    assert_eq!(event.payer, payer_address);
    assert_eq!(event.token, *token.address());
    assert_eq!(event.amount, amount);
}

#[tokio::test]
async fn a_cast_send_to_the_router_emits_payment_received_with_the_reference() {
    let anvil = common::anvil().await;
    let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let address = deployer.address();
    let deployment = deploy::deploy(&anvil.rpc_url(), deployer, &plan(address))
        .await
        .unwrap();
    let cast = epg::devnet::anvil::find_tool("cast").expect("cast (run scripts/setup)");
    let reference = format!("0x{}", "42".repeat(32));
    let output = tokio::process::Command::new(cast)
        .args(["send", "--rpc-url", &anvil.rpc_url()])
        .args(["--private-key", DEV_KEY_1])
        .arg(deployment.router.to_string())
        .args(["payNative(bytes32)", &reference, "--value", "1ether"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let filter = Filter::new()
        .address(deployment.router)
        .event_signature(PaymentRouter::PaymentReceived::SIGNATURE_HASH)
        .topic1(reference.parse::<B256>().unwrap())
        .from_block(0);
    let logs = provider.get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1);
    let event = PaymentRouter::PaymentReceived::decode_log(&logs[0].inner)
        .unwrap()
        .data;
    assert_eq!(event.token, Address::ZERO, "ETH is the zero token");
    assert_eq!(event.amount, U256::from(10u64).pow(U256::from(18u64)));
}

#[tokio::test]
async fn the_anchor_accepts_only_growing_checkpoints_from_the_anchorer() {
    let anvil = common::anvil().await;
    let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let address = deployer.address();
    let deployment = deploy::deploy(&anvil.rpc_url(), deployer.clone(), &plan(address))
        .await
        .unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(anvil.rpc_url().parse().unwrap());
    let anchor = SettlementAnchor::new(deployment.anchor, &provider);
    let root = B256::repeat_byte(1);
    anchor
        .anchor(4, root, B256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        anchor.checkpointCount().call().await.unwrap(),
        U256::from(1)
    );
    // Not growing: refused.
    assert!(
        anchor
            .anchor(4, B256::repeat_byte(2), root)
            .send()
            .await
            .is_err()
    );
    // Wrong previous root: refused.
    assert!(
        anchor
            .anchor(5, B256::repeat_byte(2), B256::ZERO)
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn epg_contracts_deploy_takes_the_key_from_the_environment_only() {
    let anvil = common::anvil().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment.json");
    let epg = env!("CARGO_BIN_EXE_epg");
    let without_key = tokio::process::Command::new(epg)
        .args(["contracts", "deploy", "--rpc-url", &anvil.rpc_url()])
        .env_remove("EPG_DEPLOYER_KEY")
        .output()
        .await
        .unwrap();
    assert!(!without_key.status.success());
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("EPG_DEPLOYER_KEY"));

    let on_the_command_line = tokio::process::Command::new(epg)
        .args([
            "contracts",
            "deploy",
            "--rpc-url",
            &anvil.rpc_url(),
            "--private-key",
            DEV_KEY_0,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        !on_the_command_line.status.success(),
        "no --private-key flag exists"
    );

    let deployed = tokio::process::Command::new(epg)
        .args([
            "contracts",
            "deploy",
            "--rpc-url",
            &anvil.rpc_url(),
            "--dev-helpers",
            "--out",
        ])
        .arg(&out)
        .env("EPG_DEPLOYER_KEY", DEV_KEY_0)
        .output()
        .await
        .unwrap();
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let deployment = deploy::read(&out).unwrap().unwrap();
    assert!(
        deploy::is_live(&anvil.rpc_url(), &deployment)
            .await
            .unwrap()
    );
    assert!(String::from_utf8_lossy(&deployed.stdout).contains(&deployment.router.to_string()));
}

/// `epg contracts deploy` sets the delays and the allow-list it is given
/// (the devnet token is allowed with `--dev-helpers`), records the contracts'
/// version, and both contracts start with a two-step, delayed admin.
#[tokio::test]
async fn epg_contracts_deploy_sets_delays_and_the_token_allow_list() {
    let anvil = common::anvil().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment.json");
    let listed = Address::repeat_byte(0x42);
    let deployed = tokio::process::Command::new(env!("CARGO_BIN_EXE_epg"))
        .args(["contracts", "deploy", "--rpc-url", &anvil.rpc_url()])
        .args(["--dev-helpers", "--allow-token", &listed.to_string()])
        .args([
            "--treasury-delay-secs",
            "3600",
            "--admin-delay-secs",
            "7200",
        ])
        .arg("--out")
        .arg(&out)
        .env("EPG_DEPLOYER_KEY", DEV_KEY_0)
        .output()
        .await
        .unwrap();
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let deployment = deploy::read(&out).unwrap().unwrap();
    assert_eq!(deployment.contracts_version, deploy::CONTRACTS_VERSION);
    // The addresses epg.example.toml shows for a fresh devnet.
    let example = epg::config::Config::example();
    for address in [
        deployment.router,
        deployment.anchor,
        deployment.stablecoin.unwrap(),
        deployment.price_feed.unwrap(),
    ] {
        assert!(example.contains(&address.to_checksum(None)), "{address}");
    }
    let provider = ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    let router = PaymentRouter::new(deployment.router, &provider);
    assert_eq!(
        router.TREASURY_DELAY().call().await.unwrap().to::<u64>(),
        3600
    );
    assert_eq!(
        router.defaultAdminDelay().call().await.unwrap().to::<u64>(),
        7200
    );
    assert!(router.allowedToken(listed).call().await.unwrap());
    assert!(
        router
            .allowedToken(deployment.stablecoin.unwrap())
            .call()
            .await
            .unwrap()
    );
    assert!(
        !router
            .allowedToken(Address::repeat_byte(0x43))
            .call()
            .await
            .unwrap()
    );
    let anchor = SettlementAnchor::new(deployment.anchor, &provider);
    assert_eq!(
        anchor.defaultAdminDelay().call().await.unwrap().to::<u64>(),
        7200
    );
    assert_eq!(anchor.maxGrowth().call().await.unwrap(), 1 << 24);
    let admin: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    assert_eq!(router.defaultAdmin().call().await.unwrap(), admin.address());
    assert_eq!(anchor.defaultAdmin().call().await.unwrap(), admin.address());
}
