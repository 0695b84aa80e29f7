//! The chain watcher across restarts and outages: killed (task abort, the
//! in-process equivalent of SIGKILL: the step's transaction never commits)
//! between detection and confirmation, killed at random points while the
//! chain moves on, and an RPC endpoint that goes away and comes back —
//! nothing lost, nothing counted twice, `/readyz` telling the truth
//! meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::chain_support;
use crate::common;

use std::time::Duration;

use alloy::primitives::U256;
use chain_support::{
    Devnet, RecordingSink, assert_each_detected_and_confirmed_once, count, reference, rows,
    wait_until, watcher,
};
use epg::chain::watcher::{ChainState, HeadSource};
use epg::devnet::anvil::{Anvil, AnvilOptions};
use rand::Rng;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_watcher_killed_between_detection_and_confirmation_resumes_from_its_cursor() {
    let dev = Devnet::start(31337).await;
    let pool = common::test_db().await;
    let sink = RecordingSink::install(&pool).await;
    let payer = dev.payer(0).await;
    let chain = dev.chain(4);

    let (first, _, status) = watcher(chain.clone(), &pool, &sink);
    let task = tokio::spawn(first.run(CancellationToken::new()));
    for i in 0..3 {
        payer.pay_usdc(1_000_000 + i, reference(i)).await;
    }
    wait_until(WAIT, "3 detections", || async {
        count(&pool, "detected").await == 3
    })
    .await;
    wait_until(WAIT, "the subscription", || async {
        status.get(31337).unwrap().new_heads == HeadSource::Subscription
    })
    .await;
    assert_eq!(count(&pool, "confirmed").await, 0);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    // The chain moves on while no watcher runs.
    dev.mine(2).await;
    payer.pay_eth(U256::from(123_456u64), reference(10)).await;
    payer.pay_usdc(2_000_000, reference(11)).await;
    dev.mine(4).await;

    let (second, _, _) = watcher(chain, &pool, &sink);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(second.run(shutdown.clone()));
    wait_until(WAIT, "5 confirmations", || async {
        count(&pool, "confirmed").await == 5
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(assert_each_detected_and_confirmed_once(&pool).await, 5);
}

#[tokio::test]
async fn watchers_killed_at_random_points_lose_nothing_and_count_nothing_twice() {
    let dev = Devnet::start(31337).await;
    let pool = common::test_db().await;
    let sink = RecordingSink::install(&pool).await;
    let payer = dev.payer(0).await;
    let mut chain = dev.chain(3);
    // Small ranges: catching up takes many steps, so kills land inside them.
    chain.max_block_range = 2;

    let payments = 25u64;
    let paying = tokio::spawn(async move {
        for i in 0..payments {
            payer.pay_usdc(10_000 + i, reference(1000 + i)).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut kills = 0;
    while !paying.is_finished() || kills < 20 {
        let (w, _, _) = watcher(chain.clone(), &pool, &sink);
        let task = tokio::spawn(w.run(CancellationToken::new()));
        let pause = rand::thread_rng().gen_range(0..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        task.abort();
        let _ = task.await;
        kills += 1;
    }
    paying.await.unwrap();
    dev.mine(3).await;

    let (w, _, _) = watcher(chain, &pool, &sink);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(w.run(shutdown.clone()));
    wait_until(WAIT, "every confirmation", || async {
        count(&pool, "confirmed").await >= usize::try_from(payments).unwrap()
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        assert_each_detected_and_confirmed_once(&pool).await,
        usize::try_from(payments).unwrap(),
        "after {kills} kills"
    );
    assert_eq!(rows(&pool).await.len(), usize::try_from(payments).unwrap());
}

#[tokio::test]
async fn an_rpc_outage_backs_off_reports_unreachable_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("anvil-state.json");
    let port = epg::devnet::anvil::free_port().unwrap();
    let options = AnvilOptions {
        port,
        chain_id: 31337,
        state_file: Some(state_file.clone()),
        ..AnvilOptions::default()
    };
    let dev = Devnet::on(Anvil::start(options.clone()).await.unwrap()).await;
    let pool = common::test_db().await;
    let sink = RecordingSink::install(&pool).await;
    let payer = dev.payer(0).await;
    let chain = dev.chain(2);
    let (w, metrics, status) = watcher(chain, &pool, &sink);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(w.run(shutdown.clone()));

    payer.pay_usdc(3_000_000, reference(1)).await;
    wait_until(WAIT, "detection", || async {
        count(&pool, "detected").await == 1
    })
    .await;
    wait_until(WAIT, "healthy", || async {
        status.get(31337).unwrap().status == ChainState::Healthy
    })
    .await;

    // The endpoint goes away (anvil saves its chain and exits).
    let Devnet { anvil, deployment } = dev;
    anvil.stop().await;
    wait_until(WAIT, "unreachable", || async {
        let h = status.get(31337).unwrap();
        h.status == ChainState::Unreachable && h.consecutive_failures >= 3
    })
    .await;
    let before = status.get(31337).unwrap();
    assert!(before.last_error.is_some());
    assert_eq!(before.new_heads, HeadSource::Polling);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status.get(31337).unwrap();
    let tries = after.consecutive_failures - before.consecutive_failures;
    // With 50 ms polling and no back-off this would be ~40; capped at
    // 400 ms it is at most 5 or 6.
    assert!((1..=8).contains(&tries), "{tries} retries in 2 s");
    assert!(chain_support::counter(&metrics, "chain_rpc_failures") >= 3);

    // It comes back on the same port with the same chain.
    let dev = Devnet {
        anvil: Anvil::start(options).await.unwrap(),
        deployment,
    };
    let payer = dev.payer(1).await;
    payer.pay_eth(U256::from(777u64), reference(2)).await;
    dev.mine(2).await;
    wait_until(WAIT, "both confirmed", || async {
        count(&pool, "confirmed").await == 2
    })
    .await;
    wait_until(WAIT, "healthy again, on the subscription", || async {
        let h = status.get(31337).unwrap();
        h.status == ChainState::Healthy
            && h.last_error.is_none()
            && h.new_heads == HeadSource::Subscription
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(assert_each_detected_and_confirmed_once(&pool).await, 2);
    assert_eq!(chain_support::counter(&metrics, "chain_reorgs"), 0);
}

#[tokio::test]
async fn readyz_reports_every_chain_and_refuses_while_one_is_unreachable() {
    let dev = Devnet::start(31337).await;
    let live = dev.chain(2);
    let mut dead = dev.chain(2);
    dead.chain_id = 31338;
    let closed = epg::devnet::anvil::free_port().unwrap();
    dead.http_url = format!("http://127.0.0.1:{closed}/secret-api-key");
    dead.ws_url = None;
    let app = common::spawn_app_with(|c| c.chains = vec![live.clone(), dead.clone()]).await;
    let client = reqwest::Client::new();
    let readyz = || async {
        let r = client
            .get(format!("{}/readyz", app.address))
            .bearer_auth(common::OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };

    let mut body = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, b) = readyz().await;
        body = b;
        if body["checks"]["chains"]["31338"]["status"] == "unreachable"
            && body["checks"]["chains"]["31337"]["status"] == "healthy"
        {
            assert_eq!(status, 503);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead_check = &body["checks"]["chains"]["31338"];
    assert_eq!(dead_check["status"], "unreachable", "{body}");
    let error = dead_check["last_error"].as_str().unwrap();
    assert!(error.contains("eth_chainId"), "{error}");
    assert!(!error.contains("secret-api-key"), "{error}");
    let live_check = &body["checks"]["chains"]["31337"];
    assert_eq!(live_check["status"], "healthy", "{body}");
    assert_eq!(live_check["cursor"], live_check["head"]);
    assert_eq!(body["checks"]["database"]["status"], "ok");

    // Only the live chain: ready.
    let app = common::spawn_app_with(|c| c.chains = vec![live]).await;
    let url = format!("{}/readyz", app.address);
    wait_until(WAIT, "ready", || async {
        client.get(&url).send().await.unwrap().status().as_u16() == 200
    })
    .await;
}
