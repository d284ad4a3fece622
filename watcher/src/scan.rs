//! Scans: the store sweep that finds vanished files, and the walk that finds new and changed
//! ones. Both run on blocking threads and feed the pipeline through a bounded channel, so a scan
//! of a million files holds the memory of one channel, not of a million paths.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hasher::Stamp;
use ignore::WalkState;
use tokio::sync::mpsc;

use crate::dircache::DirCache;
use crate::dirstat::DirStat;
use crate::filter::Filter;
use crate::presence::Presence;
use crate::store::{Entry, Store};

/// What a scan tells the pipeline.
#[derive(Debug)]
pub enum ScanMsg {
    /// This many more store entries whose file is gone (or no longer reported) were put in the
    /// store's vanished set: candidates for deletion or for pairing with a new file of the same
    /// size and XXH128 (a move while we were down). The entries stay in the store, so a sweep
    /// of any size holds one batch in memory.
    Vanished(u64),
    /// A regular file that is new or whose stamp differs from the store, with the store's entry
    /// as the scan saw it (saves the pipeline a second lookup). The stamp is `None` for a path
    /// the store does not know: the walk does not `lstat` it, because the hasher's own `fstat`
    /// gives the stamp of exactly what it read (one syscall less per new file).
    Found(PathBuf, Option<Stamp>, Option<Entry>),
    /// How far the walk is: regular files seen so far (sent every 4,096 files, for the
    /// `file_watcher_scan_files_seen` metric).
    Progress {
        /// Regular files that matched the filter so far.
        files: u64,
    },
    /// The walk is over.
    Done {
        /// Regular files that matched the filter.
        files: u64,
        /// Of those, files whose stamp matched the store (nothing to do).
        unchanged: u64,
    },
}

/// A file's path relative to DATA_DIR, for the filter.
pub fn relative<'a>(root: &Path, path: &'a Path) -> &'a Path {
    crate::paths::below(root, path).unwrap_or(path)
}

/// Vanished entries written to the store per transaction.
const SWEEP_BATCH: usize = 4096;

/// Key ranges the sweep aims for per thread, so a thread that finishes early takes another
/// range instead of waiting for the slowest one.
const RANGES_PER_THREAD: usize = 8;

/// The most split points the sweep lists directories for.
const MAX_SPLITS: usize = 4096;

/// Finds store entries whose file no longer exists as a reported regular file and puts them in
/// the store's vanished set (emptied first), a batch at a time, telling `tx` how many each time.
/// Existence comes from directory listings ([`Presence`]), not from a stat per entry: the walk
/// that follows stats each file once, and that is the only stat a restart makes per file.
///
/// The store's keys are cut into ranges at the paths of the first directories below `root`
/// ([`split_points`]), and `threads` threads take ranges in turn, each with a [`Presence`] of
/// its own: a directory's keys are contiguous, so it is still listed once (twice at most, when
/// a cut falls inside it). The sweep ends before the walk starts, so every vanished entry is in
/// the set before the first new file could be paired with it. Stops early when `stop` is set or
/// the receiver is gone.
///
/// # Errors
/// A store read or write failure.
pub fn sweep(
    store: &Store,
    root: &Path,
    filter: &Filter,
    tx: &mpsc::Sender<ScanMsg>,
    stop: &AtomicBool,
    threads: usize,
) -> Result<(), crate::store::StoreError> {
    store.vanished_clear()?;
    let points = split_points(root, threads);
    // Range i runs from bounds[i] up to bounds[i + 1]; the last one to the end of the keys.
    let bounds: Vec<&[u8]> = std::iter::once(&[][..])
        .chain(points.iter().map(Vec::as_slice))
        .collect();
    let part = SweepPart {
        store,
        root,
        filter,
        tx,
        stop,
        gone: AtomicBool::new(false),
        bounds: &bounds,
        next: AtomicUsize::new(0),
    };
    let results: Vec<Result<u64, crate::store::StoreError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, bounds.len()))
            .map(|_| s.spawn(|| part.run()))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut listed = 0;
    for r in results {
        listed += r?;
    }
    tracing::debug!(
        directories_listed = listed,
        ranges = bounds.len(),
        "vanished sweep done"
    );
    Ok(())
}

/// What the sweep's threads share.
struct SweepPart<'a> {
    store: &'a Store,
    root: &'a Path,
    filter: &'a Filter,
    tx: &'a mpsc::Sender<ScanMsg>,
    stop: &'a AtomicBool,
    /// The receiver is gone: every thread stops.
    gone: AtomicBool,
    bounds: &'a [&'a [u8]],
    /// The next range to take.
    next: AtomicUsize,
}

impl SweepPart<'_> {
    /// Sweeps ranges until none is left; returns the directories listed.
    fn run(&self) -> Result<u64, crate::store::StoreError> {
        let mut presence = Presence::default();
        let mut batch: Vec<(PathBuf, Entry)> = Vec::new();
        let mut failed = None;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.bounds.len() || self.quitting() {
                break;
            }
            let end = self.bounds.get(i + 1).copied();
            self.store.visit_range(self.bounds[i], end, |k, entry| {
                if self.quitting() {
                    return false;
                }
                // Only a vanished entry's path is allocated.
                let path = Path::new(std::ffi::OsStr::from_bytes(k));
                let present = crate::paths::below(self.root, path)
                    .is_some_and(|rel| self.filter.accepts(rel))
                    && presence.is_file(path);
                if !present {
                    batch.push((path.to_path_buf(), entry));
                    if batch.len() >= SWEEP_BATCH {
                        if let Err(e) = self.flush(&mut batch) {
                            failed = Some(e);
                            return false;
                        }
                    }
                }
                true
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        self.flush(&mut batch)?;
        Ok(presence.listed())
    }

    fn quitting(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.gone.load(Ordering::Relaxed)
    }

    /// Writes `batch` to the vanished set and tells the receiver.
    fn flush(&self, batch: &mut Vec<(PathBuf, Entry)>) -> Result<(), crate::store::StoreError> {
        if batch.is_empty() || self.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.store.vanished_add(batch)?;
        let n = batch.len() as u64;
        batch.clear();
        if self.tx.blocking_send(ScanMsg::Vanished(n)).is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Where the sweep cuts the store's keys (sorted): `DIR/` for the directories below `root`,
/// level by level, until there are [`RANGES_PER_THREAD`] per thread or three levels have been
/// listed. A library with one top folder (`/data/Music`) is cut one level further down. None
/// for one thread. Any sorted set of keys cuts the key space into ranges that cover it, so a
/// directory that is gone by now, or a cut inside a directory, costs nothing in correctness.
fn split_points(root: &Path, threads: usize) -> Vec<Vec<u8>> {
    if threads <= 1 {
        return Vec::new();
    }
    let want = (threads * RANGES_PER_THREAD).min(MAX_SPLITS);
    let mut points = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut below = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            below.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .take(MAX_SPLITS),
            );
            if below.len() >= MAX_SPLITS {
                break;
            }
        }
        points.extend(below.iter().map(|d| {
            let mut k = d.as_os_str().as_bytes().to_vec();
            k.push(b'/');
            k
        }));
        if below.is_empty() || points.len() >= want {
            break;
        }
        level = below;
    }
    points.sort_unstable();
    points.dedup();
    points
}

/// Describes a non-regular entry for the log.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link (never followed)"
    } else if ft.is_fifo() {
        "a FIFO (never opened)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Counts shared by the walk's threads.
#[derive(Default)]
struct Tally {
    files: AtomicU64,
    unchanged: AtomicU64,
    errors: AtomicU64,
}

/// Walks `start` (DATA_DIR or a directory inside it) on `threads` threads, without following
/// symbolic links, so it can neither leave DATA_DIR nor loop. Sends new and changed files;
/// counts unchanged ones. Stops early when `stop` is set or the receiver is gone.
///
/// The threads take directories from one another (`ignore`'s parallel walker, with all of its
/// own filters off): `getdents` and the stat of one directory do not wait for another's. Each
/// thread reads the store through a read transaction of its own, a directory's entries at a
/// time ([`DirCache`]). Files arrive in no particular order, which the engine does not need;
/// memory stays bounded by `tx`, which the threads block on when it is full.
#[allow(clippy::too_many_arguments)]
pub fn walk(
    root: &Path,
    start: &Path,
    filter: &Filter,
    store: &Store,
    tx: &mpsc::Sender<ScanMsg>,
    stop: &AtomicBool,
    label: &'static str,
    threads: usize,
) {
    let started = Instant::now();
    let tally = Tally::default();
    // The last progress sent and the last log line, under one lock taken every 4,096 files.
    let progress = Mutex::new((0u64, Instant::now()));
    let gone = AtomicBool::new(false);
    if start != root && !filter.walks(relative(root, start)) {
        let _ = tx.blocking_send(ScanMsg::Done {
            files: 0,
            unchanged: 0,
        });
        return;
    }
    let mut builder = ignore::WalkBuilder::new(start);
    builder
        .standard_filters(false)
        .follow_links(false)
        .threads(threads.max(1));
    // Directories the filter leaves out (temporary ones, and those EXCLUDE covers) are not
    // entered at all.
    let (walk_root, walk_filter) = (root.to_path_buf(), filter.clone());
    builder.filter_entry(move |e| {
        !e.file_type().is_some_and(|t| t.is_dir())
            || walk_filter.walks(relative(&walk_root, e.path()))
    });
    builder.build_parallel().run(|| {
        let (tally, progress, gone) = (&tally, &progress, &gone);
        let mut reader = None;
        let mut mine = 0u64;
        let mut dir = DirStat::default();
        let mut known_dirs = DirCache::default();
        Box::new(move |item| {
            if stop.load(Ordering::Relaxed) || gone.load(Ordering::Relaxed) {
                return WalkState::Quit;
            }
            let entry = match item {
                Ok(e) => e,
                Err(e) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot read directory entry during scan; skipped");
                    return WalkState::Continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                return WalkState::Continue;
            };
            if ft.is_dir() {
                return WalkState::Continue;
            }
            let path = entry.path();
            if !ft.is_file() {
                tracing::info!(path = %path.display(), kind = kind_of(&ft), "not a regular file; not reported");
                return WalkState::Continue;
            }
            if !filter.accepts(relative(root, path)) {
                return WalkState::Continue;
            }
            let files = tally.files.fetch_add(1, Ordering::Relaxed) + 1;
            mine += 1;
            // One read transaction per batch of this thread's files, not one per file.
            if reader.is_none() || mine.is_multiple_of(4096) {
                reader = store.reader().ok();
                known_dirs.clear();
            }
            if files.is_multiple_of(4096) && !report(tx, progress, files, tally, started, label) {
                gone.store(true, Ordering::Relaxed);
                return WalkState::Quit;
            }
            let looked_up = match &reader {
                Some(r) => known_dirs.get(r, path),
                None => store.get(path),
            };
            let known = match looked_up {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "state store read failed during scan");
                    None
                }
            };
            let stamp = match known {
                None => None,
                Some(_) => match dir.stamp(path) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // Vanished between readdir and stat: the sweep, a live hint or the next
                        // scan reports it.
                        tracing::debug!(path = %path.display(), error = %e, "file vanished during scan");
                        return WalkState::Continue;
                    }
                },
            };
            if known.is_some_and(|k| stamp.is_some_and(|s| s.unchanged_from(&k.stamp))) {
                tally.unchanged.fetch_add(1, Ordering::Relaxed);
            } else if tx
                .blocking_send(ScanMsg::Found(path.to_path_buf(), stamp, known))
                .is_err()
            {
                gone.store(true, Ordering::Relaxed);
                return WalkState::Quit;
            }
            WalkState::Continue
        })
    });
    if stop.load(Ordering::Relaxed) || gone.load(Ordering::Relaxed) {
        return;
    }
    let _ = tx.blocking_send(ScanMsg::Done {
        files: tally.files.load(Ordering::Relaxed),
        unchanged: tally.unchanged.load(Ordering::Relaxed),
    });
}

/// Sends the walk's progress (never a smaller count after a larger one, whichever thread gets
/// here first) and logs it every 5 s. `false` when the receiver is gone.
fn report(
    tx: &mpsc::Sender<ScanMsg>,
    progress: &Mutex<(u64, Instant)>,
    files: u64,
    tally: &Tally,
    started: Instant,
    label: &'static str,
) -> bool {
    let mut last = progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if files <= last.0 {
        return true;
    }
    last.0 = files;
    if last.1.elapsed() >= Duration::from_secs(5) {
        last.1 = Instant::now();
        let rate = files as f64 / started.elapsed().as_secs_f64();
        tracing::info!(
            scan = label,
            files_seen = files,
            unchanged = tally.unchanged.load(Ordering::Relaxed),
            errors = tally.errors.load(Ordering::Relaxed),
            files_per_sec = rate as u64,
            "scan progress"
        );
    }
    tx.blocking_send(ScanMsg::Progress { files }).is_ok()
}

/// Runs a full scan on the calling (blocking) thread: sweep, then walk.
pub fn full_scan(
    root: PathBuf,
    filter: Filter,
    store: Arc<Store>,
    tx: mpsc::Sender<ScanMsg>,
    stop: Arc<AtomicBool>,
    label: &'static str,
    threads: usize,
) {
    match sweep(&store, &root, &filter, &tx, &stop, threads) {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "state store sweep failed; deletions will be found by the next scan");
        }
    }
    walk(&root, &root, &filter, &store, &tx, &stop, label, threads);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hasher::Digest;
    use std::collections::BTreeSet;

    /// What one walk sent: the paths found, the progress counts in order, and the final
    /// counts.
    fn run_walk(
        root: &Path,
        start: &Path,
        filter: &Filter,
        store: &Store,
        threads: usize,
    ) -> (Vec<PathBuf>, Vec<u64>, Option<(u64, u64)>) {
        let (tx, mut rx) = mpsc::channel(8);
        let stop = AtomicBool::new(false);
        let (mut found, mut progress, mut done) = (Vec::new(), Vec::new(), None);
        std::thread::scope(|s| {
            s.spawn(|| walk(root, start, filter, store, &tx, &stop, "test", threads));
            // The walk blocks on the small channel: the reader drains it meanwhile.
            while done.is_none() {
                match rx.blocking_recv() {
                    Some(ScanMsg::Found(p, _, _)) => found.push(p),
                    Some(ScanMsg::Progress { files }) => progress.push(files),
                    Some(ScanMsg::Done { files, unchanged }) => done = Some((files, unchanged)),
                    Some(ScanMsg::Vanished(_)) | None => break,
                }
            }
        });
        (found, progress, done)
    }

    /// The sweep puts exactly the entries whose file is no longer a reported regular file in
    /// the vanished set, on any number of threads, whatever the cuts between their ranges.
    #[test]
    fn the_sweep_finds_exactly_the_vanished_entries_on_any_number_of_threads() {
        let data = tempfile::tempdir().unwrap();
        let root = data.path();
        let mut ops = Vec::new();
        let mut known = |p: PathBuf| {
            let digest = Digest::from_parts([0; 32], 0);
            let stamp = Stamp {
                size: 1,
                mtime_ns: 0,
                inode: 1,
                dev: 1,
                ctime_ns: 0,
            };
            ops.push(crate::store::Op::Put(p, Entry { stamp, digest }));
        };
        // Directories at three levels, so the cuts fall at several depths, some inside a
        // directory's keys ("a/b.txt" sorts between "a/b" and "a/b/").
        for d in ["a/b", "a/b.d", "c", "only/one/deep", "skip"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut present = Vec::new();
        for f in [
            "top",
            "a/x",
            "a/b.txt",
            "a/b/y",
            "a/b.d/z",
            "c/w",
            "only/one/deep/v",
        ] {
            std::fs::write(root.join(f), b"1").unwrap();
            present.push(root.join(f));
        }
        for i in 0..300 {
            let p = root.join(format!("c/many{i:03}"));
            if i % 7 != 0 {
                std::fs::write(&p, b"1").unwrap();
                present.push(p);
            } else {
                known(p);
            }
        }
        std::fs::write(root.join("skip/s"), b"1").unwrap();
        std::os::unix::fs::symlink(root.join("a/x"), root.join("a/link")).unwrap();
        std::fs::create_dir(root.join("c/now-a-dir")).unwrap();
        for p in &present {
            known(p.clone());
        }
        // Gone files, files in a gone directory, a link, a directory, an excluded file, and a
        // path outside DATA_DIR.
        for rel in [
            "a/gone",
            "a/b/gone",
            "gone-dir/1",
            "gone-dir/sub/2",
            "a/link",
            "c/now-a-dir",
            "skip/s",
            "only/one/deep/gone",
        ] {
            known(root.join(rel));
        }
        known(PathBuf::from("/elsewhere/file"));
        let filter = Filter::new(&[], &["skip/**".to_owned()], &[]).unwrap();
        let want: BTreeSet<PathBuf> = ops
            .iter()
            .filter_map(|op| match op {
                crate::store::Op::Put(p, _) => Some(p.clone()),
                _ => None,
            })
            .filter(|p| {
                !(p.starts_with(root)
                    && filter.accepts(relative(root, p))
                    && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            })
            .collect();
        assert_eq!(want.len(), 43 + 8 + 1, "the oracle itself");
        let state = tempfile::tempdir().unwrap();
        let store = Store::open(state.path()).unwrap();
        store.apply(&ops).unwrap();
        for threads in [1, 2, 3, 8] {
            let (tx, mut rx) = mpsc::channel(1024);
            let stop = AtomicBool::new(false);
            sweep(&store, root, &filter, &tx, &stop, threads).unwrap();
            drop(tx);
            let mut told = 0;
            while let Some(ScanMsg::Vanished(n)) = rx.blocking_recv() {
                told += n;
            }
            let got: BTreeSet<PathBuf> = store
                .vanished_drain(10_000)
                .unwrap()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            assert_eq!(got, want, "{threads} threads");
            assert_eq!(told, want.len() as u64, "{threads} threads");
        }
        // Two threads cut at the directories of the first levels.
        let points = split_points(root, 2);
        let as_str: Vec<String> = points
            .iter()
            .map(|k| String::from_utf8_lossy(&k[root.as_os_str().len()..]).into_owned())
            .collect();
        assert_eq!(
            as_str,
            [
                "/a/",
                "/a/b.d/",
                "/a/b/",
                "/c/",
                "/c/now-a-dir/",
                "/only/",
                "/only/one/",
                "/only/one/deep/",
                "/skip/"
            ]
        );
        assert!(split_points(root, 1).is_empty());
    }

    /// New and changed files are sent once each, unchanged ones counted, on any number of
    /// threads; excluded directories, links and FIFOs are left out; progress never goes back.
    #[test]
    fn the_walk_sends_each_new_or_changed_file_once_on_any_number_of_threads() {
        let data = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = data.path();
        let store = Store::open(state.path()).unwrap();
        let (mut all, mut ops) = (BTreeSet::new(), Vec::new());
        for d in 0..12 {
            let dir = root.join(format!("d{d:02}/sub{}", d % 3));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..800 {
                let path = dir.join(format!("f{f:03}.flac"));
                std::fs::write(&path, format!("{d} {f}")).unwrap();
                all.insert(path.clone());
                // A third known and unchanged, a third known with another stamp, a third new.
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let mut stamp = Stamp::from_metadata(&meta);
                match f % 3 {
                    0 => {}
                    1 => stamp.size += 1,
                    _ => continue,
                }
                let digest = Digest::from_parts([0; 32], 0);
                ops.push(crate::store::Op::Put(path, Entry { stamp, digest }));
            }
        }
        store.apply(&ops).unwrap();
        std::fs::create_dir_all(root.join("d00/skip")).unwrap();
        std::fs::write(root.join("d00/skip/never.flac"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("d00"), root.join("loop")).unwrap();
        std::os::unix::fs::symlink(root.join("d01/sub1/f000.flac"), root.join("link.flac"))
            .unwrap();
        let fifo = root.join("d02/fifo.flac");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let filter = Filter::new(&[], &["**/skip/**".to_owned()], &[]).unwrap();
        let unchanged = all
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name[1..4].parse::<u32>().unwrap() % 3 == 0
            })
            .count() as u64;
        let want: BTreeSet<PathBuf> = all
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name[1..4].parse::<u32>().unwrap() % 3 != 0
            })
            .cloned()
            .collect();
        for threads in [1, 2, 4] {
            let (found, progress, done) = run_walk(root, root, &filter, &store, threads);
            let set: BTreeSet<PathBuf> = found.iter().cloned().collect();
            assert_eq!(
                found.len(),
                set.len(),
                "{threads} threads: a file sent twice"
            );
            assert_eq!(set, want, "{threads} threads");
            assert_eq!(
                done,
                Some((all.len() as u64, unchanged)),
                "{threads} threads"
            );
            assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
            assert_eq!(progress.len(), all.len() / 4096, "{progress:?}");
        }
        // A walk of one directory (a directory that appeared live), and of an excluded one.
        let (found, _, done) = run_walk(root, &root.join("d03"), &filter, &store, 2);
        assert_eq!(found.len(), (0..800).filter(|f| f % 3 != 0).count());
        assert_eq!(done.map(|d| d.0), Some(800));
        let (found, _, done) = run_walk(root, &root.join("d00/skip"), &filter, &store, 2);
        assert!(found.is_empty());
        assert_eq!(done, Some((0, 0)));
    }
}
