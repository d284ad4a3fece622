//! The pipeline: hints and scans → settle → decide → hash → outbox → ledger.
//!
//! One engine task owns all state, so there are no locks on the hot path. It wires the parts
//! together and does the I/O; the parts are named after their concepts:
//! - [`crate::settle`]: the pending set, coalesced per path, with its quiet periods and renames;
//! - [`crate::decide`]: the pure decision for a settled path and for a hash result;
//! - [`crate::pairing`]: the inode limbo and a scan's vanished set, where moves are paired;
//! - [`crate::scans`]: the scan owed and the one running, its progress, its end and its deletions;
//! - [`crate::outbox`]: the delivery window to the sink;
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
//! Per path there is at most one piece of work in flight (hashing or delivering); a hint for a
//! busy path waits in the settle set. The store is written only after the sink accepted the
//! event.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hasher::{HashError, HashPool, Stamp};
use publisher::{Envelope, EventType, FileFacts, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::change::Change;
use crate::clock::Clock;
use crate::decide::{after_hash, decide, Decision, Facts, Hashed as AfterHash, Source};
use crate::filter::Filter;
use crate::hashing::{Hashing, Outcome as HashOutcome};
use crate::hints::{RescanCause, RescanFlag};
use crate::ledger::Ledger;
use crate::limits::Limits;
use crate::outbox::Outbox;
use crate::pairing::Limbo;
use crate::paths::PathSet;
use crate::root::RootState;
use crate::scan::{self, ScanMsg};
use crate::scans::{Found, Launch, Scans};
use crate::settle::{Observed, Origin, Pending, Settle};
use crate::stats::Stats;
use crate::store::{Entry, Op, Store, StoreError};

/// Messages taken from one channel per turn of the loop, so the pump's fixed cost is shared.
const BATCH: usize = 1024;

/// The loop turns at least this often, also when nothing wakes it: outcomes the pool queued
/// without a wake-up, the scan's progress and the commit by age are looked at then.
const HEARTBEAT: Duration = Duration::from_millis(250);

/// How long a look at DATA_DIR's soundness is reused: a directory of many deletions then costs
/// one `stat` of the root, not one per file, and an unmount is still seen within this.
const ROOT_LOOK_REUSED: Duration = Duration::from_millis(100);

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
}

struct Outgoing {
    /// The event's path, then its old path for a move.
    busy: Vec<PathBuf>,
    ops: Vec<Op>,
    event: EventType,
    /// When the first hint behind this event arrived.
    since: Instant,
}

/// Work over many store entries, done a page at a time as the backlog has room (see
/// [`Limits::bulk_page`]).
enum Bulk {
    /// The entries below `dir`: deleted when `to` is `None` (the directory vanished), moved
    /// below `to` otherwise (the directory was renamed), after which `to` is walked for what
    /// is new in it.
    Below {
        dir: PathBuf,
        to: Option<PathBuf>,
        after: Option<PathBuf>,
    },
    /// The store's vanished set after a scan: what it found gone and could not pair with a new
    /// file. Deleted.
    ScanVanished,
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
    bulk: VecDeque<Bulk>,
    hints: mpsc::Receiver<Change>,
    rescan: Arc<RescanFlag>,
    /// The full scans and directory walks: what is owed, what runs, and their channels.
    scans: Scans,
    /// Deliveries that ended without a confirmation (the sink closed first).
    unconfirmed: u64,
    /// Every task the engine starts (deliveries, scans, directory walks), so that shutdown
    /// knows what is still running and waits for it up to the deadline, no longer.
    tasks: TaskTracker,
    /// Reported files that vanished, held for one settle period keyed by (dev, inode): if the
    /// same inode shows up under a new name meanwhile (a move the watcher could not pair, such
    /// as into a directory created a moment before), it is one move, not a delete and a create.
    limbo: Limbo,
    /// A failure seen where it could not be returned (a sink or store error); the next pump
    /// returns it.
    fatal: Option<EngineError>,
    stats: Arc<Stats>,
    /// When the first hint behind the decision being made now arrived: set before a settled
    /// path, a scan's find or a hash result is decided, read by `emit` for the latency metric.
    since: Instant,
    /// DATA_DIR's verdict: no deletion is published, and no scan starts, while it is unsound.
    root: Arc<RootState>,
    /// The last fresh look at DATA_DIR, reused for a moment so that a directory of many
    /// deletions costs one `stat` of the root, not one per file.
    root_looked: Option<(Instant, bool)>,
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
        let limits = cfg.limits;
        let now = cfg.clock.now();
        let scans = Scans::new(
            cfg.data_dir.clone(),
            cfg.once,
            limits.scan_queue,
            Arc::clone(&stats),
            now,
        );
        Self {
            settle: Settle::new(cfg.settle_delay),
            cfg,
            ledger: Ledger::new(store, limits.commit_ops, now),
            busy: PathSet::new(),
            hashing: Hashing::new(pool),
            outbox: Outbox::new(sink, limits.window),
            bulk: VecDeque::new(),
            hints,
            rescan,
            scans,
            unconfirmed: 0,
            tasks: TaskTracker::new(),
            limbo: Limbo::default(),
            fatal: None,
            stats,
            since: now,
            root,
            root_looked: None,
        }
    }

    /// Whether DATA_DIR is sound, looked at afresh at most every 100 ms.
    fn root_sound(&mut self) -> bool {
        if let Some((at, sound)) = self.root_looked {
            if self.cfg.clock.since(at) < ROOT_LOOK_REUSED {
                return sound;
            }
        }
        let sound = self.root.is_sound_now();
        self.root_looked = Some((self.cfg.clock.now(), sound));
        sound
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
            } else if !self.bulk.is_empty() {
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
                    if let Err(e) = self.delivered(out, result) {
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
            && self.limbo.is_empty()
            && self.bulk.is_empty()
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
        self.limbo.is_empty()
            && self.bulk.is_empty()
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
                    if let Err(e) = self.delivered(out, result) {
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
        match c {
            Change::Path(p) => {
                if p.starts_with(&self.cfg.data_dir) {
                    self.settle.touch(p, Origin::Live, now);
                }
            }
            Change::Unlinked(p) => {
                if p.starts_with(&self.cfg.data_dir) {
                    self.settle.unlink(p, now);
                }
            }
            Change::Rename { from, to } => {
                if to.starts_with(&self.cfg.data_dir) {
                    self.settle.rename(&from, to, now);
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
        if let (Some(e), Some(s)) = (recorded, stamp) {
            if s.unchanged_from(&e.stamp) {
                return;
            }
        }
        self.scans.found(p.clone());
        // In poll mode the scans after the first are the live watcher: what they find
        // new was created, not discovered.
        let origin = if self.cfg.polling && !self.scans.initial() {
            Origin::Live
        } else {
            Origin::Scan
        };
        let free = !self.backlogged() && !self.busy.contains(&p) && !self.settle.contains(&p);
        match (stamp, recorded) {
            // Settled long ago: decide now, on the scan's own stat, without a second
            // lstat and store lookup.
            (Some(s), _) if free && self.settle.mtime_is_old(s.mtime_ns, self.cfg.clock.wall()) => {
                self.settled_file(p, origin, s, recorded);
            }
            // New to the store and not yet stat'ed: hash it; the hash's stamp then says
            // whether it had settled.
            (None, None) if free => self.queue_hash(
                p,
                HashWork {
                    origin,
                    renamed_from: None,
                    confirm_settled: true,
                    since: self.since,
                },
            ),
            _ => self.settle.insert_quiet(p, origin, self.cfg.clock.now()),
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
            && !self.bulk.iter().any(|b| matches!(b, Bulk::ScanVanished))
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
        let (root, filter, store) = (
            self.cfg.data_dir.clone(),
            self.cfg.filter.clone(),
            Arc::clone(self.ledger.store()),
        );
        self.tasks
            .spawn_blocking(move || scan::full_scan(root, filter, store, tx, stop, label));
    }

    fn walk_dir(&self, dir: PathBuf) {
        let Launch { tx, stop, label } = self.scans.walk_dir();
        let (root, filter, store) = (
            self.cfg.data_dir.clone(),
            self.cfg.filter.clone(),
            Arc::clone(self.ledger.store()),
        );
        self.tasks.spawn_blocking(move || {
            scan::walk(&root, &dir, &filter, &store, &tx, &stop, label);
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
            self.bulk.push_back(Bulk::ScanVanished);
        }
    }

    fn accepts(&self, p: &Path) -> bool {
        p.starts_with(&self.cfg.data_dir)
            && self
                .cfg
                .filter
                .accepts(scan::relative(&self.cfg.data_dir, p))
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
            (Some(from), Observed::File { .. }) => Some(Source {
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
                self.directory(path, from.clone())?;
            }
            Decision::Move => {
                if let (Some(old), Some(stamp), Some(from)) =
                    (source.and_then(|s| s.entry), stamp, from.clone())
                {
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
                    };
                    self.queue_hash(path, work);
                }
            }
            Decision::New | Decision::Changed => {
                if let Some(stamp) = stamp {
                    self.new_or_changed(path, pending.origin, stamp, verdict.decision);
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
            self.new_or_changed(path, origin, stamp, decision);
        }
    }

    /// A file to hash, unless it is new and is the inode of a file that vanished a moment ago
    /// under another name (a move the watcher could not pair): then it is that move.
    fn new_or_changed(&mut self, path: PathBuf, origin: Origin, stamp: Stamp, decision: Decision) {
        if decision == Decision::New {
            if let Some((from, old)) = self.limbo.claim(&path, &stamp) {
                self.emit_move(from, path, Entry { stamp, ..old });
                return;
            }
        }
        let work = HashWork {
            origin,
            renamed_from: None,
            confirm_settled: false,
            since: self.since,
        };
        self.queue_hash(path, work);
    }

    /// A path is gone: a file we reported is deleted (after a spell in limbo); a directory
    /// takes its files with it.
    fn vanished(&mut self, path: &Path) -> Result<(), EngineError> {
        if let Some(e) = self.lookup(path)? {
            // The limbo's bound covers these holds too: beyond it, a deletion is published at
            // once (a move then shows as a deletion and a creation, never as memory growth).
            if self.limbo.len() >= self.cfg.limits.limbo {
                self.emit_deleted(path.to_path_buf(), e);
                return Ok(());
            }
            // Half a settle delay longer than the delay itself: a rename of its directory seen
            // a moment later (its hint still queued when this path was looked at) settles
            // first, and claims it as a move.
            let until = self.cfg.clock.now() + self.cfg.settle_delay * 3 / 2;
            if let Some((older, e2)) = self.limbo.hold(path.to_path_buf(), e, until) {
                self.emit_deleted(older, e2);
            }
            return Ok(());
        }
        let now = self.cfg.clock.now();
        // Files below a vanished directory that are still in the pipeline (being hashed for a
        // scan, or on their way to the sink) are looked at again once their work is done:
        // otherwise a discovery delivered after this moment would never be followed by its
        // deletion.
        for p in self.busy.under(path) {
            self.settle.touch(p, Origin::Live, now);
        }
        self.bulk.push_back(Bulk::Below {
            dir: path.to_path_buf(),
            to: None,
            after: None,
        });
        Ok(())
    }

    /// A directory appeared (created, moved in, or renamed from `old`).
    fn directory(&mut self, path: PathBuf, old: Option<PathBuf>) -> Result<(), EngineError> {
        match old {
            // Its files move first (a page at a time); the walk for what is new in it follows.
            Some(from) => self.bulk.push_back(Bulk::Below {
                dir: from,
                to: Some(path),
                after: None,
            }),
            None => self.walk_dir(path),
        }
        Ok(())
    }

    /// Works through bulk work while the backlog has room: a page of store entries at a time.
    fn bulk_work(&mut self) -> Result<(), EngineError> {
        loop {
            let room = self.backlog_limit().saturating_sub(self.backlog());
            if room == 0 {
                return Ok(());
            }
            let limit = room.min(self.cfg.limits.bulk_page);
            let Some(job) = self.bulk.front_mut() else {
                return Ok(());
            };
            match job {
                Bulk::ScanVanished => {
                    let page = self.ledger.vanished_drain(limit)?;
                    if page.len() < limit {
                        self.bulk.pop_front();
                    }
                    for (p, _) in page {
                        self.scan_vanished(p)?;
                    }
                }
                Bulk::Below { dir, to, after } => {
                    let (dir, to) = (dir.clone(), to.clone());
                    let after_key = after.clone();
                    let now = self.cfg.clock.now();
                    let page = self
                        .ledger
                        .page_under(&dir, after_key.as_deref(), limit, now)?;
                    let done = page.len() < limit;
                    if let Some(Bulk::Below { after, .. }) = self.bulk.front_mut() {
                        *after = page.last().map(|(p, _)| p.clone());
                    }
                    if done {
                        self.bulk.pop_front();
                    }
                    for (p, e) in page {
                        match &to {
                            None => self.gone_below(p, e),
                            Some(to) => self.moved_below(&dir, to, p, e),
                        }
                    }
                    if done {
                        if let Some(to) = to {
                            self.walk_dir(to);
                        }
                    }
                }
            }
        }
    }

    /// A store entry below a directory that vanished: deleted, unless it is still there (or
    /// back) or work on it is under way.
    fn gone_below(&mut self, p: PathBuf, e: Entry) {
        tracing::debug!(path = %p.display(), busy = self.busy.contains(&p), "below a vanished directory");
        if self.busy.contains(&p) {
            self.settle.touch(p, Origin::Live, self.cfg.clock.now());
            return;
        }
        if self.settle.contains(&p) || self.limbo.contains(&p) || is_file(&p) {
            return;
        }
        if self.limbo.len() < self.cfg.limits.limbo {
            // Held for long enough that the directory's new name, if it has one, is walked and
            // its files settle: the watcher may have seen the rename as two unrelated events
            // (notify pairs a rename only when both halves come in one read).
            let until = self.cfg.clock.now() + 3 * self.cfg.settle_delay;
            if let Some((older, e2)) = self.limbo.hold(p, e, until) {
                self.emit_deleted(older, e2);
            }
            return;
        }
        self.emit_deleted(p, e);
    }

    /// A store entry below directory `from`, which was renamed to `to`: moved, with its digests,
    /// when the same file is at the new place; otherwise both places are looked at afresh.
    fn moved_below(&mut self, from: &Path, to: &Path, p: PathBuf, e: Entry) {
        let Ok(rel) = p.strip_prefix(from) else {
            return;
        };
        let new = to.join(rel);
        tracing::debug!(path = %p.display(), to = %new.display(), "below a renamed directory");
        let moved = std::fs::symlink_metadata(&new)
            .ok()
            .map(|m| Stamp::from_metadata(&m));
        match moved {
            Some(s)
                if s.inode == e.stamp.inode
                    && s.same_content_as(&e.stamp)
                    && !self.busy.contains(&p)
                    && !self.busy.contains(&new)
                    && self.accepts(&new) =>
            {
                self.emit_move(
                    p,
                    new,
                    Entry {
                        stamp: s,
                        digest: e.digest,
                    },
                );
            }
            _ => {
                let now = self.cfg.clock.now();
                self.settle.touch(p, Origin::Live, now);
                self.settle.touch(new, Origin::Live, now);
            }
        }
    }

    /// A path the scan found vanished and could not pair: deleted if it is still gone.
    fn scan_vanished(&mut self, p: PathBuf) -> Result<(), EngineError> {
        if self.busy.contains(&p) || self.settle.contains(&p) {
            return Ok(());
        }
        let Some(e) = self.lookup(&p)? else {
            return Ok(());
        };
        if is_file(&p) && self.accepts(&p) {
            return Ok(());
        }
        self.emit_deleted(p, e);
        Ok(())
    }

    fn expire_limbo(&mut self, now: Instant) -> Result<(), EngineError> {
        for (path, entry) in self.limbo.expired(now) {
            // Back again under the same name: settling handles it as a change, not a delete.
            if !is_file(&path) && !self.busy.contains(&path) && self.lookup(&path)?.is_some() {
                self.emit_deleted(path, entry);
            }
        }
        Ok(())
    }

    fn queue_hash(&mut self, path: PathBuf, work: HashWork) {
        self.busy.insert(path.clone());
        self.hashing.queue(path, work);
    }

    /// Takes every hash outcome the pool has queued, woken or not.
    fn take_hashed(&mut self) {
        let now = self.cfg.clock.now();
        for done in self.hashing.take(now) {
            self.hashed(done);
        }
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
        if work.confirm_settled
            && !self
                .settle
                .mtime_is_old(h.stamp.mtime_ns, self.cfg.clock.wall())
        {
            // Found by a scan while it was still being written: settle it like any change.
            self.busy.remove(&path);
            self.settle.touch(path, work.origin, self.cfg.clock.now());
            return;
        }
        self.stats.hashed_files.inc();
        self.stats.hashed_bytes.inc_by(h.stamp.size);
        let entry = Entry {
            stamp: h.stamp,
            digest: h.digest,
        };
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
        // A scan queues new files without a stat, so the inode check against limbo happens here.
        if let Some((from, _)) = self.limbo.claim(&path, &entry.stamp) {
            self.emit_move(from, path, entry);
            return;
        }
        if self.scans.running() {
            if let Some(from) = self.take_vanished(&entry) {
                self.emit_move(from, path, entry);
                return;
            }
        }
        let kind = match origin {
            Origin::Scan => EventType::FileDiscovered,
            Origin::Live => EventType::FileCreated,
        };
        let ops = vec![Op::Put(path.clone(), entry)];
        self.emit(kind, path, None, &entry, ops);
    }

    /// A vanished store entry with the same size and XXH128 as a newly found file: it moved
    /// while we were not watching.
    fn take_vanished(&mut self, entry: &Entry) -> Option<PathBuf> {
        if !self.scans.may_pair() {
            return None;
        }
        let busy = &self.busy;
        match self
            .ledger
            .vanished_take(entry, |p| !busy.contains(p) && !is_file(p))
        {
            Ok(Some(from)) => {
                self.scans.paired();
                Some(from)
            }
            Ok(None) => None,
            Err(e) => {
                self.fatal.get_or_insert(e.into());
                None
            }
        }
    }

    // ---- output -------------------------------------------------------------------------------

    /// A file that moved from `from` to `to`: one event, and the store entry moves with it.
    fn emit_move(&mut self, from: PathBuf, to: PathBuf, entry: Entry) {
        let ops = vec![Op::Delete(from.clone()), Op::Put(to.clone(), entry)];
        self.emit(move_kind(&from, &to), to, Some(from), &entry, ops);
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
        let facts = FileFacts {
            size: entry.stamp.size,
            sha256_hex: entry.digest.sha256_hex(),
            xxh128_hex: entry.digest.xxh128_hex(),
        };
        let msg = Envelope::build(
            event,
            &self.cfg.instance_id,
            &self.cfg.data_dir,
            &path,
            old.as_deref(),
            facts,
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

    fn delivered(
        &mut self,
        out: Outgoing,
        result: Result<(), SinkError>,
    ) -> Result<(), EngineError> {
        match result {
            Ok(()) => {
                self.accepted(out);
                self.start_deliveries();
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
            // One INFO line per reported change, as the deployment guide shows them; WARNING
            // silences them.
            let message = log_message(out.event);
            match out.busy.get(1) {
                Some(old) => tracing::info!(
                    event_type = out.event.as_str(),
                    path = %path.display(),
                    old_path = %old.display(),
                    "{message}"
                ),
                None => tracing::info!(
                    event_type = out.event.as_str(),
                    path = %path.display(),
                    "{message}"
                ),
            }
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

/// A count as a gauge value (gauges are signed).
/// The message of the INFO line that reports an event ("File discovered", as the deployment
/// guide's example log line has it).
fn log_message(event: EventType) -> &'static str {
    match event {
        EventType::FileDiscovered => "File discovered",
        EventType::FileCreated => "File created",
        EventType::FileModified => "File modified",
        EventType::FileDeleted => "File deleted",
        EventType::FileMoved => "File moved",
        EventType::FileRenamed => "File renamed",
        _ => "File changed",
    }
}

/// `file_moved` when the parent directory changed, `file_renamed` when only the name did.
fn move_kind(from: &Path, to: &Path) -> EventType {
    if from.parent() == to.parent() {
        EventType::FileRenamed
    } else {
        EventType::FileMoved
    }
}

/// Whether a regular file is at `path` now. A store entry whose path holds anything else (nothing,
/// a directory, a FIFO) is gone.
fn is_file(path: &Path) -> bool {
    matches!(observe(path), Observed::File { .. })
}

/// `lstat` reduced to what settling needs.
fn observe(path: &Path) -> Observed {
    look(path).0
}

/// `lstat`, with the full stamp of a regular file.
fn look(path: &Path) -> (Observed, Option<Stamp>) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let s = Stamp::from_metadata(&m);
            let seen = Observed::File {
                size: s.size,
                mtime_ns: s.mtime_ns,
            };
            (seen, Some(s))
        }
        Ok(m) if m.is_dir() => (Observed::Dir, None),
        Ok(_) => (Observed::Other, None),
        Err(_) => (Observed::Missing, None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use publisher::StdoutSink;

    fn engine(state: &Path) -> Engine {
        engine_over(state, state)
    }

    /// An engine whose DATA_DIR verdict is taken from `root`, on a manual clock.
    fn engine_over(state: &Path, root: &Path) -> Engine {
        let cfg = EngineConfig {
            instance_id: "test".into(),
            data_dir: PathBuf::from("/nonexistent"),
            settle_delay: Duration::from_secs(1),
            filter: Filter::new(&[], &[], &[]).unwrap(),
            once: true,
            polling: false,
            limits: Limits::new(16, 16),
            rescan_every: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(1),
            clock: Clock::manual(),
        };
        let pool = HashPool::new(hasher::PoolConfig {
            threads: 1,
            capacity: 4,
            ..hasher::PoolConfig::default()
        })
        .unwrap();
        let (_hints, hints_rx) = mpsc::channel(1);
        Engine::new(
            cfg,
            Arc::new(Store::open(state).unwrap()),
            Arc::new(pool),
            Arc::new(Sink::Stdout(StdoutSink::new())),
            hints_rx,
            Arc::new(RescanFlag::default()),
            Arc::new(Stats::default()),
            Arc::new(sound_root(root)),
        )
    }

    /// A settled, sound root (the engine tests never delete, but scans ask).
    fn sound_root(dir: &Path) -> RootState {
        let root = RootState::new(dir);
        let crate::root::Observation::Directory { id, .. } = crate::root::observe(dir) else {
            panic!("{} is not a directory", dir.display())
        };
        root.settle(id);
        root
    }

    fn entry(inode: u64) -> Entry {
        Entry {
            stamp: Stamp {
                size: 3,
                mtime_ns: 1,
                inode,
                dev: 1,
                ctime_ns: 1,
            },
            digest: hasher::Digest::from_parts([7; 32], 7),
        }
    }

    /// An engine that knows `paths` (none of which exists on disk).
    fn knowing(state: &Path, paths: &[&str]) -> Engine {
        let mut e = engine(state);
        let ops = paths
            .iter()
            .zip(1..)
            .map(|(p, i)| Op::Put(PathBuf::from(p), entry(i)))
            .collect();
        e.ledger.record(ops);
        e
    }

    fn deletions(e: &Engine) -> usize {
        e.outbox.queued()
    }

    /// A single file that vanished is held for 1.5 settle delays, a file below a vanished
    /// directory for 3: long enough for a rename seen late to claim it, no longer.
    #[test]
    fn vanished_files_are_held_for_their_time_and_then_deleted() {
        let state = tempfile::tempdir().unwrap();
        let mut e = knowing(state.path(), &["/data/a", "/data/d/b"]);
        let clock = e.cfg.clock.clone();
        let ms = Duration::from_millis;

        e.vanished(Path::new("/data/a")).unwrap();
        e.gone_below(PathBuf::from("/data/d/b"), entry(2));
        assert_eq!(e.limbo.len(), 2);

        clock.advance(ms(1_499));
        e.expire_limbo(clock.now()).unwrap();
        assert_eq!(
            deletions(&e),
            0,
            "within 1.5 settle delays nothing is deleted"
        );
        clock.advance(ms(1));
        e.expire_limbo(clock.now()).unwrap();
        assert_eq!(deletions(&e), 1, "the single file is deleted at 1.5 delays");
        assert!(e.limbo.contains(Path::new("/data/d/b")));

        clock.advance(ms(1_499));
        e.expire_limbo(clock.now()).unwrap();
        assert_eq!(deletions(&e), 1);
        clock.advance(ms(1));
        e.expire_limbo(clock.now()).unwrap();
        assert_eq!(
            deletions(&e),
            2,
            "the file below the directory is deleted at 3 delays"
        );
        assert!(e.limbo.is_empty());
    }

    /// One bound covers both kinds of hold: beyond it a vanished file is deleted at once.
    #[test]
    fn the_limbo_bound_covers_single_files_and_files_below_a_directory() {
        let state = tempfile::tempdir().unwrap();
        let mut e = knowing(state.path(), &["/data/a", "/data/b", "/data/d/c"]);
        e.cfg.limits.limbo = 1;
        e.vanished(Path::new("/data/a")).unwrap();
        assert_eq!((e.limbo.len(), deletions(&e)), (1, 0));
        e.vanished(Path::new("/data/b")).unwrap();
        assert_eq!(
            (e.limbo.len(), deletions(&e)),
            (1, 1),
            "full: deleted at once"
        );
        e.gone_below(PathBuf::from("/data/d/c"), entry(3));
        assert_eq!(
            (e.limbo.len(), deletions(&e)),
            (1, 2),
            "full: deleted at once"
        );
    }

    /// DATA_DIR is looked at afresh at most every 100 ms, so a directory of deletions costs one
    /// look, and an unmount is seen within 100 ms.
    #[test]
    fn the_root_verdict_is_cached_for_a_tenth_of_a_second() {
        let state = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut e = engine_over(state.path(), &root);
        let clock = e.cfg.clock.clone();
        assert!(e.root_sound());
        std::fs::remove_dir(&root).unwrap();
        clock.advance(Duration::from_millis(99));
        assert!(e.root_sound(), "within 100 ms the last look is reused");
        clock.advance(Duration::from_millis(1));
        assert!(!e.root_sound(), "after 100 ms DATA_DIR is looked at afresh");
    }
}
