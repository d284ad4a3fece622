//! A state store damaged outside the service (garbage written into it, cut short, its header
//! zeroed) is a clear failure: exit 4 with one line naming the file and the fix, never a panic,
//! never exit 0 with nothing reported. The documented recovery (move the file aside) then
//! reports every file as `file_discovered`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const FILES: usize = 300;

/// `--once` on stdout, with the output split into events and stderr.
fn once(data: &Path, state: &Path) -> (Output, Vec<serde_json::Value>, String) {
    let out = command(data, state, &["--once", "--log-level", "INFO"])
        .output()
        .unwrap();
    let events = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, events, err)
}

fn discovered(events: &[serde_json::Value]) -> BTreeSet<PathBuf> {
    events
        .iter()
        .filter(|e| event_type(e) == "file_discovered")
        .map(path_of)
        .collect()
}

/// The ways a store file gets damaged outside redb, applied to a copy of a sound one.
fn damage(how: &str, file: &Path) {
    let len = std::fs::metadata(file).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    match how {
        "garbage in the middle" => {
            // 64 KiB of noise over the middle of the file, where the tree pages are.
            let noise: Vec<u8> = (0..64 * 1024u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            f.seek(SeekFrom::Start(len / 2 - 32 * 1024)).unwrap();
            f.write_all(&noise).unwrap();
        }
        "truncated" => f.set_len(len / 3).unwrap(),
        "zeroed header" => {
            f.write_all(&[0u8; 4096]).unwrap();
        }
        other => panic!("unknown damage {other}"),
    }
    f.sync_all().unwrap();
}

#[test]
fn a_damaged_store_fails_with_one_line_and_the_recovery_reports_every_file() {
    let (_keep, data, state) = dirs();
    let mut want = BTreeSet::new();
    for i in 0..FILES {
        let p = data.join(format!("album{:02}/track{i:03}.flac", i % 10));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("audio {i} ").repeat(i + 1)).unwrap();
        want.insert(p);
    }
    let (out, events, err) = once(&data, state.path());
    assert!(out.status.success(), "{err}");
    assert_eq!(discovered(&events), want);
    let sound = state.path().join("state.redb");
    let sound_bytes = std::fs::read(&sound).unwrap();

    for how in ["garbage in the middle", "truncated", "zeroed header"] {
        // A fresh STATE_DIR holding the sound store's copy (and the instance's identity).
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(state.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let file = dir.path().join("state.redb");
        assert_eq!(std::fs::read(&file).unwrap(), sound_bytes);
        damage(how, &file);

        let (out, events, err) = once(&data, dir.path());
        assert!(!err.contains("panicked"), "{how}: a panic:\n{err}");
        assert_eq!(
            out.status.code(),
            Some(4),
            "{how}: exit code; stderr:\n{err}"
        );
        assert!(
            events.is_empty(),
            "{how}: reported from a damaged store: {events:?}"
        );
        let last = err.lines().last().unwrap_or_default();
        for part in [
            "file-watcher: state store",
            file.to_str().unwrap(),
            "is damaged",
            "move the file aside",
            "file_discovered",
        ] {
            assert!(last.contains(part), "{how}: {last:?} lacks {part:?}");
        }
        assert_eq!(
            err.lines().filter(|l| l.contains("is damaged")).count(),
            1,
            "{how}: said more than once:\n{err}"
        );

        // The recovery the line gives: move it aside, start again.
        std::fs::rename(&file, dir.path().join("state.redb.damaged")).unwrap();
        let (out, events, err) = once(&data, dir.path());
        assert!(out.status.success(), "{how}: after moving it aside: {err}");
        assert_eq!(discovered(&events), want, "{how}: the recovery");
        assert_eq!(events.len(), FILES, "{how}: only file_discovered");
    }
}
