//! live: the steady state. A writer creates 1 MiB files at a steady rate (100 per second for 60
//! seconds), each with one create, write and close, while the service runs as in production (not
//! `--once`). It runs twice: with the fast path on (the default, `SETTLE_FAST=auto`) and with it
//! off. The latency of a file is from the writer's `close()` to the harness's consumer receiving
//! its event; with the fast path off, the settle delay (the time the service must wait by
//! design) is subtracted. Both ends are stamped with the same monotonic clock in this process.
//! Also measured: the share of files on the fast path and each fallback (from `/metrics`), peak
//! RSS (`VmHWM`), steady RSS (median `VmRSS` after the first 10 s of writing), and the service's
//! CPU seconds and context switches per 1,000 events over the writing window.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use publisher::EventType;

use super::{secs, Ctx};
use crate::broker::{self, Received, Topology};
use crate::corpus::fill;
use crate::procfs::{self, RssSampler};
use crate::report::quantile;
use crate::{bare, service, verify};

/// Bytes per file.
const SIZE: usize = 1 << 20;

/// Writes `count` files into `dir` at `rate` per second; returns each path with the instant its
/// `close()` returned.
fn write_steadily(dir: PathBuf, count: usize, rate: u64) -> Result<Vec<(PathBuf, Instant)>> {
    let period = Duration::from_secs(1) / rate.max(1) as u32;
    let mut buf = vec![0u8; SIZE];
    let mut closed = Vec::with_capacity(count);
    let start = Instant::now();
    for i in 0..count {
        let due = start + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Content is made before the file is opened, so the file is written in one go.
        fill(&mut buf, 20_000_000 + i as u64);
        let path = dir.join(format!("live-{i:06}.bin"));
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&buf)?;
        drop(file); // close()
        closed.push((path, Instant::now()));
    }
    Ok(closed)
}

/// The publishing floor at the live rate, in CPU seconds per 1,000 messages: bare lapin sends
/// up to ten seconds' worth of the received envelopes, paced like the writer and each confirmed
/// before the next, from this process while it does nothing else.
fn publishing_floor(ctx: &Ctx, url: &str, exchange: &str, got: &[Received]) -> Result<f64> {
    let rate = ctx.scale.live_rate;
    let sample: Vec<publisher::Message> = verify::parse(got)?
        .into_iter()
        .take(rate as usize * 10)
        .map(|(_, e)| publisher::Message::new(e))
        .collect();
    let prepared = bare::prepare(&sample)?;
    let me = std::process::id();
    ctx.rt.block_on(async {
        let channel = broker::connect(url, "e2e-bare-paced").await?;
        let cpu0 = procfs::cpu_seconds(me)?;
        bare::publish_paced(&channel, exchange, &prepared, rate).await?;
        let cpu = procfs::cpu_seconds(me)? - cpu0;
        let _ = channel.close(200, "done".into()).await;
        Ok(cpu / prepared.len().max(1) as f64 * 1000.0)
    })
}

/// What one run of the writer against the service gave.
struct Phase {
    got: Vec<Received>,
    paths: Vec<PathBuf>,
    /// close → consumer, ms, per file.
    latencies: Vec<f64>,
    cpu_per_1000: f64,
    switches_per_event: f64,
    peak_kib: u64,
    steady_kib: u64,
    metrics: String,
}

/// Runs the writer against a fresh service with `SETTLE_FAST=fast`. The run's exchange and
/// queue are returned too, still there for the publishing floor.
fn phase(ctx: &mut Ctx, fast: &str) -> Result<(Phase, Topology)> {
    let url = ctx.url.clone();
    let settle = ctx.scale.settle;
    let count = (ctx.scale.live_seconds * ctx.scale.live_rate) as usize;
    let data = ctx.fresh_dir(&format!("live-{fast}/data"))?;
    let state = ctx.fresh_dir(&format!("live-{fast}/state"))?;
    let topo = ctx.rt.block_on(Topology::declare(&url, "live"))?;
    let mut consumer = ctx.rt.block_on(topo.consume(&url))?;
    let http = service::free_addr()?;
    let instance = Ctx::instance("live");
    let mut child = service::Run {
        bin: &ctx.bin,
        data: &data,
        state: &state,
        amqp_url: &url,
        exchange: &topo.exchange,
        instance: &instance,
        once: false,
        http: Some(http),
        settle: Some(settle),
        settle_fast: Some(fast),
        stdout_sink: false,
    }
    .spawn()?;
    let pid = child.id();
    let result = (|| {
        service::wait_ready(&mut child, http, Duration::from_secs(30))?;
        let sampler = RssSampler::start(pid, Duration::from_millis(100));
        let cpu0 = procfs::cpu_seconds(pid)?;
        let switches0 = procfs::context_switches(pid)?;
        let writing = Instant::now();
        let writer = {
            let dir = data.clone();
            let rate = ctx.scale.live_rate;
            std::thread::spawn(move || write_steadily(dir, count, rate))
        };
        let mut got = Vec::with_capacity(count);
        let timeout =
            Duration::from_secs(ctx.scale.live_seconds) + settle + Duration::from_secs(60);
        ctx.rt
            .block_on(consumer.collect(&mut got, count, Duration::ZERO, timeout))?;
        let cpu = procfs::cpu_seconds(pid)? - cpu0;
        let switches = procfs::context_switches(pid)?.saturating_sub(switches0);
        let last = got.iter().map(|r| r.at).max().unwrap_or(writing);
        // A little longer, for a duplicate to show up.
        ctx.rt.block_on(consumer.collect(
            &mut got,
            count,
            settle + Duration::from_secs(1),
            timeout,
        ))?;
        let metrics = service::metrics(http)?;
        let closed = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
        let samples = sampler.finish();
        let write_span = closed
            .last()
            .map_or(0.0, |(_, t)| secs(t.duration_since(writing)));
        eprintln!(
            "e2e: live (SETTLE_FAST={fast}): {count} files in {write_span:.1} s, last event {:.1} s after the first write; CPU {cpu:.2} s",
            secs(last.duration_since(writing))
        );
        let steady_from =
            writing + Duration::from_secs(10).min(Duration::from_secs(ctx.scale.live_seconds / 2));
        anyhow::Ok((got, closed, samples, cpu, switches, metrics, steady_from))
    })();
    let stopped = service::stop(&mut child);
    ctx.rt.block_on(consumer.close());
    let (got, closed, samples, cpu, switches, metrics, steady_from) = match result {
        Ok(r) => r,
        Err(e) => {
            ctx.rt.block_on(topo.delete())?;
            return Err(e);
        }
    };
    ensure!(
        stopped?.success(),
        "file-watcher did not stop cleanly on SIGTERM"
    );
    let paths: Vec<PathBuf> = closed.iter().map(|(p, _)| p.clone()).collect();
    let envelopes = verify::parse(&got)?;
    let by_path = verify::exactly_once(&envelopes, &paths, &[EventType::FileCreated])?;
    verify::sample_digests(&by_path, &paths, 50)?;
    let closed_at: HashMap<&PathBuf, Instant> = closed.iter().map(|(p, t)| (p, *t)).collect();
    let mut latencies = Vec::with_capacity(count);
    for (path, (at, _)) in &by_path {
        let close = closed_at
            .get(path)
            .context("an event for a file never written")?;
        latencies.push(secs(at.saturating_duration_since(*close)) * 1e3);
    }
    let phase = Phase {
        got,
        paths,
        latencies,
        cpu_per_1000: cpu / count as f64 * 1000.0,
        switches_per_event: switches as f64 / count as f64,
        peak_kib: samples.peak_kib,
        steady_kib: procfs::steady_kib(&samples, steady_from),
        metrics,
    };
    Ok((phase, topo))
}

/// Runs the scenario.
///
/// # Errors
/// A failed run or a failed check.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let url = ctx.url.clone();
    let settle = ctx.scale.settle;
    let settle_ms = secs(settle) * 1e3;
    let (on, topo) = phase(ctx, "auto")?;
    // Measured while the run's queue still exists.
    let paced = publishing_floor(ctx, &url, &topo.exchange, &on.got);
    ctx.rt.block_on(topo.delete())?;
    let paced_per_1000 = paced.context("the paced bare publisher")?;
    let (off, topo) = phase(ctx, "off")?;
    ctx.rt.block_on(topo.delete())?;
    let count = on.paths.len();

    // The floor under the CPU figure: one thread reading and hashing (SHA-256 and XXH3-128, the
    // service's crates) some of the same files, from the page cache as the service read them.
    let sample: Vec<&PathBuf> = off.paths.iter().take(500).collect();
    let start = Instant::now();
    for p in &sample {
        verify::digests(p)?;
    }
    let floor_per_1000 = secs(start.elapsed()) / sample.len().max(1) as f64 * 1000.0;
    let floors = floor_per_1000 + paced_per_1000;

    let fast_files =
        service::series(&on.metrics, "file_watcher_settle_fast_files_total").unwrap_or(0.0);
    let (p50, p99) = (quantile(&on.latencies, 0.5), quantile(&on.latencies, 0.99));
    let beyond: Vec<f64> = off.latencies.iter().map(|l| l - settle_ms).collect();
    let (off_p50, off_p99) = (quantile(&beyond, 0.5), quantile(&beyond, 0.99));
    let max = beyond.iter().copied().fold(f64::MIN, f64::max);
    eprintln!(
        "e2e: live: fast path on: close → consumer p50 {p50:.0} ms p99 {p99:.0} ms, {fast_files} of {count} files on the fast path; off: beyond settle p50 {off_p50:.0} ms p99 {off_p99:.0} ms max {max:.0} ms"
    );
    let r = &mut ctx.report;
    let what = format!("{count} × 1 MiB at {}/s", ctx.scale.live_rate);
    r.info("live", &format!("{what}: settle delay"), settle_ms, "ms");
    r.info("live", "fast path on: close → consumer, p50", p50, "ms");
    r.goal(
        "live",
        "fast path on: close → consumer, p99",
        p99,
        "ms",
        "≤ 350 ms",
        p99 <= 350.0,
    );
    r.goal(
        "live",
        "fast path on: share of files on it",
        fast_files / count.max(1) as f64 * 100.0,
        "%",
        "100 % (one writer, one close each)",
        fast_files as usize == count,
    );
    for (reason, n) in
        service::labelled(&on.metrics, "file_watcher_settle_fallback_total", "reason")
    {
        if n > 0.0 {
            r.info(
                "live",
                &format!("fast path on: fallback {reason}"),
                n,
                "files",
            );
        }
    }
    r.info(
        "live",
        "fast path off: close → consumer beyond settle, p50",
        off_p50,
        "ms",
    );
    r.goal(
        "live",
        "fast path off: close → consumer beyond settle, p99",
        off_p99,
        "ms",
        "≤ 100 ms",
        off_p99 <= 100.0,
    );
    r.info(
        "live",
        "fast path off: close → consumer beyond settle, max",
        max,
        "ms",
    );
    for (mode, p) in [("on", &on), ("off", &off)] {
        r.goal(
            "live",
            &format!("fast path {mode}: CPU per 1,000 events"),
            p.cpu_per_1000,
            "s",
            "≤ 1.25 × the two floors",
            p.cpu_per_1000 <= 1.25 * floors,
        );
        r.info(
            "live",
            &format!("fast path {mode}: context switches per event"),
            p.switches_per_event,
            "",
        );
    }
    r.beside(
        "live",
        "CPU per 1,000 events, beside the hashing floor",
        on.cpu_per_1000,
        "s",
        "one thread reading + SHA-256 + XXH3 of 1,000 MiB",
        floor_per_1000,
        floor_per_1000 / on.cpu_per_1000,
    );
    r.beside(
        "live",
        "CPU per 1,000 events, beside the publishing floor",
        on.cpu_per_1000,
        "s",
        &format!(
            "bare lapin, one confirmed message at a time at {}/s",
            ctx.scale.live_rate
        ),
        paced_per_1000,
        paced_per_1000 / on.cpu_per_1000,
    );
    r.info(
        "live",
        "CPU per 1,000 events, the two floors together",
        floors,
        "s",
    );
    r.info(
        "live",
        "peak RSS",
        on.peak_kib.max(off.peak_kib) as f64 / 1024.0,
        "MiB",
    );
    r.info("live", "steady RSS", on.steady_kib as f64 / 1024.0, "MiB");
    r.live_latency_ms = on.latencies;
    r.live_settle_ms = 0.0;
    Ok(())
}
