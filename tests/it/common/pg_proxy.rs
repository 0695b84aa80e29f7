//! A TCP proxy in front of PostgreSQL that can lose a transaction's COMMIT
//! on purpose, the way a crash or a failover does.
//!
//! The node connects to the proxy instead of the server. Armed with a
//! needle (a piece of SQL, such as `INSERT INTO refunds`), the proxy waits
//! for a connection to send a statement containing it, then acts on that
//! connection's next `COMMIT`:
//!
//! - [`Fault::DropBeforeCommit`]: the COMMIT never reaches the server, which
//!   rolls the transaction back when the connection drops (the node died
//!   before committing);
//! - [`Fault::DropAfterCommit`]: the COMMIT is forwarded and executed, but
//!   its acknowledgement never reaches the node (a lost answer: the node
//!   cannot know whether its transaction committed);
//! - [`Fault::LoseStatement`]: no COMMIT awaited; the statement with the
//!   needle itself never reaches the server (the connection died under it,
//!   as one does that the server closed while it sat idle in the pool).
//!
//! It reads just enough of the wire protocol to find message boundaries:
//! the untyped startup packets, then `type, length, payload` frames.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do with the COMMIT after the needle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both ends before the COMMIT is forwarded.
    DropBeforeCommit,
    /// Forward the COMMIT, wait for the server's answer, then close both
    /// ends without relaying it.
    DropAfterCommit,
    /// Close both ends instead of forwarding the needle's statement.
    LoseStatement,
}

#[derive(Debug, Default)]
struct Plan {
    armed: Option<(String, Fault)>,
    fired: usize,
}

/// The proxy; dropping it stops accepting (open connections live on).
#[derive(Debug, Clone)]
pub struct PgProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub port: u16,
    plan: Arc<Mutex<Plan>>,
}

impl PgProxy {
    /// A proxy to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let shared = plan.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, shared.clone()));
            }
        });
        Self { port, plan }
    }

    /// The URL of `database_url`'s database through this proxy.
    pub fn url(&self, database_url: &str) -> String {
        let (scheme_user, rest) = database_url.split_once('@').unwrap();
        let (_, path) = rest.split_once('/').unwrap();
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }

    /// Arms a one-shot fault at the first COMMIT following `needle` (at
    /// `needle` itself for [`Fault::LoseStatement`]).
    pub fn arm(&self, needle: &str, fault: Fault) {
        self.plan.lock().unwrap().armed = Some((needle.to_owned(), fault));
    }

    /// How many faults have fired.
    pub fn fired(&self) -> usize {
        self.plan.lock().unwrap().fired
    }
}

/// Reads one typed frame (`type`, 4-byte length including itself, payload).
async fn frame(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut out = head.to_vec();
    out.resize(1 + len, 0);
    stream.read_exact(&mut out[5..]).await.ok()?;
    Some(out)
}

/// Reads one untyped startup packet (4-byte length including itself).
async fn startup(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let n = u32::from_be_bytes(len) as usize;
    let mut out = len.to_vec();
    out.resize(n, 0);
    stream.read_exact(&mut out[4..]).await.ok()?;
    Some(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The NUL-terminated string at the start of `bytes`, and what follows it.
fn cstring(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

/// The SQL a client message runs: the text of a simple query or of a
/// Parse, or — for a Bind of a statement prepared earlier on the
/// connection, whose text is not resent — the text it was prepared with.
fn statement_text(
    message: &[u8],
    prepared: &mut std::collections::HashMap<Vec<u8>, Vec<u8>>,
) -> Option<Vec<u8>> {
    let body = &message[5..];
    match message[0] {
        b'Q' => Some(cstring(body).0.to_vec()),
        b'P' => {
            let (name, rest) = cstring(body);
            let (sql, _) = cstring(rest);
            prepared.insert(name.to_vec(), sql.to_vec());
            Some(sql.to_vec())
        }
        b'B' => {
            let (_portal, rest) = cstring(body);
            let (statement, _) = cstring(rest);
            prepared.get(statement).cloned()
        }
        _ => None,
    }
}

async fn relay(client: TcpStream, server: TcpStream, plan: Arc<Mutex<Plan>>) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // SSLRequest ('N' answer) then StartupMessage: relay byte for byte.
    let Some(first) = startup(&mut client_r).await else {
        return;
    };
    let ssl_request = first.len() == 8 && first[4..8] == [0x04, 0xd2, 0x16, 0x2f];
    if server_w.write_all(&first).await.is_err() {
        return;
    }
    if ssl_request {
        let mut answer = [0u8; 1];
        if server_r.read_exact(&mut answer).await.is_err()
            || client_w.write_all(&answer).await.is_err()
        {
            return;
        }
        let Some(startup_message) = startup(&mut client_r).await else {
            return;
        };
        if server_w.write_all(&startup_message).await.is_err() {
            return;
        }
    }
    // Server → client: plain copy, stoppable.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let downstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                _ = stop_rx.changed() => return (server_r, client_w),
                n = server_r.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return (server_r, client_w),
                    Ok(n) => {
                        if client_w.write_all(&buf[..n]).await.is_err() {
                            return (server_r, client_w);
                        }
                    }
                },
            }
        }
    });
    let mut needle_seen = false;
    let mut prepared = std::collections::HashMap::new();
    while let Some(message) = frame(&mut client_r).await {
        let sql = statement_text(&message, &mut prepared);
        let armed = plan.lock().unwrap().armed.clone();
        if let Some((needle, fault)) = armed {
            if sql
                .as_deref()
                .is_some_and(|sql| contains(sql, needle.as_bytes()))
            {
                needle_seen = true;
            }
            let is_commit = message[0] == b'Q' && contains(&message[5..], b"COMMIT");
            if needle_seen && fault == Fault::LoseStatement {
                {
                    let mut p = plan.lock().unwrap();
                    p.armed = None;
                    p.fired += 1;
                }
                let _ = stop_tx.send(true);
                return;
            }
            if needle_seen && is_commit {
                {
                    let mut p = plan.lock().unwrap();
                    p.armed = None;
                    p.fired += 1;
                }
                match fault {
                    Fault::DropBeforeCommit | Fault::LoseStatement => {
                        let _ = stop_tx.send(true);
                        return;
                    }
                    Fault::DropAfterCommit => {
                        // Stop relaying answers first, then let the COMMIT
                        // through and wait for the server to finish it.
                        let _ = stop_tx.send(true);
                        let Ok((mut server_r, _client_w)) = downstream.await else {
                            return;
                        };
                        if server_w.write_all(&message).await.is_err() {
                            return;
                        }
                        // CommandComplete, then ReadyForQuery: committed.
                        while let Some(reply) = frame(&mut server_r).await {
                            if reply[0] == b'Z' {
                                break;
                            }
                        }
                        return;
                    }
                }
            }
        }
        if server_w.write_all(&message).await.is_err() {
            break;
        }
    }
    let _ = stop_tx.send(true);
}
