//! The AMQP sink: a supervisor task that keeps one connection alive, and `deliver`, which
//! publishes one message and returns only once the broker has acked it.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::BasicReturnMessage;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation, Event};
use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::backoff::Backoff;
use super::config::{claim_queue, connect_order, AmqpConfig, OnDuplicate, OnUnroutable};
use super::connection::{Link, PublishRequest};
use super::rotation::{Next, Rotation};
use super::status::{AmqpStatus, Counters};
use crate::envelope::Message;
use crate::error::SinkError;

/// How long opening a connection (TCP, TLS, handshake, channel, exchange) may take in total.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean close may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A broker that nacks (a full queue with `reject-publish`) nacks every retry: log a sample.
const NACK_LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the supervisor double-checks the connection besides lapin's events.
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// How long a connection may stay blocked before the publisher tries the next address, when
/// it has several. A memory or disk alarm blocks publishers on every node of a cluster, so
/// this mostly helps when one node is in trouble alone; after a full round it backs off.
pub const BLOCKED_FAILOVER_AFTER: Duration = Duration::from_secs(10);
/// How often a standby tries to take the claim of its `INSTANCE_ID`: the bound on how long a
/// takeover takes once the active instance's connection is gone.
pub const STANDBY_RETRY: Duration = Duration::from_secs(2);

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
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: AmqpConfig,
    /// Copied out of `config` for the many log lines that carry it.
    instance_id: String,
    /// The current connection, and whether the broker blocked it. `deliver` waits on this.
    state: watch::Sender<LinkState>,
    /// One permit per message on the wire: the window of unconfirmed messages.
    window: Semaphore,
    counters: Counters,
    /// Routing keys whose returned messages were already logged: logged once, counted always.
    /// A key is logged again after it was routable for a while.
    returned_keys: Mutex<HashSet<String>>,
    /// Messages held as unroutable, per routing key (`OnUnroutable::Hold`).
    held: Mutex<BTreeMap<&'static str, u64>>,
    /// When a nack was last logged at warn level.
    last_nack_log: Mutex<Option<tokio::time::Instant>>,
    /// Set by a `deliver` whose publish failed: the generation it failed on.
    broken_generation: AtomicU64,
    /// Wakes the supervisor after `broken_generation` was set.
    broken: Notify,
    /// Why the publisher stopped for good (a duplicate instance, a refused claim), until taken
    /// by [`AmqpPublisher::failure`].
    failure: Mutex<Option<SinkError>>,
    cancel: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Clone, Default)]
struct LinkState {
    link: Option<Arc<Link>>,
    blocked: bool,
    /// Connected, but another instance holds the claim: why this one waits.
    standby: Option<Arc<str>>,
    /// The supervisor stopped for good; `failure` says why.
    failed: bool,
    /// A whole round of addresses failed to connect (down, or the login refused) since the
    /// last connection: no claim can be known yet.
    unreachable: bool,
}

impl LinkState {
    /// The link a publish may go to now: present, not blocked, not the one that just failed.
    fn ready(&self, not_generation: u64) -> Option<Arc<Link>> {
        match &self.link {
            Some(link) if !self.blocked && link.generation != not_generation => {
                Some(Arc::clone(link))
            }
            _ => None,
        }
    }

    /// Whether a connection newer than `generation` is in place.
    fn replaced(&self, generation: u64) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.generation > generation)
    }
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
        *lock(&shared.held).entry(routing_key).or_insert(0) += 1;
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
        if let Some(n) = held.get_mut(self.routing_key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(self.routing_key);
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
            window: Semaphore::new(window),
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
        let body: Arc<[u8]> = msg.to_json()?.into();
        let properties = properties(msg);
        let _permit = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return Err(SinkError::Closed),
            permit = shared.window.acquire() => permit.map_err(|_| SinkError::Closed)?,
        };

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

    /// Waits until a connection is in place and holds the claim (when
    /// [`AmqpConfig::claim`] is set): the moment an instance may start scanning. A standby
    /// waits here until the active instance goes away.
    ///
    /// It also returns once a whole round of addresses has failed to connect: with no broker,
    /// nothing can be published anyway, and an instance may scan ahead and hold its work back
    /// (bounded) as before. The claim is still taken before the first publish: a duplicate found
    /// once a broker answers stands by, or stops ([`AmqpPublisher::failure`]), before it
    /// publishes anything.
    ///
    /// # Errors
    /// What stopped the publisher for good ([`SinkError::Duplicate`],
    /// [`SinkError::ClaimRefused`]), or [`SinkError::Closed`] after the cancel token fired.
    pub async fn claimed(&self) -> Result<(), SinkError> {
        let mut state = self.shared.state.subscribe();
        let failed = tokio::select! {
            biased;
            () = self.shared.cancel.cancelled() => return Err(SinkError::Closed),
            s = state.wait_for(|s| s.link.is_some() || s.failed || s.unreachable) => {
                s.map_or(true, |s| s.failed)
            }
        };
        if failed {
            return Err(self.take_failure());
        }
        Ok(())
    }

    /// Resolves once the publisher has stopped for good, with the reason: in `exit` mode, a
    /// claim found held by another instance after a reconnect. Pending otherwise (also after
    /// cancel), so it can sit in a `select!` beside the pipeline.
    pub async fn failure(&self) -> SinkError {
        let mut state = self.shared.state.subscribe();
        if state.wait_for(|s| s.failed).await.is_ok() {
            return self.take_failure();
        }
        std::future::pending().await
    }

    fn take_failure(&self) -> SinkError {
        lock(&self.shared.failure)
            .take()
            .unwrap_or(SinkError::Closed)
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

    /// Why this instance stands by (another one holds its claim), while it does.
    pub fn standby_reason(&self) -> Option<String> {
        self.shared
            .state
            .borrow()
            .standby
            .as_deref()
            .map(str::to_owned)
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
        match *last {
            Some(t) if now.duration_since(t) < NACK_LOG_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
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
        let window = shared.config.window.max(1);
        let in_flight = window.saturating_sub(shared.window.available_permits()) as u64;
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays valid even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How holding the claim on a fresh connection ended.
enum Claim {
    /// This connection holds it: go on and publish.
    Held,
    /// The cancel token fired while standing by.
    Cancelled,
    /// Stop for good: a duplicate in `exit` mode, or a refused declare.
    Fatal(SinkError),
    /// The connection failed while claiming or standing by.
    Lost(String),
}

/// Claims the instance's id on `link`, standing by as long as another connection holds it
/// (in `standby` mode).
async fn hold_claim(shared: &Shared, link: &Link, index: usize, mode: OnDuplicate) -> Claim {
    let config = &shared.config;
    let instance_id = shared.instance_id.as_str();
    let mut waiting = false;
    loop {
        match link.claim(config, index).await {
            Ok(true) => {
                if waiting {
                    info!(
                        instance_id,
                        address = %link.address,
                        "the other instance released INSTANCE_ID; taking over as the active instance"
                    );
                }
                shared.state.send_modify(|s| s.standby = None);
                return Claim::Held;
            }
            Ok(false) => {
                let queue = claim_queue(instance_id);
                if mode == OnDuplicate::Exit {
                    return Claim::Fatal(SinkError::Duplicate {
                        instance_id: instance_id.to_owned(),
                        queue,
                        url: config.redacted_at(index),
                    });
                }
                if !waiting {
                    waiting = true;
                    let reason = format!(
                        "standby: another live instance holds INSTANCE_ID {instance_id} (queue \
                         {queue}); this one takes over when that one goes away"
                    );
                    warn!(
                        instance_id,
                        address = %link.address,
                        retry_s = STANDBY_RETRY.as_secs(),
                        "{reason}; not scanning or publishing meanwhile"
                    );
                    shared
                        .state
                        .send_modify(|s| s.standby = Some(Arc::from(reason.as_str())));
                }
                tokio::select! {
                    () = shared.cancel.cancelled() => return Claim::Cancelled,
                    () = tokio::time::sleep(STANDBY_RETRY) => {}
                }
                if !link.connection.status().connected() {
                    return Claim::Lost("the connection closed while standing by".into());
                }
            }
            Err(error @ SinkError::ClaimRefused { .. }) => return Claim::Fatal(error),
            Err(error) => return Claim::Lost(error.to_string()),
        }
    }
}

async fn close_quietly(link: &Link) {
    if link.connection.status().connected() {
        let close = link
            .connection
            .close(200, ShortString::from("file-watcher closing"));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

/// Keeps one connection alive until the cancel token fires, moving along the configured
/// addresses when a node fails ([`Rotation`]).
async fn supervise(shared: Arc<Shared>) {
    let config = &shared.config;
    let instance_id = shared.instance_id.as_str();
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let mut rotation = Rotation::new(connect_order(
        config.address_count(),
        config.shuffle,
        &mut fastrand::Rng::new(),
    ));
    let several = config.address_count() > 1;
    let mut generation = 0u64;
    let mut attempt = 0u64;
    let mut connected_before = false;
    let delay_for = |next: Next, backoff: &mut Backoff| match next {
        Next::Now => Duration::ZERO,
        Next::Backoff => backoff.next_delay(fastrand::f64()),
    };
    while !shared.cancel.is_cancelled() {
        generation += 1;
        attempt += 1;
        let index = rotation.current();
        let url = config.redacted_at(index);
        let address = config.address(index);
        let opened = tokio::select! {
            () = shared.cancel.cancelled() => break,
            opened = tokio::time::timeout(OPEN_TIMEOUT, Link::open(config, index, generation)) => opened,
        };
        let delay = match opened {
            Ok(Ok(link)) => {
                if let Some(mode) = config.claim {
                    match hold_claim(&shared, &link, index, mode).await {
                        Claim::Held => {}
                        Claim::Cancelled => {
                            close_quietly(&link).await;
                            break;
                        }
                        Claim::Fatal(error) => {
                            close_quietly(&link).await;
                            *lock(&shared.failure) = Some(error);
                            shared.state.send_replace(LinkState {
                                failed: true,
                                ..LinkState::default()
                            });
                            info!(instance_id, "AMQP publisher stopped");
                            return;
                        }
                        Claim::Lost(reason) => {
                            close_quietly(&link).await;
                            shared.state.send_modify(|s| s.standby = None);
                            Counters::bump(&shared.counters.connect_failures);
                            let next = rotation.failed();
                            warn!(instance_id, address = %address, url = %url, reason = %reason, "lost the RabbitMQ connection while claiming INSTANCE_ID; reconnecting");
                            let delay = delay_for(next, &mut backoff);
                            tokio::select! {
                                () = shared.cancel.cancelled() => break,
                                () = tokio::time::sleep(delay) => {}
                            }
                            continue;
                        }
                    }
                }
                if connected_before {
                    Counters::bump(&shared.counters.reconnects);
                }
                connected_before = true;
                info!(
                    instance_id,
                    address = %address,
                    url = %url,
                    connection_name = %config.connection_name(),
                    exchange = %config.exchange,
                    attempt,
                    "connected to RabbitMQ"
                );
                attempt = 0;
                backoff.reset();
                rotation.connected();
                let reason = run_link(&shared, Arc::new(link), several).await;
                let Some(reason) = reason else { break };
                let next = rotation.failed();
                if several {
                    warn!(
                        instance_id,
                        address = %address,
                        url = %url,
                        reason = %reason,
                        next_address = %config.address(rotation.current()),
                        "lost the RabbitMQ node in use; failing over to the next address"
                    );
                } else {
                    warn!(instance_id, address = %address, url = %url, reason = %reason, "lost the RabbitMQ connection; reconnecting");
                }
                delay_for(next, &mut backoff)
            }
            Ok(Err(error @ (SinkError::QueueMismatch { .. } | SinkError::QueueRefused { .. }))) => {
                // Every node and every retry would refuse the declaration the same way.
                *lock(&shared.failure) = Some(error);
                shared.state.send_replace(LinkState {
                    failed: true,
                    ..LinkState::default()
                });
                info!(instance_id, "AMQP publisher stopped");
                return;
            }
            Ok(Err(error @ SinkError::AccessRefused { .. })) => {
                Counters::bump(&shared.counters.connect_failures);
                if rotation.failed() == Next::Backoff {
                    shared.state.send_modify(|s| s.unreachable = true);
                }
                let delay = backoff.slow_delay(fastrand::f64());
                error!(
                    instance_id,
                    address = %address,
                    url = %url,
                    attempt,
                    retry_in_s = delay.as_secs_f64(),
                    "{error}"
                );
                delay
            }
            Ok(Err(error)) => {
                Counters::bump(&shared.counters.connect_failures);
                let next = rotation.failed();
                if next == Next::Backoff {
                    shared.state.send_modify(|s| s.unreachable = true);
                }
                let delay = delay_for(next, &mut backoff);
                warn!(
                    instance_id,
                    address = %address,
                    url = %url,
                    attempt,
                    retry_in_s = delay.as_secs_f64(),
                    next_address = %config.address(rotation.current()),
                    error = %error,
                    "cannot connect to RabbitMQ; will retry"
                );
                delay
            }
            Err(_elapsed) => {
                Counters::bump(&shared.counters.connect_failures);
                let next = rotation.failed();
                if next == Next::Backoff {
                    shared.state.send_modify(|s| s.unreachable = true);
                }
                let delay = delay_for(next, &mut backoff);
                warn!(
                    instance_id,
                    address = %address,
                    url = %url,
                    attempt,
                    retry_in_s = delay.as_secs_f64(),
                    next_address = %config.address(rotation.current()),
                    timeout_s = OPEN_TIMEOUT.as_secs(),
                    "cannot connect to RabbitMQ: timed out; will retry"
                );
                delay
            }
        };
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    shared.state.send_replace(LinkState::default());
    info!(instance_id, "AMQP publisher stopped");
}

/// Serves one connection: installs it for `deliver`, follows blocked/unblocked and errors, and
/// returns why it ended, or `None` on cancel. The connection is closed on return. With
/// `several` addresses, a connection blocked for [`BLOCKED_FAILOVER_AFTER`] is given up too.
async fn run_link(shared: &Shared, link: Arc<Link>, several: bool) -> Option<String> {
    let instance_id = shared.instance_id.as_str();
    let mut events = pin!(link.connection.events_listener());
    let blocked = link.connection.status().blocked();
    shared.state.send_replace(LinkState {
        link: Some(Arc::clone(&link)),
        blocked,
        ..LinkState::default()
    });
    let mut blocked_since = blocked.then(tokio::time::Instant::now);
    let mut tick = tokio::time::interval(HEALTH_TICK);
    let reason = loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break None,
            event = events.next() => match event {
                Some(Event::ConnectionBlocked(reason)) => {
                    warn!(instance_id, reason = %reason, "RabbitMQ blocked the connection (resource alarm); publishing paused");
                    shared.state.send_modify(|s| s.blocked = true);
                    blocked_since.get_or_insert_with(tokio::time::Instant::now);
                }
                Some(Event::ConnectionUnblocked) => {
                    info!(instance_id, "RabbitMQ unblocked the connection; publishing resumed");
                    shared.state.send_modify(|s| s.blocked = false);
                    blocked_since = None;
                }
                Some(Event::Error(e)) => break Some(e.to_string()),
                Some(_) => {}
                None => break Some("the connection's event stream ended".into()),
            },
            () = shared.broken.notified() => {
                if shared.broken_generation.load(Ordering::Relaxed) == link.generation {
                    break Some("a publish failed on it".into());
                }
            }
            _ = tick.tick() => {
                if !link.is_healthy() {
                    break Some("the connection or its channel is no longer open".into());
                }
                if several && blocked_since.is_some_and(|t| t.elapsed() >= BLOCKED_FAILOVER_AFTER) {
                    break Some(format!(
                        "the node has blocked publishing for {} s",
                        BLOCKED_FAILOVER_AFTER.as_secs()
                    ));
                }
            }
        }
    };
    // Take it away from `deliver` first, so nothing new goes to a closing connection.
    shared.state.send_replace(LinkState::default());
    if link.connection.status().connected() {
        let close = link
            .connection
            .close(200, ShortString::from("file-watcher closing"));
        if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
            debug!(
                instance_id,
                "the connection did not close in time; dropping it"
            );
        }
    }
    reason
}
