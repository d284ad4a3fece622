//! What the log says about reported changes, at each LOG_LEVEL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Runs one `--once` pass at `level` over a directory with one file; returns the stderr lines.
fn once_at(level: &str) -> (std::path::PathBuf, Vec<String>) {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("song.mp3"), b"la la").unwrap();
    let out = command(
        &data,
        state.path(),
        &["--once", "--settle-delay", "1ms", "--log-level", level],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    (data.join("song.mp3"), lines)
}

#[test]
fn info_logs_one_line_per_reported_change_as_the_guide_shows() {
    let (path, lines) = once_at("INFO");
    let reported: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["message"] == "File discovered")
        .collect();
    assert_eq!(reported.len(), 1, "{lines:#?}");
    let v = &reported[0];
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["instance_id"], "test-watcher");
    assert_eq!(v["event_type"], "file_discovered");
    assert_eq!(v["path"], path.to_str().unwrap());
}

#[test]
fn warning_silences_the_per_change_lines() {
    let (_, lines) = once_at("WARNING");
    assert!(
        !lines.iter().any(|l| l.contains("File discovered")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"level\":\"INFO\"")),
        "{lines:#?}"
    );
}
