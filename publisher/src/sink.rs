//! The sink boundary the watcher delivers through.

use crate::amqp::AmqpPublisher;
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
}
