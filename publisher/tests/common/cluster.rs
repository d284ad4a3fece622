//! The suite's three-node cluster (`scripts/test-broker cluster-up`), for the cluster tests and
//! the cluster bench: one test at a time across every test binary (a file lock), the cluster
//! started by the script, and torn down again by a guard however the test ends.
//!
//! The cluster is made of the suite's own nodes only: `fwtest-2` and `fwtest-3` join
//! `fwtest-1@localhost`, the suite's single-node broker, which `scripts/test` (or
//! `scripts/test-broker up`) starts first. Tests stop only the extra nodes, never the first one.
//!
//! `FW_KEEP_CLUSTER=1` leaves the cluster up after each test (for a quick edit-test loop); the
//! extra nodes' apps are still started again.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

/// The first node (the suite's single-node broker) and its AMQP port.
pub const FIRST_NODE: &str = "fwtest-1@localhost";
pub const DEFAULT_PORT: u16 = 5781;
/// The extra nodes: (node name, AMQP port). Same as `scripts/test-broker`.
pub const EXTRA_NODES: [(&str, u16); 2] =
    [("fwtest-2@localhost", 5782), ("fwtest-3@localhost", 5783)];

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-broker")
}

fn run_script(arg: &str) -> String {
    let out = Command::new(script())
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/test-broker {arg}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/test-broker {arg} failed: the cluster tests need the suite's first node \
         {FIRST_NODE} running (scripts/test starts it and stops it after; by hand: \
         scripts/test-broker up, then scripts/test-broker down).\n{text}"
    );
    text
}

/// `rabbitmqctl -n NODE args` on a node of the suite.
pub fn ctl_on(node: &str, args: &[&str]) -> String {
    let out = Command::new(script())
        .args(["ctl", "-n", node])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/test-broker ctl -n {node} {args:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rabbitmqctl -n {node} {args:?} failed: {text}"
    );
    text
}

/// The AMQP URL of the first node, where the cluster tests declare and read their queues.
pub fn first_url() -> String {
    urls(&[DEFAULT_PORT])
}

/// The cluster, up and joined, held by this test alone. Dropping it puts every extra node's app
/// back and runs `scripts/test-broker cluster-down` (unless `FW_KEEP_CLUSTER=1`), pass or fail.
pub struct Cluster {
    _lock: File,
}

impl Cluster {
    pub fn up() -> Self {
        let path = std::env::temp_dir().join("file-watcher-test-broker-cluster.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        let cluster = Self { _lock: lock };
        run_script("cluster-up");
        for (node, port) in EXTRA_NODES {
            wait_port(port, Duration::from_secs(60))
                .unwrap_or_else(|| panic!("{node} does not answer on 127.0.0.1:{port}"));
        }
        cluster
    }

    /// Stops the app of an extra node (never the first one).
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
            let _ = Command::new(script())
                .args(["ctl", "-n", node, "-q", "start_app"])
                .output();
        }
        if std::env::var_os("FW_KEEP_CLUSTER").is_some_and(|v| v == "1") {
            return;
        }
        let out = Command::new(script()).arg("cluster-down").output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "scripts/test-broker cluster-down failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run scripts/test-broker cluster-down: {e}"),
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
        .map_or(FIRST_NODE, |(n, _)| n)
}
