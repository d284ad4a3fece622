//! The `file-watcher` binary: parse the configuration, run, map failures to exit codes.

use std::process::ExitCode;

use clap::Parser as _;
use watcher::config::Config;

/// jemalloc instead of glibc's malloc. The pipeline thread allocates a handful of small strings
/// and paths per event and frees them a moment later, often on another thread; glibc spent 150 to
/// 350 instructions per call on that pattern, plus free-list consolidation, a quarter of the
/// pipeline thread's instructions (callgrind). With jemalloc, 10,000 small files run about 6%
/// faster and 100,000 about 12%, for more peak RSS: 34 to 44 MiB on 100,000 files, 58 to 71 MiB
/// on a million.
/// mimalloc was tried before and dropped: as fast, but it doubled peak RSS.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // `healthcheck` runs without the service's settings (no DATA_DIR): it only asks a running
    // instance, so it is dispatched before the service's arguments are parsed.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "healthcheck")
    {
        return ExitCode::from(watcher::healthcheck::main(std::env::args_os().skip(1)));
    }
    let mut cfg = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("file-watcher: {} (see --help)", setting_error(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cfg.validate() {
        eprintln!("file-watcher: {e}");
        return ExitCode::from(2);
    }
    // The engine runs on this thread, inside `block_on`, not on a worker: `watcher::run` awaits
    // it directly instead of spawning it, so its blocking calls (lstat, redb commits, stdout)
    // never hold up the HTTP endpoints, the broker connection or the timers, which the workers
    // drive. Two workers at least, also on one core, so that neither of those waits for the
    // other.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("file-watcher: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(watcher::run(cfg));
    // Blocking tasks (a scan's walk, a store commit) are not waited for past this: the pipeline
    // has already stopped them or committed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A second live instance with this INSTANCE_ID (ON_DUPLICATE=exit): exit 3 with one
            // line that names the ID, the conflict and the fix, and nothing else.
            if let Some(dup @ publisher::SinkError::Duplicate { .. }) = sink_error(&e) {
                eprintln!("file-watcher: {dup}");
                return ExitCode::from(3);
            }
            // A queue that exists with other arguments than QUEUE_TYPE's: a setting to fix,
            // one line naming both argument sets.
            if let Some(q @ publisher::SinkError::QueueMismatch { .. }) = sink_error(&e) {
                eprintln!("file-watcher: {q}");
                return ExitCode::from(2);
            }
            // A config error found late (STATE_DIR, INSTANCE_ID) is still a config error.
            let code = if e.downcast_ref::<watcher::config::ConfigError>().is_some() {
                2
            } else {
                1
            };
            tracing::error!(error = format!("{e:#}"), "file-watcher failed");
            eprintln!("file-watcher: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The sink's error behind `e`, at start-up (bare) or while running (inside the engine's).
fn sink_error(e: &anyhow::Error) -> Option<&publisher::SinkError> {
    e.downcast_ref::<publisher::SinkError>().or_else(|| {
        match e.downcast_ref::<watcher::engine::EngineError>() {
            Some(watcher::engine::EngineError::Sink(s)) => Some(s),
            _ => None,
        }
    })
}

/// One line for a setting clap refused, naming the environment variable (the name users set in
/// compose files and env files) and the flag: `invalid setting HINT_QUEUE (--hint-queue):
/// "0": 0 is not in 1..=1000000`. Anything else keeps clap's own first line.
fn setting_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => Some(a.clone()),
        Some(ContextValue::Strings(a)) => a.first().cloned(),
        _ => None,
    };
    // clap names an argument as `--flag <ENV_NAME>`: our value names are the variables.
    let named = arg.as_deref().and_then(|a| {
        let (flag, rest) = a.split_once(" <")?;
        Some((flag.to_owned(), rest.trim_end_matches('>').to_owned()))
    });
    match (e.kind(), named) {
        (ErrorKind::MissingRequiredArgument, Some((flag, env))) => {
            format!(
                "invalid setting {env}: not set; set {env} (or {flag}) to the directory to watch"
            )
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some((flag, env))) => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let why = std::error::Error::source(e).map_or_else(
                || match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(v)) => format!("use one of {}", v.join(", ")),
                    _ => "not a valid value".to_owned(),
                },
                ToString::to_string,
            );
            format!("invalid setting {env} ({flag}): {value:?}: {why}")
        }
        _ => {
            let text = e.render().to_string();
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .to_owned()
        }
    }
}
