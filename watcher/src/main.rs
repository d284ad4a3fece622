//! The `file-watcher` binary: parse the configuration, run, map failures to exit codes.

use std::process::ExitCode;

use clap::Parser as _;
use watcher::failure;
use watcher::Config;

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
    failure::install_panic_hook();
    let mut cfg = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("file-watcher: {} (see --help)", watcher::setting_error(&e));
            return ExitCode::from(failure::EXIT_CONFIG);
        }
    };
    if let Err(e) = cfg.validate() {
        eprintln!("file-watcher: {e}");
        return ExitCode::from(failure::EXIT_CONFIG);
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
            // One line: a failure that carries its own fix (a duplicate INSTANCE_ID, a queue
            // declared with other arguments, a damaged store) alone, anything else with its
            // context, each cause once.
            failure::say(&failure::headline(&e).unwrap_or_else(|| failure::one_line(&e)));
            ExitCode::from(failure::exit_code(&e))
        }
    }
}
