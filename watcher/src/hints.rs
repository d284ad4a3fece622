//! Live hints from the filesystem: inotify through `notify`, or polling.
//!
//! The notify callback runs on notify's own thread and must never block. It converts each event
//! to a [`Change`] and `try_send`s it; when the queue is full it raises the rescan flag instead,
//! so an event that did not fit is recovered by a reconciliation scan, never silently dropped.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};

use crate::change::Change;

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
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return Vec::new(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            return vec![Change::Rename {
                from: event.paths[0].clone(),
                to: event.paths[1].clone(),
            }];
        }
        _ => {}
    }
    event.paths.iter().cloned().map(Change::Path).collect()
}

/// Starts inotify on `root`, recursively. New directories are watched as they appear.
///
/// # Errors
/// [`HintError::WatchLimit`] when inotify watches run out (the caller may fall back to polling).
pub fn start_native(
    root: &Path,
    tx: mpsc::Sender<Change>,
    rescan: Arc<RescanFlag>,
    overflows: Counter,
) -> Result<RecommendedWatcher, HintError> {
    let send_tx = tx;
    let flag = Arc::clone(&rescan);
    let mut watcher =
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
            }
            Err(e) => {
                tracing::warn!(error = %e, "watcher error; scheduling a rescan");
                flag.raise(RescanCause::WatcherError);
            }
        })
        .map_err(|source| map_err(root, source))?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|source| map_err(root, source))?;
    Ok(watcher)
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
    use notify::event::{CreateKind, Flag};
    use std::path::PathBuf;

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
                vec![Change::Path(p("/d/a"))],
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
