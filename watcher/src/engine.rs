//! The pipeline: hints and scans → settle → decide → hash → outbox → ledger.
//!
//! One engine task owns all state, so there are no locks on the hot path. It wires the parts
//! together and does the I/O; the parts are named after their concepts:
//! - [`crate::settle`]: the pending set, coalesced per path, with its quiet periods and renames;
//! - [`crate::decide`]: the pure decision for a settled path and for a hash result;
//! - [`crate::pairing`]: the one pairer (the inode limbo, a renamed or vanished directory's
//!   entries, a scan's vanished set), whose outcomes `carry_out` carries out;
//! - [`crate::scans`]: the scan owed and the one running, its progress, its end and its deletions;
//! - [`crate::outbox`]: events on their way to the sink, within its window;
//! - [`crate::ledger`]: the overlay of accepted changes and the commit policy;
//! - [`crate::limits`]: the bound of every queue, and the page size of bulk work.
//!
//! Its blocking calls (`lstat`, redb, stdout) run on the thread that awaits [`Engine::run`]
//! from `Runtime::block_on`, never on a tokio worker, so they never stall the HTTP endpoints or
//! the broker connection.
//!
//! Every part takes `now` from the engine's [`Clock`], so each timing rule has a unit test
//! driven by a manual clock.
//!
//! Followed as data, a file enters the engine once per stage: from intake (a hint, or a scan's
//! find), from the hash pool (`take_hashed`), and from the sink (`delivered`; stdout accepts in
//! the same turn). Between them it is passed along by value, never queued back to the engine;
//! only a file still being written goes back to settling.
//!
//! Per path there is at most one piece of work in flight (hashing or delivering); a hint for a
//! busy path waits in the settle set. The store is written only after the sink accepted the
//! event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hasher::{HashError, HashPool, Stamp};
use publisher::{Envelope, EventType, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::change::Change;
use crate::clock::Clock;
use crate::decide::{
    after_hash, decide, scanned, Decision, Facts, Hashed as AfterHash, Scanned, Source,
};
use crate::fast::{self, Barrier, Fallback, FastConfig};
use crate::filter::Filter;
use crate::hashing::{Hashing, Outcome as HashOutcome};
use crate::hints::{RescanCause, RescanFlag};
use crate::ledger::Ledger;
use crate::limits::Limits;
use crate::logging;
use crate::outbox::Outbox;
use crate::pairing::{Evidence, Look, Outcome, Pairer};
use crate::paths::PathSet;
use crate::root::RootState;
use crate::scan::{self, ScanMsg};
use crate::scans::{Found, Launch, Scans};
use crate::settle::{is_file, look, Observed, Origin, Pending, Settle};
use crate::stats::Stats;
use crate::store::{Entry, Op, Store, StoreError};

/// Messages taken from one channel per turn of the loop, so the pump's fixed cost is shared.
const BATCH: usize = 1024;

/// The loop turns at least this often, also when nothing wakes it: outcomes the pool queued
/// without a wake-up, the scan's progress and the commit by age are looked at then.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// The pairer's [`View`] of an engine: a macro, not a method, so that it borrows the engine's
/// fields one by one and the pairer and the ledger stay free to borrow mutably beside it.
macro_rules! view {
    ($engine:expr) => {
        View {
            busy: &$engine.busy,
            settle: &$engine.settle,
            cfg: &$engine.cfg,
        }
    };
}

/// Settings the pipeline needs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Goes into every envelope.
    pub instance_id: String,
    /// Canonical DATA_DIR.
    pub data_dir: PathBuf,
    /// Quiet period before hashing.
    pub settle_delay: Duration,
    /// Which files are reported.
    pub filter: Filter,
    /// Exit once the initial scan is reported.
    pub once: bool,
    /// Changes are found by polling scans (WATCH_MODE=poll, or the fallback).
    pub polling: bool,
    /// The bounds of every queue and of bulk work.
    pub limits: Limits,
    /// Full reconciliation scan period (poll mode uses the poll interval); zero disables it.
    pub rescan_every: Duration,
    /// How long shutdown waits for outstanding deliveries.
    pub shutdown_timeout: Duration,
    /// Where every part of the pipeline takes `now` from ([`Clock::system`] in the service).
    pub clock: Clock,
    /// The fast path to "settled", when it is on.
    pub fast: Option<FastConfig>,
    /// Threads each scan walks directories on (`SCAN_THREADS`).
    pub scan_threads: usize,
}

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink failed in a way retries cannot fix.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// How a run ended, for `--once`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// With `once`: the initial scan was reported to the end. False when the run was stopped
    /// before (a signal, or a broker that stopped confirming).
    pub finished: bool,
    /// The initial scan had found, hashed and handed to the sink everything it will report:
    /// what is missing is only confirmations.
    pub scanned: bool,
    /// Events handed to the sink and never confirmed: each is found again at the next start.
    pub unconfirmed: u64,
}

/// The work behind one hash: what to do with the digest once it comes back.
struct HashWork {
    origin: Origin,
    renamed_from: Option<(PathBuf, Entry)>,
    /// Queued by a scan without a stat: report it only if the hash's stamp shows an mtime older
    /// than the settle delay; otherwise it goes back to settling.
    confirm_settled: bool,
    /// When the first hint about the path arrived (for the event-latency metric).
    since: Instant,
    /// Settled on the fast path: the digests count only if the lease probe after the hash and
    /// the barrier vouch for them.
    fast: bool,
}

/// A fast-path hash waiting for its barrier.
type FastDone = (PathBuf, Entry, HashWork);

struct Outgoing {
    /// The event's path, then its old path for a move.
    busy: Vec<PathBuf>,
    ops: Vec<Op>,
    event: EventType,
    /// When the first hint behind this event arrived.
    since: Instant,
}

/// The running pipeline. Build it with [`Engine::new`], then `run` it.
pub struct Engine {
    cfg: EngineConfig,
    /// The store, the overlay of accepted changes, and the commit policy.
    ledger: Ledger,
    settle: Settle,
    busy: PathSet,
    /// Files on their way through the hash pool, each with what to do with its digests.
    hashing: Hashing<HashWork>,
    /// Events on their way to the sink.
    outbox: Outbox<Outgoing>,
    hints: mpsc::Receiver<Change>,
    rescan: Arc<RescanFlag>,
    /// The full scans and directory walks: what is owed, what runs, and their channels.
    scans: Scans,
    /// Deliveries that ended without a confirmation (the sink closed first).
    unconfirmed: u64,
    /// Every task the engine starts (deliveries, scans, directory walks), so that shutdown
    /// knows what is still running and waits for it up to the deadline, no longer.
    tasks: TaskTracker,
    /// Where moves are paired: the limbo of vanished files, and the bulk work over a renamed
    /// or vanished directory's entries and a scan's unpaired deletions.
    pairer: Pairer,
    /// A failure seen where it could not be returned (a sink or store error); the next pump
    /// returns it.
    fatal: Option<EngineError>,
    stats: Arc<Stats>,
    /// When the first hint behind the decision being made now arrived: set before a settled
    /// path, a scan's find or a hash result is decided, read by `emit` for the latency metric.
    since: Instant,
    /// DATA_DIR's verdict: no deletion is published, and no scan starts, while it is unsound.
    root: Arc<RootState>,
    /// Fast-path hashes waiting for their barrier cookie (none when the fast path is off).
    barrier: Option<Barrier<FastDone>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.cfg.data_dir)
            .field("pending", &self.settle.len())
            .field("busy", &self.busy.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Wires the pipeline together.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: EngineConfig,
        store: Arc<Store>,
        pool: Arc<HashPool>,
        sink: Arc<Sink>,
        hints: mpsc::Receiver<Change>,
        rescan: Arc<RescanFlag>,
        stats: Arc<Stats>,
        root: Arc<RootState>,
    ) -> Self {
        let (limits, settle_delay) = (cfg.limits, cfg.settle_delay);
        let now = cfg.clock.now();
        let scans = Scans::new(
            cfg.data_dir.clone(),
            cfg.once,
            limits.scan_queue,
            Arc::clone(&stats),
            now,
        );
        let (settle, barrier) = match &cfg.fast {
            Some(f) => (
                Settle::with_fast(settle_delay, f.delay),
                Some(Barrier::new(f.barrier_dir.clone())),
            ),
            None => (Settle::new(settle_delay), None),
        };
        Self {
            settle,
            barrier,
            cfg,
            ledger: Ledger::new(store, limits.commit_ops, now),
            busy: PathSet::new(),
            hashing: Hashing::new(pool),
            outbox: Outbox::new(sink),
            hints,
            rescan,
            scans,
            unconfirmed: 0,
            tasks: TaskTracker::new(),
            pairer: Pairer::new(limits.limbo, settle_delay),
            fatal: None,
            stats,
            since: now,
            root,
        }
    }

    /// Whether DATA_DIR is sound, looked at afresh at most every 100 ms.
    fn root_sound(&mut self) -> bool {
        self.root.is_sound_at(self.cfg.clock.now())
    }

    /// Runs until `cancel` fires (or, with `once`, until the initial scan is reported), then
    /// drains: in-flight hashes and deliveries finish, up to the shutdown deadline, and the store
    /// is flushed.
    ///
    /// Await it from `Runtime::block_on`, as `watcher::run` does, never spawn it: the engine
    /// makes blocking calls (`lstat`, redb commits, stdout writes) on the thread that polls it,
    /// which must then be a thread of its own, not one of tokio's workers. It still waits in
    /// async code, so channels, timers and acks wake it without a thread hop of their own.
    ///
    /// # Errors
    /// A store failure, or a sink failure that retries cannot fix.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<RunOutcome, EngineError> {
        // Inside `block_on` there is no task; a spawned engine would have an ID.
        debug_assert!(
            tokio::task::try_id().is_none(),
            "Engine::run must be awaited from Runtime::block_on, not spawned onto a worker"
        );
        let mut rescan_tick = (!self.cfg.rescan_every.is_zero()).then(|| {
            let mut t = tokio::time::interval_at(
                tokio::time::Instant::now() + self.cfg.rescan_every,
                self.cfg.rescan_every,
            );
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut heartbeat = self.cfg.clock.now() + HEARTBEAT;
        let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(heartbeat));
        tokio::pin!(timer);
        let result = loop {
            // Outcomes queued without a wake-up (the pool was still deep in work) are taken on
            // any turn; the loop turns at least every `HEARTBEAT`.
            self.take_hashed();
            if let Err(e) = self.pump() {
                break Err(e);
            }
            if self.cfg.once && self.scans.ran_and_ended() && self.is_idle() {
                break Ok(true);
            }
            let room = self.settle.len() < self.cfg.limits.pending;
            // A scan waits in its channel (and the walker blocks) while the work past the settle
            // stage is at its bound: its files then go straight to hashing on the scan's own
            // stat, instead of through the settle set and a second lstat.
            let scan_room = room && !self.backlogged();
            // Bulk work with room for its next page goes on at once: a sink that accepts at once
            // (stdout) frees the room without waking the loop.
            let now = self.cfg.clock.now();
            if heartbeat <= now {
                heartbeat = now + HEARTBEAT;
            }
            // While the backlog is full (the broker is away or slow), settled paths cannot be
            // taken, and a deadline already past would wake the loop for nothing, over and
            // over: a delivery that frees room wakes it instead.
            let wake = if self.backlogged() {
                heartbeat
            } else if self.pairer.has_work() {
                now
            } else {
                self.settle
                    .next_deadline()
                    .map_or(heartbeat, |d| d.min(heartbeat))
            };
            // One timer for the whole loop, moved only when its deadline does: registering an
            // earlier timer wakes the runtime's parked driver thread, and a fresh `sleep` on
            // every turn did that several times per event.
            let wake = tokio::time::Instant::from_std(wake);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            let (scan_rx, walk_rx) = self.scans.receivers();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(false),
                (out, result) = self.outbox.done() => {
                    if let Err(e) = self.delivered_all(out, result) {
                        break Err(e);
                    }
                }
                () = self.hashing.ready() => self.take_hashed(),
                Some(m) = scan_rx.recv(), if scan_room => {
                    // The latency of what a scan finds starts when its batch arrives.
                    self.since = self.cfg.clock.now();
                    self.scan_msg(m);
                    // Take what is already queued in one go: the pump runs once per batch.
                    for _ in 0..BATCH {
                        if self.backlogged() {
                            break;
                        }
                        let Some(m) = self.scans.try_next_scan() else { break };
                        self.scan_msg(m);
                    }
                }
                Some(m) = walk_rx.recv(), if room => {
                    self.walk_msg(m);
                    for _ in 0..BATCH {
                        let Some(m) = self.scans.try_next_walk() else { break };
                        self.walk_msg(m);
                    }
                }
                Some(c) = self.hints.recv(), if room => {
                    self.change(c);
                    for _ in 0..BATCH {
                        let Ok(c) = self.hints.try_recv() else { break };
                        self.change(c);
                    }
                }
                () = self.rescan.raised() => {}
                _ = async { match rescan_tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    let cause = if self.cfg.polling { RescanCause::Poll } else { RescanCause::Periodic };
                    self.stats.rescan(cause);
                    tracing::debug!(cause = cause.as_str(), "rescan scheduled: {}", cause.advice());
                    self.scans.owe();
                }
                () = &mut timer => {}
            }
        };
        let scanned = self.scans.ran_and_ended()
            && self.pairer.is_idle()
            && self.settle.is_empty()
            && self.hashing.is_empty();
        self.drain().await;
        let flushed = self.flush();
        let finished = result?;
        flushed?;
        Ok(RunOutcome {
            finished,
            scanned,
            unconfirmed: self.unconfirmed + (self.outbox.in_flight() + self.outbox.queued()) as u64,
        })
    }

    /// Work past the settle stage (waiting to hash, hashed and waiting for the sink) is at its
    /// bound.
    fn backlogged(&self) -> bool {
        self.backlog() >= self.backlog_limit()
    }

    fn backlog(&self) -> usize {
        self.hashing.queued() + self.outbox.queued()
    }

    fn backlog_limit(&self) -> usize {
        self.cfg.limits.backlog
    }

    fn is_idle(&self) -> bool {
        self.barrier.as_ref().is_none_or(Barrier::is_empty)
            && self.pairer.is_idle()
            && self.settle.is_empty()
            && self.busy.is_empty()
            && self.hashing.queued() == 0
            && self.outbox.is_empty()
    }

    /// Graceful stop: no new intake and no new hashes; hashing stops at the next slice boundary
    /// (what was finished becomes events), what is queued is delivered, and acceptance is
    /// awaited up to the deadline. What is not confirmed by then is found at the next start.
    async fn drain(&mut self) {
        self.scans.stop();
        let deadline = tokio::time::Instant::now() + self.cfg.shutdown_timeout;
        // Every job still in the pool comes back at once or after its current slice,
        // finished or cancelled, so the loop below does not wait for a 4 GiB file.
        self.hashing.stop();
        loop {
            self.take_hashed();
            self.start_deliveries();
            if self.hashing.is_empty() && self.outbox.is_empty() {
                break;
            }
            tokio::select! {
                (out, result) = self.outbox.done() => {
                    if let Err(e) = self.delivered_all(out, result) {
                        tracing::error!(error = %e, "delivery failed during shutdown");
                        break;
                    }
                }
                () = self.hashing.ready() => self.take_hashed(),
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        unconfirmed = self.outbox.in_flight() + self.outbox.queued(),
                        "shutdown deadline reached; unconfirmed events will be sent again at the next start"
                    );
                    break;
                }
            }
        }
        // The scan threads see the stop flag at their next entry, or an error at their next
        // send now that the channels are closed; deliveries end with the sink. Whatever has
        // not ended by the deadline is left behind: the process exits anyway.
        self.scans.close();
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                tasks = self.tasks.len(),
                "tasks still running at the shutdown deadline"
            );
        }
    }

    // ---- intake -------------------------------------------------------------------------------

    fn change(&mut self, c: Change) {
        let now = self.cfg.clock.now();
        if let Some(b) = &self.barrier {
            match &c {
                Change::Path(p) | Change::Closed(p) | Change::Unlinked(p) if b.owns(p) => {
                    if let Some(n) = b.cookie(p) {
                        self.barrier_seen(n);
                    }
                    return;
                }
                _ => {}
            }
        }
        match c {
            Change::Path(p) => {
                if p.starts_with(&self.cfg.data_dir) {
                    self.settle.touch(p, Origin::Live, now);
                }
            }
            Change::MovedIn(p) if p.starts_with(&self.cfg.data_dir) => {
                if self.barrier.is_some() && is_file(&p) {
                    self.fast_trigger(p, now, false);
                } else {
                    self.settle.touch(p, Origin::Live, now);
                }
            }
            Change::MovedIn(_) => {}
            Change::Closed(p) if p.starts_with(&self.cfg.data_dir) => {
                if self.barrier.is_none() {
                    self.settle.touch(p, Origin::Live, now);
                } else {
                    self.fast_trigger(p, now, true);
                }
            }
            Change::Closed(_) => {}
            Change::Unlinked(p) => {
                if p.starts_with(&self.cfg.data_dir) {
                    self.settle.unlink(p, now);
                }
            }
            Change::Rename { from, to } => {
                if to.starts_with(&self.cfg.data_dir) {
                    // A file renamed into place is a trigger of the fast path, like a close.
                    let into_place = self.barrier.is_some() && is_file(&to);
                    self.settle.rename(&from, to.clone(), now);
                    if into_place {
                        self.fast_trigger(to, now, false);
                    }
                } else {
                    self.settle.touch(from, Origin::Live, now);
                }
            }
            Change::Rescan(_) => self.scans.owe(),
        }
    }

    /// A full scan's message: bookkeeping goes to [`Scans`], a found file is routed here.
    fn scan_msg(&mut self, m: ScanMsg) {
        let Some(found) = self.scans.message(m) else {
            return;
        };
        let Found {
            path: p,
            stamp,
            known,
        } = found;
        // The overlay (accepted, not yet committed) is newer than the scan's snapshot.
        let recorded = self.ledger.uncommitted(&p).unwrap_or(known);
        // The walk stats only paths the store knows; one accepted since needs a look.
        let stamp = match (stamp, recorded) {
            (None, Some(_)) => look(&p).1,
            (stamp, _) => stamp,
        };
        let free = !self.backlogged() && !self.busy.contains(&p) && !self.settle.contains(&p);
        let (settle, wall) = (&self.settle, self.cfg.clock.wall());
        let verdict = scanned(stamp, recorded.as_ref(), free, |mtime_ns| {
            settle.mtime_is_old(mtime_ns, wall)
        });
        if verdict == Scanned::Unchanged {
            return;
        }
        self.scans.found(p.clone());
        // In poll mode the scans after the first are the live watcher: what they find
        // new was created, not discovered.
        let origin = if self.cfg.polling && !self.scans.initial() {
            Origin::Live
        } else {
            Origin::Scan
        };
        match verdict {
            Scanned::Unchanged => {}
            Scanned::Decide(s) => self.settled_file(p, origin, s, recorded),
            Scanned::HashUnseen => self.queue_hash(
                p,
                None,
                HashWork {
                    origin,
                    renamed_from: None,
                    confirm_settled: true,
                    since: self.since,
                    fast: false,
                },
            ),
            Scanned::Settle => {
                if self.barrier.is_some() {
                    self.stats.fallback(Fallback::Scan);
                }
                self.settle.insert_quiet(p, origin, self.cfg.clock.now());
            }
        }
    }

    fn walk_msg(&mut self, m: ScanMsg) {
        if let ScanMsg::Found(p, stamp, _) = m {
            if self.busy.contains(&p)
                || self
                    .uncommitted(&p)
                    .is_some_and(|e| stamp.is_some_and(|s| s.unchanged_from(&e.stamp)))
            {
                return;
            }
            self.settle
                .insert_quiet(p, Origin::Live, self.cfg.clock.now());
        }
    }

    /// The entry accepted for `p` but not yet committed, if any.
    fn uncommitted(&self, p: &Path) -> Option<Entry> {
        self.ledger.uncommitted(p).flatten()
    }

    /// The store's view of `path`, including accepted but not yet committed changes.
    fn lookup(&mut self, path: &Path) -> Result<Option<Entry>, StoreError> {
        self.ledger.lookup(path)
    }

    // ---- the pump: everything that can move without waiting ------------------------------------

    fn pump(&mut self) -> Result<(), EngineError> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        let now = self.cfg.clock.now();
        self.since = now;
        for cause in self.rescan.take() {
            self.stats.rescan(cause);
            tracing::warn!(
                cause = cause.as_str(),
                "rescan scheduled: {}",
                cause.advice()
            );
            self.scans.owe();
        }
        let allowed = self.scans.wants_start()
            // The last scan's deletions come out of the store's vanished set, which the next
            // sweep starts afresh.
            && !self.pairer.sweeping()
            && self.root_sound();
        if let Some(launch) = self.scans.maybe_start(self.cfg.clock.now(), allowed) {
            self.start_scan(launch);
        }
        // While the sink is slow or away (a broker outage), stop taking settled paths: they wait
        // in the settle set, coalesced per path and bounded, instead of piling up as messages.
        let room = self.backlog_limit().saturating_sub(self.backlog());
        let due = self.settle.due(now, room.min(2048));
        for path in due {
            if self.busy.contains(&path) {
                self.settle.defer(&path, now);
                continue;
            }
            let (seen, stamp) = look(&path);
            if let Some(p) = self.settle.check(&path, seen, now, self.cfg.clock.wall()) {
                self.since = p.first_hint;
                self.settled(path, p, seen, stamp)?;
            }
        }
        self.since = now;
        // Bulk work first: a directory's rename claims the files below it that vanished into
        // limbo before their hold expires in the same turn.
        self.bulk_work()?;
        self.expire_limbo(now)?;
        self.expire_barrier(now);
        self.hashing.start(now);
        // Deliver before judging whether the scan is done (its paths are busy until accepted),
        // and again after, for the deletions that judgement emits.
        self.start_deliveries();
        self.finish_scan_if_done();
        self.start_deliveries();
        // Commit in batches, by count or age, or once everything is quiet.
        let idle = self.is_idle();
        self.ledger.maybe_commit(idle, self.cfg.clock.now())?;
        self.stats.pending.set(self.settle.len() as i64);
        self.progress();
        Ok(())
    }

    fn progress(&mut self) {
        let Some(secs) = self.scans.progress_due(self.cfg.clock.now()) else {
            return;
        };
        let hashed = self.stats.hashed_files.get();
        let reported = self.stats.events_total();
        tracing::info!(
            pending = self.settle.len(),
            hashing = self.hashing.in_pool() + self.hashing.queued(),
            hashed,
            reported,
            reported_per_sec = (reported as f64 / secs) as u64,
            "scan progress"
        );
    }

    fn start_scan(&mut self, launch: Launch) {
        let Launch { tx, stop, label } = launch;
        let (root, filter, store, threads) = (
            self.cfg.data_dir.clone(),
            self.cfg.filter.clone(),
            Arc::clone(self.ledger.store()),
            self.cfg.scan_threads,
        );
        self.tasks.spawn_blocking(move || {
            scan::full_scan(root, filter, store, tx, stop, label, threads);
        });
    }

    fn walk_dir(&self, dir: PathBuf) {
        let Launch { tx, stop, label } = self.scans.walk_dir();
        let (root, filter, store, threads) = (
            self.cfg.data_dir.clone(),
            self.cfg.filter.clone(),
            Arc::clone(self.ledger.store()),
            self.cfg.scan_threads,
        );
        self.tasks.spawn_blocking(move || {
            scan::walk(&root, &dir, &filter, &store, &tx, &stop, label, threads);
        });
    }

    /// Lets the scan drop the paths whose work is done (a path is done once it is neither
    /// settling nor busy) and, once it has ended, queues the deletions it found.
    fn finish_scan_if_done(&mut self) {
        let (busy, settle) = (&self.busy, &self.settle);
        let idle = settle.is_empty() && busy.is_empty();
        let finished = self.scans.try_finish(
            self.cfg.clock.now(),
            |p| busy.contains(p) || settle.contains(p),
            idle,
        );
        if finished.is_some_and(|f| f.queue_deletions()) {
            self.pairer.scan_ended();
        }
    }

    fn accepts(&self, p: &Path) -> bool {
        reported(&self.cfg, p)
    }

    // ---- decisions ----------------------------------------------------------------------------

    /// A path has settled: gather what the disk and the store say, let [`decide`] judge, and
    /// carry the decision out.
    fn settled(
        &mut self,
        path: PathBuf,
        pending: Pending,
        seen: Observed,
        stamp: Option<Stamp>,
    ) -> Result<(), EngineError> {
        let source = match (&pending.old_path, seen) {
            // A file here, or nothing (renamed here and then unlinked): the source's entry
            // decides whether this is its move, or its deletion.
            (Some(from), Observed::File { .. } | Observed::Missing) => Some(Source {
                entry: self.lookup(from)?,
                present: is_file(from),
                busy: self.busy.contains(from),
            }),
            (Some(from), _) => Some(Source {
                entry: None,
                present: false,
                busy: self.busy.contains(from),
            }),
            (None, _) => None,
        };
        let facts = Facts {
            seen,
            stamp,
            reported: matches!(seen, Observed::File { .. }) && self.accepts(&path),
            prior: self.lookup(&path)?,
            source,
            unlinked: pending.unlinked,
        };
        let verdict = decide(&facts);
        let fast = pending.fast
            && matches!(
                verdict.decision,
                Decision::New | Decision::Changed | Decision::Move | Decision::HashMove
            );
        if fast {
            if let Err(why) = self.fast_gate(&path, seen, stamp) {
                self.stats.fallback(why);
                tracing::debug!(path = %path.display(), reason = why.as_str(), "fast path refused; waiting the full settle delay");
                self.settle
                    .slow_down(path, pending, why, self.cfg.clock.now());
                return Ok(());
            }
        }
        let from = pending.old_path;
        tracing::debug!(path = %path.display(), seen = ?seen, from = ?from, decision = ?verdict.decision, "settled");
        match verdict.decision {
            Decision::Nothing => {
                if seen == Observed::Other {
                    tracing::info!(path = %path.display(), "not a regular file; not reported");
                }
            }
            Decision::Vanished => self.vanished(&path)?,
            Decision::Delete => {
                if let Some(e) = facts.prior {
                    self.emit_deleted(path, e);
                }
            }
            Decision::Directory { replaced_file } => {
                if let (true, Some(e)) = (replaced_file, facts.prior) {
                    self.emit_deleted(path.clone(), e);
                }
                if let Some(walk) = self.pairer.directory(path, from.clone()) {
                    self.carry_out(vec![walk]);
                }
            }
            Decision::SourceUnlinked { replaced_file } => {
                if let (true, Some(e)) = (replaced_file, facts.prior) {
                    self.emit_deleted(path.clone(), e);
                }
                if let (Some(old), Some(from)) = (source.and_then(|s| s.entry), from.clone()) {
                    self.emit_deleted(from, old);
                }
            }
            Decision::Move => {
                if let (Some(old), Some(stamp), Some(from)) =
                    (source.and_then(|s| s.entry), stamp, from.clone())
                {
                    if fast {
                        self.stats.fast_settled.inc();
                    }
                    self.emit_move(from, path, Entry { stamp, ..old });
                }
            }
            Decision::HashMove => {
                if let (Some(old), Some(from)) = (source.and_then(|s| s.entry), from.clone()) {
                    let work = HashWork {
                        origin: Origin::Live,
                        renamed_from: Some((from, old)),
                        confirm_settled: false,
                        since: self.since,
                        fast,
                    };
                    self.queue_hash(path, stamp, work);
                }
            }
            Decision::New | Decision::Changed => {
                if let Some(stamp) = stamp {
                    let earlier = pending.hashed.filter(|e| stamp.unchanged_from(&e.stamp));
                    if fast && earlier.is_some() {
                        self.stats.fast_settled.inc();
                    }
                    let fast = fast && earlier.is_none();
                    self.new_or_changed(
                        path,
                        pending.origin,
                        stamp,
                        verdict.decision,
                        earlier,
                        fast,
                    );
                }
            }
        }
        if verdict.recheck_source {
            if let Some(from) = from {
                self.settle.touch(from, Origin::Live, self.cfg.clock.now());
            }
        }
        Ok(())
    }

    /// A regular file found by a scan with a stamp, already settled: decided on the scan's own
    /// stat, without a second lstat and store lookup.
    fn settled_file(&mut self, path: PathBuf, origin: Origin, stamp: Stamp, prior: Option<Entry>) {
        let facts = Facts {
            seen: Observed::File {
                size: stamp.size,
                mtime_ns: stamp.mtime_ns,
            },
            stamp: Some(stamp),
            reported: true,
            prior,
            source: None,
            unlinked: false,
        };
        let decision = decide(&facts).decision;
        if matches!(decision, Decision::New | Decision::Changed) {
            self.new_or_changed(path, origin, stamp, decision, None, false);
        }
    }

    /// A file to hash, unless it is new and is the inode of a file that vanished a moment ago
    /// under another name (a move the watcher could not pair): then it is that move. `earlier`
    /// holds digests taken of this very stamp before the file settled: they are judged as if
    /// the hash had just come back, and the file is not read a second time.
    fn new_or_changed(
        &mut self,
        path: PathBuf,
        origin: Origin,
        stamp: Stamp,
        decision: Decision,
        earlier: Option<Entry>,
        fast: bool,
    ) {
        if decision == Decision::New {
            if let Some(moved) = self.pairer.claim_settled(&path, &stamp) {
                self.carry_out(vec![moved]);
                return;
            }
        }
        let work = HashWork {
            origin,
            renamed_from: None,
            confirm_settled: false,
            since: self.since,
            fast,
        };
        match earlier {
            Some(entry) => {
                self.busy.insert(path.clone());
                self.judge_hashed(path, entry, work);
            }
            None => self.queue_hash(path, Some(stamp), work),
        }
    }

    /// A path settled as gone: the pairer holds it, deletes it, or takes it as a directory.
    fn vanished(&mut self, path: &Path) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        let out = self
            .pairer
            .vanished(path, now, &view!(self), &mut self.ledger)?;
        self.carry_out(out);
        Ok(())
    }

    /// The pairer's bulk work while the backlog has room: a page of store entries at a time.
    fn bulk_work(&mut self) -> Result<(), EngineError> {
        loop {
            let room = self.backlog_limit().saturating_sub(self.backlog());
            if room == 0 {
                return Ok(());
            }
            let limit = room.min(self.cfg.limits.bulk_page);
            let now = self.cfg.clock.now();
            let view = view!(self);
            let Some(out) = self.pairer.work(limit, now, &view, &mut self.ledger)? else {
                return Ok(());
            };
            self.carry_out(out);
        }
    }

    fn expire_limbo(&mut self, now: Instant) -> Result<(), EngineError> {
        let out = self.pairer.expire(now, &view!(self), &mut self.ledger)?;
        self.carry_out(out);
        Ok(())
    }

    /// Carries out what the pairer decided.
    fn carry_out(&mut self, outcomes: Vec<Outcome>) {
        let now = self.cfg.clock.now();
        for o in outcomes {
            match o {
                Outcome::Move { from, to, entry } => self.emit_move(from, to, entry),
                Outcome::Delete { path, entry } => self.emit_deleted(path, entry),
                Outcome::Recheck(p) => self.settle.touch(p, Origin::Live, now),
                Outcome::Walk(dir) => self.walk_dir(dir),
            }
        }
    }

    /// `stamp`: the walk's or the settle's stat of the path, when there is one, so the hash
    /// needs none of its own before the read.
    fn queue_hash(&mut self, path: PathBuf, stamp: Option<Stamp>, work: HashWork) {
        self.busy.insert(path.clone());
        self.hashing.queue(path, stamp, work);
    }

    /// Takes every hash outcome the pool has queued, woken or not.
    fn take_hashed(&mut self) {
        let now = self.cfg.clock.now();
        for done in self.hashing.take(now) {
            self.hashed(done);
        }
        // One cookie for every fast-path hash that came back in this turn.
        if let Some(b) = &mut self.barrier {
            for (path, entry, work) in b.raise(now) {
                self.fast_fallback(path, entry, work, Fallback::BarrierTimeout);
            }
        }
    }

    // ---- the fast path --------------------------------------------------------------------------

    /// A writer's close (`close`), or a file moved or renamed into place: the path takes the
    /// fast path unless its history says otherwise.
    fn fast_trigger(&mut self, p: PathBuf, now: Instant, close: bool) {
        let refused = if close {
            self.settle.closed(p.clone(), now)
        } else {
            self.settle.moved_in(p.clone(), now)
        };
        if let Some(why) = refused {
            self.stats.fallback(why);
            let trigger = if close { "close" } else { "moved in" };
            tracing::debug!(path = %p.display(), reason = why.as_str(), trigger, "not on the fast path; waiting the full settle delay");
        }
    }

    /// The checks before a fast-path file is decided on: it is not empty, the lease probe finds
    /// no writer, it has one name, and the probe's stamp is the look's.
    fn fast_gate(&self, path: &Path, seen: Observed, stamp: Option<Stamp>) -> Result<(), Fallback> {
        let Some(cfg) = &self.cfg.fast else {
            return Ok(());
        };
        let size = match seen {
            Observed::File { size, .. } => size,
            _ => 0,
        };
        match fast::gate(cfg.probe(path), cfg.leases, size)? {
            Some(probed) if Some(probed) != stamp => Err(Fallback::ChangedDuringHash),
            _ => Ok(()),
        }
    }

    /// A fast-path hash is back: the probe after it must agree, then it waits for the barrier.
    fn fast_hashed(&mut self, path: PathBuf, entry: Entry, work: HashWork) {
        let Some(cfg) = &self.cfg.fast else {
            return self.judge_hashed(path, entry, work);
        };
        match fast::confirm(cfg.probe(&path), cfg.leases, &entry.stamp) {
            Ok(()) => match &mut self.barrier {
                Some(b) => b.wait((path, entry, work)),
                None => self.judge_hashed(path, entry, work),
            },
            Err(why) => self.fast_fallback(path, entry, work, why),
        }
    }

    /// Barrier cookie `n` came back: every event queued before it has been seen. A file that
    /// had no event since it was taken to hashing is judged; one that had waits in the settle
    /// set, with its digests kept in case it settles as it was read.
    fn barrier_seen(&mut self, n: u64) {
        let released = match &mut self.barrier {
            Some(b) => b.seen(n),
            None => return,
        };
        for (path, entry, work) in released {
            if self.settle.contains(&path) {
                self.stats.fallback(Fallback::ChangedDuringHash);
                self.busy.remove(&path);
                self.settle.keep_hashed(&path, entry);
            } else {
                self.stats.fast_settled.inc();
                tracing::debug!(path = %path.display(), "settled on the fast path");
                self.since = work.since;
                self.judge_hashed(path, entry, work);
            }
        }
    }

    /// Cookies that did not come back within the settle delay (events lost, or DATA_DIR watched
    /// anew): their files wait the full settle delay.
    fn expire_barrier(&mut self, now: Instant) {
        let late = match &mut self.barrier {
            Some(b) => b.expired(now, self.cfg.settle_delay),
            None => return,
        };
        for (path, entry, work) in late {
            self.fast_fallback(path, entry, work, Fallback::BarrierTimeout);
        }
    }

    /// A fast-path hash that cannot be vouched for: the file waits the full settle delay, and
    /// its digests are used if it settles as it was read. A rename's source goes back onto the
    /// settle entry, so that it still settles as that move.
    fn fast_fallback(&mut self, path: PathBuf, entry: Entry, work: HashWork, why: Fallback) {
        self.stats.fallback(why);
        tracing::debug!(path = %path.display(), reason = why.as_str(), "fast path refused after the hash; waiting the full settle delay");
        self.busy.remove(&path);
        let now = self.cfg.clock.now();
        if let Some((from, _)) = work.renamed_from {
            self.settle.rename(&from, path.clone(), now);
        }
        self.settle.touch_hashed(path, work.origin, now, entry);
    }

    fn hashed(&mut self, done: HashOutcome<HashWork>) {
        let HashOutcome {
            path,
            work,
            result,
            took,
        } = done;
        self.stats.hash_seconds.observe(took.as_secs_f64());
        self.since = work.since;
        let h = match result {
            Ok(h) => h,
            Err(HashError::Cancelled { .. }) => {
                // Shutting down: the file is found again at the next start.
                self.busy.remove(&path);
                return;
            }
            Err(HashError::Changed { .. } | HashError::NotFound { .. }) => {
                // Still being written, or gone: back to settling, which sorts out which.
                self.busy.remove(&path);
                self.settle.touch(path, work.origin, self.cfg.clock.now());
                return;
            }
            Err(e) => {
                self.busy.remove(&path);
                self.stats.file_error(e.label());
                tracing::warn!(path = %path.display(), error = %e, kind = e.label(), "cannot hash file; skipped until it changes or the next scan");
                return;
            }
        };
        let entry = Entry {
            stamp: h.stamp,
            digest: h.digest,
        };
        if work.confirm_settled
            && !self
                .settle
                .mtime_is_old(h.stamp.mtime_ns, self.cfg.clock.wall())
        {
            // Found by a scan while it was still being written: settle it like any change,
            // keeping the digests in case it settles as it was read.
            self.busy.remove(&path);
            let now = self.cfg.clock.now();
            self.settle.touch_hashed(path, work.origin, now, entry);
            return;
        }
        if work.fast {
            self.fast_hashed(path, entry, work);
            return;
        }
        self.judge_hashed(path, entry, work);
    }

    /// Digests of a settled file, read now or before it settled: what they mean against the
    /// store, carried out.
    fn judge_hashed(&mut self, path: PathBuf, entry: Entry, work: HashWork) {
        self.stats.hashed_files.inc();
        self.stats.hashed_bytes.inc_by(entry.stamp.size);
        // Decide against the store as it is now, not as it was when the hash was scheduled: a
        // scan's snapshot may predate a commit, and the same file must not be reported twice.
        let prior = match self.lookup(&path) {
            Ok(p) => p,
            Err(e) => {
                self.busy.remove(&path);
                self.fatal = Some(e.into());
                return;
            }
        };
        match after_hash(prior.as_ref(), &entry.digest, work.renamed_from.is_some()) {
            AfterHash::Move => {
                if let Some((from, _)) = work.renamed_from {
                    self.emit_move(from, path, entry);
                }
            }
            AfterHash::Touched => {
                // New stamp, same content: remember the stamp, publish nothing.
                self.stats.touched.inc();
                tracing::debug!(path = %path.display(), "touched: content unchanged, nothing published");
                self.record(vec![Op::Put(path.clone(), entry)]);
                self.busy.remove(&path);
            }
            AfterHash::Modified => {
                let ops = vec![Op::Put(path.clone(), entry)];
                self.emit(EventType::FileModified, path, None, &entry, ops);
            }
            AfterHash::New => self.new_hashed(path, entry, work.origin),
        }
    }

    /// A hashed file the store does not know: a move found by pairing (the inode of a file that
    /// vanished a moment ago, or, during a scan, a vanished entry with the same size and
    /// XXH128), or new.
    fn new_hashed(&mut self, path: PathBuf, entry: Entry, origin: Origin) {
        let scan_pairing = self.scans.running() && self.scans.may_pair();
        let view = view!(self);
        match self
            .pairer
            .claim_hashed(&path, &entry, scan_pairing, &view, &mut self.ledger)
        {
            Ok(Some((from, evidence))) => {
                if evidence == Evidence::Content {
                    self.scans.paired();
                }
                self.emit_move(from, path, entry);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                self.fatal.get_or_insert(e.into());
            }
        }
        let kind = match origin {
            Origin::Scan => EventType::FileDiscovered,
            Origin::Live => EventType::FileCreated,
        };
        let ops = vec![Op::Put(path.clone(), entry)];
        self.emit(kind, path, None, &entry, ops);
    }

    // ---- output -------------------------------------------------------------------------------

    /// A file that moved from `from` to `to`: one event, and the store entry moves with it.
    fn emit_move(&mut self, from: PathBuf, to: PathBuf, entry: Entry) {
        let ops = vec![Op::Delete(from.clone()), Op::Put(to.clone(), entry)];
        self.emit(EventType::of_move(&from, &to), to, Some(from), &entry, ops);
    }

    fn emit_deleted(&mut self, path: PathBuf, entry: Entry) {
        let ops = vec![Op::Delete(path.clone())];
        self.emit(EventType::FileDeleted, path, None, &entry, ops);
    }

    /// Queues one event. Its paths stay busy until the sink has accepted it; its store changes
    /// are applied only then.
    fn emit(
        &mut self,
        event: EventType,
        path: PathBuf,
        old: Option<PathBuf>,
        entry: &Entry,
        ops: Vec<Op>,
    ) {
        if event == EventType::FileDeleted && !self.root_sound() {
            // DATA_DIR is missing or replaced: this file is not gone, the volume is. The store
            // keeps the entry; the rescan when DATA_DIR is back reports what really changed.
            tracing::debug!(path = %path.display(), "DATA_DIR is unsound; deletion held back");
            return;
        }
        let mut busy = vec![path.clone()];
        busy.extend(old.clone());
        for b in &busy {
            if !self.busy.contains(b) {
                self.busy.insert(b.clone());
            }
        }
        let msg = Envelope::build(
            event,
            &self.cfg.instance_id,
            &self.cfg.data_dir,
            &path,
            old.as_deref(),
            entry.facts(),
            chrono::Utc::now(),
        );
        // Sent by the next pump, together with everything else queued this turn: stdout then
        // writes one batch with one flush instead of a write per event.
        let since = self.since;
        self.outbox.push(
            msg,
            Outgoing {
                busy,
                ops,
                event,
                since,
            },
        );
    }

    fn start_deliveries(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        match self.outbox.start(&self.tasks) {
            Ok(accepted) => {
                for o in accepted {
                    self.accepted(o);
                }
            }
            Err(e) => self.fatal = Some(e.into()),
        }
        self.stats
            .in_flight
            .set((self.outbox.in_flight() + self.outbox.queued()) as i64);
    }

    /// Takes `first` and every other delivery outcome already in, then starts what their
    /// slots free: one turn of the loop per confirm batch, not per message.
    fn delivered_all(
        &mut self,
        first: Outgoing,
        result: Result<(), SinkError>,
    ) -> Result<(), EngineError> {
        let mut next = Some((first, result));
        while let Some((out, result)) = next {
            self.delivered(out, result)?;
            next = self.outbox.try_done();
        }
        self.start_deliveries();
        Ok(())
    }

    fn delivered(
        &mut self,
        out: Outgoing,
        result: Result<(), SinkError>,
    ) -> Result<(), EngineError> {
        match result {
            Ok(()) => {
                self.accepted(out);
                Ok(())
            }
            Err(SinkError::Closed) => {
                // Shutting down: the event is found again at the next start.
                self.unconfirmed += 1;
                for b in &out.busy {
                    self.busy.remove(b);
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The sink has the event: count it and record its store changes.
    fn accepted(&mut self, out: Outgoing) {
        for b in &out.busy {
            self.busy.remove(b);
        }
        self.stats.event(out.event);
        self.stats
            .event_latency
            .observe(self.cfg.clock.since(out.since).as_secs_f64());
        if let Some(path) = out.busy.first() {
            logging::reported(out.event, path, out.busy.get(1));
        }
        self.record(out.ops);
    }

    fn record(&mut self, ops: Vec<Op>) {
        self.ledger.record(ops);
    }

    /// Commits everything accepted so far, durably.
    fn flush(&mut self) -> Result<(), EngineError> {
        Ok(self.ledger.commit(true, self.cfg.clock.now())?)
    }
}

/// Whether a file at `p` is reported: inside DATA_DIR and not excluded.
fn reported(cfg: &EngineConfig, p: &Path) -> bool {
    p.starts_with(&cfg.data_dir) && cfg.filter.accepts(scan::relative(&cfg.data_dir, p))
}

/// What the pairer may look at: the paths at work, the settle set, the disk and the filter.
struct View<'a> {
    busy: &'a PathSet,
    settle: &'a Settle,
    cfg: &'a EngineConfig,
}

impl Look for View<'_> {
    fn busy(&self, path: &Path) -> bool {
        self.busy.contains(path)
    }

    fn busy_under(&self, dir: &Path) -> Vec<PathBuf> {
        self.busy.under(dir)
    }

    fn pending(&self, path: &Path) -> bool {
        self.settle.contains(path)
    }

    fn on_disk(&self, path: &Path) -> Option<Stamp> {
        look(path).1
    }

    fn reported(&self, path: &Path) -> bool {
        reported(self.cfg, path)
    }
}

#[cfg(test)]
mod tests;
