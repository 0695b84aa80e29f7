//! A TCP proxy that can cut every connection through it, to stand for a
//! network that drops them: used between the nodes and anvil by the fault
//! suite (the RPC cut) and between a node and PostgreSQL by the tests of
//! requests whose connection broke.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy that forwards to a fixed upstream port, and while cut
/// drops every open connection and closes each new one at once.
pub struct CutProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped on each cut: open connections watch it and drop.
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let accept_cut = cut.clone();
        let accept_generation = generation.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if accept_cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut dropped = accept_generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = dropped.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            generation,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts (or restores) the link: every open connection is dropped.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
