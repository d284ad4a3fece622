//! Criterion benches of the per-file work the pipeline does besides hashing, each on its own:
//! the floor under what `--once --sink stdout` can cost on top of the bare pool.
//!
//! * `walk`: listing 10,000 files in 100 directories (walkdir, no `stat`).
//! * `envelope_json`: building 10,000 envelopes and writing them as JSON lines into one buffer,
//!   as the stdout sink does.
//! * `store_commit`: 10,000 entries into a fresh store in one durable transaction.
//!
//! On 2 cores the pool keeps both busy, so every microsecond spent here per file is taken from
//! hashing: with the pool at `t` seconds, `--once` can reach 0.8x the pool's rate only if all
//! the work here, and the rest of the pipeline, costs less than `2 * (t / 0.8 - t)` of CPU.
//!
//! Run: `cargo bench -p benches --bench pipeline`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hasher::{Digest, Stamp};
use publisher::{Envelope, EventType, FileFacts};
use watcher::{Entry, Op, Store};

const FILES: usize = 10_000;

fn tree() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::with_capacity(FILES);
    for i in 0..FILES {
        let sub = dir.path().join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join(format!("f{i:06}.flac"));
        std::fs::write(&path, b"").unwrap();
        paths.push(path);
    }
    (dir, paths)
}

fn entry(i: usize) -> Entry {
    let mut sha = [0u8; 32];
    sha[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Entry {
        stamp: Stamp {
            size: 4096,
            mtime_ns: 1_700_000_000_000_000_000 + i as i64,
            inode: i as u64,
            dev: 2049,
            ctime_ns: 1_700_000_000_000_000_000 + i as i64,
        },
        digest: Digest::from_parts(sha, i as u128 * 0x9E37_79B9_7F4A_7C15),
    }
}

fn pipeline_parts(c: &mut Criterion) {
    let (dir, paths) = tree();
    let mut group = c.benchmark_group("pipeline_parts");
    group.throughput(Throughput::Elements(FILES as u64));
    group.sample_size(20);

    group.bench_function("walk", |b| {
        b.iter(|| {
            let found = walkdir::WalkDir::new(dir.path())
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(walkdir::DirEntry::into_path)
                .count();
            assert_eq!(found, FILES);
        })
    });

    let entries: Vec<Entry> = (0..FILES).map(entry).collect();
    let mut buf = Vec::with_capacity(1 << 20);
    group.bench_function("envelope_json", |b| {
        b.iter(|| {
            buf.clear();
            for (p, e) in paths.iter().zip(&entries) {
                let facts = FileFacts {
                    size: e.stamp.size,
                    sha256_hex: e.digest.sha256_hex(),
                    xxh128_hex: e.digest.xxh128_hex(),
                };
                let msg = Envelope::build(
                    EventType::FileDiscovered,
                    "music",
                    dir.path(),
                    p,
                    None,
                    facts,
                    chrono::Utc::now(),
                );
                msg.write_json(&mut buf).unwrap();
                buf.push(b'\n');
            }
        })
    });

    let ops: Vec<Op> = paths
        .iter()
        .zip(&entries)
        .map(|(p, e)| Op::Put(p.clone(), *e))
        .collect();
    group.bench_function("store_commit", |b| {
        b.iter_batched(
            || {
                let state = tempfile::tempdir().unwrap();
                let store = Store::open(state.path()).unwrap();
                (state, store)
            },
            |(state, store)| {
                store.apply_with(&ops, true).unwrap();
                (state, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, pipeline_parts);
criterion_main!(benches);
