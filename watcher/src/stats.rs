//! Counters shared by the pipeline, the logs and the HTTP endpoints. They are Prometheus
//! metrics from the start, so `/metrics` reads the same numbers the pipeline writes.
//!
//! Every labelled family is created with all its label values at zero when [`Stats`] is built,
//! so a series exists from the first scrape: `rate()` and `absent()` in alert rules work before
//! the first event, the first error or the first rescan.

use std::sync::atomic::{AtomicBool, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use publisher::EventType;

use crate::hints::RescanCause;

/// The `event_type` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// `file_created`, …
    pub event_type: &'static str,
}

/// The `kind` label of per-file errors.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// `permission_denied`, `io`, …
    pub kind: &'static str,
}

/// The `cause` label of rescans.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    /// `kernel_overflow`, `periodic`, …
    pub cause: &'static str,
}

/// The `reason` label of fast-path fallbacks.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `writer_open`, `hard_link`, …
    pub reason: &'static str,
}

/// The per-file error kinds the pipeline counts (`hasher::HashError::label`; a file that
/// vanished or changed while read goes back to settling instead), created at zero.
const ERROR_KINDS: [&str; 3] = ["permission_denied", "not_regular", "io"];

/// Upper bounds of the hash-duration buckets, in seconds: from a small file in the page cache
/// (about 1 ms) to a 4 GiB file read from a slow disk (minutes).
const HASH_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.01, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0, 120.0, 600.0,
];

/// Upper bounds of the event-latency buckets, in seconds. The latency includes the settle delay
/// (2 s by default), so the buckets are fine around it.
/// Below 0.5 s they resolve the fast path (SETTLE_FAST_DELAY, 100 ms by default).
const LATENCY_BUCKETS: [f64; 18] = [
    0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0, 2.0, 2.25, 2.5, 3.0, 4.0, 5.0, 10.0, 30.0, 120.0,
    600.0,
];

/// Live counters. Everything is atomic so readers never stall the pipeline.
#[derive(Debug)]
pub struct Stats {
    /// Events accepted by the sink, per type.
    pub events: Family<EventLabel, Counter>,
    /// Files hashed.
    pub hashed_files: Counter,
    /// Bytes hashed.
    pub hashed_bytes: Counter,
    /// Per-file failures (unreadable, …), logged and skipped.
    pub file_errors: Family<ErrorLabel, Counter>,
    /// Files touched without a content change (store updated, nothing published).
    pub touched: Counter,
    /// Full scans completed.
    pub scans: Counter,
    /// Rescans asked for, by cause.
    pub rescans: Family<CauseLabel, Counter>,
    /// Filesystem events that found the hint queue full (each one owes a rescan).
    pub hint_overflows: Counter,
    /// Paths waiting to settle.
    pub pending: Gauge,
    /// Messages handed to the sink and not yet accepted.
    pub in_flight: Gauge,
    /// 1 while a full scan runs.
    pub scan_running: Gauge,
    /// Regular files the running (or last) full scan has walked past.
    pub scan_files_seen: Gauge,
    /// Files the running scan found new or changed whose work (settle, hash, delivery) is not
    /// done yet.
    pub scan_files_todo: Gauge,
    /// From handing a file to the hash pool until its digests are back (waiting in the pool
    /// included).
    pub hash_seconds: Histogram,
    /// From the first hint about a path (or the scan that found it) until the sink accepted
    /// its event. Includes the settle delay.
    pub event_latency: Histogram,
    /// Events handed over in total (sum of `events`), for cheap reads.
    pub events_total: AtomicU64,
    /// The initial scan is over.
    pub initial_scan_done: AtomicBool,
    /// The store is open and writable.
    pub store_ok: AtomicBool,
    /// Changes are found by polling (WATCH_MODE=poll, or `auto` after inotify ran out).
    pub polling: AtomicBool,
    /// 1 while the fast path to "settled" is on.
    pub settle_fast: Gauge,
    /// Files that took the fast path (published, or found unchanged).
    pub fast_settled: Counter,
    /// Live files that waited the full settle delay instead, by reason.
    pub settle_fallbacks: Family<ReasonLabel, Counter>,
}

impl Default for Stats {
    fn default() -> Self {
        let stats = Self {
            events: Family::default(),
            hashed_files: Counter::default(),
            hashed_bytes: Counter::default(),
            file_errors: Family::default(),
            touched: Counter::default(),
            scans: Counter::default(),
            rescans: Family::default(),
            hint_overflows: Counter::default(),
            pending: Gauge::default(),
            in_flight: Gauge::default(),
            scan_running: Gauge::default(),
            scan_files_seen: Gauge::default(),
            scan_files_todo: Gauge::default(),
            hash_seconds: Histogram::new(HASH_BUCKETS),
            event_latency: Histogram::new(LATENCY_BUCKETS),
            events_total: AtomicU64::new(0),
            initial_scan_done: AtomicBool::new(false),
            store_ok: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            settle_fast: Gauge::default(),
            fast_settled: Counter::default(),
            settle_fallbacks: Family::default(),
        };
        for reason in crate::fast::Fallback::ALL {
            let _ = stats.settle_fallbacks.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        // Every series from the first scrape, at zero.
        for t in EventType::ALL {
            let _ = stats.events.get_or_create(&EventLabel {
                event_type: t.as_str(),
            });
        }
        for kind in ERROR_KINDS {
            let _ = stats.file_errors.get_or_create(&ErrorLabel { kind });
        }
        for cause in RescanCause::ALL {
            let _ = stats.rescans.get_or_create(&CauseLabel {
                cause: cause.as_str(),
            });
        }
        stats
    }
}

impl Stats {
    /// Counts one accepted event.
    pub fn event(&self, t: EventType) {
        self.events
            .get_or_create(&EventLabel {
                event_type: t.as_str(),
            })
            .inc();
        self.events_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events accepted in total.
    pub fn events_total(&self) -> u64 {
        self.events_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one per-file error.
    pub fn file_error(&self, kind: &'static str) {
        self.file_errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    /// Counts one rescan request.
    pub fn rescan(&self, cause: RescanCause) {
        self.rescans
            .get_or_create(&CauseLabel {
                cause: cause.as_str(),
            })
            .inc();
    }

    /// Counts one file that waited the full settle delay instead of the fast path.
    pub fn fallback(&self, reason: crate::fast::Fallback) {
        self.settle_fallbacks
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Registers every metric under the `file_watcher` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("file_watcher");
        r.register("events", "Events accepted by the sink", self.events.clone());
        r.register("hashed_files", "Files hashed", self.hashed_files.clone());
        r.register("hashed_bytes", "Bytes hashed", self.hashed_bytes.clone());
        r.register(
            "file_errors",
            "Files that could not be read, by kind; the log names each path",
            self.file_errors.clone(),
        );
        r.register(
            "touched_files",
            "Files whose mtime changed but content did not",
            self.touched.clone(),
        );
        r.register("scans", "Full scans completed", self.scans.clone());
        r.register(
            "rescans",
            "Full rescans asked for, by cause (kernel_overflow, hint_queue_full, watcher_error \
             mean lost events; periodic and poll are scheduled)",
            self.rescans.clone(),
        );
        r.register(
            "hint_overflows",
            "Filesystem events that found the hint queue full (a rescan recovers them)",
            self.hint_overflows.clone(),
        );
        r.register(
            "pending_paths",
            "Paths waiting to settle",
            self.pending.clone(),
        );
        r.register(
            "in_flight_events",
            "Events handed to the sink and not yet accepted",
            self.in_flight.clone(),
        );
        r.register(
            "scan_running",
            "1 while a full scan runs",
            self.scan_running.clone(),
        );
        r.register(
            "scan_files_seen",
            "Regular files the running or last full scan has walked past",
            self.scan_files_seen.clone(),
        );
        r.register(
            "scan_files_todo",
            "New or changed files found by the running scan whose work is not done yet",
            self.scan_files_todo.clone(),
        );
        r.register(
            "settle_fast",
            "1 while the fast path to settled is on (SETTLE_FAST; the start-up log says why not)",
            self.settle_fast.clone(),
        );
        r.register(
            "settle_fast_files",
            "Files settled on the fast path: after their writer's close and the lease probe",
            self.fast_settled.clone(),
        );
        r.register(
            "settle_fallback",
            "Live files that waited the full settle delay instead of the fast path, by reason",
            self.settle_fallbacks.clone(),
        );
        r.register_with_unit(
            "hash_duration",
            "From handing a file to the hash pool until its digests are back",
            Unit::Seconds,
            self.hash_seconds.clone(),
        );
        r.register_with_unit(
            "event_latency",
            "From the first hint about a path until the sink accepted its event (settle delay \
             included)",
            Unit::Seconds,
            self.event_latency.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_labelled_series_exists_before_anything_happens() {
        let stats = Stats::default();
        let mut registry = Registry::default();
        stats.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for t in EventType::ALL {
            let line = format!(
                "file_watcher_events_total{{event_type=\"{}\"}} 0",
                t.as_str()
            );
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        for c in RescanCause::ALL {
            let line = format!("file_watcher_rescans_total{{cause=\"{}\"}} 0", c.as_str());
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(text.contains("file_watcher_file_errors_total{kind=\"permission_denied\"} 0"));
        for f in crate::fast::Fallback::ALL {
            let line = format!(
                "file_watcher_settle_fallback_total{{reason=\"{}\"}} 0",
                f.as_str()
            );
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(text.contains("file_watcher_settle_fast 0"), "{text}");
        assert!(
            text.contains("file_watcher_hint_overflows_total 0"),
            "{text}"
        );
        assert!(
            text.contains("file_watcher_hash_duration_seconds_count 0"),
            "{text}"
        );
        assert!(
            text.contains("file_watcher_event_latency_seconds_count 0"),
            "{text}"
        );
    }
}
