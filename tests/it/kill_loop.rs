//! The node killed at random points, fifty times, while merchants ask for
//! card refunds and crypto refunds and retry what they did not hear back
//! about (issue 14, "Done when"). Afterwards every refund exists once, the
//! sandbox processor refunded each card refund once, each crypto refund's
//! destination received exactly its amount on chain once, and the books
//! are exact (`epg ledger check`, `epg reconcile chain`).
//!
//! The node runs as a real `epg serve` process and dies by SIGKILL. Time
//! between a crash and a retry is simulated by letting the idempotency and
//! operation leases pass (an UPDATE), as the clock would after the lease.
//! The kill points are random with a seed printed at the start
//! (`EPG_KILL_SEED` replays one); `EPG_KILL_ROUNDS` changes the count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::merchants::{KeyKind, MerchantStore};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common;

/// Anvil's account #1: the customer.
const CUSTOMER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const CARD_PAYMENTS: usize = 3;
const CRYPTO_PAYMENTS: usize = 2;

/// One refund a merchant asked for: its key and body, and what it answered
/// when last asked (`None`: never heard back).
#[derive(Debug, Clone)]
struct Asked {
    key: String,
    body: Value,
    crypto: bool,
    answered: Option<Value>,
}

struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(config: &std::path::Path, wallet_key: &str) -> Node {
        let text = std::fs::read_to_string(config).unwrap();
        let listen = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let child = Command::new(env!("CARGO_BIN_EXE_epg"))
            .args(["serve", "--config"])
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EPG_WALLET_KEY", wallet_key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Node {
            child,
            url: format!("http://{listen}"),
        }
    }

    async fn ready(&self, client: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the node did not come up");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mine(rpc: &str, blocks: u64) {
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    let _: Value = provider
        .raw_request("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .unwrap();
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    idempotency: Option<&str>,
    body: &Value,
) -> Option<(u16, Value)> {
    let mut request = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .timeout(Duration::from_secs(10));
    if let Some(k) = idempotency {
        request = request.header("Idempotency-Key", k);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn fifty_kills_during_refunds_pay_every_refund_at_most_once() {
    let rounds: usize = std::env::var("EPG_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("EPG_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    println!("kill loop: {rounds} rounds, EPG_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // A devnet whose treasury is the node's hot wallet.
    let anvil = common::anvil().await;
    let rpc = anvil.rpc_url();
    let (deployment, mut chain, wallet) = common::deploy_with_hot_wallet(&anvil).await;
    let provider = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    chain.confirmations = 1;
    chain.fee_bump_after_secs = 3600;

    let (pool, database_url) = common::test_database().await;
    let merchants = MerchantStore::new(pool.clone());
    let merchant = merchants.create("Kill Loop").await.unwrap();
    let (_, sk) = merchants
        .create_key(&merchant.id, KeyKind::Secret, epg::config::Mode::Test)
        .await
        .unwrap();
    let sk = sk.secret;

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("epg.toml");
    let port = epg::devnet::anvil::free_port().unwrap();
    let chain_toml = toml::to_string(&json!({ "chains": [chain.clone()] })).unwrap();
    std::fs::write(
        &config_path,
        format!(
            "mode = \"test\"\n[server]\nlisten = \"127.0.0.1:{port}\"\ndev = true\n\
             request_timeout_secs = 10\nshutdown_grace_secs = 1\n\
             [database]\nurl = \"{database_url}\"\nmax_connections = 10\n\
             [security]\nmaster_key = \"{}\"\nrate_limit_per_second = 1000\n\
             rate_limit_burst = 1000\n[payments]\nexpiry_interval_secs = 1\n\
             [log]\nlevel = \"error\"\n{chain_toml}",
            epg::crypto::Keyring::generate_base64()
        ),
    )
    .unwrap();
    let wallet_key = format!("{:#x}", wallet.to_bytes());
    let client = reqwest::Client::new();

    // Payments to refund: card ones, and USDC ones paid through the router.
    let node = Node::start(&config_path, &wallet_key);
    node.ready(&client).await;
    let mut card_payments = Vec::new();
    for _ in 0..CARD_PAYMENTS {
        let (_, p) = post(
            &client,
            &format!("{}/v1/payments", node.url),
            &sk,
            None,
            &json!({"amount": 100_000, "currency": "usd"}),
        )
        .await
        .unwrap();
        let id = p["id"].as_str().unwrap().to_owned();
        let (status, _) = post(
            &client,
            &format!("{}/v1/payments/{id}/confirm", node.url),
            &sk,
            None,
            &json!({"payment_method": {"type": "card", "card":
                {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        card_payments.push(id);
    }
    let customer: PrivateKeySigner = CUSTOMER_KEY.parse().unwrap();
    let paying = ProviderBuilder::new()
        .wallet(EthereumWallet::from(customer))
        .connect_http(rpc.parse().unwrap());
    let usdc = DevStablecoin::new(deployment.stablecoin.unwrap(), &paying);
    let mut crypto_payments = Vec::new();
    for _ in 0..CRYPTO_PAYMENTS {
        let (_, p) = post(
            &client,
            &format!("{}/v1/payments", node.url),
            &sk,
            None,
            &json!({"amount": 100_000, "currency": "usd"}),
        )
        .await
        .unwrap();
        let id = p["id"].as_str().unwrap().to_owned();
        let (status, quote) = post(
            &client,
            &format!("{}/v1/payments/{id}/confirm", node.url),
            &sk,
            None,
            &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{quote}");
        let crypto = &quote["next_action"]["crypto"];
        let amount: U256 = crypto["amount"].as_str().unwrap().parse().unwrap();
        let reference: B256 = crypto["payment_reference"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        usdc.approve(deployment.router, amount)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        PaymentRouter::new(deployment.router, &paying)
            .pay(*usdc.address(), amount, reference)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        crypto_payments.push(id);
    }
    mine(&rpc, 2).await;
    for id in &crypto_payments {
        let mut status = String::new();
        for _ in 0..200 {
            let p: Value = client
                .get(format!("{}/v1/payments/{id}", node.url))
                .bearer_auth(&sk)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            status = p["status"].as_str().unwrap_or_default().to_owned();
            if status == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, "succeeded");
    }
    node.kill();

    // The loop: ask, retry what went unanswered, die at a random moment.
    let mut asked: Vec<Asked> = Vec::new();
    // How many rounds died with requests in flight, and how many requests
    // had to be asked again after a kill.
    let (mut killed_mid_request, mut retried) = (0usize, 0usize);
    for round in 0..rounds {
        let node = Node::start(&config_path, &wallet_key);
        node.ready(&client).await;
        for _ in 0..rng.gen_range(1..=3) {
            let crypto = rng.gen_bool(0.4);
            let payment = if crypto {
                &crypto_payments[rng.gen_range(0..CRYPTO_PAYMENTS)]
            } else {
                &card_payments[rng.gen_range(0..CARD_PAYMENTS)]
            };
            let mut body = json!({"payment": payment, "amount": rng.gen_range(1..=200)});
            if crypto {
                body["crypto_destination"] =
                    json!(format!("{:#x}", PrivateKeySigner::random().address()));
            }
            asked.push(Asked {
                key: format!("kill-{round}-{}", asked.len()),
                body,
                crypto,
                answered: None,
            });
        }
        let pending: Vec<usize> = (0..asked.len())
            .filter(|i| asked[*i].answered.is_none())
            .collect();
        retried += pending
            .iter()
            .filter(|i| !asked[**i].key.starts_with(&format!("kill-{round}-")))
            .count();
        let url = format!("{}/v1/refunds", node.url);
        let requests = pending.iter().map(|i| {
            let (client, url, sk, a) = (&client, &url, &sk, &asked[*i]);
            async move { post(client, url, sk, Some(&a.key), &a.body).await }
        });
        // Requests take tens of milliseconds: half the kills land among
        // them, the others later, while the hot wallet signs and sends.
        let kill_after = Duration::from_millis(if rng.gen_bool(0.5) {
            rng.gen_range(0..60)
        } else {
            rng.gen_range(0..400)
        });
        let answers = tokio::select! {
            answers = futures::future::join_all(requests) => Some(answers),
            () = tokio::time::sleep(kill_after) => None,
        };
        if let Some(answers) = answers {
            for (i, answer) in pending.iter().zip(answers) {
                if let Some((200, refund)) = answer {
                    asked[*i].answered = Some(refund);
                }
            }
            // Sometimes the kill comes while the hot wallet works.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        } else {
            killed_mid_request += 1;
        }
        node.kill();
        if rng.gen_bool(0.5) {
            mine(&rpc, 1).await;
        }
        // Time passes: claims of the dead node's requests run out.
        sqlx::query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE payment_operations SET locked_until = now() - interval '1 second'
              WHERE status = 'pending'",
        )
        .execute(&pool)
        .await
        .unwrap();
    }

    // The end: retry everything until answered, let the wallet finish.
    let node = Node::start(&config_path, &wallet_key);
    node.ready(&client).await;
    let url = format!("{}/v1/refunds", node.url);
    for a in &mut asked {
        // Up to a minute each: under a loaded machine a first try may still
        // be running (409) when the client gives up on it.
        for _ in 0..600 {
            match post(&client, &url, &sk, Some(&a.key), &a.body).await {
                Some((200, refund)) => {
                    a.answered = Some(refund);
                    break;
                }
                Some((409, _)) | None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some((status, body)) => panic!("refund {} answered {status}: {body}", a.key),
            }
        }
        assert!(a.answered.is_some(), "refund {} never answered", a.key);
    }
    for _ in 0..600 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refunds WHERE status = 'pending'
             UNION ALL SELECT count(*) FROM payment_operations WHERE status = 'pending'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .sum();
        if open == 0 {
            break;
        }
        mine(&rpc, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every refund once, by its key.
    let by_key: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT idempotency_key, count(*) FROM refunds GROUP BY idempotency_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(by_key.len(), asked.len(), "{by_key:?}");
    for a in &asked {
        assert_eq!(by_key.get(&format!("sk:{}", a.key)), Some(&1), "{}", a.key);
        let refund = a.answered.as_ref().unwrap();
        let status: String = sqlx::query_scalar("SELECT status FROM refunds WHERE id = $1")
            .bind(refund["id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(status, "succeeded", "refund {}", a.key);
    }
    // Card refunds: once each at the processor.
    let card: Vec<&Asked> = asked.iter().filter(|a| !a.crypto).collect();
    let (processor_refunds, processor_amount): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(amount), 0)::bigint FROM sandbox_processor_calls
          WHERE call = 'refund'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(processor_refunds, i64::try_from(card.len()).unwrap());
    let asked_amount: i64 = card
        .iter()
        .map(|a| a.body["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(processor_amount, asked_amount);
    // Crypto refunds: each destination received its amount, once.
    let token = DevStablecoin::new(deployment.stablecoin.unwrap(), &provider);
    for a in asked.iter().filter(|a| a.crypto) {
        let destination: Address = a.body["crypto_destination"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let units: U256 = a.answered.as_ref().unwrap()["crypto"]["amount"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let received = token.balanceOf(destination).call().await.unwrap();
        assert_eq!(received, units, "refund {} to {destination}", a.key);
    }
    let report = epg::ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "ledger check failed: {report:?}");
    // The node's watcher follows the chain to its head for the comparison.
    common::reconcile_clean(&pool, &chain).await;
    node.kill();
    println!(
        "kill loop: {rounds} kills ({killed_mid_request} with requests in flight, {retried} \
         requests asked again), {} refunds ({} card, {} crypto), seed {seed}",
        asked.len(),
        card.len(),
        asked.len() - card.len()
    );
}
