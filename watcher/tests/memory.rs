//! Bounded memory (DESIGN.md, promise 4): a directory of 300,000 files moved out of DATA_DIR is
//! reported as 300,000 deletions without the process growing with the directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{dirs, event_type, Watcher};

const FILES: usize = 300_000;
const PEAK_LIMIT_KIB: u64 = 120 * 1024;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn take(w: &Watcher, n: usize, kind: &str) {
    for i in 0..n {
        let e = w
            .events
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("only {i} of {n} {kind} events arrived"));
        assert_eq!(event_type(&e), kind, "{e}");
    }
}

#[test]
fn a_directory_of_300_000_files_moved_out_keeps_peak_rss_under_120_mib() {
    let (_keep, data, state) = dirs();
    let outside = tempfile::tempdir_in(data.parent().unwrap()).unwrap();
    let big = data.join("big");
    for i in 0..FILES / 1000 {
        let sub = big.join(format!("{i:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..1000 {
            std::fs::write(sub.join(format!("{j:03}.flac")), [b'x'; 1]).unwrap();
        }
    }
    let mut cmd = Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(&data)
        .arg("--state-dir")
        .arg(state.path())
        .args(["--instance-id", "memory", "--sink", "stdout"])
        .args(["--settle-delay", "400ms", "--http-addr", "off"])
        .args(["--log-level", "WARNING"])
        .env_remove("RABBITMQ_HOST")
        .env_remove("AMQP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let w = Watcher::spawn(cmd);
    take(&w, FILES, "file_discovered");
    let pid = w.child.id();
    // What the start-up scan needed is not what this test measures: reset the peak.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kib(pid, "VmHWM:");

    std::fs::rename(&big, outside.path().join("big")).unwrap();
    take(&w, FILES, "file_deleted");
    let peak = status_kib(pid, "VmHWM:");
    eprintln!("peak RSS before the move {before} KiB, during it {peak} KiB");
    assert!(
        peak < PEAK_LIMIT_KIB,
        "peak RSS {peak} KiB while reporting {FILES} deletions (limit {PEAK_LIMIT_KIB} KiB)"
    );
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}
