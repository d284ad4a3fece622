//! Hashing one file: one open, one pass over the bytes, both digests.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use twox_hash::XxHash3_128;

use crate::digest::{Digest, Stamp};
use crate::error::{FileKind, HashError};

/// Size of the one reused read buffer (per thread). Big enough to keep syscalls rare, small
/// enough that the buffer is still in L2 when the second hasher walks it.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// A file's digests together with the stamp of the exact version that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// SHA-256 and XXH3-128 of the content.
    pub digest: Digest,
    /// `stat` of the file as it was read; unchanged from before to after the read.
    pub stamp: Stamp,
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hashes the regular file at `path` in one read, feeding SHA-256 and XXH3-128 from the same
/// buffer (one per thread, reused across calls).
///
/// The path is never followed if it is a symbolic link, and a FIFO, socket or device is never
/// opened, so the call cannot block on one.
///
/// # Errors
/// [`HashError::NotFound`] if the file is gone, [`HashError::PermissionDenied`] if it cannot be
/// read, [`HashError::NotRegularFile`] for anything but a regular file, [`HashError::Changed`]
/// if its size or mtime moved while it was read, and [`HashError::Io`] for the rest.
pub fn hash_file(path: &Path) -> Result<Hashed, HashError> {
    BUFFER.with_borrow_mut(|buf| hash_file_with_buffer(path, buf))
}

/// [`hash_file`] with a caller-owned buffer, which is grown to [`BUFFER_SIZE`] if smaller.
///
/// # Errors
/// As [`hash_file`].
pub fn hash_file_with_buffer(path: &Path, buf: &mut Vec<u8>) -> Result<Hashed, HashError> {
    let mut hashing = Hashing::open(path, None)?;
    while !hashing.advance(buf, u64::MAX)? {}
    hashing.finish()
}

/// A file being hashed, resumable slice by slice so a pool can interleave big and small files.
pub(crate) struct Hashing {
    path: PathBuf,
    file: File,
    before: Stamp,
    sha: Sha256,
    xxh: Box<XxHash3_128>,
    read: u64,
}

impl Hashing {
    /// The file being hashed.
    pub(crate) fn into_path(self) -> PathBuf {
        self.path
    }

    /// Opens the path without following a link and without blocking. With no `expect`, checks
    /// with `fstat` that it is a regular file before a single byte is read; with one (a stamp
    /// the caller has just taken by `lstat`), that stamp stands for the `fstat`, and the one
    /// after the read must match it.
    ///
    /// There is no `lstat` first: O_NONBLOCK makes opening a FIFO or device return at once, a
    /// socket cannot be opened at all, and O_NOFOLLOW refuses a link, so the open itself is safe
    /// and the check costs one syscall less per file (a fifth of a small file's time). Without
    /// the `fstat`, the file could have been replaced by a FIFO since the caller's `lstat`: the
    /// reads are `pread`s, which a FIFO refuses (`ESPIPE`), so no byte of someone else's pipe is
    /// ever taken; the `fstat` after the read then reports what is there.
    pub(crate) fn open(path: &Path, expect: Option<Stamp>) -> Result<Self, HashError> {
        let err = |e| HashError::from_io(path, e);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(path)
            .map_err(err)?;
        let before = match expect {
            Some(stamp) => stamp,
            None => {
                let meta = file.metadata().map_err(err)?;
                Self::regular(path, &meta)?;
                Stamp::from_metadata(&meta)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            before,
            sha: Sha256::new(),
            xxh: Box::new(XxHash3_128::new()),
            read: 0,
        })
    }

    /// `NotRegularFile` unless `meta` is a regular file's.
    fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), HashError> {
        match FileKind::of(meta) {
            Some(kind) => Err(HashError::NotRegularFile {
                path: path.to_path_buf(),
                kind,
            }),
            None => Ok(()),
        }
    }

    /// Reads and hashes up to about `budget` more bytes. Returns `true` once the whole file has
    /// been read.
    pub(crate) fn advance(&mut self, buf: &mut Vec<u8>, budget: u64) -> Result<bool, HashError> {
        if buf.len() < BUFFER_SIZE {
            buf.resize(BUFFER_SIZE, 0);
        }
        let mut spent = 0u64;
        loop {
            // The stamp says how long the file is; once that much is read we stop without the
            // extra EOF read. An append is still caught, by the size check in `finish`.
            if self.read >= self.before.size && self.read > 0 {
                return Ok(true);
            }
            if spent >= budget {
                // Between slices, one `fstat`: a file renamed, replaced or rewritten meanwhile
                // is given up now, not after reading gigabytes more that `finish` would refuse.
                self.unchanged()?;
                return Ok(false);
            }
            let n = match self.file.read_at(buf, self.read) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_failed(e)),
            };
            // Feed both hashers block by block, so the second one reads what the first has just
            // pulled into L1 instead of going back to L2 for the whole buffer.
            for block in buf[..n].chunks(16 * 1024) {
                self.sha.update(block);
                self.xxh.write(block);
            }
            self.read += n as u64;
            spent += n as u64;
        }
    }

    /// A failed read, said precisely: a read refused because the path is no longer a regular
    /// file (only possible with a caller's stamp, see [`Hashing::open`]) is `NotRegularFile`.
    fn read_failed(&self, e: std::io::Error) -> HashError {
        if let Ok(meta) = self.file.metadata() {
            if let Err(not_regular) = Self::regular(&self.path, &meta) {
                return not_regular;
            }
        }
        HashError::from_io(&self.path, e)
    }

    /// `Changed` when the opened file's stamp is no longer the one it had when opened (or the
    /// caller's, see [`Hashing::open`]); `NotRegularFile` if it was never a regular file.
    fn unchanged(&self) -> Result<(), HashError> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| HashError::from_io(&self.path, e))?;
        Self::regular(&self.path, &meta)?;
        if Stamp::from_metadata(&meta) != self.before {
            return Err(HashError::Changed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Confirms the file did not change while it was read and returns the digests.
    pub(crate) fn finish(self) -> Result<Hashed, HashError> {
        self.unchanged()?;
        if self.read != self.before.size {
            return Err(HashError::Changed { path: self.path });
        }
        let sha: [u8; 32] = self.sha.finalize().into();
        Ok(Hashed {
            digest: Digest::from_parts(sha, self.xxh.finish_128()),
            stamp: self.before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn append_between_reads_is_reported_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.bin");
        std::fs::write(&path, vec![7u8; BUFFER_SIZE * 3]).unwrap();
        let mut hashing = Hashing::open(&path, None).unwrap();
        let mut buf = Vec::new();
        // Read one slice, then append for real through another handle, then read on.
        assert!(!hashing.advance(&mut buf, 1).unwrap());
        let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
        writer.write_all(b"late bytes").unwrap();
        writer.sync_all().unwrap();
        while !hashing.advance(&mut buf, u64::MAX).unwrap() {}
        let err = hashing.finish().unwrap_err();
        assert!(matches!(err, HashError::Changed { .. }), "{err:?}");
        assert_eq!(err.path(), path);
    }

    #[test]
    fn truncation_between_reads_is_reported_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinking.bin");
        std::fs::write(&path, vec![1u8; BUFFER_SIZE * 3]).unwrap();
        let mut hashing = Hashing::open(&path, None).unwrap();
        let mut buf = Vec::new();
        assert!(!hashing.advance(&mut buf, 1).unwrap());
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        while !hashing.advance(&mut buf, u64::MAX).unwrap() {}
        assert!(matches!(hashing.finish(), Err(HashError::Changed { .. })));
    }

    #[test]
    fn replaced_path_is_reported_as_changed_not_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"first").unwrap();
        let hashing = Hashing::open(&path, None).unwrap();
        // An atomic replace (write to temp + rename over) after the open: the opened inode is
        // the old one, which lost its name (its ctime changed). Its digest would describe a file
        // that is no longer at the path, so the hash is refused and the path settles again.
        let tmp = dir.path().join("a.tmp");
        std::fs::write(&tmp, b"second").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let mut hashing = hashing;
        let mut buf = Vec::new();
        while !hashing.advance(&mut buf, u64::MAX).unwrap() {}
        assert!(matches!(hashing.finish(), Err(HashError::Changed { .. })));
    }

    fn lstat(path: &Path) -> Stamp {
        Stamp::from_metadata(&std::fs::symlink_metadata(path).unwrap())
    }

    fn hash_expecting(path: &Path, stamp: Stamp) -> Result<Hashed, HashError> {
        let mut hashing = Hashing::open(path, Some(stamp))?;
        let mut buf = Vec::new();
        while !hashing.advance(&mut buf, u64::MAX)? {}
        hashing.finish()
    }

    #[test]
    fn a_callers_stamp_that_still_holds_gives_the_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [
            ("empty", 0),
            ("small", 5),
            ("three-buffers", BUFFER_SIZE * 3 + 1),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![3u8; len]).unwrap();
            let stamp = lstat(&path);
            assert_eq!(
                hash_expecting(&path, stamp).unwrap(),
                hash_file(&path).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_change_since_the_callers_stamp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Each case: how the file changes after the caller's stat and before the open.
        type Change = fn(&Path);
        let cases: [(&str, Change); 4] = [
            ("appended", |p| {
                OpenOptions::new()
                    .append(true)
                    .open(p)
                    .unwrap()
                    .write_all(b"x")
                    .unwrap();
            }),
            ("truncated", |p| {
                OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(1)
                    .unwrap();
            }),
            ("rewritten, same size", |p| {
                OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .write_all(b"HELLO")
                    .unwrap();
            }),
            ("replaced by rename", |p| {
                let tmp = p.with_extension("tmp");
                std::fs::write(&tmp, b"hello").unwrap();
                std::fs::rename(&tmp, p).unwrap();
            }),
        ];
        for (what, change) in cases {
            std::fs::write(&path, b"hello").unwrap();
            let stamp = lstat(&path);
            // The same-size rewrite may land in the same clock tick as the first write: the
            // ctime is what must move, so wait for the next tick of the filesystem's clock.
            std::thread::sleep(std::time::Duration::from_millis(20));
            change(&path);
            let err = hash_expecting(&path, stamp).unwrap_err();
            assert!(matches!(err, HashError::Changed { .. }), "{what}: {err:?}");
        }
    }

    #[test]
    fn a_fifo_put_in_place_after_the_callers_stamp_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let stamp = lstat(&path);
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");
        // A writer with bytes in the pipe: the hash must leave them for the pipe's reader.
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let mut writer = OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all(b"someone else's").unwrap();
        let err = hash_expecting(&path, stamp).unwrap_err();
        assert!(matches!(err, HashError::NotRegularFile { .. }), "{err:?}");
        let mut left = String::new();
        std::io::Read::read_to_string(&mut reader, &mut left).ok();
        assert_eq!(left, "someone else's");
    }
}
