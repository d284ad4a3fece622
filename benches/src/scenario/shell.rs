//! shell: what a user would script instead of running the service, on initial-small's corpus:
//! `find | xargs sha256sum`, `find | xargs xxhsum -H2`, and one `amqp-publish` per line (Debian
//! `amqp-tools`). One process per line for 100,000 lines takes minutes, so the per-line cost is
//! measured on a sample and scaled to the corpus; the table says so. `amqp-publish -l` (one
//! process, one message per line of stdin, no confirms) is shown too, as the fastest a script gets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context as _, Result};

use super::{secs, Ctx};
use crate::broker::Topology;
use crate::verify;

/// Runs a shell pipeline and returns its wall time and stdout. Its stderr (xxhsum draws a
/// progress line there) is shown only when it fails.
fn timed(script: &str, dir: &Path) -> Result<(f64, String)> {
    let start = Instant::now();
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", script, "bash"])
        .arg(dir)
        .output()
        .with_context(|| format!("run {script}"))?;
    let t = start.elapsed();
    ensure!(
        out.status.success(),
        "`{script}` failed: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((secs(t), String::from_utf8(out.stdout)?))
}

/// Runs the scenario; initial-small must have run for the ratio (else only the times are shown).
///
/// # Errors
/// A tool is missing or fails, or its output is wrong.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    super::ensure_tools(&[
        ("sha256sum", "coreutils"),
        ("xxhsum", "xxhash"),
        ("amqp-publish", "amqp-tools"),
    ])?;
    let url = ctx.url.clone();
    let lines_to_publish = ctx.scale.shell_publish_lines;
    let corpus = ctx.small_corpus()?;
    let (data, n, first) = (
        corpus.data.clone(),
        corpus.paths.len(),
        corpus.paths[0].clone(),
    );
    let ours = corpus.ours_s;

    let (t_sha, sha_out) = timed(r#"find "$1" -type f -print0 | xargs -0 sha256sum"#, &data)?;
    let (t_xxh, xxh_out) = timed(r#"find "$1" -type f -print0 | xargs -0 xxhsum -H2"#, &data)?;
    ensure!(
        sha_out.lines().count() == n,
        "sha256sum printed {} lines for {n} files",
        sha_out.lines().count()
    );
    ensure!(
        xxh_out.lines().count() == n,
        "xxhsum printed {} lines for {n} files",
        xxh_out.lines().count()
    );
    // The tools agree with the harness's own digests (and so with the service's, checked elsewhere).
    let (_, sha, xxh) = verify::digests(&first)?;
    let line_for = |out: &str| {
        out.lines()
            .find(|l| l.ends_with(&*first.to_string_lossy()))
            .map(str::to_owned)
    };
    ensure!(
        line_for(&sha_out).is_some_and(|l| l.starts_with(&sha)),
        "sha256sum disagrees on {}",
        first.display()
    );
    ensure!(
        line_for(&xxh_out).is_some_and(|l| l.starts_with(&xxh)),
        "xxhsum -H2 disagrees on {}",
        first.display()
    );

    let topo = ctx.rt.block_on(Topology::declare(&url, "shell"))?;
    let sample: Vec<&str> = sha_out.lines().take(lines_to_publish).collect();
    let start = Instant::now();
    for line in &sample {
        let status = Command::new("amqp-publish")
            .arg(format!("--url={url}"))
            .args([
                "-e",
                &topo.exchange,
                "-r",
                "file.discovered",
                "-p",
                "-C",
                "application/json",
            ])
            .arg(format!("--body={line}"))
            .status()
            .context("run amqp-publish (Debian package amqp-tools)")?;
        ensure!(status.success(), "amqp-publish failed: {status}");
    }
    let per_line = secs(start.elapsed()) / sample.len().max(1) as f64;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let depth = ctx.rt.block_on(topo.depth())?;
    ensure!(
        depth as usize == sample.len(),
        "amqp-publish: {depth} messages arrived of {}",
        sample.len()
    );
    ctx.rt.block_on(topo.purge())?;

    // The fastest script: every line through one amqp-publish -l.
    let start = Instant::now();
    let mut child = Command::new("amqp-publish")
        .arg(format!("--url={url}"))
        .args(["-e", &topo.exchange, "-r", "file.discovered", "-p", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .context("run amqp-publish -l")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin.write_all(sha_out.as_bytes())?;
    }
    ensure!(child.wait()?.success(), "amqp-publish -l failed");
    let t_lines = secs(start.elapsed());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let depth = ctx.rt.block_on(topo.depth())?;
    ensure!(
        depth as usize == n,
        "amqp-publish -l: {depth} messages arrived of {n}"
    );
    ctx.rt.block_on(topo.delete())?;

    let script = t_sha + t_xxh + per_line * n as f64;
    let fastest = t_sha + t_xxh + t_lines;
    eprintln!("e2e: shell: sha256sum {t_sha:.2} s, xxhsum {t_xxh:.2} s, amqp-publish {:.1} ms per line, -l {t_lines:.2} s", per_line * 1e3);
    let r = &mut ctx.report;
    r.info(
        "shell",
        &format!("find | xargs sha256sum, {n} files"),
        t_sha,
        "s",
    );
    r.info("shell", "find | xargs xxhsum -H2", t_xxh, "s");
    r.info(
        "shell",
        &format!("amqp-publish per line (mean of {})", sample.len()),
        per_line * 1e3,
        "ms",
    );
    match ours {
        Some(o) => {
            r.versus(
                "shell",
                &format!("script: both sums + amqp-publish per line (scaled to {n})"),
                o,
                "s",
                "script",
                script,
                script / o,
                3.0,
            );
            r.beside(
                "shell",
                "script with one amqp-publish -l (no confirms)",
                o,
                "s",
                "script",
                fastest,
                fastest / o,
            );
        }
        None => {
            r.info(
                "shell",
                "script: both sums + amqp-publish per line",
                script,
                "s",
            );
            r.info("shell", "script with one amqp-publish -l", fastest, "s");
        }
    }
    Ok(())
}
