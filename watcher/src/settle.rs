//! Settling: a path is acted on only once it has been quiet for the settle delay and two looks at
//! it agree. A pure state machine: both clocks are parameters, so its tests never sleep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hasher::Stamp;

use crate::paths::PathMap;
use crate::store::Entry;

/// Why a path is pending: found by a scan, or hinted by the live watcher. It decides between
/// `file_discovered` and `file_created` for a path the store does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// From a start-up scan, rescan or reconciliation.
    Scan,
    /// From a filesystem event.
    Live,
}

/// What `lstat` showed for a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Nothing there.
    Missing,
    /// A directory.
    Dir,
    /// A regular file with this size and mtime.
    File {
        /// Size in bytes.
        size: u64,
        /// mtime, ns since the epoch.
        mtime_ns: i64,
    },
    /// A FIFO, socket, device or symlink: never read.
    Other,
}

/// One path waiting to settle.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Where the first hint came from.
    pub origin: Origin,
    /// The path it was renamed from, when a rename event named one.
    pub old_path: Option<PathBuf>,
    /// When the first hint (or the scan) about this path arrived: the start of the event
    /// latency that `/metrics` reports. Later hints coalesce into this entry and keep it.
    pub first_hint: Instant,
    /// The last hint was an unlink ([`Settle::unlink`]): if nothing is there when it settles,
    /// the file was deleted, not moved. Any later hint clears it.
    pub unlinked: bool,
    /// Digests already taken of the file, with the stamp they were read at: a scan found it
    /// before it had settled ([`Settle::touch_hashed`]). Reused, instead of a second read, if
    /// the file settles with that same stamp.
    pub hashed: Option<Entry>,
    /// On the fast path: its writer closed it (or it was renamed into place), and it is due
    /// after the grace window instead of the settle delay (see [`crate::fast`]).
    pub fast: bool,
    /// The lease probe found a writer: that writer's close is the next trigger, not a repeat.
    awaiting_close: bool,
    /// Closed twice within the settle delay while pending: off the fast path until it settles
    /// (counted once).
    demoted: bool,
    due: Instant,
    seq: u64,
    last: Option<Observed>,
}

impl Pending {
    fn new(origin: Origin, now: Instant) -> Self {
        Self {
            origin,
            old_path: None,
            first_hint: now,
            unlinked: false,
            hashed: None,
            fast: false,
            awaiting_close: false,
            demoted: false,
            due: now,
            seq: 0,
            last: None,
        }
    }
}

/// The set of pending paths, coalesced per path: a million writes to one file are one entry.
#[derive(Debug)]
pub struct Settle {
    delay: Duration,
    entries: PathMap<Pending>,
    deadlines: BTreeMap<(Instant, u64), PathBuf>,
    next_seq: u64,
    /// The grace window of the fast path (SETTLE_FAST_DELAY).
    fast_delay: Duration,
    /// When each recently closed path was last closed for writing: a second close within the
    /// settle delay demotes it from the fast path.
    last_close: PathMap<Instant>,
    /// The size of `last_close` at which its old closes are swept.
    sweep_closes_at: usize,
}

impl Settle {
    /// An empty set with the given quiet period.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            entries: PathMap::new(),
            deadlines: BTreeMap::new(),
            next_seq: 0,
            fast_delay: delay,
            last_close: PathMap::new(),
            sweep_closes_at: 1024,
        }
    }

    /// The same, with a fast path whose grace window is `fast_delay`.
    pub fn with_fast(delay: Duration, fast_delay: Duration) -> Self {
        Self {
            fast_delay,
            ..Self::new(delay)
        }
    }

    /// Paths pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `path` is pending.
    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains(path)
    }

    /// (Re)arms `p`, quiet since `quiet_since`: due after the grace window on the fast path,
    /// after the settle delay otherwise.
    fn arm(&mut self, path: PathBuf, mut p: Pending, quiet_since: Instant) {
        self.deadlines.remove(&(p.due, p.seq));
        self.next_seq += 1;
        p.seq = self.next_seq;
        p.due = quiet_since + if p.fast { self.fast_delay } else { self.delay };
        self.deadlines.insert((p.due, p.seq), path.clone());
        self.entries.insert(path, p);
    }

    /// `path` was closed by a writer at `now` (IN_CLOSE_WRITE): it takes the fast path, due
    /// after the grace window, unless it must not. Returns why not, if so.
    pub fn closed(&mut self, path: PathBuf, now: Instant) -> Option<crate::fast::Fallback> {
        self.trigger(path, now, true)
    }

    /// A file was renamed or moved into place at `now`: a trigger like a close, but not a close
    /// of its own (notify reports one rename as several events, and the writer's close came
    /// before it, under the old name), so it never counts as a repeat.
    pub fn moved_in(&mut self, path: PathBuf, now: Instant) -> Option<crate::fast::Fallback> {
        self.trigger(path, now, false)
    }

    fn trigger(
        &mut self,
        path: PathBuf,
        now: Instant,
        close: bool,
    ) -> Option<crate::fast::Fallback> {
        use crate::fast::Fallback;
        let close_before = if close {
            self.last_close.insert(path.clone(), now)
        } else {
            None
        };
        // Closes older than the settle delay no longer matter. They are dropped whenever the
        // map has doubled since the last sweep, so a sweep costs O(1) per close, amortised.
        if self.last_close.len() >= self.sweep_closes_at {
            let delay = self.delay;
            self.last_close
                .retain(|_, t| now.saturating_duration_since(*t) < delay);
            self.sweep_closes_at = (2 * self.last_close.len()).max(1024);
        }
        let mut p = self
            .entries
            .remove(&path)
            .unwrap_or_else(|| Pending::new(Origin::Live, now));
        let repeated = !std::mem::take(&mut p.awaiting_close)
            && close_before.is_some_and(|t| now.saturating_duration_since(t) < self.delay);
        let why = if p.origin == Origin::Scan {
            // Counted when the scan queued it.
            p.fast = false;
            None
        } else if repeated || p.demoted {
            p.fast = false;
            (!std::mem::replace(&mut p.demoted, true)).then_some(Fallback::RepeatedClose)
        } else if p.unlinked {
            p.fast = false;
            Some(Fallback::Ambiguous)
        } else {
            p.fast = true;
            None
        };
        p.unlinked = false;
        self.arm(path, p, now);
        why
    }

    /// Takes a path off the fast path: it waits the full settle delay from `now`, and needs
    /// two agreeing looks again. When the probe found a writer (`why` is
    /// [`crate::fast::Fallback::WriterOpen`]), that writer's close puts it back on the fast path.
    pub fn slow_down(
        &mut self,
        path: PathBuf,
        mut p: Pending,
        why: crate::fast::Fallback,
        now: Instant,
    ) {
        p.fast = false;
        p.awaiting_close = why == crate::fast::Fallback::WriterOpen;
        p.last = None;
        self.arm(path, p, now);
    }

    /// Keeps digests read of `path` for the moment it settles, if it is pending: they are used
    /// if it settles with the stamp they were read at.
    pub fn keep_hashed(&mut self, path: &Path, hashed: Entry) {
        if let Some(p) = self.entries.get_mut(path) {
            p.hashed = Some(hashed);
        }
    }

    /// Something happened to `path` at `now`: (re)start its quiet period.
    pub fn touch(&mut self, path: PathBuf, origin: Origin, now: Instant) {
        self.hint(path, origin, now, false);
    }

    /// `path` was hashed at `now` before it had settled: (re)start its quiet period, and keep
    /// the digests for the moment it settles (see [`Pending::hashed`]).
    pub fn touch_hashed(&mut self, path: PathBuf, origin: Origin, now: Instant, hashed: Entry) {
        self.hint(path.clone(), origin, now, false);
        self.keep_hashed(&path, hashed);
    }

    /// `path`'s name was unlinked at `now`: (re)start its quiet period, remembering that this,
    /// so far, is the last thing that happened to it.
    pub fn unlink(&mut self, path: PathBuf, now: Instant) {
        self.hint(path, Origin::Live, now, true);
    }

    /// A hint restarts the quiet period; on the fast path, the grace window. An unlink takes
    /// the path off the fast path (its history is no longer one writer's).
    fn hint(&mut self, path: PathBuf, origin: Origin, now: Instant, unlinked: bool) {
        let mut p = match self.entries.remove(&path) {
            Some(p) => p,
            None => Pending::new(origin, now),
        };
        p.unlinked = unlinked;
        p.fast &= !unlinked;
        self.arm(path, p, now);
    }

    /// Adds a path that is known to be quiet already (a scan found it with an old mtime): it is
    /// due at once. An entry that is already pending keeps its own timer.
    pub fn insert_quiet(&mut self, path: PathBuf, origin: Origin, now: Instant) {
        if self.entries.contains(&path) {
            return;
        }
        let since = now.checked_sub(self.delay).unwrap_or(now);
        self.arm(path, Pending::new(origin, now), since);
    }

    /// Records that `to` was renamed from `from`. `from` is accounted for by `to`: the pending
    /// rename names the path the chain started from (`mv a b; mv b c` is one move from `a`), so
    /// the settled decision can pair it with the store's entry. Paths that drop out of the chain
    /// (the middle of a chain, or an earlier source of `to` that another rename displaced) may
    /// have store entries of their own, so they are looked at again rather than forgotten.
    pub fn rename(&mut self, from: &Path, to: PathBuf, now: Instant) {
        let mut source = from.to_path_buf();
        if let Some(old) = self.entries.remove(from) {
            self.deadlines.remove(&(old.due, old.seq));
            if let Some(start) = old.old_path {
                source = start;
                self.touch(from.to_path_buf(), Origin::Live, now);
            }
        }
        self.touch(to.clone(), Origin::Live, now);
        let source = (source != to).then_some(source);
        let displaced = match self.entries.get_mut(&to) {
            Some(p) => std::mem::replace(&mut p.old_path, source.clone()),
            None => None,
        };
        if let Some(d) = displaced.filter(|d| Some(d) != source.as_ref()) {
            self.touch(d, Origin::Live, now);
        }
    }

    /// Forgets a path.
    pub fn remove(&mut self, path: &Path) -> Option<Pending> {
        let p = self.entries.remove(path)?;
        self.deadlines.remove(&(p.due, p.seq));
        Some(p)
    }

    /// When the next path falls due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(t, _)| *t)
    }

    /// Up to `limit` paths whose quiet period is over. They stay pending until [`Settle::check`].
    pub fn due(&self, now: Instant, limit: usize) -> Vec<PathBuf> {
        self.deadlines
            .range(..=(now, u64::MAX))
            .take(limit)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Puts a due path back for another full quiet period (it is busy elsewhere).
    pub fn defer(&mut self, path: &Path, now: Instant) {
        if let Some(p) = self.entries.remove(path) {
            self.arm(path.to_path_buf(), p, now);
        }
    }

    /// Looks at a due path. A file is settled when this look agrees with the previous one, or,
    /// on the first look, when its mtime is already older than the settle delay, or when it is
    /// on the fast path (whose checks then stand in for the second look). Anything that is not
    /// a file is settled at once. Returns the entry when settled; otherwise the path is
    /// re-armed for another quiet period.
    pub fn check(
        &mut self,
        path: &Path,
        seen: Observed,
        now: Instant,
        wall_now: SystemTime,
    ) -> Option<Pending> {
        let p = self.entries.get(path)?;
        let settled = match seen {
            Observed::File { mtime_ns, .. } => {
                p.fast
                    || p.last == Some(seen)
                    || (p.last.is_none() && self.mtime_is_old(mtime_ns, wall_now))
            }
            _ => true,
        };
        if settled {
            return self.remove(path);
        }
        let mut p = self.entries.remove(path)?;
        p.last = Some(seen);
        self.arm(path.to_path_buf(), p, now);
        None
    }

    /// Whether a file last modified at `mtime_ns` has been quiet for the settle delay.
    pub fn mtime_is_old(&self, mtime_ns: i64, wall_now: SystemTime) -> bool {
        let now_ns = wall_now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let delay_ns = i64::try_from(self.delay.as_nanos()).unwrap_or(i64::MAX);
        now_ns.saturating_sub(mtime_ns) >= delay_ns
    }
}

/// Whether a regular file is at `path` now. A store entry whose path holds anything else (nothing,
/// a directory, a FIFO) is gone.
pub fn is_file(path: &Path) -> bool {
    matches!(look(path).0, Observed::File { .. })
}

/// `lstat`, with the full stamp of a regular file.
pub fn look(path: &Path) -> (Observed, Option<Stamp>) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let s = Stamp::from_metadata(&m);
            let seen = Observed::File {
                size: s.size,
                mtime_ns: s.mtime_ns,
            };
            (seen, Some(s))
        }
        Ok(m) if m.is_dir() => (Observed::Dir, None),
        Ok(_) => (Observed::Other, None),
        Err(_) => (Observed::Missing, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(2);

    fn file(size: u64, mtime_ns: i64) -> Observed {
        Observed::File { size, mtime_ns }
    }

    /// Wall clock where every mtime used below is "recent".
    fn wall(t0_ns: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(t0_ns as u64)
    }

    #[test]
    fn a_file_written_in_bursts_settles_once_after_the_last_write() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        let p = PathBuf::from("/d/big.flac");
        // Writes every 500 ms for 5 s: never due while they continue.
        for i in 0..10 {
            let now = t0 + Duration::from_millis(500 * i);
            s.touch(p.clone(), Origin::Live, now);
            assert!(s.due(now, 10).is_empty(), "due during writes at {i}");
        }
        let last_write = t0 + Duration::from_millis(4500);
        assert!(s
            .due(last_write + D - Duration::from_millis(1), 10)
            .is_empty());
        let due_at = last_write + D;
        assert_eq!(s.due(due_at, 10), vec![p.clone()]);
        // First look: mtime is recent (wall clock = mtime), so one more quiet period.
        let mt = 1_000_000_000_000;
        assert!(s.check(&p, file(200, mt), due_at, wall(mt)).is_none());
        assert!(s.due(due_at + D - Duration::from_millis(1), 10).is_empty());
        // Second look agrees: settled, and gone from the set.
        let settled = s
            .check(&p, file(200, mt), due_at + D, wall(mt + 2_000_000_000))
            .unwrap();
        assert_eq!(settled.origin, Origin::Live);
        // The latency clock started at the first write, not the last or a re-look.
        assert_eq!(settled.first_hint, t0);
        assert!(s.is_empty());
    }

    #[test]
    fn a_changed_second_look_rearms() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        let p = PathBuf::from("/d/a");
        s.touch(p.clone(), Origin::Live, t0);
        let mt = 5_000_000_000;
        assert!(s.check(&p, file(1, mt), t0 + D, wall(mt)).is_none());
        assert!(s.check(&p, file(2, mt + 1), t0 + 2 * D, wall(mt)).is_none());
        assert!(s.check(&p, file(2, mt + 1), t0 + 3 * D, wall(mt)).is_some());
    }

    #[test]
    fn an_old_file_found_by_a_scan_is_due_at_once_and_settles_on_first_look() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        let p = PathBuf::from("/d/old.mp3");
        s.insert_quiet(p.clone(), Origin::Scan, t0);
        assert_eq!(s.due(t0, 10), vec![p.clone()]);
        let mt = 1_000_000_000;
        let settled = s
            .check(&p, file(9, mt), t0, wall(mt + 3_000_000_000))
            .unwrap();
        assert_eq!(settled.origin, Origin::Scan);
    }

    #[test]
    fn missing_paths_settle_without_a_second_look() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        let p = PathBuf::from("/d/gone");
        s.touch(p.clone(), Origin::Live, t0);
        assert!(s
            .check(&p, Observed::Missing, t0 + D, SystemTime::now())
            .is_some());
    }

    /// Only an unlink that is the last thing to happen to a path marks it deleted: a file
    /// written, renamed or created there afterwards is a file again.
    #[test]
    fn an_unlink_counts_only_while_it_is_the_last_hint() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(10);
        type Step = fn(&mut Settle, &Path, Instant);
        let touch: Step = |s, p, t| s.touch(p.to_path_buf(), Origin::Live, t);
        let unlink: Step = |s, p, t| s.unlink(p.to_path_buf(), t);
        let renamed_over: Step = |s, p, t| s.rename(Path::new("/d/tmp"), p.to_path_buf(), t);
        #[rustfmt::skip]
        let cases: &[(&str, &[Step], bool)] = &[
            ("rm", &[unlink], true),
            ("written, then rm", &[touch, unlink], true),
            ("rm, then written again", &[unlink, touch], false),
            ("rm, then a file renamed over the name", &[unlink, renamed_over], false),
            ("rm, written, rm", &[unlink, touch, unlink], true),
        ];
        for (name, steps, want) in cases {
            let mut s = Settle::new(D);
            let p = Path::new("/d/a");
            for (i, step) in steps.iter().enumerate() {
                step(&mut s, p, if i == 0 { t0 } else { later });
            }
            let settled = s
                .check(p, Observed::Missing, later + D, SystemTime::now())
                .unwrap();
            assert_eq!(settled.unlinked, *want, "{name}");
        }
    }

    #[test]
    fn rename_carries_the_old_path_and_drops_it_from_the_set() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        s.touch("/d/a.part".into(), Origin::Live, t0);
        s.rename(Path::new("/d/a.part"), "/d/a.mp3".into(), t0);
        assert_eq!(s.len(), 1);
        assert!(!s.contains(Path::new("/d/a.part")));
        let p = s.remove(Path::new("/d/a.mp3")).unwrap();
        assert_eq!(p.old_path.as_deref(), Some(Path::new("/d/a.part")));
        assert_eq!(s.next_deadline(), None);
    }

    /// Renames in quick succession: which path each pending entry says it came from, and which
    /// paths are pending to be looked at again.
    #[test]
    fn rename_chains_keep_their_start_and_recheck_what_drops_out() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, Option<&'static str>)],
        );
        let cases: &[Case] = &[
            ("plain rename", &[("a", "b")], &[("b", Some("a"))]),
            (
                "mv a a2; mv a2 a3: one move from a; a2 looked at again",
                &[("a", "a2"), ("a2", "a3")],
                &[("a2", None), ("a3", Some("a"))],
            ),
            (
                "three links",
                &[("a", "b"), ("b", "c"), ("c", "d")],
                &[("b", None), ("c", None), ("d", Some("a"))],
            ),
            (
                "there and back: no move, both looked at",
                &[("a", "b"), ("b", "a")],
                &[("a", None), ("b", None)],
            ),
            (
                "two renames onto one name: the displaced source is looked at again",
                &[("x", "t"), ("y", "t")],
                &[("t", Some("y")), ("x", None)],
            ),
        ];
        for (name, renames, want) in cases {
            let t0 = Instant::now();
            let mut s = Settle::new(D);
            for (from, to) in *renames {
                s.rename(
                    Path::new(&format!("/d/{from}")),
                    format!("/d/{to}").into(),
                    t0,
                );
            }
            let mut got: Vec<(String, Option<String>)> = s
                .entries
                .inner_paths()
                .into_iter()
                .map(|p| {
                    let old = s.entries.get(&p).and_then(|e| e.old_path.clone());
                    (
                        p.display().to_string(),
                        old.map(|o| o.display().to_string()),
                    )
                })
                .collect();
            got.sort();
            let want: Vec<(String, Option<String>)> = want
                .iter()
                .map(|(p, o)| (format!("/d/{p}"), o.map(|o| format!("/d/{o}"))))
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(s.deadlines.len(), s.len(), "{name}: one deadline per entry");
        }
    }

    const FAST: Duration = Duration::from_millis(100);

    #[test]
    fn a_writers_close_takes_the_fast_path_unless_its_history_says_otherwise() {
        use crate::fast::Fallback;
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        type Step = fn(&mut Settle, &Path, Instant) -> Option<Fallback>;
        let close: Step = |s, p, t| s.closed(p.to_path_buf(), t);
        let write: Step = |s, p, t| {
            s.touch(p.to_path_buf(), Origin::Live, t);
            None
        };
        let unlink: Step = |s, p, t| {
            s.unlink(p.to_path_buf(), t);
            None
        };
        let moved: Step = |s, p, t| s.moved_in(p.to_path_buf(), t);
        let scanned: Step = |s, p, t| {
            s.insert_quiet(p.to_path_buf(), Origin::Scan, t);
            None
        };
        // (name, steps at 0, 10, 20 … ms, the fallback of the last step, fast, due at ms)
        type Case<'a> = (&'a str, &'a [Step], Option<Fallback>, bool, u64);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("one close", &[write, close], None, true, 10 + 100),
            ("a write after the close restarts the grace window", &[close, write], None, true, 10 + 100),
            ("a second close within the settle delay demotes it", &[close, close], Some(Fallback::RepeatedClose), false, 10 + 2000),
            ("a close after an unlink is ambiguous", &[unlink, close], Some(Fallback::Ambiguous), false, 10 + 2000),
            ("an unlink after the close takes it off", &[close, unlink], None, false, 10 + 2000),
            ("found by a scan first", &[scanned, close], None, false, 10 + 2000),
            ("moved in, then renamed into place: one trigger, twice", &[moved, moved], None, true, 10 + 100),
            ("closed, then renamed into place", &[close, moved], None, true, 10 + 100),
        ];
        for (name, steps, why, fast, due) in cases {
            let mut s = Settle::with_fast(D, FAST);
            let p = Path::new("/d/a");
            let mut last = None;
            for (i, step) in steps.iter().enumerate() {
                last = step(&mut s, p, ms(10 * i as u64));
            }
            assert_eq!(last, *why, "{name}: fallback");
            assert_eq!(s.next_deadline(), Some(ms(*due)), "{name}: due");
            assert_eq!(
                s.entries.get(p).map(|e| e.fast),
                Some(*fast),
                "{name}: fast"
            );
        }
    }

    #[test]
    fn closes_older_than_the_settle_delay_are_swept_as_the_map_grows() {
        let t0 = Instant::now();
        let mut s = Settle::with_fast(D, FAST);
        for i in 0..5000u64 {
            let p = PathBuf::from(format!("/d/{i}"));
            let now = t0 + Duration::from_millis(i);
            s.closed(p.clone(), now);
            s.remove(&p);
        }
        // At most the closes of the last settle delay (2,000 of them), and the doubling slack.
        assert!(s.last_close.len() <= 4096, "{}", s.last_close.len());
        assert!(s.last_close.len() >= 2000, "{}", s.last_close.len());
    }

    #[test]
    fn a_fast_path_file_settles_on_its_first_look_and_a_slowed_one_needs_two() {
        use crate::fast::Fallback;
        let t0 = Instant::now();
        let mut s = Settle::with_fast(D, FAST);
        let p = PathBuf::from("/d/a");
        let mt = 1_000_000_000_000;
        assert_eq!(s.closed(p.clone(), t0), None);
        assert_eq!(s.due(t0 + FAST, 10), vec![p.clone()]);
        let settled = s.check(&p, file(5, mt), t0 + FAST, wall(mt)).unwrap();
        assert!(settled.fast);

        // The stamp moved under the probe: back for the full delay, and two looks again.
        s.slow_down(p.clone(), settled, Fallback::ChangedDuringHash, t0 + FAST);
        assert!(s
            .due(t0 + FAST + D - Duration::from_millis(1), 10)
            .is_empty());
        assert!(s.check(&p, file(5, mt), t0 + FAST + D, wall(mt)).is_none());
        assert!(s
            .check(&p, file(5, mt), t0 + FAST + 2 * D, wall(mt))
            .is_some());

        // Closes a settle delay apart are each fast again.
        let later = t0 + 3 * D;
        assert_eq!(s.closed(p.clone(), later), None);
        assert_eq!(s.next_deadline(), Some(later + FAST));

        // A writer was still open at the probe: its close, soon after, is fast, not a repeat.
        let settled = s.check(&p, file(5, mt), later + FAST, wall(mt)).unwrap();
        s.slow_down(p.clone(), settled, Fallback::WriterOpen, later + FAST);
        let close = later + FAST + Duration::from_millis(50);
        assert_eq!(s.closed(p.clone(), close), None);
        assert_eq!(s.next_deadline(), Some(close + FAST));
        // But a third close within the delay is.
        assert_eq!(
            s.closed(p.clone(), close + FAST),
            Some(Fallback::RepeatedClose)
        );
    }

    #[test]
    fn coalesces_per_path() {
        let t0 = Instant::now();
        let mut s = Settle::new(D);
        for i in 0..10_000 {
            s.touch("/d/x".into(), Origin::Live, t0 + Duration::from_micros(i));
        }
        assert_eq!(s.len(), 1);
        assert_eq!(s.deadlines.len(), 1);
    }
}
