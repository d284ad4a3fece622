//! restart-large: a restart over a library of 1,000,000 unchanged files, `--once --sink stdout`
//! from start to exit, beside one thread of `find` stating every file in the same rounds (the
//! floor). This is what every deploy, upgrade and crash recovery pays before changes flow again,
//! at the size where it hurts. The corpus is recorded once, untimed, by a first run that must
//! print every file exactly once; each timed run must print nothing. The stdout sink keeps the
//! broker out of it: the figure is the walk, the stat and the store.

use anyhow::{ensure, Result};

use super::{remove, restart::find_stat, secs, Ctx};
use crate::corpus::Tree;
use crate::report::median;
use crate::service;

/// Runs the scenario.
///
/// # Errors
/// A failed run, a first run that did not print every file once, or a restart that printed
/// anything.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.scale.restart_files;
    let data = ctx.fresh_dir("restart-large/data")?;
    let state = ctx.work.join("restart-large/state");
    remove(&state)?;
    // Small files: a restart never reads them, and a million of them still fit any scratch disk.
    let tree = Tree {
        count: n,
        size: 256,
        per_dir: 1000,
        seed_base: 1 << 32,
    };
    eprintln!("e2e: writing {n} files for restart-large");
    tree.write(&data)?;
    let instance = Ctx::instance("restart-large");
    let run = service::Run {
        stdout_sink: true,
        ..service::Run::batch(
            &ctx.bin,
            &data,
            &state,
            &ctx.url,
            "e2e-restart-large",
            &instance,
        )
    };
    let first = run.once()?;
    ensure!(
        first.printed == n as u64,
        "restart-large: the first run printed {} events for {n} files",
        first.printed
    );
    eprintln!(
        "e2e: restart-large: recorded {n} files in {:.2} s",
        secs(first.wall)
    );
    let (mut times, mut finds, mut cpus, mut peak) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for round in 0..ctx.rounds {
        let o = run.once()?;
        ensure!(
            o.printed == 0,
            "restart-large round {}: {} events printed, 0 expected",
            round + 1,
            o.printed
        );
        let f = find_stat(&data)?;
        eprintln!(
            "e2e: restart-large round {}: {:.2} s, {:.2} s of CPU (find -printf {:.2} s)",
            round + 1,
            secs(o.wall),
            o.cpu_s,
            secs(f)
        );
        times.push(secs(o.wall));
        cpus.push(o.cpu_s);
        finds.push(secs(f));
        peak = peak.max(o.peak_kib);
    }
    let (t, f) = (median(&times), median(&finds));
    let r = &mut ctx.report;
    r.versus(
        "restart-large",
        &format!("{n} unchanged files, start to exit"),
        t,
        "s",
        "find -printf, one thread",
        f,
        f / t,
        1.0,
    );
    r.info("restart-large", "CPU (user + system)", median(&cpus), "s");
    r.info("restart-large", "peak RSS", peak as f64 / 1024.0, "MiB");
    // The corpus is big; the next run writes its own.
    remove(&data)?;
    remove(&state)?;
    Ok(())
}
