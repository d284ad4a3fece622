//! Cross-checks against the system's `sha256sum` and `xxhsum -H2` on random files.
//! `scripts/test` installs the `xxhash` package when `xxhsum` is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn tool_digest(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}); install it (scripts/test does)"));
    assert!(out.status.success(), "{tool} failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// A small deterministic generator, so a failure can be reproduced from its seed.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn matches_sha256sum_and_xxhsum_on_random_files() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        1usize, 15, 16, 17, 128, 129, 240, 241, 1023, 65_537, 262_143, 262_145, 3_000_001,
    ];
    for (seed, len) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("r{seed}.bin"));
        std::fs::write(&path, random_bytes(seed as u64 + 1, *len)).unwrap();
        let hashed = hasher::hash_file(&path).unwrap();
        assert_eq!(
            hashed.digest.sha256_hex(),
            tool_digest("sha256sum", &[], &path),
            "sha256 of {len} bytes (seed {seed})"
        );
        assert_eq!(
            hashed.digest.xxh128_hex(),
            tool_digest("xxhsum", &["-H2"], &path),
            "xxh128 of {len} bytes (seed {seed})"
        );
    }
}
