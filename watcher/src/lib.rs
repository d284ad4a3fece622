//! The file-watcher service: it reports every regular file under DATA_DIR, and every later
//! change, with SHA-256 and XXH3-128 of the settled content.
//!
//! `main` only parses a [`Config`] and calls [`run`]; [`failure`] turns what went wrong into one
//! line and an exit code, and [`healthcheck`] is the `file-watcher healthcheck` subcommand. The
//! benches open a [`Store`] directly. [`ConfigError`] and [`StoreError`] are what their methods
//! return. Everything else is private to the crate.
//!
//! The parts, in pipeline order (`engine` wires them together; `change` is the one change type
//! they pass along):
//! - `hints`: live changes from inotify, or polling, converted to changes as they arrive.
//! - `scan`: the walk that finds new and changed files, and the store sweep that finds vanished
//!   ones; `presence` answers the sweep with one directory listing per directory.
//! - `filter`: which files are reported (include and exclude globs, extensions).
//! - `settle`: a path is acted on only once it has been quiet for the settle delay.
//! - `pairing`: the one pairer: a file gone under one name and back under another becomes one
//!   move (the inode limbo, a renamed directory's entries, a scan's vanished set).
//! - `decide`: what to do about a settled path, a pure function of what was observed.
//! - `hashing`: files on their way through the `hasher` crate's pool, off the async runtime,
//!   each with the caller's own value; `handoff` brings results back with few wake-ups.
//! - `outbox`: events on their way to the sink, started as its window has room.
//! - `ledger`: the pipeline's view of the store, written only after the sink has an event.
//! - `store`: what was last reported for each path, kept in redb in STATE_DIR.
//!
//! Around the pipeline:
//! - `config`: every setting, as a flag and an environment variable; `limits`: every bound
//!   derived from it.
//! - `identity`: who this instance is, where its state lives, and the lock on it.
//! - `root`: whether DATA_DIR is still the directory the store describes.
//! - `http`, `health` and `stats`: the endpoints, what "ready" means, and the metrics.
//! - `logging`: JSON or plain log lines on stderr; `paths`: maps keyed by raw path bytes.
//! - `clock`: where every part takes `now` from, so tests drive time instead of sleeping.
//! - `once`: `--once`'s promise, exit 0 only when every event of the scan was confirmed.
//! - [`failure`]: one line per failure, and an exit code per kind of fix.
#![deny(missing_docs)]

mod change;
mod clock;
mod config;
mod decide;
mod dircache;
mod dirstat;
mod engine;
pub mod failure;
mod fast;
mod filter;
mod fstype;
mod handoff;
mod hashing;
mod health;
pub mod healthcheck;
mod hints;
mod http;
mod identity;
mod ledger;
mod limits;
mod logging;
mod once;
mod outbox;
mod pairing;
mod paths;
mod presence;
mod root;
mod scan;
mod scans;
mod settle;
mod stats;
mod store;

pub use config::{setting_error, Config, ConfigError};
pub use store::{Entry, Op, Store, StoreError};

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::SinkKind;

/// How often a standby tries STATE_DIR's lock again.
const STANDBY_LOCK_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the exit waits for the broker connection to close after the pipeline has stopped.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often DATA_DIR is checked for being the directory the state store describes: often
/// enough for readiness to turn within seconds of an unmount, rarely enough to cost nothing.
/// (Before a deletion the pipeline looks afresh.)
const ROOT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the service until SIGTERM/SIGINT (or, with `--once`, until the scan is reported).
///
/// Drive it with `Runtime::block_on` on a multi-threaded runtime: the engine runs on that
/// thread, and the workers keep the HTTP endpoints, the broker connection and the timers going
/// while it blocks.
///
/// # Errors
/// Start-up failures (state store, watcher, sink) and infrastructure failures while running.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    // Before STATE_DIR is created: a port in use leaves nothing behind.
    let http_listener = cfg.bind_http()?;
    let sink_kind = cfg.resolved_sink();
    let sink_word = match sink_kind {
        SinkKind::Amqp => "amqp",
        SinkKind::Stdout | SinkKind::Auto => "stdout",
    };
    // From here a SIGTERM ends the run with 0, also while standing by for STATE_DIR's lock.
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    // The endpoints answer at once: a standby waiting for the lock is alive, and says so.
    let http = match http_listener {
        Some(listener) => {
            let addr = listener.local_addr().ok();
            let state = Arc::new(http::HttpState::waiting(
                cfg.instance_id.as_deref(),
                &cfg.data_dir,
                cfg.watch_mode.as_str(),
                sink_word,
            ));
            http::serve(listener, Arc::clone(&state), cancel.clone())
                .context("cannot serve HTTP on HTTP_ADDR (set HTTP_ADDR=off to disable)")?;
            Some((state, addr))
        }
        None => None,
    };
    let Some(id) = establish_identity(&cfg, &cancel, http.as_ref().map(|(s, _)| &**s)).await?
    else {
        return Ok(());
    };
    logging::init(cfg.log_level, cfg.log_format, &id.instance_id);
    if let Some(notice) = &id.notice {
        tracing::info!("{notice}");
    }
    if let Some((_, Some(addr))) = &http {
        tracing::info!(addr = %addr, "HTTP endpoints at /health, /health/live, /health/ready, /metrics");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %cfg.data_dir.display(),
        state_dir = %id.state_dir.display(),
        sink = ?sink_kind,
        watch_mode = ?cfg.watch_mode,
        settle_delay_ms = cfg.settle_delay.as_millis() as u64,
        hash_threads = cfg.hash_threads(),
        scan_threads = cfg.scan_threads(),
        once = cfg.once,
        "file-watcher starting"
    );

    let stats = Arc::new(stats::Stats::default());
    let store = Arc::new(store::Store::open(&id.state_dir).context("cannot open the state store")?);
    stats
        .store_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let limits = limits::Limits::new(cfg.hint_queue as usize, cfg.publish_window as usize);
    let pool = Arc::new(
        hasher::HashPool::new(hasher::PoolConfig {
            threads: cfg.hash_threads(),
            capacity: limits.hash_jobs,
            ..hasher::PoolConfig::default()
        })
        .context("cannot start the hashing threads")?,
    );
    // The publisher has its own token, cancelled only after the pipeline has drained, so
    // outstanding confirms are still awaited during shutdown.
    let publisher_cancel = CancellationToken::new();
    let sink = match sink_kind {
        SinkKind::Amqp => {
            let amqp = amqp_config(&cfg, &id.instance_id)?;
            tracing::info!(
                broker = %amqp.redacted(),
                addresses = amqp.address_count(),
                shuffle = amqp.shuffle,
                on_duplicate = ?cfg.on_duplicate,
                exchange = %amqp.exchange,
                connection_name = %amqp.connection_name(),
                window = amqp.window,
                "publishing to RabbitMQ"
            );
            publisher::Sink::Amqp(publisher::AmqpPublisher::start(
                amqp,
                publisher_cancel.clone(),
            ))
        }
        SinkKind::Stdout | SinkKind::Auto => publisher::Sink::Stdout(publisher::StdoutSink::new()),
    };
    let sink = Arc::new(sink);

    let root = Arc::new(root::RootState::new(&cfg.data_dir));
    if let Some((state, _)) = &http {
        let health = Arc::new(health::Health {
            instance_id: id.instance_id.clone(),
            data_dir: cfg.data_dir.display().to_string(),
            watch_mode: cfg.watch_mode.as_str(),
            sink_kind: sink_word,
            stats: Arc::clone(&stats),
            sink: Arc::clone(&sink),
            root: Arc::clone(&root),
        });
        let mut registry = prometheus_client::registry::Registry::default();
        stats.register(&mut registry);
        registry.register_collector(Box::new(Arc::clone(&health)));
        state.run(health, registry);
    }

    // Nothing is scanned before this instance holds its INSTANCE_ID on the broker: a standby
    // waits here (not ready, with the reason) until the active instance goes away.
    if let publisher::Sink::Amqp(p) = &*sink {
        // `--once` does not wait for ever: a claim held by another instance, or a broker
        // that never answers the claim, ends the run after ONCE_TIMEOUT.
        let limit = if cfg.once {
            cfg.once_timeout
        } else {
            std::time::Duration::MAX
        };
        let claimed = tokio::select! {
            () = cancel.cancelled() => None,
            claimed = p.claimed() => Some(claimed),
            () = sleep_for(limit) => {
                publisher_cancel.cancel();
                let why = match p.standby_reason() {
                    Some(standby) => format!("standing by for {}: {standby}", humantime::format_duration(limit)),
                    None => once::stall_reason(&p.status(), &p.unroutable(), &p.config().redacted(), limit),
                };
                return Err(once::Incomplete { finished: false, unconfirmed: 0, why }.into());
            }
        };
        match claimed {
            None => {
                publisher_cancel.cancel();
                return Ok(());
            }
            Some(Err(e)) => {
                publisher_cancel.cancel();
                return Err(e.into());
            }
            Some(Ok(())) => {}
        }
    }

    // Nothing is scanned before DATA_DIR is known to be the directory the store describes.
    if !guard_data_dir(&cfg, &store, &root, &cancel).await? {
        publisher_cancel.cancel();
        return Ok(());
    }

    let (hint_tx, hint_rx) = tokio::sync::mpsc::channel(limits.hint_queue);
    let rescan = Arc::new(hints::RescanFlag::default());
    // Lives until the run ends: it holds the native watch and keeps the hint queue open.
    let watch = hints::start(&cfg, hint_tx, Arc::clone(&rescan), &stats)?;
    // When DATA_DIR is back after a fault: watch it anew and rescan.
    root::watch(
        Arc::clone(&root),
        ROOT_CHECK_EVERY,
        cancel.clone(),
        watch.on_data_dir_back(),
    );
    let fast = start_fast(&cfg, &watch, &id.state_dir, &stats);

    let engine = engine::Engine::new(
        engine::EngineConfig {
            instance_id: id.instance_id.clone(),
            data_dir: cfg.data_dir.clone(),
            settle_delay: cfg.settle_delay,
            filter: filter::Filter::new(&cfg.include, &cfg.exclude, &cfg.extensions)
                .map_err(|e| anyhow::anyhow!("invalid setting {}: {}", e.setting, e.problem))?
                .skipping_temporary(cfg.exclude_defaults),
            once: cfg.once,
            polling: watch.polling,
            limits,
            rescan_every: watch.rescan_every,
            shutdown_timeout: cfg.shutdown_timeout,
            clock: clock::Clock::system(),
            fast,
            scan_threads: cfg.scan_threads(),
        },
        store,
        pool,
        Arc::clone(&sink),
        hint_rx,
        rescan,
        Arc::clone(&stats),
        root,
    );
    // In `exit` mode a reconnect that finds the claim taken stops the publisher for good: stop
    // the pipeline too, and exit with that reason.
    let lost_claim = async {
        match &*sink {
            publisher::Sink::Amqp(p) => p.failure().await,
            _ => std::future::pending().await,
        }
    };
    let stall = match (&*sink, cfg.once) {
        (publisher::Sink::Amqp(_), true) => Some(spawn_once_watchdog(
            Arc::clone(&sink),
            Arc::clone(&stats),
            cfg.once_timeout,
            [cancel.clone(), publisher_cancel.clone()],
        )),
        _ => None,
    };
    let run = engine.run(cancel.clone());
    tokio::pin!(run);
    let result = tokio::select! {
        result = &mut run => result,
        failure = lost_claim => {
            cancel.cancel();
            let _ = tokio::time::timeout(cfg.shutdown_timeout, &mut run).await;
            Err(failure.into())
        }
    };
    publisher_cancel.cancel();
    if let publisher::Sink::Amqp(p) = &*sink {
        // Close the connection cleanly (the broker then sees a normal close, not a lost
        // client), but never let that hold the exit for long.
        if tokio::time::timeout(CLOSE_TIMEOUT, p.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                "the RabbitMQ connection did not close within {CLOSE_TIMEOUT:?}; exiting anyway"
            );
        }
    }
    let outcome = result?;
    if cfg.once {
        let stalled = stall.and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take());
        once::verdict(match stalled {
            Some(why) => once::Ending::Stalled {
                scanned: outcome.scanned,
                unconfirmed: outcome.unconfirmed,
                why,
            },
            None => once::Ending::Ran {
                finished: outcome.finished,
                unconfirmed: outcome.unconfirmed,
            },
        })?;
    }
    tracing::info!(events = stats.events_total(), "file-watcher stopped");
    Ok(())
}

/// Sleeps for `d`; `Duration::MAX` (no limit) never ends, where `sleep` would overflow.
async fn sleep_for(d: std::time::Duration) {
    match tokio::time::Instant::now().checked_add(d) {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// How often the `--once` watchdog looks at the publisher.
const ONCE_WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// `--once` with RabbitMQ: stops the run (both tokens) once events have waited on the broker
/// for `timeout` without a single confirmation, and leaves the reason in the returned slot
/// (see [`once`]). A run that keeps confirming, however slowly, is never stopped.
fn spawn_once_watchdog(
    sink: Arc<publisher::Sink>,
    stats: Arc<stats::Stats>,
    timeout: std::time::Duration,
    stop: [CancellationToken; 2],
) -> Arc<std::sync::Mutex<Option<String>>> {
    let reason = Arc::new(std::sync::Mutex::new(None));
    let slot = Arc::clone(&reason);
    tokio::spawn(async move {
        let publisher::Sink::Amqp(p) = &*sink else {
            return;
        };
        let mut tick = tokio::time::interval(ONCE_WATCH_EVERY);
        let mut confirmed = stats.events_total();
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop[0].cancelled() => return,
                _ = tick.tick() => {}
            }
            let status = p.status();
            let now_confirmed = stats.events_total();
            let waiting = status.in_flight > 0;
            if now_confirmed != confirmed || !waiting {
                confirmed = now_confirmed;
                quiet_since = tokio::time::Instant::now();
            }
            if once::stalled(waiting, quiet_since.elapsed(), timeout) {
                let why =
                    once::stall_reason(&status, &p.unroutable(), &p.config().redacted(), timeout);
                tracing::error!(in_flight = status.in_flight, "--once gives up: {why}");
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                for token in &stop {
                    token.cancel();
                }
                return;
            }
        }
    });
    reason
}

/// Resolves the identity and takes STATE_DIR's lock. With `ON_DUPLICATE=standby` and the amqp
/// sink, a lock held by a live process (a second replica on a shared state volume) is waited
/// for: the active replica's death frees the lock and its broker claim at the same moment.
///
/// While it waits, the HTTP endpoints (if any) answer as a standby, and `None` is returned
/// when shutdown is asked for.
///
/// # Errors
/// What [`identity::establish`] refuses; a busy lock only in `exit` mode or without a broker.
async fn establish_identity(
    cfg: &Config,
    cancel: &CancellationToken,
    http: Option<&http::HttpState>,
) -> anyhow::Result<Option<identity::Identity>> {
    let standby = cfg.on_duplicate == config::OnDuplicate::Standby
        && cfg.resolved_sink() == SinkKind::Amqp
        && !cfg.once;
    let mut told = false;
    loop {
        match identity::establish(
            &cfg.data_dir,
            cfg.state_dir.as_deref(),
            cfg.instance_id.as_deref(),
        ) {
            Err(e) if standby && identity::is_busy(&e) => {
                if !told {
                    let why = format!(
                        "standby: {}; this one takes over when it goes away (ON_DUPLICATE=standby)",
                        e.problem
                    );
                    // Logging starts once the identity is known: one plain line until then.
                    eprintln!("file-watcher: {why}");
                    if let Some(http) = http {
                        http.stand_by(why);
                    }
                    told = true;
                }
                tokio::select! {
                    () = cancel.cancelled() => {
                        eprintln!("file-watcher: shutdown requested while standing by; exiting");
                        return Ok(None);
                    }
                    () = tokio::time::sleep(STANDBY_LOCK_RETRY) => {}
                }
            }
            other => return Ok(Some(other?)),
        }
    }
}

/// Turns the fast path on where SETTLE_FAST and this machine allow it, and says so once at
/// start-up, with the reason when it is off; `file_watcher_settle_fast` shows the same.
fn start_fast(
    cfg: &config::Config,
    watch: &hints::WatchSetup,
    state_dir: &std::path::Path,
    stats: &stats::Stats,
) -> Option<fast::FastConfig> {
    let barrier_dir = state_dir.join("barrier");
    let started = if cfg.once {
        Err(fast::Off("--once reports a scan, not live changes".into()))
    } else {
        fast::start(
            cfg.settle_fast,
            watch.native(),
            cfg.settle_fast_delay,
            cfg.settle_delay,
            &barrier_dir,
        )
        .and_then(|f| {
            watch
                .watch_barrier(&f.barrier_dir)
                .map(|()| f)
                .map_err(fast::Off)
        })
    };
    match started {
        Ok(f) => {
            stats.settle_fast.set(1);
            let others = fast::can_lease_others();
            tracing::info!(
                delay_ms = f.delay.as_millis() as u64,
                lease_probe = f.leases,
                other_owners = others,
                "fast path on: a file is reported SETTLE_FAST_DELAY after its writer's last close{}",
                if f.leases && !others {
                    "; files of other owners wait the full SETTLE_DELAY (this user lacks CAP_LEASE)"
                } else {
                    ""
                }
            );
            Some(f)
        }
        Err(fast::Off(why)) => {
            tracing::info!(reason = %why, "fast path off: every file waits SETTLE_DELAY");
            None
        }
    }
}
/// Waits until DATA_DIR is the directory the store describes (see [`root`]), then records its
/// identity when that is new. Returns false when shutdown was asked for while waiting.
///
/// # Errors
/// With `--once`, a refused DATA_DIR; and store failures.
async fn guard_data_dir(
    cfg: &Config,
    store: &store::Store,
    root: &root::RootState,
    cancel: &CancellationToken,
) -> anyhow::Result<bool> {
    loop {
        let recorded = store.root_id()?.map(|(dev, ino)| root::RootId { dev, ino });
        let known = store.len()?;
        let dir = cfg.data_dir.clone();
        let (seen, empty) =
            tokio::task::spawn_blocking(move || (root::observe(&dir), root::is_empty(&dir)))
                .await?;
        match root::at_start(
            &cfg.data_dir,
            recorded,
            &seen,
            empty,
            known,
            cfg.accept_new_data_dir,
        ) {
            root::StartVerdict::Proceed => {
                if let Some(id) = recorded {
                    root.settle(id);
                }
                return Ok(true);
            }
            root::StartVerdict::Record(id) => {
                store.set_root_id(id.dev, id.ino)?;
                if recorded.is_some() {
                    tracing::warn!(
                        data_dir = %cfg.data_dir.display(),
                        dev = id.dev,
                        inode = id.ino,
                        "accepted a new DATA_DIR (--accept-new-data-dir); what is missing from it is reported deleted"
                    );
                }
                root.settle(id);
                return Ok(true);
            }
            root::StartVerdict::Refuse(why) => {
                if cfg.once {
                    anyhow::bail!("{why}");
                }
                tracing::error!(
                    data_dir = %cfg.data_dir.display(),
                    retry_in_s = cfg.poll_interval.as_secs_f64(),
                    "{why}; not scanning, and reporting not ready, until it is back"
                );
                root.refuse(why);
                tokio::select! {
                    () = cancel.cancelled() => return Ok(false),
                    () = tokio::time::sleep(cfg.poll_interval) => {}
                }
            }
        }
    }
}

/// Why the password file cannot be read, with the fix for the usual case: a file made root's
/// alone (`umask 077`) while the process runs as another user (uid 10001 in the image).
fn pass_file_problem(path: &std::path::Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        // /proc/self belongs to the process's own (effective) uid and gid; no unsafe libc call.
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(me) = std::fs::metadata("/proc/self") {
            let (uid, gid) = (me.uid(), me.gid());
            return format!(
                "{}: {e}; this process runs as uid {uid}, gid {gid}: make the file readable by \
                 it, e.g. chown 0:{gid} and chmod 0640",
                path.display()
            );
        }
    }
    format!("{}: {e}", path.display())
}

/// Builds the broker settings from AMQP_URL or the RABBITMQ_* settings.
fn amqp_config(cfg: &Config, instance_id: &str) -> anyhow::Result<publisher::AmqpConfig> {
    // A malformed address is a setting error (exit 2), named after the setting.
    let setting_error = |setting: &'static str| {
        move |e: publisher::SinkError| match e {
            publisher::SinkError::InvalidConfig(m) => anyhow::Error::new(config::ConfigError {
                setting,
                problem: m
                    .strip_prefix(setting)
                    .map_or(m.as_str(), |r| r.trim_start_matches(':').trim_start())
                    .to_owned(),
            }),
            other => other.into(),
        }
    };
    let mut amqp = match &cfg.amqp_url {
        Some(url) => {
            publisher::AmqpConfig::from_urls(url, instance_id).map_err(setting_error("AMQP_URL"))?
        }
        None => {
            let password = match &cfg.rabbitmq_pass_file {
                Some(path) => std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| config::ConfigError {
                        setting: "RABBITMQ_PASS_FILE",
                        problem: pass_file_problem(path, &e),
                    })?,
                None => cfg.rabbitmq_pass.clone(),
            };
            publisher::AmqpConfig::from_parts(
                &cfg.rabbitmq_host,
                cfg.rabbitmq_port,
                &cfg.rabbitmq_user,
                password,
                &cfg.rabbitmq_vhost,
                instance_id,
            )
            .map_err(setting_error("RABBITMQ_HOST"))?
        }
    };
    amqp.shuffle = cfg.rabbitmq_shuffle;
    amqp.claim = Some(cfg.on_duplicate.to_publisher());
    amqp.exchange = cfg.exchange.clone();
    amqp.watched_directory = cfg.data_dir.display().to_string();
    amqp.window = cfg.publish_window as usize;
    amqp.queue = (!cfg.queue.is_empty()).then(|| publisher::QueueSpec {
        name: cfg.queue.clone(),
        kind: cfg.queue_type.to_publisher(),
    });
    amqp.on_unroutable = cfg.on_unroutable.to_publisher();
    Ok(amqp)
}

/// The first SIGTERM or SIGINT starts a graceful stop; a second one exits at once (code 130),
/// for an operator who does not want to wait for the deadline.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        for first in [true, false] {
            tokio::select! {
                Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {}
                Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {}
            }
            if first {
                tracing::info!(
                    "shutdown requested: draining (a second SIGTERM or SIGINT exits at once)"
                );
                cancel.cancel();
            } else {
                tracing::warn!(
                    "second signal: exiting now; what was not confirmed is sent again at the next start"
                );
                std::process::exit(130);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_password_file_says_who_must_read_it() {
        let path = std::path::Path::new("/run/secrets/rabbitmq_pass");
        let me = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt as _;
            (m.uid(), m.gid())
        });
        let (uid, gid) = me.unwrap();
        let cases = [
            (
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                format!("this process runs as uid {uid}, gid {gid}: make the file readable by it, e.g. chown 0:{gid} and chmod 0640"),
            ),
            (
                std::io::Error::from(std::io::ErrorKind::NotFound),
                "/run/secrets/rabbitmq_pass: entity not found".to_owned(),
            ),
        ];
        for (err, want) in cases {
            let got = pass_file_problem(path, &err);
            assert!(got.starts_with("/run/secrets/rabbitmq_pass: "), "{got}");
            assert!(got.contains(&want), "{got} lacks {want}");
        }
        let missing = pass_file_problem(path, &std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!missing.contains("chmod"), "{missing}");
    }
}
