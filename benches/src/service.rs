//! The service under test: the real release binary, started as a user would start it, against
//! the real broker. The harness builds it (`cargo build --release -p watcher`, into
//! `CARGO_TARGET_DIR` when set) unless `E2E_BIN` names a binary to measure instead (for example
//! an older build, to compare two versions side by side).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};

/// The workspace root, from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where cargo puts its output: `CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The binary to measure: `E2E_BIN`, or a fresh release build of `file-watcher`.
///
/// # Errors
/// The build failed, or the binary is not where cargo said it would be.
pub fn binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("E2E_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "watcher",
            "--bin",
            "file-watcher",
        ])
        .current_dir(workspace_root())
        .status()
        .context("run cargo build")?;
    ensure!(status.success(), "cargo build --release -p watcher failed");
    let bin = target_dir().join("release").join("file-watcher");
    ensure!(bin.is_file(), "no binary at {}", bin.display());
    Ok(bin)
}

/// How one run of the service is set up.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The binary.
    pub bin: &'a Path,
    /// `DATA_DIR`.
    pub data: &'a Path,
    /// `STATE_DIR`.
    pub state: &'a Path,
    /// The broker.
    pub amqp_url: &'a str,
    /// The run's own exchange.
    pub exchange: &'a str,
    /// `INSTANCE_ID`; unique per run, since one broker allows one live connection per ID.
    pub instance: &'a str,
    /// `--once`: scan, report, exit.
    pub once: bool,
    /// `HTTP_ADDR`, for readiness; `off` when `None`.
    pub http: Option<SocketAddr>,
    /// `SETTLE_DELAY`, when not the default.
    pub settle: Option<Duration>,
    /// `SETTLE_FAST`, when not the default (`auto`).
    pub settle_fast: Option<&'a str>,
    /// `--sink stdout` instead of the broker; [`Run::once`] then counts the lines printed.
    pub stdout_sink: bool,
}

/// What one `--once` run took.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// From start to exit (the exit comes after the last confirm).
    pub wall: Duration,
    /// Peak RSS, KiB.
    pub peak_kib: u64,
    /// User plus system CPU of the process, seconds (its rusage once reaped).
    pub cpu_s: f64,
    /// Events printed, with the stdout sink (0 with the broker's).
    pub printed: u64,
}

impl<'a> Run<'a> {
    /// A `--once` run with the default settle delay and no HTTP endpoint: scan, report to
    /// `exchange`, exit.
    pub fn batch(
        bin: &'a Path,
        data: &'a Path,
        state: &'a Path,
        amqp_url: &'a str,
        exchange: &'a str,
        instance: &'a str,
    ) -> Self {
        Self {
            bin,
            data,
            state,
            amqp_url,
            exchange,
            instance,
            once: true,
            http: None,
            settle: None,
            settle_fast: None,
            stdout_sink: false,
        }
    }

    /// The command line. Logs go to stderr at WARNING, so a failure explains itself.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg("--data-dir")
            .arg(self.data)
            .arg("--state-dir")
            .arg(self.state)
            .args([
                "--sink",
                if self.stdout_sink { "stdout" } else { "amqp" },
                "--log-level",
                "WARNING",
                "--log-format",
                "text",
            ])
            .args(["--instance-id", self.instance, "--exchange", self.exchange])
            .arg("--http-addr")
            .arg(
                self.http
                    .map_or_else(|| "off".to_owned(), |a| a.to_string()),
            )
            .env("AMQP_URL", self.amqp_url)
            // The harness binds and drains a queue of its own for each run.
            .env("QUEUE", "")
            .stdin(Stdio::null())
            .stdout(if self.stdout_sink {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if self.once {
            cmd.arg("--once");
        }
        if let Some(s) = self.settle {
            cmd.arg("--settle-delay")
                .arg(format!("{}ms", s.as_millis()));
        }
        if let Some(f) = self.settle_fast {
            cmd.args(["--settle-fast", f]);
        }
        cmd
    }

    /// Starts the service.
    ///
    /// # Errors
    /// It could not be started.
    pub fn spawn(&self) -> Result<Child> {
        self.command()
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))
    }

    /// Runs with `--once` and waits: the wall time from start to exit, the peak RSS, the CPU
    /// the process used and, with the stdout sink, the events it printed.
    ///
    /// # Errors
    /// It could not be started, or exited with a failure.
    pub fn once(&self) -> Result<Outcome> {
        let before = crate::procfs::children_cpu_seconds()?;
        let start = Instant::now();
        let mut child = self.spawn()?;
        let sampler = crate::procfs::RssSampler::start(child.id(), Duration::from_millis(20));
        // Lines are counted as they come, so a full pipe never stalls the service.
        let counter = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let (mut buf, mut lines) = (vec![0u8; 1 << 16], 0u64);
                while let Ok(n @ 1..) = out.read(&mut buf) {
                    lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                }
                lines
            })
        });
        let status = child.wait()?;
        let wall = start.elapsed();
        let samples = sampler.finish();
        let printed = match counter {
            Some(c) => c
                .join()
                .map_err(|_| anyhow::anyhow!("the stdout counter panicked"))?,
            None => 0,
        };
        ensure!(status.success(), "file-watcher --once exited with {status}");
        Ok(Outcome {
            wall,
            peak_kib: samples.peak_kib,
            cpu_s: crate::procfs::children_cpu_seconds()? - before,
            printed,
        })
    }
}

/// A free local port for `HTTP_ADDR`.
///
/// # Errors
/// No port could be bound.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Whether `GET /health/ready` answers 200.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// `GET /metrics`: the Prometheus text.
///
/// # Errors
/// Nothing answers, or the answer is not a 200.
pub fn metrics(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    ensure!(
        text.starts_with("HTTP/1.") && text.get(9..12) == Some("200"),
        "GET /metrics: {}",
        text.lines().next().unwrap_or("")
    );
    Ok(text)
}

/// The value of one series in a Prometheus text, e.g. `file_watcher_settle_fast_files_total`
/// or `file_watcher_settle_fallback_total{reason="empty"}`.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every series of a family with one label, e.g. `labelled(text, "x_total", "reason")` for
/// the lines `x_total{reason="a"} 3`: each label value with its value.
pub fn labelled(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let head = format!("{name}{{{label}=\"");
    text.lines()
        .filter_map(|l| {
            let (value, rest) = l.strip_prefix(&head)?.split_once("\"}")?;
            Some((value.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// Polls `/health/ready` until it answers 200; returns how long that took.
///
/// # Errors
/// Not ready within `timeout`, or the process exited first.
pub fn wait_ready(child: &mut Child, addr: SocketAddr, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait()? {
            bail!("file-watcher exited with {status} before it was ready");
        }
        if ready(addr) {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("file-watcher was not ready within {timeout:?}")
}

/// Stops a running service as an orchestrator would (SIGTERM, a graceful drain) and waits.
///
/// # Errors
/// The signal could not be sent.
pub fn stop(child: &mut Child) -> Result<ExitStatus> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM {} failed", child.id());
    Ok(child.wait()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn series_and_labelled_read_the_prometheus_text() {
        let text = "# HELP x_total X.\n\
                    x_total{reason=\"empty\"} 2\n\
                    x_total{reason=\"hard_link\"} 0\n\
                    y_total 7\n\
                    y_total_other 9\n";
        assert_eq!(series(text, "y_total"), Some(7.0));
        assert_eq!(series(text, "x_total{reason=\"empty\"}"), Some(2.0));
        assert_eq!(series(text, "z_total"), None);
        assert_eq!(
            labelled(text, "x_total", "reason"),
            vec![("empty".to_owned(), 2.0), ("hard_link".to_owned(), 0.0)]
        );
        assert!(labelled(text, "y_total", "reason").is_empty());
    }
}
