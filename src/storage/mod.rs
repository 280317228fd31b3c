//! Storage: one trait (`contract.rs`), its backends (`fs`, `s3`, `memory`) and wrappers, one
//! conformance suite (`tests/it/conformance.rs`) run over every backend and wrapper stack;
//! [`backend`] makes the configured backend and [`build`] the stack every server and command
//! uses around a backend, composed there and nowhere else.

mod contract;
mod fs;
mod memory;
mod s3;
mod wrappers;

use std::sync::Arc;

use tokio::sync::watch;

pub use contract::{
    ByteRange, ByteStream, Failure, GetResult, ListPage, ListStream, ListedObject, ObjectMeta, Storage, StorageError,
    VARIANTS_DIR, VariantKey,
};
pub use fs::FsStorage;
pub use memory::MemoryStorage;
pub use s3::{S3Credentials, S3Storage};
pub use wrappers::{CachedStorage, InstrumentedStorage, TimeoutStorage};

use crate::{
    config::{Backend, CacheConfig, StorageConfig},
    metrics::Metrics,
};

/// The configured backend, bare: what [`build`] wraps. An S3 backend signs with `credentials`
/// when given (a channel that a Kubernetes Secret watch publishes on), else with the configured
/// keys or the AWS default chain.
pub async fn backend(
    config: &StorageConfig,
    credentials: Option<watch::Receiver<Option<S3Credentials>>>,
) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match (config.backend, credentials) {
        (Backend::Fs, _) => Arc::new(
            FsStorage::new(&config.fs.root)
                .await?
                .with_inline_reads(config.fs.inline_reads),
        ),
        (Backend::S3, None) => Arc::new(S3Storage::new(&config.s3, config.timeout.0).await),
        (Backend::S3, Some(credentials)) => Arc::new(S3Storage::with_watched_credentials(
            &config.s3,
            config.timeout.0,
            credentials,
        )),
    })
}

/// The storage stack around `backend` (the configured one, or one a caller supplies), from the
/// inside out: `storage.timeout` on every call, then metrics and spans (so they count what
/// reaches storage), then the hot-object cache when `cache` is given and enabled (its hits
/// reach nothing).
pub fn build(
    backend: Arc<dyn Storage>,
    config: &StorageConfig,
    cache: Option<&CacheConfig>,
    metrics: Arc<Metrics>,
) -> Arc<dyn Storage> {
    let timed = Arc::new(TimeoutStorage::new(backend, config.timeout.0));
    let instrumented: Arc<dyn Storage> = Arc::new(InstrumentedStorage::new(timed, metrics.clone()));
    match cache {
        Some(cache) if cache.enabled == Some(true) => Arc::new(CachedStorage::new(instrumented, cache, metrics)),
        _ => instrumented,
    }
}
