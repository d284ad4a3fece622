//! burst: 50,000 files of 4 KiB land at once, by one `rename` of a prepared directory (as `mv`
//! does it, on the same filesystem) into the watched tree, then 5,000 of them are deleted at
//! once. Every change must be reported exactly once (a created or discovered event per file
//! moved in, a deleted event per file removed, nothing else); measured are the time from the
//! `rename` (and from the first unlink) until the consumer has every event, and the peak RSS.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use publisher::EventType;

use super::{secs, Ctx};
use crate::broker::{Received, Topology};
use crate::corpus::Tree;
use crate::procfs::RssSampler;
use crate::{service, verify};

/// The moment the last of `got` arrived, after `from`.
fn last_after(got: &[Received], from: Instant) -> f64 {
    got.iter()
        .map(|r| secs(r.at.saturating_duration_since(from)))
        .fold(0.0, f64::max)
}

/// Runs the scenario.
///
/// # Errors
/// A failed run or a failed check.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let url = ctx.url.clone();
    let settle = ctx.scale.settle;
    let (n, d) = (ctx.scale.burst_files, ctx.scale.burst_deletes);
    let data = ctx.fresh_dir("burst/data")?;
    let state = ctx.fresh_dir("burst/state")?;
    let incoming = ctx.fresh_dir("burst/incoming")?;
    let tree = Tree {
        count: n,
        size: 4096,
        per_dir: 1000,
        seed_base: 30_000_000,
    };
    eprintln!("e2e: writing {n} files of 4 KiB to move in");
    tree.write(&incoming)?;
    let target = data.join("incoming");
    let paths: Vec<PathBuf> = (0..n).map(|i| tree.path(&target, i)).collect();
    let doomed: Vec<PathBuf> = paths
        .iter()
        .step_by((n / d.max(1)).max(1))
        .take(d)
        .cloned()
        .collect();
    ensure!(doomed.len() == d, "cannot pick {d} of {n} files to delete");

    let topo = ctx.rt.block_on(Topology::declare(&url, "burst"))?;
    let mut consumer = ctx.rt.block_on(topo.consume(&url))?;
    let http = service::free_addr()?;
    let mut child = service::Run {
        bin: &ctx.bin,
        data: &data,
        state: &state,
        amqp_url: &url,
        exchange: &topo.exchange,
        instance: &Ctx::instance("burst"),
        once: false,
        http: Some(http),
        settle: Some(settle),
        settle_fast: None,
        stdout_sink: false,
    }
    .spawn()?;
    let pid = child.id();
    let timeout = Duration::from_secs(300);
    let quiet = settle + Duration::from_secs(2);
    let result = (|| {
        service::wait_ready(&mut child, http, Duration::from_secs(30))?;
        let sampler = RssSampler::start(pid, Duration::from_millis(50));
        let moved = Instant::now();
        std::fs::rename(&incoming, &target)?;
        let mut arrived = Vec::with_capacity(n);
        ctx.rt
            .block_on(consumer.collect(&mut arrived, n, quiet, timeout))?;
        let t_in = last_after(&arrived, moved);
        let deleting = Instant::now();
        for p in &doomed {
            std::fs::remove_file(p)?;
        }
        let mut deleted = Vec::with_capacity(d);
        ctx.rt
            .block_on(consumer.collect(&mut deleted, d, quiet, timeout))?;
        let t_del = last_after(&deleted, deleting);
        anyhow::Ok((arrived, t_in, deleted, t_del, sampler.finish()))
    })();
    let stopped = service::stop(&mut child);
    ctx.rt.block_on(consumer.close());
    ctx.rt.block_on(topo.delete())?;
    let (arrived, t_in, deleted, t_del, samples) = result?;
    ensure!(
        stopped?.success(),
        "file-watcher did not stop cleanly on SIGTERM"
    );

    let envelopes = verify::parse(&arrived)?;
    let by_path = verify::exactly_once(
        &envelopes,
        &paths,
        &[EventType::FileCreated, EventType::FileDiscovered],
    )?;
    // Sampled among the files still there.
    let kept: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
    verify::sample_digests(&by_path, &kept, 500)?;
    verify::exactly_once(
        &verify::parse(&deleted)?,
        &doomed,
        &[EventType::FileDeleted],
    )?;
    let peak = samples.peak_kib as f64 / 1024.0;
    eprintln!(
        "e2e: burst: {n} in {t_in:.2} s, {d} deleted in {t_del:.2} s, peak RSS {peak:.0} MiB"
    );
    let r = &mut ctx.report;
    r.info(
        "burst",
        &format!(
            "mv of {n} × 4 KiB: rename to last event (settle {} ms)",
            settle.as_millis()
        ),
        t_in,
        "s",
    );
    r.info(
        "burst",
        &format!("{d} deleted: first unlink to last event"),
        t_del,
        "s",
    );
    r.goal(
        "burst",
        "events, every change exactly once",
        (n + d) as f64,
        "events",
        "each once",
        true,
    );
    r.goal("burst", "peak RSS", peak, "MiB", "< 100 MiB", peak < 100.0);
    Ok(())
}
