//! Counters shared by the pipeline, the logs and the HTTP endpoints.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use publisher::EventType;

/// Live counters. Everything is an atomic so readers never stall the pipeline.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events accepted by the sink, per type (indexed like [`EventType::ALL`]).
    pub events: [AtomicU64; 6],
    /// Files hashed.
    pub hashed_files: AtomicU64,
    /// Bytes hashed.
    pub hashed_bytes: AtomicU64,
    /// Per-file failures (unreadable, vanished mid-read, …), logged and skipped.
    pub file_errors: AtomicU64,
    /// Files touched without a content change (store updated, nothing published).
    pub touched: AtomicU64,
    /// Full scans completed.
    pub scans: AtomicU64,
    /// Paths waiting to settle.
    pub pending: AtomicU64,
    /// Messages handed to the sink and not yet accepted.
    pub in_flight: AtomicU64,
    /// The initial scan is over.
    pub initial_scan_done: AtomicBool,
    /// The store is open and writable.
    pub store_ok: AtomicBool,
}

impl Stats {
    /// Counts one accepted event.
    pub fn event(&self, t: EventType) {
        if let Some(i) = EventType::ALL.iter().position(|x| *x == t) {
            self.events[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events accepted in total.
    pub fn events_total(&self) -> u64 {
        self.events.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}
