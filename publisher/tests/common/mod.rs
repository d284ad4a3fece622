//! Helpers shared by the broker test binaries: a raw lapin connection for setting up and
//! reading queues, unique names, sample messages, `rabbitmqctl`, and a log capture.
//!
//! Every broker test needs a RabbitMQ at `AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); `scripts/test` starts one. A test that cannot reach
//! it fails with that message; none is skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::TimeZone;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use publisher::{AmqpConfig, Envelope, EventType, FileFacts, Message};

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

/// The broker URL without its password, for failure messages.
pub fn redacted_url() -> String {
    AmqpConfig::from_url(&amqp_url(), "test")
        .map(|c| c.redacted())
        .unwrap_or_else(|_| "<AMQP_URL is not a valid URL>".into())
}

/// A fresh name, so tests can run in parallel and leave nothing behind.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A publisher config for the test broker, with quick backoff.
pub fn config(instance_id: &str, exchange: &str) -> AmqpConfig {
    let mut c = AmqpConfig::from_url(&amqp_url(), instance_id).expect("AMQP_URL is valid");
    c.exchange = exchange.to_owned();
    c.watched_directory = format!("/data/{instance_id}");
    c.backoff_initial = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c
}

/// A plain lapin connection for setting up and reading the broker side.
pub struct Admin {
    pub connection: Connection,
    pub channel: Channel,
}

impl Admin {
    /// Connects or fails the test with a message that says what to do.
    pub async fn connect() -> Self {
        Self::try_connect().await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to RabbitMQ at {} ({e}). Broker tests need a running broker: \
                 run scripts/test, which starts one, or set AMQP_URL",
                redacted_url()
            )
        })
    }

    pub async fn try_connect() -> lapin::Result<Self> {
        let connection = Connection::connect(
            &amqp_url(),
            ConnectionProperties::default().with_connection_name("publisher-tests-admin".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Declares the durable topic exchange, as the publisher does.
    pub async fn exchange(&self, name: &str) {
        self.channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare exchange");
    }

    /// Declares a durable queue bound to `exchange` with `file.#`.
    pub async fn bound_queue(&self, exchange: &str, queue: &str) {
        self.exchange(exchange).await;
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "file.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    }

    /// Messages ready in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare")
            .message_count()
    }

    /// Reads exactly `n` messages (auto-ack), failing after `timeout`. Meant for a queue that
    /// holds `n` messages: the consumer is cancelled afterwards, but what the broker pushed
    /// meanwhile is gone.
    pub async fn take(&self, queue: &str, n: usize, timeout: Duration) -> Vec<Delivery> {
        let tag = unique("take");
        let mut consumer = self
            .channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let mut out = Vec::with_capacity(n);
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(d)) => out.push(d.expect("delivery")),
                Ok(None) => panic!("consumer ended after {} of {n} messages", out.len()),
                Err(_) => panic!("only {} of {n} messages arrived in {timeout:?}", out.len()),
            }
        }
        self.channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
            .expect("cancel consumer");
        out
    }

    /// Reads everything that is in `queue` now.
    pub async fn take_all(&self, queue: &str) -> Vec<Delivery> {
        let n = self.depth(queue).await as usize;
        self.take(queue, n, Duration::from_secs(60)).await
    }

    pub async fn delete(&self, exchange: &str, queues: &[&str]) {
        for q in queues {
            let _ = self
                .channel
                .queue_delete((*q).into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
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
    Envelope::build(event_type, instance_id, &dir, &path, old_path, &facts, at)
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

/// Runs `rabbitmqctl`; fails the test with its output when it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rabbitmqctl {args:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {text}");
    text
}

/// `rabbitmqctl list_connections name client_properties`.
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
