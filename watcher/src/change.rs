//! The one internal change type. A notify event is converted to it as soon as it arrives.

use std::path::PathBuf;

/// Something that may have changed on disk. Only a hint: the pipeline checks `stat` and the
/// store before it believes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something happened at this path (created, written, closed, removed, moved in or out).
    Path(PathBuf),
    /// A writer closed the file (inotify's IN_CLOSE_WRITE): the trigger of the fast path.
    Closed(PathBuf),
    /// A name moved in from outside the watched tree: a file moved into place is a trigger of
    /// the fast path, like a close.
    MovedIn(PathBuf),
    /// The name was unlinked (inotify's IN_DELETE of a file). Unlike a path that vanished for
    /// an unknown reason, this was not a move, so its deletion need not wait for one to claim it.
    Unlinked(PathBuf),
    /// A rename the watcher paired: `from` is now `to`.
    Rename {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
    },
    /// Events were lost or the watcher failed: only a full reconciliation scan restores the truth.
    Rescan(&'static str),
}
