//! Scans: the store sweep that finds vanished files, and the walk that finds new and changed
//! ones. Both run on blocking threads and feed the pipeline through a bounded channel, so a scan
//! of a million files holds the memory of one channel, not of a million paths.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hasher::Stamp;
use tokio::sync::mpsc;

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
    path.strip_prefix(root).unwrap_or(path)
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
        let present = path.starts_with(root)
            && filter.accepts(relative(root, &path))
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

/// Walks `start` (DATA_DIR or a directory inside it) without following symbolic links, so it
/// can neither leave DATA_DIR nor loop. Sends new and changed files; counts unchanged ones.
/// Stops early when `stop` is set or the receiver is gone.
pub fn walk(
    root: &Path,
    start: &Path,
    filter: &Filter,
    store: &Store,
    tx: &mpsc::Sender<ScanMsg>,
    stop: &AtomicBool,
    label: &'static str,
) {
    let started = Instant::now();
    let mut last_log = Instant::now();
    let (mut files, mut unchanged, mut errors) = (0u64, 0u64, 0u64);
    let mut reader = None;
    // Directories the filter leaves out (temporary ones, and those EXCLUDE covers) are not
    // entered at all.
    let walker = walkdir::WalkDir::new(start)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !e.file_type().is_dir() || filter.walks(relative(root, e.path())));
    for item in walker {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let entry = match item {
            Ok(e) => e,
            Err(e) => {
                errors += 1;
                let path = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                tracing::warn!(path = %path, error = %e, "cannot read directory entry during scan; skipped");
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let path = entry.path();
        if !ft.is_file() {
            tracing::info!(path = %path.display(), kind = kind_of(&ft), "not a regular file; not reported");
            continue;
        }
        if !filter.accepts(relative(root, path)) {
            continue;
        }
        files += 1;
        // One read transaction per batch of files, not one per file.
        if reader.is_none() || files % 4096 == 0 {
            reader = store.reader().ok();
            if files > 1 && tx.blocking_send(ScanMsg::Progress { files }).is_err() {
                return;
            }
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
            Some(_) => match entry.metadata() {
                Ok(m) => Some(Stamp::from_metadata(&m)),
                Err(e) => {
                    // Vanished between readdir and stat: the sweep, a live hint or the next
                    // scan reports it.
                    tracing::debug!(path = %path.display(), error = %e, "file vanished during scan");
                    continue;
                }
            },
        };
        if known.is_some_and(|k| stamp.is_some_and(|s| s.unchanged_from(&k.stamp))) {
            unchanged += 1;
        } else if tx
            .blocking_send(ScanMsg::Found(path.to_path_buf(), stamp, known))
            .is_err()
        {
            return;
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            let rate = files as f64 / started.elapsed().as_secs_f64();
            tracing::info!(
                scan = label,
                files_seen = files,
                unchanged,
                errors,
                files_per_sec = rate as u64,
                "scan progress"
            );
        }
    }
    let _ = tx.blocking_send(ScanMsg::Done { files, unchanged });
}

/// Runs a full scan on the calling (blocking) thread: sweep, then walk.
pub fn full_scan(
    root: PathBuf,
    filter: Filter,
    store: Arc<Store>,
    tx: mpsc::Sender<ScanMsg>,
    stop: Arc<AtomicBool>,
    label: &'static str,
) {
    match sweep(&store, &root, &filter, &tx, &stop) {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "state store sweep failed; deletions will be found by the next scan");
        }
    }
    walk(&root, &root, &filter, &store, &tx, &stop, label);
}
