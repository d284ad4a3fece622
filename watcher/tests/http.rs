//! The HTTP endpoints of a running instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn get(port: u16, path: &str) -> (u16, String) {
    http_get(port, path).unwrap()
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

/// The bound on events past the settle stage with `--publish-window 10`: 2 × max(window, 256).
const BACKLOG: i64 = 2 * 256;

/// An instance whose broker never answers (nothing listens on port 1, so every connection
/// attempt fails at once), with a small publish window and a 1 ms settle delay, once it has
/// said so.
fn without_broker(data: &Path, state: &Path, port: u16, extra: &[&str]) -> Watcher {
    let http = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--sink",
        "amqp",
        "--shutdown-timeout",
        "1s",
        "--publish-window",
        "10",
        "--settle-delay",
        "1ms",
        "--http-addr",
        &http,
    ];
    args.extend_from_slice(extra);
    let mut cmd = command(data, state, &args);
    cmd.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    let w = Watcher::spawn(cmd);
    w.wait_log("cannot connect to RabbitMQ");
    w
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
    const HELD_MAX: i64 = BACKLOG + 2 * 256 + 10;
    let (_keep, data, state) = dirs();
    for i in 0..3_000 {
        std::fs::write(data.join(format!("f{i:04}.bin")), format!("{i}")).unwrap();
    }
    let port = free_port();
    let w = without_broker(&data, state.path(), port, &[]);
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

/// Polls `path` until it answers `want`; returns the body.
fn wait_for(port: u16, path: &str, want: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match http_get(port, path) {
            Some((code, body)) if code == want => return body,
            _ => {}
        }
        assert!(Instant::now() < deadline, "{path} never answered {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `file-watcher healthcheck` against `addr`; returns its exit code and its line.
fn healthcheck(addr: &str) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(["healthcheck", "--http-addr", addr, "--timeout", "2s"])
        .env_remove("HTTP_ADDR")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[test]
fn every_metric_family_is_there_from_the_first_scrape_with_the_broker_down() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("a.flac"), b"a").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = command(
        &data,
        state.path(),
        &["--sink", "amqp", "--http-addr", &addr],
    );
    cmd.env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f");
    let _w = Watcher::spawn(cmd);
    let metrics = wait_for(port, "/metrics", 200);
    for line in [
        "file_watcher_info{instance_id=\"test-watcher\",version=\"",
        "watch_mode=\"auto\",sink=\"amqp\"} 1",
        "file_watcher_ready 0",
        "file_watcher_data_dir_healthy 1",
        "file_watcher_initial_scan_done 0",
        "file_watcher_broker_connected 0",
        "file_watcher_broker_blocked 0",
        "file_watcher_publishes_acked_total 0",
        "file_watcher_publishes_nacked_total 0",
        "file_watcher_publishes_returned_total 0",
        "file_watcher_broker_reconnects_total 0",
        "file_watcher_broker_connect_failures_total ",
        "file_watcher_events_total{event_type=\"file_discovered\"} 0",
        "file_watcher_events_total{event_type=\"file_deleted\"} 0",
        "file_watcher_file_errors_total{kind=\"permission_denied\"} 0",
        "file_watcher_hint_overflows_total 0",
        "file_watcher_rescans_total{cause=\"kernel_overflow\"} 0",
        "file_watcher_rescans_total{cause=\"hint_queue_full\"} 0",
        "file_watcher_rescans_total{cause=\"periodic\"} 0",
        "file_watcher_scan_running ",
        "file_watcher_scan_files_seen ",
        "file_watcher_scan_files_todo ",
        "file_watcher_pending_paths ",
        "file_watcher_in_flight_events ",
        "file_watcher_hash_duration_seconds_bucket{le=\"0.001\"} ",
        "file_watcher_event_latency_seconds_count 0",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
    // The healthcheck subcommand says why it is not ready, and fails.
    let (code, text) = healthcheck(&addr);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not connected to RabbitMQ"), "{text}");
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let (code, text) = healthcheck(&format!("127.0.0.1:{}", free_port()));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("nothing answers"), "{text}");
    let (code, text) = healthcheck("off");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("HTTP_ADDR is off"), "{text}");
}

#[test]
fn ready_does_not_wait_for_the_first_scan() {
    let (_keep, data, state) = dirs();
    // Written just now, with an hour's settle delay: the first scan cannot finish for an hour.
    std::fs::write(data.join("still-copying.flac"), b"partial").unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let w = Watcher::start(
        &data,
        state.path(),
        &["--http-addr", &addr, "--settle-delay", "1h"],
    );
    let body = wait_for(port, "/health/ready", 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["initial_scan_done"], false, "{v}");
    let (code, text) = healthcheck(&format!("0.0.0.0:{port}"));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ready (initial scan running)"), "{text}");
    let (_, health) = get(port, "/health");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["scan"]["running"], true, "{health}");
    let (_, metrics) = get(port, "/metrics");
    assert!(metrics.contains("file_watcher_scan_running 1"), "{metrics}");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_data_dir_renamed_away_is_not_ready_until_it_is_back() {
    let top = tempfile::tempdir().unwrap();
    let data = top.path().canonicalize().unwrap().join("music");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.flac"), b"a").unwrap();
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let w = Watcher::start(&data, state.path(), &["--http-addr", &addr]);
    w.wait_ready();
    wait_for(port, "/health/ready", 200);
    std::fs::rename(&data, top.path().join("music.away")).unwrap();
    let body = wait_for(port, "/health/ready", 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reasons = v["reasons"].to_string();
    assert!(reasons.contains("DATA_DIR"), "{v}");
    assert!(reasons.contains("is the volume mounted"), "{v}");
    assert_eq!(v["data_dir"]["sound"], false, "{v}");
    assert!(get(port, "/metrics")
        .1
        .contains("file_watcher_data_dir_healthy 0"));
    let line = w.wait_log("is missing");
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    let (code, text) = healthcheck(&addr);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DATA_DIR"), "{text}");
    std::fs::rename(top.path().join("music.away"), &data).unwrap();
    wait_for(port, "/health/ready", 200);
    w.wait_log("DATA_DIR is sound again");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}

/// CPU seconds the process has used (utime + stime from /proc, at 100 ticks a second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Files created live while the broker is away fill the backlog; the rest wait in the settle
/// set with their deadlines past. Waiting for a delivery must then cost nothing: a loop woken
/// by those past deadlines spun at a full core (and before that, at about 5% of one).
#[test]
fn waiting_for_the_broker_with_files_pending_costs_no_cpu() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("keep"), "k").unwrap();
    let port = free_port();
    let w = without_broker(&data, state.path(), port, &["--log-level", "WARNING"]);
    for i in 0..3_000 {
        std::fs::write(data.join(format!("live{i:04}.bin")), format!("{i}")).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = get(port, "/health");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let (pending, in_flight) = (
            v["pending_paths"].as_i64().unwrap(),
            v["in_flight_events"].as_i64().unwrap(),
        );
        if in_flight >= BACKLOG && pending > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog never filled: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = w.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    // Reconnect attempts and the health endpoint cost a few milliseconds; a loop that turns
    // on every timer tick costs a tenth of a second in 3 s, a spinning one 3 s.
    assert!(
        used < 0.06,
        "{used:.2} s of CPU in 3 s while waiting for the broker"
    );
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}
