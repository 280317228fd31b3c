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
    config::{BackendSettings, CacheSettings, StorageSettings},
    metrics::Metrics,
};

/// The configured backend, bare: what [`build`] wraps. An S3 backend signs with `credentials`
/// when given (a channel that a Kubernetes Secret watch publishes on), else with the configured
/// keys or the AWS default chain.
pub async fn backend(
    config: &StorageSettings,
    credentials: Option<watch::Receiver<Option<S3Credentials>>>,
) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match (&config.backend, credentials) {
        (BackendSettings::Fs(fs), _) => Arc::new(FsStorage::new(&fs.root).await?.with_inline_reads(fs.inline_reads)),
        (BackendSettings::S3(s3), None) => Arc::new(S3Storage::new(s3, config.timeout).await),
        (BackendSettings::S3(s3), Some(credentials)) => {
            Arc::new(S3Storage::with_watched_credentials(s3, config.timeout, credentials))
        }
    })
}

/// The storage stack around `backend` (the configured one, or one a caller supplies), from the
/// inside out: `storage.timeout` on every call, then metrics and spans (so they count what
/// reaches storage), then the hot-object cache when `cache` is given (its hits reach nothing).
pub fn build(
    backend: Arc<dyn Storage>,
    config: &StorageSettings,
    cache: Option<&CacheSettings>,
    metrics: Arc<Metrics>,
) -> Arc<dyn Storage> {
    let timed = Arc::new(TimeoutStorage::new(backend, config.timeout));
    let instrumented: Arc<dyn Storage> = Arc::new(InstrumentedStorage::new(timed, metrics.clone()));
    match cache {
        Some(cache) => Arc::new(CachedStorage::new(instrumented, cache, metrics)),
        None => instrumented,
    }
}
