//! The sink boundary the watcher delivers through.

use crate::amqp::{AmqpPublisher, Slot};
use crate::envelope::Message;
use crate::error::SinkError;
use crate::stdout::StdoutSink;

/// Where messages go. `deliver` returns only once the message is safe, so the caller may then
/// commit its state; many `deliver` calls may be in flight at once, which is how the AMQP sink
/// keeps a window of unconfirmed messages instead of waiting for each confirm in turn.
#[derive(Debug)]
#[non_exhaustive]
pub enum Sink {
    /// JSON lines on stdout.
    Stdout(StdoutSink),
    /// RabbitMQ, with publisher confirms.
    Amqp(AmqpPublisher),
}

impl Sink {
    /// Delivers one message and waits until it is safe.
    ///
    /// # Errors
    /// A [`SinkError`] that retrying cannot fix (stdout closed, or the sink shutting down).
    pub async fn deliver(&self, msg: &Message) -> Result<(), SinkError> {
        match self {
            Self::Stdout(s) => s.deliver(msg),
            Self::Amqp(p) => p.deliver(msg).await,
        }
    }

    /// A slot of the sink's window of unconfirmed messages, if one is free now (stdout has no
    /// window: always). Taken before a delivery starts, it is the only bound on deliveries in
    /// flight: see [`Sink::deliver_in`].
    pub fn try_slot(&self) -> Option<Slot> {
        match self {
            Self::Stdout(_) => Some(Slot::unbounded()),
            Self::Amqp(p) => p.try_slot(),
        }
    }

    /// Delivers one message in a slot taken with [`Sink::try_slot`], and gives the slot back
    /// when it returns.
    ///
    /// # Errors
    /// As [`Sink::deliver`].
    pub async fn deliver_in(&self, slot: Slot, msg: &Message) -> Result<(), SinkError> {
        match self {
            Self::Stdout(s) => {
                drop(slot);
                s.deliver(msg)
            }
            Self::Amqp(p) => p.deliver_in(slot, msg).await,
        }
    }
}
