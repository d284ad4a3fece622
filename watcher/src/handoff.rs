//! Hash results from the pool threads to the pipeline, with as few wake-ups as the work allows.
//!
//! Why not a channel: a channel wakes its receiver for every message. During a scan of small
//! files that is one futex wake-up and one context switch per file on each side, which on two
//! cores cost as much CPU as the pipeline's real work. Here the pool threads only queue their
//! results, and wake the pipeline when it has something to do: when the pool is running low on
//! jobs (so it must be refilled), which includes the last job of a burst and a single live file.
//! While the pool is deep in a scan, results are taken in batches of hundreds, and stdout is
//! written once per batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// A queue of finished jobs, shared between the pool's threads and the pipeline task.
#[derive(Debug)]
pub struct Handoff<T> {
    items: Mutex<Vec<T>>,
    notify: Notify,
    /// Jobs submitted and not yet finished.
    outstanding: AtomicUsize,
    /// Wake the pipeline once this few jobs (or fewer) remain outstanding.
    low_water: usize,
}

impl<T> Handoff<T> {
    /// A handoff that wakes its reader whenever at most `low_water` jobs are left in the pool.
    /// Half the pool's intake gives the pipeline that much runway to refill it before the
    /// hashing threads run dry.
    pub fn new(low_water: usize) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            notify: Notify::new(),
            outstanding: AtomicUsize::new(0),
            low_water,
        }
    }

    /// Counts one job into the pool. Call before submitting it; undo with [`Handoff::cancel`]
    /// if the pool refuses it.
    pub fn submitted(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back a count for a job the pool refused.
    pub fn cancel(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues one job's outcome, from a pool thread.
    pub fn push(&self, item: T) {
        // A poisoned lock only means another pool thread panicked mid-push; the Vec itself is
        // still valid, so keep going rather than lose this result.
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(item);
        let left = self
            .outstanding
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if left <= self.low_water {
            self.notify.notify_one();
        }
    }

    /// Moves every queued outcome into `into`, in the order they finished.
    pub fn take(&self, into: &mut Vec<T>) {
        let mut items = self
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if into.is_empty() {
            std::mem::swap(&mut *items, into);
        } else {
            into.append(&mut items);
        }
    }

    /// Resolves once a push asked for the reader. A wake-up that came while nobody waited is
    /// kept, so none is lost between a [`Handoff::take`] and the next wait.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_only_when_the_pool_runs_low() {
        let h = Handoff::new(2);
        for _ in 0..5 {
            h.submitted();
        }
        h.push(1);
        h.push(2);
        // Three jobs still outstanding, above the low-water mark: no wake-up yet.
        let early = tokio::time::timeout(Duration::from_millis(20), h.ready()).await;
        assert!(early.is_err(), "woke with 3 jobs still in the pool");
        h.push(3);
        tokio::time::timeout(Duration::from_secs(5), h.ready())
            .await
            .expect("woken at the low-water mark");
        let mut got = Vec::new();
        h.take(&mut got);
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn the_last_job_always_wakes_and_a_wake_before_waiting_is_kept() {
        let h = Handoff::new(0);
        h.submitted();
        h.submitted();
        h.push("a");
        h.push("b");
        tokio::time::timeout(Duration::from_secs(5), h.ready())
            .await
            .expect("the wake-up sent before waiting is kept");
        let mut got = vec!["x"];
        h.take(&mut got);
        assert_eq!(got, vec!["x", "a", "b"]);
    }

    #[tokio::test]
    async fn a_refused_job_does_not_hold_the_count_up() {
        let h = Handoff::new(0);
        h.submitted();
        h.submitted();
        h.cancel();
        h.push(7);
        tokio::time::timeout(Duration::from_secs(5), h.ready())
            .await
            .expect("one job was refused, so the other is the last");
    }
}
