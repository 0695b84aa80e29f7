//! A JSON-RPC proxy in front of anvil that answers what the test tells it
//! to: the node under test talks to the proxy, the proxy forwards to anvil,
//! except for calls a rule matches. A rule can answer an error without
//! forwarding (the endpoint refused), forward and then answer an error (the
//! endpoint took it but the answer says otherwise, as a load balancer, a
//! timing-out gateway or another client's node may), answer a result of its
//! own (a stale backend), or forward and then make more calls upstream
//! before answering (the chain moves between two reads of the node).
//!
//! Rules apply in the order they were added; each matches a method (and
//! optionally its parameters), can skip its first matching calls, and
//! fires a given number of times. Batches are split and each call goes
//! through the rules.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

/// What a rule does with a call it matches.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answers this JSON-RPC error; anvil never sees the call.
    Error(String),
    /// Forwards the call, then answers this error instead of anvil's answer.
    ForwardThenError(String),
    /// Answers this result; anvil never sees the call.
    Result(Value),
    /// Forwards the call, makes these `(method, params)` calls upstream,
    /// then answers what anvil answered to the call.
    ForwardThenCall(Vec<(String, Value)>),
}

type Matcher = Box<dyn Fn(&Value) -> bool + Send + Sync>;

struct Rule {
    method: String,
    params: Option<Matcher>,
    skip: usize,
    times: usize,
    action: Action,
}

#[derive(Default)]
struct Rules {
    rules: Vec<Rule>,
    /// Every method called, in order.
    seen: Vec<String>,
    /// Rule firings by method.
    fired: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    rules: Arc<Mutex<Rules>>,
}

/// A running proxy; stops when dropped.
pub struct RpcProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A rule under construction: [`RpcProxy::on`], then [`RuleBuilder::then`].
pub struct RuleBuilder<'a> {
    proxy: &'a RpcProxy,
    rule: Rule,
}

impl RuleBuilder<'_> {
    /// Only calls whose `params` satisfy `matcher`.
    pub fn when(mut self, matcher: impl Fn(&Value) -> bool + Send + Sync + 'static) -> Self {
        self.rule.params = Some(Box::new(matcher));
        self
    }

    /// Lets the first `n` matching calls through untouched.
    pub fn skip(mut self, n: usize) -> Self {
        self.rule.skip = n;
        self
    }

    /// Fires `n` times (default once); `usize::MAX` for ever.
    pub fn times(mut self, n: usize) -> Self {
        self.rule.times = n;
        self
    }

    /// Arms the rule with `action`.
    pub fn then(mut self, action: Action) {
        self.rule.action = action;
        self.proxy
            .shared
            .rules
            .lock()
            .unwrap()
            .rules
            .push(self.rule);
    }
}

impl RpcProxy {
    /// A proxy forwarding to `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let shared = Shared {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            rules: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/", post(handle))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    /// A rule for calls of `method`.
    pub fn on(&self, method: &str) -> RuleBuilder<'_> {
        RuleBuilder {
            proxy: self,
            rule: Rule {
                method: method.to_owned(),
                params: None,
                skip: 0,
                times: 1,
                action: Action::Result(Value::Null),
            },
        }
    }

    /// Forgets every rule not yet spent: from now on, calls go through.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().rules.clear();
    }

    /// How many times rules fired for `method`.
    pub fn fired(&self, method: &str) -> usize {
        let rules = self.shared.rules.lock().unwrap();
        rules.fired.iter().filter(|m| *m == method).count()
    }

    /// How many calls of `method` arrived.
    pub fn calls(&self, method: &str) -> usize {
        let rules = self.shared.rules.lock().unwrap();
        rules.seen.iter().filter(|m| *m == method).count()
    }
}

/// An `eth_getTransactionCount` asking for the pending count.
pub fn pending_count(params: &Value) -> bool {
    params.get(1).and_then(Value::as_str) == Some("pending")
}

async fn handle(State(shared): State<Shared>, body: axum::body::Bytes) -> axum::Json<Value> {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = match request {
        Value::Array(calls) => {
            let mut answers = Vec::with_capacity(calls.len());
            for call in calls {
                answers.push(one(&shared, call).await);
            }
            Value::Array(answers)
        }
        call => one(&shared, call).await,
    };
    axum::Json(answer)
}

async fn forward(shared: &Shared, call: &Value) -> Value {
    match shared.client.post(&shared.upstream).json(call).send().await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32603, "message": e.to_string()}})
        }
    }
}

fn error(id: &Value, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}})
}

async fn one(shared: &Shared, call: Value) -> Value {
    let method = call["method"].as_str().unwrap_or_default().to_owned();
    let action = {
        let mut rules = shared.rules.lock().unwrap();
        rules.seen.push(method.clone());
        let params = call.get("params").cloned().unwrap_or(Value::Null);
        let hit = rules.rules.iter_mut().find(|r| {
            r.times > 0 && r.method == method && r.params.as_ref().is_none_or(|m| m(&params))
        });
        let action = match hit {
            Some(rule) if rule.skip > 0 => {
                rule.skip -= 1;
                None
            }
            Some(rule) => {
                rule.times = rule.times.saturating_sub(1);
                Some(rule.action.clone())
            }
            None => None,
        };
        if action.is_some() {
            rules.fired.push(method.clone());
        }
        action
    };
    let id = call["id"].clone();
    match action {
        None => forward(shared, &call).await,
        Some(Action::Error(message)) => error(&id, &message),
        Some(Action::Result(result)) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Some(Action::ForwardThenError(message)) => {
            forward(shared, &call).await;
            error(&id, &message)
        }
        Some(Action::ForwardThenCall(calls)) => {
            let answer = forward(shared, &call).await;
            for (method, params) in calls {
                forward(
                    shared,
                    &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
                )
                .await;
            }
            answer
        }
    }
}
