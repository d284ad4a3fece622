//! initial-large: 8 files of 256 MiB, `--once --sink amqp`, fresh state. Beside it, in the same
//! rounds, the hashing ceiling on two cores: `openssl dgst -sha256` on the same files, two at a
//! time. The service computes SHA-256 and XXH3-128 in one read, so the ceiling is generous to
//! openssl (XXH3 costs about a tenth of SHA-NI's time). openssl's digests check ours, file by file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use publisher::EventType;

use super::{remove, secs, Ctx};
use crate::broker::Topology;
use crate::corpus::Tree;
use crate::report::{median, SizePoint};
use crate::{service, verify};

/// `openssl dgst -sha256 -r` over `paths`, two processes at a time; returns the wall time and
/// the digest of each path.
fn openssl(paths: &[PathBuf]) -> Result<(Duration, HashMap<PathBuf, String>)> {
    let start = Instant::now();
    let mut child = Command::new("xargs")
        .args(["-0", "-P2", "-n1", "openssl", "dgst", "-sha256", "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run xargs openssl")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        for p in paths {
            stdin.write_all(p.as_os_str().as_encoded_bytes())?;
            stdin.write_all(b"\0")?;
        }
    }
    let out = child.wait_with_output()?;
    let t = start.elapsed();
    ensure!(out.status.success(), "openssl dgst failed: {}", out.status);
    let mut digests = HashMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        // `-r` prints "<hex> *<path>".
        if let Some((hex, path)) = line.split_once(' ') {
            digests.insert(PathBuf::from(path.trim_start_matches('*')), hex.to_owned());
        }
    }
    Ok((t, digests))
}

/// Runs the scenario.
///
/// # Errors
/// A failed run or a failed check.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    super::ensure_tools(&[("openssl", "openssl")])?;
    let url = ctx.url.clone();
    let data = ctx.fresh_dir("large/data")?;
    let tree = Tree {
        count: ctx.scale.large_files,
        size: ctx.scale.large_size,
        per_dir: 1000,
        seed_base: 1_000_000,
    };
    eprintln!(
        "e2e: writing {} files of {} MiB",
        tree.count,
        tree.size >> 20
    );
    let paths = tree.write(&data)?;
    let topo = ctx.rt.block_on(Topology::declare(&url, "large"))?;
    let instance = Ctx::instance("large");
    let state = ctx.work.join("large/state");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..ctx.rounds {
        remove(&state)?;
        let t = service::Run::batch(&ctx.bin, &data, &state, &url, &topo.exchange, &instance)
            .once()?
            .wall;
        let got = ctx.rt.block_on(topo.drain(
            &url,
            paths.len(),
            Duration::from_millis(300),
            Duration::from_secs(60),
        ))?;
        let envelopes = verify::parse(&got)?;
        let by_path = verify::exactly_once(&envelopes, &paths, &[EventType::FileDiscovered])?;
        let (o, digests) = openssl(&paths)?;
        for p in &paths {
            let theirs = digests
                .get(p)
                .with_context(|| format!("openssl printed nothing for {}", p.display()))?;
            let ours = by_path
                .get(p)
                .map(|(_, e)| e.file_info.sha256_hash.as_str());
            ensure!(
                ours == Some(theirs.as_str()),
                "{}: sha256_hash {ours:?}, openssl {theirs}",
                p.display()
            );
        }
        if round == 0 {
            // XXH3 too, on one file: openssl has no XXH3.
            verify::sample_digests(&by_path, &paths, paths.len())?;
        }
        eprintln!(
            "e2e: initial-large round {}: ours {:.2} s, openssl ×2 {:.2} s",
            round + 1,
            secs(t),
            secs(o)
        );
        ours.push(secs(t));
        theirs.push(secs(o));
    }
    ctx.rt.block_on(topo.delete())?;
    remove(&ctx.work.join("large"))?;

    let (o, c) = (median(&ours), median(&theirs));
    let mib = (tree.count * tree.size) as f64 / f64::from(1u32 << 20);
    let r = &mut ctx.report;
    r.versus(
        "initial-large",
        &format!(
            "{} × {} MiB, start to last confirm",
            tree.count,
            tree.size >> 20
        ),
        o,
        "s",
        "openssl dgst -sha256, 2 at a time",
        c,
        c / o,
        0.9,
    );
    r.info("initial-large", "throughput", mib / o, "MiB/s");
    r.sizes.push(SizePoint {
        file_size: tree.size as u64,
        files: tree.count as u64,
        seconds: o,
    });
    ctx.openssl_mib_s = Some(mib / c);
    Ok(())
}
