//! The broker side of the harness: a topology of its own per run (a durable topic exchange and a
//! durable queue bound with `file.#`, both with unique names, deleted afterwards, so runs never
//! see each other's messages or disturb anyone else's), and a consumer that timestamps each
//! delivery as it arrives. No mock: every figure goes through the real broker at `AMQP_URL`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;

/// The broker the tests use, unless `AMQP_URL` says otherwise: the suite's own node
/// `fwtest-1@localhost` (`scripts/test-broker up`, or `scripts/test-broker run CMD…`).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5781/%2f";

/// `AMQP_URL`, or the default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

/// Opens a connection and one channel.
///
/// # Errors
/// The broker does not answer or refuses the login; the message says what to do.
pub async fn connect(url: &str, name: &str) -> Result<Channel> {
    let connection = Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .context(
        "cannot connect to RabbitMQ at AMQP_URL (default: the suite's node): start it with \
         `scripts/test-broker up` (`scripts/test-broker down` after), run under \
         `scripts/test-broker run …`, or set AMQP_URL",
    )?;
    // The channel keeps the connection open; the connection handle may go.
    Ok(connection.create_channel().await?)
}

/// One delivery, stamped when the consumer received it.
#[derive(Debug)]
pub struct Received {
    /// When the harness's consumer got it.
    pub at: Instant,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// An exchange and a bound queue that belong to one run.
#[derive(Debug)]
pub struct Topology {
    channel: Channel,
    /// The exchange the service under test publishes to.
    pub exchange: String,
    /// The queue that collects everything published to it.
    pub queue: String,
}

impl Topology {
    /// Declares a fresh exchange (durable topic, as the service declares it) and a durable queue
    /// bound to it with `file.#`, both named after `tag` and a UUID.
    ///
    /// # Errors
    /// Any broker error.
    pub async fn declare(url: &str, tag: &str) -> Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let exchange = format!("e2e-{tag}-{id}");
        let queue = format!("e2e-{tag}-q-{id}");
        let channel = connect(url, &format!("e2e-admin-{tag}")).await?;
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "file.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            channel,
            exchange,
            queue,
        })
    }

    /// Messages waiting in the queue.
    ///
    /// # Errors
    /// Any broker error.
    pub async fn depth(&self) -> Result<u32> {
        Ok(self
            .channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?
            .message_count())
    }

    /// Drops every waiting message.
    ///
    /// # Errors
    /// Any broker error.
    pub async fn purge(&self) -> Result<()> {
        self.channel
            .queue_purge(self.queue.as_str().into(), QueuePurgeOptions::default())
            .await?;
        Ok(())
    }

    /// Starts consuming (auto-ack) on a channel of its own; every delivery is stamped on
    /// arrival and sent to the consumer's receiver.
    ///
    /// # Errors
    /// Any broker error.
    pub async fn consume(&self, url: &str) -> Result<Consumer> {
        let channel = connect(url, "e2e-consumer").await?;
        let mut stream = channel
            .basic_consume(
                self.queue.as_str().into(),
                "e2e".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = stream.next().await {
                let received = Received {
                    at: Instant::now(),
                    body: delivery.data,
                };
                if tx.send(received).is_err() {
                    break;
                }
            }
        });
        Ok(Consumer { channel, rx })
    }

    /// Reads everything a finished run left in the queue: `n` messages are expected, and
    /// anything arriving within `quiet` after them is kept too, to be flagged as extra.
    ///
    /// # Errors
    /// As [`Consumer::collect`].
    pub async fn drain(
        &self,
        url: &str,
        n: usize,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Vec<Received>> {
        let mut consumer = self.consume(url).await?;
        let mut got = Vec::with_capacity(n);
        let result = consumer.collect(&mut got, n, quiet, timeout).await;
        consumer.close().await;
        result.map(|()| got)
    }

    /// Deletes the queue and the exchange.
    ///
    /// # Errors
    /// Any broker error.
    pub async fn delete(self) -> Result<()> {
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        let _ = self.channel.close(200, "done".into()).await;
        Ok(())
    }
}

/// A running consumer. Close it before the queue is used again, or it takes the next run's
/// messages.
#[derive(Debug)]
pub struct Consumer {
    channel: Channel,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Consumer {
    /// Receives until `into` holds `n` messages, then `quiet` longer, so that a duplicate or an
    /// unexpected event is caught too. Fails after `timeout` with the count so far.
    ///
    /// # Errors
    /// Fewer than `n` messages arrived in `timeout`, or the consumer ended.
    pub async fn collect(
        &mut self,
        into: &mut Vec<Received>,
        n: usize,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while into.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => into.push(r),
                Ok(None) => bail!("the consumer ended after {} of {n} messages", into.len()),
                Err(_) => bail!(
                    "only {} of {n} messages arrived within {timeout:?}",
                    into.len()
                ),
            }
        }
        let quiet_end = tokio::time::Instant::now() + quiet;
        while let Ok(Some(r)) = tokio::time::timeout_at(quiet_end, self.rx.recv()).await {
            into.push(r);
        }
        Ok(())
    }

    /// Cancels the consumer by closing its channel.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
    }
}
