//! On-chain refunds and payouts from the hot wallet, through the API and a
//! real anvil with the real contracts: a crypto payment is paid through
//! the router, refunded on-chain (ERC-20 and ETH, partial and in full,
//! concurrently), across a node restart, a transaction dropped from the
//! mempool and a fee bump; a settlement pays a crypto payout to the
//! merchant's address. After each, the ledger balances, `epg reconcile
//! chain` finds the treasury's on-chain balance equal to the ledger's, and
//! every transfer was made exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::rpc_proxy;

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use common::{TestApp, json, spawn_app_with, spawn_on};
use epg::chain::config::ChainConfig;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::chain::deploy::{self, DeployPlan, Deployment};
use epg::chain::reconcile::{self, Target};
use epg::db::Db;
use epg::devnet::anvil::{Anvil, DEV_KEY_0};
use rpc_proxy::{Action, RpcProxy};
use serde_json::{Value, json};

/// Anvil's default account #1 (public devnet key): the customer.
const CUSTOMER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

struct Setup {
    app: TestApp,
    anvil: Anvil,
    deployment: Deployment,
    chain: ChainConfig,
    /// The treasury's key: the node's hot wallet.
    wallet: PrivateKeySigner,
    /// The endpoint the node talks to, when it is not anvil itself.
    proxy: Option<RpcProxy>,
}

/// A devnet whose treasury is a fresh key nobody else uses (so its
/// balance moves only with payments, refunds, payouts and their gas), and
/// a node holding that key.
async fn setup(tweak: impl FnOnce(&mut epg::config::Config, &Deployment)) -> Setup {
    setup_with(false, tweak).await
}

/// As [`setup`], with the node reaching the chain through an [`RpcProxy`]
/// (`Setup::proxy`) that the test tells what to answer.
async fn setup_proxied(tweak: impl FnOnce(&mut epg::config::Config, &Deployment)) -> Setup {
    setup_with(true, tweak).await
}

async fn setup_with(
    proxied: bool,
    tweak: impl FnOnce(&mut epg::config::Config, &Deployment),
) -> Setup {
    let anvil = common::anvil().await;
    let wallet = PrivateKeySigner::random();
    let deployer: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let deployment = deploy::deploy(
        &anvil.rpc_url(),
        deployer.clone(),
        &DeployPlan {
            treasury: wallet.address(),
            admin: deployer.address(),
            anchorer: deployer.address(),
            dev_helpers: true,
            ..DeployPlan::default()
        },
    )
    .await
    .unwrap();
    // Gas money for the hot wallet, before the watcher's start block is
    // passed (reconciliation compares changes after it).
    let provider = provider(&anvil);
    let _: Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (wallet.address(), U256::from(10u128.pow(19))),
        )
        .await
        .unwrap();
    let mut chain = ChainConfig::devnet(&deployment, &anvil.rpc_url());
    chain.poll_interval_ms = 50;
    chain.retry_base_ms = 20;
    chain.retry_cap_ms = 400;
    chain.start_block = provider.get_block_number().await.unwrap() + 1;
    let proxy = if proxied {
        Some(RpcProxy::start(&anvil.rpc_url()).await)
    } else {
        None
    };
    let mut node_chain = chain.clone();
    if let Some(proxy) = &proxy {
        node_chain.http_url.clone_from(&proxy.url);
    }
    let key = format!("{:#x}", wallet.to_bytes());
    let app = spawn_app_with(|config| {
        config.chains = vec![node_chain];
        config.wallet.key = Some(key);
        tweak(config, &deployment);
    })
    .await;
    Setup {
        app,
        anvil,
        deployment,
        chain,
        wallet,
        proxy,
    }
}

fn provider(anvil: &Anvil) -> impl Provider + Clone + use<> {
    ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap())
}

async fn mine_on(anvil: &Anvil, blocks: u64) {
    let _: Value = provider(anvil)
        .raw_request("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .unwrap();
}

async fn usdc_on(anvil: &Anvil, deployment: &Deployment, who: Address) -> U256 {
    DevStablecoin::new(deployment.stablecoin.unwrap(), provider(anvil))
        .balanceOf(who)
        .call()
        .await
        .unwrap()
}

impl Setup {
    async fn mine(&self, blocks: u64) {
        mine_on(&self.anvil, blocks).await;
    }

    async fn automine(&self, on: bool) {
        let _: Value = provider(&self.anvil)
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    fn usdc(&self) -> Address {
        self.deployment.stablecoin.unwrap()
    }

    async fn usdc_of(&self, who: Address) -> U256 {
        usdc_on(&self.anvil, &self.deployment, who).await
    }

    async fn eth_of(&self, who: Address) -> U256 {
        provider(&self.anvil).get_balance(who).await.unwrap()
    }

    /// A crypto payment of `amount` cents in `asset`, paid in full and
    /// confirmed.
    async fn paid(&self, amount: i64, asset: &str) -> Value {
        let app = &self.app;
        let payment = json(
            app.post(
                "/v1/payments",
                &app.secret_key,
                &json!({"amount": amount, "currency": "usd"}),
            )
            .await,
            200,
        )
        .await;
        let id = payment["id"].as_str().unwrap().to_owned();
        let payment = json(
            app.post(
                &format!("/v1/payments/{id}/confirm"),
                &app.secret_key,
                &json!({"payment_method": {"type": "crypto", "crypto": {"chain_id": 31337, "asset": asset}}}),
            )
            .await,
            200,
        )
        .await;
        let transfer = &payment["next_action"]["crypto"];
        let reference: B256 = transfer["payment_reference"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let units: U256 = transfer["amount"].as_str().unwrap().parse().unwrap();
        let customer: PrivateKeySigner = CUSTOMER_KEY.parse().unwrap();
        let payer = ProviderBuilder::new()
            .wallet(EthereumWallet::from(customer))
            .connect_http(self.anvil.rpc_url().parse().unwrap());
        let router = PaymentRouter::new(self.deployment.router, &payer);
        if asset == "eth" {
            router
                .payNative(reference)
                .value(units)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        } else {
            DevStablecoin::new(self.usdc(), &payer)
                .approve(self.deployment.router, units)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            router
                .pay(self.usdc(), units, reference)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        }
        self.mine(self.chain.confirmations).await;
        self.until(&format!("/v1/payments/{id}"), |p| {
            p["status"] == "succeeded"
        })
        .await
    }

    /// A sandbox card payment of `amount` cents, succeeded.
    async fn card_payment(&self, amount: i64) -> Value {
        let app = &self.app;
        let payment = json(
            app.post(
                "/v1/payments",
                &app.secret_key,
                &json!({"amount": amount, "currency": "usd"}),
            )
            .await,
            200,
        )
        .await;
        let payment = json(
            app.post(
                &format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap()),
                &app.secret_key,
                &json!({"payment_method": {"type": "card", "card": {"number": "4242424242424242",
                        "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(payment["status"], "succeeded");
        payment
    }

    async fn refund(&self, body: Value) -> reqwest::Response {
        self.app
            .post("/v1/refunds", &self.app.secret_key, &body)
            .await
    }

    /// Polls `path` until `check` holds, mining a block now and then so
    /// that sends reach their confirmations.
    async fn until(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        for i in 0..400 {
            let value = json(self.app.get(path, &self.app.secret_key).await, 200).await;
            if check(&value) {
                return value;
            }
            if i % 5 == 4 {
                self.mine(1).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let txs: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT send_id, status, nonce, error FROM chain_send_txs ORDER BY created_at",
        )
        .fetch_all(&self.app.pool)
        .await
        .unwrap();
        let sends: Vec<(String, String, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT id, status, nonce, last_error FROM chain_sends ORDER BY created_at",
        )
        .fetch_all(&self.app.pool)
        .await
        .unwrap();
        panic!("{path} never reached the expected state; sends {sends:?}, transactions {txs:?}");
    }

    /// The ledger is consistent and the treasury's on-chain balance moved
    /// exactly as the ledger says.
    async fn books_balance(&self) {
        let report = epg::ledger::check(&self.app.pool).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        // Reconciliation reads up to the confirmed horizon: let the
        // watcher pass every block mined so far.
        self.mine(self.chain.confirmations).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let report =
            reconcile::reconcile(&self.app.pool, &[Target::from_config(&self.chain).unwrap()])
                .await
                .unwrap();
        assert!(report.is_ok(), "{report}");
    }
}

fn random_address() -> Address {
    PrivateKeySigner::random().address()
}

async fn sends(pool: &Db) -> Vec<(String, String, Option<i64>, Option<String>)> {
    sqlx::query_as(
        "SELECT object_id, status, nonce, tx_hash FROM chain_sends ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn txs_of(pool: &Db, object: &str) -> Vec<(String, String, rust_decimal::Decimal)> {
    sqlx::query_as(
        r#"SELECT t.tx_hash, t.status, t.max_fee_per_gas FROM chain_send_txs t
             JOIN chain_sends s ON s.id = t.send_id
            WHERE s.object_id = $1 ORDER BY t.created_at"#,
    )
    .bind(object)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn event_types(app: &TestApp) -> Vec<String> {
    let events = json(app.get("/v1/events?limit=100", &app.secret_key).await, 200).await;
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_usdc_refund_is_sent_on_chain_then_succeeds_and_the_books_match_the_chain() {
    let s = setup(|_, _| {}).await;
    let payment = s.paid(1234, "usdc").await;
    let id = payment["id"].as_str().unwrap();
    let destination = random_address();

    let refund = json(
        s.refund(json!({"payment": id, "amount": 234, "crypto_destination": format!("{destination:#x}")}))
            .await,
        200,
    )
    .await;
    assert_eq!(refund["status"], "pending");
    assert_eq!(refund["amount"], 234);
    assert_eq!(refund["crypto"]["asset"], "usdc");
    assert_eq!(refund["crypto"]["amount"], "2340000");
    assert_eq!(refund["crypto"]["transaction"], Value::Null);
    let refund_id = refund["id"].as_str().unwrap();

    let done = s
        .until(&format!("/v1/refunds/{refund_id}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    let tx: B256 = done["crypto"]["transaction"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let receipt = provider(&s.anvil)
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.from, s.wallet.address());
    assert_eq!(s.usdc_of(destination).await, U256::from(2_340_000u64));

    // The rest, with no amount: exactly what remains of the quote.
    let rest = json(
        s.refund(json!({"payment": id, "crypto_destination": format!("{destination:#x}")}))
            .await,
        200,
    )
    .await;
    assert_eq!(rest["amount"], 1000);
    assert_eq!(rest["crypto"]["amount"], "10000000");
    s.until(
        &format!("/v1/refunds/{}", rest["id"].as_str().unwrap()),
        |r| r["status"] == "succeeded",
    )
    .await;
    assert_eq!(s.usdc_of(destination).await, U256::from(12_340_000u64));
    let over = s
        .refund(
            json!({"payment": id, "amount": 1, "crypto_destination": format!("{destination:#x}")}),
        )
        .await;
    assert_eq!(over.status(), 409, "nothing is left to refund");

    let types = event_types(&s.app).await;
    assert_eq!(
        types.iter().filter(|t| *t == "refund.succeeded").count(),
        2,
        "{types:?}"
    );
    let all = sends(&s.app.pool).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, status, _, _)| status == "confirmed"));
    assert_eq!(all[0].2, Some(0));
    assert_eq!(all[1].2, Some(1));
    s.books_balance().await;
}

#[tokio::test]
async fn crypto_refund_requests_are_checked_before_anything_moves() {
    let s = setup(|_, _| {}).await;
    let crypto = s.paid(500, "usdc").await;
    let crypto_id = crypto["id"].as_str().unwrap();
    let cases = [
        (
            json!({"payment": crypto_id}),
            "crypto_destination",
            "give the address",
        ),
        (
            json!({"payment": crypto_id, "crypto_destination": "0x1234"}),
            "crypto_destination",
            "not an address",
        ),
        (
            json!({"payment": crypto_id, "crypto_destination": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267"}),
            "crypto_destination",
            "checksum",
        ),
        (
            json!({"payment": crypto_id, "crypto_destination": format!("{:#x}", Address::ZERO)}),
            "crypto_destination",
            "zero address",
        ),
        (
            json!({"payment": crypto_id, "amount": 501, "crypto_destination": format!("{:#x}", random_address())}),
            "amount",
            "greater than",
        ),
    ];
    for (body, param, message) in cases {
        let error = json(s.refund(body.clone()).await, 400).await;
        assert_eq!(error["error"]["param"], param, "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{body}: {error}"
        );
    }
    // A card payment has nowhere on-chain to go.
    let card = s.card_payment(700).await;
    let error = json(
        s.refund(json!({"payment": card["id"], "crypto_destination": format!("{:#x}", random_address())}))
            .await,
        400,
    )
    .await;
    assert_eq!(error["error"]["param"], "crypto_destination");
    assert!(sends(&s.app.pool).await.is_empty());
    let refunds = json(s.app.get("/v1/refunds", &s.app.secret_key).await, 200).await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn concurrent_eth_refunds_get_one_nonce_each_and_are_each_paid_once() {
    let s = setup(|_, _| {}).await;
    let payment = s.paid(1000, "eth").await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let destination = random_address();
    let before = s.eth_of(destination).await;
    let requests = (0..5).map(|_| {
        s.refund(json!({"payment": id, "amount": 200, "crypto_destination": format!("{destination:#x}")}))
    });
    let responses = futures::future::join_all(requests).await;
    let mut units = U256::ZERO;
    let mut ids = Vec::new();
    for response in responses {
        let refund = json(response, 200).await;
        units += refund["crypto"]["amount"]
            .as_str()
            .unwrap()
            .parse::<U256>()
            .unwrap();
        ids.push(refund["id"].as_str().unwrap().to_owned());
    }
    let quoted: U256 = payment["crypto"]["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(units, quoted, "five fifths are the whole quote");
    for refund in &ids {
        s.until(&format!("/v1/refunds/{refund}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    }
    assert_eq!(s.eth_of(destination).await - before, units);
    let mut nonces: Vec<i64> = sends(&s.app.pool)
        .await
        .into_iter()
        .map(|(_, _, nonce, _)| nonce.unwrap())
        .collect();
    nonces.sort_unstable();
    assert_eq!(nonces, [0, 1, 2, 3, 4]);
    for refund in &ids {
        assert_eq!(txs_of(&s.app.pool, refund).await.len(), 1);
    }
    s.books_balance().await;
}

#[tokio::test]
async fn a_send_survives_a_restart_and_a_drop_from_the_mempool_and_is_paid_once() {
    let s = setup(|_, _| {}).await;
    let payment = s.paid(900, "usdc").await;
    let destination = random_address();
    // Nothing gets mined from now on unless the test says so.
    s.automine(false).await;
    let refund = json(
        s.refund(
            json!({"payment": payment["id"], "crypto_destination": format!("{destination:#x}")}),
        )
        .await,
        200,
    )
    .await;
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let first = loop {
        let txs = txs_of(&s.app.pool, &refund_id).await;
        if let Some((hash, status, _)) = txs.first()
            && status == "broadcast"
        {
            break hash.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The node stops with the transaction in the mempool; the mempool
    // then loses it.
    let Setup {
        app,
        anvil,
        deployment,
        chain,
        ..
    } = s;
    let pool = app.pool.clone();
    let mut config = app.config.clone();
    app.stop().await;
    let dropped: Value = provider(&anvil)
        .raw_request("anvil_dropTransaction".into(), (first.clone(),))
        .await
        .unwrap();
    assert!(!dropped.is_null(), "the transaction was in the mempool");
    mine_on(&anvil, 5).await;
    assert_eq!(usdc_on(&anvil, &deployment, destination).await, U256::ZERO);

    // A new node broadcasts the same signed bytes again.
    config.chains[0].fee_bump_after_secs = 3600;
    let node = spawn_on(pool.clone(), config).await;
    let mined = loop {
        mine_on(&anvil, 1).await;
        let status: String = sqlx::query_scalar("SELECT status FROM refunds WHERE id = $1")
            .bind(&refund_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "succeeded" {
            break sends(&pool).await[0].3.clone().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mined, first, "the stored transaction, not a new payment");
    assert_eq!(txs_of(&pool, &refund_id).await.len(), 1);
    assert_eq!(
        usdc_on(&anvil, &deployment, destination).await,
        U256::from(9_000_000u64)
    );
    node.stop().await;
    let _: Value = provider(&anvil)
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .unwrap();
    let report = epg::ledger::check(&pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    mine_on(&anvil, chain.confirmations).await;
    let report = reconcile::reconcile(&pool, &[Target::from_config(&chain).unwrap()])
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_transaction_left_pending_is_replaced_with_higher_fees_and_only_one_is_mined() {
    let s = setup(|config, _| config.chains[0].fee_bump_after_secs = 1).await;
    let payment = s.paid(300, "usdc").await;
    let destination = random_address();
    s.automine(false).await;
    let refund = json(
        s.refund(
            json!({"payment": payment["id"], "crypto_destination": format!("{destination:#x}")}),
        )
        .await,
        200,
    )
    .await;
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let txs = loop {
        let txs = txs_of(&s.app.pool, &refund_id).await;
        if txs.len() >= 2 {
            break txs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(txs[0].1, "replaced");
    assert!(txs[1].2 >= txs[0].2 * rust_decimal::Decimal::new(125, 2));
    // While it waits, the refund points at the replacement, not at the
    // transaction it replaced.
    let waiting = s
        .until(&format!("/v1/refunds/{refund_id}"), |r| {
            r["crypto"]["transaction"].is_string()
        })
        .await;
    assert_eq!(waiting["status"], "pending");
    let shown = waiting["crypto"]["transaction"].as_str().unwrap();
    assert_ne!(shown, txs[0].0);
    let listed = json(
        s.app
            .get(
                &format!("/v1/refunds?payment={}", payment["id"].as_str().unwrap()),
                &s.app.secret_key,
            )
            .await,
        200,
    )
    .await;
    assert!(
        listed["data"][0]["crypto"]["transaction"].is_string(),
        "{listed}"
    );
    assert!(
        txs_of(&s.app.pool, &refund_id)
            .await
            .iter()
            .any(|(hash, _, _)| hash == shown)
    );
    s.automine(true).await;
    let done = s
        .until(&format!("/v1/refunds/{refund_id}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    let mined = done["crypto"]["transaction"].as_str().unwrap().to_owned();
    let ours: Vec<String> = txs_of(&s.app.pool, &refund_id)
        .await
        .into_iter()
        .map(|(hash, _, _)| hash)
        .collect();
    assert!(ours.contains(&mined));
    assert_eq!(s.usdc_of(destination).await, U256::from(3_000_000u64));
    s.books_balance().await;
}

#[tokio::test]
async fn a_settlement_pays_the_crypto_payout_on_chain() {
    let s = setup(|config, deployment| {
        config.settlement.anchor_rpc_url = config.chains[0].http_url.clone();
        config.settlement.anchor_contract = deployment.anchor.to_string();
        config.settlement.anchor_confirmations = 1;
        config.settlement.anchor_key = Some(DEV_KEY_0.to_owned());
    })
    .await;
    let payout_to = random_address();
    // Settled before the merchant has a payout address: the crypto stays
    // available in the treasury.
    s.paid(2500, "usdc").await;
    let first = json(
        s.app
            .post("/v1/test/settlements/run", &s.app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    assert!(first["id"].as_str().unwrap().starts_with("st_"), "{first}");
    let crypto_payouts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payouts WHERE asset <> 'usd'")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(crypto_payouts, 0);
    epg::merchants::MerchantStore::new(s.app.pool.clone())
        .set_payout_address(&s.app.merchant_id, Some(payout_to))
        .await
        .unwrap();
    // The next batch (only a card payment in it) pays the crypto out.
    s.card_payment(700).await;
    let settlement = json(
        s.app
            .post("/v1/test/settlements/run", &s.app.secret_key, &json!({}))
            .await,
        200,
    )
    .await;
    assert!(
        settlement["totals"]["usdc:31337"]["paid_out"].is_string(),
        "{settlement}"
    );
    // The merchant follows the payout on the settlement.
    let path = format!("/v1/settlements/{}", settlement["id"].as_str().unwrap());
    let crypto_payout = |settlement: &Value| {
        settlement["payouts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["asset"] == "usdc:31337")
            .cloned()
            .unwrap()
    };
    let pending = crypto_payout(&settlement);
    assert_eq!(pending["status"], "pending", "{settlement}");
    assert_eq!(pending["destination"], format!("{payout_to:#x}"));
    assert_eq!(pending["tx_hash"], Value::Null);
    let mut payout = pending;
    for _ in 0..200 {
        if payout["status"] == "paid" {
            break;
        }
        s.mine(1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        payout = crypto_payout(&json(s.app.get(&path, &s.app.secret_key).await, 200).await);
    }
    assert_eq!(payout["status"], "paid", "{payout}");
    assert_eq!(payout["tx_hash"].as_str().unwrap().len(), 66);
    let amount = payout["amount"].as_str().unwrap().to_owned();
    let listed = json(s.app.get("/v1/settlements", &s.app.secret_key).await, 200).await;
    assert_eq!(crypto_payout(&listed["data"][0]), payout, "{listed}");
    // 25 USDC less the crypto fee.
    let paid = s.usdc_of(payout_to).await;
    assert_eq!(paid.to_string(), amount);
    assert!(paid > U256::ZERO && paid <= U256::from(25_000_000u64));
    s.books_balance().await;
}

#[tokio::test]
async fn a_refund_whose_transfer_reverts_fails_and_the_money_returns_to_the_merchant() {
    let s = setup(|_, _| {}).await;
    let payment = s.paid(800, "usdc").await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let balance = |b: Value| {
        b["pending"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["currency"] == "usdc")
            .map(|x| x["amount"].as_str().unwrap().to_owned())
    };
    let before = balance(json(s.app.get("/v1/balance", &s.app.secret_key).await, 200).await);
    s.automine(false).await;
    let refund = json(
        s.refund(json!({"payment": id, "amount": 300, "crypto_destination": format!("{:#x}", random_address())}))
            .await,
        200,
    )
    .await;
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    while txs_of(&s.app.pool, &refund_id)
        .await
        .first()
        .is_none_or(|(_, status, _)| status != "broadcast")
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The treasury's tokens vanish before the transfer is mined: OpenZeppelin's
    // ERC20 keeps balances in a mapping at slot 0.
    let slot = alloy::primitives::keccak256((s.wallet.address(), U256::ZERO).abi_encode());
    let held: U256 = provider(&s.anvil)
        .get_storage_at(s.usdc(), slot.into())
        .await
        .unwrap();
    assert_eq!(
        held,
        s.usdc_of(s.wallet.address()).await,
        "the balance slot"
    );
    let _: Value = provider(&s.anvil)
        .raw_request("anvil_setStorageAt".into(), (s.usdc(), slot, B256::ZERO))
        .await
        .unwrap();
    s.automine(true).await;
    let failed = s
        .until(&format!("/v1/refunds/{refund_id}"), |r| {
            r["status"] == "failed"
        })
        .await;
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("reverted")
    );
    let tx: B256 = failed["crypto"]["transaction"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let receipt = provider(&s.anvil)
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .unwrap();
    assert!(!receipt.status(), "mined and reverted");
    // Back in the merchant's balance, and refundable again.
    let after = balance(json(s.app.get("/v1/balance", &s.app.secret_key).await, 200).await);
    assert_eq!(after, before);
    let payment = json(
        s.app
            .get(&format!("/v1/payments/{id}"), &s.app.secret_key)
            .await,
        200,
    )
    .await;
    assert_eq!(payment["amount_refunded"], 0);
    assert!(
        event_types(&s.app)
            .await
            .contains(&"refund.failed".to_owned())
    );
    let (status, gas): (String, Option<rust_decimal::Decimal>) =
        sqlx::query_as("SELECT status, gas_fee FROM chain_sends")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(
        gas.unwrap() > rust_decimal::Decimal::ZERO,
        "the gas was paid"
    );
    let report = epg::ledger::check(&s.app.pool).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// The hash of the first transaction of `refund` that reaches `status`.
async fn first_tx_with_status(pool: &Db, refund: &str, status: &str) -> String {
    loop {
        let txs = txs_of(pool, refund).await;
        if let Some((hash, _, _)) = txs.iter().find(|(_, s, _)| s == status) {
            return hash.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A refund of `amount` cents of `payment` to `destination`, pending.
async fn refund_to(s: &Setup, payment: &Value, amount: i64, destination: Address) -> String {
    let refund = json(
        s.refund(json!({"payment": payment["id"], "amount": amount,
                        "crypto_destination": format!("{destination:#x}")}))
            .await,
        200,
    )
    .await;
    assert_eq!(refund["status"], "pending");
    refund["id"].as_str().unwrap().to_owned()
}

/// Each refund's transaction was the only one it signed, and the nonces
/// are one each, in order.
async fn each_paid_by_one_transaction(pool: &Db, refunds: &[String]) {
    for refund in refunds {
        let txs = txs_of(pool, refund).await;
        assert_eq!(txs.len(), 1, "{refund}: {txs:?}");
    }
    let nonces: Vec<Option<i64>> = sends(pool).await.into_iter().map(|s| s.2).collect();
    let expected: Vec<Option<i64>> = (0..i64::try_from(refunds.len()).unwrap())
        .map(Some)
        .collect();
    assert_eq!(nonces, expected);
}

/// The endpoint took the transaction (anvil mined it) but answered an
/// error the node does not know: another client's "existing tx with same
/// hash", a gateway's "context deadline exceeded", a proxy's reset. The
/// outcome is unknown, so the transaction is tracked, and found mined;
/// nothing is signed again at another nonce.
#[tokio::test]
async fn a_broadcast_error_the_node_does_not_understand_never_makes_it_pay_twice() {
    let s = setup_proxied(|_, _| {}).await;
    let proxy = s.proxy.as_ref().unwrap();
    let payment = s.paid(900, "usdc").await;
    let destination = random_address();
    let mut refunds = Vec::new();
    for message in [
        "existing tx with same hash",
        "context deadline exceeded",
        "upstream connect error or disconnect/reset before headers",
    ] {
        proxy
            .on("eth_sendRawTransaction")
            .then(Action::ForwardThenError(message.into()));
        let refund = refund_to(&s, &payment, 300, destination).await;
        s.until(&format!("/v1/refunds/{refund}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
        refunds.push(refund);
        s.mine(3).await;
        assert_eq!(
            s.usdc_of(destination).await,
            U256::from(3_000_000 * u64::try_from(refunds.len()).unwrap()),
            "each refund paid once ({message})"
        );
    }
    assert_eq!(proxy.fired("eth_sendRawTransaction"), 3);
    each_paid_by_one_transaction(&s.app.pool, &refunds).await;
    s.books_balance().await;
}

/// "insufficient funds" from an endpoint that passed the transaction on
/// all the same (anvil mined it): the chain's pending count shows the
/// nonce used, so it is not given back and the send is not signed again.
#[tokio::test]
async fn a_refusal_while_the_chain_shows_the_nonce_used_keeps_the_nonce_and_pays_once() {
    let s = setup_proxied(|_, _| {}).await;
    let proxy = s.proxy.as_ref().unwrap();
    // Enough for a second transfer: a double payment shows in the balance.
    let payment = s.paid(1400, "usdc").await;
    let destination = random_address();
    proxy
        .on("eth_sendRawTransaction")
        .then(Action::ForwardThenError(
            "insufficient funds for gas * price + value".into(),
        ));
    let refund = refund_to(&s, &payment, 700, destination).await;
    s.until(&format!("/v1/refunds/{refund}"), |r| {
        r["status"] == "succeeded"
    })
    .await;
    assert_eq!(proxy.fired("eth_sendRawTransaction"), 1);
    s.mine(3).await;
    assert_eq!(s.usdc_of(destination).await, U256::from(7_000_000u64));
    each_paid_by_one_transaction(&s.app.pool, std::slice::from_ref(&refund)).await;
    s.books_balance().await;
}

/// A transaction the endpoint refused before it went anywhere (and the
/// chain agrees its nonce is unused) gives the nonce back; the send is
/// signed again at the same nonce and paid once.
#[tokio::test]
async fn a_transaction_refused_before_it_left_gives_its_nonce_back_and_is_paid_once() {
    let s = setup_proxied(|_, _| {}).await;
    let proxy = s.proxy.as_ref().unwrap();
    let payment = s.paid(400, "usdc").await;
    let destination = random_address();
    proxy.on("eth_sendRawTransaction").then(Action::Error(
        "insufficient funds for gas * price + value".into(),
    ));
    let refund = refund_to(&s, &payment, 400, destination).await;
    let done = s
        .until(&format!("/v1/refunds/{refund}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    assert_eq!(s.usdc_of(destination).await, U256::from(4_000_000u64));
    let txs = txs_of(&s.app.pool, &refund).await;
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(txs[0].1, "rejected");
    assert_eq!(
        done["crypto"]["transaction"].as_str(),
        Some(txs[1].0.as_str())
    );
    assert_eq!(sends(&s.app.pool).await[0].2, Some(0), "the same nonce");
    s.books_balance().await;
}

/// An endpoint behind a load balancer refuses a transaction that another
/// of its backends took, and reports a stale pending count: the node gives
/// the nonce back and signs the send again at that nonce. The refused
/// transaction is mined after all. The tracker looks for receipts of every
/// transaction the send ever signed, rejected ones included, so it finds
/// that one and never signs a third at a new nonce.
#[tokio::test]
async fn a_rejected_transaction_mined_after_all_finishes_its_send_and_nothing_is_sent_again() {
    let s = setup_proxied(|_, _| {}).await;
    let proxy = s.proxy.as_ref().unwrap();
    let payment = s.paid(1200, "usdc").await;
    let destination = random_address();
    s.automine(false).await;
    proxy
        .on("eth_sendRawTransaction")
        .then(Action::ForwardThenError(
            "insufficient funds for gas * price + value".into(),
        ));
    proxy
        .on("eth_getTransactionCount")
        .when(rpc_proxy::pending_count)
        .skip(1)
        .times(usize::MAX)
        .then(Action::Result(json!("0x0")));
    let refund = refund_to(&s, &payment, 600, destination).await;
    let refused = first_tx_with_status(&s.app.pool, &refund, "rejected").await;
    // Signed again at the nonce given back; anvil keeps the first one.
    while txs_of(&s.app.pool, &refund).await.len() < 2 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.automine(true).await;
    let done = s
        .until(&format!("/v1/refunds/{refund}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    s.mine(5).await;
    assert_eq!(s.usdc_of(destination).await, U256::from(6_000_000u64));
    assert_eq!(
        done["crypto"]["transaction"].as_str(),
        Some(refused.as_str())
    );
    assert_eq!(txs_of(&s.app.pool, &refund).await.len(), 2);
    s.books_balance().await;
}

/// The tracker reads a receipt (none yet), then the head and the nonce
/// counts. The transaction is mined in between, so the counts say the
/// nonce is used and, with `confirmations = 1`, deep enough. The tracker
/// reads the receipts of the send again before it gives up on them, finds
/// its own transaction, and never signs the send again.
#[tokio::test]
async fn a_transaction_mined_while_the_tracker_reads_the_nonce_is_not_paid_again() {
    let mut s = setup_proxied(|config, _| config.chains[0].confirmations = 1).await;
    s.chain.confirmations = 1;
    let payment = s.paid(1000, "usdc").await;
    let destination = random_address();
    s.automine(false).await;
    let refund = refund_to(&s, &payment, 500, destination).await;
    first_tx_with_status(&s.app.pool, &refund, "broadcast").await;
    let proxy = s.proxy.as_ref().unwrap();
    proxy
        .on("eth_getTransactionReceipt")
        .then(Action::ForwardThenCall(vec![(
            "evm_mine".into(),
            json!([]),
        )]));
    while proxy.fired("eth_getTransactionReceipt") == 0 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.automine(true).await;
    s.until(&format!("/v1/refunds/{refund}"), |r| {
        r["status"] == "succeeded"
    })
    .await;
    s.mine(3).await;
    assert_eq!(s.usdc_of(destination).await, U256::from(5_000_000u64));
    each_paid_by_one_transaction(&s.app.pool, std::slice::from_ref(&refund)).await;
    s.books_balance().await;
}

/// Two nodes hold the hot wallet's key and work the same queue: refunds
/// asked of either are each paid once, at nonces one after the other.
#[tokio::test]
async fn two_nodes_with_the_hot_wallet_pay_each_refund_once() {
    let s = setup(|_, _| {}).await;
    let second = spawn_on(s.app.pool.clone(), s.app.config.clone()).await;
    let payment = s.paid(1800, "usdc").await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let destination = random_address();
    let body =
        json!({"payment": id, "amount": 300, "crypto_destination": format!("{destination:#x}")});
    let requests = (0..6).map(|n| {
        let node = if n % 2 == 0 { &s.app } else { &second };
        node.post("/v1/refunds", &s.app.secret_key, &body)
    });
    let mut refunds = Vec::new();
    for response in futures::future::join_all(requests).await {
        refunds.push(json(response, 200).await["id"].as_str().unwrap().to_owned());
    }
    for refund in &refunds {
        s.until(&format!("/v1/refunds/{refund}"), |r| {
            r["status"] == "succeeded"
        })
        .await;
    }
    s.mine(3).await;
    assert_eq!(s.usdc_of(destination).await, U256::from(18_000_000u64));
    for refund in &refunds {
        assert_eq!(txs_of(&s.app.pool, refund).await.len(), 1, "{refund}");
    }
    let mut nonces: Vec<i64> = sends(&s.app.pool)
        .await
        .into_iter()
        .map(|(_, _, nonce, _)| nonce.unwrap())
        .collect();
    nonces.sort_unstable();
    assert_eq!(nonces, [0, 1, 2, 3, 4, 5]);
    let types = event_types(&s.app).await;
    assert_eq!(
        types.iter().filter(|t| *t == "refund.succeeded").count(),
        6,
        "{types:?}"
    );
    second.stop().await;
    s.books_balance().await;
}
