//! The mixed load: card payments (automatic and manual capture), refunds,
//! bank transfers and crypto payments paid on anvil, through the router or
//! by a plain ERC-20 transfer to the payment's deposit address, from
//! several workers at once, each logical request under its own
//! `Idempotency-Key` and retried until answered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use epg::chain::contracts::{DevStablecoin, PaymentRouter};
use epg::chain::deploy::Deployment;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::client::Client;

/// Anvil's account #1: the customer paying in USDC.
const CUSTOMER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

const CARD: &str = "4242424242424242";

#[derive(Clone)]
pub struct Load {
    client: Arc<Client>,
    rpc: String,
    deployment: Deployment,
    /// Card payments that succeeded: refundable.
    succeeded: Arc<Mutex<Vec<String>>>,
    /// Crypto payments paid on chain: each must end `succeeded`.
    crypto: Arc<Mutex<Vec<String>>>,
    /// One customer paying on chain at a time keeps its nonces in order;
    /// the chain faults take it too (see [`super::chain::Chain::lock`]).
    chain_lock: Arc<tokio::sync::Mutex<()>>,
    operations: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Load {
    pub fn new(
        client: Arc<Client>,
        rpc: &str,
        deployment: &Deployment,
        chain_lock: Arc<tokio::sync::Mutex<()>>,
    ) -> Self {
        Self {
            client,
            rpc: rpc.to_owned(),
            deployment: deployment.clone(),
            succeeded: Arc::default(),
            crypto: Arc::default(),
            chain_lock,
            operations: Arc::default(),
            stop: Arc::default(),
        }
    }

    /// Ends the load: each worker finishes its operation and returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn operations(&self) -> usize {
        self.operations.load(Ordering::Relaxed)
    }

    pub fn crypto_paid(&self) -> Vec<String> {
        self.crypto.lock().unwrap().clone()
    }

    /// Worker `w`: operations until [`Self::stop`].
    pub async fn run(&self, w: usize, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (w as u64 + 1));
        let mut n = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let key = format!("w{w}-{n}");
            let roll = rng.gen_range(0..100);
            let amount = rng.gen_range(1_000..20_000);
            let outcome = match roll {
                0..40 => self.card(&key, amount, false).await,
                40..60 => self.card(&key, amount, true).await,
                60..75 => self.refund(&key, &mut rng).await,
                75..90 => self.bank(&key, amount).await,
                90..95 => self.crypto(&key, amount, false).await,
                _ => self.crypto(&key, amount, true).await,
            };
            if let Err(e) = outcome {
                panic!("worker {w}, operation {key}: {e}");
            }
            self.operations.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn create(&self, key: &str, amount: u64, extra: Value) -> Result<String, String> {
        let mut body = json!({"amount": amount, "currency": "usd", "metadata": {"fault_key": key}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let payment = self
            .client
            .post("/v1/payments", &format!("{key}-create"), &body)
            .await
            .map_err(|e| format!("create: {e:?}"))?;
        self.client.ack("payment", &payment);
        Ok(payment["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn confirm(&self, key: &str, id: &str, method: Value) -> Result<Value, String> {
        let answer = match self
            .client
            .post(
                &format!("/v1/payments/{id}/confirm"),
                &format!("{key}-confirm"),
                &json!({ "payment_method": method }),
            )
            .await
        {
            Ok(answer) => answer,
            // An authorization the reconciler gave up (below), answered
            // as the failed payment it made: 402 `payment_failed`.
            Err((402, body))
                if body["error"]["payment"]["last_payment_error"]["code"] == "processing_error" =>
            {
                body["error"]["payment"].clone()
            }
            Err(e) => return Err(format!("confirm {id}: {e:?}")),
        };
        self.client.ack("payment", &answer);
        Ok(answer)
    }

    async fn card(&self, key: &str, amount: u64, manual: bool) -> Result<(), String> {
        let extra = if manual {
            json!({"capture_method": "manual"})
        } else {
            json!({})
        };
        let id = self.create(key, amount, extra).await?;
        let card = json!({"type": "card", "card":
            {"number": CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
        let mut confirmed = self.confirm(key, &id, card.clone()).await?;
        // A node killed between committing the authorization's intent and
        // calling the processor leaves a call the processor never saw: the
        // retry under the same key makes it. If the reconciler got to it
        // first (no retry within its lease), it gave it up as
        // `processing_error` (the security code is never stored, so only a
        // retry can make the call), and the customer confirms again, as the
        // API tells them to.
        let mut again = 0;
        while confirmed["status"] == "failed"
            && confirmed["last_payment_error"]["code"] == "processing_error"
            && again < 3
        {
            again += 1;
            eprintln!("faults: {key}: authorization given up after a crash; confirmed again");
            confirmed = self
                .confirm(&format!("{key}-again{again}"), &id, card.clone())
                .await?;
        }
        if manual {
            if confirmed["status"] != "requires_capture" {
                return Err(format!("manual capture: {confirmed}"));
            }
            let captured = self
                .client
                .post(
                    &format!("/v1/payments/{id}/capture"),
                    &format!("{key}-capture"),
                    &json!({}),
                )
                .await
                .map_err(|e| format!("capture {id}: {e:?}"))?;
            self.client.ack("payment", &captured);
        } else if confirmed["status"] != "succeeded" {
            return Err(format!("card: {confirmed}"));
        }
        self.succeeded.lock().unwrap().push(id);
        Ok(())
    }

    async fn refund(&self, key: &str, rng: &mut impl Rng) -> Result<(), String> {
        let payment = {
            let succeeded = self.succeeded.lock().unwrap();
            if succeeded.is_empty() {
                return Ok(());
            }
            succeeded[rng.gen_range(0..succeeded.len())].clone()
        };
        let body = json!({"payment": payment, "amount": rng.gen_range(1..=100),
                          "metadata": {"fault_key": key}});
        match self
            .client
            .post("/v1/refunds", &format!("{key}-refund"), &body)
            .await
        {
            Ok(refund) => {
                self.client.ack("refund", &refund);
                Ok(())
            }
            Err((status, body)) => Err(format!("refund: {status} {body}")),
        }
    }

    async fn bank(&self, key: &str, amount: u64) -> Result<(), String> {
        let id = self.create(key, amount, json!({})).await?;
        let confirmed = self
            .confirm(key, &id, json!({"type": "bank_transfer"}))
            .await?;
        if confirmed["status"] != "processing" {
            return Err(format!("bank transfer: {confirmed}"));
        }
        let cleared = self
            .client
            .post(
                &format!("/v1/test/bank_transfers/{id}/clear"),
                &format!("{key}-clear"),
                &json!({}),
            )
            .await
            .map_err(|e| format!("clear {id}: {e:?}"))?;
        self.client.ack("payment", &cleared);
        Ok(())
    }

    /// A crypto payment in dev USDC, paid through the router with its
    /// reference, or (`deposit`) by a plain transfer to its deposit address.
    async fn crypto(&self, key: &str, amount: u64, deposit: bool) -> Result<(), String> {
        let id = self.create(key, amount, json!({})).await?;
        let quote = self
            .confirm(
                key,
                &id,
                json!({"type": "crypto", "crypto": {"chain_id": 31337, "asset": "usdc"}}),
            )
            .await?;
        let crypto = &quote["next_action"]["crypto"];
        let units: U256 = crypto["amount"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("crypto quote: {quote}"))?;
        let reference: B256 = crypto["payment_reference"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("crypto quote: {quote}"))?;
        let _one_at_a_time = self.chain_lock.lock().await;
        let customer: PrivateKeySigner = CUSTOMER_KEY.parse().unwrap();
        let paying = ProviderBuilder::new()
            .wallet(EthereumWallet::from(customer))
            .connect_http(self.rpc.parse().unwrap());
        let usdc = DevStablecoin::new(self.deployment.stablecoin.unwrap(), &paying);
        if deposit {
            let to: Address = crypto["deposit_address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("crypto quote without a deposit address: {quote}"))?;
            usdc.transfer(to, units)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .get_receipt()
                .await
                .map_err(|e| e.to_string())?;
            self.crypto.lock().unwrap().push(id);
            return Ok(());
        }
        usdc.approve(self.deployment.router, units)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .get_receipt()
            .await
            .map_err(|e| e.to_string())?;
        PaymentRouter::new(self.deployment.router, &paying)
            .pay(*usdc.address(), units, reference)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .get_receipt()
            .await
            .map_err(|e| e.to_string())?;
        self.crypto.lock().unwrap().push(id);
        Ok(())
    }

    /// Mines past the confirmation depth until every crypto payment paid
    /// on chain is `succeeded` (bounded; the report says which are not).
    pub async fn settle_chain(&self, provider: &impl Provider) {
        for _ in 0..300 {
            let _: Value = provider
                .raw_request("anvil_mine".into(), ("0x1",))
                .await
                .unwrap();
            let mut open = 0;
            for id in self.crypto_paid() {
                let p = self.client.get(&format!("/v1/payments/{id}")).await;
                if p.map(|p| p["status"] != "succeeded").unwrap_or(true) {
                    open += 1;
                }
            }
            if open == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
