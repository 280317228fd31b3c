//! Storage: one trait (`contract.rs`), its backends (`fs`, `s3`, `memory`) and wrappers, one
//! conformance suite (`tests/it/conformance.rs`) run over every backend and wrapper stack;
//! [`build`] makes the configured one.

mod contract;
mod fs;
mod memory;
mod s3;
mod wrappers;

use std::sync::Arc;

use tokio::sync::watch;

pub use contract::{
    ByteRange, ByteStream, GetResult, ListPage, ListStream, ListedObject, ObjectMeta, Storage, StorageError,
    VARIANTS_DIR, VariantKey,
};
pub use fs::FsStorage;
pub use memory::MemoryStorage;
pub use s3::{S3Credentials, S3Storage};
pub use wrappers::{CachedStorage, InstrumentedStorage, TimeoutStorage};

use crate::config::{Backend, StorageConfig};

/// Builds the configured backend, wrapped in the storage timeout. An S3 backend signs with
/// `credentials` when given (a channel that a Kubernetes Secret watch publishes on), else with
/// the configured keys or the AWS default chain.
pub async fn build(
    config: &StorageConfig,
    credentials: Option<watch::Receiver<Option<S3Credentials>>>,
) -> Result<Arc<dyn Storage>, StorageError> {
    let inner: Arc<dyn Storage> = match (config.backend, credentials) {
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
    };
    Ok(Arc::new(TimeoutStorage::new(inner, config.timeout.0)))
}
