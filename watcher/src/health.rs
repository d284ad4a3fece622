//! What "ready" means, and the health facts owned outside the pipeline as metrics.
//!
//! Ready means the instance can do its job right now: the state store is open, DATA_DIR is the
//! sound directory it started on, and the sink takes messages (for RabbitMQ: connected and not
//! blocked). It does **not** wait for the first scan: a first scan of a large library takes
//! hours, and an orchestrator must not fail a rollout for it. The scan's progress is in
//! `/health` and in the `file_watcher_scan_*` metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use publisher::{AmqpStatus, Sink};

use crate::root::{RootHealth, RootState};
use crate::stats::Stats;

/// Everything readiness and the health metrics are computed from.
pub struct Health {
    /// INSTANCE_ID.
    pub instance_id: String,
    /// DATA_DIR, canonical.
    pub data_dir: String,
    /// `auto`, `native` or `poll`, as configured (`auto` that fell back to polling is reported
    /// as `poll`).
    pub watch_mode: &'static str,
    /// `amqp` or `stdout`.
    pub sink_kind: &'static str,
    /// Pipeline counters.
    pub stats: Arc<Stats>,
    /// The sink, asked for its state at each request.
    pub sink: Arc<Sink>,
    /// DATA_DIR's latest verdict.
    pub root: Arc<RootState>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("instance_id", &self.instance_id)
            .field("sink_kind", &self.sink_kind)
            .finish_non_exhaustive()
    }
}

/// The answer to "ready?", with the reasons when not (in the body).
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Ready to do its job.
    pub ready: bool,
    /// The JSON body of `/health/ready`, with the reasons: why not, one sentence each.
    pub body: serde_json::Value,
}

/// Why a sink is not ready, from its state; `None` when it is.
pub fn sink_problem(status: Option<AmqpStatus>) -> Option<&'static str> {
    match status {
        None => None,
        // A standby is connected but holds no publishing link: say why, not "not connected".
        Some(s) if s.standby => Some(
            "standby: another live instance holds this INSTANCE_ID on RabbitMQ; this one takes \
             over when that one goes away (ON_DUPLICATE=standby)",
        ),
        Some(s) if !s.connected => {
            Some("not connected to RabbitMQ; the log says why (address, credentials, TLS)")
        }
        Some(s) if s.blocked => Some(
            "RabbitMQ has blocked the connection (a memory or disk alarm on the broker); \
             publishing resumes when the alarm clears",
        ),
        Some(_) => None,
    }
}

/// Why messages wait for a queue, while any is held as unroutable: `unroutable: no queue bound
/// for file.created (3 held); …`. The instance is connected and working, but what it reports
/// reaches no consumer, and no later run would tell: an orchestrator and an operator must see it.
pub fn unroutable_problem(held: &[(&str, u64)]) -> Option<String> {
    crate::once::unroutable_keys(held).map(|keys| {
        format!(
            "unroutable: no queue bound for {keys}; bind a queue to the exchange for these \
             routing keys (or set QUEUE to have one declared); they are published again until one is"
        )
    })
}

/// Readiness from plain values: the store, DATA_DIR's verdict and the sink's problems.
pub fn decide(store_open: bool, root: &RootHealth, sink: &[&str]) -> Vec<String> {
    let mut reasons = Vec::new();
    if !store_open {
        reasons.push("the state store is not open".to_owned());
    }
    if let RootHealth::Faulty(why) = root {
        reasons.push(why.clone());
    }
    reasons.extend(sink.iter().map(|why| (*why).to_owned()));
    reasons
}

impl Health {
    /// `host:port` of the RabbitMQ node in use, while connected.
    fn broker_address(&self) -> Option<String> {
        match &*self.sink {
            Sink::Amqp(p) => p.address(),
            _ => None,
        }
    }

    /// Why the instance stands by, while another one holds its INSTANCE_ID.
    fn standby_reason(&self) -> Option<String> {
        match &*self.sink {
            Sink::Amqp(p) => p.standby_reason(),
            _ => None,
        }
    }

    /// The routing keys with messages held as unroutable, and how many.
    fn unroutable(&self) -> Vec<(&'static str, u64)> {
        match &*self.sink {
            Sink::Amqp(p) => p.unroutable(),
            _ => Vec::new(),
        }
    }

    fn amqp_status(&self) -> Option<AmqpStatus> {
        match &*self.sink {
            Sink::Amqp(p) => Some(p.status()),
            _ => None,
        }
    }

    /// Ready or not, and why.
    pub fn readiness(&self) -> Readiness {
        let store_open = self.stats.store_ok.load(Ordering::Relaxed);
        let root = self.root.health();
        let amqp = self.amqp_status();
        let held = self.unroutable();
        let held_keys: Vec<(&str, u64)> = held.iter().map(|(k, n)| (*k, *n)).collect();
        let unroutable = unroutable_problem(&held_keys);
        let sink_problems: Vec<&str> = sink_problem(amqp)
            .into_iter()
            .chain(unroutable.as_deref())
            .collect();
        let standby = amqp.is_some_and(|s| s.standby);
        // A standby looks at DATA_DIR only once it takes over: until then "being checked" is
        // not a problem of its own, and must not make a healthy standby look failed.
        let root_verdict = if standby {
            RootHealth::Sound
        } else {
            root.clone()
        };
        let reasons = decide(store_open, &root_verdict, &sink_problems);
        let sink = match amqp {
            Some(st) => serde_json::json!({
                "kind": "amqp",
                "connected": st.connected,
                "blocked": st.blocked,
                "standby": st.standby,
                "standby_reason": self.standby_reason(),
                "address": self.broker_address(),
                "in_flight": st.in_flight,
                "acked": st.acked,
                "nacked": st.nacked,
                "returned": st.returned,
                "held": st.held,
                "unroutable": held_keys
                    .iter()
                    .map(|(k, n)| ((*k).to_owned(), serde_json::json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "reconnects": st.reconnects,
            }),
            None => serde_json::json!({ "kind": self.sink_kind }),
        };
        let body = serde_json::json!({
            "ready": reasons.is_empty(),
            "standby": standby,
            "reasons": reasons,
            "store_open": store_open,
            "data_dir": {
                "path": self.data_dir,
                "sound": root.is_sound(),
            },
            "initial_scan_done": self.stats.initial_scan_done.load(Ordering::Relaxed),
            "sink": sink,
        });
        Readiness {
            ready: reasons.is_empty(),
            body,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    instance_id: String,
    version: &'static str,
    watch_mode: &'static str,
    sink: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    address: String,
}

/// `file_watcher_standby`: the one series that tells a standby from a failing instance,
/// whichever of the two waits it is in (STATE_DIR's lock, or the INSTANCE_ID claim).
pub const STANDBY_METRIC: (&str, &str) = (
    "file_watcher_standby",
    "1 while this instance stands by for another live one with its INSTANCE_ID or STATE_DIR \
     (ON_DUPLICATE=standby); healthy, but not ready",
);

/// `file_watcher_ready`.
pub const READY_METRIC: (&str, &str) = (
    "file_watcher_ready",
    "1 when the store is open, DATA_DIR is sound and the sink takes messages",
);

/// `file_watcher_info`, always 1, with the labels that say which instance it is.
///
/// # Errors
/// Only the encoder's.
pub fn encode_info(
    e: &mut DescriptorEncoder,
    instance_id: &str,
    watch_mode: &'static str,
    sink: &'static str,
) -> std::fmt::Result {
    let labels = InfoLabels {
        instance_id: instance_id.to_owned(),
        version: env!("CARGO_PKG_VERSION"),
        watch_mode,
        sink,
    };
    let info = ConstGauge::new(1i64);
    let mut family = e.encode_descriptor(
        "file_watcher_info",
        "Always 1; the labels say which instance, version, watch mode and sink",
        None,
        info.metric_type(),
    )?;
    info.encode(family.encode_family(&labels)?)
}

/// A 0/1 gauge.
///
/// # Errors
/// Only the encoder's.
pub fn encode_gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: bool,
) -> std::fmt::Result {
    let g = ConstGauge::new(i64::from(v));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// The facts that live outside [`Stats`] (readiness, DATA_DIR, the publisher's counters),
/// read at each scrape. The broker series exist only with the AMQP sink; all of them from the
/// first scrape.
impl Collector for Health {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let watch_mode = if self.stats.polling.load(Ordering::Relaxed) {
            "poll"
        } else {
            self.watch_mode
        };
        encode_info(&mut e, &self.instance_id, watch_mode, self.sink_kind)?;
        let ready = self.readiness();
        encode_gauge(&mut e, READY_METRIC.0, READY_METRIC.1, ready.ready)?;
        encode_gauge(
            &mut e,
            STANDBY_METRIC.0,
            STANDBY_METRIC.1,
            self.amqp_status().is_some_and(|s| s.standby),
        )?;
        encode_gauge(
            &mut e,
            "file_watcher_data_dir_healthy",
            "1 when DATA_DIR is the readable directory the instance started on",
            self.root.health().is_sound(),
        )?;
        encode_gauge(
            &mut e,
            "file_watcher_initial_scan_done",
            "1 once the first full scan has been reported",
            self.stats.initial_scan_done.load(Ordering::Relaxed),
        )?;
        if let Some(st) = self.amqp_status() {
            encode_gauge(
                &mut e,
                "file_watcher_broker_connected",
                "1 while a connection with a confirm channel to RabbitMQ is open",
                st.connected,
            )?;
            let node = ConstGauge::new(i64::from(st.connected));
            let mut family = e.encode_descriptor(
                "file_watcher_broker_node",
                "1 while connected; the address label is the RabbitMQ node in use (host:port), \
                 empty when not connected",
                None,
                node.metric_type(),
            )?;
            node.encode(family.encode_family(&NodeLabels {
                address: self.broker_address().unwrap_or_default(),
            })?)?;
            encode_gauge(
                &mut e,
                "file_watcher_broker_standby",
                "1 while another live instance holds this INSTANCE_ID and this one stands by",
                st.standby,
            )?;
            encode_gauge(
                &mut e,
                "file_watcher_broker_blocked",
                "1 while RabbitMQ blocks the connection (memory or disk alarm)",
                st.blocked,
            )?;
            counter(
                &mut e,
                "file_watcher_publishes_acked",
                "Publishes the broker confirmed (returned ones included)",
                st.acked,
            )?;
            counter(
                &mut e,
                "file_watcher_publishes_nacked",
                "Publishes the broker rejected with a nack; each is published again",
                st.nacked,
            )?;
            counter(
                &mut e,
                "file_watcher_publishes_returned",
                "Publishes returned as unroutable: no queue is bound to the exchange for them",
                st.returned,
            )?;
            let held = ConstGauge::new(i64::try_from(st.held).unwrap_or(i64::MAX));
            held.encode(e.encode_descriptor(
                "file_watcher_unroutable_held",
                "Messages held because no queue is bound for their routing key \
                 (ON_UNROUTABLE=hold); they are published again until one is",
                None,
                held.metric_type(),
            )?)?;
            counter(
                &mut e,
                "file_watcher_broker_reconnects",
                "Connections to RabbitMQ established after the first one",
                st.reconnects,
            )?;
            counter(
                &mut e,
                "file_watcher_broker_connect_failures",
                "Connection attempts to RabbitMQ that failed",
                st.connect_failures,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_decisions() {
        let amqp = |connected, blocked| {
            let mut s = AmqpStatus::default();
            s.connected = connected;
            s.blocked = blocked;
            Some(s)
        };
        let faulty = RootHealth::Faulty("DATA_DIR /d is missing".into());
        let cases: Vec<(bool, RootHealth, Option<AmqpStatus>, &[&str])> = vec![
            (true, RootHealth::Sound, None, &[]),
            (true, RootHealth::Sound, amqp(true, false), &[]),
            (
                true,
                RootHealth::Sound,
                amqp(false, false),
                &["not connected"],
            ),
            (true, RootHealth::Sound, amqp(true, true), &["blocked"]),
            (
                true,
                RootHealth::Sound,
                {
                    let mut s = amqp(false, false);
                    if let Some(s) = s.as_mut() {
                        s.standby = true;
                    }
                    s
                },
                &["standby: another live instance holds this INSTANCE_ID"],
            ),
            (false, RootHealth::Sound, None, &["state store"]),
            (true, faulty.clone(), None, &["DATA_DIR /d is missing"]),
            (
                false,
                faulty,
                amqp(false, false),
                &["state store", "DATA_DIR", "not connected"],
            ),
        ];
        for (store, root, sink, want) in cases {
            let problems: Vec<&str> = sink_problem(sink).into_iter().collect();
            let got = decide(store, &root, &problems);
            assert_eq!(got.len(), want.len(), "{store} {root:?} {sink:?}: {got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.contains(w), "{g} lacks {w}");
            }
        }
    }

    #[test]
    fn unroutable_reasons() {
        type Held<'a> = &'a [(&'a str, u64)];
        let cases: Vec<(Held, Option<&str>)> = vec![
            (&[], None),
            (&[("file.created", 0)], None),
            (
                &[("file.created", 2), ("file.deleted", 1)],
                Some(
                    "unroutable: no queue bound for file.created (2 held), file.deleted (1 held);",
                ),
            ),
        ];
        for (held, want) in cases {
            let got = unroutable_problem(held);
            match (got.as_deref(), want) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!(g.starts_with(w), "{g:?} does not start with {w:?}"),
                (g, w) => panic!("{held:?}: got {g:?}, want {w:?}"),
            }
        }
        // Beside the other reasons, in order.
        let reasons = decide(
            true,
            &RootHealth::Sound,
            &[
                "not connected",
                "unroutable: no queue bound for file.created (1 held)",
            ],
        );
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[1].starts_with("unroutable"), "{reasons:?}");
    }
}
