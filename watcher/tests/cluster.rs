//! The `file-watcher` binary on the suite's three-node cluster (`scripts/test-broker cluster-up`): one
//! live instance per INSTANCE_ID (`ON_DUPLICATE=exit` and `standby`), and three instances with
//! different ids into one exchange without crossing over.
//!
//! Every test holds the cluster alone (a file lock shared with the publisher's cluster tests),
//! starts it with the script and tears it down when it ends, failed or not. The lock runs the
//! tests one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
#[path = "../../publisher/tests/common/cluster.rs"]
mod cluster;
mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use broker::*;
use cluster::*;
use common::*;
use lapin::types::AMQPValue;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An instance on the cluster: all three addresses (shuffled, as in production).
fn instance(data: &Path, state: &Path, id: &str, exchange: &str, extra: &[&str]) -> Watcher {
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
            "--instance-id",
            id,
        ],
    );
    cmd.args(extra).env(
        "AMQP_URL",
        urls(&[EXTRA_NODES[0].1, EXTRA_NODES[1].1, DEFAULT_PORT]),
    );
    Watcher::spawn(cmd)
}

fn wait_exit(w: &mut Watcher, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {timeout:?}; stderr:\n{}",
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads from `queue` until `done` holds for one delivery's body, or fails after 60 s.
fn take_until_body(
    rt: &tokio::runtime::Runtime,
    admin: &Admin,
    queue: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let got = rt.block_on(admin.take_until(queue, Duration::from_secs(60), |d| {
        d.last().is_some_and(|d| done(&body(d)))
    }));
    let bodies: Vec<_> = got.iter().map(body).collect();
    assert!(
        bodies.last().is_some_and(&done),
        "the awaited event did not arrive within 60 s; got {} others",
        bodies.len()
    );
    bodies
}

#[test]
fn a_duplicate_in_exit_mode_exits_3_with_one_line() {
    let _cluster = Cluster::up();
    let rt = runtime();
    let admin = rt.block_on(Admin::connect_suite());
    let (exchange, queue, id) = (unique("ex"), unique("q"), unique("dup-exit"));
    rt.block_on(admin.quorum_queue(&exchange, &queue));

    let (_a, a_dir, a_state) = dirs();
    std::fs::write(a_dir.join("a.txt"), "a").unwrap();
    let active = instance(
        &a_dir,
        a_state.path(),
        &id,
        &exchange,
        &["--on-duplicate", "exit"],
    );
    active.wait_log("connected to RabbitMQ");
    take_until_body(&rt, &admin, &queue, |b| b["file_info"]["name"] == "a.txt");

    let (_b, b_dir, b_state) = dirs();
    std::fs::write(b_dir.join("b.txt"), "b").unwrap();
    let mut second = instance(
        &b_dir,
        b_state.path(),
        &id,
        &exchange,
        &["--on-duplicate", "exit"],
    );
    let status = wait_exit(&mut second, Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "stderr:\n{}", second.stderr_text());
    std::thread::sleep(Duration::from_millis(100));
    let stderr = second.stderr_text();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("already in use"))
        .collect();
    assert_eq!(lines.len(), 1, "one line about the conflict:\n{stderr}");
    for needed in [
        id.as_str(),
        "INSTANCE_ID",
        "file_watcher.claim.",
        "ON_DUPLICATE",
    ] {
        assert!(lines[0].contains(needed), "{needed} missing: {}", lines[0]);
    }
    // The duplicate published nothing.
    std::thread::sleep(Duration::from_secs(1));
    let rest = rt.block_on(admin.take_all(&queue));
    assert!(
        rest.iter()
            .all(|d| body(d)["watched_directory"] != b_dir.display().to_string()),
        "the duplicate published"
    );
    // And the active one is unaffected.
    assert!(active.child.id() > 0);
    drop(active);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn a_standby_takes_over_within_10_s_of_a_kill_9_and_publishes_new_files() {
    let _cluster = Cluster::up();
    let rt = runtime();
    let admin = rt.block_on(Admin::connect_suite());
    let (exchange, queue, id) = (unique("ex"), unique("q"), unique("dup-standby"));
    rt.block_on(admin.quorum_queue(&exchange, &queue));

    let (_a, a_dir, a_state) = dirs();
    std::fs::write(a_dir.join("a.txt"), "a").unwrap();
    let mut active = instance(&a_dir, a_state.path(), &id, &exchange, &[]);
    active.wait_log("connected to RabbitMQ");
    take_until_body(&rt, &admin, &queue, |b| b["file_info"]["name"] == "a.txt");

    let (_b, b_dir, b_state) = dirs();
    std::fs::write(b_dir.join("before.txt"), "b").unwrap();
    let port = free_port();
    let standby = instance(
        &b_dir,
        b_state.path(),
        &id,
        &exchange,
        &["--http-addr", &format!("127.0.0.1:{port}")],
    );
    standby.wait_log("standby: another live instance holds INSTANCE_ID");
    let (code, ready) = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            http_get(port, "/health/ready")
        })
        .expect("the standby answers /health/ready");
    assert_eq!(code, 503, "{ready}");
    assert!(ready.contains("standby"), "{ready}");
    // Standing by, it publishes nothing.
    std::thread::sleep(Duration::from_secs(2));
    let meanwhile = rt.block_on(admin.take_all(&queue));
    assert!(
        meanwhile
            .iter()
            .all(|d| body(d)["watched_directory"] != b_dir.display().to_string()),
        "the standby published while the active one ran"
    );

    active.child.kill().unwrap();
    let killed_at = Instant::now();
    active.child.wait().unwrap();
    standby.wait_log("taking over as the active instance");
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(10), "took over after {took:?}");
    // It scans its own STATE_DIR's view of its DATA_DIR, then reports new files.
    take_until_body(&rt, &admin, &queue, |b| {
        b["file_info"]["name"] == "before.txt"
    });
    std::fs::write(b_dir.join("after.txt"), "new").unwrap();
    let got = take_until_body(&rt, &admin, &queue, |b| {
        b["file_info"]["name"] == "after.txt"
    });
    let last = got.last().unwrap();
    assert_eq!(last["instance_id"], id.as_str());
    assert_eq!(last["watched_directory"], b_dir.display().to_string());
    let ready = http_get(port, "/health/ready").unwrap();
    assert_eq!(ready.0, 200, "{}", ready.1);
    eprintln!("standby took over {took:?} after the kill -9");
    drop(standby);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

#[test]
fn three_instances_share_the_exchange_without_crossing_over() {
    let _cluster = Cluster::up();
    let rt = runtime();
    let admin = rt.block_on(Admin::connect_suite());
    let (exchange, queue) = (unique("ex"), unique("q"));
    rt.block_on(admin.quorum_queue(&exchange, &queue));
    const FILES: usize = 50;
    let mut dirs_of = HashMap::new();
    let mut running = Vec::new();
    let mut keep = Vec::new();
    let port = free_port();
    for n in 0..3 {
        let id = unique(&format!("three-{n}"));
        let (data, dir, state) = dirs();
        for f in 0..FILES {
            std::fs::write(dir.join(format!("{n}-{f}.txt")), format!("{n}/{f}")).unwrap();
        }
        let http = format!("127.0.0.1:{port}");
        let extra: &[&str] = if n == 0 { &["--http-addr", &http] } else { &[] };
        running.push(instance(&dir, state.path(), &id, &exchange, extra));
        dirs_of.insert(id, dir.display().to_string());
        keep.push((data, state));
    }
    let got = rt.block_on(admin.take_until(&queue, Duration::from_secs(120), {
        let mut seen = HashSet::new();
        move |d| {
            if let Some(d) = d.last() {
                seen.insert(d.properties.message_id().as_ref().map(|m| m.to_string()));
            }
            seen.len() >= 3 * FILES
        }
    }));
    let mut paths: HashMap<String, HashSet<String>> = HashMap::new();
    for d in &got {
        let b = body(d);
        let id = b["instance_id"].as_str().unwrap().to_owned();
        let dir = dirs_of
            .get(&id)
            .unwrap_or_else(|| panic!("an event from an unknown instance {id}"));
        assert_eq!(b["watched_directory"], dir.as_str(), "{b}");
        let path = b["file_info"]["path"].as_str().unwrap();
        assert!(
            Path::new(path).starts_with(dir),
            "{id} reported {path} outside {dir}"
        );
        let header_id = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("instance_id").cloned());
        assert!(
            matches!(&header_id, Some(AMQPValue::LongString(s)) if s.to_string() == id),
            "header instance_id {header_id:?} is not {id}"
        );
        paths.entry(id).or_default().insert(path.to_owned());
    }
    for (id, dir) in &dirs_of {
        assert_eq!(
            paths.get(id).map_or(0, HashSet::len),
            FILES,
            "{id} ({dir}) did not report each of its files"
        );
    }
    // Each instance named the node it used, one of the cluster's; with shuffling they need not
    // agree.
    let is_node = |s: &str| {
        [DEFAULT_PORT, EXTRA_NODES[0].1, EXTRA_NODES[1].1]
            .iter()
            .any(|p| s.contains(&format!("127.0.0.1:{p}")))
    };
    for w in &running {
        let line = w.wait_log("connected to RabbitMQ");
        assert!(is_node(&line), "{line}");
    }
    // The node in use is in /health and in the metric's label.
    let (code, health) = http_get(port, "/health").expect("/health answers");
    assert_eq!(code, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    let address = health["sink"]["address"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(is_node(&address), "{health}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(&format!(
            "file_watcher_broker_node{{address=\"{address}\"}} 1"
        )),
        "{metrics}"
    );
    drop(running);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}

/// `docker compose up --scale file_watcher_music=2`: two replicas with one ID, one DATA_DIR and
/// one state volume. The second waits for STATE_DIR's lock (and then the claim) instead of
/// exiting, and carries on when the first is killed.
#[test]
fn a_second_replica_on_the_same_state_dir_waits_and_takes_over() {
    let _cluster = Cluster::up();
    let rt = runtime();
    let admin = rt.block_on(Admin::connect_suite());
    let (exchange, queue, id) = (unique("ex"), unique("q"), unique("scaled"));
    rt.block_on(admin.quorum_queue(&exchange, &queue));

    let (_data, dir, state) = dirs();
    std::fs::write(dir.join("one.txt"), "1").unwrap();
    let mut first = instance(&dir, state.path(), &id, &exchange, &[]);
    first.wait_log("connected to RabbitMQ");
    take_until_body(&rt, &admin, &queue, |b| b["file_info"]["name"] == "one.txt");

    let mut second = instance(&dir, state.path(), &id, &exchange, &[]);
    second.wait_log("is in use by another file-watcher process");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        second.child.try_wait().unwrap().is_none(),
        "the second replica exited"
    );

    first.child.kill().unwrap();
    let killed_at = Instant::now();
    first.child.wait().unwrap();
    second.wait_log("connected to RabbitMQ");
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(10), "took over after {took:?}");
    std::fs::write(dir.join("two.txt"), "2").unwrap();
    let got = take_until_body(&rt, &admin, &queue, |b| b["file_info"]["name"] == "two.txt");
    assert_eq!(got.last().unwrap()["instance_id"], id.as_str());
    drop(second);
    rt.block_on(admin.delete(&exchange, &[&queue]));
}
