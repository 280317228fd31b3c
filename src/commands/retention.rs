//! `image-gateway retention`: deletes stored images older than `retention.max_age`.
//!
//! Lists storage in one pass, a page at a time ([`Storage::list_all`]: memory stays bounded
//! however many objects there are, and the pass costs O(objects) on every backend),
//! touches only keys that are valid object names under the configured root or prefix (never
//! anything else in the bucket or folder), and deletes in batches (S3 DeleteObjects, at most
//! 1000 keys a call). Deleting is idempotent, so two runs at once, or a run interrupted and
//! started again, are safe. Age is the object's last-modified time (the file's mtime for `fs`).
//! A run also removes what writes interrupted by a crash left behind more than
//! [`STALE_WRITE`] ago (the fs backend's hidden temporary files).
//!
//! An expired image's stored variants (`variants.store`) are deleted first, then the image: a
//! run interrupted between the two leaves the image, and the next run finishes the job, so no
//! variant outlives its source. It costs one listing of the image's variants per expired image
//! ([`VARIANT_PURGES`] at once), whether the store is on or not: variants stored while it was
//! on go with their source after it is turned off.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use super::Exit;
use crate::{
    object_name::ObjectName,
    storage::{Storage, StorageError},
};

/// Expired images whose variants are deleted at once.
pub const VARIANT_PURGES: usize = 16;

/// S3 DeleteObjects takes at most this many keys.
pub const PAGE_SIZE: usize = 1000;

/// A write in progress for longer than this was interrupted (one takes seconds; storage calls
/// time out long before).
pub const STALE_WRITE: Duration = Duration::from_secs(3600);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys listed.
    pub scanned: u64,
    /// Keys that are not object names, left alone.
    pub foreign: u64,
    /// Object names older than the maximum age.
    pub expired: u64,
    /// Of those, deleted (0 in a dry run).
    pub deleted: u64,
    /// Bytes of the deleted objects.
    pub bytes_freed: u64,
    /// Stored variants of the expired images, deleted with them (0 in a dry run).
    pub variants: u64,
    /// Failed listings or deletions.
    pub errors: u64,
    /// Leftovers of interrupted writes removed (0 in a dry run).
    pub incomplete: u64,
}

impl Report {
    /// Ends the command: the run logged, its summary printed; success only without errors.
    pub fn finish(&self, dry_run: bool) -> Exit {
        tracing::info!(
            scanned = self.scanned,
            foreign = self.foreign,
            expired = self.expired,
            deleted = self.deleted,
            bytes_freed = self.bytes_freed,
            errors = self.errors,
            dry_run,
            "retention finished"
        );
        println!("{}", self.summary(dry_run));
        match self.errors {
            0 => Exit::Success,
            _ => Exit::Failure,
        }
    }

    /// The one-line summary printed at the end of a run.
    pub fn summary(&self, dry_run: bool) -> String {
        format!(
            "retention: scanned={} foreign={} expired={} deleted={} bytes_freed={} errors={} incomplete={} \
             variants={} dry_run={dry_run}",
            self.scanned,
            self.foreign,
            self.expired,
            self.deleted,
            self.bytes_freed,
            self.errors,
            self.incomplete,
            self.variants
        )
    }
}

/// Deletes (or, with `dry_run`, only counts) the objects older than `max_age` at `now`.
pub async fn run(storage: &dyn Storage, max_age: Duration, now: SystemTime, dry_run: bool, page_size: usize) -> Report {
    let cutoff = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = Report::default();
    let mut pages = storage.list_all(page_size.clamp(1, PAGE_SIZE));
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "listing failed; stopping this run");
                report.errors += 1;
                break;
            }
        };
        report.scanned += page.len() as u64;
        let mut batch = Vec::new();
        for object in &page {
            let Ok(name) = ObjectName::parse(&object.key) else {
                report.foreign += 1;
                continue;
            };
            if object.last_modified < cutoff {
                report.expired += 1;
                batch.push((name, object.len));
            }
        }
        if !dry_run && !batch.is_empty() {
            batch = purge_variants(storage, batch, &mut report).await;
        }
        if !dry_run && !batch.is_empty() {
            let names: Vec<ObjectName> = batch.iter().map(|(n, _)| n.clone()).collect();
            match storage.delete_many(&names).await {
                Ok(failures) => {
                    for (name, len) in &batch {
                        match failures.iter().find(|(failed, _)| failed == name) {
                            Some((_, e)) => {
                                tracing::warn!(object = %name, error = %e, "delete failed");
                                report.errors += 1;
                            }
                            None => {
                                report.deleted += 1;
                                report.bytes_freed += len;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, objects = names.len(), "batch delete failed");
                    report.errors += names.len() as u64;
                }
            }
        }
    }
    if !dry_run {
        match storage.sweep_incomplete(STALE_WRITE).await {
            Ok(removed) => report.incomplete = removed,
            Err(e) => {
                tracing::warn!(error = %e, "removing interrupted writes failed");
                report.errors += 1;
            }
        }
    }
    report
}

/// Deletes the stored variants of each expired image in `batch` and answers the images whose
/// variants are gone (an image whose variants could not be deleted stays, for the next run).
async fn purge_variants(
    storage: &dyn Storage,
    batch: Vec<(ObjectName, u64)>,
    report: &mut Report,
) -> Vec<(ObjectName, u64)> {
    let purged: Vec<((ObjectName, u64), Result<u64, StorageError>)> = futures_util::stream::iter(batch)
        .map(|(name, len)| async move {
            let result = storage.delete_variants(&name).await;
            ((name, len), result)
        })
        .buffer_unordered(VARIANT_PURGES)
        .collect()
        .await;
    let mut left = Vec::new();
    for (object, result) in purged {
        match result {
            Ok(count) => {
                report.variants += count;
                left.push(object);
            }
            Err(e) => {
                tracing::warn!(object = %object.0, error = %e, "deleting its variants failed; kept for the next run");
                report.errors += 1;
            }
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::storage::{ByteRange, GetResult, ListPage, ListedObject, ObjectMeta, StorageError};

    /// Lists fixed keys; refuses to delete one of them, and the variants of another; each
    /// other image has one variant.
    struct Fixed {
        keys: Vec<(String, SystemTime)>,
        refuse: String,
        refuse_variants: String,
        deleted: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Storage for Fixed {
        fn backend(&self) -> &'static str {
            "fixed"
        }
        async fn head(&self, _: &ObjectName) -> Result<ObjectMeta, StorageError> {
            Err(StorageError::NotFound)
        }
        async fn get(&self, _: &ObjectName, _: Option<ByteRange>) -> Result<GetResult, StorageError> {
            Err(StorageError::NotFound)
        }
        async fn put(&self, _: &ObjectName, _: Bytes) -> Result<(), StorageError> {
            Ok(())
        }
        async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
            if name.as_str() == self.refuse {
                return Err(StorageError::unavailable("refused"));
            }
            self.deleted.lock().unwrap().push(name.to_string());
            Ok(())
        }
        async fn delete_variants(&self, name: &ObjectName) -> Result<u64, StorageError> {
            if name.as_str() == self.refuse_variants {
                return Err(StorageError::unavailable("refused"));
            }
            Ok(1)
        }
        async fn list(&self, after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
            let rest: Vec<_> = self
                .keys
                .iter()
                .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
                .collect();
            let objects: Vec<ListedObject> = rest
                .iter()
                .take(limit)
                .map(|(key, last_modified)| ListedObject {
                    key: key.clone(),
                    len: 10,
                    last_modified: *last_modified,
                })
                .collect();
            let next_start_after = (rest.len() > limit).then(|| objects.last().unwrap().key.clone());
            Ok(ListPage {
                objects,
                next_start_after,
            })
        }
        async fn check(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    /// An image whose variants could not be deleted stays for the next run (so no variant
    /// outlives its source); one that could not be deleted has lost its variants already.
    #[tokio::test]
    async fn failures_are_counted_and_the_rest_proceeds() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(100);
        let keys = vec![
            ("0000000000000000000000000000000a.png".to_string(), old),
            ("0000000000000000000000000000000b.png".to_string(), old),
            ("0000000000000000000000000000000c.png".to_string(), now),
            ("0000000000000000000000000000000d.png".to_string(), old),
            ("zz-not-ours.png".to_string(), old),
        ];
        let storage = Fixed {
            keys,
            refuse: "0000000000000000000000000000000a.png".into(),
            refuse_variants: "0000000000000000000000000000000d.png".into(),
            deleted: Mutex::default(),
        };
        let report = run(&storage, Duration::from_secs(10), now, false, 1).await;
        assert_eq!(
            report,
            Report {
                scanned: 5,
                foreign: 1,
                expired: 3,
                deleted: 1,
                bytes_freed: 10,
                errors: 2,
                incomplete: 0,
                variants: 2,
            }
        );
        assert_eq!(
            *storage.deleted.lock().unwrap(),
            ["0000000000000000000000000000000b.png"]
        );
        assert!(
            report
                .summary(false)
                .ends_with("errors=2 incomplete=0 variants=2 dry_run=false")
        );
    }
}
