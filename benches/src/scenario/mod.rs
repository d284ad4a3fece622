//! The scenarios, one module each, and what they share: the broker, the binary, the scratch
//! directory, the report, and the sizes (`--quick` shrinks every one of them so the whole run
//! takes well under a minute: CI checks that the harness works, not that it is fast).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::corpus::Tree;
use crate::report::Report;

pub mod burst;
pub mod initial_large;
pub mod initial_small;
pub mod live;
pub mod restart;
pub mod restart_large;
pub mod shell;
pub mod sizes;

/// Every scenario, in the order `all` runs them (restart and shell reuse initial-small's corpus).
pub const ALL: [&str; 8] = [
    "initial-small",
    "restart-unchanged",
    "restart-large",
    "shell",
    "initial-large",
    "sizes",
    "live",
    "burst",
];

/// How big each scenario is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// initial-small, restart-unchanged and shell: files of 4 KiB.
    pub small_files: usize,
    /// restart-large: unchanged files, recorded once and then restarted over.
    pub restart_files: usize,
    /// initial-large: files of `large_size`.
    pub large_files: usize,
    /// Bytes per initial-large file.
    pub large_size: usize,
    /// live: seconds of writing at `live_rate` files per second of 1 MiB.
    pub live_seconds: u64,
    /// live: files per second.
    pub live_rate: u64,
    /// burst: files moved in, then files deleted.
    pub burst_files: usize,
    /// burst: files deleted afterwards.
    pub burst_deletes: usize,
    /// shell: lines published one `amqp-publish` process each (the per-line cost is
    /// extrapolated to the whole corpus: 100,000 processes would take minutes).
    pub shell_publish_lines: usize,
    /// sizes: `(bytes per file, files)` between 4 KiB and 256 MiB (those two come from
    /// initial-small and initial-large).
    pub sizes: &'static [(usize, usize)],
    /// The settle delay for live and burst (the service's default).
    pub settle: Duration,
}

impl Scale {
    /// The sizes the issue asks for.
    pub const FULL: Scale = Scale {
        small_files: 100_000,
        restart_files: 1_000_000,
        large_files: 8,
        large_size: 256 << 20,
        live_seconds: 60,
        live_rate: 100,
        burst_files: 50_000,
        burst_deletes: 5_000,
        shell_publish_lines: 1_000,
        sizes: &[(64 << 10, 4096), (1 << 20, 256), (16 << 20, 16)],
        settle: Duration::from_secs(2),
    };

    /// Everything small: a check that the harness works.
    pub const QUICK: Scale = Scale {
        small_files: 2_000,
        restart_files: 5_000,
        large_files: 4,
        large_size: 8 << 20,
        live_seconds: 2,
        live_rate: 100,
        burst_files: 2_000,
        burst_deletes: 200,
        shell_publish_lines: 20,
        sizes: &[(1 << 20, 32)],
        settle: Duration::from_secs(2),
    };
}

/// initial-small's corpus and what its run left behind, for the scenarios that reuse it.
#[derive(Debug)]
pub struct SmallCorpus {
    /// `DATA_DIR`.
    pub data: PathBuf,
    /// The files, in order.
    pub paths: Vec<PathBuf>,
    /// A state directory that has recorded the whole corpus, and the instance that wrote it.
    pub state: Option<(PathBuf, String)>,
    /// Our median time for it, seconds (initial-small).
    pub ours_s: Option<f64>,
}

/// What every scenario gets.
#[derive(Debug)]
pub struct Ctx {
    /// The async runtime for the broker side.
    pub rt: Runtime,
    /// `AMQP_URL`.
    pub url: String,
    /// The binary under test.
    pub bin: PathBuf,
    /// Scratch space, on the same filesystem as everything else the run writes (burst needs a
    /// rename into the tree).
    pub work: PathBuf,
    /// Sizes.
    pub scale: Scale,
    /// Rounds of each timed comparison; the median is reported.
    pub rounds: usize,
    /// The figures.
    pub report: Report,
    /// initial-small's corpus, made on first use.
    pub small: Option<SmallCorpus>,
    /// initial-large's ceiling, for the throughput plot.
    pub openssl_mib_s: Option<f64>,
    /// Another build of the service (`--compare-bin`), run beside ours in initial-small's
    /// rounds: two versions side by side on the same files, broker and minute.
    pub compare_bin: Option<PathBuf>,
}

impl Ctx {
    /// A fresh `INSTANCE_ID`: one broker accepts one live connection per ID.
    pub fn instance(tag: &str) -> String {
        format!(
            "e2e-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// A fresh, empty directory under the scratch space.
    ///
    /// # Errors
    /// It cannot be made.
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        remove(&dir)?;
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// initial-small's corpus, written on first use.
    ///
    /// # Errors
    /// It cannot be written.
    pub fn small_corpus(&mut self) -> Result<&mut SmallCorpus> {
        if self.small.is_none() {
            let data = self.fresh_dir("small/data")?;
            let tree = Tree {
                count: self.scale.small_files,
                size: 4096,
                per_dir: 1000,
                seed_base: 0,
            };
            eprintln!("e2e: writing {} files of 4 KiB", tree.count);
            let paths = tree.write(&data)?;
            self.small = Some(SmallCorpus {
                data,
                paths,
                state: None,
                ours_s: None,
            });
        }
        self.small
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("the small corpus was just made"))
    }
}

/// Removes a directory tree if it is there.
///
/// # Errors
/// It is there and cannot be removed.
pub fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Makes sure each `(command, Debian package)` is on PATH, installing the missing packages with
/// apt-get when it is there (as root, as on CI and the developers' machines), so the harness
/// works on a fresh machine.
///
/// # Errors
/// A command is missing and could not be installed.
pub fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let on_path = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("e2e: installing {}", missing.join(" "));
    let script = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {} >/dev/null",
        missing.join(" ")
    );
    let installed = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        installed && tools.iter().all(|(cmd, _)| on_path(cmd)),
        "missing {}; install the Debian packages {} (scripts/test does)",
        tools.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
        missing.join(" ")
    );
    Ok(())
}

/// Seconds as a float.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
