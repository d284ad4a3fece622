//! sizes: throughput between the two ends initial-small (4 KiB) and initial-large (256 MiB)
//! measure, for the throughput-against-size plot. One round each, `--once --sink amqp`, fresh
//! state, every message read back and checked.

use std::time::Duration;

use anyhow::Result;
use publisher::EventType;

use super::{remove, secs, Ctx};
use crate::broker::Topology;
use crate::corpus::Tree;
use crate::report::SizePoint;
use crate::{service, verify};

/// Runs the scenario.
///
/// # Errors
/// A failed run or a failed check.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let url = ctx.url.clone();
    let topo = ctx.rt.block_on(Topology::declare(&url, "sizes"))?;
    for (k, &(size, count)) in ctx.scale.sizes.iter().enumerate() {
        let data = ctx.fresh_dir("sizes/data")?;
        let tree = Tree {
            count,
            size,
            per_dir: 1000,
            seed_base: 10_000_000 * (k as u64 + 1),
        };
        let paths = tree.write(&data)?;
        let state = ctx.work.join("sizes/state");
        remove(&state)?;
        let t = service::Run::batch(
            &ctx.bin,
            &data,
            &state,
            &url,
            &topo.exchange,
            &Ctx::instance("sizes"),
        )
        .once()?
        .wall;
        let got = ctx.rt.block_on(topo.drain(
            &url,
            count,
            Duration::from_millis(300),
            Duration::from_secs(60),
        ))?;
        let envelopes = verify::parse(&got)?;
        let by_path = verify::exactly_once(&envelopes, &paths, &[EventType::FileDiscovered])?;
        verify::sample_digests(&by_path, &paths, (count / 8).max(1))?;
        let point = SizePoint {
            file_size: size as u64,
            files: count as u64,
            seconds: secs(t),
        };
        eprintln!(
            "e2e: sizes: {count} × {} KiB: {:.2} s, {:.0} MiB/s",
            size >> 10,
            secs(t),
            point.mib_per_s()
        );
        ctx.report.info(
            "sizes",
            &format!("{count} × {} KiB", size >> 10),
            point.mib_per_s(),
            "MiB/s",
        );
        ctx.report.sizes.push(point);
    }
    ctx.rt.block_on(topo.delete())?;
    remove(&ctx.work.join("sizes"))?;
    Ok(())
}
