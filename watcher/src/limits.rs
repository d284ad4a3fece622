//! Every bound in the pipeline, in one place, derived from the configuration.
//!
//! Promise 4 of DESIGN.md (bounded memory) holds only if no stage can grow with the size of the
//! tree or the rate of events. Each queue and each piece of bulk work takes its bound from here,
//! so the worst case can be read off one struct instead of being spread over constants in every
//! module.

/// The bounds of the pipeline's queues and bulk work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Hints waiting between the watcher thread and the engine (`HINT_QUEUE`). A full queue
    /// raises a rescan; hints are never dropped silently.
    pub hint_queue: usize,
    /// Paths pending in the settle set. Beyond it, hints and scan results wait in their
    /// channels (which then fill, and a full hint queue raises a rescan).
    pub pending: usize,
    /// Messages handed to the sink and not yet confirmed (`PUBLISH_WINDOW`).
    pub window: usize,
    /// Work past the settle stage: files waiting to be hashed plus events waiting for the sink.
    /// Settled paths, scan results and bulk work wait while it is full.
    pub backlog: usize,
    /// Files the hash pool holds at once, queued or open between slices.
    pub hash_jobs: usize,
    /// Scan and directory-walk results waiting for the engine (each channel).
    pub scan_queue: usize,
    /// Store entries read per step of bulk work: a directory removed, moved out or renamed,
    /// or the deletions a scan found. A directory of a million files is worked through a page
    /// at a time, as the backlog has room, instead of as one list.
    pub bulk_page: usize,
    /// Accepted store changes per commit (and the overlay that covers them until then).
    pub commit_ops: usize,
    /// Vanished files held for pairing with a new name (see [`crate::pairing::Pairer`]): single
    /// files and files below a vanished directory alike, so a directory rename the watcher
    /// could not pair still becomes moves. Beyond it, what vanishes is deleted at once.
    pub limbo: usize,
}

impl Limits {
    /// The bounds for a hint queue of `hint_queue` and a publish window of `window`.
    pub fn new(hint_queue: usize, window: usize) -> Self {
        let window = window.max(1);
        Self {
            hint_queue: hint_queue.max(1),
            pending: 200_000,
            window,
            backlog: 2 * window.max(256),
            hash_jobs: 256,
            scan_queue: 4096,
            bulk_page: 1024,
            commit_ops: 8192,
            limbo: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_is_positive_and_the_backlog_covers_the_window() {
        for (hints, window) in [(1, 1), (16_384, 1000), (1_000_000, 65_535), (0, 0)] {
            let l = Limits::new(hints, window);
            for (name, v) in [
                ("hint_queue", l.hint_queue),
                ("pending", l.pending),
                ("window", l.window),
                ("backlog", l.backlog),
                ("hash_jobs", l.hash_jobs),
                ("scan_queue", l.scan_queue),
                ("bulk_page", l.bulk_page),
                ("commit_ops", l.commit_ops),
                ("limbo", l.limbo),
            ] {
                assert!(v > 0, "{name} is zero for ({hints}, {window})");
            }
            // The sink can always be kept busy from the backlog.
            assert!(l.backlog >= l.window, "({hints}, {window})");
        }
    }
}
