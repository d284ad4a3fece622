//! The lifecycle of scans: when a full scan starts, what it tracks while it runs, when it ends,
//! and whether its end leaves deletions to queue. Directory walks share its stop flag.
//!
//! The producers ([`crate::scan::full_scan`], [`crate::scan::walk`]) need the store and the
//! filter, so [`Scans`] does not spawn them: it hands the engine a [`Launch`] (the channel to
//! send on, the stop flag, the label) and the engine starts the thread. Everything else about a
//! scan (its bookkeeping messages, its pruning and progress intervals, its figures) lives here,
//! and takes `now` as a parameter, so its tests need no store, pool or sink.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hasher::Stamp;
use tokio::sync::mpsc;

use crate::paths::PathSet;
use crate::scan::ScanMsg;
use crate::stats::Stats;
use crate::store::Entry;

/// How often a running scan drops the paths whose work is done (see [`Scans::try_finish`]).
const SCAN_PRUNE_EVERY: Duration = Duration::from_millis(500);

/// How often a running scan logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a producer thread needs: where to send, when to stop, and what to call itself in logs.
#[derive(Debug)]
pub struct Launch {
    /// The channel the producer sends its [`ScanMsg`]s on.
    pub tx: mpsc::Sender<ScanMsg>,
    /// Set when the pipeline drains; the producer stops at its next entry.
    pub stop: Arc<AtomicBool>,
    /// `initial`, `reconcile` or `directory`.
    pub label: &'static str,
}

/// A file a scan found new or changed, for the engine to route (settle or hash).
#[derive(Debug)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// Its stamp, when the walk took one (only for paths the store knew).
    pub stamp: Option<Stamp>,
    /// The store's entry as the scan saw it.
    pub known: Option<Entry>,
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Entries found vanished and not paired with a new file: deletions to queue.
    pub deleted: u64,
    /// It was the first scan of the run.
    pub initial: bool,
}

impl Finished {
    /// The store's vanished set holds deletions to work through.
    pub fn queue_deletions(&self) -> bool {
        self.deleted > 0
    }
}

/// The one running full scan.
#[derive(Default)]
struct Scan {
    /// Entries the sweep put in the store's vanished set, and how many of them new files
    /// claimed as moves.
    vanished: u64,
    paired: u64,
    walk_done: bool,
    /// What it found that may still be in the pipeline: the scan ends when this is empty.
    paths: PathSet,
    files: u64,
    unchanged: u64,
    started: Option<Instant>,
    last_check: Option<Instant>,
    initial: bool,
}

/// Owns the scans' state and channels: the scan owed, the one running, how many ran.
pub struct Scans {
    /// DATA_DIR, for the "scan started" line.
    dir: PathBuf,
    /// With `--once` only the first scan runs.
    once: bool,
    scan: Option<Scan>,
    /// A rescan is due (at the start, after an overflow, a periodic tick or a lost watch).
    owed: bool,
    run: u64,
    scan_tx: mpsc::Sender<ScanMsg>,
    scan_rx: mpsc::Receiver<ScanMsg>,
    walk_tx: mpsc::Sender<ScanMsg>,
    walk_rx: mpsc::Receiver<ScanMsg>,
    /// Tells full scans and directory walks to stop when the pipeline drains.
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    last_progress: Instant,
}

impl Scans {
    /// No scan running, the first one owed; channels of `capacity` messages.
    pub fn new(dir: PathBuf, once: bool, capacity: usize, stats: Arc<Stats>, now: Instant) -> Self {
        let (scan_tx, scan_rx) = mpsc::channel(capacity);
        let (walk_tx, walk_rx) = mpsc::channel(capacity);
        Self {
            dir,
            once,
            scan: None,
            owed: true,
            run: 0,
            scan_tx,
            scan_rx,
            walk_tx,
            walk_rx,
            stop: Arc::new(AtomicBool::new(false)),
            stats,
            last_progress: now,
        }
    }

    /// A rescan is due.
    pub fn owe(&mut self) {
        self.owed = true;
    }

    /// A scan is owed, none runs, and (with `once`) none has run yet.
    pub fn wants_start(&self) -> bool {
        self.owed && self.scan.is_none() && !(self.once && self.run > 0)
    }

    /// Starts a full scan if one is wanted and the engine `allowed` it; the engine spawns the
    /// producer with the [`Launch`].
    pub fn maybe_start(&mut self, now: Instant, allowed: bool) -> Option<Launch> {
        if !allowed || !self.wants_start() {
            return None;
        }
        self.owed = false;
        let initial = self.run == 0;
        self.run += 1;
        let label = if initial { "initial" } else { "reconcile" };
        tracing::info!(scan = label, dir = %self.dir.display(), "scan started");
        self.stats.scan_running.set(1);
        self.stats.scan_files_seen.set(0);
        self.stats.scan_files_todo.set(0);
        self.scan = Some(Scan {
            started: Some(now),
            initial,
            ..Scan::default()
        });
        Some(Launch {
            tx: self.scan_tx.clone(),
            stop: Arc::clone(&self.stop),
            label,
        })
    }

    /// What a directory walk needs.
    pub fn walk_dir(&self) -> Launch {
        Launch {
            tx: self.walk_tx.clone(),
            stop: Arc::clone(&self.stop),
            label: "directory",
        }
    }

    /// A full scan runs.
    pub fn running(&self) -> bool {
        self.scan.is_some()
    }

    /// The running scan is the first of the run.
    pub fn initial(&self) -> bool {
        self.scan.as_ref().is_some_and(|s| s.initial)
    }

    /// At least one scan ran, and none runs now.
    pub fn ran_and_ended(&self) -> bool {
        self.run > 0 && self.scan.is_none()
    }

    /// The receivers of full scans and of directory walks, for the engine's loop to wait on
    /// both at once.
    pub fn receivers(&mut self) -> (&mut mpsc::Receiver<ScanMsg>, &mut mpsc::Receiver<ScanMsg>) {
        (&mut self.scan_rx, &mut self.walk_rx)
    }

    /// The full scan's next message, if one is queued.
    pub fn try_next_scan(&mut self) -> Option<ScanMsg> {
        self.scan_rx.try_recv().ok()
    }

    /// A directory walk's next message, if one is queued.
    pub fn try_next_walk(&mut self) -> Option<ScanMsg> {
        self.walk_rx.try_recv().ok()
    }

    /// Takes a full scan's message: the bookkeeping is done here, a found file is returned for
    /// the engine to route. Messages with no scan running are dropped.
    pub fn message(&mut self, m: ScanMsg) -> Option<Found> {
        let scan = self.scan.as_mut()?;
        match m {
            ScanMsg::Vanished(n) => scan.vanished += n,
            ScanMsg::Found(path, stamp, known) => {
                return Some(Found { path, stamp, known });
            }
            ScanMsg::Progress { files } => {
                self.stats.scan_files_seen.set(gauge_value(files));
            }
            ScanMsg::Done { files, unchanged } => {
                self.stats.scan_files_seen.set(gauge_value(files));
                scan.walk_done = true;
                scan.files = files;
                scan.unchanged = unchanged;
            }
        }
        None
    }

    /// The running scan tracks `path` until its work is done.
    pub fn found(&mut self, path: PathBuf) {
        if let Some(scan) = self.scan.as_mut() {
            scan.paths.insert(path);
        }
    }

    /// A new file may still be paired with a vanished entry: fewer were paired than vanished.
    pub fn may_pair(&self) -> bool {
        self.scan.as_ref().is_some_and(|s| s.paired < s.vanished)
    }

    /// A new file was paired with a vanished entry.
    pub fn paired(&mut self) {
        if let Some(scan) = self.scan.as_mut() {
            scan.paired += 1;
        }
    }

    /// Drops the paths whose work is done (none `still_working`; all of them when the pipeline
    /// is `idle`), and ends the scan once its walk has ended and nothing it found is left.
    pub fn try_finish(
        &mut self,
        now: Instant,
        still_working: impl Fn(&Path) -> bool,
        idle: bool,
    ) -> Option<Finished> {
        let scan = self.scan.as_mut()?;
        // Drop the done paths at most twice a second, so a big scan does not cost O(paths) on
        // every turn of the loop, and while the walk still runs too: the set then holds the
        // work in progress, not the tree (a fresh scan of a million files held 140 MiB of paths
        // here until its walk ended).
        if idle {
            if !scan.paths.is_empty() {
                scan.paths = PathSet::new();
            }
        } else if scan
            .last_check
            .is_none_or(|t| now.saturating_duration_since(t) >= SCAN_PRUNE_EVERY)
        {
            scan.last_check = Some(now);
            scan.paths.retain(|p| still_working(p));
            self.stats
                .scan_files_todo
                .set(gauge_value(scan.paths.len() as u64));
        }
        if !scan.walk_done || !scan.paths.is_empty() {
            return None;
        }
        let scan = self.scan.take()?;
        // What vanished and was not paired with a new file is a deletion, worked through as
        // the backlog has room.
        let deleted = scan.vanished.saturating_sub(scan.paired);
        let secs = scan
            .started
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        tracing::info!(
            scan = if scan.initial { "initial" } else { "reconcile" },
            files = scan.files,
            unchanged = scan.unchanged,
            changed = scan.files - scan.unchanged,
            vanished = deleted,
            seconds = secs,
            "scan finished"
        );
        self.stats.scans.inc();
        self.stats.scan_running.set(0);
        self.stats.scan_files_todo.set(0);
        if scan.initial {
            self.stats.initial_scan_done.store(true, Ordering::Relaxed);
        }
        Some(Finished {
            deleted,
            initial: scan.initial,
        })
    }

    /// Every 5 s while a scan runs: the seconds it has run, for the engine's progress line.
    pub fn progress_due(&mut self, now: Instant) -> Option<f64> {
        let scan = self.scan.as_ref()?;
        if now.saturating_duration_since(self.last_progress) < PROGRESS_EVERY {
            return None;
        }
        self.last_progress = now;
        Some(scan.started.map_or(1.0, |s| {
            now.saturating_duration_since(s).as_secs_f64().max(0.001)
        }))
    }

    /// Tells the producers to stop at their next entry.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Closes both channels: a producer still running gets an error at its next send.
    pub fn close(&mut self) {
        self.scan_rx.close();
        self.walk_rx.close();
    }

    /// How many paths the running scan still tracks.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.scan.as_ref().map_or(0, |s| s.paths.len())
    }
}

/// A count as a gauge's value.
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::clock::Clock;

    fn scans(once: bool, clock: &Clock) -> Scans {
        Scans::new(
            PathBuf::from("/data"),
            once,
            16,
            Arc::new(Stats::default()),
            clock.now(),
        )
    }

    /// Starts the first scan; the producer is not run.
    fn started(once: bool, clock: &Clock) -> Scans {
        let mut s = scans(once, clock);
        assert!(s.maybe_start(clock.now(), true).is_some());
        s
    }

    /// Ends the walk and the work of the running scan.
    fn finish(s: &mut Scans, now: Instant) -> Option<Finished> {
        assert!(s
            .message(ScanMsg::Done {
                files: 0,
                unchanged: 0
            })
            .is_none());
        s.try_finish(now, |_| false, true)
    }

    /// A scan tracks the paths it found until their work is done. It must drop finished ones
    /// while its walk still runs, or a fresh scan holds the whole tree in memory.
    #[test]
    fn a_scan_forgets_finished_paths_while_its_walk_runs() {
        let clock = Clock::manual();
        let mut s = started(true, &clock);
        for i in 0..1_000 {
            s.found(PathBuf::from(format!("/data/f{i}")));
        }
        let settling = PathBuf::from("/data/f7");
        let working = |p: &Path| p == settling;

        assert_eq!(s.try_finish(clock.now(), working, false), None);
        assert_eq!(s.tracked(), 1, "only the path still settling is kept");

        // More found within the half second: not looked through again yet.
        s.found(PathBuf::from("/data/g"));
        assert_eq!(s.try_finish(clock.now(), working, false), None);
        assert_eq!(s.tracked(), 2);

        // Nothing settling or busy: whatever the scan found is done.
        assert_eq!(s.try_finish(clock.now(), |_| false, true), None);
        assert_eq!(s.tracked(), 0);
        assert!(
            s.running(),
            "the walk has not ended, so neither has the scan"
        );
    }

    /// The scan ends once its walk has ended and none of its paths is still in the pipeline.
    #[test]
    fn a_scan_ends_when_its_walk_and_its_work_are_done() {
        let clock = Clock::manual();
        let mut s = scans(true, &clock);
        let launch = s.maybe_start(clock.now(), true).unwrap();
        assert_eq!(launch.label, "initial");
        // The producer's last word, through the real channel.
        launch
            .tx
            .try_send(ScanMsg::Done {
                files: 3,
                unchanged: 2,
            })
            .unwrap();
        let done = s.try_next_scan().unwrap();
        assert!(s.message(done).is_none());
        let busy = PathBuf::from("/data/busy");
        s.found(busy.clone());
        assert_eq!(s.try_finish(clock.now(), |p| p == busy, false), None);
        assert_eq!(s.tracked(), 1, "a path still busy keeps the scan open");

        let finished = s.try_finish(clock.now(), |_| false, true);
        assert_eq!(
            finished,
            Some(Finished {
                deleted: 0,
                initial: true
            })
        );
        assert!(!s.running(), "walk and work done: the scan is over");
        assert_eq!(s.stats.scans.get(), 1);
        assert!(s.stats.initial_scan_done.load(Ordering::Relaxed));
    }

    /// The scan's done paths are dropped at most every 500 ms while it runs, and progress is
    /// due every 5 s.
    #[test]
    fn scan_pruning_and_progress_keep_their_intervals() {
        let clock = Clock::manual();
        let ms = Duration::from_millis;
        let mut s = started(true, &clock);
        let settling = PathBuf::from("/data/settling");
        let working = |p: &Path| p == settling;
        s.found(PathBuf::from("/data/done"));
        s.try_finish(clock.now(), working, false);
        assert_eq!(s.tracked(), 0, "the first look prunes");

        s.found(PathBuf::from("/data/done"));
        clock.advance(ms(499));
        s.try_finish(clock.now(), working, false);
        assert_eq!(s.tracked(), 1, "not again within 500 ms");
        clock.advance(ms(1));
        s.try_finish(clock.now(), working, false);
        assert_eq!(s.tracked(), 0, "again after 500 ms");

        let logged = s.last_progress;
        clock.advance(ms(3_500));
        assert_eq!(s.progress_due(clock.now()), None);
        assert_eq!(s.last_progress, logged, "no progress line within 5 s");
        clock.advance(ms(1_000));
        assert_eq!(s.progress_due(clock.now()), Some(5.0));
        assert_eq!(s.last_progress, clock.now(), "a progress line after 5 s");
        clock.advance(ms(4_999));
        assert_eq!(s.progress_due(clock.now()), None, "5 s from the last line");
        clock.advance(ms(1));
        assert!(s.progress_due(clock.now()).is_some());
    }

    /// No progress line while no scan runs.
    #[test]
    fn no_progress_without_a_scan() {
        let clock = Clock::manual();
        let mut s = scans(false, &clock);
        clock.advance(Duration::from_secs(60));
        assert_eq!(s.progress_due(clock.now()), None);
    }

    /// The first scan starts only when allowed; the second only when owed, allowed, not in
    /// `once` mode, and after the first has ended.
    #[test]
    fn a_scan_starts_only_when_owed_and_allowed() {
        let clock = Clock::manual();
        let mut s = scans(false, &clock);
        assert!(s.wants_start(), "the first scan is owed");
        assert!(s.maybe_start(clock.now(), false).is_none(), "not allowed");
        assert!(!s.running());
        assert_eq!(s.maybe_start(clock.now(), true).unwrap().label, "initial");
        s.owe();
        assert!(!s.wants_start(), "one scan at a time");
        assert!(s.maybe_start(clock.now(), true).is_none());
        assert!(finish(&mut s, clock.now()).is_some());

        // (once, owed, allowed, label of the second scan)
        let cases: [(bool, bool, bool, Option<&str>); 5] = [
            (false, true, true, Some("reconcile")),
            (false, false, true, None),
            (false, true, false, None),
            (true, true, true, None),
            (true, false, true, None),
        ];
        for (once, owed, allowed, want) in cases {
            let mut s = started(once, &clock);
            assert!(!s.ran_and_ended());
            assert!(finish(&mut s, clock.now()).is_some());
            assert!(s.ran_and_ended());
            if owed {
                s.owe();
            }
            let got = s.maybe_start(clock.now(), allowed).map(|l| l.label);
            assert_eq!(got, want, "once {once}, owed {owed}, allowed {allowed}");
            assert_eq!(s.running(), want.is_some());
            assert!(!s.initial());
        }
    }

    /// Deletions are queued when more entries vanished than new files were paired with them;
    /// pairing stops once every vanished entry is claimed.
    #[test]
    fn vanished_beyond_paired_are_queued_as_deletions() {
        // (vanished batches, pairs tried, pairs made, deleted)
        let cases: [(&[u64], u64, u64, u64); 5] = [
            (&[], 0, 0, 0),
            (&[], 2, 0, 0),
            (&[3], 1, 1, 2),
            (&[3], 3, 3, 0),
            (&[2, 4096], 5, 5, 4093),
        ];
        let clock = Clock::manual();
        for (batches, tries, made, deleted) in cases {
            let mut s = started(false, &clock);
            for &n in batches {
                assert!(s.message(ScanMsg::Vanished(n)).is_none());
            }
            let mut paired = 0;
            for _ in 0..tries {
                if s.may_pair() {
                    s.paired();
                    paired += 1;
                }
            }
            assert_eq!(paired, made, "{batches:?}, {tries} tried");
            let f = finish(&mut s, clock.now()).unwrap();
            assert_eq!(f.deleted, deleted, "{batches:?}, {tries} tried");
            assert_eq!(f.queue_deletions(), deleted > 0);
            assert!(!s.may_pair(), "no pairing without a scan");
        }
        let mut s = started(false, &clock);
        assert!(s.message(ScanMsg::Vanished(2)).is_none());
        s.paired();
        s.paired();
        assert!(!s.may_pair(), "every vanished entry claimed");
        assert_eq!(finish(&mut s, clock.now()).unwrap().deleted, 0);
    }

    /// A found file is handed back for routing; bookkeeping stays here, and nothing is taken
    /// while no scan runs.
    #[test]
    fn found_files_go_back_to_the_engine_and_the_rest_stays() {
        let clock = Clock::manual();
        let mut s = scans(false, &clock);
        let found = || ScanMsg::Found(PathBuf::from("/data/a"), None, None);
        assert!(s.message(found()).is_none(), "no scan: dropped");
        assert!(s.maybe_start(clock.now(), true).is_some());
        assert_eq!(s.message(found()).unwrap().path, PathBuf::from("/data/a"));
        assert!(s.message(ScanMsg::Progress { files: 4096 }).is_none());
        assert_eq!(s.stats.scan_files_seen.get(), 4096);
        assert!(s.message(ScanMsg::Vanished(1)).is_none());
        assert!(s.may_pair());
        assert_eq!(
            s.try_finish(clock.now(), |_| false, true),
            None,
            "walk runs"
        );
    }

    /// Walks and scans stop together, and closing ends both channels.
    #[test]
    fn stop_reaches_every_producer_and_close_ends_both_channels() {
        let clock = Clock::manual();
        let mut s = scans(false, &clock);
        let scan = s.maybe_start(clock.now(), true).unwrap();
        let walk = s.walk_dir();
        assert_eq!(walk.label, "directory");
        s.stop();
        assert!(scan.stop.load(Ordering::Relaxed) && walk.stop.load(Ordering::Relaxed));
        s.close();
        assert!(scan.tx.try_send(ScanMsg::Vanished(1)).is_err());
        assert!(walk.tx.try_send(ScanMsg::Vanished(1)).is_err());
    }
}
