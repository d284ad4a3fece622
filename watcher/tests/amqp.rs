//! The watcher publishing to a real RabbitMQ, including through a broker restart and a broker
//! that is down at start-up. The tests in this binary run one at a time: two of them stop the
//! broker, and every one of them restores it when it ends, failed or not. The tests that stop
//! or administer the broker use the suite's own node (`scripts/test-broker`); the others use
//! `AMQP_URL` when it is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker::*;
use common::*;
use lapin::types::AMQPValue;

static SERIAL: Mutex<()> = Mutex::new(());

/// An instance publishing to the test broker ([`amqp_url`]).
fn amqp_command(
    data: &std::path::Path,
    state: &std::path::Path,
    exchange: &str,
    extra: &[&str],
) -> std::process::Command {
    command_on(&amqp_url(), data, state, exchange, extra)
}

/// An instance publishing to the suite's own node ([`suite_url`]), for the tests that stop it.
fn suite_command(
    data: &std::path::Path,
    state: &std::path::Path,
    exchange: &str,
    extra: &[&str],
) -> std::process::Command {
    command_on(&suite_url(), data, state, exchange, extra)
}

fn command_on(
    url: &str,
    data: &std::path::Path,
    state: &std::path::Path,
    exchange: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = command(
        data,
        state,
        &[
            "--sink",
            "amqp",
            "--exchange",
            exchange,
            "--log-level",
            "INFO",
        ],
    );
    cmd.args(extra).env("AMQP_URL", url);
    cmd
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn header(d: &lapin::message::Delivery, key: &str) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[test]
fn once_publishes_every_file_with_the_contract_properties() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime();
    let (_keep, data, state) = dirs();
    for i in 0..50 {
        std::fs::write(data.join(format!("track{i:02}.mp3")), format!("audio {i}")).unwrap();
    }
    let (exchange, queue) = (unique("fw-ex"), unique("fw-q"));
    let admin = rt.block_on(Admin::connect());
    rt.block_on(admin.bound_queue(&exchange, &queue));

    let out = amqp_command(
        &data,
        state.path(),
        &exchange,
        &["--once", "--settle-delay", "1ms"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "the amqp sink must not print envelopes"
    );

    let got = rt.block_on(admin.take_until(&queue, Duration::from_secs(20), |g| g.len() >= 50));
    assert_eq!(got.len(), 50);
    for d in &got {
        let e = body(d);
        assert_eq!(d.routing_key.as_str(), "file.discovered");
        assert_eq!(e["event_type"], "file_discovered");
        assert_eq!(e["instance_id"], "test-watcher");
        assert_eq!(e["watched_directory"], data.to_str().unwrap());
        let p = std::path::PathBuf::from(e["file_info"]["path"].as_str().unwrap());
        assert_eq!(
            e["file_info"]["sha256_hash"],
            tool_digest("sha256sum", &[], &p)
        );
        let props = &d.properties;
        assert_eq!(
            props.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(props.app_id().as_ref().unwrap().as_str(), "file-watcher");
        assert_eq!(
            props.correlation_id().as_ref().unwrap().as_str(),
            e["correlation_id"].as_str().unwrap()
        );
        assert!(props.message_id().is_some());
        assert!(props.timestamp().is_some());
        assert_eq!(header(d, "instance_id").as_deref(), Some("test-watcher"));
        assert_eq!(header(d, "event_type").as_deref(), Some("file_discovered"));
    }
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _restore = RestoreBroker;
    let rt = runtime();
    let (_keep, data, state) = dirs();
    let (exchange, queue) = (unique("fw-ex"), unique("fw-q"));
    let admin = rt.block_on(Admin::connect_suite());
    rt.block_on(admin.bound_queue(&exchange, &queue));

    let w = Watcher::spawn(suite_command(
        &data,
        state.path(),
        &exchange,
        &["--settle-delay", "200ms"],
    ));
    w.wait_ready();
    const N: usize = 5_000;
    let writer_dir = data.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            std::fs::write(writer_dir.join(format!("f{i:05}.dat")), format!("file {i}")).unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(Duration::from_secs(2));
    rabbitmqctl(&["start_app"]);
    writer.join().unwrap();

    let admin = rt.block_on(Admin::connect_suite());
    // The message ids seen per path, from the deliveries that are new since the last call
    // only (see `take_until`).
    let mut by_path: HashMap<String, HashSet<String>> = HashMap::new();
    let mut seen = 0;
    rt.block_on(admin.take_until(&queue, Duration::from_secs(90), |g| {
        for d in &g[seen..] {
            by_path
                .entry(body(d)["file_info"]["path"].as_str().unwrap().to_owned())
                .or_default()
                .insert(d.properties.message_id().as_ref().unwrap().to_string());
        }
        seen = g.len();
        by_path.len() >= N
    }));
    if by_path.len() < N {
        // Tell a slow consumer (messages still queued) from a loss (nothing left to read).
        let still_queued = rt.block_on(admin.depth(&queue));
        panic!(
            "missing files after the restart: {} of {N} received, {still_queued} still queued; \
             log:\n{}",
            by_path.len(),
            w.stderr_text()
        );
    }
    assert!(
        by_path.values().all(|ids| ids.len() == 1),
        "a duplicate carried a different message_id"
    );
    let log = w.stderr_text();
    assert!(log.contains("connected to RabbitMQ"), "{log}");
    let (status, _) = w.stop();
    assert!(status.success());
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn broker_down_at_start_then_up_ten_seconds_later() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _restore = RestoreBroker;
    let rt = runtime();
    let (_keep, data, state) = dirs();
    for i in 0..100 {
        std::fs::write(data.join(format!("{i}.flac")), format!("{i}")).unwrap();
    }
    let (exchange, queue) = (unique("fw-ex"), unique("fw-q"));
    {
        let admin = rt.block_on(Admin::connect_suite());
        rt.block_on(admin.bound_queue(&exchange, &queue));
    }
    rabbitmqctl(&["stop_app"]);
    let mut child = suite_command(
        &data,
        state.path(),
        &exchange,
        &["--once", "--settle-delay", "1ms"],
    )
    .spawn()
    .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the watcher gave up while the broker was down"
    );
    rabbitmqctl(&["start_app"]);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the watcher never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("retry") || stderr.contains("Retry") || stderr.contains("cannot connect"),
        "{stderr}"
    );
    let admin = rt.block_on(Admin::connect_suite());
    let got = rt.block_on(admin.take_until(&queue, Duration::from_secs(20), |g| g.len() >= 100));
    let paths: HashSet<_> = got
        .iter()
        .map(|d| body(d)["file_info"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths.len(), 100);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

/// A user that may not declare the claim queue: the instance stops with a clear error instead of
/// running unclaimed. The user is made for the test and deleted after it, pass or fail.
#[test]
fn a_refused_claim_is_an_error_not_a_silent_pass() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    struct DeleteUser(String);
    impl Drop for DeleteUser {
        fn drop(&mut self) {
            let _ = ctl_output(SUITE_NODE, &["-q", "delete_user", &self.0]);
        }
    }
    let user = unique("no-claim");
    rabbitmqctl(&["-q", "add_user", &user, "pw"]);
    let _delete = DeleteUser(user.clone());
    // Configure only on the test's exchanges (ex-*), not on file_watcher.claim.*.
    rabbitmqctl(&[
        "-q",
        "set_permissions",
        "-p",
        "/",
        &user,
        "^ex-.*$",
        ".*",
        ".*",
    ]);
    let (_keep, data, state) = dirs();
    let exchange = unique("ex");
    let mut cmd = command(
        &data,
        state.path(),
        &[
            "--sink",
            "amqp",
            "--exchange",
            &exchange,
            "--log-level",
            "INFO",
        ],
    );
    cmd.env(
        "AMQP_URL",
        format!("amqp://{user}:pw@127.0.0.1:{SUITE_PORT}/%2f"),
    );
    let mut w = Watcher::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running:\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    let log = w.stderr_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("cannot claim INSTANCE_ID") && log.contains("file_watcher.claim.test-watcher"),
        "{log}"
    );
    assert!(
        !log.contains("connected to RabbitMQ"),
        "it went on without the claim:\n{log}"
    );
    let rt = runtime();
    let admin = rt.block_on(Admin::connect_suite());
    rt.block_on(admin.delete(&exchange, &[]));
}

#[test]
fn wrong_password_is_reported_clearly_and_never_printed() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_keep, data, state) = dirs();
    let secret = "Sup3r-Secret-Passw0rd";
    let mut cmd = command(
        &data,
        state.path(),
        &["--sink", "amqp", "--log-level", "INFO"],
    );
    let broker = publisher::AmqpConfig::from_url(&amqp_url(), "t").unwrap();
    cmd.env_remove("AMQP_URL")
        .env("RABBITMQ_HOST", broker.host())
        .env("RABBITMQ_PORT", broker.port().to_string())
        .env("RABBITMQ_USER", "guest")
        .env("RABBITMQ_PASS", secret);
    let w = Watcher::spawn(cmd);
    let line = w.wait_log("refused the login (ACCESS_REFUSED)");
    assert!(
        line.contains("guest"),
        "the line should say which user was refused: {line}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(w.events.try_recv().is_err());
    let (status, log) = w.stop();
    assert!(status.success(), "it should still shut down cleanly: {log}");
    assert!(
        !log.contains(secret),
        "the password leaked into the log:\n{log}"
    );
}

#[test]
fn a_connected_instance_is_ready_and_its_broker_metrics_count() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime();
    let (_keep, data, state) = dirs();
    for i in 0..20 {
        std::fs::write(data.join(format!("ep{i:02}.mp3")), format!("episode {i}")).unwrap();
    }
    let (exchange, queue) = (unique("fw-ex"), unique("fw-q"));
    let admin = rt.block_on(Admin::connect());
    rt.block_on(admin.bound_queue(&exchange, &queue));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let w = Watcher::spawn(amqp_command(
        &data,
        state.path(),
        &exchange,
        &["--settle-delay", "1ms", "--http-addr", &addr],
    ));
    let got = rt.block_on(admin.take_until(&queue, Duration::from_secs(20), |g| g.len() >= 20));
    assert_eq!(got.len(), 20, "{}", w.stderr_text());
    // The healthcheck subcommand, as the image's HEALTHCHECK runs it.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = std::process::Command::new(bin())
            .args(["healthcheck", "--timeout", "2s"])
            .env("HTTP_ADDR", &addr)
            .output()
            .unwrap();
        if out.status.code() == Some(0) {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("ready"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never healthy: {out:?}\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    for line in [
        "file_watcher_ready 1",
        "file_watcher_broker_connected 1",
        "file_watcher_broker_blocked 0",
        "file_watcher_publishes_acked_total 20",
        "file_watcher_publishes_nacked_total 0",
        "file_watcher_events_total{event_type=\"file_discovered\"} 20",
        "file_watcher_event_latency_seconds_count 20",
        "file_watcher_hash_duration_seconds_count 20",
        "sink=\"amqp\"} 1",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

fn free_addr() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("127.0.0.1:{port}"))
}

/// What a standby must show, whichever wait it is in: alive, healthy for the image's
/// HEALTHCHECK, `standby` in `/health` and in a metric, not ready; then SIGTERM ends it with 0.
fn assert_healthy_standby_then_sigterm_exits_zero(mut standby: Watcher, port: u16, addr: &str) {
    let deadline = Instant::now() + WAIT;
    let health = loop {
        match http_get(port, "/health") {
            Some((code, body)) if body.contains("\"standby\"") => break (code, body),
            other => assert!(
                Instant::now() < deadline,
                "no standby answer at /health: {other:?}\n{}",
                standby.stderr_text()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health.0, 503, "{}", health.1);
    let body: serde_json::Value = serde_json::from_str(&health.1).unwrap();
    assert_eq!(body["status"], "standby", "{body}");
    assert_eq!(body["standby"], true, "{body}");
    assert_eq!(http_get(port, "/health/live").unwrap().0, 200);
    let (code, ready) = http_get(port, "/health/ready").unwrap();
    assert_eq!(code, 503, "{ready}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    for line in ["file_watcher_standby 1", "file_watcher_ready 0"] {
        assert!(metrics.contains(line), "{line:?} missing from\n{metrics}");
    }
    let out = std::process::Command::new(bin())
        .args(["healthcheck", "--timeout", "2s"])
        .env("HTTP_ADDR", addr)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "a standby is healthy: {text}");
    assert!(text.contains("standby"), "{text}");

    let pid = standby.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = standby.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "a standby still runs 5 s after SIGTERM\n{}",
            standby.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", standby.stderr_text());
}

/// An active instance and a second one with the same INSTANCE_ID, on the same STATE_DIR (the
/// replicas of `docker compose up --scale`: it waits for the lock) or on its own (it waits for
/// the claim on the broker); then the standby's checks.
fn active_and_standby(shared_state: bool, waits_for: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_a, a_data, a_state) = dirs();
    let (_b, b_data, b_state) = dirs();
    let (exchange, id) = (unique("fw-ex"), unique("standby"));
    let active = Watcher::spawn(amqp_command(
        &a_data,
        a_state.path(),
        &exchange,
        &["--instance-id", &id, "--http-addr", "off"],
    ));
    active.wait_log("connected to RabbitMQ");
    let (data, state) = if shared_state {
        (&a_data, a_state.path())
    } else {
        (&b_data, b_state.path())
    };
    let (port, addr) = free_addr();
    let standby = Watcher::spawn(amqp_command(
        data,
        state,
        &exchange,
        &["--instance-id", &id, "--http-addr", &addr],
    ));
    standby.wait_log(waits_for);
    assert_healthy_standby_then_sigterm_exits_zero(standby, port, &addr);
    let (status, log) = active.stop();
    assert!(status.success(), "{log}");
    let rt = runtime();
    let admin = rt.block_on(Admin::connect());
    rt.block_on(admin.delete(&exchange, &[]));
}

#[test]
fn a_second_process_on_one_state_dir_stands_by_serving_http_and_exits_zero_on_sigterm() {
    active_and_standby(true, "is in use by another file-watcher process");
}

#[test]
fn a_standby_for_the_broker_claim_is_healthy_and_exits_zero_on_sigterm() {
    active_and_standby(false, "standby: another live instance holds INSTANCE_ID");
}
