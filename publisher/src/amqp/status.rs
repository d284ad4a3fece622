//! Counters and the snapshot the health endpoint and metrics read.

use std::sync::atomic::{AtomicU64, Ordering};

/// A cheap, consistent-enough snapshot of the publisher, for `/health` and `/metrics`.
/// The counters only grow; each is read on its own, so they may be a few messages apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmqpStatus {
    /// A connection with an open confirm channel is in place.
    pub connected: bool,
    /// The broker blocked the connection (memory or disk alarm); publishing is paused.
    pub blocked: bool,
    /// Connected, but another live instance holds this `INSTANCE_ID`'s claim: nothing is
    /// published until it goes away (`ON_DUPLICATE=standby`).
    pub standby: bool,
    /// `deliver` calls holding a window slot: published and not yet confirmed, or waiting for
    /// a connection to publish on. At most [`AmqpConfig::window`](crate::AmqpConfig::window).
    pub in_flight: u64,
    /// `basic.publish` calls, republishes included.
    pub published: u64,
    /// Publishes of a message that had been published before (after a nack or a lost
    /// connection). Part of `published`.
    pub republished: u64,
    /// Confirms that were an Ack: each one let a `deliver` call return.
    pub acked: u64,
    /// Confirms that were a Nack; each nacked message is published again.
    pub nacked: u64,
    /// Messages the broker returned as unroutable (`mandatory`, no bound queue). They are also
    /// acked, and count in `acked`. A held message counts once per return.
    pub returned: u64,
    /// Messages held now because the broker returned them as unroutable: not confirmed to the
    /// caller, published again until a queue takes them (`OnUnroutable::Hold`).
    pub held: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

/// The live counters behind [`AmqpStatus`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) republished: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) returned: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        // Relaxed: these are statistics, nothing is synchronised through them.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, connected: bool, blocked: bool, in_flight: u64) -> AmqpStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AmqpStatus {
            connected,
            blocked,
            standby: false,
            in_flight,
            published: get(&self.published),
            republished: get(&self.republished),
            acked: get(&self.acked),
            nacked: get(&self.nacked),
            returned: get(&self.returned),
            held: 0,
            reconnects: get(&self.reconnects),
            connect_failures: get(&self.connect_failures),
        }
    }
}
