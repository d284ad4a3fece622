//! A walk thread's view of the store: the entries of the directories it visited last, each
//! read in key order in one pass ([`Reader::files_in`]).
//!
//! A restart looks up every file the walk meets. One point read per file descends redb's tree
//! from its root each time (three or four page lookups in redb's cache, each taking its lock);
//! the files of one directory are contiguous keys, so reading them in one range reads each leaf
//! page once. The walk's threads take files from one another's queues, so a directory may be
//! read by both threads, and a thread that goes down into a subdirectory comes back to its
//! parent: the last [`DIRS`] directories are kept.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::paths;
use crate::store::{DirFiles, Entry, Reader, StoreError};

/// Directories kept per thread.
pub const DIRS: usize = 2;

/// The most entries read for one directory (about 1 MiB of them); a larger directory is asked
/// file by file.
pub const MAX_FILES: usize = 8192;

/// The entries of the last [`DIRS`] directories looked up in, from one [`Reader`] snapshot.
#[derive(Debug, Default)]
pub struct DirCache {
    /// Oldest first; `None` for a directory with more than [`MAX_FILES`] entries.
    dirs: VecDeque<(PathBuf, Option<DirFiles>)>,
    /// Directories read from the store (for the tests).
    #[cfg(test)]
    reads: u64,
}

impl DirCache {
    /// The entry for `path`, as `reader.get(path)` would give it.
    ///
    /// # Errors
    /// A store read failure.
    pub fn get(&mut self, reader: &Reader, path: &Path) -> Result<Option<Entry>, StoreError> {
        let Some((dir, name)) = paths::split_name(path) else {
            return reader.get(path);
        };
        let at = match self
            .dirs
            .iter()
            .position(|(d, _)| d.as_os_str() == dir.as_os_str())
        {
            Some(at) => at,
            None => {
                let files = reader.files_in(dir, MAX_FILES)?;
                #[cfg(test)]
                {
                    self.reads += 1;
                }
                if self.dirs.len() == DIRS {
                    self.dirs.pop_front();
                }
                self.dirs.push_back((dir.to_path_buf(), files));
                self.dirs.len() - 1
            }
        };
        match &self.dirs[at].1 {
            Some(files) => Ok(files
                .binary_search_by(|(n, _)| (**n).cmp(name.as_bytes()))
                .ok()
                .map(|i| files[i].1)),
            None => reader.get(path),
        }
    }

    /// Forgets every directory's entries: the caller takes a newer snapshot. A directory
    /// found too large is still asked file by file (a flat directory of millions of files would
    /// otherwise have its first [`MAX_FILES`] entries read again, in vain, at every snapshot).
    pub fn clear(&mut self) {
        self.dirs.retain(|(_, files)| files.is_none());
    }

    /// Directories read from the store so far.
    #[cfg(test)]
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Op, Store};
    use hasher::{Digest, Stamp};
    use std::ffi::OsStr;

    fn entry(n: u64) -> Entry {
        Entry {
            stamp: Stamp {
                size: n,
                mtime_ns: 0,
                inode: n,
                dev: 1,
                ctime_ns: 0,
            },
            digest: Digest::from_parts([0; 32], u128::from(n)),
        }
    }

    /// Every answer equals a point read: files beside subdirectories whose names sort around
    /// theirs, deep files, a name that is not UTF-8, a directory over the limit, and paths the
    /// store does not know; a directory is read once while it is among the last two.
    #[test]
    fn answers_equal_point_reads_with_one_read_per_directory() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::open(state.path()).unwrap();
        let mut known = vec![
            "/d/a", "/d/b", "/d/b.txt", "/d/b/x", "/d/b/y/z", "/d/b0", "/d/c", "/d/b-", "/e/1",
            "/d0/q",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>();
        known.push(Path::new(OsStr::from_bytes(b"/d/\xff\xfe")).to_path_buf());
        for i in 0..MAX_FILES + 1 {
            known.push(PathBuf::from(format!("/big/f{i:05}")));
        }
        let ops: Vec<Op> = known
            .iter()
            .enumerate()
            .map(|(i, p)| Op::Put(p.clone(), entry(i as u64)))
            .collect();
        store.apply(&ops).unwrap();
        let reader = store.reader().unwrap();
        let mut asked: Vec<PathBuf> = known.clone();
        for p in [
            "/d/none",
            "/d/b/none",
            "/none/x",
            "/d/b/y",
            "/big/none",
            "/d",
        ] {
            asked.push(PathBuf::from(p));
        }
        let mut cache = DirCache::default();
        for p in &asked {
            assert_eq!(
                cache.get(&reader, p).unwrap(),
                reader.get(p).unwrap(),
                "{}",
                p.display()
            );
        }
        // Read in turn (two kept): /d, /d/b, /d/b/y, /d again, /e, /d0, /d again, /big (over
        // the limit: asked file by file, never read again); then /d/b, /none, /big and /.
        assert_eq!(cache.reads(), 12, "{:?}", cache.dirs);
        // Asked again, a directory in the cache is not read again.
        let before = cache.reads();
        cache.get(&reader, Path::new("/big/f00001")).unwrap();
        cache.get(&reader, Path::new("/big/f00002")).unwrap();
        assert_eq!(cache.reads(), before);
        // A new snapshot: the entries are read again, but not a directory over the limit.
        cache.clear();
        cache.get(&reader, Path::new("/big/f00003")).unwrap();
        assert_eq!(cache.reads(), before);
        cache.get(&reader, Path::new("/d/a")).unwrap();
        assert_eq!(cache.reads(), before + 1);
    }
}
