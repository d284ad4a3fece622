//! Scans: the store sweep that finds vanished files, and the walk that finds new and changed
//! ones. Both run on blocking threads and feed the pipeline through a bounded channel, so a scan
//! of a million files holds the memory of one channel, not of a million paths.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hasher::Stamp;
use ignore::WalkState;
use tokio::sync::mpsc;

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

/// Finds store entries whose file no longer exists as a reported regular file and puts them in
/// the store's vanished set (emptied first), a batch at a time, telling `tx` how many each time.
/// Existence comes from directory listings ([`Presence`]), not from a stat per entry: the walk
/// that follows stats each file once, and that is the only stat a restart makes per file.
/// Stops early when `stop` is set or the receiver is gone.
///
/// # Errors
/// A store read or write failure.
pub fn sweep(
    store: &Store,
    root: &Path,
    filter: &Filter,
    tx: &mpsc::Sender<ScanMsg>,
    stop: &AtomicBool,
) -> Result<(), crate::store::StoreError> {
    store.vanished_clear()?;
    let mut batch: Vec<(PathBuf, Entry)> = Vec::new();
    let mut failed = None;
    let mut gone = false;
    let flush = |batch: &mut Vec<(PathBuf, Entry)>| -> Result<bool, crate::store::StoreError> {
        if batch.is_empty() {
            return Ok(true);
        }
        store.vanished_add(batch)?;
        let n = batch.len() as u64;
        batch.clear();
        Ok(tx.blocking_send(ScanMsg::Vanished(n)).is_ok())
    };
    // The store yields paths in key order: one listing per directory, no `lstat` per file.
    let mut presence = Presence::default();
    store.for_each(|path, entry| {
        if failed.is_some() || gone || stop.load(Ordering::Relaxed) {
            return;
        }
        let present = crate::paths::below(root, &path).is_some_and(|rel| filter.accepts(rel))
            && presence.is_file(&path);
        if !present {
            batch.push((path, entry));
            if batch.len() >= SWEEP_BATCH {
                match flush(&mut batch) {
                    Ok(true) => {}
                    Ok(false) => gone = true,
                    Err(e) => failed = Some(e),
                }
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    tracing::debug!(
        directories_listed = presence.listed(),
        "vanished sweep done"
    );
    flush(&mut batch)?;
    Ok(())
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
/// thread reads the store through a read transaction of its own. Files arrive in no particular
/// order, which the engine does not need; memory stays bounded by `tx`, which the threads
/// block on when it is full.
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
            }
            if files.is_multiple_of(4096) && !report(tx, progress, files, tally, started, label) {
                gone.store(true, Ordering::Relaxed);
                return WalkState::Quit;
            }
            let looked_up = match &reader {
                Some(r) => r.get(path),
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
    match sweep(&store, &root, &filter, &tx, &stop) {
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
