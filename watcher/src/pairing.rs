//! Pairing: where a file that vanished under one name and appeared under another becomes one
//! move instead of a deletion and a creation.
//!
//! Three kinds of evidence pair a move, from strongest to weakest:
//! - a rename event (inotify's cookie), carried through settling as the pending entry's source
//!   ([`crate::settle::Settle::rename`]) and judged by [`crate::decide::decide`];
//! - the same inode turning up under a new name shortly after a reported file vanished, when the
//!   watcher could not pair the rename (a move into a directory created a moment before): the
//!   [`Limbo`];
//! - during a scan, a vanished store entry and a new file with the same size and XXH128 (a move
//!   while we were not watching). That set can be as large as the library (a volume renamed away
//!   while we were stopped), so it lives in a store table, not here: see
//!   [`crate::store::Store::vanished_take`].
//!
//! The limbo here is pure bookkeeping: it does no I/O, and the engine tells it what is on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hasher::Stamp;

use crate::paths::PathSet;
use crate::store::Entry;

/// Reported files that vanished, each held until a deadline, keyed by (device, inode).
#[derive(Debug, Default)]
pub struct Limbo {
    by_inode: HashMap<(u64, u64), (PathBuf, Entry, Instant)>,
    paths: PathSet,
}

impl Limbo {
    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    /// Whether `path` is held.
    pub fn contains(&self, path: &Path) -> bool {
        self.paths.contains(path)
    }

    /// Holds `path`'s entry until `until`. An older path held for the same inode is handed back:
    /// it is gone for good (the inode now belongs to the newer path), so it is a deletion.
    pub fn hold(
        &mut self,
        path: PathBuf,
        entry: Entry,
        until: Instant,
    ) -> Option<(PathBuf, Entry)> {
        self.paths.insert(path.clone());
        let key = (entry.stamp.dev, entry.stamp.inode);
        let (older, e, _) = self.by_inode.insert(key, (path.clone(), entry, until))?;
        if older == path {
            return None;
        }
        self.paths.remove(&older);
        Some((older, e))
    }

    /// Claims the held file that a new file at `path` with `stamp` is: the same inode, size and
    /// mtime under another name.
    pub fn claim(&mut self, path: &Path, stamp: &Stamp) -> Option<(PathBuf, Entry)> {
        let key = (stamp.dev, stamp.inode);
        let (from, e, _) = self.by_inode.get(&key)?;
        if !e.stamp.same_content_as(stamp) || from == path {
            return None;
        }
        let (from, e, _) = self.by_inode.remove(&key)?;
        self.paths.remove(&from);
        Some((from, e))
    }

    /// Takes every entry whose deadline has passed: nothing claimed them.
    pub fn expired(&mut self, now: Instant) -> Vec<(PathBuf, Entry)> {
        if self.by_inode.is_empty() {
            return Vec::new();
        }
        let keys: Vec<_> = self
            .by_inode
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((path, entry, _)) = self.by_inode.remove(&k) {
                self.paths.remove(&path);
                out.push((path, entry));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use hasher::Digest;
    use std::time::Duration;

    fn entry(inode: u64, size: u64, d: u8) -> Entry {
        Entry {
            stamp: Stamp {
                size,
                mtime_ns: 7,
                inode,
                dev: 1,
                ctime_ns: 7,
            },
            digest: Digest::from_parts([d; 32], u128::from(d)),
        }
    }

    #[test]
    fn limbo_pairs_by_inode_and_content_and_expires_the_rest() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut l = Limbo::default();
        assert!(l.hold("/d/a".into(), entry(1, 10, 1), later).is_none());
        assert!(l.hold("/d/b".into(), entry(2, 10, 2), later).is_none());
        assert!(l.contains(Path::new("/d/a")));

        // Same inode, other size: not the same file.
        assert!(l.claim(Path::new("/d/x"), &entry(1, 11, 1).stamp).is_none());
        // Same inode at the same name: not a move.
        assert!(l.claim(Path::new("/d/a"), &entry(1, 10, 1).stamp).is_none());
        // Same inode and content under a new name: the move.
        let (from, _) = l.claim(Path::new("/d/x"), &entry(1, 10, 1).stamp).unwrap();
        assert_eq!(from, PathBuf::from("/d/a"));
        assert!(!l.contains(Path::new("/d/a")));

        // A second vanished path for one inode: the older one is gone for good.
        let (gone, _) = l.hold("/d/c".into(), entry(2, 10, 2), later).unwrap();
        assert_eq!(gone, PathBuf::from("/d/b"));

        assert!(l.expired(t0).is_empty());
        let expired = l.expired(later);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, PathBuf::from("/d/c"));
        assert!(l.is_empty());
    }
}
