//! The consumer-facing JSON Schema (docs/envelope.schema.json) held against what the code really
//! sends: the golden files, the examples in docs/envelope.md and the README, and the stdout of
//! real `file-watcher` runs that produce every event type. A schema that only matched
//! hand-written examples could promise consumers more (or less) than the code delivers; a
//! schema that matched everything would promise nothing, so altered envelopes must fail.
//!
//! All of it lives in this one crate so the schema is loaded by one function: the watcher
//! depends on the publisher, so the goldens are one directory away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// The workspace root: docs/, README.md and publisher/ hang off it.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The schema, compiled for draft 2020-12 with `format` asserted: by default 2020-12 treats
/// `format` as an annotation only, and `uuid`/`date-time` would then check nothing.
/// Building also validates the schema against its meta-schema.
fn validator() -> jsonschema::Validator {
    let path = repo().join("docs/envelope.schema.json");
    let schema: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()))
}

/// Every violation of `envelope`, one line each with where it is.
fn violations(v: &jsonschema::Validator, envelope: &Value) -> Vec<String> {
    v.iter_errors(envelope)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect()
}

fn assert_valid(v: &jsonschema::Validator, what: &str, envelope: &Value) {
    let errors = violations(v, envelope);
    assert!(
        errors.is_empty(),
        "{what} does not match docs/envelope.schema.json:\n  {}\n{envelope:#}",
        errors.join("\n  ")
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden(name: &str) -> Value {
    read_json(&repo().join("publisher/tests/golden").join(name))
}

/// The bodies of the ```json blocks in a Markdown text.
fn json_blocks(markdown: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim() == "```json" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim() == "```" => {
                let text = current.take().unwrap();
                blocks.push(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("a ```json block is not JSON ({e}):\n{text}")),
                );
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

fn event_type(e: &Value) -> &str {
    e["event_type"].as_str().unwrap_or_default()
}

const ALL_TYPES: [&str; 6] = [
    "file_created",
    "file_deleted",
    "file_discovered",
    "file_modified",
    "file_moved",
    "file_renamed",
];

#[test]
fn golden_files_match_the_schema() {
    let v = validator();
    let dir = repo().join("publisher/tests/golden");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "golden files missing in {}",
        dir.display()
    );
    for f in &files {
        assert_valid(&v, &f.display().to_string(), &read_json(f));
    }
}

/// docs/envelope.md shows one example of each event type, and the README one: they must be
/// envelopes the schema accepts, or a consumer copying them learns the wrong shape.
#[test]
fn documented_examples_match_the_schema() {
    let v = validator();
    let doc = fs::read_to_string(repo().join("docs/envelope.md")).unwrap();
    let examples = json_blocks(&doc);
    let mut types = Vec::new();
    for e in &examples {
        assert_valid(&v, "an example in docs/envelope.md", e);
        types.push(event_type(e).to_owned());
    }
    types.sort();
    assert_eq!(
        types, ALL_TYPES,
        "docs/envelope.md: one example per event type"
    );

    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## What is in a message")
        .nth(1)
        .expect("README has a section \"What is in a message\"");
    let section = section.split("\n## ").next().unwrap_or_default();
    let examples = json_blocks(section);
    assert!(
        !examples.is_empty(),
        "no ```json example in the README section"
    );
    for e in &examples {
        assert_valid(&v, "the README example", e);
    }
}

/// The schema is strict: each of these departures from the code's guarantees is refused. A
/// schema that accepted them would tell consumers nothing they could rely on.
#[test]
fn altered_envelopes_fail_validation() {
    let v = validator();
    let discovered = golden("discovered.json");
    let moved = golden("moved.json");
    let non_utf8 = golden("non_utf8.json");
    for base in [&discovered, &moved, &non_utf8] {
        assert_valid(&v, "an unaltered golden file", base);
    }

    type Change = fn(&mut Value);
    let cases: Vec<(&str, &Value, Change)> = vec![
        ("size_bytes as a number", &discovered, |e| {
            e["file_info"]["size_bytes"] = json!(5_242_880)
        }),
        ("size_bytes negative", &discovered, |e| {
            e["file_info"]["size_bytes"] = json!("-1")
        }),
        ("size_bytes with a leading zero", &discovered, |e| {
            e["file_info"]["size_bytes"] = json!("05")
        }),
        ("size_bytes as a decimal fraction", &discovered, |e| {
            e["file_info"]["size_bytes"] = json!("5.0")
        }),
        ("no sha256_hash", &discovered, |e| {
            e["file_info"]
                .as_object_mut()
                .unwrap()
                .remove("sha256_hash");
        }),
        ("no correlation_id", &discovered, |e| {
            e.as_object_mut().unwrap().remove("correlation_id");
        }),
        ("no file_info", &discovered, |e| {
            e.as_object_mut().unwrap().remove("file_info");
        }),
        ("sha256_hash in uppercase", &discovered, |e| {
            let upper = e["file_info"]["sha256_hash"]
                .as_str()
                .unwrap()
                .to_uppercase();
            e["file_info"]["sha256_hash"] = json!(upper);
        }),
        ("xxh128_hash one digit short", &discovered, |e| {
            e["file_info"]["xxh128_hash"] = json!("06b05ab6733a618578af5f94892f395")
        }),
        ("timestamp with an offset instead of Z", &discovered, |e| {
            e["timestamp"] = json!("2025-08-28T10:00:00.123456+00:00")
        }),
        ("timestamp without microseconds", &discovered, |e| {
            e["timestamp"] = json!("2025-08-28T10:00:00Z")
        }),
        ("timestamp that is no date", &discovered, |e| {
            e["timestamp"] = json!("2025-13-45T10:00:00.123456Z")
        }),
        ("correlation_id not a v4 UUID", &discovered, |e| {
            e["correlation_id"] = json!("6f1c2a3b-4d5e-1f60-8a7b-9c0d1e2f3a4b")
        }),
        ("unknown event_type", &discovered, |e| {
            e["event_type"] = json!("file_changed")
        }),
        ("unknown top-level field", &discovered, |e| {
            e["routing_key"] = json!("file.discovered")
        }),
        ("unknown file_info field", &discovered, |e| {
            e["file_info"]["duplicate_of"] = json!([])
        }),
        ("relative path", &discovered, |e| {
            e["file_info"]["path"] = json!("song.mp3")
        }),
        ("name with a slash", &discovered, |e| {
            e["file_info"]["name"] = json!("music/song.mp3")
        }),
        ("extension without its dot", &discovered, |e| {
            e["file_info"]["extension"] = json!("mp3")
        }),
        ("old_path on a discovery", &discovered, |e| {
            e["file_info"]["old_path"] = json!("/data/music/old.mp3")
        }),
        ("old_path_base64 without old_path", &discovered, |e| {
            e["file_info"]["old_path_base64"] = json!("L2RhdGEvbXVzaWMvY2Fm6S5mbGFj")
        }),
        ("a move without old_path", &moved, |e| {
            e["file_info"].as_object_mut().unwrap().remove("old_path");
        }),
        ("old_path on a modification", &moved, |e| {
            e["event_type"] = json!("file_modified")
        }),
        ("path_base64 that is not base64", &non_utf8, |e| {
            e["file_info"]["path_base64"] = json!("not base64!")
        }),
        (
            "path_base64 beside a path that is valid UTF-8",
            &non_utf8,
            |e| e["file_info"]["path"] = json!("/data/music/cafe.flac"),
        ),
    ];
    let mut accepted = Vec::new();
    for (what, base, change) in cases {
        let mut altered = base.clone();
        change(&mut altered);
        if violations(&v, &altered).is_empty() {
            accepted.push(format!("{what}:\n{altered:#}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "the schema accepted altered envelopes:\n{}",
        accepted.join("\n")
    );
}

/// Runs `file-watcher --sink stdout --once` and returns its envelopes.
fn once(data: &Path, state: &Path) -> Vec<Value> {
    let out = command(data, state, &["--once", "--settle-delay", "1ms"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "--once failed:\n{log}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{log}")))
        .collect()
}

/// The real binary's stdout, every event type included: a first `--once` discovers awkward
/// names (not UTF-8, a newline, no extension, a leading or trailing dot, empty content), a
/// second one reconciles changes made while it was down (modified, deleted, renamed, and a
/// non-UTF-8 name moved, so `old_path_base64` appears), and a live run sees a file created.
#[test]
fn live_output_matches_the_schema() {
    let v = validator();
    let (_keep, data, state) = dirs();
    let latin1 = PathBuf::from(OsString::from_vec(b"caf\xe9.flac".to_vec()));
    fs::create_dir(data.join("sub")).unwrap();
    let files: [(&Path, &[u8]); 11] = [
        (Path::new("song.mp3"), b"la la la"),
        (Path::new("empty.txt"), b""),
        (Path::new("README"), b"no extension"),
        (Path::new(".hidden"), b"a dotfile"),
        (Path::new("trailing."), b"a trailing dot"),
        (Path::new("line\nbreak.txt"), b"a newline in the name"),
        (Path::new("sub/deep.tar.gz"), b"two dots"),
        (&latin1, b"latin-1 name"),
        (Path::new("a.txt"), b"before"),
        (Path::new("gone.txt"), b"about to go"),
        (Path::new("old-name.txt"), b"about to be renamed"),
    ];
    for (name, body) in files {
        fs::write(data.join(name), body).unwrap();
    }
    let mut events = once(&data, state.path());
    assert_eq!(events.len(), 11, "{events:#?}");

    fs::write(data.join("a.txt"), b"after, longer").unwrap();
    fs::remove_file(data.join("gone.txt")).unwrap();
    fs::rename(data.join("old-name.txt"), data.join("new-name.txt")).unwrap();
    fs::rename(data.join(&latin1), data.join("sub").join(&latin1)).unwrap();
    events.extend(once(&data, state.path()));

    let live = Watcher::start(&data, state.path(), &[]);
    live.wait_ready();
    let fresh = data.join("fresh.txt");
    fs::write(&fresh, b"created while watched").unwrap();
    events.extend(live.until(|e| {
        e["event_type"] == "file_created" && e["file_info"]["path"] == fresh.to_str().unwrap()
    }));
    drop(live);

    for e in &events {
        assert_valid(&v, "a line of file-watcher's stdout", e);
    }
    let types: BTreeSet<&str> = events.iter().map(event_type).collect();
    assert_eq!(
        types,
        ALL_TYPES.into_iter().collect(),
        "every event type: {events:#?}"
    );
    let info = |key: &str| events.iter().any(|e| e["file_info"].get(key).is_some());
    assert!(
        info("path_base64") && info("old_path_base64"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e["file_info"]["size_bytes"] == "0"),
        "the empty file: {events:#?}"
    );
}
