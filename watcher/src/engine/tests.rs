//! The engine's own tests: what only the wired pipeline shows (the parts have theirs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use publisher::StdoutSink;

fn engine(state: &Path) -> Engine {
    engine_over(state, state)
}

/// An engine whose DATA_DIR verdict is taken from `root`, on a manual clock.
fn engine_over(state: &Path, root: &Path) -> Engine {
    let cfg = EngineConfig {
        instance_id: "test".into(),
        data_dir: PathBuf::from("/nonexistent"),
        settle_delay: Duration::from_secs(1),
        filter: Filter::new(&[], &[], &[]).unwrap(),
        once: true,
        polling: false,
        limits: Limits::new(16, 16),
        rescan_every: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(1),
        clock: Clock::manual(),
        fast: None,
        scan_threads: 2,
    };
    let pool = HashPool::new(hasher::PoolConfig {
        threads: 1,
        capacity: 4,
        ..hasher::PoolConfig::default()
    })
    .unwrap();
    let (_hints, hints_rx) = mpsc::channel(1);
    Engine::new(
        cfg,
        Arc::new(Store::open(state).unwrap()),
        Arc::new(pool),
        Arc::new(Sink::Stdout(StdoutSink::new())),
        hints_rx,
        Arc::new(RescanFlag::default()),
        Arc::new(Stats::default()),
        Arc::new(sound_root(root)),
    )
}

/// A settled, sound root (the engine tests never delete, but scans ask).
fn sound_root(dir: &Path) -> RootState {
    let root = RootState::new(dir);
    let crate::root::Observation::Directory { id, .. } = crate::root::observe(dir) else {
        panic!("{} is not a directory", dir.display())
    };
    root.settle(id);
    root
}

fn entry(inode: u64) -> Entry {
    Entry {
        stamp: Stamp {
            size: 3,
            mtime_ns: 1,
            inode,
            dev: 1,
            ctime_ns: 1,
        },
        digest: hasher::Digest::from_parts([7; 32], 7),
    }
}

/// An engine that knows `paths` (none of which exists on disk).
fn knowing(state: &Path, paths: &[&str]) -> Engine {
    let mut e = engine(state);
    let ops = paths
        .iter()
        .zip(1..)
        .map(|(p, i)| Op::Put(PathBuf::from(p), entry(i)))
        .collect();
    e.ledger.record(ops);
    e
}

fn deletions(e: &Engine) -> usize {
    e.outbox.queued()
}

/// A single file that vanished is held for 1.5 settle delays, a file below a vanished
/// directory for 3: long enough for a rename seen late to claim it, no longer.
#[test]
fn vanished_files_are_held_for_their_time_and_then_deleted() {
    let state = tempfile::tempdir().unwrap();
    let mut e = knowing(state.path(), &["/data/a", "/data/d/b"]);
    let clock = e.cfg.clock.clone();
    let ms = Duration::from_millis;

    e.vanished(Path::new("/data/a")).unwrap();
    e.vanished(Path::new("/data/d")).unwrap();
    e.bulk_work().unwrap();
    assert_eq!(e.pairer.held(), 2);

    clock.advance(ms(1_499));
    e.expire_limbo(clock.now()).unwrap();
    assert_eq!(
        deletions(&e),
        0,
        "within 1.5 settle delays nothing is deleted"
    );
    clock.advance(ms(1));
    e.expire_limbo(clock.now()).unwrap();
    assert_eq!(deletions(&e), 1, "the single file is deleted at 1.5 delays");
    assert_eq!(e.pairer.held(), 1, "/data/d/b is still held");

    clock.advance(ms(1_499));
    e.expire_limbo(clock.now()).unwrap();
    assert_eq!(deletions(&e), 1);
    clock.advance(ms(1));
    e.expire_limbo(clock.now()).unwrap();
    assert_eq!(
        deletions(&e),
        2,
        "the file below the directory is deleted at 3 delays"
    );
    assert!(e.pairer.is_idle());
}

/// One bound covers both kinds of hold: beyond it a vanished file is deleted at once.
#[test]
fn the_limbo_bound_covers_single_files_and_files_below_a_directory() {
    let state = tempfile::tempdir().unwrap();
    let mut e = knowing(state.path(), &["/data/a", "/data/b", "/data/d/c"]);
    e.pairer = Pairer::new(1, e.cfg.settle_delay);
    e.vanished(Path::new("/data/a")).unwrap();
    assert_eq!((e.pairer.held(), deletions(&e)), (1, 0));
    e.vanished(Path::new("/data/b")).unwrap();
    assert_eq!(
        (e.pairer.held(), deletions(&e)),
        (1, 1),
        "full: deleted at once"
    );
    e.vanished(Path::new("/data/d")).unwrap();
    e.bulk_work().unwrap();
    assert_eq!(
        (e.pairer.held(), deletions(&e)),
        (1, 2),
        "full: deleted at once"
    );
}

/// `mv a a.old; rm a.old`: when `a.old` settles, `a` is deleted at once, not after a second
/// settle delay and a hold in the limbo (about 7 s with a 2 s delay before).
#[test]
fn a_file_renamed_and_then_unlinked_is_deleted_when_its_new_name_settles() {
    let state = tempfile::tempdir().unwrap();
    let mut e = knowing(state.path(), &["/nonexistent/a"]);
    let (a, old) = (
        PathBuf::from("/nonexistent/a"),
        PathBuf::from("/nonexistent/a.old"),
    );
    let now = e.cfg.clock.now();
    e.settle.rename(&a, old.clone(), now);
    e.settle.unlink(old.clone(), now);
    let pending = e.settle.remove(&old).unwrap();
    e.settled(old, pending, Observed::Missing, None).unwrap();
    assert_eq!(deletions(&e), 1, "the source is deleted now");
    assert!(e.busy.contains(&a), "the deletion of a is on its way");
    assert!(e.pairer.is_idle(), "nothing waits in the limbo");
    assert!(e.settle.is_empty(), "and the source is not looked at again");
}

/// DATA_DIR is looked at afresh at most every 100 ms, so a directory of deletions costs one
/// look, and an unmount is seen within 100 ms.
#[test]
fn the_root_verdict_is_cached_for_a_tenth_of_a_second() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut e = engine_over(state.path(), &root);
    let clock = e.cfg.clock.clone();
    assert!(e.root_sound());
    std::fs::remove_dir(&root).unwrap();
    clock.advance(Duration::from_millis(99));
    assert!(e.root_sound(), "within 100 ms the last look is reused");
    clock.advance(Duration::from_millis(1));
    assert!(!e.root_sound(), "after 100 ms DATA_DIR is looked at afresh");
}

/// A file a scan found before it had settled is hashed once: when it settles with the stamp it
/// was read at, those digests are reported; with any other stamp it is read again.
#[test]
fn a_file_hashed_before_it_settled_is_not_read_again_when_it_settles_as_it_was() {
    let state = tempfile::tempdir().unwrap();
    let mut e = engine(state.path());
    let now = e.cfg.clock.now();
    let fresh = entry(9);
    let seen = |s: Stamp| Observed::File {
        size: s.size,
        mtime_ns: s.mtime_ns,
    };

    let same = PathBuf::from("/nonexistent/same");
    e.settle
        .touch_hashed(same.clone(), Origin::Scan, now, fresh);
    let pending = e.settle.remove(&same).unwrap();
    e.settled(same, pending, seen(fresh.stamp), Some(fresh.stamp))
        .unwrap();
    assert_eq!(e.hashing.queued(), 0, "not read a second time");
    assert_eq!(
        e.outbox.queued(),
        1,
        "reported with the digests taken before"
    );

    let grown = PathBuf::from("/nonexistent/grown");
    let later = Stamp {
        size: fresh.stamp.size + 1,
        ..fresh.stamp
    };
    e.settle
        .touch_hashed(grown.clone(), Origin::Scan, now, fresh);
    let pending = e.settle.remove(&grown).unwrap();
    e.settled(grown, pending, seen(later), Some(later)).unwrap();
    assert_eq!(e.hashing.queued(), 1, "changed since: read again");
    assert_eq!(e.outbox.queued(), 1);
}
