//! Pairing: where a file that vanished under one name and appeared under another becomes one
//! move instead of a deletion and a creation.
//!
//! Four kinds of evidence pair a move, from strongest to weakest:
//! - a rename event (inotify's cookie), carried through settling as the pending entry's source
//!   ([`crate::settle::Settle::rename`]) and judged by [`crate::decide::decide`]: it belongs to
//!   the settle entry, which must hold it until the new name settles anyway;
//! - a renamed directory: each store entry below the old name is moved when the same inode with
//!   the same content is at the new name ([`Pairer::work`]);
//! - the same inode turning up under a new name shortly after a reported file vanished, when the
//!   watcher could not pair the rename (a move into a directory created a moment before): the
//!   [`Limbo`];
//! - during a scan, a vanished store entry and a new file with the same size and XXH128 (a move
//!   while we were not watching). That set can be as large as the library (a volume renamed away
//!   while we were stopped), so it lives in a store table, reached through [`Records`].
//!
//! The [`Pairer`] owns the limbo and the bulk work over store entries (a directory's files, a
//! scan's unpaired deletions). It does no I/O itself: it asks through [`Look`] and [`Records`],
//! and answers with [`Outcome`]s that the engine carries out, so every case has a table test over
//! plain maps.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hasher::Stamp;

use crate::paths::PathSet;
use crate::store::{Entry, StoreError};

/// What the pairer asks of the pipeline and the disk. Read only.
pub trait Look {
    /// Work on `path` is under way (hashing, or an event on its way to the sink).
    fn busy(&self, path: &Path) -> bool;
    /// The busy paths below `dir`.
    fn busy_under(&self, dir: &Path) -> Vec<PathBuf>;
    /// `path` waits in the settle set: settling will judge it.
    fn pending(&self, path: &Path) -> bool;
    /// The regular file at `path` now (`lstat`), if there is one.
    fn on_disk(&self, path: &Path) -> Option<Stamp>;
    /// A file at `path` is reported: inside DATA_DIR and not excluded.
    fn reported(&self, path: &Path) -> bool;
}

/// What the pairer asks of the records: the known entries, pages of them, and the scan's
/// vanished set. Implemented by [`crate::ledger::Ledger`], which commits what it has accepted
/// before it reads a page.
pub trait Records {
    /// The entry recorded for `path`, including accepted changes not yet committed.
    ///
    /// # Errors
    /// A store read failure.
    fn known(&mut self, path: &Path) -> Result<Option<Entry>, StoreError>;
    /// Up to `limit` entries below `dir`, after `after`, in key order, with nothing accepted
    /// left out.
    ///
    /// # Errors
    /// A store failure.
    fn page_under(
        &mut self,
        dir: &Path,
        after: Option<&Path>,
        limit: usize,
        now: Instant,
    ) -> Result<Vec<(PathBuf, Entry)>, StoreError>;
    /// Takes up to `limit` entries out of the scan's vanished set.
    ///
    /// # Errors
    /// A store failure.
    fn vanished_drain(&mut self, limit: usize) -> Result<Vec<(PathBuf, Entry)>, StoreError>;
    /// Takes the first path of the vanished set with `entry`'s size and XXH128 for which `gone`
    /// holds.
    ///
    /// # Errors
    /// A store failure.
    fn vanished_take(
        &mut self,
        entry: &Entry,
        gone: &dyn Fn(&Path) -> bool,
    ) -> Result<Option<PathBuf>, StoreError>;
}

/// What the pairer decided; the engine carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One event: the file at `from` is now at `to`, with `entry` (its stamp is the new one).
    Move {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
        /// The entry as it is at `to`.
        entry: Entry,
    },
    /// The reported file at `path` is gone.
    Delete {
        /// The path.
        path: PathBuf,
        /// Its last entry, for the event's facts.
        entry: Entry,
    },
    /// Look at `path` afresh through settling: the evidence is not conclusive now.
    Recheck(PathBuf),
    /// Walk the directory for what is new in it.
    Walk(PathBuf),
}

/// Which evidence paired a hashed new file with a path that vanished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The same inode, held in the limbo.
    Inode,
    /// The same size and XXH128 in the scan's vanished set.
    Content,
}

/// Work over many store entries, done a page at a time as the backlog has room (see
/// [`crate::limits::Limits::bulk_page`]).
#[derive(Debug)]
enum Bulk {
    /// The entries below `dir`: gone when `to` is `None` (the directory vanished), moved below
    /// `to` otherwise (the directory was renamed), after which `to` is walked for what is new.
    Below {
        dir: PathBuf,
        to: Option<PathBuf>,
        after: Option<PathBuf>,
    },
    /// The scan's vanished set, once the scan ended: what no new file claimed. Deleted.
    ScanVanished,
}

/// The one pairer: the limbo, a renamed or vanished directory's entries, and the scan's
/// vanished set. One bound ([`crate::limits::Limits::limbo`]) covers every hold.
#[derive(Debug)]
pub struct Pairer {
    limbo: Limbo,
    bulk: VecDeque<Bulk>,
    /// Holds at once; beyond it what vanishes is deleted at once (a move then shows as a
    /// deletion and a creation, never as memory growth).
    cap: usize,
    settle_delay: Duration,
}

impl Pairer {
    /// A pairer holding at most `cap` vanished files, for a pipeline that settles over
    /// `settle_delay`.
    pub fn new(cap: usize, settle_delay: Duration) -> Self {
        Self {
            limbo: Limbo::default(),
            bulk: VecDeque::new(),
            cap,
            settle_delay,
        }
    }

    /// Nothing held and no bulk work left.
    pub fn is_idle(&self) -> bool {
        self.limbo.is_empty() && self.bulk.is_empty()
    }

    /// Bulk work is queued: the loop goes on at once while the backlog has room.
    pub fn has_work(&self) -> bool {
        !self.bulk.is_empty()
    }

    /// The last scan's deletions are still being worked through; the next scan, which starts
    /// the vanished set afresh, waits for them.
    pub fn sweeping(&self) -> bool {
        self.bulk.iter().any(|b| matches!(b, Bulk::ScanVanished))
    }

    /// Vanished files held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.limbo.len()
    }

    /// A path settled as gone. A file we reported is held for one and a half settle delays: a
    /// rename of its directory whose hint was still queued settles first and claims it. Beyond
    /// the cap it is deleted at once. A path the records do not know as a file is taken as a
    /// directory: its busy files are looked at again once their work is done, and its entries
    /// are worked through a page at a time.
    ///
    /// # Errors
    /// A store read failure.
    pub fn vanished(
        &mut self,
        path: &Path,
        now: Instant,
        look: &impl Look,
        records: &mut impl Records,
    ) -> Result<Vec<Outcome>, StoreError> {
        if let Some(entry) = records.known(path)? {
            return Ok(self.hold(path.to_path_buf(), entry, now + self.settle_delay * 3 / 2));
        }
        // Files below it still in the pipeline (hashed for a scan, or on their way to the sink)
        // are looked at again once their work is done: otherwise a discovery delivered after
        // this moment would never be followed by its deletion.
        let out = look
            .busy_under(path)
            .into_iter()
            .map(Outcome::Recheck)
            .collect();
        self.bulk.push_back(Bulk::Below {
            dir: path.to_path_buf(),
            to: None,
            after: None,
        });
        Ok(out)
    }

    /// A directory appeared at `path`, renamed from `old` when the watcher saw the rename. A new
    /// directory is walked at once; a renamed one moves its entries first, then is walked.
    pub fn directory(&mut self, path: PathBuf, old: Option<PathBuf>) -> Option<Outcome> {
        match old {
            Some(dir) => {
                self.bulk.push_back(Bulk::Below {
                    dir,
                    to: Some(path),
                    after: None,
                });
                None
            }
            None => Some(Outcome::Walk(path)),
        }
    }

    /// A scan ended and queued its unpaired vanished entries for deletion.
    pub fn scan_ended(&mut self) {
        self.bulk.push_back(Bulk::ScanVanished);
    }

    /// One page of bulk work, of at most `limit` entries; `None` when there is none.
    ///
    /// # Errors
    /// A store failure.
    pub fn work(
        &mut self,
        limit: usize,
        now: Instant,
        look: &impl Look,
        records: &mut impl Records,
    ) -> Result<Option<Vec<Outcome>>, StoreError> {
        let limit = limit.max(1);
        let Some(job) = self.bulk.front_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        match job {
            Bulk::ScanVanished => {
                let page = records.vanished_drain(limit)?;
                if page.len() < limit {
                    self.bulk.pop_front();
                }
                for (p, _) in page {
                    out.extend(scan_vanished(p, look, records)?);
                }
            }
            Bulk::Below { dir, to, after } => {
                let page = records.page_under(dir, after.as_deref(), limit, now)?;
                after.clone_from(&page.last().map(|(p, _)| p.clone()));
                let (dir, to) = (dir.clone(), to.clone());
                let done = page.len() < limit;
                if done {
                    self.bulk.pop_front();
                }
                for (p, e) in page {
                    match &to {
                        None => out.extend(self.gone_below(p, e, now, look)),
                        Some(to) => out.extend(moved_below(&dir, to, p, e, look)),
                    }
                }
                if let (true, Some(to)) = (done, to) {
                    out.push(Outcome::Walk(to));
                }
            }
        }
        Ok(Some(out))
    }

    /// The holds whose time is up: deleted, unless the file is back under its name (settling
    /// handles that as a change), busy, or no longer recorded.
    ///
    /// # Errors
    /// A store read failure.
    pub fn expire(
        &mut self,
        now: Instant,
        look: &impl Look,
        records: &mut impl Records,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut out = Vec::new();
        for (path, entry) in self.limbo.expired(now) {
            if look.on_disk(&path).is_none() && !look.busy(&path) && records.known(&path)?.is_some()
            {
                out.push(Outcome::Delete { path, entry });
            }
        }
        Ok(out)
    }

    /// A settled file new to the records, before hashing: the move of a held file when it is
    /// the same inode with the same size and mtime under another name.
    pub fn claim_settled(&mut self, path: &Path, stamp: &Stamp) -> Option<Outcome> {
        let (from, old) = self.limbo.claim(path, stamp)?;
        Some(Outcome::Move {
            from,
            to: path.to_path_buf(),
            entry: Entry {
                stamp: *stamp,
                digest: old.digest,
            },
        })
    }

    /// A hashed file new to the records: the path it moved from, if a held file is the same
    /// inode (a scan queues new files without a stat, so this is its first inode check), or, while
    /// `scan_pairing`, a vanished entry with the same size and XXH128 that is really gone.
    ///
    /// # Errors
    /// A store failure.
    pub fn claim_hashed(
        &mut self,
        path: &Path,
        entry: &Entry,
        scan_pairing: bool,
        look: &impl Look,
        records: &mut impl Records,
    ) -> Result<Option<(PathBuf, Evidence)>, StoreError> {
        if let Some((from, _)) = self.limbo.claim(path, &entry.stamp) {
            return Ok(Some((from, Evidence::Inode)));
        }
        if !scan_pairing {
            return Ok(None);
        }
        let gone = |p: &Path| !look.busy(p) && look.on_disk(p).is_none();
        Ok(records
            .vanished_take(entry, &gone)?
            .map(|from| (from, Evidence::Content)))
    }

    /// Holds `path` until `until`, or deletes it at once when the limbo is full. An older path
    /// held for the same inode is gone for good.
    fn hold(&mut self, path: PathBuf, entry: Entry, until: Instant) -> Vec<Outcome> {
        if self.limbo.len() >= self.cap {
            return vec![Outcome::Delete { path, entry }];
        }
        self.limbo
            .hold(path, entry, until)
            .map(|(path, entry)| Outcome::Delete { path, entry })
            .into_iter()
            .collect()
    }

    /// A store entry below a directory that vanished: held for three settle delays, long enough
    /// for the directory's new name (if it has one) to be walked and its files to settle, since
    /// the watcher may have seen the rename as two unrelated events (notify pairs a rename only
    /// when both halves come in one read). Unless it is still there (or back), settling will
    /// judge it, or work on it is under way (then it is looked at again once done).
    fn gone_below(&mut self, p: PathBuf, e: Entry, now: Instant, look: &impl Look) -> Vec<Outcome> {
        tracing::debug!(path = %p.display(), busy = look.busy(&p), "below a vanished directory");
        if look.busy(&p) {
            return vec![Outcome::Recheck(p)];
        }
        if look.pending(&p) || self.limbo.contains(&p) || look.on_disk(&p).is_some() {
            return Vec::new();
        }
        self.hold(p, e, now + 3 * self.settle_delay)
    }
}

/// A store entry below directory `from`, which was renamed to `to`: moved, with its digests,
/// when the same inode with the same content is at the new place and nothing works on either
/// path; otherwise both places are looked at afresh.
fn moved_below(from: &Path, to: &Path, p: PathBuf, e: Entry, look: &impl Look) -> Vec<Outcome> {
    let Ok(rel) = p.strip_prefix(from) else {
        return Vec::new();
    };
    let new = to.join(rel);
    tracing::debug!(path = %p.display(), to = %new.display(), "below a renamed directory");
    match look.on_disk(&new) {
        Some(s)
            if s.inode == e.stamp.inode
                && s.same_content_as(&e.stamp)
                && !look.busy(&p)
                && !look.busy(&new)
                && look.reported(&new) =>
        {
            vec![Outcome::Move {
                from: p,
                to: new,
                entry: Entry {
                    stamp: s,
                    digest: e.digest,
                },
            }]
        }
        _ => vec![Outcome::Recheck(p), Outcome::Recheck(new)],
    }
}

/// A path the scan found vanished and no new file claimed: deleted if it is still gone (or
/// holds a file no longer reported), unless settling or work under way will judge it.
fn scan_vanished(
    p: PathBuf,
    look: &impl Look,
    records: &mut impl Records,
) -> Result<Option<Outcome>, StoreError> {
    if look.busy(&p) || look.pending(&p) {
        return Ok(None);
    }
    let Some(entry) = records.known(&p)? else {
        return Ok(None);
    };
    if look.on_disk(&p).is_some() && look.reported(&p) {
        return Ok(None);
    }
    Ok(Some(Outcome::Delete { path: p, entry }))
}

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
    use std::collections::{BTreeMap, HashSet};

    const DELAY: Duration = Duration::from_secs(2);

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

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn delete(path: &str, e: Entry) -> Outcome {
        Outcome::Delete {
            path: p(path),
            entry: e,
        }
    }

    fn recheck(path: &str) -> Outcome {
        Outcome::Recheck(p(path))
    }

    /// The pipeline and the disk as plain sets and maps.
    #[derive(Default)]
    struct World {
        busy: HashSet<PathBuf>,
        pending: HashSet<PathBuf>,
        disk: HashMap<PathBuf, Stamp>,
        excluded: HashSet<PathBuf>,
    }

    impl Look for World {
        fn busy(&self, path: &Path) -> bool {
            self.busy.contains(path)
        }
        fn busy_under(&self, dir: &Path) -> Vec<PathBuf> {
            let mut v: Vec<_> = self
                .busy
                .iter()
                .filter(|b| b.starts_with(dir) && b.as_path() != dir)
                .cloned()
                .collect();
            v.sort();
            v
        }
        fn pending(&self, path: &Path) -> bool {
            self.pending.contains(path)
        }
        fn on_disk(&self, path: &Path) -> Option<Stamp> {
            self.disk.get(path).copied()
        }
        fn reported(&self, path: &Path) -> bool {
            !self.excluded.contains(path)
        }
    }

    /// The records as two ordered maps.
    #[derive(Default)]
    struct Books {
        known: BTreeMap<PathBuf, Entry>,
        vanished: BTreeMap<PathBuf, Entry>,
    }

    impl Records for Books {
        fn known(&mut self, path: &Path) -> Result<Option<Entry>, StoreError> {
            Ok(self.known.get(path).copied())
        }
        fn page_under(
            &mut self,
            dir: &Path,
            after: Option<&Path>,
            limit: usize,
            _now: Instant,
        ) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
            Ok(self
                .known
                .iter()
                .filter(|(k, _)| k.starts_with(dir) && k.as_path() != dir)
                .filter(|(k, _)| after.is_none_or(|a| k.as_path() > a))
                .take(limit)
                .map(|(k, e)| (k.clone(), *e))
                .collect())
        }
        fn vanished_drain(&mut self, limit: usize) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
            let keys: Vec<_> = self.vanished.keys().take(limit).cloned().collect();
            Ok(keys
                .into_iter()
                .filter_map(|k| self.vanished.remove_entry(&k))
                .collect())
        }
        fn vanished_take(
            &mut self,
            entry: &Entry,
            gone: &dyn Fn(&Path) -> bool,
        ) -> Result<Option<PathBuf>, StoreError> {
            let found = self
                .vanished
                .iter()
                .find(|(k, e)| {
                    e.stamp.size == entry.stamp.size
                        && e.digest.xxh128() == entry.digest.xxh128()
                        && gone(k)
                })
                .map(|(k, _)| k.clone());
            if let Some(k) = &found {
                self.vanished.remove(k);
            }
            Ok(found)
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

    type Setup = fn(&mut World, &mut Books, &mut Pairer, Instant);

    /// A case of `Pairer::vanished`: name, setup, limbo cap, outcomes, held afterwards, bulk
    /// work queued.
    type VanishedCase = (&'static str, Setup, usize, Vec<Outcome>, usize, bool);

    #[test]
    fn a_vanished_path_is_held_deleted_or_taken_as_a_directory() {
        let a = entry(1, 10, 1);
        let cases: Vec<VanishedCase> = vec![
            (
                "a reported file is held, not deleted",
                |_, b, _, _| {
                    b.known.insert(p("/d/a"), entry(1, 10, 1));
                },
                4,
                vec![],
                1,
                false,
            ),
            (
                "the limbo is full: deleted at once",
                |w, b, pr, t| {
                    b.known.insert(p("/d/a"), entry(1, 10, 1));
                    b.known.insert(p("/d/z"), entry(9, 10, 9));
                    pr.vanished(Path::new("/d/z"), t, w, b).unwrap();
                },
                1,
                vec![delete("/d/a", a)],
                1,
                false,
            ),
            (
                "a second name of a held inode: the older one is gone for good",
                |w, b, pr, t| {
                    b.known.insert(p("/d/b"), entry(1, 10, 1));
                    pr.vanished(Path::new("/d/b"), t, w, b).unwrap();
                    b.known.insert(p("/d/a"), entry(1, 10, 1));
                },
                4,
                vec![delete("/d/b", a)],
                1,
                false,
            ),
            (
                "not a known file: a directory, whose busy files are looked at again",
                |w, _, _, _| {
                    w.busy.insert(p("/d/a/1"));
                    w.busy.insert(p("/d/ab"));
                },
                4,
                vec![recheck("/d/a/1")],
                0,
                true,
            ),
        ];
        for (case, setup, cap, want, held, work) in cases {
            let t0 = Instant::now();
            let (mut w, mut b, mut pr) =
                (World::default(), Books::default(), Pairer::new(cap, DELAY));
            setup(&mut w, &mut b, &mut pr, t0);
            let got = pr.vanished(Path::new("/d/a"), t0, &w, &mut b).unwrap();
            assert_eq!(got, want, "{case}");
            assert_eq!((pr.held(), pr.has_work()), (held, work), "{case}");
        }
    }

    #[test]
    fn a_hold_expires_after_its_time_into_a_deletion_unless_the_file_is_back_or_busy() {
        let a = entry(1, 10, 1);
        // (case, setup after the hold, time after the vanishing, outcomes)
        let cases: Vec<(&str, Setup, Duration, Vec<Outcome>)> = vec![
            (
                "still held at 1.5 × the delay less a moment",
                |_, _, _, _| {},
                DELAY * 3 / 2 - Duration::from_millis(1),
                vec![],
            ),
            (
                "gone at 1.5 × the delay",
                |_, _, _, _| {},
                DELAY * 3 / 2,
                vec![delete("/d/a", a)],
            ),
            (
                "back under its name: settling judges it",
                |w, _, _, _| {
                    w.disk.insert(p("/d/a"), entry(1, 10, 1).stamp);
                },
                DELAY * 2,
                vec![],
            ),
            (
                "busy: its work decides",
                |w, _, _, _| {
                    w.busy.insert(p("/d/a"));
                },
                DELAY * 2,
                vec![],
            ),
            (
                "no longer recorded",
                |_, b, _, _| {
                    b.known.clear();
                },
                DELAY * 2,
                vec![],
            ),
        ];
        for (case, setup, after, want) in cases {
            let t0 = Instant::now();
            let (mut w, mut b, mut pr) =
                (World::default(), Books::default(), Pairer::new(4, DELAY));
            b.known.insert(p("/d/a"), a);
            assert!(pr
                .vanished(Path::new("/d/a"), t0, &w, &mut b)
                .unwrap()
                .is_empty());
            setup(&mut w, &mut b, &mut pr, t0);
            assert_eq!(pr.expire(t0 + after, &w, &mut b).unwrap(), want, "{case}");
            assert_eq!(
                pr.is_idle(),
                after >= DELAY * 3 / 2,
                "{case}: held until its time, and only"
            );
        }
    }

    #[test]
    fn the_files_below_a_vanished_directory_are_held_three_delays_or_left_to_their_work() {
        let e = |i| entry(i, 10, 1);
        let t0 = Instant::now();
        let (mut w, mut b, mut pr) = (World::default(), Books::default(), Pairer::new(3, DELAY));
        for (i, name) in [
            "/d/x/busy",
            "/d/x/pending",
            "/d/x/there",
            "/d/x/gone",
            "/d/x/held",
            "/d/x/more",
            "/d/x/over",
            "/d/xy",
        ]
        .iter()
        .enumerate()
        {
            b.known.insert(p(name), e(i as u64 + 1));
        }
        w.busy.insert(p("/d/x/busy"));
        w.pending.insert(p("/d/x/pending"));
        w.disk.insert(p("/d/x/there"), e(3).stamp);
        // Held before the directory went, as a single file.
        pr.vanished(Path::new("/d/x/held"), t0, &w, &mut b).unwrap();

        assert_eq!(
            pr.vanished(Path::new("/d/x"), t0, &w, &mut b).unwrap(),
            vec![recheck("/d/x/busy")]
        );
        let got = pr.work(100, t0, &w, &mut b).unwrap().unwrap();
        // In key order: busy → recheck; gone, more → held (with "held", the cap of three);
        // over → the cap is reached: deleted at once; pending and there → nothing; /d/xy is
        // not below /d/x.
        assert_eq!(got, vec![recheck("/d/x/busy"), delete("/d/x/over", e(7))]);
        assert_eq!(pr.held(), 3);
        assert!(
            pr.work(100, t0, &w, &mut b).unwrap().is_none(),
            "one page was all"
        );
        // The single file's hold ends at 1.5 ×, the directory's files' at 3 ×.
        let held_single = pr.expire(t0 + DELAY * 3 / 2, &w, &mut b).unwrap();
        assert_eq!(held_single, vec![delete("/d/x/held", e(5))]);
        assert!(pr
            .expire(t0 + DELAY * 3 - Duration::from_millis(1), &w, &mut b)
            .unwrap()
            .is_empty());
        let mut rest = pr.expire(t0 + DELAY * 3, &w, &mut b).unwrap();
        rest.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            rest,
            vec![delete("/d/x/gone", e(4)), delete("/d/x/more", e(6))]
        );
        assert!(pr.is_idle());
    }

    #[test]
    fn a_renamed_directory_moves_each_entry_whose_inode_is_at_the_new_place() {
        let e = |i| entry(i, 10, 1);
        let moved = |i: u64| Stamp {
            ctime_ns: 99,
            ..e(i).stamp
        };
        // Anything short of the same file at the new place: both places are looked at afresh.
        let both = || vec![recheck("/d/old/a"), recheck("/d/new/a")];
        // (case, setup, outcomes), for /d/old/a renamed with its directory to /d/new/a
        let cases: Vec<(&str, Setup, Vec<Outcome>)> = vec![
            (
                "the same inode and content: a move with the new stamp",
                |w, _, _, _| {
                    w.disk.insert(
                        p("/d/new/a"),
                        Stamp {
                            ctime_ns: 99,
                            ..entry(1, 10, 1).stamp
                        },
                    );
                },
                vec![Outcome::Move {
                    from: p("/d/old/a"),
                    to: p("/d/new/a"),
                    entry: Entry {
                        stamp: moved(1),
                        digest: e(1).digest,
                    },
                }],
            ),
            (
                "another inode at the new place",
                |w, _, _, _| {
                    w.disk.insert(p("/d/new/a"), entry(2, 10, 1).stamp);
                },
                both(),
            ),
            (
                "another size at the new place",
                |w, _, _, _| {
                    w.disk.insert(p("/d/new/a"), entry(1, 11, 1).stamp);
                },
                both(),
            ),
            ("nothing at the new place", |_, _, _, _| {}, both()),
            (
                "the old path is busy",
                |w, _, _, _| {
                    w.disk.insert(p("/d/new/a"), entry(1, 10, 1).stamp);
                    w.busy.insert(p("/d/old/a"));
                },
                both(),
            ),
            (
                "the new path is busy",
                |w, _, _, _| {
                    w.disk.insert(p("/d/new/a"), entry(1, 10, 1).stamp);
                    w.busy.insert(p("/d/new/a"));
                },
                both(),
            ),
            (
                "the new path is excluded",
                |w, _, _, _| {
                    w.disk.insert(p("/d/new/a"), entry(1, 10, 1).stamp);
                    w.excluded.insert(p("/d/new/a"));
                },
                both(),
            ),
        ];
        for (case, setup, mut want) in cases {
            let t0 = Instant::now();
            let (mut w, mut b, mut pr) =
                (World::default(), Books::default(), Pairer::new(4, DELAY));
            b.known.insert(p("/d/old/a"), e(1));
            setup(&mut w, &mut b, &mut pr, t0);
            assert_eq!(pr.directory(p("/d/new"), Some(p("/d/old"))), None, "{case}");
            want.push(Outcome::Walk(p("/d/new")));
            assert_eq!(
                pr.work(10, t0, &w, &mut b).unwrap().unwrap(),
                want,
                "{case}"
            );
            assert!(pr.is_idle(), "{case}");
        }
        // A new directory is walked at once.
        let mut pr = Pairer::new(4, DELAY);
        assert_eq!(
            pr.directory(p("/d/n"), None),
            Some(Outcome::Walk(p("/d/n")))
        );
        assert!(pr.is_idle());
    }

    #[test]
    fn bulk_work_goes_a_page_at_a_time_and_walks_the_new_name_after_the_last() {
        let t0 = Instant::now();
        let (w, mut b, mut pr) = (World::default(), Books::default(), Pairer::new(4, DELAY));
        for i in 0..5u64 {
            b.known.insert(p(&format!("/d/old/{i}")), entry(i, 10, 1));
        }
        pr.directory(p("/d/new"), Some(p("/d/old")));
        let sizes: Vec<_> = std::iter::from_fn(|| pr.work(2, t0, &w, &mut b).unwrap())
            .map(|page| (page.len(), page.last() == Some(&Outcome::Walk(p("/d/new")))))
            .collect();
        // Two rechecks per entry; the walk comes once, after the last page.
        assert_eq!(sizes, vec![(4, false), (4, false), (3, true)]);

        for i in 0..3u64 {
            b.vanished.insert(p(&format!("/d/v{i}")), entry(i, 10, 1));
            b.known.insert(p(&format!("/d/v{i}")), entry(i, 10, 1));
        }
        pr.scan_ended();
        assert!(pr.sweeping());
        assert_eq!(pr.work(2, t0, &w, &mut b).unwrap().unwrap().len(), 2);
        assert!(pr.sweeping(), "a full page: more may follow");
        assert_eq!(pr.work(2, t0, &w, &mut b).unwrap().unwrap().len(), 1);
        assert!(!pr.sweeping() && pr.is_idle());
    }

    #[test]
    fn a_scans_unpaired_vanished_entry_is_deleted_only_when_still_gone() {
        let a = entry(1, 10, 1);
        let cases: Vec<(&str, Setup, Vec<Outcome>)> = vec![
            ("gone", |_, _, _, _| {}, vec![delete("/d/a", a)]),
            (
                "busy: its work decides",
                |w, _, _, _| {
                    w.busy.insert(p("/d/a"));
                },
                vec![],
            ),
            (
                "pending: settling decides",
                |w, _, _, _| {
                    w.pending.insert(p("/d/a"));
                },
                vec![],
            ),
            (
                "no longer recorded",
                |_, b, _, _| {
                    b.known.clear();
                },
                vec![],
            ),
            (
                "back, and reported",
                |w, _, _, _| {
                    w.disk.insert(p("/d/a"), entry(1, 10, 1).stamp);
                },
                vec![],
            ),
            (
                "back, but excluded now",
                |w, _, _, _| {
                    w.disk.insert(p("/d/a"), entry(1, 10, 1).stamp);
                    w.excluded.insert(p("/d/a"));
                },
                vec![delete("/d/a", a)],
            ),
        ];
        for (case, setup, want) in cases {
            let t0 = Instant::now();
            let (mut w, mut b, mut pr) =
                (World::default(), Books::default(), Pairer::new(4, DELAY));
            b.known.insert(p("/d/a"), a);
            b.vanished.insert(p("/d/a"), a);
            setup(&mut w, &mut b, &mut pr, t0);
            pr.scan_ended();
            assert_eq!(
                pr.work(10, t0, &w, &mut b).unwrap().unwrap(),
                want,
                "{case}"
            );
            assert!(b.vanished.is_empty() && pr.is_idle(), "{case}");
        }
    }

    #[test]
    fn a_new_file_claims_a_held_inode_before_hashing_or_a_vanished_twin_after() {
        let t0 = Instant::now();
        let (mut w, mut b, mut pr) = (World::default(), Books::default(), Pairer::new(4, DELAY));
        let a = entry(1, 10, 1);
        b.known.insert(p("/d/a"), a);
        pr.vanished(Path::new("/d/a"), t0, &w, &mut b).unwrap();
        // Before hashing, on the stamp: another inode or size is not the file.
        assert_eq!(
            pr.claim_settled(Path::new("/d/n"), &entry(2, 10, 1).stamp),
            None
        );
        assert_eq!(
            pr.claim_settled(Path::new("/d/n"), &entry(1, 11, 1).stamp),
            None
        );
        let now = Stamp {
            ctime_ns: 50,
            ..a.stamp
        };
        assert_eq!(
            pr.claim_settled(Path::new("/d/n"), &now),
            Some(Outcome::Move {
                from: p("/d/a"),
                to: p("/d/n"),
                entry: Entry {
                    stamp: now,
                    digest: a.digest
                }
            })
        );
        assert!(pr.is_idle(), "the claim ends the hold");

        // After hashing: the limbo first, whatever the scan.
        b.known.insert(p("/d/b"), entry(2, 10, 2));
        pr.vanished(Path::new("/d/b"), t0, &w, &mut b).unwrap();
        let got = pr
            .claim_hashed(Path::new("/d/m"), &entry(2, 10, 2), false, &w, &mut b)
            .unwrap();
        assert_eq!(got, Some((p("/d/b"), Evidence::Inode)));

        // Then the scan's vanished set, by size and XXH128, skipping what is busy or there.
        let twin = entry(7, 20, 3);
        for name in ["/d/v1", "/d/v2", "/d/v3"] {
            b.vanished.insert(p(name), entry(0, 20, 3));
        }
        b.vanished.insert(p("/d/other"), entry(0, 20, 4));
        w.busy.insert(p("/d/v1"));
        w.disk.insert(p("/d/v2"), entry(5, 20, 3).stamp);
        let none = pr
            .claim_hashed(Path::new("/d/t"), &twin, false, &w, &mut b)
            .unwrap();
        assert_eq!(none, None, "no content pairing outside a scan");
        let got = pr
            .claim_hashed(Path::new("/d/t"), &twin, true, &w, &mut b)
            .unwrap();
        assert_eq!(got, Some((p("/d/v3"), Evidence::Content)));
        assert_eq!(b.vanished.len(), 3, "the claimed entry leaves the set");
        let none = pr
            .claim_hashed(Path::new("/d/u"), &twin, true, &w, &mut b)
            .unwrap();
        assert_eq!(none, None);
    }
}
