//! The AMQP sink: RabbitMQ through lapin, with named connections, publisher confirms over a
//! pipelined window, reconnection with backoff, and pauses while the broker is blocked.
//!
//! - `config`: where the broker is; the only holder of the password.
//! - `connection`: one live connection, its confirm channel and its single publish writer.
//! - `claim`: the claim of `INSTANCE_ID` (an exclusive queue), standing by while another live
//!   instance holds it, or stopping for good (`OnDuplicate`); `claimed`, `failure` and
//!   `standby_reason`.
//! - `supervisor`: the task that keeps one connection alive: opens it, takes the claim, serves
//!   it to `deliver`, and reconnects or fails over with `backoff` and `rotation` when it ends.
//! - `publisher`: `AmqpPublisher` and `deliver`: the window of unconfirmed messages, confirms,
//!   nacks and lost connections retried, unroutable messages held; the state the three share.
//! - `returns`: each returned (unroutable) message given back to its own publish.
//! - `status`: counters and the health snapshot.
//! - `backoff`: reconnect delays.
//! - `rotation`: which broker address to try next (failover over a cluster's nodes).

mod backoff;
mod claim;
mod config;
mod connection;
mod publisher;
mod returns;
mod rotation;
mod status;
mod supervisor;

pub use claim::STANDBY_RETRY;
pub use config::{
    claim_queue, parse_hosts, AmqpConfig, OnDuplicate, OnUnroutable, QueueSpec, QueueType,
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_WINDOW,
    QUEUE_BINDING,
};
pub use publisher::{AmqpPublisher, Slot, HOLD_RETRY_MAX};
pub use status::AmqpStatus;
pub use supervisor::BLOCKED_FAILOVER_AFTER;
