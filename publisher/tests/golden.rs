//! The wire contract, pinned: field names, nesting and value shapes against golden files.
//! Regenerate a golden file only together with a contract change in DESIGN.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use publisher::{Envelope, EventType, FileFacts, Message};

fn facts() -> FileFacts {
    FileFacts {
        size: 5_242_880,
        sha256_hex: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        xxh128_hex: "06b05ab6733a618578af5f94892f3950".into(),
    }
}

fn build(t: EventType, path: &Path, old: Option<&Path>) -> Message {
    let at = chrono::Utc.with_ymd_and_hms(2025, 8, 28, 10, 0, 0).unwrap()
        + chrono::Duration::microseconds(123_456);
    let mut m = Envelope::build(
        t,
        "watcher-music",
        Path::new("/data/music"),
        path,
        old,
        facts(),
        at,
    );
    m.envelope.correlation_id = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b".into();
    m
}

fn check(name: &str, m: &Message) {
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap()).unwrap();
    let actual: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
    assert_eq!(actual, golden, "{name} differs from the golden file");
    // And it parses back to the same envelope.
    let back: Envelope = serde_json::from_value(actual).unwrap();
    assert_eq!(back, m.envelope);
}

#[test]
fn discovered_matches_golden() {
    check(
        "discovered.json",
        &build(
            EventType::FileDiscovered,
            Path::new("/data/music/song.mp3"),
            None,
        ),
    );
}

#[test]
fn moved_matches_golden() {
    let m = build(
        EventType::FileMoved,
        Path::new("/data/music/album/song.mp3"),
        Some(Path::new("/data/music/song.mp3")),
    );
    check("moved.json", &m);
}

#[test]
fn non_utf8_matches_golden() {
    let p = PathBuf::from(OsString::from_vec(b"/data/music/caf\xe9.flac".to_vec()));
    check("non_utf8.json", &build(EventType::FileCreated, &p, None));
}

#[test]
fn every_event_type_and_routing_key() {
    let wire: Vec<_> = EventType::ALL
        .iter()
        .map(|t| (serde_json::to_value(t).unwrap(), t.routing_key()))
        .collect();
    let expected = [
        ("file_discovered", "file.discovered"),
        ("file_created", "file.created"),
        ("file_modified", "file.modified"),
        ("file_deleted", "file.deleted"),
        ("file_moved", "file.moved"),
        ("file_renamed", "file.renamed"),
    ];
    for ((v, key), (name, rk)) in wire.iter().zip(expected) {
        assert_eq!(v, name);
        assert_eq!(*key, rk);
    }
}

#[test]
fn old_path_only_on_moves_and_renames() {
    let m = build(EventType::FileDeleted, Path::new("/data/music/a.mp3"), None);
    let v: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
    assert!(v["file_info"].get("old_path").is_none());
    assert!(v["file_info"].get("path_base64").is_none());
    assert!(v["file_info"]["size_bytes"].is_string());
}
