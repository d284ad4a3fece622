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

#[test]
fn a_second_signal_exits_at_once() {
    let (_keep, data, state) = dirs();
    for i in 0..5 {
        std::fs::write(data.join(format!("f{i}.flac")), format!("{i}")).unwrap();
    }
    // Nothing listens on port 1: the events wait for confirms that never come, and a graceful
    // stop would wait the whole minute.
    let mut cmd = command(
        &data,
        state.path(),
        &[
            "--sink",
            "amqp",
            "--shutdown-timeout",
            "60s",
            "--settle-delay",
            "1ms",
        ],
    );
    cmd.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    let mut w = Watcher::spawn(cmd);
    w.wait_log("cannot connect to RabbitMQ");
    signal(&w, "-TERM");
    w.wait_log("shutdown requested");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "did not wait for its confirms"
    );
    signal(&w, "-TERM");
    let (status, _) = exit_within(&mut w, Duration::from_secs(3));
    assert_eq!(status.code(), Some(130), "{}", w.stderr_text());
}
