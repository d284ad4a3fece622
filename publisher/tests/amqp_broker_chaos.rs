//! The AMQP publisher while the broker misbehaves: restarted mid-stream, down at start-up, and
//! blocked by a memory alarm. These tests stop and alarm the suite's own broker (never the one
//! `AMQP_URL` may name), so they live in their own binary, run one at a time (a static lock), and each restores the
//! broker in a drop guard, even when it fails: `start_app`, the memory watermark back at 0.4,
//! and waiting until the broker answers again.
//!
//! Queues here are durable: `stop_app` keeps durable queues and persistent messages, and only
//! those let us count what arrived across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use publisher::{AmqpPublisher, EventType, Message, SinkError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One broker-disturbing test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `rabbitmqctl` off the async workers.
async fn ctl(args: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || rabbitmqctl(args))
        .await
        .unwrap();
}

fn spawn_deliver(p: &AmqpPublisher, msg: Message) -> JoinHandle<Result<(), SinkError>> {
    let p = p.clone();
    tokio::spawn(async move { p.deliver(&msg).await })
}

async fn join_all(tasks: Vec<JoinHandle<Result<(), SinkError>>>, timeout: Duration) {
    let n = tasks.len();
    tokio::time::timeout(timeout, async {
        for t in tasks {
            t.await.unwrap().expect("deliver succeeds");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} deliveries did not all finish within {timeout:?}"));
}

/// Every sent message is in `got` at least once, and each copy carries its message's id.
fn assert_all_arrived(sent: &[Message], got: &[lapin::message::Delivery]) -> usize {
    let id_of_path: HashMap<&str, &str> = sent
        .iter()
        .map(|m| (m.envelope.file_info.path.as_str(), m.message_id()))
        .collect();
    for d in got {
        let path = path_of(d);
        let expected = id_of_path
            .get(path.as_str())
            .unwrap_or_else(|| panic!("unexpected message for {path}"));
        assert_eq!(
            message_id(d),
            *expected,
            "a copy of {path} has another message_id"
        );
    }
    let seen = ids(got);
    let missing: Vec<_> = sent
        .iter()
        .filter(|m| !seen.contains_key(m.message_id()))
        .map(|m| m.envelope.file_info.path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages never arrived, e.g. {:?}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(5)]
    );
    got.len() - sent.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let _restore = RestoreBroker;
    let admin = Admin::connect_suite().await;
    let exchange = unique("fe-restart");
    let queue = unique("q-restart");
    admin.bound_queue(&exchange, &queue).await;
    let _ = admin.connection.close(200, "setup done".into()).await;

    let instance = unique("restart");
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(suite_config(&instance, &exchange), cancel.clone());
    wait_connected(&p).await;

    // 5,000 messages fed over about 5 s, so the restart lands in the middle of the stream.
    const N: usize = 5_000;
    let sent: Vec<Message> = (0..N)
        .map(|i| message(&instance, EventType::FileDiscovered, i))
        .collect();
    let feeder = tokio::spawn({
        let p = p.clone();
        let sent = sent.clone();
        async move {
            let mut tasks = Vec::with_capacity(N);
            for batch in sent.chunks(50) {
                for m in batch {
                    tasks.push(spawn_deliver(&p, m.clone()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tasks
        }
    });

    wait_until("1,000 messages acked", Duration::from_secs(30), || {
        p.status().acked >= 1_000
    })
    .await;
    ctl(&["-q", "stop_app"]).await;
    wait_until(
        "the publisher notices the broker is gone",
        Duration::from_secs(10),
        || !p.is_connected(),
    )
    .await;
    let acked_at_stop = p.status().acked;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctl(&["-q", "start_app"]).await;

    let tasks = feeder.await.unwrap();
    join_all(tasks, Duration::from_secs(90)).await;
    let status = p.status();
    assert!(status.reconnects >= 1, "{status:?}");
    assert!(
        acked_at_stop < N as u64,
        "the restart must land mid-stream ({acked_at_stop} acked before it)"
    );
    cancel.cancel();
    p.closed().await;

    let admin = Admin::connect_suite().await;
    let got = admin.take_all(&queue).await;
    let duplicates = assert_all_arrived(&sent, &got);
    eprintln!(
        "restart mid-stream: {N} sent, {} received, {duplicates} duplicates, \
         {acked_at_stop} acked before the stop, {status:?}",
        got.len()
    );
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_up_then_up_ten_seconds_later() {
    let _serial = SERIAL.lock().await;
    let _restore = RestoreBroker;
    let admin = Admin::connect_suite().await;
    let exchange = unique("fe-late");
    let queue = unique("q-late");
    admin.bound_queue(&exchange, &queue).await;
    let _ = admin.connection.close(200, "setup done".into()).await;

    ctl(&["-q", "stop_app"]).await;
    let instance = unique("late");
    let cancel = CancellationToken::new();
    let mut c = suite_config(&instance, &exchange);
    c.backoff_max = Duration::from_secs(2);
    let p = AmqpPublisher::start(c, cancel.clone());
    const N: usize = 500;
    let sent: Vec<Message> = (0..N)
        .map(|i| message(&instance, EventType::FileCreated, i))
        .collect();
    let tasks: Vec<_> = sent.iter().map(|m| spawn_deliver(&p, m.clone())).collect();

    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = p.status();
    assert!(!status.connected, "{status:?}");
    assert_eq!(status.acked, 0);
    assert!(
        status.connect_failures >= 3,
        "it keeps retrying: {status:?}"
    );
    assert!(tasks.iter().all(|t| !t.is_finished()), "callers wait");

    ctl(&["-q", "start_app"]).await;
    join_all(tasks, Duration::from_secs(60)).await;
    assert_eq!(p.status().acked, N as u64);
    cancel.cancel();
    p.closed().await;

    let admin = Admin::connect_suite().await;
    let got = admin.take_all(&queue).await;
    assert_all_arrived(&sent, &got);
    assert_eq!(got.len(), N, "nothing was published twice");
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_alarm_pauses_publishing_then_resumes_without_loss() {
    let _serial = SERIAL.lock().await;
    let _restore = RestoreBroker;
    let admin = Admin::connect_suite().await;
    let exchange = unique("fe-alarm");
    let queue = unique("q-alarm");
    admin.bound_queue(&exchange, &queue).await;

    let instance = unique("alarm");
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(suite_config(&instance, &exchange), cancel.clone());
    wait_connected(&p).await;
    let mut sent: Vec<Message> = (0..50)
        .map(|i| message(&instance, EventType::FileModified, i))
        .collect();
    join_all(
        sent.iter().map(|m| spawn_deliver(&p, m.clone())).collect(),
        Duration::from_secs(20),
    )
    .await;

    ctl(&["-q", "set_vm_memory_high_watermark", "0.0000001"]).await;
    let more: Vec<Message> = (50..550)
        .map(|i| message(&instance, EventType::FileModified, i))
        .collect();
    let tasks: Vec<_> = more.iter().map(|m| spawn_deliver(&p, m.clone())).collect();
    sent.extend(more);
    wait_until(
        "the broker blocks the connection",
        Duration::from_secs(30),
        || p.is_blocked(),
    )
    .await;
    assert!(p.status().blocked);
    // What the broker had read before it blocked may still be confirmed; then nothing is.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_while_blocked = p.status().acked;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = p.status();
    assert!(status.blocked, "{status:?}");
    assert_eq!(
        status.acked, acked_while_blocked,
        "nothing is acked while blocked"
    );
    assert!(
        status.acked < sent.len() as u64,
        "publishing paused: {status:?}"
    );
    assert!(tasks.iter().any(|t| !t.is_finished()));

    ctl(&["-q", "set_vm_memory_high_watermark", "0.4"]).await;
    join_all(tasks, Duration::from_secs(60)).await;
    wait_until(
        "the connection is unblocked",
        Duration::from_secs(10),
        || !p.is_blocked(),
    )
    .await;
    cancel.cancel();
    p.closed().await;

    let got = admin.take_all(&queue).await;
    assert_all_arrived(&sent, &got);
    eprintln!(
        "memory alarm: {} sent, {} received, {acked_while_blocked} acked before the block",
        sent.len(),
        got.len()
    );
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_messages_are_republished_after_a_restart() {
    let _serial = SERIAL.lock().await;
    let _restore = RestoreBroker;
    let admin = Admin::connect_suite().await;
    let exchange = unique("fe-replay");
    let queue = unique("q-replay");
    admin.bound_queue(&exchange, &queue).await;
    let _ = admin.connection.close(200, "setup done".into()).await;

    let instance = unique("replay");
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(suite_config(&instance, &exchange), cancel.clone());
    wait_connected(&p).await;

    // A blocked connection holds published messages unconfirmed; a restart then cuts it, so
    // they can only arrive by being published again.
    ctl(&["-q", "set_vm_memory_high_watermark", "0.0000001"]).await;
    const N: usize = 300;
    let sent: Vec<Message> = (0..N)
        .map(|i| message(&instance, EventType::FileRenamed, i))
        .collect();
    let tasks: Vec<_> = sent.iter().map(|m| spawn_deliver(&p, m.clone())).collect();
    wait_until(
        "the broker blocks the connection",
        Duration::from_secs(30),
        || p.is_blocked(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = p.status();
    assert!(before.in_flight > 0, "{before:?}");
    ctl(&["-q", "stop_app"]).await;
    ctl(&["-q", "start_app"]).await;
    ctl(&["-q", "set_vm_memory_high_watermark", "0.4"]).await;

    join_all(tasks, Duration::from_secs(60)).await;
    let after = p.status();
    assert!(after.republished > 0, "{after:?}");
    assert!(after.reconnects >= 1, "{after:?}");
    cancel.cancel();
    p.closed().await;

    let admin = Admin::connect_suite().await;
    let got = admin.take_all(&queue).await;
    let duplicates = assert_all_arrived(&sent, &got);
    eprintln!(
        "replay after restart: {N} sent, {} received, {duplicates} duplicates, \
         before the stop {before:?}, after {after:?}",
        got.len()
    );
    admin.delete(&exchange, &[&queue]).await;
}
