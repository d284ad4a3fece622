//! A first run against a fresh broker loses nothing: the declared queue (`QUEUE`,
//! `QUEUE_TYPE`), unroutable messages held until a queue is bound (`ON_UNROUTABLE`), and
//! `--once`, which exits 0 only when every event was confirmed (`ONCE_TIMEOUT`, SIGTERM).
//!
//! Every test uses an exchange and queue of its own on the test broker (`AMQP_URL`) and deletes
//! them at the end; none stops the broker, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use broker::*;
use common::*;

/// A closed port on loopback: nothing listens on port 1 on a test machine.
const UNREACHABLE: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The watcher on the amqp sink, `--once`, publishing to `exchange` at `url`.
fn once(data: &Path, state: &Path, url: &str, exchange: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = command(
        data,
        state,
        &[
            "--sink",
            "amqp",
            "--exchange",
            exchange,
            "--once",
            "--settle-delay",
            "1ms",
            "--log-level",
            "INFO",
            "--shutdown-timeout",
            "2s",
        ],
    );
    cmd.env("AMQP_URL", url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last stderr line: the one-line verdict `main` prints after the log.
fn verdict(out: &Output) -> String {
    stderr(out)
        .lines()
        .rev()
        .find(|l| l.starts_with("file-watcher: "))
        .unwrap_or_else(|| panic!("no verdict line; stderr:\n{}", stderr(out)))
        .to_owned()
}

fn write_files(data: &Path, n: usize) -> BTreeSet<PathBuf> {
    (0..n)
        .map(|i| {
            let p = data.join(format!("track{i:02}.flac"));
            std::fs::write(&p, format!("audio {i}")).unwrap();
            p
        })
        .collect()
}

/// The paths of `file_discovered` messages, failing on anything else or on a path seen twice.
fn discovered(got: &[lapin::message::Delivery]) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    for d in got {
        let e = body(d);
        assert_eq!(e["event_type"], "file_discovered", "{e}");
        assert!(paths.insert(path_of(&e)), "delivered twice: {e}");
    }
    paths
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `path` until `done` holds for the answer, failing with the last one after `WAIT`.
fn poll_http(port: u16, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = http_get(port, path);
        if let Some((code, body)) = &got {
            if done(*code, body) {
                return (*code, body.clone());
            }
        }
        assert!(Instant::now() < deadline, "{path}: last answer {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fresh_exchange_without_a_queue_gets_every_event_into_the_declared_queue() {
    let rt = runtime();
    let (_keep, data, state) = dirs();
    let files = write_files(&data, 5);
    let (exchange, queue) = (unique("fw-first-ex"), unique("fw-first-q"));
    let admin = rt.block_on(Admin::connect());

    // Nothing exists on the broker: no exchange, no queue. The watcher declares both.
    let out = once(
        &data,
        state.path(),
        &amqp_url(),
        &exchange,
        &[("QUEUE", &queue)],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rt.block_on(admin.depth(&queue)), files.len() as u32);
    let got = rt.block_on(admin.take(&queue, files.len(), WAIT));
    assert_eq!(discovered(&got), files);

    // Declaring it again, as every other instance and every restart does, is harmless.
    std::fs::write(data.join("late.flac"), b"late").unwrap();
    let out = once(
        &data,
        state.path(),
        &amqp_url(),
        &exchange,
        &[("QUEUE", &queue)],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Only the new file: what the first run delivered is not sent again. (The run has ended,
    // so the depth is final.)
    assert_eq!(rt.block_on(admin.depth(&queue)), 1);
    let got = rt.block_on(admin.take(&queue, 1, WAIT));
    assert_eq!(discovered(&got), BTreeSet::from([data.join("late.flac")]));
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn without_a_queue_once_exits_1_and_the_next_run_delivers_everything() {
    let rt = runtime();
    let (_keep, data, state) = dirs();
    let files = write_files(&data, 3);
    let (exchange, queue) = (unique("fw-noq-ex"), unique("fw-noq-q"));
    let admin = rt.block_on(Admin::connect());
    let env = [("QUEUE", ""), ("ONCE_TIMEOUT", "2s")];

    let out = once(&data, state.path(), &amqp_url(), &exchange, &env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = verdict(&out);
    for part in [
        "3 events not confirmed",
        "unroutable: no queue bound for file.discovered (3 held)",
        "the next run",
    ] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }

    // A consumer binds its queue; the next run sends what the first could not.
    rt.block_on(admin.bound_queue(&exchange, &queue));
    let out = once(&data, state.path(), &amqp_url(), &exchange, &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = rt.block_on(admin.take(&queue, files.len(), WAIT));
    assert_eq!(discovered(&got), files);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn on_unroutable_drop_records_returned_events_as_delivered() {
    let rt = runtime();
    let (_keep, data, state) = dirs();
    write_files(&data, 2);
    let (exchange, queue) = (unique("fw-drop-ex"), unique("fw-drop-q"));
    let admin = rt.block_on(Admin::connect());
    let env = [("QUEUE", ""), ("ON_UNROUTABLE", "drop")];

    let out = once(&data, state.path(), &amqp_url(), &exchange, &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dropped (ON_UNROUTABLE=drop)"),
        "{}",
        stderr(&out)
    );
    // Dropped means recorded: a later run with a queue has nothing to send.
    rt.block_on(admin.bound_queue(&exchange, &queue));
    let out = once(&data, state.path(), &amqp_url(), &exchange, &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rt.block_on(admin.depth(&queue)), 0);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn held_events_reach_a_queue_bound_late_and_readiness_says_why_meanwhile() {
    let rt = runtime();
    let (_keep, data, state) = dirs();
    let files = write_files(&data, 4);
    let (exchange, queue) = (unique("fw-late-ex"), unique("fw-late-q"));
    let admin = rt.block_on(Admin::connect());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = command(
        &data,
        state.path(),
        &[
            "--sink",
            "amqp",
            "--exchange",
            &exchange,
            "--settle-delay",
            "1ms",
            "--http-addr",
            &addr,
        ],
    );
    cmd.env("AMQP_URL", amqp_url()).env("QUEUE", "");
    let w = Watcher::spawn(cmd);

    // No queue: the events are held, and readiness names the routing key.
    let (code, ready) = poll_http(port, "/health/ready", |_, b| {
        b.contains("unroutable: no queue bound for file.discovered (4 held)")
    });
    assert_eq!(code, 503, "{ready}");
    let (_, metrics) = poll_http(port, "/metrics", |_, b| {
        b.contains("file_watcher_unroutable_held 4")
    });
    assert!(metrics.contains("file_watcher_ready 0"), "{metrics}");

    // A consumer binds late: readiness clears once every held event is in, and each is in
    // once (the instance has stopped when the queue is counted).
    rt.block_on(admin.bound_queue(&exchange, &queue));
    let (code, ready) = poll_http(port, "/health/ready", |c, b| {
        c == 200 && b.contains("\"in_flight\":0")
    });
    assert!(ready.contains("\"reasons\":[]"), "{code} {ready}");
    let (_, metrics) = poll_http(port, "/metrics", |_, b| {
        b.contains("file_watcher_unroutable_held 0")
    });
    assert!(
        !metrics.contains("file_watcher_publishes_returned_total 0"),
        "the returns were counted: {metrics}"
    );
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("routable again"), "{log}");
    assert_eq!(rt.block_on(admin.depth(&queue)), files.len() as u32);
    let got = rt.block_on(admin.take(&queue, files.len(), WAIT));
    assert_eq!(discovered(&got), files);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn once_with_the_broker_unreachable_exits_1_within_once_timeout() {
    let (_keep, data, state) = dirs();
    write_files(&data, 3);
    let started = Instant::now();
    let out = once(
        &data,
        state.path(),
        UNREACHABLE,
        "fw-unreachable",
        &[("ONCE_TIMEOUT", "3s")],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = verdict(&out);
    for part in [
        "3 events not confirmed",
        "RabbitMQ unreachable at amqp://guest:***@127.0.0.1:1",
        "for 3s",
    ] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }
    // ONCE_TIMEOUT bounds the wait; the rest is start-up and the exit (SHUTDOWN_TIMEOUT is not
    // waited for: the broker is known to confirm nothing).
    assert!(
        took < Duration::from_secs(3 + 10),
        "took {took:?}:\n{}",
        stderr(&out)
    );
    // Nothing was recorded as delivered: the store still reports them as new next time.
    let out = command(&data, state.path(), &["--once"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("\"file_discovered\"").count(), 3, "{stdout}");
}

#[test]
fn sigterm_during_once_with_unconfirmed_events_exits_1() {
    let (_keep, data, state) = dirs();
    write_files(&data, 3);
    let port = free_port();
    let mut cmd = once(
        &data,
        state.path(),
        UNREACHABLE,
        "fw-sigterm",
        &[("ONCE_TIMEOUT", "10m")],
    );
    cmd.args(["--http-addr", &format!("127.0.0.1:{port}")]);
    let w = Watcher::spawn(cmd);
    // The three events wait on the (absent) broker.
    poll_http(port, "/health", |_, b| b.contains("\"in_flight\":3"));
    let (status, log) = w.stop();
    assert_eq!(status.code(), Some(1), "{log}");
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("file-watcher: "))
        .unwrap_or_else(|| panic!("no verdict line:\n{log}"));
    for part in ["SIGTERM", "3 events not confirmed"] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }
}

#[test]
fn a_queue_declared_with_other_arguments_exits_2_naming_both() {
    let rt = runtime();
    let (_keep, data, state) = dirs();
    write_files(&data, 1);
    let (exchange, queue) = (unique("fw-mismatch-ex"), unique("fw-mismatch-q"));
    let admin = rt.block_on(Admin::connect());

    // A quorum queue, declared by a first instance.
    let out = once(
        &data,
        state.path(),
        &amqp_url(),
        &exchange,
        &[("QUEUE", &queue), ("QUEUE_TYPE", "quorum")],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rt.block_on(admin.depth(&queue)), 1);

    // A second one configured for a classic queue of that name: a setting to fix, exit 2.
    let (_keep2, data2, state2) = dirs();
    write_files(&data2, 1);
    let out = once(
        &data2,
        state2.path(),
        &amqp_url(),
        &exchange,
        &[("QUEUE", &queue), ("QUEUE_TYPE", "classic")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = verdict(&out);
    for part in [
        queue.as_str(),
        "x-queue-type=classic",
        "'quorum'",
        "QUEUE_TYPE",
    ] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    // Nothing of the second instance was published.
    assert_eq!(rt.block_on(admin.depth(&queue)), 1);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}
