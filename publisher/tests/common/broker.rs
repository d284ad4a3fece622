//! The broker side of every AMQP test and bench: the test broker's URL, unique names, a plain
//! lapin connection that declares, counts, reads and deletes, `rabbitmqctl`, and a guard that
//! puts the broker back however a test ends.
//!
//! One file for three users: the publisher's tests include it as a module, and the watcher's
//! tests and the publish bench include it with `#[path]`, so the topology they read from is
//! declared the same way everywhere.
//!
//! The broker is the suite's own RabbitMQ node `fwtest-1@localhost` (`scripts/test-broker`, which
//! `scripts/test` starts and stops), never the machine's own node. Tests that only publish and
//! read use `AMQP_URL` instead when it is set; tests that stop, alarm or administer the broker
//! always use the suite's node ([`suite_url`], [`rabbitmqctl`]).
//!
//! A test that cannot reach the broker fails with a message saying what to do; none is skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use publisher::AmqpConfig;

/// The suite's node 1: its name and AMQP port (as `scripts/test-broker` starts it).
pub const SUITE_NODE: &str = "fwtest-1@localhost";
pub const SUITE_PORT: u16 = 5781;
/// The suite's node 1, the broker of every test unless `AMQP_URL` names another.
pub const SUITE_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5781/%2f";

/// What to do when the suite's broker is not there.
pub const START_HINT: &str = "run scripts/test, which starts the suite's own RabbitMQ node and \
     stops it after, or `scripts/test-broker up` before `cargo test` (and `scripts/test-broker \
     down` after)";

/// The broker of the tests that only publish and read: `AMQP_URL`, or the suite's node.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| SUITE_AMQP_URL.to_owned())
}

/// The broker of the tests that stop, alarm or administer it: always the suite's own node, so
/// `AMQP_URL` never points them at a broker someone else uses.
pub fn suite_url() -> String {
    SUITE_AMQP_URL.to_owned()
}

/// The broker URL without its password, for failure messages.
pub fn redacted_url() -> String {
    redacted(&amqp_url())
}

fn redacted(url: &str) -> String {
    AmqpConfig::from_url(url, "test")
        .map(|c| c.redacted())
        .unwrap_or_else(|_| "<AMQP_URL is not a valid URL>".into())
}

/// A fresh name, so tests can run in parallel and leave nothing behind.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A plain lapin connection for setting up and reading the broker side.
pub struct Admin {
    pub connection: Connection,
    pub channel: Channel,
}

impl Admin {
    /// Connects to [`amqp_url`] or fails the test with a message that says what to do. Retries
    /// for a while first: a broker test that ran just before may have restarted the broker.
    pub async fn connect() -> Self {
        Self::connect_to(&amqp_url()).await
    }

    /// The same on the suite's own node ([`suite_url`]), for the tests that disturb it.
    pub async fn connect_suite() -> Self {
        Self::connect_to(&suite_url()).await
    }

    pub async fn connect_to(url: &str) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Self::try_connect_to(url).await {
                Ok(admin) => return admin,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!(
                    "cannot connect to RabbitMQ at {} ({e}). Broker tests need a running broker: \
                     {START_HINT}; or set AMQP_URL for the tests that do not stop the broker",
                    redacted(url)
                ),
            }
        }
    }

    pub async fn try_connect() -> lapin::Result<Self> {
        Self::try_connect_to(&amqp_url()).await
    }

    pub async fn try_connect_to(url: &str) -> lapin::Result<Self> {
        let connection = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("tests-admin".into()),
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

    /// Declares the exchange and a durable queue bound to it with `file.#`: what a downstream
    /// consumer of every event declares.
    pub async fn bound_queue(&self, exchange: &str, queue: &str) {
        self.declare_bound(exchange, queue, FieldTable::default())
            .await;
    }

    /// Declares the exchange and a queue bound to it with one routing key only: a consumer of
    /// that one event type.
    pub async fn key_queue(&self, exchange: &str, queue: &str, key: &str) {
        self.exchange(exchange).await;
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare queue");
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
    }

    /// The same with a quorum queue: the topology recommended to consumers on a cluster.
    pub async fn quorum_queue(&self, exchange: &str, queue: &str) {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
        self.declare_bound(exchange, queue, args).await;
    }

    /// The same with a queue that holds at most `max` messages and overflows with
    /// `reject-publish`: the broker nacks what it cannot take.
    pub async fn bounded_queue(&self, exchange: &str, queue: &str, max: i64) {
        let mut args = FieldTable::default();
        args.insert(
            "x-max-length".into(),
            lapin::types::AMQPValue::LongLongInt(max),
        );
        args.insert(
            "x-overflow".into(),
            lapin::types::AMQPValue::LongString("reject-publish".into()),
        );
        self.declare_bound(exchange, queue, args).await;
    }

    async fn declare_bound(&self, exchange: &str, queue: &str, args: FieldTable) {
        self.exchange(exchange).await;
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
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

    /// Drops every message in `queue`.
    pub async fn purge(&self, queue: &str) {
        self.channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .expect("purge queue");
    }

    /// Consumes (auto-ack) until `done` holds for what was received, or `timeout` passes;
    /// returns what arrived either way. The consumer is cancelled afterwards.
    ///
    /// `done` runs after every delivery, so it must be cheap: a check that re-reads everything
    /// received is quadratic, and over thousands of messages in a debug build it can outlast
    /// `timeout` on its own. Keep state in the closure and look only at what is new.
    pub async fn take_until(
        &self,
        queue: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
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
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&got) {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => got.push(d),
                // Timed out, or the consumer ended (a broker restart): return what arrived.
                _ => break,
            }
        }
        let _ = self
            .channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        got
    }

    /// Reads exactly `n` messages, failing after `timeout`. Meant for a queue that holds `n`
    /// messages: what the broker pushed beyond them before the cancel is gone.
    pub async fn take(&self, queue: &str, n: usize, timeout: Duration) -> Vec<Delivery> {
        let got = self.take_until(queue, timeout, |got| got.len() >= n).await;
        assert_eq!(
            got.len(),
            n,
            "only {} of {n} messages arrived in {timeout:?}",
            got.len()
        );
        got
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

/// The repository's `scripts/test-broker`.
pub fn test_broker_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-broker")
}

/// `rabbitmqctl` against a node of the suite (`scripts/test-broker ctl`, which brings the
/// node's name, cookie and epmd); `None` when it cannot be run at all.
pub fn ctl_output(node: &str, args: &[&str]) -> Option<std::process::Output> {
    Command::new(test_broker_script())
        .args(["ctl", "-n", node])
        .args(args)
        .output()
        .ok()
}

/// Runs `rabbitmqctl` on the suite's node 1; fails the test with its output when it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    rabbitmqctl_on(SUITE_NODE, args)
}

/// Runs `rabbitmqctl` on the suite's node `node`; fails the test with its output when it fails.
pub fn rabbitmqctl_on(node: &str, args: &[&str]) -> String {
    let out = ctl_output(node, args).unwrap_or_else(|| {
        panic!(
            "cannot run {} ctl -n {node} {args:?}",
            test_broker_script().display()
        )
    });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rabbitmqctl -n {node} {args:?} failed ({START_HINT}): {text}"
    );
    text
}

/// Puts the suite's broker back the way the other tests expect it (app running, normal memory
/// watermark, accepting connections) when dropped, pass or fail, so one failure does not take
/// every later broker test with it.
pub struct RestoreBroker;

impl Drop for RestoreBroker {
    fn drop(&mut self) {
        restore_broker();
    }
}

pub fn restore_broker() {
    let run = |args: &[&str]| {
        let _ = ctl_output(SUITE_NODE, args);
    };
    run(&["-q", "start_app"]);
    run(&["-q", "set_vm_memory_high_watermark", "0.4"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", SUITE_PORT)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    run(&["-q", "await_startup"]);
}
