//! Reads that never wait for a disk. On Linux, `openat2(RESOLVE_CACHED)` and
//! `preadv2(RWF_NOWAIT)` succeed only when the path and the bytes are already in the kernel's
//! caches, and answer "would block" otherwise; the fs backend serves what they return on the
//! I/O thread (no blocking-pool round trip) and sends the rest to the blocking pool.
//! Elsewhere, and on file systems without them, every call answers "would block".

use std::{fs::File, io, path::Path};

use bytes::Bytes;

/// Opens `path` for reading if that needs no disk access; `Ok(None)` if it would.
#[cfg(target_os = "linux")]
pub(super) fn open(path: &Path) -> io::Result<Option<File>> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
    match openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e) if would_block(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads up to `len` bytes at `offset` from the page cache; `Ok(None)` if none of them is
/// there. Fewer bytes than asked come back when only some are cached, none at the end of the
/// file.
#[cfg(target_os = "linux")]
pub(super) fn read(file: &File, offset: u64, len: usize) -> io::Result<Option<Bytes>> {
    use rustix::io::{ReadWriteFlags, preadv2};
    let mut buf = vec![0; len];
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(&mut buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(Bytes::from(buf)))
        }
        Err(e) if would_block(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// EAGAIN is the answer "not cached"; the others mean the kernel or the file system cannot
/// tell (before Linux 5.12, or a file system without RWF_NOWAIT): the blocking pool then does
/// the call and reports any real error.
#[cfg(target_os = "linux")]
fn would_block(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::AGAIN, Errno::NOSYS, Errno::INVAL, Errno::OPNOTSUPP].contains(&e)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn open(_path: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn read(_file: &File, _offset: u64, _len: usize) -> io::Result<Option<Bytes>> {
    Ok(None)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;

    use super::*;

    /// A file just written is served from the cache; once the kernel has dropped its pages,
    /// the read says "would block" instead of waiting for the disk. The folder is on the
    /// clone's disk: tmpfs cannot drop pages.
    #[test]
    fn reads_only_what_is_cached() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("object");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = File::create(&path).unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();

        let file = open(&path)
            .unwrap()
            .expect("a path just created is in the dentry cache");
        assert_eq!(read(&file, 10, 100).unwrap().unwrap(), &data[10..110]);
        assert_eq!(
            read(&file, 199_990, 100).unwrap().unwrap(),
            &data[199_990..],
            "short at the end"
        );
        assert!(
            read(&file, 200_000, 100).unwrap().unwrap().is_empty(),
            "empty past the end"
        );

        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert_eq!(read(&file, 0, 100).unwrap(), None, "evicted pages are not read inline");
        let missing = dir.path().join("missing");
        assert!(!missing.exists(), "caches the negative lookup");
        assert!(open(&missing).is_err_and(|e| e.kind() == io::ErrorKind::NotFound));
    }
}
