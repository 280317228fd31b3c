//! The `fs` backend: one file per object under a root folder, named by the object name.

use std::{
    collections::BinaryHeap,
    io::{self, SeekFrom},
    path::{Path, PathBuf},
    time::SystemTime,
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{ByteRange, GetResult, ListPage, ListedObject, ObjectMeta, Storage, StorageError};
use crate::object_name::ObjectName;

/// Read size for file bodies: large enough to keep syscalls few, small enough to stream.
const CHUNK: usize = 64 * 1024;

pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Opens (and creates, if missing) the root folder.
    pub async fn new(root: &Path) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|e| StorageError::Unavailable(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self { root: root.to_owned() })
    }

    /// SECURITY: the only way a path is made, from a validated name, so it never leaves `root`.
    fn path(&self, name: &ObjectName) -> PathBuf {
        self.root.join(name.as_str())
    }

    /// A missing file is NotFound only while the root itself is there; a vanished root
    /// (an unmounted volume) is an outage.
    async fn io_error(&self, e: io::Error) -> StorageError {
        if e.kind() == io::ErrorKind::NotFound {
            match tokio::fs::metadata(&self.root).await {
                Ok(m) if m.is_dir() => StorageError::NotFound,
                _ => StorageError::Unavailable(format!("storage folder {} is not available", self.root.display())),
            }
        } else {
            StorageError::Unavailable(format!("file system error: {e}"))
        }
    }
}

fn meta_of(m: &std::fs::Metadata) -> ObjectMeta {
    let last_modified = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let nanos = last_modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let ino = 0u64;
    // Cheap and stable: changes whenever the file is replaced (new inode) or rewritten.
    ObjectMeta {
        len: m.len(),
        etag: format!("\"{:x}-{:x}-{:x}\"", m.len(), nanos, ino),
        last_modified,
    }
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    fn backend(&self) -> &'static str {
        "fs"
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        match tokio::fs::metadata(self.path(name)).await {
            Ok(m) if m.is_file() => Ok(meta_of(&m)),
            Ok(_) => Err(StorageError::NotFound),
            Err(e) => Err(self.io_error(e).await),
        }
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let mut file = match tokio::fs::File::open(self.path(name)).await {
            Ok(f) => f,
            Err(e) => return Err(self.io_error(e).await),
        };
        let m = file
            .metadata()
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        if !m.is_file() {
            return Err(StorageError::NotFound);
        }
        let meta = meta_of(&m);
        let range = match range {
            Some(r) => r,
            None if meta.len == 0 => ByteRange { start: 0, end: 0 },
            None => ByteRange {
                start: 0,
                end: meta.len - 1,
            },
        };
        let want = if meta.len == 0 { 0 } else { range.byte_count() };
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .await
                .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        }
        let body = ReaderStream::with_capacity(file.take(want), CHUNK)
            .map(|chunk| chunk.map_err(|e| StorageError::Unavailable(format!("read failed: {e}"))));
        Ok(GetResult {
            meta,
            range,
            body: Box::pin(body),
        })
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        let unavailable = |e: io::Error| StorageError::Unavailable(format!("write failed: {e}"));
        // A dot-file in the same folder, so the rename is atomic and listings skip it.
        let tmp = self
            .root
            .join(format!(".{}.{}.tmp", name, uuid::Uuid::new_v4().simple()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&data).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, self.path(name)).await?;
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(root)?.sync_all())
                .await
                .map_err(io::Error::other)?
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(unavailable(e));
        }
        Ok(())
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        let result = match tokio::fs::remove_file(self.path(name)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io_error(e).await),
        };
        StorageError::ignore_not_found(result)
    }

    async fn check(&self) -> Result<(), StorageError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(StorageError::Unavailable(format!(
                "storage folder {} is not available",
                self.root.display()
            ))),
        }
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let root = self.root.clone();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || list_dir(&root, start_after.as_deref(), limit.max(1)))
            .await
            .map_err(|e| StorageError::Other(e.to_string()))?
            .map_err(|e| StorageError::Unavailable(format!("cannot list {}: {e}", "storage folder")))
    }
}

/// Keeps only the `limit` smallest names after `start_after`, so memory stays bounded
/// however many files the folder holds.
fn list_dir(root: &Path, start_after: Option<&str>, limit: usize) -> io::Result<ListPage> {
    let mut smallest: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 1);
    let mut more = false;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Ok(key) = entry.file_name().into_string() else {
            continue;
        };
        if key.starts_with('.') || start_after.is_some_and(|s| key.as_str() <= s) {
            continue;
        }
        if !entry.file_type()?.is_file() {
            continue;
        }
        smallest.push(key);
        if smallest.len() > limit {
            smallest.pop();
            more = true;
        }
    }
    let keys = smallest.into_sorted_vec();
    let next_start_after = if more { keys.last().cloned() } else { None };
    let mut objects = Vec::with_capacity(keys.len());
    for key in keys {
        // A file deleted since the scan is simply left out.
        if let Ok(m) = std::fs::metadata(root.join(&key)) {
            objects.push(ListedObject {
                len: m.len(),
                last_modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                key,
            });
        }
    }
    Ok(ListPage {
        objects,
        next_start_after,
    })
}
