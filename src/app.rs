//! The running node: HTTP server plus background jobs, with one shutdown
//! signal for all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::db::Db;
use crate::idempotency::IdempotencyStore;
use crate::merchants::MerchantStore;
use crate::telemetry::metrics::Metrics;

/// Errors starting or running the node.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A configured chain (settlement's anchor, a chain's assets) cannot be used.
    #[error("chain configuration: {0}")]
    Anchor(String),
    /// The same, because of the error beneath.
    #[error("chain configuration: {what}")]
    Chain {
        /// What cannot be used.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The anchorer cannot reach its contract.
    #[error("settlement: the anchorer cannot start")]
    Anchorer(#[source] crate::transparency::anchor::AnchorError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Live mode with a setting that would put money or card data at risk.
    #[error("refusing to start in live mode: config key `{key}`: {message}")]
    Unsafe {
        /// The key at fault.
        key: String,
        /// Why.
        message: String,
    },
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::server::TlsError),
    /// The listener could not be bound or served.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A node that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    /// The hot wallet's key, when configured.
    wallet: Option<alloy::signers::local::PrivateKeySigner>,
    /// HTTPS, when the node serves it itself.
    tls: Option<crate::server::tls::Acceptor>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to the database, applies migrations, binds the listener.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let pool =
            crate::db::connect(&config.database.url, config.database.max_connections).await?;
        crate::db::migrate(pool.pool()).await?;
        Self::build_with_pool(config, pool).await
    }

    /// As [`Application::build`] on an existing (migrated) pool.
    pub async fn build_with_pool(config: Config, pool: Db) -> Result<Self, AppError> {
        if let Some((key, message)) = config.live_problem() {
            return Err(AppError::Unsafe { key, message });
        }
        let tls = config
            .server
            .tls_files()
            .map(crate::server::tls::Acceptor::new)
            .transpose()?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| AppError::Listen { addr, source })?;
        let lease = config.request_timeout() + Duration::from_secs(30);
        register_chain_assets(&pool, &config).await?;
        let settlement = settlement_context(&config).await?;
        let wallet = config
            .wallet
            .signer()
            .map_err(|(key, message)| AppError::Anchor(format!("{key}: {message}")))?;
        let wallet_chains = wallet.as_ref().map_or_else(Vec::new, |signer| {
            crate::chain::sender::sendable_chains(&config.chains, signer)
        });
        let keys = config.keyring()?;
        let livemode = config.mode == crate::config::Mode::Live;
        crate::bank::config::register(&pool, &config.bank.accounts(), livemode).await?;
        let bank = crate::bank::connector::Iso20022::new(
            pool.clone(),
            config.bank.accounts(),
            keys.sealer(crate::crypto::Purpose::BankAccounts),
        );
        // The watchers write it; /readyz and crypto quotes read it.
        let chains = Arc::new(crate::chain::watcher::ChainStatus::new(
            config.chains.iter().map(|c| c.chain_id),
        ));
        let state = AppState::new(api::Shared {
            rate_limiter: Arc::new(api::rate_limit::RateLimiter::new(
                config.security.rate_limit_per_second,
                config.security.rate_limit_burst,
            )),
            merchants: MerchantStore::new(pool.clone()),
            idempotency: IdempotencyStore::new(pool.clone(), lease, &keys),
            metrics: Arc::new(Metrics::default()),
            events: crate::events::Bus::new(),
            payments: crate::payments::Payments::new(
                pool.clone(),
                Arc::new(crate::methods::Connectors::configured_with_bank(
                    &config.processors,
                    config.mode,
                    pool.clone(),
                    Some(bank),
                )),
                &keys,
                config.mode == crate::config::Mode::Live,
                time::Duration::hours(
                    i64::try_from(config.payments.authorization_ttl_hours).unwrap_or(168),
                ),
                if config.payments.public_url.is_empty() {
                    let scheme = match config.server.tls {
                        crate::config::TlsMode::Off => "http",
                        _ => "https",
                    };
                    format!("{scheme}://{address}")
                } else {
                    config.payments.public_url.clone()
                },
                config.chains.clone(),
            )
            .with_wallet_chains(wallet_chains)
            .with_max_confirm_attempts(config.payments.max_confirm_attempts)
            // A processor call in flight is its request's for as long as the
            // request may live; after that, a retry or the reconciler may
            // resume it.
            .with_operation_lease(lease)
            .with_chain_status(chains.clone()),
            settlement,
            chains,
            public_pool: crate::db::sibling(
                &pool,
                config.database.public_max_connections,
                crate::db::is_multi_host(&config.database.url),
            ),
            proxies: Arc::new(config.server.proxies()),
            public_limiter: Arc::new(api::rate_limit::RateLimiter::new(
                config.security.public_rate_limit_per_second,
                config.security.public_rate_limit_burst,
            )),
            auth_failures: Arc::new(api::rate_limit::RateLimiter::per_minute(
                config.security.failed_auth_per_minute,
                config.security.failed_auth_per_minute,
            )),
            streams: Arc::new(api::stream_slots::StreamSlots::new(
                config.server.max_streams,
                config.server.max_streams_per_ip,
                config.server.max_streams_per_payment,
            )),
            keys,
            config: Arc::new(config),
            pool,
        });
        Ok(Self {
            listener,
            address,
            state,
            wallet,
            tls,
        })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state, e.g. for tests that inspect the pool.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// in-flight requests finish (up to the configured grace), and stops
    /// the background jobs.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let server_config = &self.state.config.server;
        let grace = Duration::from_secs(server_config.shutdown_grace_secs);
        let options = crate::server::ServeOptions {
            header_read_timeout: Duration::from_secs(server_config.header_read_timeout_secs),
            handshake_timeout: Duration::from_secs(server_config.header_read_timeout_secs),
            max_connections: server_config.max_connections,
            grace,
        };
        let mut jobs = JoinSet::new();
        spawn_jobs(&mut jobs, &self.state, self.wallet.as_ref(), &shutdown);
        if let Some(acceptor) = &self.tls {
            jobs.spawn(crate::server::tls::reload_on_sighup(
                acceptor.clone(),
                shutdown.clone(),
            ));
        }

        let app = api::router(self.state.clone());
        crate::server::serve(self.listener, app, self.tls, options, shutdown.clone()).await;
        if tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            jobs.abort_all();
        }
        self.state.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Registers every configured chain asset (`usdc:31337`) in the asset
/// table, so ledger accounts and crypto quotes can use it.
async fn register_chain_assets(pool: &Db, config: &Config) -> Result<(), AppError> {
    let registry = crate::money::AssetRegistry::new();
    let mut conn = pool.acquire().await?;
    for chain in &config.chains {
        for asset in &chain.assets {
            registry
                .register_chain_asset(&mut conn, &asset.chain_asset(chain.chain_id))
                .await
                .map_err(|e| AppError::Chain {
                    what: format!("chain {} asset {}", chain.chain_id, asset.symbol),
                    source: Box::new(e),
                })?;
        }
    }
    Ok(())
}

/// The transparency log and anchorer, when `settlement.anchor_*` is set.
async fn settlement_context(
    config: &Config,
) -> Result<Option<Arc<api::SettlementContext>>, AppError> {
    let st = &config.settlement;
    if st.anchor_rpc_url.is_empty() {
        return Ok(None);
    }
    let contract: alloy::primitives::Address =
        st.anchor_contract.parse().map_err(|e| AppError::Chain {
            what: "settlement.anchor_contract".into(),
            source: Box::new(e),
        })?;
    let chain_id = crate::chain::deploy::chain_id(&st.anchor_rpc_url)
        .await
        .map_err(|e| AppError::Chain {
            what: "settlement.anchor_rpc_url".into(),
            source: Box::new(e),
        })?;
    // A log moved to a new anchor keeps the name its leaves carry.
    let origin = if st.log_origin.is_empty() {
        crate::transparency::origin_for_anchor(chain_id, contract)
    } else {
        st.log_origin.clone()
    };
    let log = crate::transparency::TransparencyLog::new(origin).map_err(|e| AppError::Chain {
        what: "settlement.log_origin".into(),
        source: Box::new(e),
    })?;
    let anchorer = match &st.anchor_key {
        None => {
            tracing::warn!(
                "EPG_ANCHOR_KEY is not set: settlements will wait for a node that can anchor"
            );
            None
        }
        Some(key) => {
            let signer: alloy::signers::local::PrivateKeySigner = key
                .trim()
                .parse()
                .map_err(|_| AppError::Anchor("EPG_ANCHOR_KEY is not a hex private key".into()))?;
            let options = crate::transparency::anchor::AnchorOptions {
                confirmations: st.anchor_confirmations,
                ..Default::default()
            };
            Some(
                crate::transparency::anchor::Anchorer::connect(
                    &st.anchor_rpc_url,
                    contract,
                    signer,
                    options,
                )
                .await
                .map_err(AppError::Anchorer)?,
            )
        }
    };
    Ok(Some(Arc::new(api::SettlementContext { log, anchorer })))
}

/// Background jobs of the node, each stopping when `shutdown` fires.
fn spawn_jobs(
    jobs: &mut JoinSet<()>,
    state: &AppState,
    wallet: Option<&alloy::signers::local::PrivateKeySigner>,
    shutdown: &CancellationToken,
) {
    let bank = &state.config.bank;
    if !bank.inbox_dir.is_empty() || !bank.outbox_dir.is_empty() {
        jobs.spawn(
            crate::bank::watcher::Watcher {
                pool: state.pool.clone(),
                config: bank.clone(),
                sealer: state.keys.sealer(crate::crypto::Purpose::BankAccounts),
                livemode: state.config.mode == crate::config::Mode::Live,
            }
            .run(shutdown.clone()),
        );
    }
    jobs.spawn(crate::events::bus::listen(
        state.pool.clone(),
        state.events.clone(),
        shutdown.clone(),
    ));
    match crate::webhooks::worker::Worker::new(
        state.pool.clone(),
        state.events.clone(),
        state.metrics.clone(),
        &state.config,
    ) {
        Ok(worker) => {
            jobs.spawn(worker.run(shutdown.clone()));
        }
        Err(e) => tracing::error!(error = %e, "webhook deliveries are not running"),
    }
    jobs.spawn(crate::payments::jobs::run(
        state.payments.clone(),
        Duration::from_secs(state.config.payments.expiry_interval_secs),
        shutdown.clone(),
    ));
    // One watcher per configured chain, booking into payments.
    let sink: Arc<dyn crate::chain::watcher::TransferSink> = Arc::new(
        crate::payments::crypto::PaymentsSink::new(state.payments.clone()),
    );
    crate::chain::watcher::spawn_all(
        jobs,
        &state.config.chains,
        &state.pool,
        &sink,
        &state.metrics,
        &state.chains,
        shutdown,
    );
    match wallet {
        Some(signer) => {
            let sink: Arc<dyn crate::chain::sender::SendSink> = Arc::new(SendBook);
            let sending = crate::chain::sender::spawn_all(
                jobs,
                &state.config.chains,
                &state.pool,
                signer,
                &sink,
                &state.metrics,
                shutdown,
            );
            crate::chain::sweeper::spawn_all(
                jobs,
                &state.config.chains,
                &sending,
                &state.pool,
                shutdown,
            );
        }
        None if !state.config.chains.is_empty() => tracing::warn!(
            "no hot wallet key (EPG_WALLET_KEY or wallet.keystore): crypto refunds are refused \
             and crypto payouts wait for a node that has it"
        ),
        None => {}
    }
    if let Some(ctx) = &state.settlement {
        let ctx = ctx.clone();
        let pool = state.pool.clone();
        let every = Duration::from_secs(state.config.settlement.interval_secs);
        let stop = shutdown.clone();
        jobs.spawn(async move {
            crate::settlement::jobs::run(pool, ctx.log.clone(), ctx.anchorer.clone(), every, stop)
                .await;
        });
    }
    jobs.spawn(crate::rotation::run(
        state.pool.clone(),
        state.keys.clone(),
        state.metrics.clone(),
        shutdown.clone(),
    ));
    let store = state.idempotency.clone();
    let metrics = state.metrics.clone();
    let stop = shutdown.clone();
    jobs.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => match store.purge_expired().await {
                    Ok(n) => metrics.add("idempotency_keys_purged", n),
                    Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
                },
            }
        }
    });
}

/// Books the end of a hot-wallet send on the side that asked for it.
struct SendBook;

impl crate::chain::sender::SendSink for SendBook {
    fn finished<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        send: &'a crate::chain::sender::ChainSend,
        outcome: crate::chain::sender::SendOutcome,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::chain::watcher::SinkError>> {
        use crate::chain::sender::Purpose;
        Box::pin(async move {
            match send.purpose {
                Purpose::Refund => {
                    crate::payments::refunds::on_chain_finished(conn, send, outcome).await?;
                }
                Purpose::Payout => {
                    crate::settlement::payouts::on_chain_finished(conn, send, outcome).await?;
                }
                // The anchorer's sender books its own calls.
                Purpose::Anchor => {}
                Purpose::Sweep => {
                    crate::chain::sweeper::on_chain_finished(conn, send, outcome).await?;
                }
            }
            Ok(())
        })
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
