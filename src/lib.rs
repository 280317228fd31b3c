//! image-gateway: streams stored images at `GET /v1/image/download/{object_name}` from
//! S3/MinIO or a local folder, over a raw hyper 1.x server.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod client_ip;
pub mod conditional;
pub mod config;
pub mod cors;
pub mod download;
pub mod error;
pub mod health;
pub mod kubernetes;
pub mod metrics;
pub mod object_name;
pub mod range;
pub mod ratelimit;
pub mod retention;
pub mod routes;
pub mod server;
pub mod sniff;
pub mod storage;
pub mod svg;
pub mod telemetry;
pub mod units;
pub mod upload;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;

pub use app::App;
pub use config::Config;

/// Exit status for a bad configuration (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration problem found at start (e.g. an unreadable key file): exit 64.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Listen(String),
    #[error("{0}")]
    Kubernetes(String),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

/// Builds storage from `config` and serves on `listener` until `shutdown` resolves.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| StartError::Listen(format!("cannot listen on {} (admin_listen): {e}", config.admin_listen)))?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (storage, kube) = build_storage(&config, &metrics).await?;
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        backend = storage.backend(),
        "image-gateway serving"
    );
    let app = App::start_with(config, storage, metrics, kube).map_err(StartError::Config)?;
    server::serve(app, listener, Some(admin), shutdown).await;
    Ok(())
}

/// The configured storage, and the Kubernetes client when a Secret is to be read.
async fn build_storage(
    config: &Config,
    metrics: &Arc<metrics::Metrics>,
) -> Result<(Arc<dyn storage::Storage>, Option<kube::Client>), StartError> {
    let s3 = &config.storage.s3;
    let secret_credentials =
        config.storage.backend == config::Backend::S3 && s3.credentials == config::CredentialsSource::Kubernetes;
    let kube = if secret_credentials || config.auth.api_keys_secret.is_some() {
        Some(kubernetes::client().await.map_err(StartError::Kubernetes)?)
    } else {
        None
    };
    let watched = match (&kube, secret_credentials) {
        (Some(client), true) => Some(kubernetes::watch_storage_credentials(
            client.clone(),
            s3,
            metrics.clone(),
        )),
        _ => None,
    };
    let storage = storage::from_config_with(&config.storage, watched).await?;
    Ok((storage, kube))
}

/// Runs retention once with `config`'s storage (waiting up to 30 s for credentials from a
/// Kubernetes Secret), and reports what it did.
pub async fn retention(
    config: &Config,
    max_age: std::time::Duration,
    dry_run: bool,
) -> Result<retention::Report, StartError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let (storage, _kube) = build_storage(config, &metrics).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !storage.credentials_loaded() {
        if tokio::time::Instant::now() > deadline {
            return Err(StartError::Kubernetes(
                "no credentials from the Kubernetes Secret within 30 s".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let now = std::time::SystemTime::now();
    Ok(retention::run(storage.as_ref(), max_age, now, dry_run, retention::PAGE_SIZE).await)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}
