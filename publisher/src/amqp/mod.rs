//! The AMQP sink: RabbitMQ through lapin, with named connections, publisher confirms over a
//! pipelined window, reconnection with backoff, and pauses while the broker is blocked.
//!
//! - `config`: where the broker is; the only holder of the password.
//! - `connection`: one live connection, its confirm channel and its single publish writer.
//! - `publisher`: the supervisor that keeps a connection alive, and `deliver`.
//! - `status`: counters and the health snapshot.
//! - `backoff`: reconnect delays.

mod backoff;
mod config;
mod connection;
mod publisher;
mod status;

pub use config::{
    AmqpConfig, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_EXCHANGE, DEFAULT_WINDOW,
};
pub use publisher::AmqpPublisher;
pub use status::AmqpStatus;
