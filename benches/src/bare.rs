//! The publishing ceiling: bare lapin, one task, pre-serialised envelopes with the contract's
//! properties, persistent, `mandatory`, and a pipelined window of unconfirmed messages awaited
//! oldest first. Nothing the service does per event (scan, stat, hash, store) is in it, so the
//! service's rate divided by this one is the share the broker path leaves for everything else.
//!
//! Shared by the criterion-free publish bench (`benches/publish.rs`) and the e2e harness.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};
use publisher::Message;

/// One message ready to go: body, properties and routing key.
#[derive(Debug)]
pub struct Prepared {
    body: Vec<u8>,
    properties: BasicProperties,
    routing_key: &'static str,
}

impl Prepared {
    /// Bytes of JSON.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty (it never is for an envelope).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// Serialises the messages and their properties up front, so the timed loop only publishes.
///
/// # Errors
/// An envelope that does not serialise.
pub fn prepare(messages: &[Message]) -> Result<Vec<Prepared>> {
    messages
        .iter()
        .map(|m| {
            Ok(Prepared {
                body: m.to_json()?,
                properties: properties(m),
                routing_key: m.routing_key(),
            })
        })
        .collect()
}

/// The contract's properties, as `AmqpPublisher` sets them.
pub fn properties(m: &Message) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "instance_id".into(),
        AMQPValue::LongString(LongString::from(m.envelope.instance_id.as_str())),
    );
    headers.insert(
        "event_type".into(),
        AMQPValue::LongString(LongString::from(m.envelope.event_type.as_str())),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(m.message_id().into())
        .with_correlation_id(m.envelope.correlation_id.as_str().into())
        .with_timestamp(1_756_375_200)
        .with_app_id("file-watcher".into())
        .with_headers(headers)
}

/// Puts `channel` in confirm mode and publishes every message to `exchange`, keeping at most
/// `window` unconfirmed; returns the time from the first publish to the last confirm.
///
/// # Errors
/// A broker error, or a message the broker did not Ack.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    prepared: &[Prepared],
    window: usize,
) -> Result<Duration> {
    let out = Confirming::new(channel, exchange).await?;
    let mut pending: VecDeque<lapin::PublisherConfirm> = VecDeque::with_capacity(window);
    let start = Instant::now();
    for p in prepared {
        if pending.len() >= window {
            if let Some(confirm) = pending.pop_front() {
                ensure!(confirm.await?.is_ack(), "the broker did not Ack a message");
            }
        }
        pending.push_back(out.send(p).await?);
    }
    for confirm in pending {
        ensure!(confirm.await?.is_ack(), "the broker did not Ack a message");
    }
    Ok(start.elapsed())
}

/// Publishes the messages at `rate` per second, one at a time, each confirmed before the next
/// is due: what a publisher does when events come one by one, as in the live scenario, where
/// nothing can be batched and every message pays its own socket writes and wake-ups. Its CPU
/// per message is the floor under the service's publishing at that rate.
///
/// # Errors
/// A broker error, or a message the broker did not Ack.
pub async fn publish_paced(
    channel: &Channel,
    exchange: &str,
    prepared: &[Prepared],
    rate: u64,
) -> Result<()> {
    let out = Confirming::new(channel, exchange).await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1) as u32);
    for p in prepared {
        tick.tick().await;
        ensure!(
            out.send(p).await?.await?.is_ack(),
            "the broker did not Ack a message"
        );
    }
    Ok(())
}

/// A channel in confirm mode that publishes prepared messages to one exchange as the service
/// does (persistent, `mandatory`).
struct Confirming<'a> {
    channel: &'a Channel,
    exchange: ShortString,
    options: BasicPublishOptions,
}

impl<'a> Confirming<'a> {
    async fn new(channel: &'a Channel, exchange: &str) -> Result<Self> {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("confirm.select")?;
        Ok(Self {
            channel,
            exchange: ShortString::from(exchange),
            options: BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
        })
    }

    /// Publishes one message; the confirm comes later.
    async fn send(&self, p: &Prepared) -> Result<lapin::PublisherConfirm> {
        Ok(self
            .channel
            .basic_publish(
                self.exchange.clone(),
                p.routing_key.into(),
                self.options,
                &p.body,
                p.properties.clone(),
            )
            .await?)
    }
}
