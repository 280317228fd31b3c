//! The contract every backend fulfils: the [`Storage`] trait, what it answers with, and its
//! errors. Metadata (length, ETag, last-modified) is separate from the body, which is always a
//! stream of chunks: no backend ever holds a whole object in memory on the download path.

use std::{pin::Pin, time::SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use crate::{metrics::StorageFailure, object_name::ObjectName};

/// A stream of body chunks from storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Pages of listed objects from [`Storage::list_all`]; it ends after the first error.
pub type ListStream<'a> = Pin<Box<dyn Stream<Item = Result<Vec<ListedObject>, StorageError>> + Send + 'a>>;

/// What storage knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Length of the whole object in bytes.
    pub len: u64,
    /// A strong entity tag, quoted (`"..."`), stable while the object is unchanged.
    pub etag: String,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// An inclusive byte range `[start, end]`, already resolved against the object's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset of the last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub fn byte_count(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// An object being read: its metadata and (a range of) its bytes.
pub struct GetResult {
    /// Metadata of the whole object.
    pub meta: ObjectMeta,
    /// The bytes actually in `body`; the whole object when no range was asked.
    pub range: ByteRange,
    /// The bytes of `range`, in chunks.
    pub body: ByteStream,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The key relative to the backend's root or prefix (not necessarily a valid object name).
    pub key: String,
    /// Length of the object in bytes.
    pub len: u64,
    /// When the object was last written.
    pub last_modified: SystemTime,
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The objects on this page, in key order.
    pub objects: Vec<ListedObject>,
    /// Pass as `start_after` to get the next page; `None` on the last page.
    pub next_start_after: Option<String>,
}

/// Where stored variants live, relative to the backend's root or prefix: a variant of `NAME`
/// is `variants/NAME/ID`. Listings leave this space out (it holds no object names).
pub const VARIANTS_DIR: &str = "variants";

/// The key of a stored variant (the persistent tier of rendered variants): its source and an id
/// naming one rendering of it (`<digest>.w400-q80.webp`: the digest of the source's version,
/// the options, the format and the build, then the readable variant). Every variant of a
/// source shares the folder `variants/NAME/`, so they are purged with one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VariantKey {
    source: ObjectName,
    id: String,
}

impl VariantKey {
    /// The longest id.
    const MAX_ID: usize = 160;

    /// A key for `source`'s rendering `id`; `None` unless `id` is 1–160 lowercase letters,
    /// digits, `-` and `.`, starting with a letter or digit and without `..`.
    /// SECURITY: the id becomes part of a path and an S3 key; it is made by the server from
    /// a parsed variant, and checked here again.
    pub fn new(source: ObjectName, id: String) -> Option<VariantKey> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
        let valid = (1..=Self::MAX_ID).contains(&id.len())
            && id.bytes().all(allowed)
            && id.as_bytes()[0].is_ascii_alphanumeric()
            && !id.contains("..");
        valid.then_some(VariantKey { source, id })
    }

    /// The source image.
    pub fn source(&self) -> &ObjectName {
        &self.source
    }

    /// The rendering's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key relative to the backend's root or prefix: `variants/NAME/ID`.
    pub fn path(&self) -> String {
        format!("{}{}", Self::folder(&self.source), self.id)
    }

    /// The folder of `source`'s variants, relative to the root or prefix: `variants/NAME/`.
    pub fn folder(source: &ObjectName) -> String {
        format!("{VARIANTS_DIR}/{source}/")
    }
}

/// Storage failures, in the three kinds the HTTP layer treats differently. The two failures
/// keep what caused them, as object_store's errors do: a sentence of context and the error
/// underneath ([`Failure`], its `source()`), never flattened into a string.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist (404).
    #[error("object not found")]
    NotFound,
    /// Storage cannot be reached, is too slow, refuses our credentials or fails on its side (503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Failure),
    /// Anything else (500).
    #[error("storage error: {0}")]
    Other(#[source] Failure),
}

/// What failed, and the error that made it fail when there is one. Shown as the context and
/// then every error of the chain (`cannot delete variants: …: …`), so a log line says it all;
/// shared, because a failure reaches every waiter of a single flight.
#[derive(Debug, Clone)]
pub struct Failure {
    context: std::borrow::Cow<'static, str>,
    cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.context)?;
        let mut next: Option<&(dyn std::error::Error + 'static)> = self.cause.as_deref().map(|e| e as _);
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|e| e as _)
    }
}

impl StorageError {
    /// Storage is unavailable; `context` says what failed ([`because`](Self::because) adds why).
    pub fn unavailable(context: impl Into<std::borrow::Cow<'static, str>>) -> StorageError {
        StorageError::Unavailable(Failure {
            context: context.into(),
            cause: None,
        })
    }

    /// Any other failure; `context` says what failed ([`because`](Self::because) adds why).
    pub fn other(context: impl Into<std::borrow::Cow<'static, str>>) -> StorageError {
        StorageError::Other(Failure {
            context: context.into(),
            cause: None,
        })
    }

    /// The failure, its context prefixed with `what` (`bucket images at http://…: …`).
    pub fn context(self, what: impl std::fmt::Display) -> StorageError {
        self.map_failure(|failure| Failure {
            context: format!("{what}: {}", failure.context).into(),
            ..failure
        })
    }

    /// The failure, with `cause` kept as its source.
    pub fn because(self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
        self.map_failure(|failure| Failure {
            cause: Some(std::sync::Arc::from(cause.into())),
            ..failure
        })
    }

    /// The same kind of error with its failure changed by `change` (`NotFound` has none).
    fn map_failure(self, change: impl FnOnce(Failure) -> Failure) -> StorageError {
        match self {
            StorageError::Unavailable(failure) => StorageError::Unavailable(change(failure)),
            StorageError::Other(failure) => StorageError::Other(change(failure)),
            not_found => not_found,
        }
    }

    /// Deleting what is already gone succeeds: maps `NotFound` to `Ok`.
    pub fn ignore_not_found(result: Result<(), StorageError>) -> Result<(), StorageError> {
        match result {
            Err(StorageError::NotFound) => Ok(()),
            other => other,
        }
    }

    /// Which kind of failure, for logs, spans and metrics (`kind().label()`).
    pub fn kind(&self) -> StorageFailure {
        match self {
            Self::NotFound => StorageFailure::NotFound,
            Self::Unavailable(_) => StorageFailure::Unavailable,
            Self::Other(_) => StorageFailure::Other,
        }
    }
}

/// The operations every backend provides. Keys are validated [`ObjectName`]s only.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Short backend name for logs (`fs`, `s3`).
    fn backend(&self) -> &'static str;

    /// Reads the object's metadata without its body.
    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError>;

    /// Reads the whole object, or exactly `range` of it (fetched as a range, never read and skipped).
    /// `range` must lie within the object (the caller resolved it against `head`).
    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError>;

    /// Stores `data` under `name` atomically: readers see the old state or the whole new object.
    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError>;

    /// Deletes the object; deleting a missing object is not an error.
    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError>;

    /// Deletes up to 1000 objects, answering the ones that failed. Missing objects count as
    /// deleted. Backends with a batch call (S3 DeleteObjects) override this loop.
    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        let mut failed = Vec::new();
        for name in names {
            if let Err(e) = self.delete(name).await {
                failed.push((name.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Lists up to `limit` objects with keys after `start_after`, in key order.
    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError>;

    /// Every object, once, in pages of at most `page_size`: one pass for retention, costing
    /// O(objects) in all. By default it pages through [`Storage::list`] in key order; a backend
    /// whose `list` costs a scan of everything per page (fs) overrides it with one pass in no
    /// particular order. Objects added or removed during the pass may or may not be listed.
    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        let page_size = page_size.max(1);
        Box::pin(futures_util::stream::try_unfold(
            Some(None),
            move |after: Option<Option<String>>| async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let page = self.list(after.as_deref(), page_size).await?;
                Ok(Some((page.objects, page.next_start_after.map(Some))))
            },
        ))
    }

    /// Stores a rendered variant (atomically, as [`Storage::put`]); a backend without a
    /// variants tier keeps this default and stores nothing.
    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        let _ = (key, data);
        Ok(())
    }

    /// A stored variant's bytes, whole (variants are bounded by the processing limits);
    /// `NotFound` when it was never stored or was purged.
    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        let _ = key;
        Err(StorageError::NotFound)
    }

    /// Deletes every stored variant of `source` and answers how many there were; none is not
    /// an error.
    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        let _ = source;
        Ok(0)
    }

    /// Removes what interrupted writes left behind more than `older_than` ago (the fs backend's
    /// temporary files after a crash) and answers how many; retention calls it. Backends whose
    /// writes leave nothing (S3's single PUT) keep this default.
    async fn sweep_incomplete(&self, older_than: std::time::Duration) -> Result<u64, StorageError> {
        let _ = older_than;
        Ok(0)
    }

    /// A cheap check that storage is reachable and ours to use (for readiness).
    async fn check(&self) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_failure_keeps_its_cause_and_says_the_whole_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = StorageError::unavailable("the storage request failed").because(io);
        assert_eq!(
            e.to_string(),
            "storage unavailable: the storage request failed: connection refused"
        );
        let failure = e.source().expect("the failure is the error's source");
        let cause = failure.source().expect("the cause is kept");
        let io = cause.downcast_ref::<std::io::Error>().expect("as the io::Error it was");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(e.clone().to_string(), e.to_string(), "a clone shares the cause");
        let e = e.context("bucket images at http://127.0.0.1:9000");
        assert_eq!(
            e.to_string(),
            "storage unavailable: bucket images at http://127.0.0.1:9000: the storage request failed: connection refused"
        );
    }

    #[test]
    fn a_failure_without_a_cause_is_its_context_and_not_found_takes_none() {
        let e = StorageError::other("unexpected Content-Range bytes 1-2/3");
        assert_eq!(e.to_string(), "storage error: unexpected Content-Range bytes 1-2/3");
        assert!(e.source().and_then(Error::source).is_none());
        let io = std::io::Error::other("ignored");
        assert!(matches!(StorageError::NotFound.because(io), StorageError::NotFound));
    }
}
