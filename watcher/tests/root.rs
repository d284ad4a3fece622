//! A DATA_DIR that is missing, replaced or emptied is a fault, not a mass deletion: nothing is
//! reported deleted until the right directory is back, or the operator accepts the new one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A library of three files at `top/music`, its state elsewhere.
fn library() -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let top = tempfile::tempdir().unwrap();
    let data = top.path().canonicalize().unwrap().join("music");
    std::fs::create_dir(&data).unwrap();
    for name in ["a.flac", "b.flac", "c.flac"] {
        std::fs::write(data.join(name), name).unwrap();
    }
    (top, data, tempfile::tempdir().unwrap())
}

/// One `--once` run: exit code, events, log.
fn once(data: &Path, state: &Path, extra: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = command(data, state, &["--once", "--settle-delay", "1ms"])
        .args(extra)
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap(),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn types(events: &[serde_json::Value]) -> Vec<&str> {
    let mut t: Vec<&str> = events.iter().map(event_type).collect();
    t.sort_unstable();
    t
}

#[test]
fn an_empty_directory_in_place_of_the_library_is_refused_until_accepted() {
    let (_top, data, state) = library();
    let (code, events, log) = once(&data, state.path(), &[]);
    assert_eq!((code, events.len()), (0, 3), "{log}");

    // The volume is not mounted: an empty directory stands where the library was.
    let real = data.with_extension("real");
    std::fs::rename(&data, &real).unwrap();
    std::fs::create_dir(&data).unwrap();
    let (code, events, log) = once(&data, state.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(events.is_empty(), "published while refused: {events:?}");
    assert!(
        log.contains("another directory than the one the state store describes"),
        "{log}"
    );
    assert!(
        log.contains(&format!("DATA_DIR {}", data.display())),
        "{log}"
    );
    assert!(log.contains("--accept-new-data-dir"), "{log}");

    // The real one is back: nothing changed, nothing reported.
    std::fs::remove_dir(&data).unwrap();
    std::fs::rename(&real, &data).unwrap();
    let (code, events, log) = once(&data, state.path(), &[]);
    assert_eq!((code, events.len()), (0, 0), "{log}");

    // The operator says the empty one is right: its files are reported deleted, once.
    std::fs::rename(&data, &real).unwrap();
    std::fs::create_dir(&data).unwrap();
    let (code, events, log) = once(&data, state.path(), &["--accept-new-data-dir"]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(types(&events), ["file_deleted"; 3], "{log}");
    let (code, events, log) = once(&data, state.path(), &[]);
    assert_eq!((code, events.len()), (0, 0), "{log}");
}

#[test]
fn the_library_emptied_while_down_needs_the_flag() {
    let (_top, data, state) = library();
    let (code, events, _) = once(&data, state.path(), &[]);
    assert_eq!((code, events.len()), (0, 3));
    for name in ["a.flac", "b.flac", "c.flac"] {
        std::fs::remove_file(data.join(name)).unwrap();
    }
    let (code, events, log) = once(&data, state.path(), &[]);
    assert_eq!(code, 1, "{log}");
    assert!(events.is_empty(), "{events:?}");
    assert!(
        log.contains("is empty, but the state store knows 3 files"),
        "{log}"
    );
    let (code, events, log) = once(&data, state.path(), &["--accept-new-data-dir"]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(types(&events), ["file_deleted"; 3]);
}

#[test]
fn a_library_renamed_away_while_watching_publishes_no_deletions() {
    let (_top, data, state) = library();
    let w = Watcher::start(&data, state.path(), &["--reconcile-interval", "1s"]);
    for _ in 0..3 {
        assert_eq!(event_type(&w.next()), "file_discovered");
    }
    w.wait_ready();
    let away = data.with_extension("away");
    std::fs::rename(&data, &away).unwrap();
    // Really deleted while the library is away: reported once it is back, not before.
    std::fs::remove_file(away.join("b.flac")).unwrap();
    w.wait_log("publishing no deletions");
    // Hints about the vanished tree and reconciliation ticks (every second) come and go.
    let quiet = w.events.recv_timeout(Duration::from_secs(3));
    assert!(
        quiet.is_err(),
        "published while DATA_DIR was away: {quiet:?}"
    );

    std::fs::rename(&away, &data).unwrap();
    let deleted = w.next();
    assert_eq!(event_type(&deleted), "file_deleted", "{deleted}");
    assert_eq!(path_of(&deleted), data.join("b.flac"));
    w.wait_log("data_dir_back");
    // Watched again: a new file is reported, and nothing else was pending.
    let rest = w.barrier(&data, "d.flac");
    assert!(rest.is_empty(), "{rest:?}");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_live_start_on_an_empty_directory_waits_for_the_library() {
    let (_top, data, state) = library();
    let (code, events, _) = once(&data, state.path(), &[]);
    assert_eq!((code, events.len()), (0, 3));
    let real = data.with_extension("real");
    std::fs::rename(&data, &real).unwrap();
    std::fs::create_dir(&data).unwrap();
    let w = Watcher::start(&data, state.path(), &["--poll-interval", "200ms"]);
    w.wait_log("not scanning, and reporting not ready, until it is back");
    assert!(w.events.recv_timeout(Duration::from_secs(1)).is_err());
    // The volume comes up.
    std::fs::remove_dir(&data).unwrap();
    std::fs::rename(&real, &data).unwrap();
    w.wait_ready();
    let rest = w.barrier(&data, "new.flac");
    assert!(
        rest.is_empty(),
        "the unchanged library was reported again: {rest:?}"
    );
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}
