//! initial-small: 100,000 files of 4 KiB, `--once --sink amqp` from start to exit (the exit
//! comes after the last confirm), fresh state. Beside it, in the same rounds, the bare lapin
//! publisher (see [`crate::bare`]) sending as many envelopes of the same size, with the same
//! window of 1,000, to the same queue. The first round's messages are all read back and checked.

use std::time::Duration;

use anyhow::{ensure, Result};
use publisher::{Envelope, EventType, FileFacts};

use super::{remove, secs, Ctx};
use crate::broker::{self, Topology};
use crate::report::median;
use crate::{bare, procfs, service, verify};

/// The service's publish window (its default), used for the bare publisher too.
const WINDOW: usize = 1000;

/// Runs the scenario; records its rows and leaves a state directory for restart-unchanged.
///
/// # Errors
/// A failed run or a failed check.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let rounds = ctx.rounds;
    let url = ctx.url.clone();
    let bin = ctx.bin.clone();
    let work = ctx.work.clone();
    let corpus = ctx.small_corpus()?;
    let n = corpus.paths.len();
    let data = corpus.data.clone();
    let paths = corpus.paths.clone();
    let topo = ctx.rt.block_on(Topology::declare(&url, "small"))?;
    let instance = Ctx::instance("small");

    // The bare publisher's messages: the same paths and sizes, digests of the right length.
    let facts = || FileFacts {
        size: 4096,
        sha256_hex: "a".repeat(64),
        xxh128_hex: "b".repeat(32),
    };
    let messages: Vec<_> = paths
        .iter()
        .map(|p| {
            Envelope::build(
                EventType::FileDiscovered,
                &instance,
                &data,
                p,
                None,
                facts(),
                chrono::Utc::now(),
            )
        })
        .collect();
    let prepared = bare::prepare(&messages)?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    // CPU per file, µs: the service's whole process, and the harness process while it runs
    // the bare publisher and nothing else.
    let mut our_cpu = Vec::new();
    let mut their_cpu = Vec::new();
    let mut other = Vec::new();
    let compare_bin = ctx.compare_bin.clone();
    let mut peak = 0;
    let mut state = work.join("small/state");
    for round in 0..rounds {
        ctx.rt.block_on(topo.purge())?;
        state = work.join(format!("small/state-{round}"));
        remove(&state)?;
        let run = service::Run::batch(&bin, &data, &state, &url, &topo.exchange, &instance);
        let outcome = run.once()?;
        let t = outcome.wall;
        peak = peak.max(outcome.peak_kib);
        our_cpu.push(outcome.cpu_s * 1e6 / n as f64);
        if round == 0 {
            let got = ctx.rt.block_on(topo.drain(
                &url,
                n,
                Duration::from_millis(500),
                Duration::from_secs(120),
            ))?;
            let envelopes = verify::parse(&got)?;
            let by_path = verify::exactly_once(&envelopes, &paths, &[EventType::FileDiscovered])?;
            verify::sample_digests(&by_path, &paths, 100)?;
        } else {
            let depth = ctx.rt.block_on(topo.depth())?;
            ensure!(
                depth as usize == n,
                "round {round}: {depth} messages in the queue, {n} expected"
            );
        }
        if let Some(other_bin) = &compare_bin {
            ctx.rt.block_on(topo.purge())?;
            let other_state = work.join("small/state-other");
            remove(&other_state)?;
            let t = service::Run {
                bin: other_bin,
                state: &other_state,
                instance: &Ctx::instance("small-other"),
                ..run.clone()
            }
            .once()?
            .wall;
            let depth = ctx.rt.block_on(topo.depth())?;
            ensure!(
                depth as usize == n,
                "--compare-bin: {depth} messages in the queue, {n} expected"
            );
            eprintln!(
                "e2e: initial-small round {}: --compare-bin {:.2} s",
                round + 1,
                secs(t)
            );
            other.push(secs(t));
        }
        ctx.rt.block_on(topo.purge())?;
        let me = std::process::id();
        let cpu0 = procfs::cpu_seconds(me)?;
        let b = ctx.rt.block_on(async {
            let channel = broker::connect(&url, "e2e-bare").await?;
            let t = bare::publish(&channel, &topo.exchange, &prepared, WINDOW).await?;
            let _ = channel.close(200, "done".into()).await;
            anyhow::Ok(t)
        })?;
        their_cpu.push((procfs::cpu_seconds(me)? - cpu0) * 1e6 / n as f64);
        let depth = ctx.rt.block_on(topo.depth())?;
        ensure!(
            depth as usize == n,
            "bare publisher: {depth} messages in the queue, {n} expected"
        );
        eprintln!(
            "e2e: initial-small round {}: ours {:.2} s, bare lapin {:.2} s; CPU per file {:.1} µs, bare lapin {:.1} µs",
            round + 1,
            secs(t),
            secs(b),
            our_cpu[round],
            their_cpu[round],
        );
        ours.push(secs(t));
        theirs.push(secs(b));
        if round + 1 < rounds {
            remove(&state)?;
        }
    }
    ctx.rt.block_on(topo.delete())?;

    let (o, b) = (median(&ours), median(&theirs));
    let r = &mut ctx.report;
    r.versus(
        "initial-small",
        &format!("{n} × 4 KiB, start to last confirm"),
        o,
        "s",
        "bare lapin publisher",
        b,
        b / o,
        0.9,
    );
    let (oc, bc) = (median(&our_cpu), median(&their_cpu));
    r.versus(
        "initial-small",
        "CPU per file (user + system)",
        oc,
        "µs",
        "bare lapin's CPU per message",
        bc,
        bc / oc,
        1.0 / 1.4,
    );
    r.info("initial-small", "files per second", n as f64 / o, "files/s");
    if let Some(other_bin) = &compare_bin {
        let c = median(&other);
        r.beside(
            "initial-small",
            "the same, beside another build",
            o,
            "s",
            &format!("--compare-bin {}", other_bin.display()),
            c,
            c / o,
        );
    }
    r.info("initial-small", "peak RSS", peak as f64 / 1024.0, "MiB");
    r.sizes.push(crate::report::SizePoint {
        file_size: 4096,
        files: n as u64,
        seconds: o,
    });
    if let Some(c) = ctx.small.as_mut() {
        c.state = Some((state, instance));
        c.ours_s = Some(o);
    }
    Ok(())
}
