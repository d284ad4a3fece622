//! The local three-node cluster of `scripts/rabbitmq-cluster`, for the cluster tests and the
//! cluster bench: one test at a time across every test binary (a file lock), the cluster
//! started by the script, and torn down again by a guard however the test ends.
//!
//! Tests stop only the extra nodes (`fw-rabbit-2`, `fw-rabbit-3`), never the default
//! `rabbit@localhost`: other broker tests may be using it at the same time.
//!
//! `FW_KEEP_CLUSTER=1` leaves the cluster up after each test (for a quick edit-test loop); the
//! extra nodes' apps are still started again.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The extra nodes: (node name, AMQP port). Same as `scripts/rabbitmq-cluster nodes`.
pub const EXTRA_NODES: [(&str, u16); 2] = [
    ("fw-rabbit-2@localhost", 5673),
    ("fw-rabbit-3@localhost", 5674),
];
/// The default node's AMQP port.
pub const DEFAULT_PORT: u16 = 5672;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(arg: &str) -> String {
    let out = Command::new(repo().join("scripts/rabbitmq-cluster"))
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/rabbitmq-cluster {arg}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/rabbitmq-cluster {arg} failed: the cluster tests need the default RabbitMQ node \
         running and root (or the rabbitmq user) to start two more; scripts/test does both.\n{text}"
    );
    text
}

/// `rabbitmqctl -n NODE args`.
pub fn ctl_on(node: &str, args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .arg("-n")
        .arg(node)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl -n {node} {args:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rabbitmqctl -n {node} {args:?} failed: {text}"
    );
    text
}

/// The cluster, up and joined, held by this test alone. Dropping it puts every extra node's app
/// back and runs `scripts/rabbitmq-cluster down` (unless `FW_KEEP_CLUSTER=1`), pass or fail.
pub struct Cluster {
    _lock: File,
}

impl Cluster {
    pub fn up() -> Self {
        let path = std::env::temp_dir().join("file-watcher-rabbitmq-cluster.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        let cluster = Self { _lock: lock };
        script("up");
        for (node, port) in EXTRA_NODES {
            wait_port(port, Duration::from_secs(60))
                .unwrap_or_else(|| panic!("{node} does not answer on 127.0.0.1:{port}"));
        }
        cluster
    }

    /// Stops the app of an extra node (never the default one).
    pub fn stop_app(&self, node: &str) {
        assert!(
            EXTRA_NODES.iter().any(|(n, _)| *n == node),
            "tests stop only the extra nodes, not {node}"
        );
        ctl_on(node, &["-q", "stop_app"]);
    }

    pub fn start_app(&self, node: &str) {
        ctl_on(node, &["-q", "start_app"]);
        ctl_on(node, &["-q", "await_startup"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (node, _) in EXTRA_NODES {
            let _ = Command::new("rabbitmqctl")
                .args(["-n", node, "-q", "start_app"])
                .output();
        }
        if std::env::var_os("FW_KEEP_CLUSTER").is_some_and(|v| v == "1") {
            return;
        }
        let out = Command::new(repo().join("scripts/rabbitmq-cluster"))
            .arg("down")
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "scripts/rabbitmq-cluster down failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run scripts/rabbitmq-cluster down: {e}"),
        }
    }
}

/// Waits until 127.0.0.1:`port` accepts connections; the time it took.
pub fn wait_port(port: u16, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// AMQP URLs for `ports`, in that order, comma-separated.
pub fn urls(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("amqp://guest:guest@127.0.0.1:{p}/%2f"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The node name listening on `port`.
pub fn node_of(port: u16) -> &'static str {
    EXTRA_NODES
        .iter()
        .find(|(_, p)| *p == port)
        .map_or("rabbit@localhost", |(n, _)| n)
}
