//! The AMQP sink: RabbitMQ through lapin, with named connections, publisher confirms over a
//! pipelined window, reconnection with backoff, and pauses while the broker is blocked.
//!
//! - `config`: where the broker is; the only holder of the password.
//! - `connection`: one live connection, its confirm channel and its single publish writer.
//! - `publisher`: the supervisor that keeps a connection alive, and `deliver`.
//! - `status`: counters and the health snapshot.
//! - `backoff`: reconnect delays.
//! - `rotation`: which broker address to try next (failover over a cluster's nodes).

mod backoff;
mod config;
mod connection;
mod publisher;
mod rotation;
mod status;

pub use config::{
    claim_queue, parse_hosts, AmqpConfig, OnDuplicate, OnUnroutable, QueueSpec, QueueType,
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_WINDOW,
    QUEUE_BINDING,
};
pub use publisher::{AmqpPublisher, BLOCKED_FAILOVER_AFTER, HOLD_RETRY_MAX, STANDBY_RETRY};
pub use status::AmqpStatus;
