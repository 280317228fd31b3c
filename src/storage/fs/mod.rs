//! The `fs` backend: one file per object under a root folder, named by the object name.

mod listing;
use listing::{TMP_PREFIX, TMP_SUFFIX};
mod page_cache;

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use bytes::Bytes;
use futures_util::StreamExt;

use super::{ByteRange, GetResult, ListPage, ListStream, ObjectMeta, Storage, StorageError, VariantKey};
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
            .map_err(|e| StorageError::unavailable(format!("cannot create {}", root.display())).because(e))?;
        Ok(Self {
            root: root.to_owned(),
            inline_reads: true,
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

    /// SECURITY: a stored variant's path, from a validated name and id (`VariantKey`).
    fn variant_path(&self, key: &VariantKey) -> PathBuf {
        self.root.join(key.path())
    }

    /// Writes `data` to `path` atomically: into a dot-file in the root first (listings skip
    /// it; `sweep_incomplete` removes it after a crash), then renamed, and the folder synced.
    /// `path`'s folders below the root are made when missing; the root never is (a vanished
    /// root is an unmounted volume: an outage, not an empty store).
    /// The whole write is one task on the blocking pool: a caller that goes away (a client
    /// hanging up, a storage timeout) cannot drop it half-way and leave the temporary file
    /// behind; it ends, and removes the file itself when something failed.
    async fn write_atomically(&self, path: PathBuf, tag: String, data: Bytes) -> Result<(), StorageError> {
        let tmp = self.root.join(format!(
            "{TMP_PREFIX}{tag}.{}{TMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        let root = self.root.clone();
        let write = move || {
            let written = (|| {
                let folder = path
                    .parent()
                    .ok_or_else(|| io::Error::other("a path without a folder"))?;
                let below: Vec<&Path> = folder.ancestors().take_while(|f| *f != root).collect();
                for made in below.into_iter().rev() {
                    match std::fs::create_dir(made) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                }
                let mut file = File::create(&tmp)?;
                io::Write::write_all(&mut file, &data)?;
                file.sync_all()?;
                drop(file);
                std::fs::rename(&tmp, &path)?;
                File::open(folder)?.sync_all()
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        };
        blocking(write)
            .await?
            .map_err(|e| StorageError::unavailable("write failed").because(e))
    }

    /// A missing file is NotFound only while the root itself is there; a vanished root
    /// (an unmounted volume) is an outage.
    async fn io_error(&self, e: io::Error) -> StorageError {
        if e.kind() == io::ErrorKind::NotFound {
            match tokio::fs::metadata(&self.root).await {
                Ok(m) if m.is_dir() => StorageError::NotFound,
                _ => StorageError::unavailable(format!("storage folder {} is not available", self.root.display())),
            }
        } else {
            StorageError::unavailable("file system error").because(e)
        }
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::other("file task failed").because(e))
}

enum Opened {
    File(OpenFile),
    NotAFile,
}

struct OpenFile {
    file: Arc<File>,
    meta: ObjectMeta,
    /// The range asked for, resolved against the length.
    range: ByteRange,
    /// The first bytes of `range` (possibly none yet).
    first: Bytes,
}

/// Blocking: opens the object, reads its metadata from the open file (so they describe the
/// bytes we read even if the name is replaced meanwhile) and the first chunk of `range`.
fn open_and_read_first(path: &Path, range: Option<ByteRange>) -> io::Result<Opened> {
    let file = File::open(path)?;
    let Some((meta, range)) = describe(&file, range)? else {
        return Ok(Opened::NotAFile);
    };
    let first = read_exact_at(&file, range.start, first_len(&meta, &range))?;
    Ok(Opened::File(OpenFile {
        file: Arc::new(file),
        meta,
        range,
        first,
    }))
}

/// The same without waiting for a disk (`page_cache`): `Ok(None)` when the open would. A
/// first chunk that is not cached is left to the stream (it comes back empty).
fn open_cached(path: &Path, range: Option<ByteRange>) -> io::Result<Option<Opened>> {
    let Some(file) = page_cache::open(path)? else {
        return Ok(None);
    };
    let Some((meta, range)) = describe(&file, range)? else {
        return Ok(Some(Opened::NotAFile));
    };
    let want = first_len(&meta, &range);
    let first = match page_cache::read(&file, range.start, want)? {
        Some(bytes) if bytes.is_empty() && want > 0 => return Err(ended_early()),
        Some(bytes) => bytes,
        None => Bytes::new(),
    };
    Ok(Some(Opened::File(OpenFile {
        file: Arc::new(file),
        meta,
        range,
        first,
    })))
}

/// The object's metadata and `range` resolved against its length; `None` if it is not a
/// regular file.
fn describe(file: &File, range: Option<ByteRange>) -> io::Result<Option<(ObjectMeta, ByteRange)>> {
    let m = file.metadata()?;
    if !m.is_file() {
        return Ok(None);
    }
    let meta = meta_of(&m);
    let range = range.unwrap_or(ByteRange {
        start: 0,
        end: meta.len.saturating_sub(1),
    });
    Ok(Some((meta, range)))
}

/// Bytes of `range` to read: none for an empty object.
fn range_len(meta: &ObjectMeta, range: &ByteRange) -> u64 {
    if meta.len == 0 { 0 } else { range.byte_count() }
}

fn first_len(meta: &ObjectMeta, range: &ByteRange) -> usize {
    chunk_len(range_len(meta, range))
}

fn chunk_len(remaining: u64) -> usize {
    usize::try_from(remaining).unwrap_or(usize::MAX).min(CHUNK)
}

/// The file ended before its length: it shrank under us, and the body must not end short as
/// if complete.
fn ended_early() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended before its length")
}

/// Blocking: reads exactly `len` bytes at `offset`, or fails if the file ends first.
fn read_exact_at(mut file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    file.seek(SeekFrom::Start(offset))?;
    // `take` + `read_to_end` fills the spare capacity without zeroing it first.
    file.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(ended_early());
    }
    Ok(Bytes::from(buf))
}

/// The next chunk at `offset`: from the page cache right here when `inline` allows it (a
/// short read is fine, the stream goes on from where it stopped), else on the blocking pool.
async fn read_next(file: &Arc<File>, offset: u64, remaining: u64, inline: bool) -> Result<Bytes, StorageError> {
    let failed = |e: io::Error| StorageError::unavailable("read failed").because(e);
    let len = chunk_len(remaining);
    if inline {
        match page_cache::read(file, offset, len).map_err(failed)? {
            Some(bytes) if bytes.is_empty() => return Err(failed(ended_early())),
            Some(bytes) => return Ok(bytes),
            None => {}
        }
    }
    let file = file.clone();
    blocking(move || read_exact_at(&file, offset, len))
        .await?
        .map_err(failed)
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
        // Page-cached files are opened and read right here; otherwise one trip to the blocking
        // pool opens, stats and reads the first chunk: a small image costs one hop instead of
        // one per call (the hops, not the reads, dominated the profile).
        let cached = if inline {
            open_cached(&path, range).transpose()
        } else {
            None
        };
        let opened = match cached {
            Some(opened) => opened,
            None => blocking(move || open_and_read_first(&path, range)).await?,
        };
        let OpenFile {
            file,
            meta,
            range,
            first,
        } = match opened {
            Ok(Opened::File(open)) => open,
            Ok(Opened::NotAFile) => return Err(StorageError::NotFound),
            Err(e) => return Err(self.io_error(e).await),
        };
        let offset = range.start + first.len() as u64;
        let remaining = range_len(&meta, &range) - first.len() as u64;
        let rest = futures_util::stream::try_unfold((offset, remaining), move |(offset, remaining)| {
            let file = file.clone();
            async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let chunk = read_next(&file, offset, remaining, inline).await?;
                let read = chunk.len() as u64;
                Ok(Some((chunk, (offset + read, remaining - read))))
            }
        });
        let first = (!first.is_empty()).then_some(Ok(first));
        Ok(GetResult {
            meta,
            range,
            body: Box::pin(futures_util::stream::iter(first).chain(rest)),
        })
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.write_atomically(self.path(name), name.to_string(), data).await
    }

    async fn put_variant(&self, key: &VariantKey, data: Bytes) -> Result<(), StorageError> {
        let tag = format!("{}.{}", key.source(), key.id());
        self.write_atomically(self.variant_path(key), tag, data).await
    }

    async fn get_variant(&self, key: &VariantKey) -> Result<Bytes, StorageError> {
        match tokio::fs::read(self.variant_path(key)).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) => Err(self.io_error(e).await),
        }
    }

    async fn delete_variants(&self, source: &ObjectName) -> Result<u64, StorageError> {
        let folder = self.root.join(VariantKey::folder(source));
        let removed = blocking(move || -> io::Result<u64> {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            let mut removed = 0;
            for entry in entries {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
            // Another pod may store a variant meanwhile: the folder then stays, with it.
            let _ = std::fs::remove_dir(&folder);
            Ok(removed)
        })
        .await?;
        removed.map_err(|e| StorageError::unavailable("cannot delete variants").because(e))
    }

    async fn sweep_incomplete(&self, older_than: std::time::Duration) -> Result<u64, StorageError> {
        let root = self.root.clone();
        blocking(move || listing::sweep_temporary(&root, older_than))
            .await?
            .map_err(|e| StorageError::unavailable("cannot sweep storage folder").because(e))
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
            _ => Err(StorageError::unavailable(format!(
                "storage folder {} is not available",
                self.root.display()
            ))),
        }
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let root = self.root.clone();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || listing::page(&root, start_after.as_deref(), limit.max(1)))
            .await
            .map_err(|e| StorageError::other("the listing task failed").because(e))?
            .map_err(|e| StorageError::unavailable("cannot list the storage folder").because(e))
    }

    /// One walk of the folder (a page per `page_size` files, in directory order) instead of
    /// one full scan per page: retention over n files costs O(n), not O(n²/page).
    fn list_all(&self, page_size: usize) -> ListStream<'_> {
        listing::all(self.root.clone(), page_size.max(1))
    }
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

    /// A caller that goes away during a put (a client hanging up, a storage timeout) leaves
    /// no temporary file: the write ends whole, or not at all, on its own.
    #[tokio::test]
    async fn a_put_dropped_half_way_leaves_no_temporary_file() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let storage = FsStorage::new(dir.path()).await.unwrap();
        let name = ObjectName::parse("0123456789abcdef0123456789abcdef.png").unwrap();
        let data = Bytes::from(vec![7u8; 64 << 20]);
        let dropped = tokio::time::timeout(std::time::Duration::from_millis(2), storage.put(&name, data.clone())).await;
        assert!(
            dropped.is_err(),
            "the put ended before it could be dropped; the test proves nothing"
        );
        let hidden = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
                .count()
        };
        // The write goes on without the caller; on a loaded machine it may not have begun yet.
        let stored = dir.path().join(name.as_str());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while hidden() > 0 || !stored.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "a temporary file was left behind, or the object never appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read(&stored).unwrap().len(), data.len());
    }

    #[tokio::test]
    async fn only_stale_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).await.unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for file in [
            ".a.1.tmp",
            ".b.2.tmp",
            "0123456789abcdef0123456789abcdef.png",
            ".hidden",
        ] {
            std::fs::write(dir.path().join(file), b"x").unwrap();
            if file != ".b.2.tmp" {
                std::fs::File::options()
                    .write(true)
                    .open(dir.path().join(file))
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
        let removed = storage
            .sweep_incomplete(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".b.2.tmp", ".hidden", "0123456789abcdef0123456789abcdef.png"]);
    }

    /// Both read modes return exactly the bytes asked for, across chunk boundaries, whether
    /// the file is in the page cache or not, and fail (never end short) when the file shrinks
    /// after it was opened. The folder is on the clone's disk: tmpfs cannot drop pages.
    #[tokio::test]
    async fn chunked_reads_in_both_modes() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let name = ObjectName::parse("0123456789abcdef0123456789abcdef.png").unwrap();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join(name.as_str()), &data).unwrap();
        for (inline, evicted) in [(false, false), (true, false), (true, true)] {
            if evicted {
                evict(&dir.path().join(name.as_str()));
            }
            let storage = FsStorage::new(dir.path()).await.unwrap().with_inline_reads(inline);
            assert_eq!(
                read_all(&storage, &name, None).await.unwrap(),
                data,
                "inline={inline} evicted={evicted}"
            );
            let range = ByteRange {
                start: CHUNK as u64 - 5,
                end: 2 * CHUNK as u64 + 5,
            };
            let part = read_all(&storage, &name, Some(range)).await.unwrap();
            assert_eq!(
                part,
                &data[CHUNK - 5..=2 * CHUNK + 5],
                "inline={inline} evicted={evicted}"
            );

            let got = storage.get(&name, None).await.unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join(name.as_str()))
                .unwrap()
                .set_len(CHUNK as u64 + 1)
                .unwrap();
            let result: Result<Vec<Bytes>, _> = got.body.try_collect().await;
            assert!(
                matches!(result, Err(StorageError::Unavailable(_))),
                "inline={inline} evicted={evicted}"
            );
            std::fs::write(dir.path().join(name.as_str()), &data).unwrap();
        }
    }

    /// Drops the file's pages from the page cache (Linux), so reads must go to the disk.
    fn evict(path: &Path) {
        let file = File::open(path).unwrap();
        file.sync_all().unwrap();
        #[cfg(target_os = "linux")]
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }
}
