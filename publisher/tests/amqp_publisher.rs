//! The AMQP publisher against a real RabbitMQ at `AMQP_URL` (default: the suite's own node,
//! `scripts/test-broker`). These tests do not disturb the broker; each uses its own exchange and
//! queue names and deletes them. The two that list the broker's connections use the suite's node
//! always, since `rabbitmqctl` reaches only that one. Tests that stop or alarm the broker are in
//! `amqp_broker_chaos.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use lapin::options::QueuePurgeOptions;
use lapin::types::AMQPValue;
use publisher::{AmqpConfig, AmqpPublisher, EventType, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_and_properties_match_the_contract() {
    let admin = Admin::connect().await;
    let exchange = unique("fe-contract");
    let queue = unique("q-contract");
    admin.bound_queue(&exchange, &queue).await;

    let instance = unique("contract");
    let cancel = CancellationToken::new();
    let sink = Sink::Amqp(AmqpPublisher::start(
        config(&instance, &exchange),
        cancel.clone(),
    ));
    let sent = [
        message(&instance, EventType::FileDiscovered, 1),
        message(&instance, EventType::FileMoved, 2),
        message(&instance, EventType::FileDeleted, 3),
    ];
    for m in &sent {
        sink.deliver(m).await.unwrap();
    }

    let got = admin
        .take(&queue, sent.len(), Duration::from_secs(10))
        .await;
    for d in &got {
        let id = message_id(d);
        let m = sent
            .iter()
            .find(|m| m.message_id() == id)
            .unwrap_or_else(|| panic!("unexpected message_id {id}"));
        let e = &m.envelope;

        // Routing.
        assert_eq!(d.exchange.as_str(), exchange);
        assert_eq!(d.routing_key.as_str(), m.routing_key());
        assert_eq!(
            d.routing_key.as_str(),
            format!("file.{}", &e.event_type.as_str()["file_".len()..])
        );

        // Body: field for field.
        let body: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(body, serde_json::to_value(e).unwrap());
        assert_eq!(body["event_type"], e.event_type.as_str());
        assert_eq!(body["instance_id"], instance.as_str());
        assert_eq!(body["watched_directory"], format!("/data/{instance}"));
        assert_eq!(body["correlation_id"], e.correlation_id.as_str());
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        let info = &body["file_info"];
        assert!(info["size_bytes"].is_string(), "size_bytes is a string");
        assert_eq!(info["sha256_hash"].as_str().unwrap().len(), 64);
        assert_eq!(info["xxh128_hash"].as_str().unwrap().len(), 32);
        assert_eq!(info["extension"], ".flac");
        assert_eq!(
            info.get("old_path").is_some(),
            e.event_type == EventType::FileMoved,
            "old_path only on moves and renames"
        );

        // Properties.
        let p = &d.properties;
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), m.message_id());
        assert_eq!(
            p.correlation_id().as_ref().unwrap().as_str(),
            e.correlation_id
        );
        let ts = chrono::DateTime::parse_from_rfc3339(&e.timestamp)
            .unwrap()
            .timestamp();
        assert_eq!(*p.timestamp(), Some(ts as u64));
        assert_eq!(p.app_id().as_ref().unwrap().as_str(), "file-watcher");
        assert_eq!(
            header_str(d, "instance_id").as_deref(),
            Some(instance.as_str())
        );
        assert_eq!(
            header_str(d, "event_type").as_deref(),
            Some(e.event_type.as_str())
        );
        assert!(matches!(
            header(d, "instance_id"),
            Some(AMQPValue::LongString(_))
        ));
    }
    let mut got_ids: Vec<_> = got.iter().map(message_id).collect();
    let mut sent_ids: Vec<_> = sent.iter().map(|m| m.message_id().to_owned()).collect();
    got_ids.sort();
    sent_ids.sort();
    assert_eq!(got_ids, sent_ids);

    cancel.cancel();
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_is_named_and_carries_client_properties() {
    let _admin = Admin::connect_suite().await;
    let exchange = unique("fe-name");
    let instance = unique("named");
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(suite_config(&instance, &exchange), cancel.clone());
    wait_connected(&p).await;

    let listing = list_connections();
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("file_watcher_{instance}")))
        .unwrap_or_else(|| {
            panic!("rabbitmqctl list_connections shows no file_watcher_{instance}:\n{listing}")
        });
    for want in [
        format!("{{\"connection_name\",\"file_watcher_{instance}\"}}"),
        format!("{{\"instance_id\",\"{instance}\"}}"),
        format!("{{\"watched_directory\",\"/data/{instance}\"}}"),
        "{\"product\",\"file-watcher\"}".to_owned(),
        format!("{{\"version\",\"{}\"}}", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(line.contains(&want), "{want} missing from: {line}");
    }

    cancel.cancel();
    p.closed().await;
    assert!(!p.is_connected());
    let admin = Admin::connect_suite().await;
    admin.delete(&exchange, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported_once_per_attempt_and_never_leaks() {
    capture_logs();
    let _admin = Admin::connect().await; // the broker itself must be reachable
    let good = AmqpConfig::from_url(&amqp_url(), "x").unwrap();
    let password = format!("Wr0ng-{}", uuid::Uuid::new_v4().simple());
    let instance = unique("badpass");
    let mut c = AmqpConfig::from_parts(
        good.host(),
        good.port(),
        good.user(),
        password.clone(),
        good.vhost(),
        instance.as_str(),
    )
    .unwrap();
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(400);
    assert!(!format!("{c:?}").contains(&password));

    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(c, cancel.clone());
    let msg = message(&instance, EventType::FileCreated, 1);
    let pending = tokio::spawn({
        let p = p.clone();
        async move { p.deliver(&msg).await }
    });
    wait_until("three refused logins", Duration::from_secs(20), || {
        p.status().connect_failures >= 3
    })
    .await;
    assert!(!p.is_connected());
    assert!(
        !pending.is_finished(),
        "deliver waits while the login is refused"
    );

    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("deliver returns after cancel")
        .unwrap();
    assert!(matches!(outcome, Err(SinkError::Closed)), "{outcome:?}");
    p.closed().await;

    let refused = log_lines_with("ACCESS_REFUSED");
    let ours: Vec<_> = refused.iter().filter(|l| l.contains(&instance)).collect();
    assert!(
        ours.len() >= 3,
        "one ACCESS_REFUSED line per attempt expected, got {ours:#?}"
    );
    for l in &ours {
        assert!(l.contains("ERROR"), "{l}");
        assert!(l.contains("refused the login (ACCESS_REFUSED)"), "{l}");
        assert!(l.contains(":***@"), "the URL is shown redacted: {l}");
    }
    let all = logs();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{all}");
    }
    assert!(
        !all.contains(&password),
        "the password appears in the logs:\n{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_waited_for_and_cancel_ends_waiting() {
    capture_logs();
    let instance = unique("unreachable");
    let mut c =
        AmqpConfig::from_url("amqp://guest:guest@127.0.0.1:1/%2f", instance.as_str()).unwrap();
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(c, cancel.clone());
    let pending = tokio::spawn({
        let p = p.clone();
        let msg = message(&instance, EventType::FileCreated, 1);
        async move { p.deliver(&msg).await }
    });
    wait_until("several failed attempts", Duration::from_secs(10), || {
        p.status().connect_failures >= 3
    })
    .await;
    assert!(!pending.is_finished());
    assert_eq!(p.status().in_flight, 1);
    cancel.cancel();
    let outcome = pending.await.unwrap();
    assert!(matches!(outcome, Err(SinkError::Closed)), "{outcome:?}");
    p.closed().await;
    let lines = log_lines_with(&instance);
    let failures = lines
        .iter()
        .filter(|l| l.contains("cannot connect to RabbitMQ"))
        .count();
    assert!(failures >= 3, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_exchange_are_told_apart() {
    let admin = Admin::connect_suite().await;
    let exchange = unique("fe-two");
    let queue = unique("q-two");
    admin.bound_queue(&exchange, &queue).await;

    let cancel = CancellationToken::new();
    let a_id = unique("inst-a");
    let b_id = unique("inst-b");
    let a = AmqpPublisher::start(suite_config(&a_id, &exchange), cancel.clone());
    let b = AmqpPublisher::start(suite_config(&b_id, &exchange), cancel.clone());
    const EACH: usize = 200;
    let mut tasks = Vec::new();
    for i in 0..EACH {
        for (p, id) in [(&a, &a_id), (&b, &b_id)] {
            let p = p.clone();
            let msg = message(id, EventType::FileDiscovered, i);
            tasks.push(tokio::spawn(async move { p.deliver(&msg).await }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    let listing = list_connections();
    for id in [&a_id, &b_id] {
        assert!(
            listing.contains(&format!("\"file_watcher_{id}\"")),
            "connection file_watcher_{id} not listed:\n{listing}"
        );
    }

    let got = admin.take(&queue, 2 * EACH, Duration::from_secs(20)).await;
    let mut per_instance: HashMap<String, usize> = HashMap::new();
    for d in &got {
        let header = header_str(d, "instance_id").expect("instance_id header");
        let body: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(
            body["instance_id"],
            header.as_str(),
            "header and body agree"
        );
        *per_instance.entry(header).or_default() += 1;
    }
    assert_eq!(per_instance.get(&a_id), Some(&EACH));
    assert_eq!(per_instance.get(&b_id), Some(&EACH));
    assert_eq!(a.status().acked, EACH as u64);
    assert_eq!(b.status().acked, EACH as u64);

    cancel.cancel();
    a.closed().await;
    b.closed().await;
    admin.delete(&exchange, &[&queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_messages_are_counted_and_logged_once_per_routing_key() {
    capture_logs();
    let admin = Admin::connect().await;
    let exchange = unique("fe-unroutable"); // no queue bound
    let instance = unique("returns");
    let cancel = CancellationToken::new();
    let p = AmqpPublisher::start(config(&instance, &exchange), cancel.clone());
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for i in 0..EACH {
        for kind in [EventType::FileCreated, EventType::FileDeleted] {
            let p = p.clone();
            let msg = message(&instance, kind, i);
            tasks.push(tokio::spawn(async move { p.deliver(&msg).await }));
        }
    }
    for t in tasks {
        t.await.unwrap().expect("a returned message is still acked");
    }
    let status = p.status();
    assert_eq!(status.acked, 2 * EACH as u64);
    assert_eq!(status.returned, 2 * EACH as u64, "{status:?}");

    let lines: Vec<_> = log_lines_with("returned an unroutable message")
        .into_iter()
        .filter(|l| l.contains(&instance))
        .collect();
    assert_eq!(lines.len(), 2, "one line per routing key: {lines:#?}");
    for key in ["file.created", "file.deleted"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&format!("routing_key={key}")))
                .count(),
            1,
            "{key}: {lines:#?}"
        );
    }

    cancel.cancel();
    p.closed().await;
    admin.delete(&exchange, &[]).await;
}

/// `OnUnroutable::Hold`: a message no queue takes is not confirmed to its caller; other
/// routing keys go on meanwhile; once a queue is bound for it, it is delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_wait_for_a_binding_without_blocking_other_routing_keys() {
    let admin = Admin::connect().await;
    let exchange = unique("fe-hold");
    let (created_q, deleted_q) = (unique("q-hold-created"), unique("q-hold-deleted"));
    // A consumer of file.created only.
    admin.key_queue(&exchange, &created_q, "file.created").await;
    let instance = unique("hold");
    let cancel = CancellationToken::new();
    let mut c = config(&instance, &exchange);
    c.on_unroutable = publisher::OnUnroutable::Hold;
    let p = AmqpPublisher::start(c, cancel.clone());

    let held: Vec<_> = (0..3)
        .map(|i| {
            let p = p.clone();
            let msg = message(&instance, EventType::FileDeleted, i);
            tokio::spawn(async move { p.deliver(&msg).await })
        })
        .collect();
    // The other routing key is not held up by them.
    for i in 0..20 {
        tokio::time::timeout(
            Duration::from_secs(10),
            p.deliver(&message(&instance, EventType::FileCreated, 100 + i)),
        )
        .await
        .expect("file.created waits behind held file.deleted")
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.unroutable() != [("file.deleted", 3)] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?} {:?}",
            p.unroutable(),
            p.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.status().held, 3);
    assert!(
        held.iter().all(|t| !t.is_finished()),
        "confirmed while held"
    );

    // A consumer binds file.deleted: the held messages are delivered, and each only once.
    admin.bound_queue(&exchange, &deleted_q).await;
    for t in held {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("held messages delivered once a queue is bound")
            .unwrap()
            .unwrap();
    }
    assert!(p.unroutable().is_empty(), "{:?}", p.unroutable());
    assert_eq!(p.status().held, 0);
    assert_eq!(admin.depth(&deleted_q).await, 3);
    let got = admin.take(&deleted_q, 3, Duration::from_secs(10)).await;
    assert!(ids(&got).values().all(|n| *n == 1), "{:?}", ids(&got));

    cancel.cancel();
    p.closed().await;
    admin.delete(&exchange, &[&created_q, &deleted_q]).await;
}

/// Many routable and a few unroutable messages in flight at once, so that the broker acks
/// several at a time (`multiple`) and returns sit among them. lapin attaches a return to
/// whichever confirmation of that ack it resolves first; each must still reach its own message:
/// no unroutable one is confirmed, and no routable one is held (which would publish it twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_reach_their_own_messages_when_acks_cover_many() {
    capture_logs();
    let admin = Admin::connect().await;
    let exchange = unique("fe-mixed");
    let (created_q, deleted_q) = (unique("q-mixed-created"), unique("q-mixed-deleted"));
    admin.key_queue(&exchange, &created_q, "file.created").await;
    let instance = unique("mixed");
    let cancel = CancellationToken::new();
    let mut c = config(&instance, &exchange);
    c.on_unroutable = publisher::OnUnroutable::Hold;
    let p = AmqpPublisher::start(c, cancel.clone());

    const ROUTABLE: usize = 2_000;
    const UNROUTABLE: usize = 40;
    let mut routable = Vec::with_capacity(ROUTABLE);
    let mut unroutable = Vec::with_capacity(UNROUTABLE);
    for i in 0..ROUTABLE {
        if i % (ROUTABLE / UNROUTABLE) == 0 {
            let (p, msg) = (p.clone(), message(&instance, EventType::FileDeleted, i));
            unroutable.push(tokio::spawn(async move { p.deliver(&msg).await }));
        }
        let (p, msg) = (p.clone(), message(&instance, EventType::FileCreated, i));
        routable.push(tokio::spawn(async move { p.deliver(&msg).await }));
    }
    for t in routable {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a routable message was held")
            .unwrap()
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.unroutable() != [("file.deleted", UNROUTABLE as u64)] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?} {:?} {:#?}",
            p.unroutable(),
            p.status(),
            log_lines_with("after it was confirmed")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let confirmed = unroutable.iter().filter(|t| t.is_finished()).count();
    assert_eq!(confirmed, 0, "unroutable messages confirmed as delivered");
    assert!(log_lines_with("after it was confirmed").is_empty());
    // Each routable message went out once: none was taken for a returned one and sent again.
    assert_eq!(admin.depth(&created_q).await, ROUTABLE as u32);

    admin.bound_queue(&exchange, &deleted_q).await;
    for t in unroutable {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("held messages delivered once a queue is bound")
            .unwrap()
            .unwrap();
    }
    assert_eq!(admin.depth(&deleted_q).await, UNROUTABLE as u32);
    assert_eq!(admin.depth(&created_q).await, ROUTABLE as u32);

    cancel.cancel();
    p.closed().await;
    admin.delete(&exchange, &[&created_q, &deleted_q]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_messages_are_published_again_until_acked() {
    capture_logs();
    let admin = Admin::connect().await;
    let exchange = unique("fe-nack");
    let queue = unique("q-nack");
    admin.bounded_queue(&exchange, &queue, 3).await;

    let instance = unique("nack");
    let cancel = CancellationToken::new();
    let mut c = config(&instance, &exchange);
    c.backoff_initial = Duration::from_millis(50);
    let p = AmqpPublisher::start(c, cancel.clone());
    let sent: Vec<_> = (0..4)
        .map(|i| message(&instance, EventType::FileModified, i))
        .collect();
    for m in &sent[..3] {
        p.deliver(m).await.unwrap();
    }
    let last = tokio::spawn({
        let p = p.clone();
        let m = sent[3].clone();
        async move { p.deliver(&m).await }
    });
    wait_until(
        "the broker nacks the fourth message twice",
        Duration::from_secs(10),
        || p.status().nacked >= 2,
    )
    .await;
    assert!(
        !last.is_finished(),
        "a nacked message is not reported as delivered"
    );
    assert_eq!(p.status().acked, 3);

    // Make room: the next retry is acked.
    let purged = admin
        .channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    tokio::time::timeout(Duration::from_secs(10), last)
        .await
        .expect("delivered once the queue has room")
        .unwrap()
        .unwrap();
    let fourth = admin.take(&queue, 1, Duration::from_secs(5)).await;
    assert_eq!(
        message_id(&fourth[0]),
        sent[3].message_id(),
        "same message_id"
    );
    let status = p.status();
    assert!(status.republished >= 2, "{status:?}");
    let warned: Vec<_> = log_lines_with("RabbitMQ nacked message")
        .into_iter()
        .filter(|l| l.contains(&instance) && l.contains("WARN"))
        .collect();
    assert_eq!(warned.len(), 1, "nacks are logged as a sample: {warned:#?}");

    cancel.cancel();
    p.closed().await;
    admin.delete(&exchange, &[&queue]).await;
}

/// The writer queues many publishes with lapin before their frames are written (one io-loop
/// wake-up for all of them): each must still get its own confirm. A queue that takes 50 of 300
/// messages sent at once acks the first 50 on the wire and nacks the rest, so the callers told
/// "delivered" must be exactly those whose messages are in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_nacks_of_a_pipelined_window_reach_their_own_messages() {
    capture_logs();
    let admin = Admin::connect().await;
    let exchange = unique("fe-pipelined");
    let queue = unique("q-pipelined");
    const TAKEN: usize = 50;
    const SENT: usize = 300;
    admin.bounded_queue(&exchange, &queue, TAKEN as i64).await;

    let instance = unique("pipelined");
    let cancel = CancellationToken::new();
    let mut c = config(&instance, &exchange);
    // Nacked messages are published again only after the checks below.
    c.backoff_initial = Duration::from_secs(600);
    let p = AmqpPublisher::start(c, cancel.clone());
    let sent: Vec<_> = (0..SENT)
        .map(|i| message(&instance, EventType::FileCreated, i))
        .collect();
    let tasks: Vec<_> = sent
        .iter()
        .map(|m| {
            let (p, m) = (p.clone(), m.clone());
            tokio::spawn(async move { p.deliver(&m).await })
        })
        .collect();
    wait_until(
        "every message acked or nacked once",
        Duration::from_secs(30),
        || {
            let s = p.status();
            s.acked + s.nacked >= SENT as u64
        },
    )
    .await;
    let status = p.status();
    assert_eq!(
        (status.acked, status.nacked),
        (TAKEN as u64, (SENT - TAKEN) as u64),
        "{status:?}"
    );
    // A caller's answer follows its confirm at once; give the last ones a moment.
    wait_until("50 callers answered", Duration::from_secs(5), || {
        tasks.iter().filter(|t| t.is_finished()).count() >= TAKEN
    })
    .await;
    let told_delivered: std::collections::BTreeSet<String> = sent
        .iter()
        .zip(&tasks)
        .filter(|(_, t)| t.is_finished())
        .map(|(m, _)| m.message_id().to_owned())
        .collect();
    let in_queue: std::collections::BTreeSet<String> = admin
        .take(&queue, TAKEN, Duration::from_secs(10))
        .await
        .iter()
        .map(message_id)
        .collect();
    assert_eq!(told_delivered.len(), TAKEN);
    assert_eq!(told_delivered, in_queue);

    cancel.cancel();
    p.closed().await;
    for t in tasks {
        let _ = t.await;
    }
    admin.delete(&exchange, &[&queue]).await;
}
