//! The broker side of the watcher's AMQP tests: the shared helpers of the publisher's broker
//! tests (a plain lapin connection to declare, count and drain queues, `rabbitmqctl`, and a guard
//! that restores the broker however a test ends), plus what only these tests need.
//! A test that cannot reach the broker fails with a message saying so; none is skipped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../publisher/tests/common/broker.rs"]
mod shared;

pub use shared::*;

use lapin::message::Delivery;

pub fn body(d: &Delivery) -> serde_json::Value {
    serde_json::from_slice(&d.data).unwrap()
}
