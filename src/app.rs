//! The running node: HTTP server plus background jobs, with one shutdown
//! signal for all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Config;
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
        crate::db::migrate(&pool).await?;
        Self::build_with_pool(config, pool).await
    }

    /// As [`Application::build`] on an existing (migrated) pool.
    pub async fn build_with_pool(config: Config, pool: PgPool) -> Result<Self, AppError> {
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| AppError::Listen { addr, source })?;
        let lease = config.request_timeout() + Duration::from_secs(30);
        let state = AppState {
            rate_limiter: Arc::new(api::rate_limit::RateLimiter::new(
                config.security.rate_limit_per_second,
                config.security.rate_limit_burst,
            )),
            merchants: MerchantStore::new(pool.clone()),
            idempotency: IdempotencyStore::new(pool.clone(), lease),
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
            pool,
        };
        Ok(Self {
            listener,
            address,
            state,
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
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let mut jobs = JoinSet::new();
        spawn_jobs(&mut jobs, &self.state, &shutdown);

        let app = api::router(self.state.clone());
        let signal = shutdown.clone();
        let addr = self.address;
        let server = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { signal.cancelled().await });
        let server = tokio::spawn(async move { server.await });

        shutdown.cancelled().await;
        tracing::info!("shutting down: draining in-flight requests");
        let drained = tokio::time::timeout(grace, server).await;
        match drained {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(source))) => return Err(AppError::Listen { addr, source }),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!(?grace, "requests still running after the grace period"),
        }
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

/// Background jobs of the node, each stopping when `shutdown` fires.
fn spawn_jobs(jobs: &mut JoinSet<()>, state: &AppState, shutdown: &CancellationToken) {
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
