//! The benches' shared code: deterministic corpora, the bare publishing ceiling, and the
//! end-to-end harness (`src/bin/e2e.rs`) with its scenarios, broker side, checks, report and plots.
//!
//! Each module is one concept; the harness's scenarios live in [`scenario`], one module each.
#![deny(missing_docs)]

use std::path::PathBuf;
use std::sync::mpsc;

use hasher::{HashPool, Job, SubmitError};

pub mod bare;
pub mod broker;
pub mod corpus;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod service;
pub mod verify;

pub use corpus::write_files;

/// Hashes every path through `pool` and waits for all of them; returns how many failed. This is
/// the pool's bare rate, shared by the criterion bench and `pool-dir`.
///
/// # Errors
/// The pool refused a job (it is shutting down).
pub fn hash_all(pool: &HashPool, paths: &[PathBuf]) -> Result<usize, SubmitError> {
    let (tx, rx) = mpsc::channel();
    for p in paths {
        let tx = tx.clone();
        pool.submit(Job::new(p.clone(), move |r| {
            let _ = tx.send(r.is_ok());
        }))?;
    }
    drop(tx);
    Ok(rx.iter().filter(|ok| !ok).count())
}
