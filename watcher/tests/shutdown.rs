//! SIGTERM keeps its deadline, however much hashing is under way, and a second signal exits at
//! once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn signal(w: &Watcher, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, up to `limit`; returns its status and how long it took.
fn exit_within(w: &mut Watcher, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "still running {limit:?} after the signal:\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_while_big_files_hash_exits_zero_within_the_deadline() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("small.flac"), b"small").unwrap();
    // Sparse 2 GiB files: no disk used, and minutes of hashing for a debug build.
    for i in 0..6 {
        std::fs::File::create(data.join(format!("big{i}.bin")))
            .unwrap()
            .set_len(2 << 30)
            .unwrap();
    }
    let mut w = Watcher::start(
        &data,
        state.path(),
        &["--shutdown-timeout", "2s", "--settle-delay", "1ms"],
    );
    assert_eq!(path_of(&w.next()), data.join("small.flac"));
    std::thread::sleep(Duration::from_millis(300));
    signal(&w, "-TERM");
    let (status, took) = exit_within(&mut w, Duration::from_secs(3));
    assert!(status.success(), "{status:?}\n{}", w.stderr_text());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        w.events.try_recv().is_err(),
        "a cancelled hash was published"
    );
}

/// Whether a thread of `pid` sleeps inside write(2) on its stdout (`/proc/PID/task/*/syscall`
/// names the call only for a thread that sleeps in it; a running one reads "running").
fn writing_to_stdout(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let calls = [libc::SYS_write.to_string(), libc::SYS_writev.to_string()];
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| {
            let mut f = s.split_whitespace();
            f.next().is_some_and(|n| calls.iter().any(|c| c == n)) && f.next() == Some("0x1")
        })
    })
}

#[test]
fn a_second_signal_exits_at_once() {
    let (_keep, data, state) = dirs();
    // More envelopes than a pipe holds (64 KiB), on a stdout nobody reads: the writes block, so
    // a graceful stop cannot finish (it would deliver the event it is writing first) and only a
    // second signal ends the run.
    for i in 0..1000 {
        std::fs::write(data.join(format!("track{i:04}.flac")), format!("{i}")).unwrap();
    }
    let (_read_end, write_end) = std::io::pipe().unwrap();
    let mut cmd = command(
        &data,
        state.path(),
        &["--shutdown-timeout", "60s", "--settle-delay", "1ms"],
    );
    cmd.stdout(std::process::Stdio::from(write_end));
    let mut child = cmd.spawn().unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&stderr);
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let (_never, events) = std::sync::mpsc::channel();
    let mut w = Watcher {
        child,
        events,
        stderr,
    };
    let start = Instant::now();
    while !writing_to_stdout(w.child.id()) {
        assert!(
            start.elapsed() < WAIT,
            "never blocked writing an envelope:\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&w, "-TERM");
    w.wait_log("shutdown requested");
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "a graceful stop ended without delivering the event it was writing"
    );
    signal(&w, "-TERM");
    let (status, _) = exit_within(&mut w, Duration::from_secs(3));
    assert_eq!(status.code(), Some(130), "{}", w.stderr_text());
}
