//! The `fs` backend: one file per object under a root folder, named by the object name.

use std::{
    collections::BinaryHeap,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::SystemTime,
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{ByteRange, GetResult, ListPage, ListedObject, ObjectMeta, Storage, StorageError};
use crate::object_name::ObjectName;

/// Read size for file bodies: large enough to keep syscalls few, small enough to stream.
const CHUNK: usize = 64 * 1024;

/// The `fs` backend: one file per object under a root folder.
pub struct FsStorage {
    root: PathBuf,
    inline_reads: bool,
}

impl FsStorage {
    /// Opens (and creates, if missing) the root folder.
    pub async fn new(root: &Path) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|e| StorageError::Unavailable(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self {
            root: root.to_owned(),
            inline_reads: false,
        })
    }

    /// See `storage.fs.inline_reads`.
    pub fn with_inline_reads(self, inline_reads: bool) -> Self {
        Self { inline_reads, ..self }
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

/// Runs blocking file work on tokio's blocking pool, or right here with `inline`.
async fn blocking<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StorageError> {
    if inline {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Other(format!("file task failed: {e}")))
}

enum Opened {
    File(OpenFile),
    NotAFile,
}

struct OpenFile {
    /// Positioned after `first`.
    file: std::fs::File,
    meta: ObjectMeta,
    /// The range asked for, resolved against the length.
    range: ByteRange,
    first: Bytes,
    /// Bytes of the range still to read after `first`.
    remaining: u64,
}

/// Blocking: opens the object, reads its metadata from the open file (so they describe the
/// bytes we read even if the name is replaced meanwhile) and the first chunk of `range`.
fn open_and_read_first(path: &Path, range: Option<ByteRange>) -> io::Result<Opened> {
    let mut file = std::fs::File::open(path)?;
    let m = file.metadata()?;
    if !m.is_file() {
        return Ok(Opened::NotAFile);
    }
    let meta = meta_of(&m);
    let range = match range {
        Some(r) => r,
        None => ByteRange {
            start: 0,
            end: meta.len.saturating_sub(1),
        },
    };
    let want = if meta.len == 0 { 0 } else { range.byte_count() };
    if range.start > 0 {
        file.seek(SeekFrom::Start(range.start))?;
    }
    let (file, first) = read_chunk(file, want)?;
    let remaining = want - first.len() as u64;
    Ok(Opened::File(OpenFile {
        file,
        meta,
        range,
        first,
        remaining,
    }))
}

/// Blocking: reads `min(CHUNK, remaining)` bytes, or fails if the file ends first (it shrank
/// under us: the body must not end short as if complete).
fn read_chunk(mut file: std::fs::File, remaining: u64) -> io::Result<(std::fs::File, Bytes)> {
    let len = usize::try_from(remaining).unwrap_or(usize::MAX).min(CHUNK);
    let mut buf = Vec::with_capacity(len);
    // `take` + `read_to_end` fills the spare capacity without zeroing it first.
    (&mut file).take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ended before its length",
        ));
    }
    Ok((file, Bytes::from(buf)))
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
        let path = self.path(name);
        let inline = self.inline_reads;
        // One trip to the blocking pool opens, stats and reads the first chunk: a small image
        // costs one hop instead of one per call (the hops, not the reads, dominated the profile).
        let opened = blocking(inline, move || open_and_read_first(&path, range)).await?;
        let OpenFile {
            file,
            meta,
            range,
            first,
            remaining,
        } = match opened {
            Ok(Opened::File(open)) => open,
            Ok(Opened::NotAFile) => return Err(StorageError::NotFound),
            Err(e) => return Err(self.io_error(e).await),
        };
        let rest = futures_util::stream::try_unfold((file, remaining), move |(file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let (file, chunk) = blocking(inline, move || read_chunk(file, remaining))
                .await?
                .map_err(|e| StorageError::Unavailable(format!("read failed: {e}")))?;
            let remaining = remaining - chunk.len() as u64;
            Ok(Some((chunk, (file, remaining))))
        });
        let first = (!first.is_empty()).then_some(Ok(first));
        Ok(GetResult {
            meta,
            range,
            body: Box::pin(futures_util::stream::iter(first).chain(rest)),
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

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    async fn read_all(
        storage: &FsStorage,
        name: &ObjectName,
        range: Option<ByteRange>,
    ) -> Result<Vec<u8>, StorageError> {
        let got = storage.get(name, range).await?;
        let chunks: Vec<Bytes> = got.body.try_collect().await?;
        Ok(chunks.concat())
    }

    /// Both read modes return exactly the bytes asked for, across chunk boundaries, and fail
    /// (never end short) when the file shrinks after it was opened.
    #[tokio::test]
    async fn chunked_reads_in_both_modes() {
        let dir = tempfile::tempdir().unwrap();
        let name = ObjectName::parse("0123456789abcdef0123456789abcdef.png").unwrap();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join(name.as_str()), &data).unwrap();
        for inline in [false, true] {
            let storage = FsStorage::new(dir.path()).await.unwrap().with_inline_reads(inline);
            assert_eq!(read_all(&storage, &name, None).await.unwrap(), data, "inline={inline}");
            let range = ByteRange {
                start: CHUNK as u64 - 5,
                end: 2 * CHUNK as u64 + 5,
            };
            let part = read_all(&storage, &name, Some(range)).await.unwrap();
            assert_eq!(part, &data[CHUNK - 5..=2 * CHUNK + 5], "inline={inline}");

            let got = storage.get(&name, None).await.unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join(name.as_str()))
                .unwrap()
                .set_len(CHUNK as u64 + 1)
                .unwrap();
            let result: Result<Vec<Bytes>, _> = got.body.try_collect().await;
            assert!(matches!(result, Err(StorageError::Unavailable(_))), "inline={inline}");
            std::fs::write(dir.path().join(name.as_str()), &data).unwrap();
        }
    }
}
