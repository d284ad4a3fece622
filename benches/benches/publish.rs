//! Publish throughput against a real RabbitMQ at `AMQP_URL` (default: the suite's own node,
//! `amqp://guest:guest@127.0.0.1:5781/%2f`, started by `scripts/test-broker up`): persistent messages with publisher confirms into a
//! durable topic exchange bound to one durable queue.
//!
//! * `bare lapin`: the ceiling ([`benches::bare`], shared with the e2e harness). One task
//!   publishes pre-serialised envelopes with the contract's properties and keeps a pipelined
//!   window of 1,000 unconfirmed messages.
//! * `AmqpPublisher`: 1,000 concurrent `deliver` calls (window 1,000), each serialising its
//!   envelope and waiting for its Ack, as the watcher does.
//!
//! Both use the same envelopes (about 600 bytes of JSON) and the same exchange and queue, which
//! is purged between runs. They alternate for 3 rounds; the median rate of each and their ratio
//! are printed. The bar: ours is at least 0.85× bare.
//!
//! Run: `cargo bench -p benches --bench publish`. `PUBLISH_BENCH_MESSAGES` (default 50,000) and
//! `PUBLISH_BENCH_ROUNDS` (default 3) change the size of the run.
//!
//! `PUBLISH_BENCH_CLUSTER=1` runs the same comparison on the suite's three-node cluster
//! (`scripts/test-broker cluster-up`, brought up and down by the bench; its first node must be
//! up) into a **quorum** queue: bare
//! lapin connects to the first extra node, and `AmqpPublisher` gets all three addresses
//! unshuffled with that same node first, so both publish through the same node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use lapin::{Channel, Connection, ConnectionProperties};
use publisher::{AmqpConfig, AmqpPublisher, Envelope, EventType, FileFacts, Message};
use tokio_util::sync::CancellationToken;

/// The broker-side helpers the publisher's and watcher's broker tests use.
#[path = "../../publisher/tests/common/broker.rs"]
mod broker;
/// The local three-node cluster of the cluster tests.
#[path = "../../publisher/tests/common/cluster.rs"]
mod cluster;

const WINDOW: usize = 1000;

fn main() {
    // The bench filter arguments cargo passes (`--bench`) are not ours to parse.
    let on_cluster = std::env::var("PUBLISH_BENCH_CLUSTER").is_ok_and(|v| v == "1");
    // Held to the end: dropping it takes the extra nodes down again.
    let _cluster = on_cluster.then(cluster::Cluster::up);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(on_cluster));
}

async fn run(on_cluster: bool) {
    // On the cluster: bare lapin on the first extra node; ours with every node, that one first.
    let (url, urls) = if on_cluster {
        let ports = [
            cluster::EXTRA_NODES[0].1,
            cluster::EXTRA_NODES[1].1,
            cluster::DEFAULT_PORT,
        ];
        (cluster::urls(&ports[..1]), cluster::urls(&ports))
    } else {
        (broker::amqp_url(), broker::amqp_url())
    };
    let n: usize = std::env::var("PUBLISH_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rounds: usize = std::env::var("PUBLISH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let redacted = AmqpConfig::from_urls(&urls, "bench").unwrap().redacted();
    let admin = if on_cluster {
        broker::Admin::connect_suite().await
    } else {
        broker::Admin::connect().await
    };
    let exchange = broker::unique("bench-fe");
    let queue = broker::unique("bench-q");
    if on_cluster {
        admin.quorum_queue(&exchange, &queue).await;
    } else {
        admin.bound_queue(&exchange, &queue).await;
    }
    let topology = if on_cluster {
        "3-node cluster, quorum queue"
    } else {
        "one node, classic durable queue"
    };

    let messages: Arc<Vec<Message>> = Arc::new((0..n).map(message).collect());
    let size = messages[0].to_json().unwrap().len();
    println!("publish bench: {n} persistent confirmed messages of {size} bytes per run, window {WINDOW}, {rounds} rounds, {topology}, broker {redacted}");

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for round in 1..=rounds {
        admin.purge(&queue).await;
        let cpu = cpu_seconds();
        // On a runtime worker, like the publisher's tasks, not on the `block_on` thread.
        let b = tokio::spawn(bare_lapin(
            url.clone(),
            exchange.clone(),
            Arc::clone(&messages),
        ))
        .await
        .unwrap();
        let b_cpu = (cpu_seconds() - cpu) * 1e6 / n as f64;
        admin.purge(&queue).await;
        let cpu = cpu_seconds();
        let o = amqp_publisher(&urls, &exchange, &messages).await;
        let o_cpu = (cpu_seconds() - cpu) * 1e6 / n as f64;
        println!(
            "round {round}: client CPU per message: bare lapin {b_cpu:.1} µs, AmqpPublisher {o_cpu:.1} µs"
        );
        println!(
            "round {round}: bare lapin {b:>8.0} msg/s   AmqpPublisher {o:>8.0} msg/s   ratio {:.3}",
            o / b
        );
        bare.push(b);
        ours.push(o);
    }
    let (b, o) = (median(&mut bare), median(&mut ours));
    println!("median:  bare lapin {b:>8.0} msg/s   AmqpPublisher {o:>8.0} msg/s   ratio {:.3} (bar: 0.85)", o / b);

    admin.delete(&exchange, &[&queue]).await;
}

/// The ceiling: [`benches::bare`], on a connection of its own.
async fn bare_lapin(url: String, exchange: String, messages: Arc<Vec<Message>>) -> f64 {
    let channel = connect(&url).await.unwrap();
    let prepared = benches::bare::prepare(&messages).unwrap();
    let elapsed = benches::bare::publish(&channel, &exchange, &prepared, WINDOW)
        .await
        .unwrap();
    let _ = channel.close(200, "done".into()).await;
    messages.len() as f64 / elapsed.as_secs_f64()
}

/// Ours: `WINDOW` tasks calling `deliver` as fast as the acks come back.
async fn amqp_publisher(urls: &str, exchange: &str, messages: &Arc<Vec<Message>>) -> f64 {
    let mut config = AmqpConfig::from_urls(urls, "bench").unwrap();
    config.shuffle = false;
    config.exchange = exchange.to_owned();
    config.window = WINDOW;
    let cancel = CancellationToken::new();
    let publisher = AmqpPublisher::start(config, cancel.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !publisher.is_connected() {
        assert!(Instant::now() < deadline, "AmqpPublisher did not connect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..WINDOW)
        .map(|_| {
            let publisher = publisher.clone();
            let messages = Arc::clone(messages);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(m) = messages.get(i) else { break };
                    publisher.deliver(m).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let rate = messages.len() as f64 / start.elapsed().as_secs_f64();
    assert_eq!(publisher.status().acked, messages.len() as u64);
    cancel.cancel();
    publisher.closed().await;
    rate
}

/// A realistic envelope: nested music-library paths, full digests, about 600 bytes of JSON.
fn message(i: usize) -> Message {
    let dir = PathBuf::from("/data/music");
    let path = dir.join(format!(
        "Some Artist Name/Their Album Title (Deluxe Edition, 2019)/Disc 1/{:02} - A Fairly Long Track Title {i:06}.flac",
        i % 20
    ));
    let facts = FileFacts {
        size: 31_457_280 + i as u64,
        sha256_hex: format!("{:064x}", (i as u128) * 0x9e37_79b9_7f4a_7c15),
        xxh128_hex: format!("{:032x}", (i as u128) * 0x9e37_79b9),
    };
    let at = chrono::Utc.with_ymd_and_hms(2025, 8, 28, 10, 0, 0).unwrap();
    Envelope::build(
        EventType::FileDiscovered,
        "watcher-music-bench",
        &dir,
        &path,
        None,
        facts,
        at,
    )
}

async fn connect(url: &str) -> lapin::Result<Channel> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // The channel keeps the connection open; the connection handle may go.
    Ok(channel)
}

/// User plus system CPU time of this process so far, from `/proc/self/stat` (0 elsewhere): the
/// client's share of the two cores it shares with the broker.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
