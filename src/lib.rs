//! image-gateway: streams stored images at `GET /v1/image/download/{object_name}` from
//! S3/MinIO or a local folder, over a raw hyper 1.x server.
//!
//! Layers, each importing only from the ones to its left: `clock`, `config`, `metrics`,
//! `object_name` → `auth`, `content`, `processing`, `rate_limit`, `storage`, `telemetry` →
//! `commands`, `jobs`, `kubernetes` → `http` → `api`; [`run`] wires them
//! (`scripts/check-architecture.py` holds the exact table and checks it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
pub mod content;
pub(crate) mod http;
pub(crate) mod jobs;
pub mod kubernetes;
pub mod metrics;
pub mod object_name;
pub mod processing;
pub mod rate_limit;
pub mod storage;
pub mod telemetry;

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};

use crate::{
    api::gateway::{Components, Gateway},
    auth::{KeyFileError, keys::KeySet},
    commands::retention,
    config::{BackendSettings, CounterStore, S3KeySource, S3Settings, Settings},
    http::{
        health::Latch,
        server::{self, ServeOptions},
    },
    metrics::Metrics,
    rate_limit::Limiter,
    storage::{S3Credentials, Storage, StorageError},
};

pub use config::Config;

/// How long `retention` waits for credentials from a Kubernetes Secret.
const RETENTION_CREDENTIALS_WAIT: Duration = Duration::from_secs(30);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API-key file cannot be used: exit 64, as for any configuration problem.
    #[error("invalid configuration: {0}")]
    KeyFile(#[from] KeyFileError),
    /// The Kubernetes API cannot be reached for the configured Secrets.
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::ClientError),
    /// The storage backend cannot be set up (e.g. the `fs` root folder cannot be created).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The rate-limit backend cannot be set up (e.g. an unreadable `rate_limit.redis.ca_file`).
    #[error("invalid configuration: {0}")]
    RateLimit(#[from] rate_limit::RedisSetupError),
    /// A `[variants]` preset (or `allow`) cannot be used: exit 64.
    #[error("invalid configuration: {0}")]
    Variants(#[from] api::download::variant::RulesError),
    /// `retention` got no storage credentials from the Kubernetes Secret in time.
    #[error("no credentials from the Kubernetes Secret within {0:?}")]
    CredentialsTimeout(Duration),
}

impl StartError {
    /// Whether the configuration is at fault (exit 64) rather than the environment (exit 69).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::KeyFile(_) | StartError::RateLimit(_) | StartError::Variants(_)
        )
    }
}

/// The two listeners, bound by the caller (`main` binds the configured addresses; tests port 0).
pub struct Listeners {
    /// The API and the probes.
    pub public: TcpListener,
    /// `/metrics` and the probes.
    pub admin: TcpListener,
}

/// Parts that a caller supplies instead of having them built from the settings (tests, embedders).
#[derive(Default)]
pub struct Overrides {
    /// A backend to serve from instead of the configured one; it gets the same stack
    /// ([`storage::build`]: timeout, metrics, cache).
    pub storage: Option<Arc<dyn Storage>>,
    /// The Kubernetes client for the configured Secrets, instead of the default one.
    pub kube: Option<kube::Client>,
    /// S3 credentials published on this channel, instead of a watch of the configured Secret.
    pub storage_credentials: Option<watch::Receiver<Option<S3Credentials>>>,
}

/// Serves on `listeners` until `shutdown` resolves, then drains. What `main` runs.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    run_with(settings, Overrides::default(), listeners, shutdown).await
}

/// [`run`], with some parts supplied by the caller.
pub async fn run_with(
    settings: Settings,
    overrides: Overrides,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    // Checked before anything starts: a bad preset is a configuration error, exit 64.
    let variant_rules = api::download::variant::Rules::new(&settings.variants)?;
    let metrics = Arc::new(Metrics::new());
    let sources = CredentialSources::start(&settings, overrides.kube, overrides.storage_credentials, &metrics).await?;
    let backend = match overrides.storage {
        Some(storage) => storage,
        None => storage::backend(&settings.storage, sources.storage.clone()).await?,
    };
    let storage = storage::build(backend, &settings.storage, settings.cache.as_ref(), metrics.clone());
    let limiter = Limiter::start(&settings.rate_limit, sources.redis_password.clone(), metrics.clone()).await?;
    tracing::info!(
        listen = %listeners.public.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %listeners.admin.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        backend = storage.backend(),
        "image-gateway serving"
    );
    let options = ServeOptions {
        server: settings.server.clone(),
        grace: settings.shutdown.grace,
    };
    let mut latches = Vec::new();
    if let Some(source) = &sources.storage {
        latches.push(Latch::loaded("storage credentials", source.clone()));
    }
    if let Some(source) = &sources.api_keys {
        latches.push(Latch::loaded("API keys", source.clone()));
    }
    let gateway = Gateway::start(Components {
        settings,
        storage,
        limiter,
        metrics: metrics.clone(),
        latches,
        key_secret: sources.api_keys,
        variant_rules,
    })?;
    server::serve(
        gateway,
        metrics,
        options,
        listeners.public,
        Some(listeners.admin),
        shutdown,
    )
    .await;
    Ok(())
}

/// Runs retention once with the configured storage (waiting up to 30 s for credentials from
/// a Kubernetes Secret), and reports what it did.
pub async fn retention(settings: &Settings, max_age: Duration, dry_run: bool) -> Result<retention::Report, StartError> {
    let metrics = Arc::new(Metrics::new());
    let sources = CredentialSources::start(settings, None, None, &metrics).await?;
    if let Some(mut credentials) = sources.storage.clone() {
        tokio::time::timeout(RETENTION_CREDENTIALS_WAIT, credentials.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(StartError::CredentialsTimeout(RETENTION_CREDENTIALS_WAIT))?;
    }
    let backend = storage::backend(&settings.storage, sources.storage).await?;
    let storage = storage::build(backend, &settings.storage, None, metrics);
    let now = std::time::SystemTime::now();
    Ok(retention::run(storage.as_ref(), max_age, now, dry_run, retention::PAGE_SIZE).await)
}

/// The credentials read from Kubernetes Secrets, each a channel holding the last good value.
struct CredentialSources {
    storage: Option<watch::Receiver<Option<S3Credentials>>>,
    api_keys: Option<watch::Receiver<Option<KeySet>>>,
    redis_password: Option<watch::Receiver<Option<config::Secret>>>,
}

impl CredentialSources {
    /// Starts a watch for each configured Secret (unless `storage` supplies the storage
    /// credentials); a Kubernetes client is made (or `kube` used) only when there is one.
    async fn start(
        settings: &Settings,
        kube: Option<kube::Client>,
        storage: Option<watch::Receiver<Option<S3Credentials>>>,
        metrics: &Arc<Metrics>,
    ) -> Result<CredentialSources, StartError> {
        let storage_secret = match &settings.storage.backend {
            BackendSettings::S3(S3Settings {
                keys: S3KeySource::Kubernetes(secret),
                ..
            }) => Some(secret),
            _ => None,
        };
        let watch_storage = storage_secret.is_some() && storage.is_none();
        let key_secret = settings.auth.api_keys_secret.as_ref();
        let redis_secret = match &settings.rate_limit.store {
            CounterStore::Redis(redis) => redis.password_secret.as_ref(),
            CounterStore::Memory => None,
        };
        let client = match (kube, watch_storage || key_secret.is_some() || redis_secret.is_some()) {
            (_, false) => None,
            (Some(client), true) => Some(client),
            (None, true) => Some(kubernetes::client().await?),
        };
        let Some(client) = client else {
            return Ok(CredentialSources {
                storage: storage.filter(|_| storage_secret.is_some()),
                api_keys: None,
                redis_password: None,
            });
        };
        let storage = match (storage, storage_secret) {
            (Some(supplied), Some(_)) => Some(supplied),
            (None, Some(secret)) => Some(kubernetes::watch_storage_credentials(
                client.clone(),
                secret,
                metrics.clone(),
            )),
            (_, None) => None,
        };
        Ok(CredentialSources {
            storage,
            api_keys: key_secret.map(|secret| kubernetes::watch_api_keys(client.clone(), secret, metrics.clone())),
            redis_password: redis_secret
                .map(|secret| kubernetes::watch_redis_password(client, secret, metrics.clone())),
        })
    }
}

/// Resolves on SIGTERM or Ctrl-C (only Ctrl-C off Unix): the `shutdown` that `main` gives [`run`].
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
