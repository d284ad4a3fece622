//! Bounded memory (DESIGN.md, promise 4): a directory of 300,000 files moved out of DATA_DIR,
//! live or while the watcher was stopped, is reported as 300,000 deletions without the process
//! growing with the directory.

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

/// The watcher on `data` with the stdout sink and logs at WARNING.
fn start(data: &std::path::Path, state: &std::path::Path) -> Watcher {
    let mut cmd = Command::new(common::bin());
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--state-dir")
        .arg(state)
        .args(["--instance-id", "memory", "--sink", "stdout"])
        .args(["--settle-delay", "400ms", "--http-addr", "off"])
        .args(["--log-level", "WARNING"])
        .env_remove("RABBITMQ_HOST")
        .env_remove("AMQP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Watcher::spawn(cmd)
}

fn assert_peak(what: &str, before: u64, peak: u64) {
    eprintln!("{what}: peak RSS before {before} KiB, during {peak} KiB");
    assert!(
        peak < PEAK_LIMIT_KIB,
        "{what}: peak RSS {peak} KiB while reporting {FILES} deletions (limit {PEAK_LIMIT_KIB} KiB)"
    );
}

#[test]
fn a_directory_of_300_000_files_moved_out_keeps_peak_rss_under_120_mib() {
    let (_keep, data, state) = dirs();
    let outside = tempfile::tempdir_in(data.parent().unwrap()).unwrap();
    let big = data.join("big");
    let away = outside.path().join("big");
    for i in 0..FILES / 1000 {
        let sub = big.join(format!("{i:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..1000 {
            std::fs::write(sub.join(format!("{j:03}.flac")), [b'x'; 1]).unwrap();
        }
    }
    // One file stays: an empty DATA_DIR whose store knows files looks like a volume that is not
    // mounted, and no deletion is published for it.
    std::fs::write(data.join("keep.txt"), b"keep").unwrap();
    let w = start(&data, state.path());
    take(&w, FILES + 1, "file_discovered");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");

    // Moved out while the watcher was stopped: the start-up sweep finds 300,000 vanished
    // entries, which stay in the store (not in memory) while the scan looks for their moves.
    std::fs::rename(&big, &away).unwrap();
    let w = start(&data, state.path());
    take(&w, FILES, "file_deleted");
    let pid = w.child.id();
    assert_peak("moved out while stopped", 0, status_kib(pid, "VmHWM:"));
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");

    // Back in while stopped, then moved out live.
    std::fs::rename(&away, &big).unwrap();
    let w = start(&data, state.path());
    take(&w, FILES, "file_discovered");
    let pid = w.child.id();
    // What the start-up scan needed is not what this part measures: reset the peak.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kib(pid, "VmHWM:");
    std::fs::rename(&big, &away).unwrap();
    take(&w, FILES, "file_deleted");
    assert_peak("moved out live", before, status_kib(pid, "VmHWM:"));
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}
