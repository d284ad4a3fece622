//! Criterion benches of the hashing path.
//!
//! * `single_file`: one file of 4 KiB, 1 MiB and 256 MiB, hashed with the one-pass pair and with
//!   SHA-256 alone over the same read loop, in the same run, so their ratio is meaningful.
//! * `pool_small_files`: 10,000 files of 4 KiB through the pool, and the bare single-thread loop.
//! * `pool_large_files`: three 256 MiB files through the pool, in bytes per second.
//!
//! Run: `cargo bench -p benches --bench hashing`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hasher::{hash_file, HashPool, PoolConfig, BUFFER_SIZE};
use sha2::{Digest as _, Sha256};

/// SHA-256 alone over the same buffered read as `hash_file`: the pace-setter to compare with.
fn sha256_only(path: &Path, buf: &mut [u8]) -> [u8; 32] {
    let mut file = File::open(path).unwrap();
    let mut sha = Sha256::new();
    loop {
        let n = file.read(buf).unwrap();
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    sha.finalize().into()
}

fn single_file(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("single_file");
    for (label, size) in [
        ("4KiB", 4usize << 10),
        ("1MiB", 1 << 20),
        ("256MiB", 256 << 20),
    ] {
        let path = benches::write_files(dir.path(), label, 1, size)
            .unwrap()
            .remove(0);
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 64 << 20 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(15));
        }
        group.bench_with_input(
            BenchmarkId::new("one_pass_sha256_xxh128", label),
            &path,
            |b, p| b.iter(|| hash_file(p).unwrap()),
        );
        let mut buf = vec![0u8; BUFFER_SIZE];
        group.bench_with_input(BenchmarkId::new("sha256_only", label), &path, |b, p| {
            b.iter(|| sha256_only(p, &mut buf))
        });
    }
    group.finish();
}

fn run_pool(pool: &HashPool, paths: &[PathBuf]) {
    assert_eq!(benches::hash_all(pool, paths).unwrap(), 0);
}

fn pool_small_files(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let paths = benches::write_files(dir.path(), "small", 10_000, 4096).unwrap();
    let mut group = c.benchmark_group("pool_small_files");
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.sample_size(20);
    group.bench_function("single_thread_loop", |b| {
        b.iter(|| {
            for p in &paths {
                hash_file(p).unwrap();
            }
        })
    });
    let pool = HashPool::new(PoolConfig::default()).unwrap();
    group.bench_function(BenchmarkId::new("pool", pool.threads()), |b| {
        b.iter(|| run_pool(&pool, &paths))
    });
    group.finish();
}

fn pool_large_files(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let paths = benches::write_files(dir.path(), "large", 3, 256 << 20).unwrap();
    let total: u64 = 3 * (256 << 20);
    let mut group = c.benchmark_group("pool_large_files");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("single_thread_loop", |b| {
        b.iter(|| {
            for p in &paths {
                hash_file(p).unwrap();
            }
        })
    });
    let pool = HashPool::new(PoolConfig::default()).unwrap();
    group.bench_function(BenchmarkId::new("pool", pool.threads()), |b| {
        b.iter(|| run_pool(&pool, &paths))
    });
    group.finish();
}

criterion_group!(benches, single_file, pool_small_files, pool_large_files);
criterion_main!(benches);
