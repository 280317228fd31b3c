//! The `memory` backend: objects in a map, for tests and for running the conformance suite
//! over the wrappers without a disk or a server. Not selectable in the configuration.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use bytes::Bytes;

use super::{ByteRange, GetResult, ListPage, ListedObject, ObjectMeta, Storage, StorageError, VariantKey};
use crate::object_name::ObjectName;

/// Bodies are streamed in chunks of this size, as a real backend would.
const CHUNK: usize = 64 << 10;

/// Objects held in memory; each `put` gets a new ETag.
#[derive(Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<String, Stored>>,
    /// Stored variants by their path (`variants/NAME/ID`), apart from the objects as a
    /// backend's listings leave them apart.
    variants: Mutex<BTreeMap<String, Bytes>>,
}

#[derive(Clone)]
struct Stored {
    data: Bytes,
    meta: ObjectMeta,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Stores `data` under any key, object name or not (as foreign files in a bucket would be).
    pub fn put_key(&self, key: &str, data: Bytes, last_modified: SystemTime) {
        let version = version_tag(&data, last_modified);
        let meta = ObjectMeta {
            len: data.len() as u64,
            etag: format!("\"{version:016x}\""),
            last_modified,
        };
        self.lock().insert(key.to_owned(), Stored { data, meta });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stored>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn variants(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.variants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stored(&self, name: &ObjectName) -> Result<Stored, StorageError> {
        self.lock().get(name.as_str()).cloned().ok_or(StorageError::NotFound)
    }
}

/// A cheap version tag from the content and time (FNV-1a; not a security boundary).
fn version_tag(data: &[u8], at: SystemTime) -> u64 {
    let nanos = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data.iter().copied().chain(nanos.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        Ok(self.stored(name)?.meta)
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let Stored { data, meta } = self.stored(name)?;
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: meta.len.saturating_sub(1),
        });
        let body = if meta.len == 0 {
            Bytes::new()
        } else {
            let end = usize::try_from(range.end.min(meta.len - 1)).unwrap_or(usize::MAX);
            let start = usize::try_from(range.start).unwrap_or(usize::MAX).min(end);
            data.slice(start..=end)
        };
        let chunks: Vec<Result<Bytes, StorageError>> = (0..body.len())
            .step_by(CHUNK)
            .map(|at| Ok(body.slice(at..(at + CHUNK).min(body.len()))))
            .collect();
        Ok(GetResult {
            meta,
            range,
            body: Box::pin(futures_util::stream::iter(chunks)),
        })
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.put_key(name.as_str(), data, SystemTime::now());
        Ok(())
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        self.lock().remove(name.as_str());
        Ok(())
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let objects = self.lock();
        let after = |key: &String| start_after.is_none_or(|s| key.as_str() > s);
        let mut page: Vec<ListedObject> = objects
            .iter()
            .filter(|(key, _)| after(key))
            .take(limit.max(1) + 1)
            .map(|(key, stored)| ListedObject {
                key: key.clone(),
                len: stored.meta.len,
                last_modified: stored.meta.last_modified,
            })
            .collect();
        let more = page.len() > limit.max(1);
        page.truncate(limit.max(1));
        let next_start_after = if more { page.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage {
            objects: page,
            next_start_after,
        })
    }

    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        self.variants().insert(key.path(), data);
        Ok(())
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        self.variants().get(&key.path()).cloned().ok_or(StorageError::NotFound)
    }

    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        let folder = VariantKey::folder(source);
        let mut variants = self.variants();
        let before = variants.len();
        variants.retain(|path, _| !path.starts_with(&folder));
        Ok((before - variants.len()) as u64)
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
