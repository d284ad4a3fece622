//! The outbox: events on their way to the sink, started as the sink's window has room.
//!
//! Each event carries what must happen once the sink has it (`T`: its store changes, the paths
//! it keeps busy). The outbox hands events to the sink in batches (stdout: the whole queue with
//! one flush) or within the window of unconfirmed messages (AMQP: the deliveries started
//! together run in one task on the service's runtime, and each outcome comes back through a
//! channel), and gives each `T` back with its outcome. It makes no decisions; what an
//! acceptance means is the engine's business.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use publisher::{Message, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

struct Done {
    id: u64,
    result: Result<(), SinkError>,
}

/// Events waiting for the sink, and those handed to it and not yet accepted.
pub struct Outbox<T> {
    sink: Arc<Sink>,
    queued: VecDeque<(Message, T)>,
    in_flight: HashMap<u64, T>,
    next_id: u64,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Where deliveries run: the runtime that owns the sink's connection.
    io: Option<tokio::runtime::Handle>,
}

impl<T> std::fmt::Debug for Outbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.queued.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Outbox<T> {
    /// An outbox for `sink`. Deliveries run on the runtime current at this call, if any (else
    /// on the one current when they start).
    pub fn new(sink: Arc<Sink>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            sink,
            queued: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            done_tx,
            done_rx,
            io: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Queues an event; [`Outbox::start`] hands it to the sink.
    pub fn push(&mut self, msg: Message, meta: T) {
        self.queued.push_back((msg, meta));
    }

    /// Events not yet handed to the sink.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Events handed to the sink and not yet accepted.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Nothing queued and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }

    /// Hands queued events to the sink. Stdout accepts synchronously: the whole queue is
    /// written with one flush, and the accepted events are returned. AMQP deliveries start as
    /// far as the window allows; their outcomes come from [`Outbox::done`].
    ///
    /// # Errors
    /// Stdout could not be written; the events stay queued.
    pub fn start(&mut self, tasks: &TaskTracker) -> Result<Vec<T>, SinkError> {
        if let Sink::Stdout(out) = &*self.sink {
            if self.queued.is_empty() {
                return Ok(Vec::new());
            }
            out.deliver_all(self.queued.iter().map(|(m, _)| m))?;
            return Ok(self.queued.drain(..).map(|(_, t)| t).collect());
        }
        let mut batch = Vec::new();
        while !self.queued.is_empty() {
            // A delivery starts only in a free slot of the sink's window, the one window of
            // unconfirmed messages: what finds it full stays queued, where the engine's backlog
            // counts it, so a broker that is away stops the hashing instead of piling up tasks.
            let Some(slot) = self.sink.try_slot() else {
                break;
            };
            let Some((msg, meta)) = self.queued.pop_front() else {
                break;
            };
            self.next_id += 1;
            let id = self.next_id;
            self.in_flight.insert(id, meta);
            batch.push((slot, msg, id));
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // One task runs the whole batch, its deliveries side by side: a task spawned from
        // this (non-worker) thread wakes a worker each time, and spawning one per message
        // cost a wake-up, a task allocation and a move of the delivery's state per event.
        let (sink, tx) = (Arc::clone(&self.sink), self.done_tx.clone());
        let deliveries = async move {
            let mut running: FuturesUnordered<_> = batch
                .into_iter()
                .map(|(slot, msg, id)| {
                    let sink = &sink;
                    async move { (id, sink.deliver_in(slot, &msg).await) }
                })
                .collect();
            while let Some((id, result)) = running.next().await {
                let _ = tx.send(Done { id, result });
            }
        };
        match &self.io {
            Some(io) => {
                tasks.spawn_on(deliveries, io);
            }
            None => {
                tasks.spawn(deliveries);
            }
        }
        Ok(Vec::new())
    }

    /// A delivery outcome that is already in, if any: the engine takes every confirm of a
    /// broker's `basic.ack` in one turn, since the broker confirms many at once.
    pub fn try_done(&mut self) -> Option<(T, Result<(), SinkError>)> {
        while let Ok(d) = self.done_rx.try_recv() {
            if let Some(meta) = self.in_flight.remove(&d.id) {
                return Some((meta, d.result));
            }
        }
        None
    }

    /// The next delivery outcome, with its event's `T`. Pending while nothing is in flight.
    pub async fn done(&mut self) -> (T, Result<(), SinkError>) {
        loop {
            let Some(d) = self.done_rx.recv().await else {
                // The outbox holds a sender itself, so the channel never closes.
                std::future::pending::<()>().await;
                continue;
            };
            if let Some(meta) = self.in_flight.remove(&d.id) {
                return (meta, d.result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use publisher::{AmqpConfig, AmqpPublisher, Envelope, EventType, FileFacts, StdoutSink};
    use std::path::Path;
    use tokio_util::sync::CancellationToken;

    fn message(name: &str) -> Message {
        Envelope::build(
            EventType::FileCreated,
            "test",
            Path::new("/d"),
            &Path::new("/d").join(name),
            None,
            FileFacts {
                size: 1,
                sha256_hex: "0".repeat(64),
                xxh128_hex: "0".repeat(32),
            },
            chrono::Utc::now(),
        )
    }

    #[test]
    fn stdout_takes_the_whole_queue_at_once_and_gives_every_event_back() {
        let mut o = Outbox::new(Arc::new(Sink::Stdout(StdoutSink::new())));
        for i in 0..5 {
            o.push(message(&format!("f{i}")), i);
        }
        assert_eq!(o.queued(), 5);
        // The window bounds unconfirmed AMQP deliveries; stdout confirms as it writes.
        let accepted = o.start(&TaskTracker::new()).unwrap();
        assert_eq!(accepted, vec![0, 1, 2, 3, 4]);
        assert!(o.is_empty());
        assert!(o.start(&TaskTracker::new()).unwrap().is_empty());
    }

    /// With no broker, AMQP deliveries never return: the outbox starts at most the publisher's
    /// window of them and keeps the rest queued, where the engine's backlog sees them.
    #[tokio::test]
    async fn amqp_deliveries_stop_at_the_window_and_the_rest_stays_queued() {
        let stop = CancellationToken::new();
        // Nothing listens on port 1: the publisher keeps reconnecting, `deliver` keeps waiting.
        let mut config =
            AmqpConfig::from_url("amqp://guest:guest@127.0.0.1:1/%2f", "outbox").unwrap();
        config.window = 3;
        let sink = Arc::new(Sink::Amqp(AmqpPublisher::start(config, stop.clone())));
        let tasks = TaskTracker::new();
        let mut o = Outbox::new(Arc::clone(&sink));
        for round in 0..3 {
            for i in 0..10 {
                o.push(message(&format!("f{round}-{i}")), round * 10 + i);
            }
            assert!(o.start(&tasks).unwrap().is_empty());
            assert_eq!(o.in_flight(), 3, "round {round}");
            assert_eq!(o.queued(), 7 + 10 * round, "round {round}");
            let Sink::Amqp(p) = &*sink else {
                unreachable!()
            };
            // The slots are taken before the tasks run: one window, the publisher's.
            assert_eq!(p.status().in_flight, 3, "round {round}");
        }
        // Cancelled, the three in flight (the first three events) end and give their slots
        // back; three more start and end at once.
        stop.cancel();
        for _ in 0..3 {
            let (meta, result) = o.done().await;
            assert!(meta < 3, "{meta}");
            assert!(matches!(result, Err(SinkError::Closed)), "{result:?}");
        }
        assert_eq!(o.in_flight(), 0);
        assert!(o.start(&tasks).unwrap().is_empty());
        assert_eq!((o.in_flight(), o.queued()), (3, 24));
        tasks.close();
        tasks.wait().await;
    }
}
