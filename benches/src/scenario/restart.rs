//! restart-unchanged: the instance restarts over initial-small's corpus, with the state the first
//! run left, and nothing changed. It must publish nothing; what is timed is `--once` from start to
//! exit, which bounds the time until ready (a live instance is ready once connected, before its
//! reconciliation scan ends). Beside it, each round, the floor: one thread of `find` stating every
//! file (`-printf '%s %T@ %C@ %i\n'`: size, mtime, ctime and inode, what our stamp holds).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::{secs, Ctx};
use crate::broker::Topology;
use crate::report::median;
use crate::service;

/// Runs the scenario (and initial-small's corpus and first run, untimed, if they are missing).
///
/// # Errors
/// A failed run, or a message published.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let url = ctx.url.clone();
    let bin = ctx.bin.clone();
    let work = ctx.work.clone();
    let topo = ctx.rt.block_on(Topology::declare(&url, "restart"))?;
    let corpus = ctx.small_corpus()?;
    let (data, n) = (corpus.data.clone(), corpus.paths.len());
    let (state, instance) = match corpus.state.clone() {
        Some(s) => s,
        None => {
            // No initial-small run before this one: record the corpus first (not timed).
            let state = work.join("small/state-restart");
            super::remove(&state)?;
            let instance = Ctx::instance("restart");
            service::Run::batch(&bin, &data, &state, &url, &topo.exchange, &instance).once()?;
            ctx.rt.block_on(topo.purge())?;
            (state, instance)
        }
    };
    let (mut times, mut finds) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds {
        let t = service::Run::batch(&bin, &data, &state, &url, &topo.exchange, &instance)
            .once()?
            .wall;
        // Let anything published reach the queue before counting.
        std::thread::sleep(Duration::from_millis(200));
        let depth = ctx.rt.block_on(topo.depth())?;
        ensure!(
            depth == 0,
            "restart round {}: {depth} messages published, 0 expected",
            round + 1
        );
        let f = find_stat(&data)?;
        eprintln!(
            "e2e: restart-unchanged round {}: {:.2} s (find -printf {:.2} s)",
            round + 1,
            secs(t),
            secs(f)
        );
        times.push(secs(t));
        finds.push(secs(f));
    }
    ctx.rt.block_on(topo.delete())?;
    let (t, f) = (median(&times), median(&finds));
    let r = &mut ctx.report;
    r.versus(
        "restart-unchanged",
        "start to exit, beside a stat of every file",
        t,
        "s",
        "find -printf, one thread",
        f,
        f / t,
        1.0,
    );
    r.goal(
        "restart-unchanged",
        &format!("{n} files, start to exit (--once)"),
        t,
        "s",
        "< 3 s",
        t < 3.0,
    );
    r.goal(
        "restart-unchanged",
        "messages published",
        0.0,
        "messages",
        "0",
        true,
    );
    Ok(())
}

/// One thread of `find` stating every regular file under `data`, output discarded.
///
/// # Errors
/// `find` missing or failing.
pub fn find_stat(data: &Path) -> Result<Duration> {
    let start = Instant::now();
    let status = Command::new("find")
        .arg(data)
        .args(["-type", "f", "-printf", "%s %T@ %C@ %i\\n"])
        .stdout(Stdio::null())
        .status()
        .context("running find")?;
    ensure!(
        status.success(),
        "find -printf over {} failed: {status}",
        data.display()
    );
    Ok(start.elapsed())
}
