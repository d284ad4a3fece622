//! The HTTP endpoints of a running instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn health_and_metrics() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("a.flac"), b"a").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let w = Watcher::start(&data, state.path(), &["--http-addr", &addr]);
    assert_eq!(event_type(&w.next()), "file_discovered");
    w.wait_ready();
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(port, "/health/ready");
        if code == 200 {
            assert!(body.contains("\"ready\":true"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {code} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "/health/live").0, 200);
    let (code, body) = get(port, "/health");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["instance_id"], "test-watcher");
    assert_eq!(v["events_published"], 1);
    let (code, metrics) = get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("file_watcher_events_total{event_type=\"file_discovered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("file_watcher_hashed_files_total 1"),
        "{metrics}"
    );
}

#[test]
fn bad_http_addr_is_a_config_error() {
    let (_keep, data, state) = dirs();
    let out = command(&data, state.path(), &["--http-addr", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP_ADDR"));
}

#[test]
fn unreachable_broker_holds_work_back_not_in_memory() {
    // Nothing listens on port 1: every connection attempt fails at once, and nothing is ever
    // confirmed. The work past the settle stage must stop at its bound (2 x max(window, 256)
    // plus what the hashing stage holds); the rest of the scan waits in its bounded channel, with
    // the walker blocked, and the scan does not finish.
    //
    // What can become an event held in memory: the backlog bound, every hash started (the
    // engine keeps up to twice the pool's capacity of 256 started, so it can refill the pool
    // before working through a batch of results), and the publish window.
    const BACKLOG: i64 = 2 * 256;
    const HELD_MAX: i64 = BACKLOG + 2 * 256 + 10;
    let (_keep, data, state) = dirs();
    for i in 0..3_000 {
        std::fs::write(data.join(format!("f{i:04}.bin")), format!("{i}")).unwrap();
    }
    let port = free_port();
    let mut cmd = command(
        &data,
        state.path(),
        &[
            "--sink",
            "amqp",
            "--shutdown-timeout",
            "1s",
            "--publish-window",
            "10",
            "--settle-delay",
            "1ms",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
        ],
    );
    cmd.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    let w = Watcher::spawn(cmd);
    w.wait_log("cannot connect to RabbitMQ");
    let deadline = Instant::now() + WAIT;
    let (pending, in_flight, body) = loop {
        let (code, body) = get(port, "/health");
        assert_eq!(code, 503, "not ready without a broker: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (p, f) = (
            v["pending_paths"].as_i64().unwrap(),
            v["in_flight_events"].as_i64().unwrap(),
        );
        if f >= BACKLOG || Instant::now() > deadline {
            break (p, f, v);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // At the bound, and not past it.
    assert!(
        (BACKLOG..=HELD_MAX).contains(&in_flight),
        "{in_flight} events held in memory"
    );
    assert!(
        pending + in_flight < 3_000,
        "{pending} pending, {in_flight} held"
    );
    assert_eq!(body["initial_scan_done"], false, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (_, later) = get(port, "/health");
    let later: serde_json::Value = serde_json::from_str(&later).unwrap();
    assert!(
        later["in_flight_events"].as_i64().unwrap() <= HELD_MAX,
        "{later}"
    );
    assert!(!v_ready(port));
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("scan finished"), "{log}");
}

fn v_ready(port: u16) -> bool {
    get(port, "/health/ready").0 == 200
}
