//! Settings are checked before anything is created: a bad value is one line naming the
//! variable and exit code 2, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The binary with only DATA_DIR, STATE_DIR, the stdout sink and `env` in its environment.
fn run_with(
    data: &std::path::Path,
    state: &std::path::Path,
    env: &[(&str, &str)],
) -> (i32, String) {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("DATA_DIR", data)
        .env("STATE_DIR", state)
        .env("SINK", "stdout")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `--once` run without HTTP endpoints, with `env` on top.
fn run_env(data: &std::path::Path, state: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut all = vec![("HTTP_ADDR", "off"), ("ONCE", "true")];
    all.extend_from_slice(env);
    run_with(data, state, &all)
}

#[test]
fn every_numeric_setting_refuses_zero_negative_huge_and_garbage() {
    let (_keep, data, state) = dirs();
    let state_dir = state.path().join("never-created");
    let max = u64::MAX.to_string();
    // Zero is a valid "off" for RECONCILE_INTERVAL and "do not wait" for SHUTDOWN_TIMEOUT.
    let settings: [(&str, bool); 8] = [
        ("SETTLE_DELAY", true),
        ("POLL_INTERVAL", true),
        ("RECONCILE_INTERVAL", false),
        ("SHUTDOWN_TIMEOUT", false),
        ("HINT_QUEUE", true),
        ("PUBLISH_WINDOW", true),
        ("HASH_THREADS", true),
        ("RABBITMQ_PORT", true),
    ];
    for (name, zero_is_bad) in settings {
        let mut values = vec!["-1", max.as_str(), "garbage", "1e9999"];
        if zero_is_bad {
            values.push("0");
        }
        for value in values {
            let (code, err) = run_env(&data, &state_dir, &[(name, value)]);
            assert_eq!(code, 2, "{name}={value}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}={value}: {err}");
            assert!(
                err.starts_with(&format!("file-watcher: invalid setting {name} ")),
                "{name}={value}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    assert!(!state_dir.exists(), "a refused start created STATE_DIR");
    // The edges that are valid still start.
    for (name, value) in [
        ("RECONCILE_INTERVAL", "0"),
        ("SHUTDOWN_TIMEOUT", "0"),
        ("SETTLE_DELAY", "1ms"),
        ("HINT_QUEUE", "1000000"),
    ] {
        let (code, err) = run_env(&data, &state_dir, &[(name, value)]);
        assert_eq!(code, 0, "{name}={value}: {err}");
    }
}

#[test]
fn an_unset_data_dir_is_named() {
    let out = Command::new(bin())
        .env_clear()
        .env("SINK", "stdout")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid setting DATA_DIR: not set"), "{err}");
}

#[test]
fn a_state_dir_inside_data_dir_is_refused_before_it_is_made() {
    let (_keep, data, _state) = dirs();
    let (code, err) = run_env(&data, &data.join("state/deeper"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid setting STATE_DIR"), "{err}");
    assert!(err.contains("inside DATA_DIR"), "{err}");
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "wrote in DATA_DIR"
    );
}

#[test]
fn paths_that_read_alike_get_their_own_default_state_and_an_old_one_is_moved() {
    let top = tempfile::tempdir().unwrap();
    let top = top.path().canonicalize().unwrap();
    let (a, b) = (top.join("a-b"), top.join("a_b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("x.flac"), d.to_str().unwrap()).unwrap();
    }
    let xdg = tempfile::tempdir().unwrap();
    let root = xdg.path().join("file-watcher");
    // A state directory under the name used before the hash: it moves to the new name.
    let legacy: String = a
        .to_str()
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::fs::create_dir_all(root.join(&legacy)).unwrap();
    std::fs::write(root.join(&legacy).join("instance_id"), "watcher-kept").unwrap();
    let once = |dir: &std::path::Path| {
        let out = Command::new(bin())
            .env_clear()
            .env("XDG_STATE_HOME", xdg.path())
            .args(["--once", "--sink", "stdout", "--http-addr", "off"])
            .args(["--settle-delay", "1ms", "--log-format", "text"])
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (events, log) = once(&a);
    assert!(log.contains("moved the state directory"), "{log}");
    assert!(
        events.contains("\"instance_id\":\"watcher-kept\""),
        "{events}"
    );
    assert!(!root.join(&legacy).exists());
    let (events_b, _) = once(&b);
    // b has a store of its own: its file is discovered, and a's is not reported deleted.
    assert!(events_b.contains("file_discovered"), "{events_b}");
    assert!(!events_b.contains("file_deleted"), "{events_b}");
    let (again, _) = once(&a);
    assert!(again.is_empty(), "a's store was disturbed: {again}");
    let dirs: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
}

#[test]
fn an_ipv6_broker_host_is_resolved() {
    let listener = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let port = listener.local_addr().unwrap().port().to_string();
    listener.set_nonblocking(true).unwrap();
    let (_keep, data, state) = dirs();
    let mut cmd = command(&data, state.path(), &["--sink", "amqp"]);
    cmd.env("RABBITMQ_HOST", "[::1]")
        .env("RABBITMQ_PORT", &port);
    let w = Watcher::spawn(cmd);
    let deadline = Instant::now() + WAIT;
    loop {
        if listener.accept().is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing connected to [::1]:{port}:\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !w.stderr_text().contains("failed to lookup"),
        "{}",
        w.stderr_text()
    );
}

#[test]
fn booleans_take_any_spelling_people_type_and_a_wrong_one_names_the_variable() {
    let (_keep, data, state) = dirs();
    let state_dir = state.path().join("s");
    // ONCE spelled every true way: the run ends by itself (a service would not).
    for value in ["true", "TRUE", "1", "yes", "Yes", "on", "ON"] {
        let (code, err) = run_env(&data, &state_dir, &[("ONCE", value)]);
        assert_eq!(code, 0, "ONCE={value}: {err}");
    }
    for (name, flag) in [
        ("ONCE", "--once"),
        ("ACCEPT_NEW_DATA_DIR", "--accept-new-data-dir"),
        ("RABBITMQ_SHUFFLE", "--rabbitmq-shuffle"),
    ] {
        let fresh = state.path().join(format!("never-{name}"));
        let (code, err) = run_env(&data, &fresh, &[(name, "maybe")]);
        assert_eq!(code, 2, "{name}=maybe: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let want = format!("file-watcher: invalid setting {name} ({flag}): \"maybe\": use true/false, 1/0, yes/no or on/off");
        assert!(err.starts_with(&want), "{name}: {err}");
        assert!(!fresh.exists(), "{name}: STATE_DIR created");
    }
}

#[test]
fn a_port_in_use_is_one_line_and_exit_2_before_state_dir_is_made() {
    let (_keep, data, state) = dirs();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = held.local_addr().unwrap().to_string();
    let state_dir = state.path().join("never-created");
    for once in ["true", "false"] {
        let (code, err) = run_with(&data, &state_dir, &[("HTTP_ADDR", &at), ("ONCE", once)]);
        assert_eq!(code, 2, "ONCE={once}: {err}");
        assert_eq!(err.lines().count(), 1, "ONCE={once}: {err}");
        assert!(
            err.starts_with(&format!(
                "file-watcher: invalid setting HTTP_ADDR (--http-addr): {at} is already in use"
            )),
            "{err}"
        );
        assert!(
            !state_dir.exists(),
            "STATE_DIR created before the port was checked"
        );
    }
}

#[test]
fn once_opens_no_http_port_unless_http_addr_is_set() {
    let (_keep, data, state) = dirs();
    // Hold 8080 (the default) if nobody else does: either way it is taken, and a --once that
    // tried to listen there would fail.
    let _held = std::net::TcpListener::bind("0.0.0.0:8080");
    let (code, err) = run_with(&data, &state.path().join("s"), &[("ONCE", "1")]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("HTTP endpoints at"), "{err}");
    // Asked for explicitly, it does listen.
    let (code, err) = run_with(
        &data,
        &state.path().join("s"),
        &[("ONCE", "1"), ("HTTP_ADDR", "127.0.0.1:0")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("HTTP endpoints at"), "{err}");
}
