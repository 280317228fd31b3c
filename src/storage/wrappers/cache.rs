//! A bounded in-memory cache of whole small objects in front of storage (`cache.*`).
//!
//! Object names are random and never rewritten, so a stored image is immutable until retention
//! deletes it: a cached copy is served for at most `cache.ttl`, which is also how long a deleted
//! object may still be served by a replica that held it. Concurrent misses for one object make
//! one storage read; the others wait for it and are served from it (moka coalesces them, like
//! nginx's `proxy_cache_lock`). Objects over `cache.max_object_bytes` stream as before, never
//! buffered, but their metadata is kept, so HEAD and conditional requests skip storage for them
//! too. A HEAD of a small object keeps its metadata alone until a GET loads the object whole
//! (variants read their source's `ETag` on every request). A 404 is remembered for `cache.negative_ttl`; a put or delete through this replica
//! forgets the name at once. Errors are never cached.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use moka::{future::Cache, notification::RemovalCause};
use tokio::sync::Semaphore;

use crate::storage::{ByteRange, GetResult, ListPage, ListStream, ObjectMeta, Storage, StorageError, VariantKey};
use crate::{
    config::CacheSettings,
    metrics::{CacheLookup, Eviction, Metrics},
    object_name::ObjectName,
};

/// Objects loading into the cache at once hold at most this many times `max_object_bytes`;
/// further misses stream past the cache, so a burst of distinct misses cannot grow memory
/// beyond the bound.
const LOADING_OBJECTS: u64 = 16;

/// What the cache holds for one name.
enum Entry {
    /// A whole object.
    Object { meta: ObjectMeta, bytes: Bytes },
    /// The metadata of an object too large to keep.
    Large(ObjectMeta),
    /// The metadata of a small object a HEAD found; a GET loads it whole in its place.
    Meta(ObjectMeta),
    /// The object did not exist.
    Missing,
}

impl Entry {
    /// Bytes held, with a fixed allowance for the key, the metadata and moka's bookkeeping.
    fn weight(&self) -> u32 {
        let body = match self {
            Entry::Object { bytes, .. } => bytes.len(),
            Entry::Large(_) | Entry::Meta(_) | Entry::Missing => 0,
        };
        u32::try_from(body + 256).unwrap_or(u32::MAX)
    }
}

/// Why a load put nothing in the cache.
enum Skipped {
    /// Storage failed; every waiter gets the error.
    Failed(StorageError),
    /// Too many bytes are loading already: each waiter reads storage itself.
    Busy,
}

/// Per-entry lifetimes: `ttl` for what exists, `negative_ttl` for what did not.
struct Lifetimes {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<ObjectName, Arc<Entry>> for Lifetimes {
    fn expire_after_create(&self, _: &ObjectName, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(match **entry {
            Entry::Missing => self.negative_ttl,
            Entry::Object { .. } | Entry::Large(_) | Entry::Meta(_) => self.ttl,
        })
    }
}

/// Wraps a storage with the hot-object cache.
pub struct CachedStorage {
    inner: Arc<dyn Storage>,
    cache: Cache<ObjectName, Arc<Entry>>,
    max_object_bytes: u64,
    /// `cache.negative_ttl` is not zero.
    remember_missing: bool,
    loading: Semaphore,
    metrics: Arc<Metrics>,
}

impl CachedStorage {
    /// Wraps `inner` with a cache sized by `config`, recording into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, config: &CacheSettings, metrics: Arc<Metrics>) -> CachedStorage {
        let max_object_bytes = config.max_object_bytes.get();
        let evicted = metrics.clone();
        let cache = Cache::builder()
            .max_capacity(config.max_bytes.get())
            .weigher(|_, entry: &Arc<Entry>| entry.weight())
            .expire_after(Lifetimes {
                ttl: config.ttl,
                negative_ttl: config.negative_ttl.unwrap_or_default(),
            })
            .eviction_listener(move |_, entry: Arc<Entry>, cause| {
                evicted.cache.removed(u64::from(entry.weight()), eviction(cause));
            })
            .build();
        let budget = (LOADING_OBJECTS * max_object_bytes).min(Semaphore::MAX_PERMITS as u64);
        CachedStorage {
            inner,
            cache,
            max_object_bytes,
            remember_missing: config.negative_ttl.is_some(),
            loading: Semaphore::new(usize::try_from(budget).unwrap_or(Semaphore::MAX_PERMITS)),
            metrics,
        }
    }

    /// The entry for `name`: cached, loaded by this call, or loaded by a concurrent one. A
    /// body that this call read but did not keep (too large, or too many bytes loading) is
    /// left in `unkept` for the caller to stream.
    async fn lookup(&self, name: &ObjectName, unkept: &Mutex<Option<GetResult>>) -> Result<Arc<Entry>, Skipped> {
        if let Some(entry) = self.cache.get(name).await {
            if !matches!(*entry, Entry::Meta(_)) {
                self.metrics.cache.lookup(CacheLookup::Hit);
                return Ok(entry);
            }
            // Only the metadata is known: the object is loaded in its place.
            self.cache.invalidate(name).await;
        }
        let mut loaded = false;
        let load = async {
            loaded = true;
            self.load(name, unkept).await
        };
        let result = self.cache.entry_by_ref(name).or_try_insert_with(load).await;
        self.metrics.cache.lookup(if loaded {
            CacheLookup::Miss
        } else {
            CacheLookup::Coalesced
        });
        match result {
            Ok(entry) => {
                if entry.is_fresh() {
                    self.metrics.cache.added(u64::from(entry.value().weight()));
                    // moka evicts in its maintenance, which otherwise runs only every so many
                    // operations: a burst of misses held 83 MiB in a 64 MiB cache (bench/load.py's
                    // memory check). Evicting now bounds the cache by max_bytes; only misses pay.
                    self.cache.run_pending_tasks().await;
                }
                Ok(entry.into_value())
            }
            Err(skipped) => Err(match &*skipped {
                Skipped::Failed(e) => Skipped::Failed(e.clone()),
                Skipped::Busy => Skipped::Busy,
            }),
        }
    }

    /// One storage read of the whole object, kept if it is small enough.
    async fn load(&self, name: &ObjectName, unkept: &Mutex<Option<GetResult>>) -> Result<Arc<Entry>, Skipped> {
        let got = match self.inner.get(name, None).await {
            Ok(got) => got,
            Err(StorageError::NotFound) if self.remember_missing => return Ok(Arc::new(Entry::Missing)),
            Err(e) => return Err(Skipped::Failed(e)),
        };
        let len = got.meta.len;
        if len > self.max_object_bytes {
            let meta = got.meta.clone();
            *unkept.lock().unwrap_or_else(PoisonError::into_inner) = Some(got);
            return Ok(Arc::new(Entry::Large(meta)));
        }
        let permits = u32::try_from(len).unwrap_or(u32::MAX);
        let Ok(_loading) = self.loading.try_acquire_many(permits) else {
            *unkept.lock().unwrap_or_else(PoisonError::into_inner) = Some(got);
            return Err(Skipped::Busy);
        };
        let mut whole = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
        let mut body = got.body;
        while let Some(chunk) = body.try_next().await.map_err(Skipped::Failed)? {
            if whole.len() + chunk.len() > usize::try_from(len).unwrap_or(usize::MAX) {
                break;
            }
            whole.extend_from_slice(&chunk);
        }
        if whole.len() as u64 != len {
            return Err(Skipped::Failed(StorageError::unavailable(
                "the object changed while it was read",
            )));
        }
        Ok(Arc::new(Entry::Object {
            meta: got.meta,
            bytes: whole.freeze(),
        }))
    }

    /// Forgets `name` (after a put or delete through this replica).
    async fn forget(&self, name: &ObjectName) {
        self.cache.invalidate(name).await;
    }
}

/// A removal's cause in `cache_evictions_total`; `None` for removals we asked for.
fn eviction(cause: RemovalCause) -> Option<Eviction> {
    match cause {
        RemovalCause::Size => Some(Eviction::Size),
        RemovalCause::Expired => Some(Eviction::Expired),
        RemovalCause::Explicit | RemovalCause::Replaced => None,
    }
}

/// The answer to a read from a cached object: the whole object or exactly `range`.
fn from_bytes(meta: &ObjectMeta, bytes: &Bytes, range: Option<ByteRange>) -> Option<GetResult> {
    let whole = ByteRange {
        start: 0,
        end: meta.len.saturating_sub(1),
    };
    let range = range.unwrap_or(whole);
    let body = if meta.len == 0 {
        Bytes::new()
    } else {
        let (start, end) = (usize::try_from(range.start).ok()?, usize::try_from(range.end).ok()?);
        if start > end || end >= bytes.len() {
            return None;
        }
        bytes.slice(start..=end)
    };
    let chunks = (!body.is_empty()).then_some(Ok(body));
    Some(GetResult {
        meta: meta.clone(),
        range,
        body: Box::pin(futures_util::stream::iter(chunks)),
    })
}

#[async_trait::async_trait]
impl Storage for CachedStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        if let Some(entry) = self.cache.get(name).await {
            self.metrics.cache.lookup(CacheLookup::Hit);
            return match &*entry {
                Entry::Object { meta, .. } | Entry::Large(meta) | Entry::Meta(meta) => Ok(meta.clone()),
                Entry::Missing => Err(StorageError::NotFound),
            };
        }
        self.metrics.cache.lookup(CacheLookup::Miss);
        let entry = match self.inner.head(name).await {
            Ok(meta) if meta.len > self.max_object_bytes => Entry::Large(meta),
            Ok(meta) => Entry::Meta(meta),
            Err(StorageError::NotFound) if self.remember_missing => Entry::Missing,
            other => return other,
        };
        let entry = Arc::new(entry);
        self.metrics.cache.added(u64::from(entry.weight()));
        self.cache.insert(name.clone(), entry.clone()).await;
        match &*entry {
            Entry::Large(meta) | Entry::Meta(meta) => Ok(meta.clone()),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let unkept = Mutex::new(None);
        let entry = match self.lookup(name, &unkept).await {
            Ok(entry) => Some(entry),
            Err(Skipped::Failed(e)) => return Err(e),
            Err(Skipped::Busy) => None,
        };
        let served = match entry.as_deref() {
            Some(Entry::Object { meta, bytes }) => from_bytes(meta, bytes, range),
            Some(Entry::Missing) => return Err(StorageError::NotFound),
            // (`Meta` never comes back from a lookup: it loads the object in its place.)
            Some(Entry::Large(_) | Entry::Meta(_)) | None => None,
        };
        if let Some(served) = served {
            return Ok(served);
        }
        // Streamed past the cache: the body this call already opened when it serves the whole
        // object, else a read of its own (the range, or a waiter of a load that kept nothing).
        let opened = unkept.into_inner().unwrap_or_else(PoisonError::into_inner);
        match opened {
            Some(got) if range.is_none() => Ok(got),
            _ => self.inner.get(name, range).await,
        }
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        let result = self.inner.put(name, data).await;
        self.forget(name).await;
        result
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        let result = self.inner.delete(name).await;
        self.forget(name).await;
        result
    }

    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        let result = self.inner.delete_many(names).await;
        for name in names {
            self.forget(name).await;
        }
        result
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        self.inner.list(start_after, limit).await
    }

    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        self.inner.list_all(page_size)
    }

    /// Variants pass through: their memory tier is the renderer's own.
    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        self.inner.put_variant(key, data).await
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        self.inner.get_variant(key).await
    }

    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        self.inner.delete_variants(source).await
    }

    async fn sweep_incomplete(&self, older_than: Duration) -> Result<u64, StorageError> {
        self.inner.sweep_incomplete(older_than).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.inner.check().await
    }
}

#[cfg(test)]
mod tests {
    use std::{
        num::NonZeroU64,
        sync::atomic::{AtomicU64, Ordering},
    };

    use super::*;
    use crate::storage::{MemoryStorage, TimeoutStorage};

    /// Counts the reads that reach storage; each `get` takes `delay` to answer, so that
    /// concurrent misses overlap.
    struct Counted {
        inner: MemoryStorage,
        gets: AtomicU64,
        heads: AtomicU64,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl Storage for Counted {
        fn backend(&self) -> &'static str {
            "memory"
        }
        async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
            self.heads.fetch_add(1, Ordering::SeqCst);
            self.inner.head(name).await
        }
        async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.inner.get(name, range).await
        }
        async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
            self.inner.put(name, data).await
        }
        async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
            self.inner.delete(name).await
        }
        async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
            self.inner.list(start_after, limit).await
        }
        async fn check(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    struct Setup {
        storage: Arc<Counted>,
        cached: Arc<CachedStorage>,
        metrics: Arc<Metrics>,
    }

    fn setup(max_object_bytes: u64, ttl: Duration, delay: Duration) -> Setup {
        let storage = Arc::new(Counted {
            inner: MemoryStorage::new(),
            gets: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            delay,
        });
        let config = CacheSettings {
            max_bytes: NonZeroU64::new(1 << 20).unwrap(),
            max_object_bytes: NonZeroU64::new(max_object_bytes).unwrap(),
            ttl,
            negative_ttl: Some(Duration::from_secs(60)),
        };
        let metrics = Arc::new(Metrics::new());
        let cached = Arc::new(CachedStorage::new(storage.clone(), &config, metrics.clone()));
        Setup {
            storage,
            cached,
            metrics,
        }
    }

    fn name(n: u8) -> ObjectName {
        ObjectName::parse(&format!("{:032x}.png", n)).unwrap()
    }

    async fn read(storage: &dyn Storage, name: &ObjectName, range: Option<ByteRange>) -> Result<Vec<u8>, StorageError> {
        let got = storage.get(name, range).await?;
        let chunks: Vec<Bytes> = got.body.try_collect().await?;
        Ok(chunks.concat())
    }

    fn metric(metrics: &Metrics, line_start: &str) -> f64 {
        let text = metrics.render();
        let line = text.lines().find(|l| l.starts_with(line_start));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
    }

    /// 64 concurrent first reads of one object make one storage read; all get every byte.
    #[tokio::test]
    async fn concurrent_misses_make_one_storage_read() {
        let s = setup(1 << 16, Duration::from_secs(60), Duration::from_millis(100));
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        s.storage.put(&name(1), Bytes::from(data.clone())).await.unwrap();
        let reads = (0..64).map(|_| {
            let cached = s.cached.clone();
            tokio::spawn(async move { read(cached.as_ref(), &name(1), None).await.unwrap() })
        });
        for body in futures_util::future::join_all(reads).await {
            assert_eq!(body.unwrap(), data);
        }
        assert_eq!(s.storage.gets.load(Ordering::SeqCst), 1);
        assert_eq!(metric(&s.metrics, "cache_lookups_total{result=\"miss\"}"), 1.0);
        assert_eq!(metric(&s.metrics, "cache_lookups_total{result=\"coalesced\"}"), 63.0);
        assert_eq!(metric(&s.metrics, "cache_bytes"), 50_256.0);
    }

    /// A run of misses never holds more than `max_bytes` (1 MiB here) after each one.
    #[tokio::test]
    async fn misses_never_outgrow_max_bytes() {
        let s = setup(1 << 16, Duration::from_secs(60), Duration::ZERO);
        for n in 0..40 {
            s.storage.put(&name(n), Bytes::from(vec![n; 50_000])).await.unwrap();
            assert_eq!(read(s.cached.as_ref(), &name(n), None).await.unwrap(), vec![n; 50_000]);
            let held = metric(&s.metrics, "cache_bytes");
            assert!(
                held <= (1 << 20) as f64,
                "after {} misses the cache holds {held} bytes",
                n + 1
            );
        }
        assert!(metric(&s.metrics, "cache_bytes") > 500_000.0, "and it is still used");
    }

    /// Once cached, HEAD and ranges need no storage call.
    #[tokio::test]
    async fn head_and_ranges_from_the_cached_object() {
        let s = setup(1 << 16, Duration::from_secs(60), Duration::ZERO);
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        s.storage.put(&name(2), Bytes::from(data.clone())).await.unwrap();
        assert_eq!(read(s.cached.as_ref(), &name(2), None).await.unwrap(), data);
        assert_eq!(s.cached.head(&name(2)).await.unwrap().len, 1000);
        let range = ByteRange { start: 10, end: 19 };
        assert_eq!(
            read(s.cached.as_ref(), &name(2), Some(range)).await.unwrap(),
            &data[10..20]
        );
        let got = s.cached.get(&name(2), Some(range)).await.unwrap();
        assert_eq!(got.range, range);
        assert_eq!(got.meta.len, 1000);
        assert_eq!(s.storage.gets.load(Ordering::SeqCst), 1);
        assert_eq!(s.storage.heads.load(Ordering::SeqCst), 0);
    }

    /// A large object streams from storage every time (one read per request, the first one's
    /// body reused); its metadata alone is kept, so HEAD skips storage.
    /// A HEAD of a small object keeps its metadata: the next HEADs skip storage, and the next
    /// GET loads the object whole, after which GETs skip storage too.
    #[tokio::test]
    async fn a_head_keeps_a_small_objects_metadata_until_a_get_loads_it() {
        let s = setup(1 << 16, Duration::from_secs(60), Duration::ZERO);
        let n = name(7);
        s.storage.put(&n, Bytes::from_static(b"small")).await.unwrap();
        for _ in 0..3 {
            assert_eq!(s.cached.head(&n).await.unwrap().len, 5);
        }
        assert_eq!(s.storage.heads.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            assert_eq!(read(s.cached.as_ref(), &n, None).await.unwrap(), b"small");
        }
        assert_eq!(s.storage.gets.load(Ordering::SeqCst), 1);
        assert_eq!(s.cached.head(&n).await.unwrap().len, 5);
        assert_eq!(s.storage.heads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn large_objects_stream_and_keep_only_metadata() {
        let s = setup(100, Duration::from_secs(60), Duration::ZERO);
        let data = vec![7u8; 5000];
        s.storage.put(&name(3), Bytes::from(data.clone())).await.unwrap();
        assert_eq!(read(s.cached.as_ref(), &name(3), None).await.unwrap(), data);
        assert_eq!(
            s.storage.gets.load(Ordering::SeqCst),
            1,
            "the load's body is the answer"
        );
        assert_eq!(s.cached.head(&name(3)).await.unwrap().len, 5000);
        assert_eq!(s.storage.heads.load(Ordering::SeqCst), 0);
        let range = ByteRange { start: 100, end: 199 };
        assert_eq!(
            read(s.cached.as_ref(), &name(3), Some(range)).await.unwrap(),
            &data[100..200]
        );
        assert_eq!(s.storage.gets.load(Ordering::SeqCst), 2);
        assert_eq!(metric(&s.metrics, "cache_bytes"), 256.0, "metadata only");
    }

    /// A deleted object is served until its entry expires, then is gone.
    #[tokio::test]
    async fn an_object_deleted_behind_the_cache_lives_at_most_ttl() {
        let ttl = Duration::from_millis(300);
        let s = setup(1 << 16, ttl, Duration::ZERO);
        s.storage.put(&name(4), Bytes::from_static(b"image")).await.unwrap();
        assert_eq!(read(s.cached.as_ref(), &name(4), None).await.unwrap(), b"image");
        let deleted = Instant::now();
        s.storage.delete(&name(4)).await.unwrap();
        assert_eq!(read(s.cached.as_ref(), &name(4), None).await.unwrap(), b"image");
        loop {
            match read(s.cached.as_ref(), &name(4), None).await {
                Ok(_) => assert!(deleted.elapsed() < ttl, "served {:?} after deletion", deleted.elapsed()),
                Err(e) => {
                    assert!(matches!(e, StorageError::NotFound), "{e}");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Removals are reported at moka's next housekeeping (here a replacement: the name was
        // looked up again, and now holds the 404).
        s.cached.cache.run_pending_tasks().await;
        assert_eq!(metric(&s.metrics, "cache_bytes"), 256.0, "the remembered 404 only");
    }

    /// A 404 is remembered, and a put through the cache forgets it; errors are not kept.
    #[tokio::test]
    async fn missing_is_remembered_until_a_put_and_errors_are_not_kept() {
        let s = setup(1 << 16, Duration::from_secs(60), Duration::ZERO);
        for _ in 0..3 {
            assert!(matches!(
                s.cached.get(&name(5), None).await,
                Err(StorageError::NotFound)
            ));
            assert!(matches!(s.cached.head(&name(5)).await, Err(StorageError::NotFound)));
        }
        assert_eq!(s.storage.gets.load(Ordering::SeqCst), 1);
        assert_eq!(s.storage.heads.load(Ordering::SeqCst), 0);
        s.cached.put(&name(5), Bytes::from_static(b"now")).await.unwrap();
        assert_eq!(read(s.cached.as_ref(), &name(5), None).await.unwrap(), b"now");

        let failing = Arc::new(TimeoutStorage::new(
            Arc::new(Counted {
                inner: MemoryStorage::new(),
                gets: AtomicU64::new(0),
                heads: AtomicU64::new(0),
                delay: Duration::from_millis(200),
            }),
            Duration::from_millis(20),
        ));
        let cached = CachedStorage::new(failing.clone(), &CacheSettings::default(), s.metrics.clone());
        for _ in 0..2 {
            assert!(matches!(
                cached.get(&name(6), None).await,
                Err(StorageError::Unavailable(_))
            ));
        }
        assert_eq!(cached.cache.entry_count(), 0, "a failure leaves nothing behind");
    }
}
