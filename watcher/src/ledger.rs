//! The ledger: the engine's view of the state store, and when it is written.
//!
//! A store change is made only after the sink accepted its event (promise 2), and changes are
//! committed in batches, since a redb commit per event would cost more than the event. Between
//! acceptance and commit, an overlay answers lookups, so that no decision is made on stale data:
//! a file accepted a moment ago must not be reported again by a scan whose snapshot predates it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pairing::Records;
use crate::paths::PathMap;
use crate::store::{Entry, Op, Reader, Store, StoreError};

/// A commit is due once changes have waited this long, even if few.
const COMMIT_AGE: Duration = Duration::from_millis(500);

/// While busy, the store is fsynced at most this often; every idle moment and every stop syncs.
const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Accepted store changes not yet committed, and the overlay that answers for them.
pub struct Ledger {
    store: Arc<Store>,
    overlay: PathMap<Option<Entry>>,
    /// A read snapshot of the store, dropped at every commit (the overlay covers the time
    /// between), so lookups cost one transaction per batch, not one each.
    reader: Option<Reader>,
    ops: Vec<Op>,
    /// Changes at which a commit is due.
    batch: usize,
    last_commit: Instant,
    last_sync: Instant,
    /// Non-durable commits were made since the last fsync.
    unsynced: bool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("uncommitted", &self.ops.len())
            .field("unsynced", &self.unsynced)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// A ledger over `store` that commits every `batch` changes (and sizes itself for that
    /// once, reusing the room from batch to batch).
    pub fn new(store: Arc<Store>, batch: usize, now: Instant) -> Self {
        Self {
            store,
            overlay: PathMap::with_capacity(batch),
            reader: None,
            ops: Vec::with_capacity(batch),
            batch,
            last_commit: now,
            last_sync: now,
            unsynced: false,
        }
    }

    /// The store itself, for the scans, which read it on threads of their own.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The entry accepted for `path` but not yet committed: `Some(None)` for an accepted
    /// deletion, `None` when nothing is pending for it.
    pub fn uncommitted(&self, path: &Path) -> Option<Option<Entry>> {
        self.overlay.get(path).copied()
    }

    /// The store's view of `path`, including accepted changes.
    ///
    /// # Errors
    /// A store read failure.
    pub fn lookup(&mut self, path: &Path) -> Result<Option<Entry>, StoreError> {
        if let Some(v) = self.overlay.get(path) {
            return Ok(*v);
        }
        let reader = match self.reader.take() {
            Some(r) => r,
            None => self.store.reader()?,
        };
        let found = reader.get(path)?;
        self.reader = Some(reader);
        Ok(found)
    }

    /// Records changes whose event the sink accepted.
    pub fn record(&mut self, ops: Vec<Op>) {
        for op in ops {
            match &op {
                Op::Put(p, e) => self.overlay.insert(p.clone(), Some(*e)),
                Op::Delete(p) => self.overlay.insert(p.clone(), None),
            };
            self.ops.push(op);
        }
    }

    /// The commit policy: commits when a batch is full or old enough, or when the pipeline is
    /// `idle` and something is uncommitted or unsynced. The commit is durable when idle, and
    /// otherwise at most every two seconds.
    ///
    /// # Errors
    /// A store write failure.
    pub fn maybe_commit(&mut self, idle: bool, now: Instant) -> Result<(), StoreError> {
        let age = |since: Instant| now.saturating_duration_since(since);
        let due = self.ops.len() >= self.batch
            || (!self.ops.is_empty() && age(self.last_commit) >= COMMIT_AGE)
            || (idle && (!self.ops.is_empty() || self.unsynced));
        if due {
            let durable = idle || age(self.last_sync) >= SYNC_EVERY;
            self.commit(durable, now)?;
        }
        Ok(())
    }

    /// Commits the accepted changes. A non-durable commit skips the fsync; the next durable one
    /// takes it to disk.
    ///
    /// # Errors
    /// A store write failure.
    pub fn commit(&mut self, durable: bool, now: Instant) -> Result<(), StoreError> {
        if self.ops.is_empty() && !(durable && self.unsynced) {
            return Ok(());
        }
        self.reader = None;
        // Blocking, and meant to be: the engine has a thread of its own (see `Engine::run`).
        self.store.apply_with(&self.ops, durable)?;
        // Cleared, not replaced: both keep their room for the next batch.
        self.ops.clear();
        self.overlay.clear();
        self.last_commit = now;
        if durable {
            self.unsynced = false;
            self.last_sync = now;
        } else {
            self.unsynced = true;
        }
        Ok(())
    }
}

/// The pairer's view of the records. A page read from the store must not miss what the overlay
/// holds, nor bring back what it deleted: every accepted change is committed before a page is
/// read.
impl Records for Ledger {
    fn known(&mut self, path: &Path) -> Result<Option<Entry>, StoreError> {
        self.lookup(path)
    }

    fn page_under(
        &mut self,
        dir: &Path,
        after: Option<&Path>,
        limit: usize,
        now: Instant,
    ) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
        self.commit(false, now)?;
        self.store.page_under(dir, after, limit)
    }

    fn vanished_drain(&mut self, limit: usize) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
        self.store.vanished_drain(limit)
    }

    fn vanished_take(
        &mut self,
        entry: &Entry,
        gone: &dyn Fn(&Path) -> bool,
    ) -> Result<Option<PathBuf>, StoreError> {
        self.store.vanished_take(entry, gone)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use hasher::{Digest, Stamp};
    use std::path::PathBuf;

    fn entry(n: u8) -> Entry {
        Entry {
            stamp: Stamp {
                size: u64::from(n),
                mtime_ns: 1,
                inode: 1,
                dev: 1,
                ctime_ns: 1,
            },
            digest: Digest::from_parts([n; 32], u128::from(n)),
        }
    }

    #[test]
    fn accepted_changes_answer_before_the_commit_and_reach_the_store_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let t0 = Instant::now();
        store.apply(&[Op::Put("/d/old".into(), entry(1))]).unwrap();
        let mut l = Ledger::new(Arc::clone(&store), 3, t0);
        assert_eq!(l.lookup(Path::new("/d/old")).unwrap(), Some(entry(1)));

        l.record(vec![
            Op::Delete(PathBuf::from("/d/old")),
            Op::Put(PathBuf::from("/d/new"), entry(2)),
        ]);
        // Answered by the overlay; the store does not have it yet.
        assert_eq!(l.lookup(Path::new("/d/old")).unwrap(), None);
        assert_eq!(l.uncommitted(Path::new("/d/old")), Some(None));
        assert_eq!(l.lookup(Path::new("/d/new")).unwrap(), Some(entry(2)));
        assert_eq!(store.get(Path::new("/d/new")).unwrap(), None);

        // Two changes of a batch of three, young, not idle: not due.
        l.maybe_commit(false, t0).unwrap();
        assert_eq!(store.get(Path::new("/d/new")).unwrap(), None);
        // Idle: due, and durable.
        l.maybe_commit(true, t0).unwrap();
        assert_eq!(store.get(Path::new("/d/new")).unwrap(), Some(entry(2)));
        assert_eq!(store.get(Path::new("/d/old")).unwrap(), None);
        assert_eq!(l.uncommitted(Path::new("/d/new")), None);
        assert!(!l.unsynced);
    }

    #[test]
    fn a_full_batch_commits_without_waiting_for_idle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let t0 = Instant::now();
        let mut l = Ledger::new(Arc::clone(&store), 2, t0);
        l.record(vec![
            Op::Put(PathBuf::from("/d/a"), entry(1)),
            Op::Put(PathBuf::from("/d/b"), entry(2)),
        ]);
        l.maybe_commit(false, t0).unwrap();
        assert_eq!(store.get(Path::new("/d/b")).unwrap(), Some(entry(2)));
    }

    /// The commit policy's timing, driven by the clock it is given: age, sync interval, idle.
    #[test]
    fn commits_come_by_age_and_the_sync_by_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = Ledger::new(Arc::clone(&store), 100, t0);
        let put = |n: u8| vec![Op::Put(PathBuf::from(format!("/d/{n}")), entry(n))];

        l.record(put(1));
        l.maybe_commit(false, t0 + ms(499)).unwrap();
        assert_eq!(l.ops.len(), 1, "younger than the commit age: not due");
        l.maybe_commit(false, t0 + ms(500)).unwrap();
        assert!(l.ops.is_empty(), "as old as the commit age: committed");
        assert!(l.unsynced, "busy and within the sync interval: not synced");

        l.record(put(2));
        l.maybe_commit(false, t0 + ms(1_500)).unwrap();
        assert!(l.unsynced, "1.5 s since the last sync: still not synced");
        l.record(put(3));
        l.maybe_commit(false, t0 + ms(2_100)).unwrap();
        assert!(
            !l.unsynced,
            "two seconds since the last sync: this commit syncs"
        );

        // Nothing recorded and synced: idle asks for nothing.
        l.maybe_commit(true, t0 + ms(2_200)).unwrap();
        assert!(!l.unsynced);
        assert_eq!(store.get(Path::new("/d/3")).unwrap(), Some(entry(3)));
    }

    /// A page of bulk work reads what was accepted a moment ago: the ledger commits first.
    #[test]
    fn a_page_sees_accepted_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let t0 = Instant::now();
        store
            .apply(&[Op::Put("/d/x/gone".into(), entry(1))])
            .unwrap();
        let mut l = Ledger::new(Arc::clone(&store), 100, t0);
        l.record(vec![
            Op::Delete(PathBuf::from("/d/x/gone")),
            Op::Put(PathBuf::from("/d/x/new"), entry(2)),
        ]);
        let page = l.page_under(Path::new("/d/x"), None, 10, t0).unwrap();
        let paths: Vec<_> = page.into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec![PathBuf::from("/d/x/new")]);
        assert!(l.ops.is_empty());
    }
}
