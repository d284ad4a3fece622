//! A fixed set of hashing threads with a bounded intake and fair slicing of large files.
//!
//! Why not `rayon::spawn`: rayon runs a job to completion, and a job that re-queues itself from
//! inside the pool lands on the worker's own deque, ahead of everything waiting in the global
//! queue. A 4 GiB file would then hold a core for seconds while thousands of small files wait.
//! Here a worker hashes at most [`PoolConfig::slice_bytes`] of a file, then puts the rest on a
//! second queue and picks its next task at random between that queue and the intake. Big files
//! therefore share the cores with small ones, and several big files share them with each other,
//! which keeps every core busy even when there are fewer big files than threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::error::HashError;
use crate::file::{Hashed, Hashing, BUFFER_SIZE};

type Done = Box<dyn FnOnce(Result<Hashed, HashError>) + Send + 'static>;

/// One path to hash, and what to do with the outcome.
pub struct Job {
    path: PathBuf,
    done: Done,
}

impl Job {
    /// A job that calls `done` with the outcome, on a pool thread. `done` should be quick: a
    /// channel send, not more work.
    pub fn new(
        path: impl Into<PathBuf>,
        done: impl FnOnce(Result<Hashed, HashError>) + Send + 'static,
    ) -> Self {
        Self {
            path: path.into(),
            done: Box::new(done),
        }
    }

    /// The path this job hashes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("path", &self.path).finish()
    }
}

/// Why a job was not accepted. The job is handed back so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The intake queue is at capacity; try again once results have come back.
    #[error("hash pool intake is full")]
    Full(Job),
    /// The pool is shutting down.
    #[error("hash pool is closed")]
    Closed(Job),
}

impl SubmitError {
    /// Gives the rejected job back.
    pub fn into_job(self) -> Job {
        match self {
            Self::Full(job) | Self::Closed(job) => job,
        }
    }
}

/// How a [`HashPool`] is sized.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads. Default: the number of cores.
    pub threads: usize,
    /// Jobs that may wait in the intake queue before `submit` blocks.
    pub capacity: usize,
    /// How much of one file a worker hashes before it lets other work have a turn.
    pub slice_bytes: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            capacity: 1024,
            slice_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Counters that describe what a pool has done, for logs and metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Jobs finished, successfully or not.
    pub completed: AtomicU64,
    /// Bytes read and hashed.
    pub bytes: AtomicU64,
    /// Jobs that ended in an error.
    pub failed: AtomicU64,
    /// Large files currently paused between slices.
    pub sliced_in_progress: AtomicUsize,
    /// Jobs answered with [`HashError::Cancelled`] after [`HashPool::stop`].
    pub cancelled: AtomicU64,
}

struct Partial {
    hashing: Hashing,
    done: Done,
}

/// Hashes many files in parallel with flat memory.
///
/// Memory is bounded by construction: at most `capacity` jobs wait in the intake, and every file
/// paused between slices came from it, so open files and hasher states stay below
/// `capacity + threads`. Dropping the pool finishes every accepted job, then joins the threads,
/// unless [`HashPool::stop`] was called: then every job not finished yet is answered with
/// [`HashError::Cancelled`] at its next slice boundary, so dropping returns within one slice.
///
/// For async callers: hold a semaphore with `capacity` permits, take one before
/// [`HashPool::try_submit`] and give it back in the job's callback; `try_submit` then never finds
/// the queue full and no runtime thread ever blocks.
pub struct HashPool {
    intake: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    stats: Arc<PoolStats>,
    capacity: usize,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.workers.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl HashPool {
    /// Starts the worker threads.
    ///
    /// # Errors
    /// Fails if the operating system refuses to start a thread.
    pub fn new(config: PoolConfig) -> std::io::Result<Self> {
        let threads = config.threads.max(1);
        let capacity = config.capacity.max(1);
        let (intake_tx, intake_rx) = bounded::<Job>(capacity);
        // Unbounded in type only: every entry is a file taken from the bounded intake.
        let (slice_tx, slice_rx) = unbounded::<Partial>();
        let stats = Arc::new(PoolStats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let worker = Worker {
                intake: intake_rx.clone(),
                slices: slice_rx.clone(),
                slice_tx: slice_tx.clone(),
                stats: Arc::clone(&stats),
                slice_bytes: config.slice_bytes.max(BUFFER_SIZE as u64),
                buf: Vec::new(),
                stopping: Arc::clone(&stopping),
            };
            let handle = std::thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || worker.run())?;
            workers.push(handle);
        }
        Ok(Self {
            intake: Some(intake_tx),
            workers,
            stats,
            capacity,
            stopping,
        })
    }

    /// Stops hashing: no job is started any more, and a large file stops at its next slice
    /// boundary. Every job not finished is answered with [`HashError::Cancelled`] (queued ones
    /// at once), so callers waiting for callbacks are not left waiting. Used at shutdown, where
    /// finishing a 4 GiB file would outlast any deadline.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Queues a job, blocking while the intake is full. Use from plain threads only.
    ///
    /// # Errors
    /// [`SubmitError::Closed`] if the pool is shutting down.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        match &self.intake {
            Some(tx) => tx
                .send(job)
                .map_err(|e| SubmitError::Closed(e.into_inner())),
            None => Err(SubmitError::Closed(job)),
        }
    }

    /// Queues a job if there is room, without blocking.
    ///
    /// # Errors
    /// [`SubmitError::Full`] when the intake is at capacity, [`SubmitError::Closed`] when the
    /// pool is shutting down. Both hand the job back.
    pub fn try_submit(&self, job: Job) -> Result<(), SubmitError> {
        match &self.intake {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(job) => SubmitError::Full(job),
                TrySendError::Disconnected(job) => SubmitError::Closed(job),
            }),
            None => Err(SubmitError::Closed(job)),
        }
    }

    /// Jobs waiting in the intake right now.
    pub fn queued(&self) -> usize {
        self.intake.as_ref().map_or(0, Sender::len)
    }

    /// The intake's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Shared counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.intake = None;
        for handle in self.workers.drain(..) {
            // A worker only ends by returning; a panic inside a callback is caught there.
            let _ = handle.join();
        }
    }
}

struct Worker {
    intake: Receiver<Job>,
    slices: Receiver<Partial>,
    slice_tx: Sender<Partial>,
    stats: Arc<PoolStats>,
    slice_bytes: u64,
    buf: Vec<u8>,
    stopping: Arc<AtomicBool>,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn cancel(&self, path: PathBuf, done: Done) {
        self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        self.finish(done, Err(HashError::Cancelled { path }));
    }

    fn run(mut self) {
        let mut intake_open = true;
        loop {
            if intake_open {
                crossbeam_channel::select! {
                    recv(self.intake) -> job => match job {
                        Ok(job) => self.start(job),
                        Err(_) => intake_open = false,
                    },
                    recv(self.slices) -> partial => {
                        if let Ok(partial) = partial {
                            self.resume(partial);
                        }
                    }
                }
            } else {
                // Intake closed: finish the large files still paused, then stop.
                if self.stats.sliced_in_progress.load(Ordering::Acquire) == 0 {
                    return;
                }
                match self.slices.recv_timeout(Duration::from_millis(20)) {
                    Ok(partial) => self.resume(partial),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    fn start(&mut self, job: Job) {
        if self.stopping() {
            return self.cancel(job.path, job.done);
        }
        match Hashing::open(&job.path) {
            Ok(hashing) => self.step(Partial {
                hashing,
                done: job.done,
            }),
            Err(e) => self.finish(job.done, Err(e)),
        }
    }

    fn resume(&mut self, partial: Partial) {
        self.stats.sliced_in_progress.fetch_sub(1, Ordering::AcqRel);
        if self.stopping() {
            return self.cancel(partial.hashing.into_path(), partial.done);
        }
        self.step(partial);
    }

    fn step(&mut self, mut partial: Partial) {
        match partial.hashing.advance(&mut self.buf, self.slice_bytes) {
            Ok(true) => {
                let result = partial.hashing.finish();
                if let Ok(h) = &result {
                    self.stats.bytes.fetch_add(h.stamp.size, Ordering::Relaxed);
                }
                self.finish(partial.done, result);
            }
            Ok(false) => {
                self.stats.sliced_in_progress.fetch_add(1, Ordering::AcqRel);
                if let Err(e) = self.slice_tx.send(partial) {
                    // Cannot happen while this worker holds a receiver of the same channel; if it
                    // ever did, finish the file here rather than lose its callback.
                    self.stats.sliced_in_progress.fetch_sub(1, Ordering::AcqRel);
                    let mut partial = e.into_inner();
                    let result = loop {
                        match partial.hashing.advance(&mut self.buf, u64::MAX) {
                            Ok(true) => break partial.hashing.finish(),
                            Ok(false) => {}
                            Err(e) => break Err(e),
                        }
                    };
                    self.finish(partial.done, result);
                }
            }
            Err(e) => self.finish(partial.done, Err(e)),
        }
    }

    fn finish(&self, done: Done, result: Result<Hashed, HashError>) {
        if result.is_err() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        // A panicking callback must not take a hashing thread down with it.
        let _ = catch_unwind(AssertUnwindSafe(move || done(result)));
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}
