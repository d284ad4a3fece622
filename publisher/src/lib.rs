//! The file-watcher wire envelope and the sinks that deliver it.
//!
//! [`Envelope`] is the documented JSON message, exactly as downstream consumers parse it, and
//! [`Message`] pairs it with its deterministic `message_id`. A [`Sink`] delivers messages and
//! answers only once the message is safe: written and flushed for stdout, confirmed by the broker
//! for AMQP. The watcher commits its state store only after that answer, which is what makes
//! delivery at-least-once.
//!
//! [`AmqpPublisher`] is the RabbitMQ sink: named connections (`file_watcher_{instance_id}`),
//! publisher confirms over a pipelined window, reconnection with backoff and jitter, and a pause
//! while the broker blocks the connection. [`AmqpConfig`] holds the broker settings and keeps the
//! password out of every log line and error.
//!
//! ```
//! use chrono::TimeZone;
//! use publisher::{Envelope, EventType, FileFacts};
//!
//! let facts = FileFacts {
//!     size: 3,
//!     sha256_hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
//!     xxh128_hex: "06b05ab6733a618578af5f94892f3950".into(),
//! };
//! let at = chrono::Utc.with_ymd_and_hms(2025, 8, 28, 10, 0, 0).unwrap();
//! let msg = Envelope::build(
//!     EventType::FileCreated,
//!     "watcher-music",
//!     "/data/music".as_ref(),
//!     "/data/music/abc.txt".as_ref(),
//!     None,
//!     facts,
//!     at,
//! );
//! assert_eq!(msg.envelope.file_info.extension, ".txt");
//! assert_eq!(msg.envelope.file_info.size_bytes, "3");
//! assert_eq!(EventType::FileCreated.routing_key(), "file.created");
//! ```
#![deny(missing_docs)]

mod amqp;
mod envelope;
mod error;
mod sink;
mod stdout;

pub use amqp::{
    claim_queue, parse_hosts, AmqpConfig, AmqpPublisher, AmqpStatus, OnDuplicate, OnUnroutable,
    QueueSpec, QueueType, BLOCKED_FAILOVER_AFTER, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX,
    DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_WINDOW, HOLD_RETRY_MAX, QUEUE_BINDING, STANDBY_RETRY,
};
pub use envelope::{Envelope, EventType, FileFacts, FileInfo, Message};
pub use error::SinkError;
pub use sink::Sink;
pub use stdout::StdoutSink;
