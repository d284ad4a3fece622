//! Live hints from the filesystem: inotify through `notify`, or polling.
//!
//! The notify callback runs on notify's own thread and must never block. It converts each event
//! to a [`Change`] and `try_send`s it; when the queue is full it raises the rescan flag instead,
//! so an event that did not fit is recovered by a reconciliation scan, never silently dropped.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};

use crate::change::Change;
use crate::config::{Config, WatchMode};
use crate::fstype;
use crate::stats::Stats;

/// Why a full rescan was asked for. The first three mean events were lost; the last two are
/// scheduled. Each is a label value of `file_watcher_rescans_total` and is logged once per
/// rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanCause {
    /// The kernel's inotify queue overflowed (`fs.inotify.max_queued_events`).
    KernelOverflow,
    /// Our hint queue (HINT_QUEUE) was full when an event arrived.
    HintQueueFull,
    /// The watcher reported an error.
    WatcherError,
    /// RECONCILE_INTERVAL elapsed.
    Periodic,
    /// POLL_INTERVAL elapsed in poll mode.
    Poll,
    /// DATA_DIR is back after a fault (deletions were held back meanwhile).
    DataDirBack,
}

impl RescanCause {
    /// Every cause, for creating the metric series up front.
    pub const ALL: [RescanCause; 6] = [
        Self::KernelOverflow,
        Self::HintQueueFull,
        Self::WatcherError,
        Self::Periodic,
        Self::Poll,
        Self::DataDirBack,
    ];

    /// The metric label and log field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KernelOverflow => "kernel_overflow",
            Self::HintQueueFull => "hint_queue_full",
            Self::WatcherError => "watcher_error",
            Self::Periodic => "periodic",
            Self::Poll => "poll",
            Self::DataDirBack => "data_dir_back",
        }
    }

    /// What an operator can do about it, for the log line.
    pub fn advice(self) -> &'static str {
        match self {
            Self::KernelOverflow => {
                "inotify events were lost; raise fs.inotify.max_queued_events if this repeats"
            }
            Self::HintQueueFull => "the hint queue was full; raise HINT_QUEUE if this repeats",
            Self::WatcherError => "the watcher reported an error (logged above)",
            Self::Periodic => "RECONCILE_INTERVAL elapsed",
            Self::Poll => "POLL_INTERVAL elapsed",
            Self::DataDirBack => "DATA_DIR is back; changes made meanwhile are found by a scan",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Shared between the callback and the pipeline: the causes of the rescan that is owed.
#[derive(Debug, Default)]
pub struct RescanFlag {
    causes: AtomicU8,
    wake: Notify,
}

impl RescanFlag {
    /// Asks for a rescan and wakes the pipeline.
    pub fn raise(&self, cause: RescanCause) {
        self.causes.fetch_or(cause.bit(), Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Takes the request: the causes raised since the last call, none when no rescan is owed.
    pub fn take(&self) -> Vec<RescanCause> {
        let bits = self.causes.swap(0, Ordering::AcqRel);
        RescanCause::ALL
            .into_iter()
            .filter(|c| bits & c.bit() != 0)
            .collect()
    }

    /// Waits until a rescan is asked for.
    pub async fn raised(&self) {
        self.wake.notified().await;
    }
}

/// Why the native watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum HintError {
    /// The inotify watch limit was reached.
    #[error("inotify watch limit reached while watching {path}; raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=1048576) or use WATCH_MODE=poll")]
    WatchLimit {
        /// DATA_DIR.
        path: String,
    },
    /// Any other notify error.
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// DATA_DIR.
        path: String,
        /// The cause.
        #[source]
        source: notify::Error,
    },
}

/// Converts one notify event to changes: none for events that say nothing about content
/// (opens, reads), a rescan request for an overflow.
pub fn convert(event: &notify::Event) -> Vec<Change> {
    if event.need_rescan() {
        return vec![Change::Rescan("the kernel's event queue overflowed")];
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            return event.paths.iter().cloned().map(Change::Closed).collect();
        }
        EventKind::Access(_) => return Vec::new(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            return vec![Change::Rename {
                from: event.paths[0].clone(),
                to: event.paths[1].clone(),
            }];
        }
        // A name moved in from outside the watched tree (IN_MOVED_TO without its pair).
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            return event.paths.iter().cloned().map(Change::MovedIn).collect();
        }
        // An unlink (IN_DELETE), as opposed to a name moved away (IN_MOVED_FROM) or a file the
        // poll watcher no longer sees (`RemoveKind::Any`, which may be a rename).
        EventKind::Remove(RemoveKind::File) => {
            return event.paths.iter().cloned().map(Change::Unlinked).collect();
        }
        _ => {}
    }
    event.paths.iter().cloned().map(Change::Path).collect()
}

/// The live inotify watch of DATA_DIR. Dropping it stops the watch (and its helper thread).
///
/// Every directory is watched through notify's recursive mode, except above a subtree of more
/// than [`SPLIT_ABOVE`] directories, and where a directory cannot be read (a root-owned `lost+found` with mode 0700 at the top of every ext4 volume, seen by a
/// non-root container user): notify's recursive walk gives up on the first unreadable directory,
/// so the directories above one are watched one level deep instead ("split"), each readable
/// child recursively again, and the unreadable one is skipped with a WARNING. New, renamed and
/// removed directories directly inside a split directory are followed by a helper thread, since
/// notify follows them only below a recursive watch. A readable tree of up to 4,096 directories
/// is one recursive watch, as before.
pub struct NativeWatch {
    tree: Arc<WatchTree>,
}

impl std::fmt::Debug for NativeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeWatch")
            .field("split", &self.tree.split_dirs())
            .finish_non_exhaustive()
    }
}

struct WatchTree {
    watcher: Mutex<RecommendedWatcher>,
    /// Directories watched one level deep because something below them cannot be read.
    split: Arc<Mutex<HashSet<PathBuf>>>,
    /// Every path `watch` was called on, to undo a subtree when it moves or goes.
    roots: Mutex<BTreeSet<PathBuf>>,
}

/// A directory that appeared in, or left, a split directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirChange {
    /// Created or moved in: watch it.
    Added(PathBuf),
    /// Removed or moved away: stop watching it and everything below it.
    Removed(PathBuf),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The directory changes in `event` that notify does not follow itself: those directly inside a
/// split directory.
pub fn dir_changes(event: &notify::Event, split: &HashSet<PathBuf>) -> Vec<DirChange> {
    let in_split = |p: &Path| p.parent().is_some_and(|d| split.contains(d));
    let paths = &event.paths;
    let mut out = Vec::new();
    match event.kind {
        EventKind::Create(CreateKind::Folder)
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            out.extend(
                paths
                    .iter()
                    .filter(|p| in_split(p))
                    .cloned()
                    .map(DirChange::Added),
            );
        }
        EventKind::Remove(RemoveKind::Folder)
        | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            out.extend(
                paths
                    .iter()
                    .filter(|p| in_split(p))
                    .cloned()
                    .map(DirChange::Removed),
            );
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => {
            if in_split(&paths[0]) {
                out.push(DirChange::Removed(paths[0].clone()));
            }
            if in_split(&paths[1]) {
                out.push(DirChange::Added(paths[1].clone()));
            }
        }
        _ => {}
    }
    out
}

/// The most directories one recursive notify watch may cover. notify adds a recursive watch in
/// one go on its event thread, and meanwhile the `IN_OPEN` events of its own walk (one or two per
/// directory) pile up unread: 20,000 directories overflowed the kernel's queue (16,384 by
/// default) at start-up, which costs a full rescan. A larger subtree is split, so the thread
/// reads events between smaller watches.
const SPLIT_ABOVE: usize = 4096;

/// Whether `dir` has more than `limit` directories below it (counting stops there). Nothing is
/// watched below `dir` yet, so this walk causes no events.
fn more_dirs_than(dir: &Path, limit: usize) -> bool {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .nth(limit)
        .is_some()
}

fn denied(e: &notify::Error) -> bool {
    matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied)
}

impl WatchTree {
    fn split_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = lock(&self.split).iter().cloned().collect();
        v.sort();
        v
    }

    fn watch(&self, dir: &Path, mode: RecursiveMode) -> notify::Result<()> {
        lock(&self.watcher).watch(dir, mode)?;
        lock(&self.roots).insert(dir.to_path_buf());
        Ok(())
    }

    /// Watches `dir` and everything readable below it.
    ///
    /// # Errors
    /// The watch limit, or a failure other than an unreadable directory.
    fn watch_tree(&self, dir: &Path) -> Result<(), HintError> {
        if more_dirs_than(dir, SPLIT_ABOVE) {
            return self.watch_split(dir);
        }
        let err = match self.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !denied(&err) {
            return Err(map_err(dir, err));
        }
        let culprit = err
            .paths
            .first()
            .cloned()
            .unwrap_or_else(|| dir.to_path_buf());
        // Undo the part of the recursive watch notify made before it gave up.
        self.unwatch_subtree(dir);
        if culprit == dir {
            tracing::warn!(
                dir = %dir.display(),
                "cannot watch directory: permission denied (this user needs read and execute \
                 permission on it); its files are not reported, the rest of the tree is watched"
            );
            return Ok(());
        }
        self.watch_split(dir)
    }

    /// Watches `dir` one level deep and each child directory as a tree of its own; new, renamed
    /// and removed children are then followed by the helper thread.
    ///
    /// # Errors
    /// The watch limit, or a failure other than an unreadable directory.
    fn watch_split(&self, dir: &Path) -> Result<(), HintError> {
        if let Err(e) = self.watch(dir, RecursiveMode::NonRecursive) {
            return if denied(&e) {
                tracing::warn!(dir = %dir.display(), "cannot watch directory: permission denied; skipped");
                Ok(())
            } else {
                Err(map_err(dir, e))
            };
        }
        lock(&self.split).insert(dir.to_path_buf());
        let children = match std::fs::read_dir(dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory; its subdirectories are not watched");
                return Ok(());
            }
        };
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                self.watch_tree(&child.path())?;
            }
        }
        Ok(())
    }

    /// Stops watching `dir` and everything below it.
    fn unwatch_subtree(&self, dir: &Path) {
        let gone: Vec<PathBuf> = lock(&self.roots)
            .iter()
            .filter(|r| r.starts_with(dir))
            .cloned()
            .collect();
        for r in gone {
            // Already gone with its directory, or never watched: nothing to undo.
            let _ = lock(&self.watcher).unwatch(&r);
            lock(&self.roots).remove(&r);
            lock(&self.split).remove(&r);
        }
    }

    fn apply(&self, change: DirChange) {
        match change {
            DirChange::Added(p) => {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    if let Err(e) = self.watch_tree(&p) {
                        tracing::warn!(dir = %p.display(), error = %e, "cannot watch new directory; rescans will find its files");
                    }
                }
            }
            DirChange::Removed(p) => self.unwatch_subtree(&p),
        }
    }
}

/// Starts inotify on `root`, recursively. New directories are watched as they appear;
/// unreadable ones are skipped with a WARNING (see [`NativeWatch`]).
///
/// # Errors
/// [`HintError::WatchLimit`] when inotify watches run out (the caller may fall back to polling).
pub fn start_native(
    root: &Path,
    tx: mpsc::Sender<Change>,
    rescan: Arc<RescanFlag>,
    overflows: Counter,
) -> Result<NativeWatch, HintError> {
    let send_tx = tx;
    let flag = Arc::clone(&rescan);
    let split: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    let split_seen = Arc::clone(&split);
    // Directory changes inside split directories, for the helper thread. Bounded: when it is
    // full, a rescan finds what the missing watches miss.
    let (dirs_tx, dirs_rx) = crossbeam_channel::bounded::<DirChange>(4096);
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                for change in convert(&event) {
                    if let Change::Rescan(_) = change {
                        // Logged once by the pipeline when it starts the rescan.
                        flag.raise(RescanCause::KernelOverflow);
                        continue;
                    }
                    if send_tx.try_send(change).is_err() {
                        overflows.inc();
                        flag.raise(RescanCause::HintQueueFull);
                    }
                }
                let split = lock(&split_seen);
                if !split.is_empty() {
                    for change in dir_changes(&event, &split) {
                        if dirs_tx.try_send(change).is_err() {
                            flag.raise(RescanCause::HintQueueFull);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watcher error; scheduling a rescan");
                flag.raise(RescanCause::WatcherError);
            }
        })
        .map_err(|source| map_err(root, source))?;
    let tree = Arc::new(WatchTree {
        watcher: Mutex::new(watcher),
        split,
        roots: Mutex::default(),
    });
    tree.watch_tree(root)?;
    // The helper holds the tree weakly: dropping the NativeWatch drops the watcher, its
    // callback and so the channel's sender, which ends the helper.
    let weak = Arc::downgrade(&tree);
    std::thread::Builder::new()
        .name("watch-dirs".into())
        .spawn(move || {
            for change in dirs_rx {
                let Some(tree) = weak.upgrade() else { return };
                tree.apply(change);
            }
        })
        .map_err(|e| HintError::Notify {
            path: root.display().to_string(),
            source: notify::Error::io(e),
        })?;
    Ok(NativeWatch { tree })
}

/// How DATA_DIR is watched: what [`start`] set up.
#[derive(Debug)]
pub struct WatchSetup {
    /// The native watch; none when polling, or with `--once`. Shared with the re-watch that
    /// [`WatchSetup::on_data_dir_back`] hands out.
    native: Arc<Mutex<Option<NativeWatch>>>,
    /// Changes are found by polling (WATCH_MODE=poll, or `auto` after inotify ran out).
    pub polling: bool,
    /// How often a full rescan runs: POLL_INTERVAL when polling, RECONCILE_INTERVAL otherwise.
    pub rescan_every: Duration,
    /// What a new native watch needs. Holding the sender keeps the hint queue open while the
    /// setup lives, whatever the mode.
    dir: PathBuf,
    tx: mpsc::Sender<Change>,
    rescan: Arc<RescanFlag>,
    overflows: Counter,
    /// The fast path's barrier directory, watched beside DATA_DIR by the same inotify instance
    /// (see [`WatchSetup::watch_barrier`]).
    barrier: Arc<Mutex<Option<PathBuf>>>,
}

impl WatchSetup {
    /// What to do when DATA_DIR is back after a fault: watch it anew if it was watched natively
    /// (a volume mounted again has lost its inotify watches), and ask for a rescan for what
    /// changed meanwhile, deletions included.
    pub fn on_data_dir_back(&self) -> impl Fn() + Send + Sync + 'static {
        let (native, dir, tx, rescan, overflows, barrier) = (
            Arc::clone(&self.native),
            self.dir.clone(),
            self.tx.clone(),
            Arc::clone(&self.rescan),
            self.overflows.clone(),
            Arc::clone(&self.barrier),
        );
        move || {
            let mut current = lock(&native);
            if current.is_some() {
                match start_native(&dir, tx.clone(), Arc::clone(&rescan), overflows.clone()) {
                    Ok(w) => {
                        if let Some(b) = lock(&barrier).as_deref() {
                            if let Err(e) =
                                lock(&w.tree.watcher).watch(b, RecursiveMode::NonRecursive)
                            {
                                tracing::warn!(error = %e, "cannot watch the barrier directory again; fast-path files wait the full settle delay");
                            }
                        }
                        *current = Some(w);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch DATA_DIR again; relying on rescans")
                    }
                }
            }
            rescan.raise(RescanCause::DataDirBack);
        }
    }

    /// Whether changes come from inotify: only then are writers' closes seen.
    pub fn native(&self) -> bool {
        lock(&self.native).is_some()
    }

    /// Watches the fast path's barrier directory with the same inotify instance as DATA_DIR, so
    /// that a cookie's event comes after every event queued before it (again after DATA_DIR
    /// comes back).
    ///
    /// # Errors
    /// No native watch, or inotify refused the directory.
    pub fn watch_barrier(&self, dir: &Path) -> Result<(), String> {
        let current = lock(&self.native);
        let Some(w) = current.as_ref() else {
            return Err("changes are not watched by inotify".into());
        };
        lock(&w.tree.watcher)
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch the barrier directory {}: {e}", dir.display()))?;
        *lock(&self.barrier) = Some(dir.to_path_buf());
        Ok(())
    }
}

/// Sets up the watch WATCH_MODE asks for: inotify, polling, or (`auto`) inotify falling back to
/// polling when its watches run out. `--once` watches nothing. Polling is logged, and counted in
/// `stats`.
///
/// # Errors
/// What [`start_native`] refuses, unless WATCH_MODE=auto falls back to polling.
pub fn start(
    cfg: &Config,
    tx: mpsc::Sender<Change>,
    rescan: Arc<RescanFlag>,
    stats: &Stats,
) -> Result<WatchSetup, HintError> {
    let overflows = stats.hint_overflows.clone();
    // A network or FUSE filesystem anywhere in the tree: inotify would miss remote changes.
    // (WATCH_MODE=native refused it already, in the settings' check.)
    let remote = (!cfg.once && cfg.watch_mode == WatchMode::Auto)
        .then(|| fstype::remote_under(&cfg.data_dir))
        .flatten();
    let started = Watch::tries_native(cfg.once, cfg.watch_mode, remote.is_some()).then(|| {
        start_native(
            &cfg.data_dir,
            tx.clone(),
            Arc::clone(&rescan),
            overflows.clone(),
        )
    });
    let watch = Watch::choose(
        cfg.once,
        cfg.watch_mode,
        Started::of(started.as_ref()),
        remote.is_some(),
    );
    if watch.polling() {
        stats.polling.store(true, Ordering::Relaxed);
    }
    let interval_ms = cfg.poll_interval.as_millis() as u64;
    let native = match (watch, started) {
        (Watch::Native, Some(Ok(w))) => Some(w),
        (Watch::Poll, _) => {
            tracing::info!(interval_ms, "polling for changes");
            None
        }
        (Watch::Remote, _) => {
            if let Some((at, fs)) = &remote {
                tracing::warn!(
                    path = %at.display(),
                    filesystem = fs.name,
                    interval_ms,
                    "{} is on {fs}, where inotify does not see changes made by other machines; \
                     polling the tree instead (set WATCH_MODE=poll to say so and silence this)",
                    at.display()
                );
            }
            None
        }
        (Watch::FallBack, Some(Err(e))) => {
            tracing::warn!(error = %e, interval_ms, "falling back to polling");
            None
        }
        (Watch::Fail, Some(Err(e))) => return Err(e),
        // `--once`.
        _ => None,
    };
    Ok(WatchSetup {
        native: Arc::new(Mutex::new(native)),
        polling: watch.polling(),
        rescan_every: watch.rescan_every(cfg.poll_interval, cfg.reconcile_interval),
        dir: cfg.data_dir.clone(),
        tx,
        rescan,
        overflows,
        barrier: Arc::default(),
    })
}

/// How starting inotify went, as far as the choice of watch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    /// Not tried: `--once`, or WATCH_MODE=poll.
    NotTried,
    /// inotify is watching.
    Running,
    /// inotify's watches ran out.
    WatchLimit,
    /// Any other failure.
    Failed,
}

impl Started {
    fn of(started: Option<&Result<NativeWatch, HintError>>) -> Self {
        match started {
            None => Self::NotTried,
            Some(Ok(_)) => Self::Running,
            Some(Err(HintError::WatchLimit { .. })) => Self::WatchLimit,
            Some(Err(_)) => Self::Failed,
        }
    }
}

/// What the watch comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// No live hints: `--once` ends after its scan.
    Off,
    /// Live hints from inotify.
    Native,
    /// Polling, as WATCH_MODE=poll asks.
    Poll,
    /// Polling, because inotify's watches ran out under WATCH_MODE=auto.
    FallBack,
    /// Polling, because WATCH_MODE=auto found a network or FUSE filesystem in the tree.
    Remote,
    /// Start-up fails with inotify's error.
    Fail,
}

impl Watch {
    /// Whether inotify is started at all: not with `--once`, polling, or (`auto`) a `remote`
    /// filesystem in the tree.
    fn tries_native(once: bool, mode: WatchMode, remote: bool) -> bool {
        !once && mode != WatchMode::Poll && !(remote && mode == WatchMode::Auto)
    }

    /// The watch a mode comes to, given how starting inotify went and whether the tree holds
    /// a `remote` filesystem.
    fn choose(once: bool, mode: WatchMode, started: Started, remote: bool) -> Self {
        match (mode, started) {
            _ if once => Self::Off,
            (WatchMode::Poll, _) => Self::Poll,
            (WatchMode::Auto, _) if remote => Self::Remote,
            (_, Started::Running) => Self::Native,
            (WatchMode::Auto, Started::WatchLimit) => Self::FallBack,
            (_, Started::WatchLimit | Started::Failed) => Self::Fail,
            (_, Started::NotTried) => Self::Off,
        }
    }

    fn polling(self) -> bool {
        matches!(self, Self::Poll | Self::FallBack | Self::Remote)
    }

    fn rescan_every(self, poll_interval: Duration, reconcile_interval: Duration) -> Duration {
        if self.polling() {
            poll_interval
        } else {
            reconcile_interval
        }
    }
}

fn map_err(root: &Path, source: notify::Error) -> HintError {
    let path = root.display().to_string();
    let limit = matches!(source.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&source.kind, notify::ErrorKind::Io(e) if e.raw_os_error() == Some(libc::ENOSPC));
    if limit {
        HintError::WatchLimit { path }
    } else {
        HintError::Notify { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::Flag;

    #[test]
    fn the_watch_mode_and_how_inotify_started_choose_the_watch() {
        use Started::{Failed, NotTried, Running, WatchLimit};
        use WatchMode::{Auto, Native, Poll};
        let (poll, reconcile) = (Duration::from_secs(10), Duration::from_secs(3600));
        // (--once, mode, inotify tried, how it started, the watch, polling, rescan period)
        let cases = [
            (false, Auto, true, Running, Watch::Native, false, reconcile),
            (false, Auto, true, WatchLimit, Watch::FallBack, true, poll),
            (false, Auto, true, Failed, Watch::Fail, false, reconcile),
            (
                false,
                Native,
                true,
                Running,
                Watch::Native,
                false,
                reconcile,
            ),
            (
                false,
                Native,
                true,
                WatchLimit,
                Watch::Fail,
                false,
                reconcile,
            ),
            (false, Native, true, Failed, Watch::Fail, false, reconcile),
            (false, Poll, false, NotTried, Watch::Poll, true, poll),
            (true, Auto, false, NotTried, Watch::Off, false, reconcile),
            (true, Native, false, NotTried, Watch::Off, false, reconcile),
            (true, Poll, false, NotTried, Watch::Off, false, reconcile),
        ];
        for (once, mode, tried, started, want, polling, every) in cases {
            let case = format!("once={once} {mode:?} {started:?}");
            assert_eq!(Watch::tries_native(once, mode, false), tried, "{case}");
            let got = Watch::choose(once, mode, started, false);
            assert_eq!(got, want, "{case}");
            assert_eq!(got.polling(), polling, "{case}");
            assert_eq!(got.rescan_every(poll, reconcile), every, "{case}");
        }
        // A network or FUSE filesystem in the tree: `auto` polls without trying inotify;
        // `poll` polls as asked; `native` was refused by the settings' check (exit 2);
        // `--once` watches nothing anyway.
        // (--once, mode, inotify tried, the watch, polling)
        let remote = [
            (false, Auto, false, Watch::Remote, true),
            (false, Poll, false, Watch::Poll, true),
            (true, Auto, false, Watch::Off, false),
            (true, Poll, false, Watch::Off, false),
        ];
        for (once, mode, tried, want, polling) in remote {
            let case = format!("remote, once={once} {mode:?}");
            assert_eq!(Watch::tries_native(once, mode, true), tried, "{case}");
            let got = Watch::choose(once, mode, NotTried, true);
            assert_eq!((got, got.polling()), (want, polling), "{case}");
        }
    }

    #[test]
    fn the_flag_hands_over_each_cause_once() {
        let flag = RescanFlag::default();
        assert!(flag.take().is_empty());
        flag.raise(RescanCause::HintQueueFull);
        flag.raise(RescanCause::KernelOverflow);
        flag.raise(RescanCause::HintQueueFull);
        assert_eq!(
            flag.take(),
            vec![RescanCause::KernelOverflow, RescanCause::HintQueueFull]
        );
        assert!(flag.take().is_empty());
    }

    #[test]
    fn directory_changes_are_followed_only_inside_split_directories() {
        let p = |s: &str| PathBuf::from(s);
        let split: HashSet<PathBuf> = [p("/d")].into_iter().collect();
        let ev = |kind| notify::Event::new(kind);
        let name = |mode| EventKind::Modify(ModifyKind::Name(mode));
        let cases: Vec<(notify::Event, Vec<DirChange>)> = vec![
            (
                ev(EventKind::Create(CreateKind::Folder)).add_path(p("/d/album")),
                vec![DirChange::Added(p("/d/album"))],
            ),
            // Below a recursive watch notify follows it itself.
            (
                ev(EventKind::Create(CreateKind::Folder)).add_path(p("/d/album/cd1")),
                vec![],
            ),
            // Files are not directories to watch.
            (
                ev(EventKind::Create(CreateKind::File)).add_path(p("/d/a.flac")),
                vec![],
            ),
            (
                ev(name(RenameMode::Both))
                    .add_path(p("/d/a"))
                    .add_path(p("/d/b")),
                vec![DirChange::Removed(p("/d/a")), DirChange::Added(p("/d/b"))],
            ),
            (
                ev(name(RenameMode::Both))
                    .add_path(p("/d/a"))
                    .add_path(p("/d/x/a")),
                vec![DirChange::Removed(p("/d/a"))],
            ),
            (
                ev(name(RenameMode::To)).add_path(p("/d/in")),
                vec![DirChange::Added(p("/d/in"))],
            ),
            (
                ev(name(RenameMode::From)).add_path(p("/d/out")),
                vec![DirChange::Removed(p("/d/out"))],
            ),
            (
                ev(EventKind::Remove(RemoveKind::Folder)).add_path(p("/d/gone")),
                vec![DirChange::Removed(p("/d/gone"))],
            ),
        ];
        for (event, want) in cases {
            assert_eq!(dir_changes(&event, &split), want, "{event:?}");
        }
    }

    #[test]
    fn conversions() {
        let p = |s: &str| PathBuf::from(s);
        let ev = |kind| notify::Event::new(kind);
        let cases: Vec<(notify::Event, Vec<Change>)> = vec![
            (
                ev(EventKind::Create(CreateKind::File)).add_path(p("/d/a")),
                vec![Change::Path(p("/d/a"))],
            ),
            (
                ev(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
                    .add_path(p("/d/a"))
                    .add_path(p("/d/b")),
                vec![Change::Rename {
                    from: p("/d/a"),
                    to: p("/d/b"),
                }],
            ),
            (
                ev(EventKind::Access(AccessKind::Open(AccessMode::Read))).add_path(p("/d/a")),
                vec![],
            ),
            (
                ev(EventKind::Access(AccessKind::Close(AccessMode::Write))).add_path(p("/d/a")),
                vec![Change::Closed(p("/d/a"))],
            ),
            (
                ev(EventKind::Remove(RemoveKind::File)).add_path(p("/d/a")),
                vec![Change::Unlinked(p("/d/a"))],
            ),
            (
                // What the poll watcher says when a file is gone: maybe renamed, so a plain hint.
                ev(EventKind::Remove(RemoveKind::Any)).add_path(p("/d/a")),
                vec![Change::Path(p("/d/a"))],
            ),
            (
                ev(EventKind::Modify(ModifyKind::Name(RenameMode::From))).add_path(p("/d/a")),
                vec![Change::Path(p("/d/a"))],
            ),
            (
                ev(EventKind::Modify(ModifyKind::Name(RenameMode::To))).add_path(p("/d/a")),
                vec![Change::MovedIn(p("/d/a"))],
            ),
            (
                ev(EventKind::Other).set_flag(Flag::Rescan),
                vec![Change::Rescan("the kernel's event queue overflowed")],
            ),
        ];
        for (event, want) in cases {
            assert_eq!(convert(&event), want, "{event:?}");
        }
    }
}
