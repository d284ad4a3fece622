//! Counters shared by the pipeline, the logs and the HTTP endpoints. They are Prometheus
//! metrics from the start, so `/metrics` reads the same numbers the pipeline writes.

use std::sync::atomic::{AtomicBool, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use publisher::EventType;

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

/// Live counters. Everything is atomic so readers never stall the pipeline.
#[derive(Debug, Default)]
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
    /// Rescans asked for because events were lost (queue overflow, watcher error).
    pub rescans_requested: Counter,
    /// Filesystem events that found the hint queue full (each one owes a rescan).
    pub hint_overflows: Counter,
    /// Paths waiting to settle.
    pub pending: Gauge,
    /// Messages handed to the sink and not yet accepted.
    pub in_flight: Gauge,
    /// Events handed over in total (sum of `events`), for cheap reads.
    pub events_total: AtomicU64,
    /// The initial scan is over.
    pub initial_scan_done: AtomicBool,
    /// The store is open and writable.
    pub store_ok: AtomicBool,
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

    /// Registers every metric under the `file_watcher` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("file_watcher");
        r.register("events", "Events accepted by the sink", self.events.clone());
        r.register("hashed_files", "Files hashed", self.hashed_files.clone());
        r.register("hashed_bytes", "Bytes hashed", self.hashed_bytes.clone());
        r.register(
            "file_errors",
            "Files that could not be read, by kind",
            self.file_errors.clone(),
        );
        r.register(
            "touched_files",
            "Files whose mtime changed but content did not",
            self.touched.clone(),
        );
        r.register("scans", "Full scans completed", self.scans.clone());
        r.register(
            "rescans_requested",
            "Rescans asked for after lost events",
            self.rescans_requested.clone(),
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
    }
}
