//! Helpers shared by the broker test binaries: a raw lapin connection for setting up and
//! reading queues, unique names, sample messages, `rabbitmqctl`, and a log capture.
//!
//! Every broker test needs the suite's own RabbitMQ node (`scripts/test` starts it and stops it
//! after; see `broker.rs`); the tests that do not disturb the broker use `AMQP_URL` instead when
//! it is set. A test that cannot reach its broker fails with a message saying what to do; none is
//! skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod broker;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::TimeZone;
use lapin::message::Delivery;
use lapin::types::AMQPValue;
use publisher::{AmqpConfig, Envelope, EventType, FileFacts, Message};

pub use broker::*;

/// A publisher config for the test broker ([`amqp_url`]), with quick backoff.
pub fn config(instance_id: &str, exchange: &str) -> AmqpConfig {
    config_for(&amqp_url(), instance_id, exchange)
}

/// The same on the suite's own node ([`suite_url`]), for the tests that disturb the broker or
/// look at its connections.
pub fn suite_config(instance_id: &str, exchange: &str) -> AmqpConfig {
    config_for(&suite_url(), instance_id, exchange)
}

fn config_for(url: &str, instance_id: &str, exchange: &str) -> AmqpConfig {
    let mut c = AmqpConfig::from_url(url, instance_id).expect("AMQP_URL is valid");
    c.exchange = exchange.to_owned();
    c.watched_directory = format!("/data/{instance_id}");
    c.backoff_initial = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c
}

/// A realistic message number `i` of `instance_id`.
pub fn message(instance_id: &str, event_type: EventType, i: usize) -> Message {
    let dir = PathBuf::from(format!("/data/{instance_id}"));
    let path = dir.join(format!("albums/2025/file-{i:06}.flac"));
    let old = dir.join(format!("incoming/file-{i:06}.flac"));
    let old_path = matches!(event_type, EventType::FileMoved | EventType::FileRenamed)
        .then_some(old.as_path());
    let facts = FileFacts {
        size: 1_000_000 + i as u64,
        sha256_hex: format!("{:064x}", i),
        xxh128_hex: format!("{:032x}", i),
    };
    let at = chrono::Utc.with_ymd_and_hms(2025, 8, 28, 10, 0, 0).unwrap()
        + chrono::Duration::microseconds(i as i64);
    Envelope::build(event_type, instance_id, &dir, &path, old_path, facts, at)
}

pub fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

pub fn header_str(d: &Delivery, key: &str) -> Option<String> {
    match header(d, key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

pub fn message_id(d: &Delivery) -> String {
    d.properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .expect("message_id")
}

/// Message ids seen, with how often each arrived.
pub fn ids(deliveries: &[Delivery]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for d in deliveries {
        *seen.entry(message_id(d)).or_insert(0) += 1;
    }
    seen
}

/// `rabbitmqctl list_connections name client_properties` on the suite's node.
pub fn list_connections() -> String {
    rabbitmqctl(&["-q", "list_connections", "name", "client_properties"])
}

/// Polls `cond` every 50 ms until it holds, or fails with `what`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the publisher is connected, or fails saying the broker is unreachable.
pub async fn wait_connected(p: &publisher::AmqpPublisher) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !p.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the publisher did not connect to RabbitMQ at {} within 20 s: is the broker up? \
             (scripts/test starts one; status {:?})",
            redacted_url(),
            p.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- log capture --------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Buffer> = OnceLock::new();

/// Captures every log line of this test binary (ours at debug, lapin's at info) from now on.
/// Tests tell their own lines apart by their unique instance id.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "publisher=debug,lapin=info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    });
}

/// Everything captured so far.
pub fn logs() -> String {
    let buffer = LOGS.get().expect("capture_logs() first");
    let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Captured lines that mention `needle`.
pub fn log_lines_with(needle: &str) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

pub fn path_of(d: &Delivery) -> String {
    let v: serde_json::Value = serde_json::from_slice(&d.data).expect("JSON body");
    v["file_info"]["path"].as_str().expect("path").to_owned()
}

pub fn is_under(p: &str, dir: &Path) -> bool {
    Path::new(p).starts_with(dir)
}
