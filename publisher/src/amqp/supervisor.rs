//! The connection supervisor: one task that keeps a connection alive until the cancel token
//! fires. It opens a connection to the address [`Rotation`] names, takes the claim on it
//! ([`hold_claim`]), installs it for `deliver` ([`run_link`]), and when any of that ends, moves
//! on to the next address after a pause ([`Backoff`]).
//!
//! What it does after an attempt or a connection ended is decided by pure functions of plain
//! values ([`react`], [`pause`], [`link_change`], [`give_up`]); the task only gathers what
//! happened and carries the decision out.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::types::ShortString;
use lapin::Event;
use tracing::{debug, error, info, warn};

use super::backoff::Backoff;
use super::claim::{hold_claim, Claim};
use super::config::connect_order;
use super::connection::Link;
use super::publisher::{lock, LinkState, Shared};
use super::rotation::{Next, Rotation};
use super::status::Counters;
use crate::error::SinkError;

/// How long opening a connection (TCP, TLS, handshake, channel, exchange) may take in total.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean close may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor double-checks the connection besides lapin's events.
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// How long a connection may stay blocked before the publisher tries the next address, when
/// it has several. A memory or disk alarm blocks publishers on every node of a cluster, so
/// this mostly helps when one node is in trouble alone; after a full round it backs off.
pub const BLOCKED_FAILOVER_AFTER: Duration = Duration::from_secs(10);

/// How one connection attempt, or one connection, ended.
#[derive(Debug)]
enum Ended {
    /// The cancel token fired.
    Cancelled,
    /// Retrying cannot help: a refused queue declaration, a duplicate in `exit` mode, a refused
    /// claim.
    Fatal(SinkError),
    /// The broker refused the login.
    AccessRefused(SinkError),
    /// Opening the connection failed.
    Unreachable(SinkError),
    /// Opening the connection took longer than [`OPEN_TIMEOUT`].
    TimedOut,
    /// The connection failed while claiming or standing by.
    ClaimLost(String),
    /// A connection that served `deliver` ended: lost, broken, or blocked too long.
    LinkLost(String),
}

/// What the supervisor does about how an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    /// Stop: the publisher was cancelled.
    Stop,
    /// Stop for good and keep the reason for [`crate::AmqpPublisher::failure`].
    Fail,
    /// Move to the next address and connect again after a pause.
    Retry {
        /// Counted in `connect_failures`.
        count_failure: bool,
        /// A whole round of addresses failing here means no broker can be reached
        /// (`LinkState::unreachable`): `claimed` stops waiting.
        round_is_unreachable: bool,
        pace: Pace,
    },
}

/// How long the pause before the next attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// As the rotation says: none before the next address, the backoff after a full round.
    Rotation,
    /// The slowest backoff, for what retrying soon cannot fix (wrong credentials).
    Slow,
}

/// What the supervisor does after `ended`.
fn react(ended: &Ended) -> Reaction {
    let retry = |count_failure, round_is_unreachable, pace| Reaction::Retry {
        count_failure,
        round_is_unreachable,
        pace,
    };
    match ended {
        Ended::Cancelled => Reaction::Stop,
        Ended::Fatal(_) => Reaction::Fail,
        Ended::AccessRefused(_) => retry(true, true, Pace::Slow),
        Ended::Unreachable(_) | Ended::TimedOut => retry(true, true, Pace::Rotation),
        Ended::ClaimLost(_) => retry(true, false, Pace::Rotation),
        Ended::LinkLost(_) => retry(false, false, Pace::Rotation),
    }
}

/// How a failure to open a connection ended: a refused queue declaration would be refused the
/// same way by every node and every retry.
fn open_failed(error: SinkError) -> Ended {
    match error {
        SinkError::QueueMismatch { .. } | SinkError::QueueRefused { .. } => Ended::Fatal(error),
        SinkError::AccessRefused { .. } => Ended::AccessRefused(error),
        error => Ended::Unreachable(error),
    }
}

/// How claiming ended, unless the claim is held and the connection goes on to serve.
fn claim_ended(claim: Claim) -> Option<Ended> {
    match claim {
        Claim::Held => None,
        Claim::Cancelled => Some(Ended::Cancelled),
        Claim::Fatal(error) => Some(Ended::Fatal(error)),
        Claim::Lost(reason) => Some(Ended::ClaimLost(reason)),
    }
}

/// The pause before the next attempt; `unit` is a random draw in `[0, 1)`.
fn pause(next: Next, pace: Pace, backoff: &mut Backoff, unit: f64) -> Duration {
    match (pace, next) {
        (Pace::Slow, _) => backoff.slow_delay(unit),
        (Pace::Rotation, Next::Now) => Duration::ZERO,
        (Pace::Rotation, Next::Backoff) => backoff.next_delay(unit),
    }
}

/// What a connection event means for the connection being served.
#[derive(Debug, PartialEq, Eq)]
enum LinkChange {
    /// The broker blocked publishing (resource alarm), with its reason.
    Blocked(String),
    Unblocked,
    /// The connection is over, and why.
    Ended(String),
    /// Nothing that matters here.
    Nothing,
}

fn link_change(event: Option<Event>) -> LinkChange {
    match event {
        Some(Event::ConnectionBlocked(reason)) => LinkChange::Blocked(reason),
        Some(Event::ConnectionUnblocked) => LinkChange::Unblocked,
        Some(Event::Error(e)) => LinkChange::Ended(e.to_string()),
        Some(_) => LinkChange::Nothing,
        None => LinkChange::Ended("the connection's event stream ended".into()),
    }
}

/// Why the health check gives the connection up, if it does: it is no longer open, or (with
/// `several` addresses to fail over to) it has been blocked for [`BLOCKED_FAILOVER_AFTER`].
fn give_up(healthy: bool, several: bool, blocked_for: Option<Duration>) -> Option<String> {
    if !healthy {
        return Some("the connection or its channel is no longer open".into());
    }
    if several && blocked_for.is_some_and(|d| d >= BLOCKED_FAILOVER_AFTER) {
        return Some(format!(
            "the node has blocked publishing for {} s",
            BLOCKED_FAILOVER_AFTER.as_secs()
        ));
    }
    None
}

/// Keeps one connection alive until the cancel token fires, moving along the configured
/// addresses when a node fails ([`Rotation`]).
pub(super) async fn supervise(shared: Arc<Shared>) {
    let mut supervisor = Supervisor::new(&shared);
    match supervisor.run().await {
        Some(error) => {
            *lock(&shared.failure) = Some(error);
            shared.state.send_replace(LinkState {
                failed: true,
                ..LinkState::default()
            });
        }
        None => {
            shared.state.send_replace(LinkState::default());
        }
    }
    let instance_id = shared.instance_id.as_str();
    info!(instance_id, "AMQP publisher stopped");
}

/// The supervisor's state between attempts.
struct Supervisor<'a> {
    shared: &'a Shared,
    backoff: Backoff,
    rotation: Rotation,
    /// More than one address: a blocked node is given up, and a lost one failed over.
    several: bool,
    /// Numbers each connection, so a failed publish names the one it failed on.
    generation: u64,
    /// Attempts since the last connection that worked, for the logs.
    attempt: u64,
    /// A connection worked before: the next one counts as a reconnect.
    connected_before: bool,
}

impl<'a> Supervisor<'a> {
    fn new(shared: &'a Shared) -> Self {
        let config = &shared.config;
        Self {
            shared,
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            rotation: Rotation::new(connect_order(
                config.address_count(),
                config.shuffle,
                &mut fastrand::Rng::new(),
            )),
            several: config.address_count() > 1,
            generation: 0,
            attempt: 0,
            connected_before: false,
        }
    }

    /// Connects, serves and reconnects until cancelled (`None`) or stopped for good (the
    /// reason).
    async fn run(&mut self) -> Option<SinkError> {
        let shared = self.shared;
        let cancel = &shared.cancel;
        while !cancel.is_cancelled() {
            self.generation += 1;
            self.attempt += 1;
            let index = self.rotation.current();
            let ended = self.connect_and_serve(index).await;
            let delay = match react(&ended) {
                Reaction::Stop => break,
                Reaction::Fail => {
                    let Ended::Fatal(error) = ended else { break };
                    return Some(error);
                }
                Reaction::Retry {
                    count_failure,
                    round_is_unreachable,
                    pace,
                } => {
                    if count_failure {
                        Counters::bump(&shared.counters.connect_failures);
                    }
                    let next = self.rotation.failed();
                    if round_is_unreachable && next == Next::Backoff {
                        shared.state.send_modify(|s| s.unreachable = true);
                    }
                    let delay = pause(next, pace, &mut self.backoff, fastrand::f64());
                    self.log_retry(&ended, index, delay);
                    delay
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        None
    }

    /// One attempt at `index`: open, claim, serve until the connection ends.
    async fn connect_and_serve(&mut self, index: usize) -> Ended {
        let shared = self.shared;
        let open = Link::open(&shared.config, index, self.generation);
        let opened = tokio::select! {
            () = shared.cancel.cancelled() => return Ended::Cancelled,
            opened = tokio::time::timeout(OPEN_TIMEOUT, open) => opened,
        };
        let link = match opened {
            Ok(Ok(link)) => link,
            Ok(Err(error)) => return open_failed(error),
            Err(_elapsed) => return Ended::TimedOut,
        };
        if let Some(mode) = shared.config.claim {
            if let Some(ended) = claim_ended(hold_claim(shared, &link, index, mode).await) {
                close_quietly(&link).await;
                if matches!(ended, Ended::ClaimLost(_)) {
                    shared.state.send_modify(|s| s.standby = None);
                }
                return ended;
            }
        }
        self.connected(index);
        match run_link(shared, Arc::new(link), self.several).await {
            Some(reason) => Ended::LinkLost(reason),
            None => Ended::Cancelled,
        }
    }

    /// A connection is in place (and holds the claim): the next failure starts afresh.
    fn connected(&mut self, index: usize) {
        let config = &self.shared.config;
        if self.connected_before {
            Counters::bump(&self.shared.counters.reconnects);
        }
        self.connected_before = true;
        info!(
            instance_id = self.shared.instance_id.as_str(),
            address = %config.address(index),
            url = %config.redacted_at(index),
            connection_name = %config.connection_name(),
            exchange = %config.exchange,
            attempt = self.attempt,
            "connected to RabbitMQ"
        );
        self.attempt = 0;
        self.backoff.reset();
        self.rotation.connected();
    }

    /// Says why the supervisor connects again, and when.
    fn log_retry(&self, ended: &Ended, index: usize, delay: Duration) {
        let config = &self.shared.config;
        let instance_id = self.shared.instance_id.as_str();
        let address = config.address(index);
        let url = config.redacted_at(index);
        let next_address = config.address(self.rotation.current());
        let attempt = self.attempt;
        let retry_in_s = delay.as_secs_f64();
        match ended {
            Ended::AccessRefused(error) => {
                error!(instance_id, address = %address, url = %url, attempt, retry_in_s, "{error}");
            }
            Ended::Unreachable(_) | Ended::TimedOut => {
                // One line for both; a field that is `None` is left out of it.
                let error = match ended {
                    Ended::Unreachable(error) => Some(tracing::field::display(error)),
                    _ => None,
                };
                let timeout_s = error.is_none().then_some(OPEN_TIMEOUT.as_secs());
                let what = match error {
                    Some(_) => "cannot connect to RabbitMQ; will retry",
                    None => "cannot connect to RabbitMQ: timed out; will retry",
                };
                warn!(
                    instance_id,
                    address = %address,
                    url = %url,
                    attempt,
                    retry_in_s,
                    next_address = %next_address,
                    error,
                    timeout_s,
                    "{what}"
                );
            }
            Ended::LinkLost(reason) if self.several => warn!(
                instance_id,
                address = %address,
                url = %url,
                reason = %reason,
                next_address = %next_address,
                "lost the RabbitMQ node in use; failing over to the next address"
            ),
            Ended::ClaimLost(reason) | Ended::LinkLost(reason) => {
                let what = if matches!(ended, Ended::ClaimLost(_)) {
                    "lost the RabbitMQ connection while claiming INSTANCE_ID; reconnecting"
                } else {
                    "lost the RabbitMQ connection; reconnecting"
                };
                warn!(instance_id, address = %address, url = %url, reason = %reason, "{what}");
            }
            Ended::Cancelled | Ended::Fatal(_) => {}
        }
    }
}

/// Closes `link` if it is still open; `false` when the close did not finish in time (the
/// connection is then simply dropped).
async fn close_quietly(link: &Link) -> bool {
    if !link.connection.status().connected() {
        return true;
    }
    let close = link
        .connection
        .close(200, ShortString::from("file-watcher closing"));
    tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_ok()
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
            event = events.next() => match link_change(event) {
                LinkChange::Blocked(reason) => {
                    warn!(instance_id, reason = %reason, "RabbitMQ blocked the connection (resource alarm); publishing paused");
                    shared.state.send_modify(|s| s.blocked = true);
                    blocked_since.get_or_insert_with(tokio::time::Instant::now);
                }
                LinkChange::Unblocked => {
                    info!(instance_id, "RabbitMQ unblocked the connection; publishing resumed");
                    shared.state.send_modify(|s| s.blocked = false);
                    blocked_since = None;
                }
                LinkChange::Ended(reason) => break Some(reason),
                LinkChange::Nothing => {}
            },
            () = shared.broken.notified() => {
                if shared.broken_generation.load(Ordering::Relaxed) == link.generation {
                    break Some("a publish failed on it".into());
                }
            }
            _ = tick.tick() => {
                let blocked_for = blocked_since.map(|t| t.elapsed());
                if let Some(reason) = give_up(link.is_healthy(), several, blocked_for) {
                    break Some(reason);
                }
            }
        }
    };
    // Take it away from `deliver` first, so nothing new goes to a closing connection.
    shared.state.send_replace(LinkState::default());
    if !close_quietly(&link).await {
        debug!(
            instance_id,
            "the connection did not close in time; dropping it"
        );
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn refused(what: &str) -> SinkError {
        let (url, reason) = ("amqp://b".to_owned(), "no".to_owned());
        match what {
            "access" => SinkError::AccessRefused { url, reason },
            "mismatch" => SinkError::QueueMismatch {
                queue: "q".into(),
                ours: "classic".into(),
                url,
                reason,
            },
            "queue" => SinkError::QueueRefused {
                queue: "q".into(),
                url,
                reason,
            },
            "claim" => SinkError::ClaimRefused {
                queue: "q".into(),
                url,
                reason,
            },
            _ => SinkError::InvalidConfig(what.into()),
        }
    }

    /// Every way an attempt ends, and what the supervisor does next.
    #[test]
    fn what_the_supervisor_does_after_an_attempt() {
        use Pace::{Rotation, Slow};
        let retry = |count_failure, round_is_unreachable, pace| Reaction::Retry {
            count_failure,
            round_is_unreachable,
            pace,
        };
        let cases = [
            ("cancelled", Ended::Cancelled, Reaction::Stop),
            (
                "queue mismatch",
                open_failed(refused("mismatch")),
                Reaction::Fail,
            ),
            (
                "queue refused",
                open_failed(refused("queue")),
                Reaction::Fail,
            ),
            (
                "login refused",
                open_failed(refused("access")),
                retry(true, true, Slow),
            ),
            (
                "cannot connect",
                open_failed(refused("tcp")),
                retry(true, true, Rotation),
            ),
            (
                "a claim that was refused",
                open_failed(refused("claim")),
                retry(true, true, Rotation),
            ),
            ("timed out", Ended::TimedOut, retry(true, true, Rotation)),
            (
                "claim: cancelled",
                claim_ended(Claim::Cancelled).unwrap(),
                Reaction::Stop,
            ),
            (
                "claim: duplicate",
                claim_ended(Claim::Fatal(refused("claim"))).unwrap(),
                Reaction::Fail,
            ),
            (
                "claim: lost",
                claim_ended(Claim::Lost("gone".into())).unwrap(),
                retry(true, false, Rotation),
            ),
            (
                "served, then lost",
                Ended::LinkLost("gone".into()),
                retry(false, false, Rotation),
            ),
        ];
        for (name, ended, want) in cases {
            assert_eq!(react(&ended), want, "{name}: {ended:?}");
        }
        // A held claim ends nothing: the connection goes on to serve.
        assert!(claim_ended(Claim::Held).is_none());
    }

    /// (rotation's answer, pace, draw, the pause), each on a fresh backoff of 100 ms to 1 s.
    #[test]
    fn the_pause_before_the_next_attempt() {
        let cases = [
            (Next::Now, Pace::Rotation, 1.0, Duration::ZERO),
            (Next::Backoff, Pace::Rotation, 1.0, 100 * MS),
            (Next::Backoff, Pace::Rotation, 0.0, 50 * MS),
            (Next::Now, Pace::Slow, 1.0, 1000 * MS),
            (Next::Backoff, Pace::Slow, 0.0, 500 * MS),
        ];
        for (i, (next, pace, unit, want)) in cases.into_iter().enumerate() {
            let mut backoff = Backoff::new(100 * MS, 1000 * MS);
            assert_eq!(pause(next, pace, &mut backoff, unit), want, "case {i}");
        }
    }

    #[test]
    fn failing_over_at_once_leaves_the_backoff_where_it_was() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        assert_eq!(
            pause(Next::Now, Pace::Rotation, &mut backoff, 1.0),
            Duration::ZERO
        );
        assert_eq!(
            pause(Next::Backoff, Pace::Rotation, &mut backoff, 1.0),
            100 * MS
        );
        assert_eq!(
            pause(Next::Backoff, Pace::Rotation, &mut backoff, 1.0),
            200 * MS
        );
    }

    #[test]
    fn what_a_connection_event_means() {
        let cases = [
            (
                Some(Event::ConnectionBlocked("low on memory".into())),
                LinkChange::Blocked("low on memory".into()),
            ),
            (Some(Event::ConnectionUnblocked), LinkChange::Unblocked),
            (Some(Event::Connected), LinkChange::Nothing),
            (Some(Event::SendFlow(false)), LinkChange::Nothing),
            (
                None,
                LinkChange::Ended("the connection's event stream ended".into()),
            ),
        ];
        for (event, want) in cases {
            let name = format!("{event:?}");
            assert_eq!(link_change(event), want, "{name}");
        }
    }

    /// (healthy, several addresses, blocked for, gives up).
    #[test]
    fn when_the_health_check_gives_a_connection_up() {
        let long = Some(BLOCKED_FAILOVER_AFTER);
        let short = Some(BLOCKED_FAILOVER_AFTER - MS);
        let cases = [
            (true, false, None, false),
            (true, true, None, false),
            (true, true, short, false),
            (true, true, long, true),
            (true, false, long, false),
            (false, false, None, true),
            (false, true, short, true),
        ];
        for (healthy, several, blocked_for, want) in cases {
            let got = give_up(healthy, several, blocked_for);
            assert_eq!(
                got.is_some(),
                want,
                "({healthy}, {several}, {blocked_for:?}): {got:?}"
            );
        }
        assert_eq!(
            give_up(true, true, long).as_deref(),
            Some("the node has blocked publishing for 10 s")
        );
    }
}
