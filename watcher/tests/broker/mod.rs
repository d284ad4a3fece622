//! The broker side of the watcher's AMQP tests: a plain lapin connection to declare, count and
//! drain queues, and `rabbitmqctl` with a guard that restores the broker however a test ends.
//! A test that cannot reach the broker fails with a message saying so; none is skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub struct Admin {
    pub connection: Connection,
    pub channel: Channel,
}

impl Admin {
    pub async fn connect() -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Connection::connect(&amqp_url(), ConnectionProperties::default()).await {
                Ok(connection) => {
                    let channel = connection.create_channel().await.unwrap();
                    return Self { connection, channel };
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!(
                    "cannot connect to RabbitMQ at AMQP_URL ({e}); run scripts/test, which starts one"
                ),
            }
        }
    }

    /// A durable topic exchange with a durable queue bound to `file.#`.
    pub async fn setup(&self, exchange: &str, queue: &str) {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let q = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), q, FieldTable::default())
            .await
            .unwrap();
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "file.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Consumes until `done` holds for what was received, or the timeout passes.
    pub async fn take_until(
        &self,
        queue: &str,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut consumer = self
            .channel
            .basic_consume(
                queue.into(),
                unique("c").as_str().into(),
                opts,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&got) {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => got.push(d),
                _ => break,
            }
        }
        got
    }

    pub async fn cleanup(&self, exchange: &str, queue: &str) {
        let _ = self
            .channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
        let _ = self
            .channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
}

pub fn body(d: &Delivery) -> serde_json::Value {
    serde_json::from_slice(&d.data).unwrap()
}

pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Brings the broker back (app started, normal memory watermark) when dropped, even when the
/// test panicked half-way, so one failure does not take every later broker test with it.
pub struct RestoreBroker;

impl Drop for RestoreBroker {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
        let _ = Command::new("rabbitmqctl")
            .args(["set_vm_memory_high_watermark", "0.4"])
            .output();
        let _ = Command::new("rabbitmqctl").args(["await_startup"]).output();
    }
}
