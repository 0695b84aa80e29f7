//! `epg serve --config epg.toml`: the production entry point.

use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::CliError;
use crate::app::{Application, shutdown_signal};
use crate::config::Config;

pub async fn run(path: &Path) -> Result<ExitCode, CliError> {
    let config = Config::load(Some(path), std::env::vars())?;
    crate::telemetry::init(&config.log);
    let app = Application::build(config).await?;
    tracing::info!(address = %app.address(), "E-PG node listening");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
