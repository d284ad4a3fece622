//! The hash stage: files waiting for the pool, files in it, and their outcomes on the way back.
//!
//! It mirrors [`crate::outbox::Outbox`]: the caller queues a path with a value of its own (`T`:
//! what to do with the digest), and gets that value back beside the outcome, so no job number
//! or side table leaks out. The pool's intake bounds what is in the pool; the queue in front of
//! it is bounded by the caller's backlog (see [`crate::limits::Limits::backlog`]).
//!
//! Outcomes come back through a [`Handoff`], which wakes the pipeline only when the pool runs
//! low, so a scan of small files is taken in batches rather than one wake-up per file.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hasher::{HashError, HashPool, Hashed, Job, Stamp};

use crate::handoff::Handoff;

/// One job's outcome as the pool's thread left it.
struct Done {
    id: u64,
    result: Result<Hashed, HashError>,
}

/// A finished hash, with the value it was queued with.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The file hashed.
    pub path: PathBuf,
    /// The caller's own value, as given to [`Hashing::queue`].
    pub work: T,
    /// Digests and stamp, or why there are none.
    pub result: Result<Hashed, HashError>,
    /// From the hand-over to the pool until the outcome was taken (the hash-time metric).
    pub took: Duration,
}

/// Files on their way through the hash pool.
pub struct Hashing<T> {
    pool: Arc<HashPool>,
    handoff: Arc<Handoff<Done>>,
    /// In the pool, by job number, with when each was handed over.
    in_pool: HashMap<u64, (PathBuf, T, Instant)>,
    /// Waiting for room in the pool.
    queue: VecDeque<(PathBuf, Option<Stamp>, T)>,
    next_job: u64,
    /// Reused between takes, so taking outcomes allocates only for what it returns.
    buf: Vec<Done>,
}

impl<T> std::fmt::Debug for Hashing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing")
            .field("queued", &self.queue.len())
            .field("in_pool", &self.in_pool.len())
            .finish_non_exhaustive()
    }
}

impl<T> Hashing<T> {
    /// A hash stage in front of `pool`. The pipeline is woken once half the pool's intake is
    /// left: that much runway to refill it before its threads run dry.
    pub fn new(pool: Arc<HashPool>) -> Self {
        let handoff = Arc::new(Handoff::new(pool.capacity() / 2));
        Self {
            pool,
            handoff,
            in_pool: HashMap::new(),
            queue: VecDeque::new(),
            next_job: 0,
            buf: Vec::new(),
        }
    }

    /// Queues `path` for hashing; [`Hashing::start`] hands it to the pool. `expect` is the stamp
    /// the caller has just taken of it, if any: the pool hashes against it instead of taking
    /// its own before the read ([`Job::expecting`]), one `statx` less per file.
    pub fn queue(&mut self, path: PathBuf, expect: Option<Stamp>, work: T) {
        self.queue.push_back((path, expect, work));
    }

    /// Files waiting for room in the pool.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Files in the pool, or finished and not yet taken.
    pub fn in_pool(&self) -> usize {
        self.in_pool.len()
    }

    /// Nothing queued and nothing in the pool.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.in_pool.is_empty()
    }

    /// Hands queued files to the pool while it takes them.
    pub fn start(&mut self, now: Instant) {
        // The pool's intake bounds what is queued there (a full intake ends this loop); the
        // second `capacity` covers outcomes taken from the handoff and not yet worked through.
        while self.in_pool.len() < 2 * self.pool.capacity() {
            let Some((path, expect, work)) = self.queue.pop_front() else {
                break;
            };
            self.next_job += 1;
            let id = self.next_job;
            let handoff = Arc::clone(&self.handoff);
            let mut job = Job::new(path.clone(), move |result| {
                handoff.push(Done { id, result });
            });
            if let Some(stamp) = expect {
                job = job.expecting(stamp);
            }
            self.handoff.submitted();
            match self.pool.try_submit(job) {
                Ok(()) => {
                    self.in_pool.insert(id, (path, work, now));
                }
                Err(e) => {
                    // Full (racing another submitter) or closed: tried again at the next start.
                    drop(e.into_job());
                    self.handoff.cancel();
                    self.queue.push_front((path, expect, work));
                    break;
                }
            }
        }
    }

    /// Takes every outcome the pool has finished, woken or not, in the order they finished. The
    /// pool is refilled first, so its threads never wait while the caller works through them.
    pub fn take(&mut self, now: Instant) -> Vec<Outcome<T>> {
        self.handoff.take(&mut self.buf);
        if self.buf.is_empty() {
            return Vec::new();
        }
        self.start(now);
        let mut out = Vec::with_capacity(self.buf.len());
        for done in self.buf.drain(..) {
            if let Some((path, work, handed)) = self.in_pool.remove(&done.id) {
                out.push(Outcome {
                    path,
                    work,
                    result: done.result,
                    took: now.saturating_duration_since(handed),
                });
            }
        }
        out
    }

    /// Resolves once the pool asks for attention: it runs low, or its last job finished.
    pub async fn ready(&self) {
        self.handoff.ready().await;
    }

    /// Shutdown: nothing more is handed to the pool, and what is in it comes back at its next
    /// slice boundary, finished or cancelled. Returns what was still queued.
    pub fn stop(&mut self) -> usize {
        let dropped = self.queue.len();
        self.queue.clear();
        self.pool.stop();
        dropped
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::collections::BTreeMap;

    fn pool(capacity: usize) -> Arc<HashPool> {
        Arc::new(
            HashPool::new(hasher::PoolConfig {
                threads: 1,
                capacity,
                ..hasher::PoolConfig::default()
            })
            .unwrap(),
        )
    }

    /// Takes outcomes until `n` have come back.
    async fn take_all<T>(h: &mut Hashing<T>, n: usize, now: Instant) -> Vec<Outcome<T>> {
        let mut got = Vec::new();
        while got.len() < n {
            tokio::time::timeout(Duration::from_secs(10), h.ready())
                .await
                .expect("the pool finished its jobs");
            got.extend(h.take(now));
        }
        got
    }

    #[tokio::test]
    async fn every_outcome_comes_back_with_its_own_value_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Hashing::new(pool(2));
        let t0 = Instant::now();
        for i in 0..9u32 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, i.to_string().repeat(i as usize + 1)).unwrap();
            h.queue(p, None, i);
        }
        h.queue(dir.path().join("missing"), None, 99);
        assert_eq!(h.queued(), 10);
        h.start(t0);
        assert!(
            h.in_pool() <= 4,
            "the pool's intake bounds what is handed over"
        );
        assert!(h.queued() >= 6, "the rest waits in the queue");

        let later = t0 + Duration::from_secs(2);
        let got = take_all(&mut h, 10, later).await;
        assert!(h.is_empty());
        let by_value: BTreeMap<u32, &Outcome<u32>> = got.iter().map(|o| (o.work, o)).collect();
        assert_eq!(by_value.len(), 10, "one outcome per queued file");
        for i in 0..9u32 {
            let o = by_value[&i];
            assert_eq!(o.path, dir.path().join(format!("f{i}")));
            let hashed = o.result.as_ref().unwrap();
            assert_eq!(hashed.stamp.size, u64::from(i) + 1);
        }
        assert!(matches!(
            by_value[&99].result,
            Err(HashError::NotFound { .. })
        ));
        // Handed over at t0 (the first ones) or at a refill (taken at `later`).
        assert!(got.iter().all(|o| o.took <= Duration::from_secs(2)));
        assert!(got.iter().any(|o| o.took == Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn stop_drops_the_queue_and_the_pool_takes_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let mut h = Hashing::new(pool(1));
        for i in 0..5 {
            h.queue(p.clone(), None, i);
        }
        assert_eq!(h.stop(), 5);
        assert!(h.is_empty());
        h.queue(p, None, 9);
        h.start(Instant::now());
        assert_eq!(h.in_pool(), 0, "a stopped pool refuses new jobs");
        assert_eq!(h.queued(), 1, "a refused job stays queued");
    }
}
