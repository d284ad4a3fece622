//! Shared helpers for the benches: fixtures that are written once and reused.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use hasher::{HashPool, Job, SubmitError};

/// Writes `count` files of `size` bytes of varied content into `dir`, returning their paths.
/// Content differs per file so no two digests are equal, as in a real library.
///
/// # Errors
/// Any error writing the files.
pub fn write_files(
    dir: &Path,
    prefix: &str,
    count: usize,
    size: usize,
) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(count);
    let mut buf = vec![0u8; size];
    for i in 0..count {
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let path = dir.join(format!("{prefix}{i:06}.bin"));
        std::fs::write(&path, &buf)?;
        paths.push(path);
    }
    Ok(paths)
}

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
