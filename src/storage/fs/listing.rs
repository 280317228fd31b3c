//! Listing the `fs` backend's folder: pages in key order for `list`, and one streamed walk
//! for `list_all`. Hidden files (a `.` prefix: our temporary files) and anything that is not a
//! regular file are never listed.

use std::{collections::BinaryHeap, fs::DirEntry, io, path::Path, time::SystemTime};

use tokio::sync::mpsc;

use crate::storage::{ListPage, ListStream, ListedObject, StorageError};

/// Pages a `list_all` walk may hold ready ahead of its reader.
const PAGES_AHEAD: usize = 2;

/// The key of a listable entry: a regular file with a UTF-8 name that is not hidden.
fn listable(entry: &DirEntry) -> io::Result<Option<String>> {
    let Ok(key) = entry.file_name().into_string() else {
        return Ok(None);
    };
    if key.starts_with('.') || !entry.file_type()?.is_file() {
        return Ok(None);
    }
    Ok(Some(key))
}

/// The listing of `key` from its metadata.
fn listed(key: String, meta: &std::fs::Metadata) -> ListedObject {
    ListedObject {
        key,
        len: meta.len(),
        last_modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// Keeps only the `limit` smallest names after `start_after`, so memory stays bounded
/// however many files the folder holds.
pub(super) fn page(root: &Path, start_after: Option<&str>, limit: usize) -> io::Result<ListPage> {
    let mut smallest: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 1);
    let mut more = false;
    for entry in std::fs::read_dir(root)? {
        let Some(key) = listable(&entry?)? else {
            continue;
        };
        if start_after.is_some_and(|s| key.as_str() <= s) {
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
        if let Ok(meta) = std::fs::metadata(root.join(&key)) {
            objects.push(listed(key, &meta));
        }
    }
    Ok(ListPage {
        objects,
        next_start_after,
    })
}

/// Every listable file under `root`, in pages of `page_size`, from one `readdir` pass on the
/// blocking pool. At most `PAGES_AHEAD` pages wait in memory; the walk stops when the reader
/// drops the stream.
pub(super) fn all(root: std::path::PathBuf, page_size: usize) -> ListStream<'static> {
    let (pages, mut receiver) = mpsc::channel(PAGES_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = walk(&root, page_size, &pages) {
            let _ = pages.blocking_send(Err(
                StorageError::unavailable("cannot list the storage folder").because(e)
            ));
        }
    });
    Box::pin(futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// Sends the pages of one walk; returns early (Ok) when nobody reads any more.
fn walk(
    root: &Path,
    page_size: usize,
    pages: &mpsc::Sender<Result<Vec<ListedObject>, StorageError>>,
) -> io::Result<()> {
    let mut page = Vec::with_capacity(page_size);
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Some(key) = listable(&entry)? else {
            continue;
        };
        // A file deleted since readdir saw it is simply left out.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        page.push(listed(key, &meta));
        if page.len() == page_size
            && pages
                .blocking_send(Ok(std::mem::replace(&mut page, Vec::with_capacity(page_size))))
                .is_err()
        {
            return Ok(());
        }
    }
    if !page.is_empty() {
        let _ = pages.blocking_send(Ok(page));
    }
    Ok(())
}

/// How the fs backend names a file being written: `.{name}.{uuid}.tmp`, hidden from listings.
pub(super) const TMP_PREFIX: &str = ".";
pub(super) const TMP_SUFFIX: &str = ".tmp";

/// Removes the temporary files under `root` last modified more than `older_than` ago (a write
/// takes seconds; one interrupted by a crash stays forever otherwise), and counts them.
pub(super) fn sweep_temporary(root: &Path, older_than: std::time::Duration) -> io::Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TMP_PREFIX) && name.ends_with(TMP_SUFFIX) && entry.file_type()?.is_file()) {
            continue;
        }
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age > older_than {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    /// 2,500 files in pages of 1,000: three pages, every file once, hidden files left out; a
    /// walk whose reader is gone stops at its first page.
    #[tokio::test]
    async fn one_walk_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..2_500 {
            std::fs::write(dir.path().join(format!("{i:05}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join(".partial.tmp"), b"x").unwrap();
        let pages: Vec<Vec<ListedObject>> = all(dir.path().to_owned(), 1_000).try_collect().await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [1_000, 1_000, 500]);
        let mut keys: Vec<String> = pages.into_iter().flatten().map(|o| o.key).collect();
        keys.sort();
        assert_eq!(keys, (0..2_500).map(|i| format!("{i:05}")).collect::<Vec<_>>());

        let (pages, receiver) = mpsc::channel(1);
        drop(receiver);
        let root = dir.path().to_owned();
        tokio::task::spawn_blocking(move || walk(&root, 10, &pages))
            .await
            .unwrap()
            .unwrap();
    }
}
