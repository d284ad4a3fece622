//! The pool: everything queued comes back exactly once, with bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use hasher::{hash_file, HashError, HashPool, Job, PoolConfig};

#[test]
fn ten_thousand_in_ten_thousand_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..10_000 {
        let p = dir.path().join(format!("f{i:05}.txt"));
        std::fs::write(&p, format!("file number {i}")).unwrap();
        paths.push(p);
    }
    let pool = HashPool::new(PoolConfig {
        threads: 2,
        capacity: 64,
        ..PoolConfig::default()
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let max_queued = Arc::new(AtomicUsize::new(0));
    for p in &paths {
        let tx = tx.clone();
        let path = p.clone();
        pool.submit(Job::new(p.clone(), move |r| tx.send((path, r)).unwrap()))
            .unwrap();
        max_queued.fetch_max(pool.queued(), Ordering::Relaxed);
    }
    drop(tx);
    drop(pool); // waits for every job
    let results: Vec<(PathBuf, _)> = rx.iter().collect();
    assert_eq!(results.len(), 10_000);
    let unique: HashSet<_> = results.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(unique.len(), 10_000, "every path exactly once");
    for (p, r) in results.iter().step_by(997) {
        assert_eq!(
            r.as_ref().unwrap(),
            &hash_file(p).unwrap(),
            "{}",
            p.display()
        );
    }
    assert!(max_queued.load(Ordering::Relaxed) <= 64);
}

#[test]
fn memory_stays_flat_however_much_is_queued() {
    // A producer that outruns the workers is held back by the intake: the queue never holds
    // more than its capacity, so memory depends on the capacity, not on how much is submitted.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.bin");
    std::fs::write(&p, vec![3u8; 4096]).unwrap();
    let pool = HashPool::new(PoolConfig {
        threads: 2,
        capacity: 16,
        ..PoolConfig::default()
    })
    .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let mut max_queued = 0;
    let mut max_outstanding = 0;
    for i in 0..50_000usize {
        let counter = Arc::clone(&done);
        pool.submit(Job::new(p.clone(), move |r| {
            r.unwrap();
            counter.fetch_add(1, Ordering::Relaxed);
        }))
        .unwrap();
        max_queued = max_queued.max(pool.queued());
        max_outstanding = max_outstanding.max(i + 1 - done.load(Ordering::Relaxed));
    }
    drop(pool);
    assert_eq!(done.load(Ordering::Relaxed), 50_000);
    assert!(max_queued <= 16, "queued {max_queued}");
    // Waiting + being hashed + finishing its callback, per thread: nowhere near 50,000.
    assert!(
        max_outstanding <= 16 + 2 * 2 + 2,
        "outstanding {max_outstanding}"
    );
}

#[test]
fn try_submit_hands_the_job_back_when_full() {
    let pool = HashPool::new(PoolConfig {
        threads: 1,
        capacity: 1,
        ..PoolConfig::default()
    })
    .unwrap();
    // Block the single worker inside a callback so the intake fills up.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    pool.submit(Job::new("/nonexistent/a", move |_| {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    }))
    .unwrap();
    started_rx.recv().unwrap();
    pool.try_submit(Job::new("/nonexistent/b", |_| {})).unwrap();
    let err = pool
        .try_submit(Job::new("/nonexistent/c", |_| {}))
        .unwrap_err();
    assert_eq!(
        err.into_job().path(),
        std::path::Path::new("/nonexistent/c")
    );
    release_tx.send(()).unwrap();
}

#[test]
fn large_files_take_turns_with_small_ones() {
    // One worker, a slice of 1 MiB: a 64 MiB file submitted first must not finish before a
    // small file submitted right after it.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![9u8; 64 << 20]).unwrap();
    let small = dir.path().join("small.bin");
    std::fs::write(&small, b"tiny").unwrap();
    let pool = HashPool::new(PoolConfig {
        threads: 1,
        capacity: 8,
        slice_bytes: 1 << 20,
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    pool.submit(Job::new(big.clone(), move |r| tx.send(("big", r)).unwrap()))
        .unwrap();
    pool.submit(Job::new(small.clone(), move |r| {
        tx2.send(("small", r)).unwrap()
    }))
    .unwrap();
    drop(pool);
    let order: Vec<_> = rx.iter().collect();
    assert_eq!(order.len(), 2);
    assert_eq!(
        order[0].0, "small",
        "the small file waited for the whole big one"
    );
    assert_eq!(order[1].1.as_ref().unwrap(), &hash_file(&big).unwrap());
}

#[test]
fn errors_come_back_through_the_pool() {
    let pool = HashPool::new(PoolConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    pool.submit(Job::new("/definitely/not/here", move |r| {
        tx.send(r).unwrap()
    }))
    .unwrap();
    let r = rx.recv().unwrap();
    assert!(matches!(r, Err(HashError::NotFound { .. })));
    assert_eq!(pool.stats().failed.load(Ordering::Relaxed), 1);
}

#[test]
fn stop_answers_every_job_within_a_slice_and_drop_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    // Sparse: 4 x 4 GiB cost no disk, and take minutes to hash in a debug build.
    for i in 0..4 {
        let p = dir.path().join(format!("big{i}.bin"));
        std::fs::File::create(&p).unwrap().set_len(4 << 30).unwrap();
        paths.push(p);
    }
    for i in 0..20 {
        let p = dir.path().join(format!("small{i}.txt"));
        std::fs::write(&p, "small").unwrap();
        paths.push(p);
    }
    let pool = HashPool::new(PoolConfig {
        threads: 2,
        capacity: 64,
        slice_bytes: 4 << 20,
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    for p in &paths {
        let tx = tx.clone();
        let path = p.clone();
        pool.submit(Job::new(p.clone(), move |r| {
            let _ = tx.send((path, r));
        }))
        .unwrap();
    }
    drop(tx);
    // Let the big files get going.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stopped = std::time::Instant::now();
    pool.stop();
    drop(pool);
    let results: Vec<_> = rx.iter().collect();
    let took = stopped.elapsed();
    assert_eq!(results.len(), paths.len(), "every job answered once");
    let cancelled: Vec<_> = results
        .iter()
        .filter(|(_, r)| matches!(r, Err(HashError::Cancelled { .. })))
        .map(|(p, _)| p.clone())
        .collect();
    for i in 0..4 {
        let big = dir.path().join(format!("big{i}.bin"));
        assert!(cancelled.contains(&big), "{big:?} was hashed to the end");
    }
    // One 4 MiB slice per thread, not 16 GiB.
    assert!(
        took < std::time::Duration::from_secs(5),
        "stop took {took:?}"
    );
}
