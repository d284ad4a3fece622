//! The pool: everything queued comes back exactly once, with bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use hasher::{hash_file, HashError, HashPool, Job, PoolConfig};

/// A sparse file of `len` bytes: no disk used, and as many slices as a real one.
fn sparse(path: &std::path::Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A pool of `threads` threads and `capacity` waiting jobs, default slices.
fn pool(threads: usize, capacity: usize) -> HashPool {
    HashPool::new(PoolConfig {
        threads,
        capacity,
        ..PoolConfig::default()
    })
    .unwrap()
}

#[test]
fn ten_thousand_in_ten_thousand_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..10_000 {
        let p = dir.path().join(format!("f{i:05}.txt"));
        std::fs::write(&p, format!("file number {i}")).unwrap();
        paths.push(p);
    }
    let pool = pool(2, 64);
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
    let pool = pool(2, 16);
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
    let pool = pool(1, 1);
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
        sparse(&p, 4 << 30);
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

/// Occupies a pool's only thread inside a callback until `release` is sent, so that everything
/// submitted meanwhile is queued in a known order before any of it starts.
fn gate(pool: &HashPool) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    pool.submit(Job::new("/nonexistent/gate", move |_| {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    }))
    .unwrap();
    started_rx.recv().unwrap();
    release_tx
}

#[test]
fn small_files_overtake_a_big_one_submitted_first() {
    // One thread, small slices: a big file queued ahead of 100 small ones goes to the back of the
    // queue after each slice, so every small file is answered before it.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    // Sparse: no disk, and 256 slices of 256 KiB.
    sparse(&big, 64 << 20);
    let smalls: Vec<_> = (0..100)
        .map(|i| {
            let p = dir.path().join(format!("small{i:03}.txt"));
            std::fs::write(&p, format!("small {i}")).unwrap();
            p
        })
        .collect();
    let pool = HashPool::new(PoolConfig {
        threads: 1,
        capacity: 128,
        slice_bytes: 256 << 10,
    })
    .unwrap();
    let release = gate(&pool);
    let (tx, rx) = mpsc::channel();
    for p in std::iter::once(&big).chain(&smalls) {
        let tx = tx.clone();
        let path = p.clone();
        pool.submit(Job::new(p.clone(), move |r| tx.send((path, r)).unwrap()))
            .unwrap();
    }
    drop(tx);
    release.send(()).unwrap();
    drop(pool);
    let order: Vec<_> = rx.iter().collect();
    assert_eq!(order.len(), 101);
    let (last, result) = order.last().unwrap();
    assert_eq!(last, &big, "the big file was not the last to finish");
    assert_eq!(result.as_ref().unwrap(), &hash_file(&big).unwrap());
    for (p, r) in &order[..100] {
        assert_eq!(r.as_ref().unwrap(), &hash_file(p).unwrap());
    }
}

#[test]
fn open_files_stay_within_capacity_plus_threads_under_concurrent_submit() {
    // Eight producers push 200 jobs each into a pool of capacity 4 and 2 threads. Half the files
    // take eight slices each, so files pause between slices while others start: however the
    // submits interleave, no more than 4 + 2 files are open at once, and every job is answered
    // exactly once. (The hand-written pool freed a job's intake slot when it paused the file:
    // this very load kept 400 to 550 files open at once there.)
    const PRODUCERS: usize = 8;
    const JOBS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..4u8 {
        let big = dir.path().join(format!("big{i}.bin"));
        std::fs::write(&big, vec![i; 8 * (256 << 10)]).unwrap();
        let small = dir.path().join(format!("small{i}.txt"));
        std::fs::write(&small, [i; 100]).unwrap();
        files.push(big);
        files.push(small);
    }
    let pool = Arc::new(
        HashPool::new(PoolConfig {
            threads: 2,
            capacity: 4,
            slice_bytes: 256 << 10,
        })
        .unwrap(),
    );
    let answers: Arc<Vec<AtomicUsize>> =
        Arc::new((0..PRODUCERS * JOBS).map(|_| AtomicUsize::new(0)).collect());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let answers = Arc::clone(&answers);
            let files = files.clone();
            std::thread::spawn(move || {
                for j in 0..JOBS {
                    let id = t * JOBS + j;
                    let answers = Arc::clone(&answers);
                    let path = files[(t + j) % files.len()].clone();
                    pool.submit(Job::new(path, move |r| {
                        r.unwrap();
                        answers[id].fetch_add(1, Ordering::Relaxed);
                    }))
                    .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let pool = Arc::into_inner(pool).unwrap();
    let stats = Arc::clone(pool.stats());
    drop(pool); // waits for every job
    for (id, n) in answers.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 1, "job {id}");
    }
    let peak = stats.peak_open_files.load(Ordering::Relaxed);
    assert!(peak <= 4 + 2, "{peak} files open at once");
    assert!(
        peak > 2,
        "no file ever paused between slices: the test proved nothing"
    );
    assert_eq!(stats.open_files.load(Ordering::Relaxed), 0);
    assert_eq!(stats.completed.load(Ordering::Relaxed), 1600);
}

#[test]
fn stop_cancels_queued_and_paused_jobs_without_reading_them() {
    // One thread: a big file is paused between slices and five small files wait while a callback
    // holds the thread. After `stop`, all six are answered Cancelled as soon as the thread is
    // free, and a new job is refused.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    sparse(&big, 4 << 30);
    let pool = HashPool::new(PoolConfig {
        threads: 1,
        capacity: 8,
        slice_bytes: 1 << 20,
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    pool.submit(Job::new(big.clone(), move |r| tx2.send(r).unwrap()))
        .unwrap();
    let release = gate(&pool);
    assert_eq!(pool.stats().sliced_in_progress.load(Ordering::Relaxed), 1);
    assert_eq!(pool.stats().open_files.load(Ordering::Relaxed), 1);
    for i in 0..5 {
        let p = dir.path().join(format!("small{i}.txt"));
        std::fs::write(&p, "small").unwrap();
        let tx = tx.clone();
        pool.submit(Job::new(p, move |r| tx.send(r).unwrap()))
            .unwrap();
    }
    drop(tx);
    pool.stop();
    let refused = pool.try_submit(Job::new(&big, |_| {})).unwrap_err();
    assert!(matches!(refused, hasher::SubmitError::Closed(_)));
    let refused = pool.submit(Job::new(&big, |_| {})).unwrap_err();
    assert!(matches!(refused, hasher::SubmitError::Closed(_)));
    let stopped = std::time::Instant::now();
    release.send(()).unwrap();
    drop(pool);
    let results: Vec<_> = rx.iter().collect();
    let took = stopped.elapsed();
    assert_eq!(results.len(), 6, "every job answered once");
    for r in &results {
        assert!(matches!(r, Err(HashError::Cancelled { .. })), "{r:?}");
    }
    assert!(
        took < std::time::Duration::from_secs(2),
        "stop took {took:?}"
    );
}

#[test]
fn a_submit_waiting_for_room_is_refused_by_stop() {
    let pool = Arc::new(pool(1, 1));
    let release = gate(&pool);
    // The gate is admitted and one more job fits: capacity + threads = 2.
    pool.try_submit(Job::new("/nonexistent/b", |_| {})).unwrap();
    let waiting = {
        let pool = Arc::clone(&pool);
        std::thread::spawn(move || pool.submit(Job::new("/nonexistent/c", |_| {})))
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!waiting.is_finished(), "submit did not wait for room");
    pool.stop();
    let err = waiting.join().unwrap().unwrap_err();
    assert!(matches!(err, hasher::SubmitError::Closed(_)));
    release.send(()).unwrap();
}

#[test]
fn a_panicking_callback_does_not_lose_the_jobs_after_it() {
    let pool = pool(1, 1);
    pool.submit(Job::new("/nonexistent/a", |_| panic!("callback panics")))
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let done = Arc::clone(&done);
        pool.submit(Job::new("/nonexistent/b", move |_| {
            done.fetch_add(1, Ordering::Relaxed);
        }))
        .unwrap();
    }
    let stats = Arc::clone(pool.stats());
    drop(pool);
    assert_eq!(done.load(Ordering::Relaxed), 100);
    assert_eq!(stats.completed.load(Ordering::Relaxed), 101);
}

#[test]
fn every_thread_takes_work_while_jobs_wait() {
    // Two threads, two jobs whose callbacks each wait for the other's: both only return if the
    // two run at the same time, on two threads.
    let pool = pool(2, 4);
    let (a_tx, a_rx) = mpsc::channel::<()>();
    let (b_tx, b_rx) = mpsc::channel::<()>();
    let (met_tx, met_rx) = mpsc::channel::<bool>();
    let met_b = met_tx.clone();
    let wait = std::time::Duration::from_secs(10);
    pool.submit(Job::new("/nonexistent/a", move |_| {
        a_tx.send(()).unwrap();
        met_tx.send(b_rx.recv_timeout(wait).is_ok()).unwrap();
    }))
    .unwrap();
    pool.submit(Job::new("/nonexistent/b", move |_| {
        b_tx.send(()).unwrap();
        met_b.send(a_rx.recv_timeout(wait).is_ok()).unwrap();
    }))
    .unwrap();
    drop(pool);
    let met: Vec<bool> = met_rx.iter().collect();
    assert_eq!(met, [true, true], "the two jobs did not run side by side");
}
