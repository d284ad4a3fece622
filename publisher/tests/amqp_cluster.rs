//! The publisher on the suite's three-node cluster (`scripts/test-broker cluster-up`): failover mid-stream
//! into a quorum queue, the first address down at start, and the failover time over five runs.
//!
//! Every test holds the cluster alone ([`Cluster`]: a file lock shared with the watcher's
//! cluster tests), starts it with the script and tears it down when it ends, failed or not. Only
//! the extra nodes are stopped; the addresses are given unshuffled with an extra node first, so
//! the node in use is one the test may stop. The lock runs the tests one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster::*;
use common::*;
use publisher::{AmqpConfig, AmqpPublisher, EventType, Message, SinkError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn cluster_config(instance: &str, exchange: &str, ports: &[u16]) -> AmqpConfig {
    let mut c = AmqpConfig::from_urls(&urls(ports), instance).unwrap();
    c.exchange = exchange.into();
    c.watched_directory = format!("/data/{instance}");
    c.shuffle = false;
    c.backoff_initial = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn wait_address(p: &AmqpPublisher, want: impl Fn(&str) -> bool, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(a) = p.address().filter(|a| want(a)) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no suitable node within {timeout:?}: address {:?}, status {:?}",
            p.address(),
            p.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_mid_stream_loses_nothing_in_a_quorum_queue() {
    capture_logs();
    let _cluster = blocking(Cluster::up).await;
    let admin = Admin::connect_suite().await;
    let (exchange, queue, instance) = (unique("ex"), unique("q"), unique("failover"));
    admin.quorum_queue(&exchange, &queue).await;

    let (first, second) = (EXTRA_NODES[0], EXTRA_NODES[1]);
    let config = cluster_config(&instance, &exchange, &[first.1, second.1, DEFAULT_PORT]);
    let stop = CancellationToken::new();
    let p = AmqpPublisher::start(config, stop.clone());
    let first_addr = format!("127.0.0.1:{}", first.1);
    wait_address(&p, |a| a == first_addr, Duration::from_secs(20)).await;

    const N: usize = 20_000;
    let sent: Vec<Message> = (0..N)
        .map(|i| message(&instance, EventType::FileCreated, i))
        .collect();
    let tasks: Vec<JoinHandle<Result<(), SinkError>>> = sent
        .iter()
        .cloned()
        .map(|m| {
            let p = p.clone();
            tokio::spawn(async move { p.deliver(&m).await })
        })
        .collect();

    // Mid-stream: a quarter confirmed, then the node in use goes away.
    let t = Instant::now();
    while p.status().acked < (N / 4) as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "stalled: {:?}",
            p.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped_at = Instant::now();
    let node = first.0;
    blocking(move || ctl_on(node, &["-q", "stop_app"])).await;
    let moved_to = wait_address(&p, |a| a != first_addr, Duration::from_secs(10)).await;
    let failover = stopped_at.elapsed();
    assert!(failover < Duration::from_secs(10), "took {failover:?}");

    tokio::time::timeout(Duration::from_secs(300), async {
        for t in tasks {
            t.await.unwrap().expect("deliver");
        }
    })
    .await
    .expect("every deliver returns within 300 s");
    let status = p.status();
    stop.cancel();
    p.closed().await;

    let got = admin
        .take_until(&queue, Duration::from_secs(120), {
            let mut seen = std::collections::HashSet::new();
            move |d| {
                if let Some(last) = d.last() {
                    seen.insert(message_id(last));
                }
                seen.len() >= N
            }
        })
        .await;
    let mut id_of_path: HashMap<String, &str> = HashMap::new();
    for m in &sent {
        id_of_path.insert(m.envelope.file_info.path.clone(), m.message_id());
    }
    let mut seen_paths = std::collections::HashSet::new();
    for d in &got {
        let path = path_of(d);
        let want = id_of_path
            .get(&path)
            .unwrap_or_else(|| panic!("a message for a path never sent: {path}"));
        assert_eq!(
            message_id(d),
            *want,
            "a repeat of {path} has another message_id"
        );
        seen_paths.insert(path);
    }
    assert_eq!(
        seen_paths.len(),
        N,
        "{} of {N} paths arrived (status {status:?})",
        seen_paths.len()
    );
    let lines = log_lines_with(&instance);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("failing over to the next address") && l.contains(&first_addr)),
        "no failover line naming {first_addr}: {lines:#?}"
    );
    eprintln!(
        "failover: {failover:?} to {moved_to}; {} deliveries for {N} paths, republished {}",
        got.len(),
        status.republished
    );
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_address_down_at_start_connects_to_the_next() {
    capture_logs();
    let cluster = blocking(Cluster::up).await;
    let admin = Admin::connect_suite().await;
    let (exchange, queue, instance) = (unique("ex"), unique("q"), unique("first-down"));
    admin.quorum_queue(&exchange, &queue).await;
    let (down, up) = (EXTRA_NODES[0], EXTRA_NODES[1]);
    cluster.stop_app(down.0);

    let config = cluster_config(&instance, &exchange, &[down.1, up.1, DEFAULT_PORT]);
    let stop = CancellationToken::new();
    let p = AmqpPublisher::start(config, stop.clone());
    let msg = message(&instance, EventType::FileCreated, 1);
    tokio::time::timeout(Duration::from_secs(10), p.deliver(&msg))
        .await
        .expect("delivered within 10 s although the first address is down")
        .unwrap();
    assert_eq!(
        p.address().as_deref(),
        Some(format!("127.0.0.1:{}", up.1).as_str())
    );
    let got = admin.take(&queue, 1, Duration::from_secs(10)).await;
    assert_eq!(message_id(&got[0]), msg.message_id());
    let lines = log_lines_with(&instance);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot connect") && l.contains(&format!("127.0.0.1:{}", down.1))),
        "no line about the address that is down: {lines:#?}"
    );
    stop.cancel();
    p.closed().await;
    admin.delete(&exchange, &[&queue]).await;
}

/// Failover time: from `stop_app` of the node in use to the first confirm on another node,
/// while messages stream. Five runs, median and max printed; each must be under 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_time_over_five_runs() {
    capture_logs();
    let cluster = blocking(Cluster::up).await;
    let admin = Admin::connect_suite().await;
    let (exchange, queue, instance) = (unique("ex"), unique("q"), unique("failover-time"));
    admin.quorum_queue(&exchange, &queue).await;
    let mut times = Vec::new();
    for run in 0..5 {
        // Alternate which extra node is in use (and stopped).
        let (victim, other) = if run % 2 == 0 {
            (EXTRA_NODES[0], EXTRA_NODES[1])
        } else {
            (EXTRA_NODES[1], EXTRA_NODES[0])
        };
        let config = cluster_config(&instance, &exchange, &[victim.1, other.1, DEFAULT_PORT]);
        let stop = CancellationToken::new();
        let p = AmqpPublisher::start(config, stop.clone());
        let victim_addr = format!("127.0.0.1:{}", victim.1);
        wait_address(&p, |a| a == victim_addr, Duration::from_secs(20)).await;
        // A steady stream: 64 publishers in a loop, each noting where its confirm came from.
        let confirms = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
        let streaming = CancellationToken::new();
        let mut workers = Vec::new();
        for w in 0..64 {
            let (p, confirms, streaming) = (p.clone(), confirms.clone(), streaming.clone());
            let instance = instance.clone();
            workers.push(tokio::spawn(async move {
                let mut i = w;
                while !streaming.is_cancelled() {
                    let m = message(&instance, EventType::FileModified, i);
                    // Attributed to a node only when the connection did not change meanwhile,
                    // so a late confirm from the stopped node never counts as the new one's.
                    let before = p.address();
                    if p.deliver(&m).await.is_err() {
                        break;
                    }
                    let after = p.address();
                    if let (Some(a), true) = (after, before == p.address()) {
                        confirms.lock().unwrap().push((Instant::now(), a));
                    }
                    i += 64;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped_at = Instant::now();
        let node = victim.0;
        let stopping = tokio::task::spawn_blocking(move || ctl_on(node, &["-q", "stop_app"]));
        let deadline = stopped_at + Duration::from_secs(20);
        let took = loop {
            let first_elsewhere = confirms
                .lock()
                .unwrap()
                .iter()
                .find(|(t, a)| *t > stopped_at && *a != victim_addr)
                .map(|(t, _)| *t - stopped_at);
            if let Some(d) = first_elsewhere {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "run {run}: no confirm from another node in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stopping.await.unwrap();
        streaming.cancel();
        for w in workers {
            w.await.unwrap();
        }
        stop.cancel();
        p.closed().await;
        cluster.start_app(victim.0);
        eprintln!("failover run {run}: {took:?}");
        times.push(took);
    }
    times.sort();
    let (median, max) = (times[2], times[4]);
    eprintln!("failover time over 5 runs: median {median:?}, max {max:?} (all: {times:?})");
    assert!(max < Duration::from_secs(10), "max failover {max:?}");
    admin.purge(&queue).await;
    admin.delete(&exchange, &[&queue]).await;
}
