//! Publishing: [`AmqpPublisher`], whose `deliver` publishes one message within the window of
//! unconfirmed messages and returns only once the broker has acked it, and the state it shares
//! with the supervisor (`super::supervisor`) that keeps the connection alive and the claim
//! (`super::claim`).
//!
//! The decisions `deliver` makes are pure functions of plain values ([`LinkState::ready`],
//! [`in_flight`], [`nack_warn_due`], [`hold`] and [`release`], [`properties`]).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::BasicReturnMessage;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation};
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::backoff::Backoff;
use super::config::{AmqpConfig, OnUnroutable};
use super::connection::{Link, PublishRequest};
use super::status::{AmqpStatus, Counters};
use super::supervisor::supervise;
use crate::envelope::Message;
use crate::error::SinkError;

/// A broker that nacks (a full queue with `reject-publish`) nacks every retry: log a sample.
const NACK_LOG_EVERY: Duration = Duration::from_secs(10);

/// Publishes envelopes to RabbitMQ with publisher confirms, reconnecting for ever.
///
/// [`AmqpPublisher::start`] returns at once and connects in the background: a broker that is
/// down is waited for, with exponential backoff and jitter. [`AmqpPublisher::deliver`] returns
/// `Ok` only once the broker acked the message; on a Nack or a lost connection it publishes the
/// same message (same `message_id`) again until it is acked. Many `deliver` calls may run at once;
/// up to [`AmqpConfig::window`] of them have a message on the wire, so confirms are pipelined.
///
/// Cloning is cheap and shares the connection.
///
/// ```no_run
/// # async fn demo(msg: publisher::Message) -> Result<(), publisher::SinkError> {
/// use publisher::{AmqpConfig, AmqpPublisher};
/// use tokio_util::sync::CancellationToken;
///
/// let config = AmqpConfig::from_url("amqp://guest:guest@127.0.0.1:5672/%2f", "watcher-music")?;
/// let stop = CancellationToken::new();
/// let publisher = AmqpPublisher::start(config, stop.clone());
/// publisher.deliver(&msg).await?; // the broker has the message now
/// stop.cancel();
/// publisher.closed().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AmqpPublisher {
    pub(super) shared: Arc<Shared>,
}

/// A slot of a sink's window of unconfirmed messages ([`AmqpConfig::window`]), held from the
/// start of a delivery until it returns. Stdout has no window: its slots hold nothing.
#[derive(Debug)]
pub struct Slot {
    /// Held, never read: dropping it gives the slot back.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// A slot of no window, for a sink without one.
    pub(crate) fn unbounded() -> Self {
        Self { _permit: None }
    }
}

/// What `deliver`, the supervisor and the claim share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: AmqpConfig,
    /// Copied out of `config` for the many log lines that carry it.
    pub(super) instance_id: String,
    /// The current connection, and whether the broker blocked it. `deliver` waits on this.
    pub(super) state: watch::Sender<LinkState>,
    /// One permit per message on the wire: the window of unconfirmed messages, read by
    /// [`in_flight`]. The only one: the watcher's outbox takes its slots ([`Slot`]) before it
    /// starts a delivery, so what finds the window full stays queued there.
    window: Arc<Semaphore>,
    pub(super) counters: Counters,
    /// Routing keys whose returned messages were already logged: logged once, counted always.
    /// A key is logged again after it was routable for a while.
    returned_keys: Mutex<HashSet<String>>,
    /// Messages held as unroutable, per routing key (`OnUnroutable::Hold`).
    held: Mutex<BTreeMap<&'static str, u64>>,
    /// When a nack was last logged at warn level.
    last_nack_log: Mutex<Option<tokio::time::Instant>>,
    /// Set by a `deliver` whose publish failed: the generation it failed on.
    pub(super) broken_generation: AtomicU64,
    /// Wakes the supervisor after `broken_generation` was set.
    pub(super) broken: Notify,
    /// Why the publisher stopped for good (a duplicate instance, a refused claim), until taken
    /// by [`AmqpPublisher::failure`].
    pub(super) failure: Mutex<Option<SinkError>>,
    pub(super) cancel: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

/// What the supervisor tells `deliver` and the health checks about the connection.
#[derive(Debug, Clone, Default)]
pub(super) struct LinkState {
    pub(super) link: Option<Arc<Link>>,
    pub(super) blocked: bool,
    /// Connected, but another instance holds the claim: why this one waits.
    pub(super) standby: Option<Arc<str>>,
    /// The supervisor stopped for good; `failure` says why.
    pub(super) failed: bool,
    /// A whole round of addresses failed to connect (down, or the login refused) since the
    /// last connection: no claim can be known yet.
    pub(super) unreachable: bool,
}

impl LinkState {
    /// The link a publish may go to now: present, not blocked, not the one that just failed.
    fn ready(&self, not_generation: u64) -> Option<Arc<Link>> {
        let link = self.link.as_ref()?;
        ready(Some(link.generation), self.blocked, not_generation).then(|| Arc::clone(link))
    }

    /// Whether a connection newer than `generation` is in place.
    fn replaced(&self, generation: u64) -> bool {
        replaced(self.link.as_ref().map(|l| l.generation), generation)
    }
}

/// Whether a publish may go to the connection `current` (its generation, if any) now: present,
/// not blocked, not the one that just failed.
fn ready(current: Option<u64>, blocked: bool, not_generation: u64) -> bool {
    current.is_some_and(|g| !blocked && g != not_generation)
}

/// Whether the connection `current` is newer than `generation`: a confirm still awaited on
/// `generation` will never come.
fn replaced(current: Option<u64>, generation: u64) -> bool {
    current.is_some_and(|g| g > generation)
}

/// `deliver` calls holding a slot of a window of `window` (at least 1) of which `available`
/// are free: published and not yet confirmed, or waiting for a connection to publish on.
fn in_flight(window: usize, available: usize) -> u64 {
    window.max(1).saturating_sub(available) as u64
}

/// Whether a nack gets a warn line, `since_last` after the last one that did (`None`: none
/// did yet): the first one, then one per [`NACK_LOG_EVERY`].
fn nack_warn_due(since_last: Option<Duration>) -> bool {
    since_last.is_none_or(|d| d >= NACK_LOG_EVERY)
}

/// Counts one more message held under `routing_key`.
fn hold(held: &mut BTreeMap<&'static str, u64>, routing_key: &'static str) {
    *held.entry(routing_key).or_insert(0) += 1;
}

/// Counts one message under `routing_key` as no longer held; `true` when it was the last one,
/// so the key is routable again.
fn release(held: &mut BTreeMap<&'static str, u64>, routing_key: &str) -> bool {
    let Some(n) = held.get_mut(routing_key) else {
        return false;
    };
    *n = n.saturating_sub(1);
    if *n > 0 {
        return false;
    }
    held.remove(routing_key);
    true
}

/// How one publish attempt ended.
enum Attempt {
    Acked(Option<Box<BasicReturnMessage>>),
    Nacked,
    /// The connection or channel failed before the confirm came.
    Lost(Option<lapin::Error>),
}

/// Longest pause between two publishes of a held (unroutable) message: how soon a queue bound
/// late gets what waited for it.
pub const HOLD_RETRY_MAX: Duration = Duration::from_secs(5);

/// One message held as unroutable: counted under its routing key while it lives.
struct Held<'a> {
    shared: &'a Shared,
    routing_key: &'static str,
    backoff: Backoff,
}

impl<'a> Held<'a> {
    fn new(shared: &'a Shared, routing_key: &'static str) -> Self {
        hold(&mut lock(&shared.held), routing_key);
        Self {
            shared,
            routing_key,
            backoff: Backoff::new(shared.config.backoff_initial, HOLD_RETRY_MAX),
        }
    }
}

impl Drop for Held<'_> {
    /// Released when the message was delivered, or when the caller gave up (shutdown): either
    /// way it is no longer held here.
    fn drop(&mut self) {
        let mut held = lock(&self.shared.held);
        if release(&mut held, self.routing_key) {
            // Logged again if it becomes unroutable again.
            lock(&self.shared.returned_keys).remove(self.routing_key);
            if !self.shared.cancel.is_cancelled() {
                info!(
                    instance_id = %self.shared.instance_id,
                    routing_key = self.routing_key,
                    "routing key {} is routable again: no message is held for it any more",
                    self.routing_key
                );
            }
        }
    }
}

impl AmqpPublisher {
    /// Starts the connection supervisor and returns at once; the first connection is made in
    /// the background.
    ///
    /// `cancel` is the hard stop: once it fires, waiting `deliver` calls return
    /// [`SinkError::Closed`] (their messages may or may not have reached the broker) and the
    /// connection is closed. To drain, stop feeding `deliver`, let the calls in flight return,
    /// and cancel only then or at your drain deadline.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(config: AmqpConfig, cancel: CancellationToken) -> Self {
        let window = config.window.max(1);
        let shared = Arc::new(Shared {
            instance_id: config.instance_id.clone(),
            config,
            state: watch::Sender::new(LinkState::default()),
            window: Arc::new(Semaphore::new(window)),
            counters: Counters::default(),
            returned_keys: Mutex::new(HashSet::new()),
            held: Mutex::new(BTreeMap::new()),
            last_nack_log: Mutex::new(None),
            broken_generation: AtomicU64::new(0),
            broken: Notify::new(),
            failure: Mutex::new(None),
            cancel,
            supervisor: Mutex::new(None),
        });
        let task = tokio::spawn(supervise(Arc::clone(&shared)));
        *lock(&shared.supervisor) = Some(task);
        Self { shared }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &AmqpConfig {
        &self.shared.config
    }

    /// Publishes one message and waits for the broker's Ack.
    ///
    /// Routing key `msg.routing_key()`, `mandatory`, persistent, with the contract's
    /// properties. While the broker is unreachable or has blocked the connection, this waits. A
    /// Nack or a connection lost before the confirm leads to the same message being published
    /// again, with the same `message_id`.
    ///
    /// # Errors
    /// [`SinkError::Closed`] once the cancel token has fired or the publisher has stopped for
    /// good (see [`AmqpPublisher::failure`]); [`SinkError::Encode`] if the envelope cannot be
    /// serialised. Broker and network trouble is retried, never returned.
    pub async fn deliver(&self, msg: &Message) -> Result<(), SinkError> {
        let shared = &*self.shared;
        let slot = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return Err(SinkError::Closed),
            permit = Arc::clone(&shared.window).acquire_owned() => {
                Slot {
                    _permit: Some(permit.map_err(|_| SinkError::Closed)?),
                }
            }
        };
        self.deliver_in(slot, msg).await
    }

    /// A slot of the window if one is free now, for [`AmqpPublisher::deliver_in`]: a caller
    /// that takes the slot before it starts a delivery keeps what finds the window full queued
    /// with itself, and needs no window of its own.
    pub fn try_slot(&self) -> Option<Slot> {
        Arc::clone(&self.shared.window)
            .try_acquire_owned()
            .ok()
            .map(|p| Slot { _permit: Some(p) })
    }

    /// [`AmqpPublisher::deliver`] in a slot already taken; the slot is given back when it
    /// returns.
    ///
    /// # Errors
    /// As [`AmqpPublisher::deliver`].
    pub async fn deliver_in(&self, slot: Slot, msg: &Message) -> Result<(), SinkError> {
        let _slot = slot;
        let shared = &*self.shared;
        let body: Arc<[u8]> = msg.to_json()?.into();
        let properties = properties(msg);

        let mut failed_generation = 0;
        let mut first = true;
        // Set while this message is held as unroutable; dropping it releases the hold.
        let mut held: Option<Held<'_>> = None;
        loop {
            let link = self.ready_link(failed_generation).await?;
            Counters::bump(&shared.counters.published);
            if !first {
                Counters::bump(&shared.counters.republished);
            }
            first = false;
            match self
                .attempt(&link, msg.routing_key(), &body, properties.clone())
                .await?
            {
                Attempt::Acked(None) => {
                    Counters::bump(&shared.counters.acked);
                    return Ok(());
                }
                Attempt::Acked(Some(returned)) => {
                    Counters::bump(&shared.counters.acked);
                    self.note_returned(&returned);
                    if shared.config.on_unroutable == OnUnroutable::Drop {
                        return Ok(());
                    }
                    // No queue has it: keep it (not confirmed to the caller) and publish it
                    // again until one does. The window slot stays taken meanwhile, so held
                    // messages never take more than the window from other routing keys.
                    let hold = held.get_or_insert_with(|| Held::new(shared, msg.routing_key()));
                    let delay = hold.backoff.next_delay(fastrand::f64());
                    debug!(
                        instance_id = %shared.instance_id,
                        message_id = %msg.message_id(),
                        routing_key = msg.routing_key(),
                        retry_in_s = delay.as_secs_f64(),
                        "holding an unroutable message"
                    );
                    self.pause(delay).await?;
                }
                Attempt::Nacked => {
                    Counters::bump(&shared.counters.nacked);
                    let error = SinkError::Nacked {
                        message_id: msg.message_id().to_owned(),
                    };
                    if self.nack_log_due() {
                        warn!(
                            instance_id = %shared.instance_id,
                            %error,
                            nacked_total = shared.counters.nacked.load(Ordering::Relaxed),
                            "publishing it again (nacks are logged at most every {} s; all are \
                             counted)",
                            NACK_LOG_EVERY.as_secs()
                        );
                    } else {
                        debug!(instance_id = %shared.instance_id, %error, "publishing it again");
                    }
                    // A nack means the broker is in trouble: give it a moment.
                    self.pause(shared.config.backoff_initial).await?;
                }
                Attempt::Lost(source) => {
                    debug!(
                        instance_id = %shared.instance_id,
                        message_id = %msg.message_id(),
                        generation = link.generation,
                        error = source.as_ref().map(tracing::field::display),
                        "connection lost before the confirm; will publish again after reconnect"
                    );
                    failed_generation = link.generation;
                    shared
                        .broken_generation
                        .store(link.generation, Ordering::Relaxed);
                    shared.broken.notify_one();
                }
            }
        }
    }

    /// One publish and its confirm.
    async fn attempt(
        &self,
        link: &Link,
        routing_key: &'static str,
        body: &Arc<[u8]>,
        properties: BasicProperties,
    ) -> Result<Attempt, SinkError> {
        let (reply, answer) = oneshot::channel();
        let request = PublishRequest {
            routing_key,
            body: Arc::clone(body),
            properties,
            reply,
        };
        let publish_and_confirm = async {
            if link.publish(request).await.is_err() {
                return Attempt::Lost(None);
            }
            match answer.await {
                Ok(Ok(Confirmation::Ack(returned))) => Attempt::Acked(returned.map(Box::new)),
                Ok(Ok(Confirmation::Nack(_))) => Attempt::Nacked,
                // Confirms are always selected on our channel; anything else means a broken
                // channel, never a success.
                Ok(Ok(Confirmation::NotRequested)) => Attempt::Lost(None),
                Ok(Err(e)) => Attempt::Lost(Some(e)),
                Err(_writer_gone) => Attempt::Lost(None),
            }
        };
        Ok(self
            .until_closed_or_replaced(link.generation, publish_and_confirm)
            .await?
            .unwrap_or(Attempt::Lost(None)))
    }

    /// Runs `fut` until it ends, the cancel token fires (`Err(Closed)`), or a connection newer
    /// than `generation` is in place (`Ok(None)`): lapin fails what was pending on a dead
    /// connection, and this makes sure a confirm that would never come cannot hang a caller.
    async fn until_closed_or_replaced<F: Future>(
        &self,
        generation: u64,
        fut: F,
    ) -> Result<Option<F::Output>, SinkError> {
        let shared = &*self.shared;
        let mut state = shared.state.subscribe();
        tokio::select! {
            biased;
            out = fut => Ok(Some(out)),
            () = shared.cancel.cancelled() => Err(SinkError::Closed),
            _ = state.wait_for(|s| s.replaced(generation)) => Ok(None),
        }
    }

    /// Waits for a connection that is up, not blocked, and not `not_generation`.
    async fn ready_link(&self, not_generation: u64) -> Result<Arc<Link>, SinkError> {
        let shared = &*self.shared;
        if let Some(link) = shared.state.borrow().ready(not_generation) {
            return Ok(link);
        }
        let mut state = shared.state.subscribe();
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => Err(SinkError::Closed),
            ready = state.wait_for(|s| s.ready(not_generation).is_some() || s.failed) => ready
                .ok()
                .and_then(|s| s.ready(not_generation))
                .ok_or(SinkError::Closed),
        }
    }

    /// `host:port` of the node in use, while connected.
    pub fn address(&self) -> Option<String> {
        self.shared
            .state
            .borrow()
            .link
            .as_ref()
            .map(|l| l.address.clone())
    }

    async fn pause(&self, d: Duration) -> Result<(), SinkError> {
        tokio::select! {
            () = self.shared.cancel.cancelled() => Err(SinkError::Closed),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Whether this nack gets a warn line: the first one, then one per [`NACK_LOG_EVERY`].
    fn nack_log_due(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = lock(&self.shared.last_nack_log);
        let due = nack_warn_due(last.map(|t| now.duration_since(t)));
        if due {
            *last = Some(now);
        }
        due
    }

    /// Counts a returned (unroutable) message, and logs the first one per routing key.
    fn note_returned(&self, returned: &BasicReturnMessage) {
        let shared = &*self.shared;
        Counters::bump(&shared.counters.returned);
        let key = returned.delivery.routing_key.as_str();
        let first = lock(&shared.returned_keys).insert(key.to_owned());
        if first {
            let what = match shared.config.on_unroutable {
                OnUnroutable::Hold => {
                    "holding it and publishing it again until a queue is bound (bind one to the \
                     exchange, or set QUEUE to have one declared)"
                }
                OnUnroutable::Drop => "dropped (ON_UNROUTABLE=drop)",
            };
            warn!(
                instance_id = %shared.instance_id,
                exchange = %returned.delivery.exchange,
                routing_key = %key,
                reply_code = returned.reply_code,
                reply_text = %returned.reply_text,
                "RabbitMQ returned an unroutable message: no queue is bound for routing key {key}; \
                 {what} (logged once per routing key; every one is counted as returned)"
            );
        }
    }

    /// The routing keys that have messages held as unroutable, with how many, in key order.
    pub fn unroutable(&self) -> Vec<(&'static str, u64)> {
        lock(&self.shared.held)
            .iter()
            .map(|(k, n)| (*k, *n))
            .collect()
    }

    /// Whether a connection with a confirm channel is in place.
    pub fn is_connected(&self) -> bool {
        self.shared.state.borrow().link.is_some()
    }

    /// Whether the broker has blocked the connection (memory or disk alarm). Publishing waits
    /// until it unblocks.
    pub fn is_blocked(&self) -> bool {
        self.shared.state.borrow().blocked
    }

    /// A snapshot of the state and counters, cheap enough for every health check.
    pub fn status(&self) -> AmqpStatus {
        let shared = &*self.shared;
        let (connected, blocked, standby) = {
            let s = shared.state.borrow();
            (s.link.is_some(), s.blocked, s.standby.is_some())
        };
        let in_flight = in_flight(shared.config.window, shared.window.available_permits());
        let mut status = shared.counters.snapshot(connected, blocked, in_flight);
        status.standby = standby;
        status.held = lock(&shared.held).values().sum();
        status
    }

    /// Waits until the supervisor has stopped and closed the connection, after the cancel
    /// token fired. Returns at once if another caller already waited for it.
    pub async fn closed(&self) {
        let task = lock(&self.shared.supervisor).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                error!(instance_id = %self.shared.instance_id, error = %e, "AMQP supervisor failed");
            }
        }
    }
}

/// The contract's message properties. The timestamp is the event's own, so a republished
/// message is identical to the first copy.
fn properties(msg: &Message) -> BasicProperties {
    let envelope = &msg.envelope;
    let mut headers = FieldTable::default();
    headers.insert(
        "instance_id".into(),
        AMQPValue::LongString(LongString::from(envelope.instance_id.as_str())),
    );
    headers.insert(
        "event_type".into(),
        AMQPValue::LongString(LongString::from(envelope.event_type.as_str())),
    );
    let timestamp = chrono::DateTime::parse_from_rfc3339(&envelope.timestamp)
        .map(|t| t.timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp());
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(msg.message_id()))
        .with_correlation_id(ShortString::from(envelope.correlation_id.as_str()))
        .with_timestamp(u64::try_from(timestamp).unwrap_or(0))
        .with_app_id(ShortString::from("file-watcher"))
        .with_headers(headers)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays valid even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::envelope::{Envelope, EventType, FileFacts};

    /// (connection's generation, blocked, the generation that failed, ready, replaced after 3).
    #[test]
    fn which_connection_a_publish_may_use() {
        let cases = [
            (None, false, 0, false, false),
            (None, true, 0, false, false),
            (Some(1), false, 0, true, false),
            (Some(1), true, 0, false, false),
            (Some(3), false, 3, false, false),
            (Some(4), false, 3, true, true),
            (Some(4), true, 3, false, true),
            (Some(2), false, 3, true, false),
        ];
        for (current, blocked, failed, want_ready, want_replaced) in cases {
            let name = format!("({current:?}, {blocked}, {failed})");
            assert_eq!(ready(current, blocked, failed), want_ready, "ready {name}");
            assert_eq!(replaced(current, 3), want_replaced, "replaced {name}");
        }
        // No connection at all is neither ready nor a replacement.
        let state = LinkState::default();
        assert!(state.ready(0).is_none());
        assert!(!state.replaced(0));
    }

    /// (configured window, free permits, in flight).
    #[test]
    fn in_flight_is_the_window_taken() {
        let cases = [
            (64, 64, 0),
            (64, 0, 64),
            (64, 10, 54),
            (0, 1, 0),
            (0, 0, 1),
            (1, 0, 1),
            // More permits than the window (never happens): none in flight, not an underflow.
            (4, 9, 0),
        ];
        for (window, available, want) in cases {
            assert_eq!(
                in_flight(window, available),
                want,
                "({window}, {available})"
            );
        }
    }

    #[test]
    fn in_flight_follows_the_semaphore() {
        let window = Semaphore::new(3);
        let a = window.try_acquire().unwrap();
        let _b = window.try_acquire().unwrap();
        assert_eq!(in_flight(3, window.available_permits()), 2);
        drop(a);
        assert_eq!(in_flight(3, window.available_permits()), 1);
    }

    #[test]
    fn nacks_are_warned_about_once_per_period() {
        let cases = [
            (None, true),
            (Some(Duration::ZERO), false),
            (Some(NACK_LOG_EVERY - Duration::from_millis(1)), false),
            (Some(NACK_LOG_EVERY), true),
            (Some(NACK_LOG_EVERY * 3), true),
        ];
        for (since_last, want) in cases {
            assert_eq!(nack_warn_due(since_last), want, "{since_last:?}");
        }
    }

    /// Steps: `+key` holds one message, `-key` releases one (with whether the key is routable
    /// again); the counts after each step.
    #[test]
    fn held_messages_are_counted_per_routing_key() {
        type Step = (&'static str, bool, &'static [(&'static str, u64)]);
        let steps: [Step; 7] = [
            ("+a", false, &[("a", 1)]),
            ("+a", false, &[("a", 2)]),
            ("+b", false, &[("a", 2), ("b", 1)]),
            ("-a", false, &[("a", 1), ("b", 1)]),
            ("-b", true, &[("a", 1)]),
            ("-b", false, &[("a", 1)]),
            ("-a", true, &[]),
        ];
        let mut held = BTreeMap::new();
        for (i, (step, want_routable, want)) in steps.into_iter().enumerate() {
            let key: &'static str = &step[1..];
            let routable = if step.starts_with('+') {
                hold(&mut held, key);
                false
            } else {
                release(&mut held, key)
            };
            assert_eq!(routable, want_routable, "step {i}: {step}");
            let counts: Vec<_> = held.iter().map(|(k, n)| (*k, *n)).collect();
            assert_eq!(counts, want, "step {i}: {step}");
        }
    }

    #[test]
    fn properties_carry_the_contract_and_the_event_time() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let msg = Envelope::build(
            EventType::FileCreated,
            "watcher-music",
            Path::new("/d"),
            Path::new("/d/a.flac"),
            None,
            FileFacts {
                size: 1,
                sha256_hex: "0".repeat(64),
                xxh128_hex: "0".repeat(32),
            },
            at,
        );
        let p = properties(&msg);
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(
            p.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(
            p.message_id().as_ref().map(ShortString::as_str),
            Some(msg.message_id())
        );
        assert_eq!(
            p.app_id().as_ref().map(ShortString::as_str),
            Some("file-watcher")
        );
        // The event's own time, so a republished copy is identical.
        assert_eq!(p.timestamp(), &Some(at.timestamp() as u64));
        assert_eq!(properties(&msg), p);
        let headers = p.headers().as_ref().unwrap().inner();
        for (name, want) in [
            ("instance_id", "watcher-music"),
            ("event_type", "file_created"),
        ] {
            match headers.get(name) {
                Some(AMQPValue::LongString(v)) => assert_eq!(v.to_string(), want, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
