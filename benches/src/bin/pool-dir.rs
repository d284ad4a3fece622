//! The pool's bare rate over the regular files already in a directory: a yardstick for the
//! service's `--once` time on the same tree (the e2e harness's ceilings are the broker and
//! openssl; this one isolates the hash pool).
//!
//! The criterion bench `pool_small_files` hashes files it has just written. Files that have sat in
//! the page cache for a while read measurably slower, so a ratio between the service on an older
//! tree and the criterion figure compares cache states, not code. This runs the very same pool
//! over the very same files the service is timed on.
//!
//! ```text
//! cargo run --release -p benches --bin pool-dir -- DIR [RUNS]
//! ```
//! Prints the median seconds of RUNS passes (default 5) over every file, paths collected
//! beforehand, so the walk is not timed: only open, read, hash and close, as in the criterion bench.
//! `HASH_THREADS` sets the pool's threads, as it does the service's (default: one per core).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use hasher::{HashPool, PoolConfig};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: pool-dir DIR [RUNS]");
        return ExitCode::from(2);
    };
    let runs: usize = match args.next().map(|r| r.to_string_lossy().parse()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("pool-dir: RUNS must be a positive whole number");
            return ExitCode::from(2);
        }
    };
    let mut paths = Vec::new();
    for entry in walkdir::WalkDir::new(&dir) {
        match entry {
            Ok(e) if e.file_type().is_file() => paths.push(e.into_path()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("pool-dir: cannot list {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    }
    // The same thread count the service takes, so a ratio can be taken at any HASH_THREADS.
    let mut config = PoolConfig::default();
    if let Some(threads) = std::env::var("HASH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t: &usize| t > 0)
    {
        config.threads = threads;
    }
    let pool = match HashPool::new(config) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("pool-dir: cannot start the hash pool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        match benches::hash_all(&pool, &paths) {
            Ok(0) => secs.push(start.elapsed().as_secs_f64()),
            Ok(failed) => {
                eprintln!("pool-dir: {failed} files failed to hash");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("pool-dir: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    secs.sort_by(f64::total_cmp);
    println!("{:.4}", secs[secs.len() / 2]);
    ExitCode::SUCCESS
}
