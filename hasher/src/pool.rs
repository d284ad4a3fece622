//! A `rayon::ThreadPool` that hashes many files with bounded memory, slicing large files so they
//! take turns with small ones.
//!
//! Why the order is kept in a queue of our own, not in rayon's: a rayon job runs to completion,
//! and a job spawned from inside a worker goes onto that worker's own deque, which it pops LIFO,
//! ahead of everything waiting in the pool's global queue. A 4 GiB file that re-spawned itself
//! after each slice would hold its core for seconds while thousands of small files wait. So the
//! pool keeps one FIFO queue of *tasks*: a new job, or a large file's continuation after one
//! slice ([`PoolConfig::slice_bytes`]). Every rayon job is only a *token* that carries no work:
//! it takes the task at the front of the queue, hashes one slice of it, and if the file is not
//! finished puts it back at the end of the queue, behind the files that were waiting. Whichever
//! token rayon runs first, the queue decides what is hashed next. Big files therefore share the
//! cores with small ones, and with each other, which keeps every core busy even when there are
//! fewer big files than threads.
//!
//! A token goes on with the next front task until it has read about one slice (each file counts
//! as at least one buffer), then spawns a fresh token in its place and ends, so no rayon job runs
//! long. Tokens are spawned as tasks arrive, at most one per thread, and one retires only when it
//! has found the queue empty for [`LINGER`]. (A token per task costs rayon an allocation and
//! several shared counters each: over 4 KiB files on two threads that was 3-5% slower than the
//! hand-written pool.)
//!
//! Why a token lingers instead of retiring at once: a rayon worker that runs out of jobs spins,
//! calling `sched_yield` some 32 times, before it sleeps. On the live path files come one at a
//! time, a few milliseconds apart, so every file cost each pool thread that spin: 16% of the
//! service's CPU while it hashed 100 files of 1 MiB a second. A token that waits on a condition
//! variable for the next task sleeps in the kernel at once and is woken by one futex call.
//!
//! The bound on open files is counted, not inferred: a job is *admitted* when it is accepted and
//! released once its callback has returned, and only an admitted job ever holds an open file and
//! a hasher state. See [`HashPool::capacity`].

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::digest::Stamp;
use crate::error::HashError;
use crate::file::{Hashed, Hashing, BUFFER_SIZE};

/// How long a token whose queue ran empty waits for the next task before it retires (see the
/// module docs): long enough to span the gaps between live files, short enough that an idle
/// service wakes each pool thread about once a second at most.
const LINGER: Duration = Duration::from_secs(1);

type Done = Box<dyn FnOnce(Result<Hashed, HashError>) + Send + 'static>;

thread_local! {
    /// Each pool thread's read buffer, reused across files and slices.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One path to hash, and what to do with the outcome.
pub struct Job {
    path: PathBuf,
    expect: Option<Stamp>,
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
            expect: None,
            done: Box::new(done),
        }
    }

    /// The same job, hashed against the stamp the caller has just taken of the path (by the
    /// walk's or the settle's `lstat`), which saves the pool its own `fstat` before the read.
    /// The `fstat` after the read must then match `stamp`, so a file that changed at any time
    /// since the caller's stat is answered [`HashError::Changed`], never hashed as it is now.
    #[must_use]
    pub fn expecting(mut self, stamp: Stamp) -> Self {
        self.expect = Some(stamp);
        self
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
    /// The pool is at capacity; try again once results have come back.
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
    /// Threads of the pool's own `rayon::ThreadPool`. Default: the number of cores.
    pub threads: usize,
    /// Accepted jobs that may wait, not started, before `submit` blocks (see
    /// [`HashPool::capacity`] for the whole bound).
    pub capacity: usize,
    /// How much of one file a thread hashes before it lets other work have a turn.
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
    /// Files open now, each with its hasher state: being read, or paused between slices. A file
    /// counts from its open until just before its callback runs.
    pub open_files: AtomicUsize,
    /// The most files ever open at once; never more than `capacity + threads`.
    pub peak_open_files: AtomicUsize,
}

/// Hashes many files in parallel with flat memory.
///
/// The work runs on a `rayon::ThreadPool` of its own (threads named `hash-0`, `hash-1`, …), in
/// the order of one FIFO queue (see the module docs for why rayon's own order would starve small
/// files). Memory is bounded by construction; see [`HashPool::capacity`].
///
/// Dropping the pool waits until every accepted job has been answered, unless it is dropped from
/// one of its own threads. After [`HashPool::stop`] every job not finished yet is answered with
/// [`HashError::Cancelled`] at its next slice boundary, so dropping returns within one slice.
///
/// For async callers: hold a semaphore with `capacity` permits, take one before
/// [`HashPool::try_submit`] and give it back in the job's callback; `try_submit` then never finds
/// the pool full and no runtime thread ever blocks.
pub struct HashPool {
    shared: Arc<Shared>,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.threads())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl HashPool {
    /// Starts the pool's threads.
    ///
    /// # Errors
    /// Fails if the operating system refuses to start a thread.
    pub fn new(config: PoolConfig) -> std::io::Result<Self> {
        let threads = config.threads.max(1);
        let capacity = config.capacity.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hash-{i}"))
            .build()
            // A pool of its own fails to build only when a thread cannot be spawned.
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                admitted: 0,
                unstarted: 0,
                live: 0,
                blocked: 0,
                idle: 0,
                dropping: false,
                stopped: false,
            }),
            room: Condvar::new(),
            drained: Condvar::new(),
            work: Condvar::new(),
            stats: Arc::new(PoolStats::default()),
            slice_bytes: config.slice_bytes.max(BUFFER_SIZE as u64),
            capacity,
            admit_limit: capacity.saturating_add(threads),
            threads,
        });
        Ok(Self { shared, pool })
    }

    /// Stops hashing: no job is accepted or started any more, and a large file stops at its next
    /// slice boundary. Every accepted job not finished is answered with
    /// [`HashError::Cancelled`] (queued ones as soon as a thread is free, at the latest after
    /// the slices being read now), so callers waiting for callbacks are not left waiting. A
    /// `submit` blocked for room returns [`SubmitError::Closed`]. Used at shutdown, where
    /// finishing a 4 GiB file would outlast any deadline.
    pub fn stop(&self) {
        let mut q = self.shared.lock();
        q.stopped = true;
        let wake = std::mem::take(&mut q.blocked) > 0;
        drop(q);
        if wake {
            self.shared.room.notify_all();
        }
        self.shared.work.notify_all();
    }

    /// Queues a job, blocking while the pool is full. Use from plain threads only, never from a
    /// job's callback: a pool thread that waits for room may be the one that would make it.
    ///
    /// Once blocked, it waits until the intake is down to half its capacity, so that a producer
    /// that outruns the pool refills it in bursts instead of being woken for every job.
    ///
    /// # Errors
    /// [`SubmitError::Closed`] if the pool is stopped (also while this call waits for room).
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut q = self.shared.lock();
        loop {
            if q.stopped {
                return Err(SubmitError::Closed(job));
            }
            if self.shared.has_room(&q) {
                break;
            }
            // Reset to zero by whoever wakes the waiters, so it is not decremented here.
            q.blocked += 1;
            q = self
                .shared
                .room
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.admit(q, job);
        Ok(())
    }

    /// Queues a job if there is room, without blocking.
    ///
    /// # Errors
    /// [`SubmitError::Full`] when the pool is at capacity, [`SubmitError::Closed`] when the
    /// pool is stopped. Both hand the job back.
    pub fn try_submit(&self, job: Job) -> Result<(), SubmitError> {
        let q = self.shared.lock();
        if q.stopped {
            return Err(SubmitError::Closed(job));
        }
        if !self.shared.has_room(&q) {
            return Err(SubmitError::Full(job));
        }
        self.admit(q, job);
        Ok(())
    }

    /// Accepted jobs not started yet; never more than [`HashPool::capacity`].
    pub fn queued(&self) -> usize {
        self.shared.lock().unstarted
    }

    /// How many accepted jobs may wait, not started: `submit` blocks and `try_submit` answers
    /// [`SubmitError::Full`] at `capacity` of them.
    ///
    /// This also bounds memory. A job is admitted when it is accepted and counts until its
    /// callback has returned, and at most `capacity + threads` jobs are admitted at any time,
    /// whoever submits them and from however many threads. Only an admitted job holds an open
    /// file, a hasher state and a slot in the queue, so there are never more than
    /// `capacity + threads` of each (read buffers: one per thread).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Shared counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.shared.stats
    }

    /// Queues an admitted job and spawns its token, outside the lock.
    fn admit(&self, mut q: MutexGuard<'_, Queue>, job: Job) {
        q.admitted += 1;
        q.unstarted += 1;
        q.tasks.push_back(Task {
            path: job.path,
            expect: job.expect,
            done: job.done,
            hashing: None,
            opened: false,
        });
        // An idle token takes it; a burst that finds fewer idle tokens than tasks also gets
        // new tokens, up to one per thread.
        let wake = q.idle > 0;
        let spawn = q.live < self.shared.threads;
        if spawn {
            q.live += 1;
        }
        drop(q);
        if wake {
            self.shared.work.notify_one();
        }
        if spawn {
            let shared = Arc::clone(&self.shared);
            self.pool.spawn(move || token(&shared));
        }
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        // A callback that drops the last handle of its own pool must not wait for itself; the
        // jobs left are still answered, since every token holds the shared state.
        if self.pool.current_thread_index().is_some() {
            return;
        }
        let mut q = self.shared.lock();
        q.dropping = true;
        // Idle tokens retire now, so the rayon threads can exit.
        self.shared.work.notify_all();
        while q.admitted > 0 {
            q = self
                .shared
                .drained
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // Dropping the rayon pool then lets its idle threads exit.
    }
}

/// What the submitters and the tokens share.
struct Shared {
    queue: Mutex<Queue>,
    /// Submitters blocked for room wait here; all woken at once when there is room for a burst.
    room: Condvar,
    /// `Drop` waits here for the last admitted job to be answered.
    drained: Condvar,
    /// Idle tokens wait here for a task, at most [`LINGER`].
    work: Condvar,
    stats: Arc<PoolStats>,
    slice_bytes: u64,
    capacity: usize,
    /// `capacity + threads`: the most jobs admitted at once.
    admit_limit: usize,
    /// The rayon pool's threads: the most tokens worth having at once.
    threads: usize,
}

/// The queue and its counts, under one lock so that admission is exact.
struct Queue {
    /// New jobs and paused large files, in the order they will be worked on.
    tasks: VecDeque<Task>,
    /// Jobs accepted whose callback has not returned yet.
    admitted: usize,
    /// Jobs accepted and not started: the intake, at most `capacity`.
    unstarted: usize,
    /// Tokens spawned and not retired, at most `threads`. One is spawned when a task is queued
    /// while fewer are live, and one retires only when it finds the queue empty, so a queued
    /// task always has a token coming for it.
    live: usize,
    /// Submitters waiting on `room` (or more, after a spurious wake-up), so that nobody pays for
    /// a wake-up nobody waits for. Zeroed when they are woken.
    blocked: usize,
    /// Tokens waiting on `work` for a task (see [`LINGER`]); they still count in `live`.
    idle: usize,
    /// `Drop` is waiting on `drained`.
    dropping: bool,
    /// [`HashPool::stop`] was called.
    stopped: bool,
}

/// A job in the queue: not opened yet, or paused between slices.
struct Task {
    path: PathBuf,
    /// The caller's stamp of the path, if it gave one ([`Job::expecting`]).
    expect: Option<Stamp>,
    done: Done,
    /// The open file and hasher states, while the file is paused between slices.
    hashing: Option<Hashing>,
    /// A file was opened for this job, so it counts in [`PoolStats::open_files`] until answered.
    opened: bool,
}

/// What a token gives back to the queue for the task it has just worked on, in the same lock
/// as it takes its next one.
enum Handback {
    /// Nothing yet: the token has just started.
    Nothing,
    /// The task was answered and its callback has returned: release its admission.
    Answered,
    /// A large file, paused after one slice: it goes to the back of the queue.
    Paused(Box<Task>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held (no caller code runs under it), so the state is
        // consistent even if the lock were ever poisoned.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has_room(&self, q: &Queue) -> bool {
        q.unstarted < self.capacity && q.admitted < self.admit_limit
    }

    /// Whether to wake the blocked submitters now: only once the intake is half empty, so each
    /// wake-up is worth a burst of jobs (waking a producer per job costs a context switch per
    /// job, which on two cores showed as a 60% slower run over small files). It cannot be
    /// missed: every start and release asks, and an idle pool has all its room.
    fn wake_submitters(&self, q: &mut Queue) -> bool {
        let wake = q.blocked > 0 && self.has_room(q) && q.unstarted <= self.capacity / 2;
        if wake {
            q.blocked = 0;
        }
        wake
    }

    /// Hands back the last task and, if `take`, takes the queue's front task (with whether the
    /// pool is stopped). With nothing to take the token retires.
    fn next(&self, back: Handback, take: bool) -> Option<(Task, bool)> {
        let mut q = self.lock();
        let mut drained = false;
        match back {
            Handback::Nothing => {}
            Handback::Answered => {
                // Every admitted job is answered exactly once, so this never goes below zero.
                q.admitted -= 1;
                drained = q.dropping && q.admitted == 0;
            }
            Handback::Paused(task) => {
                // Behind every file that was waiting. If the pool was stopped meanwhile, the
                // pop below (this token's or another's) answers it Cancelled.
                self.stats
                    .sliced_in_progress
                    .fetch_add(1, Ordering::Relaxed);
                q.tasks.push_back(*task);
            }
        }
        let mut task = if take { q.tasks.pop_front() } else { None };
        if take && task.is_none() && !q.dropping && !q.stopped {
            // Before lingering, wake whoever this hand-back concerns.
            if self.wake_submitters(&mut q) {
                self.room.notify_all();
            }
            if std::mem::take(&mut drained) {
                self.drained.notify_all();
            }
            q.idle += 1;
            q = self
                .work
                .wait_timeout_while(q, LINGER, |q| {
                    q.tasks.is_empty() && !q.dropping && !q.stopped
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            q.idle -= 1;
            task = q.tasks.pop_front();
        }
        match &task {
            Some(t) if t.hashing.is_none() => q.unstarted -= 1,
            Some(_) => {
                self.stats
                    .sliced_in_progress
                    .fetch_sub(1, Ordering::Relaxed);
            }
            None if take => q.live -= 1,
            None => {}
        }
        let wake = self.wake_submitters(&mut q);
        let stopped = q.stopped;
        drop(q);
        if wake {
            self.room.notify_all();
        }
        if drained {
            self.drained.notify_all();
        }
        task.map(|t| (t, stopped))
    }

    /// Answers a task with [`HashError::Cancelled`]; the caller hands back its admission.
    fn cancel(&self, mut task: Task) {
        self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        // A paused file is closed here, before its callback hears of it.
        let path = match task.hashing.take() {
            Some(hashing) => hashing.into_path(),
            None => std::mem::take(&mut task.path),
        };
        self.answer(task, Err(HashError::Cancelled { path }));
    }

    /// Closes the task's file and calls its callback once; the caller then hands back its
    /// admission ([`Handback::Answered`]).
    fn answer(&self, task: Task, result: Result<Hashed, HashError>) {
        let Task {
            done,
            hashing,
            opened,
            ..
        } = task;
        drop(hashing);
        if opened {
            self.stats.open_files.fetch_sub(1, Ordering::Relaxed);
        }
        match &result {
            Ok(h) => {
                self.stats.bytes.fetch_add(h.stamp.size, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A panicking callback must not take a pool thread down with it (rayon would abort).
        let _ = catch_unwind(AssertUnwindSafe(move || done(result)));
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Opens the task's file if it is new, then hashes one slice. `Some` once the file is done,
    /// `None` when it is paused with its state back in the task.
    fn slice(&self, task: &mut Task, buf: &mut Vec<u8>) -> Result<Option<Hashed>, HashError> {
        #[cfg(test)]
        if task.path.ends_with(tests::PANICS_WHILE_HASHING) {
            panic!("injected failure");
        }
        let mut hashing = match task.hashing.take() {
            Some(hashing) => hashing,
            None => {
                let hashing = Hashing::open(&task.path, task.expect)?;
                task.opened = true;
                let open = self.stats.open_files.fetch_add(1, Ordering::Relaxed) + 1;
                if open > self.stats.peak_open_files.load(Ordering::Relaxed) {
                    self.stats
                        .peak_open_files
                        .fetch_max(open, Ordering::Relaxed);
                }
                hashing
            }
        };
        if hashing.advance(buf, self.slice_bytes)? {
            hashing.finish().map(Some)
        } else {
            task.hashing = Some(hashing);
            Ok(None)
        }
    }
}

/// One rayon job: takes tasks from the front of the queue and works one slice of each, until it
/// has read about one slice's worth of bytes, then hands over to a fresh token.
fn token(shared: &Arc<Shared>) {
    // Each task counts as at least one buffer read, so a run of tiny files or errors also ends.
    let mut spent = 0u64;
    let mut back = Handback::Nothing;
    while spent < shared.slice_bytes {
        let Some((mut task, stopped)) = shared.next(back, true) else {
            return; // retired: the queue is empty
        };
        back = Handback::Answered;
        spent = spent.saturating_add(BUFFER_SIZE as u64);
        if stopped {
            shared.cancel(task);
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            BUFFER.with_borrow_mut(|buf| shared.slice(&mut task, buf))
        }));
        let result = match outcome {
            Ok(Ok(None)) => {
                spent = shared.slice_bytes;
                back = Handback::Paused(Box::new(task));
                continue;
            }
            Ok(Ok(Some(hashed))) => {
                spent = spent.saturating_add(hashed.stamp.size);
                Ok(hashed)
            }
            Ok(Err(e)) => Err(e),
            // The callback is owed an answer whatever happened, and rayon would abort on a panic.
            Err(payload) => Err(panicked(&task.path, payload.as_ref())),
        };
        shared.answer(task, result);
    }
    shared.next(back, false);
    let shared = Arc::clone(shared);
    // A token is a rayon job on one of this pool's threads, where `rayon::spawn` spawns into
    // this pool. The successor keeps this token's place in `live`; it lands on this thread's
    // own deque, which is harmless: it works on the queue's front, not on what this one did.
    rayon::spawn(move || token(&shared));
}

/// The error a job gets when hashing its file panicked.
fn panicked(path: &Path, payload: &(dyn Any + Send)) -> HashError {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    HashError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("hashing panicked: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A file name whose hashing panics, in this crate's unit tests only.
    pub(super) const PANICS_WHILE_HASHING: &str = "panics-while-hashing";

    #[test]
    fn a_panic_while_hashing_is_answered_once_and_the_pool_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join(PANICS_WHILE_HASHING);
        let good = dir.path().join("good.txt");
        std::fs::write(&good, b"fine").unwrap();
        let pool = HashPool::new(PoolConfig {
            threads: 1,
            capacity: 1,
            ..PoolConfig::default()
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let path = if i == 1 { bad.clone() } else { good.clone() };
            let tx = tx.clone();
            pool.submit(Job::new(path, move |r| tx.send((i, r)).unwrap()))
                .unwrap();
        }
        drop(tx);
        drop(pool);
        let mut results: Vec<_> = rx.iter().collect();
        results.sort_by_key(|(i, _)| *i);
        assert_eq!(results.len(), 3, "one answer per job");
        assert!(results[0].1.is_ok() && results[2].1.is_ok());
        let err = results[1].1.as_ref().unwrap_err();
        assert!(matches!(err, HashError::Io { .. }), "{err:?}");
        assert_eq!(err.path(), bad);
        assert!(err.to_string().contains("injected failure"), "{err}");
    }

    /// Waits until `cond` holds of the queue, for at most half of [`LINGER`]: what a lingering
    /// token is woken for must not wait out its timeout.
    fn soon(pool: &HashPool, what: &str, cond: impl Fn(&Queue) -> bool) {
        let deadline = std::time::Instant::now() + LINGER / 2;
        while !cond(&pool.shared.lock()) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn an_idle_token_takes_the_next_job_and_retires_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one at a time").unwrap();
        let pool = HashPool::new(PoolConfig {
            threads: 1,
            ..PoolConfig::default()
        })
        .unwrap();
        let (tx, rx) = mpsc::channel();
        for round in 0..3 {
            let tx = tx.clone();
            pool.submit(Job::new(&path, move |r| tx.send(r).unwrap()))
                .unwrap();
            let hashed = rx.recv_timeout(LINGER / 2).unwrap().unwrap();
            assert_eq!(hashed.stamp.size, 13);
            // The token waits for the next job instead of retiring; it is still the only one.
            soon(&pool, "the token lingers", |q| q.idle == 1 && q.live == 1);
            assert_eq!(pool.shared.lock().admitted, 0, "round {round}");
        }
        pool.stop();
        soon(&pool, "stop wakes the idle token, which retires", |q| {
            q.idle == 0 && q.live == 0
        });
    }

    #[test]
    fn a_job_expecting_a_stamp_is_hashed_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first").unwrap();
        let first = Stamp::from_metadata(&std::fs::symlink_metadata(&path).unwrap());
        let pool = HashPool::new(PoolConfig::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        let submit = |stamp| {
            let tx = tx.clone();
            pool.submit(Job::new(&path, move |r| tx.send(r).unwrap()).expecting(stamp))
                .unwrap();
            rx.recv().unwrap()
        };
        assert_eq!(submit(first).unwrap().stamp, first);
        std::fs::write(&path, b"second, longer").unwrap();
        let err = submit(first).unwrap_err();
        assert!(matches!(err, HashError::Changed { .. }), "{err:?}");
    }

    #[test]
    fn threads_are_named_and_counted() {
        let pool = HashPool::new(PoolConfig {
            threads: 2,
            capacity: 4,
            ..PoolConfig::default()
        })
        .unwrap();
        assert_eq!(pool.threads(), 2);
        let (tx, rx) = mpsc::channel();
        pool.submit(Job::new("/nonexistent", move |_| {
            tx.send(std::thread::current().name().map(str::to_owned))
                .unwrap();
        }))
        .unwrap();
        let name = rx.recv().unwrap().unwrap();
        assert!(name.starts_with("hash-"), "{name}");
    }
}
