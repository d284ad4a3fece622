//! A real `file-watcher` process on a real directory, and helpers to read what it prints.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod replay;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Watcher {
    pub child: Child,
    pub events: Receiver<serde_json::Value>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_file-watcher")
}

pub fn command(data: &Path, state: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--state-dir")
        .arg(state)
        .args([
            "--instance-id",
            "test-watcher",
            "--sink",
            "stdout",
            "--settle-delay",
            "400ms",
        ])
        .args(["--http-addr", "off", "--log-level", "DEBUG"])
        .args(extra)
        .env_remove("RABBITMQ_HOST")
        .env_remove("AMQP_URL")
        // The broker tests bind queues of their own: no shared default queue on the test
        // broker collecting every test's events. (tests/first_contact.rs sets QUEUE.)
        .env("QUEUE", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Watcher {
    pub fn start(data: &Path, state: &Path, extra: &[&str]) -> Self {
        Self::spawn(command(data, state, extra))
    }

    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("start file-watcher");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            events: rx,
            stderr,
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_ready(&self) {
        self.wait_log("scan finished");
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The next event, or a failure after the timeout.
    pub fn next(&self) -> serde_json::Value {
        self.events
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no event within {WAIT:?}; stderr:\n{}", self.stderr_text()))
    }

    /// Collects events until one satisfies `done`; returns all of them, that one last.
    pub fn until(&self, done: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let e = self.next();
            let stop = done(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
    }

    /// Creates a sentinel file and returns every event up to and including its creation:
    /// a barrier that proves nothing else was pending before it.
    pub fn barrier(&self, dir: &Path, name: &str) -> Vec<serde_json::Value> {
        let p = dir.join(name);
        std::fs::write(&p, name).unwrap();
        let mut all = self.until(|e| e["file_info"]["path"] == p.to_str().unwrap());
        all.pop();
        all
    }

    /// Takes events until the replayed `tree` equals the disk under `data` and has stayed equal,
    /// with no further event, for `quiet`. Fails after a minute with the difference, `context()`
    /// and the end of the log.
    pub fn converge(
        &self,
        tree: &mut replay::Tree,
        data: &Path,
        quiet: Duration,
        context: impl Fn() -> String,
    ) {
        let disk = replay::disk(data);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut equal_since: Option<Instant> = None;
        loop {
            while let Ok(e) = self.events.try_recv() {
                replay::apply(tree, &e);
                equal_since = None;
            }
            let diff = replay::diff(tree, &disk);
            if diff.is_empty() {
                if equal_since.get_or_insert_with(Instant::now).elapsed() >= quiet {
                    return;
                }
            } else {
                equal_since = None;
                if Instant::now() >= deadline {
                    let log = self.stderr_text();
                    let lines: Vec<_> = log.lines().collect();
                    panic!(
                        "the replayed events do not equal the disk:\n{}\n\n{}\n\nstderr (end):\n{}",
                        diff.join("\n"),
                        context(),
                        lines[lines.len().saturating_sub(80)..].join("\n")
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id() as i32;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let text = self.stderr_text();
        (status, text)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tool_digest(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(tool).args(args).arg(path).output().unwrap();
    assert!(out.status.success(), "{tool}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

pub fn event_type(e: &serde_json::Value) -> &str {
    e["event_type"].as_str().unwrap()
}

pub fn path_of(e: &serde_json::Value) -> PathBuf {
    PathBuf::from(e["file_info"]["path"].as_str().unwrap())
}

/// A canonical temporary DATA_DIR and a separate STATE_DIR.
pub fn dirs() -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().canonicalize().unwrap();
    let state = tempfile::tempdir().unwrap();
    (data, path, state)
}

/// Rewrites `path` with `content` (same size as before, as a tool would), then puts its mtime
/// back to what it was: only the ctime tells that the content changed.
pub fn rewrite_keeping_mtime(path: &Path, content: &[u8]) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    let since = before.duration_since(std::time::UNIX_EPOCH).unwrap();
    std::fs::write(path, content).unwrap();
    let status = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}.{:09}", since.as_secs(), since.subsec_nanos()))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), before);
}

/// One GET; `None` when nothing answers (yet).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A port nothing listens on, for a watcher's HTTP_ADDR. Taken below the kernel's ephemeral
/// range (32768 and up), where an outgoing connection of another test, or a port another
/// test just probed with `bind(0)`, could take it between this probe and the watcher's own
/// bind (CI failed once on that). One process never hands out the same port twice.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = u16::try_from(LOW + (start + n) % SPAN).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}
