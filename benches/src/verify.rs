//! Checks that what reached the broker is what is on disk: every expected change exactly once,
//! nothing else, and the digests right for a sample of files (recomputed here, independently of
//! the service's hasher). Each check returns an error that says what was wrong, and the harness
//! exits non-zero on it.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use publisher::{Envelope, EventType};
use sha2::Digest as _;

use crate::broker::Received;

/// Parses every body as the wire envelope.
///
/// # Errors
/// A body that is not an envelope.
pub fn parse(received: &[Received]) -> Result<Vec<(Instant, Envelope)>> {
    received
        .iter()
        .map(|r| {
            let e: Envelope = serde_json::from_slice(&r.body).with_context(|| {
                format!(
                    "not an envelope: {}",
                    String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                )
            })?;
            Ok((r.at, e))
        })
        .collect()
}

/// Every path in `expected` has exactly one envelope, of one of the `kinds`, and there is no
/// envelope for any other path. Returns the envelopes by path.
///
/// # Errors
/// A missing, duplicate, unexpected or wrongly typed event; the message names the first few.
pub fn exactly_once<'a>(
    envelopes: &'a [(Instant, Envelope)],
    expected: &[PathBuf],
    kinds: &[EventType],
) -> Result<HashMap<PathBuf, &'a (Instant, Envelope)>> {
    let mut by_path: HashMap<PathBuf, &(Instant, Envelope)> =
        HashMap::with_capacity(expected.len());
    let mut duplicates = Vec::new();
    let mut wrong_kind = Vec::new();
    for item in envelopes {
        let e = &item.1;
        let path = PathBuf::from(&e.file_info.path);
        if !kinds.contains(&e.event_type) {
            wrong_kind.push(format!("{} {}", e.event_type, path.display()));
        }
        if by_path.insert(path.clone(), item).is_some() {
            duplicates.push(path);
        }
    }
    ensure!(
        wrong_kind.is_empty(),
        "{} events of an unexpected kind (expected {kinds:?}), e.g. {:?}",
        wrong_kind.len(),
        &wrong_kind[..wrong_kind.len().min(3)]
    );
    ensure!(
        duplicates.is_empty(),
        "{} paths reported more than once, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(3)]
    );
    let missing: Vec<&PathBuf> = expected
        .iter()
        .filter(|p| !by_path.contains_key(*p))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} of {} expected paths never reported, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(3)]
    );
    ensure!(
        by_path.len() == expected.len(),
        "{} events for paths that were not expected ({} expected, {} reported)",
        by_path.len() - expected.len(),
        expected.len(),
        by_path.len()
    );
    Ok(by_path)
}

/// SHA-256 and XXH3-128 (big-endian hex, as `xxhsum -H2` prints it) of a file, read here.
///
/// # Errors
/// The file cannot be read.
pub fn digests(path: &Path) -> Result<(u64, String, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut sha = sha2::Sha256::new();
    let mut xxh = twox_hash::XxHash3_128::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        xxh.write(&buf[..n]);
        size += n as u64;
    }
    Ok((
        size,
        hex::encode(sha.finalize()),
        format!("{:032x}", xxh.finish_128()),
    ))
}

/// Recomputes size and both digests of every `step`-th expected path (at least one) and checks
/// them against its envelope. Returns how many were checked.
///
/// # Errors
/// A digest or size that differs, or a file that cannot be read.
pub fn sample_digests(
    by_path: &HashMap<PathBuf, &(Instant, Envelope)>,
    expected: &[PathBuf],
    step: usize,
) -> Result<usize> {
    let mut checked = 0;
    for path in expected.iter().step_by(step.max(1)) {
        let Some((_, e)) = by_path.get(path) else {
            bail!("no envelope for {}", path.display());
        };
        let (size, sha, xxh) = digests(path)?;
        let info = &e.file_info;
        ensure!(
            info.size_bytes == size.to_string(),
            "{}: size_bytes {} but the file has {size}",
            path.display(),
            info.size_bytes
        );
        ensure!(
            info.sha256_hash == sha,
            "{}: sha256_hash {} but the file hashes to {sha}",
            path.display(),
            info.sha256_hash
        );
        ensure!(
            info.xxh128_hash == xxh,
            "{}: xxh128_hash {} but the file hashes to {xxh}",
            path.display(),
            info.xxh128_hash
        );
        checked += 1;
    }
    Ok(checked)
}
