//! Scans through the binary: `--once`, restarts with the same store, reconciliation of what
//! changed while the instance was down, bad input, and a bad DATA_DIR.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

/// Runs `--once` and returns (events, stderr, exit status).
fn once(
    data: &std::path::Path,
    state: &std::path::Path,
    extra: &[&str],
) -> (Vec<serde_json::Value>, String, std::process::ExitStatus) {
    let mut cmd = command(data, state, &["--once"]);
    cmd.args(extra);
    let out = cmd.output().unwrap();
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status,
    )
}

/// Digests of every file under `dir` by the system tools, keyed by path.
fn system_digests(dir: &std::path::Path, tool: &str, args: &[&str]) -> HashMap<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find . -type f -print0 | xargs -0 {tool} {}",
            args.join(" ")
        ))
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (
                dir.join(p.trim_start_matches("./"))
                    .to_string_lossy()
                    .into_owned(),
                h.to_owned(),
            )
        })
        .collect()
}

#[test]
fn once_reports_ten_thousand_files_with_correct_hashes_then_nothing_on_restart() {
    let (_keep, data, state) = dirs();
    for i in 0..10_000 {
        let sub = data.join(format!("d{:02}", i % 50));
        fs::create_dir_all(&sub).unwrap();
        fs::write(
            sub.join(format!("f{i:05}.dat")),
            format!("content of file {i}\n").repeat(i % 7 + 1),
        )
        .unwrap();
    }
    // Old mtimes: a scan does not wait for files that settled long ago.
    let st = Command::new("sh")
        .arg("-c")
        .arg("find . -type f -exec touch -d '1 hour ago' {} +")
        .current_dir(&data)
        .status()
        .unwrap();
    assert!(st.success());

    let (events, log, status) = once(&data, state.path(), &[]);
    assert!(status.success(), "{log}");
    assert_eq!(events.len(), 10_000, "{log}");
    let sha = system_digests(&data, "sha256sum", &[]);
    let xxh = system_digests(&data, "xxhsum", &["-H2"]);
    for e in &events {
        assert_eq!(e["event_type"], "file_discovered");
        let p = e["file_info"]["path"].as_str().unwrap();
        assert_eq!(e["file_info"]["sha256_hash"], sha[p], "{p}");
        assert_eq!(e["file_info"]["xxh128_hash"], xxh[p], "{p}");
    }

    let (events, log, status) = once(&data, state.path(), &[]);
    assert!(status.success(), "{log}");
    assert!(
        events.is_empty(),
        "a restart with nothing changed printed {} events",
        events.len()
    );
    assert!(log.contains("\"unchanged\":10000"), "{log}");
}

#[test]
fn changes_while_down_are_reconciled_at_start() {
    let (_keep, data, state) = dirs();
    fs::create_dir(data.join("in")).unwrap();
    for (name, body) in [
        ("keep", "k"),
        ("modify", "m1"),
        ("delete", "d"),
        ("move", "moving content"),
        ("touch", "t"),
    ] {
        fs::write(data.join(name), body).unwrap();
    }
    let (events, log, _) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert_eq!(events.len(), 5, "{log}");

    // While "down":
    fs::write(data.join("modify"), "m2 is longer").unwrap();
    fs::remove_file(data.join("delete")).unwrap();
    fs::rename(data.join("move"), data.join("in/moved")).unwrap();
    fs::write(data.join("new"), "n").unwrap();
    let st = Command::new("touch")
        .arg("-d")
        .arg("2 minutes ago")
        .arg(data.join("touch"))
        .status()
        .unwrap();
    assert!(st.success());

    let (events, log, status) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert!(status.success(), "{log}");
    let mut got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                event_type(e).to_owned(),
                path_of(e),
                e["file_info"]["old_path"].as_str().map(PathBuf::from),
            )
        })
        .collect();
    got.sort();
    let want = vec![
        ("file_deleted".to_owned(), data.join("delete"), None),
        ("file_discovered".to_owned(), data.join("new"), None),
        ("file_modified".to_owned(), data.join("modify"), None),
        (
            "file_moved".to_owned(),
            data.join("in/moved"),
            Some(data.join("move")),
        ),
    ];
    assert_eq!(got, want, "{log}");
}

#[test]
fn bad_entries_are_logged_and_skipped() {
    let (_keep, data, state) = dirs();
    fs::write(data.join("good.mp3"), b"good").unwrap();
    let fifo = data.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let _sock = std::os::unix::net::UnixListener::bind(data.join("sock")).unwrap();
    std::os::unix::fs::symlink(&data, data.join("loop")).unwrap();
    std::os::unix::fs::symlink("/etc", data.join("outside")).unwrap();
    let raw = data.join(PathBuf::from(OsString::from_vec(b"caf\xe9.flac".to_vec())));
    fs::write(&raw, b"latin-1 name").unwrap();

    let (events, log, status) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert!(status.success(), "{log}");
    let mut names: Vec<_> = events
        .iter()
        .map(|e| e["file_info"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["caf\u{fffd}.flac", "good.mp3"], "{log}");
    let latin = events
        .iter()
        .find(|e| e["file_info"].get("path_base64").is_some())
        .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(latin["file_info"]["path_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, raw.as_os_str().as_encoded_bytes());
    for (what, needle) in [
        ("fifo", "pipe"),
        ("socket", "sock"),
        ("loop", "loop"),
        ("outside link", "outside"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("not a regular file") && l.contains(needle)),
            "no log line for the {what}:\n{log}"
        );
    }
}

#[test]
fn unreadable_file_is_logged_and_the_rest_is_reported() {
    let (_keep, data, state) = dirs();
    fs::write(data.join("ok.txt"), b"fine").unwrap();
    let secret = data.join("secret.txt");
    fs::write(&secret, b"no").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = command(&data, state.path(), &["--once", "--settle-delay", "1ms"]);
    let as_root = std::fs::metadata(&secret)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap();
    if as_root {
        // Root reads anything: run the watcher as `nobody`, as a container's non-root user would.
        for d in [&data, &state.path().to_path_buf()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .args(args);
        wrapped
            .env_remove("RABBITMQ_HOST")
            .env_remove("AMQP_URL")
            .env("HOME", state.path());
        cmd = wrapped;
    }
    let out = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}\n{log}");
    assert!(stdout.contains("ok.txt"));
    assert!(
        log.lines()
            .any(|l| l.contains("permission denied") && l.contains("secret.txt")),
        "{log}"
    );
}

#[test]
fn missing_or_non_directory_data_dir_fails_clearly() {
    let state = tempfile::tempdir().unwrap();
    let out = command(std::path::Path::new("/no/such/dir"), state.path(), &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("DATA_DIR") && err.contains("/no/such/dir"),
        "{err}"
    );

    let file = tempfile::NamedTempFile::new().unwrap();
    let out = command(file.path(), state.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));

    let out = command(state.path(), state.path(), &["--log-level", "LOUD"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--log-level"), "{err}");
}

#[test]
fn a_directory_renamed_while_down_is_reported_as_moves() {
    let (_keep, data, state) = dirs();
    fs::create_dir(data.join("album")).unwrap();
    for i in 0..200 {
        fs::write(
            data.join(format!("album/t{i:03}.flac")),
            format!("track {i}"),
        )
        .unwrap();
    }
    // Two files with the same content: each must pair with exactly one old path.
    fs::write(data.join("album/copy-a.flac"), "same").unwrap();
    fs::write(data.join("album/copy-b.flac"), "same").unwrap();
    let (events, log, _) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert_eq!(events.len(), 202, "{log}");

    fs::rename(data.join("album"), data.join("album (2024)")).unwrap();
    let (events, log, status) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert!(status.success(), "{log}");
    assert_eq!(events.len(), 202, "{log}");
    let mut olds = std::collections::HashSet::new();
    for e in &events {
        assert_eq!(event_type(e), "file_moved", "{e}");
        let old = e["file_info"]["old_path"].as_str().unwrap().to_owned();
        assert!(old.contains("/album/"), "{old}");
        let name = e["file_info"]["name"].as_str().unwrap();
        if name.starts_with('t') {
            assert!(
                old.ends_with(&format!("/album/{name}")),
                "{name} paired with {old}"
            );
        }
        assert!(olds.insert(old), "an old path was paired twice");
    }
}

#[test]
fn a_same_size_rewrite_with_its_mtime_put_back_is_found_on_restart() {
    let (_keep, data, state) = dirs();
    let song = data.join("song.flac");
    fs::write(&song, b"first take").unwrap();
    fs::write(data.join("other.flac"), b"other").unwrap();
    let (events, log, _) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert_eq!(events.len(), 2, "{log}");
    rewrite_keeping_mtime(&song, b"final take");
    // A chmod changes the ctime too, but not the content: re-hashed, nothing published.
    fs::set_permissions(data.join("other.flac"), fs::Permissions::from_mode(0o600)).unwrap();
    let (events, log, _) = once(&data, state.path(), &["--settle-delay", "1ms"]);
    assert_eq!(events.len(), 1, "{events:?}\n{log}");
    assert_eq!(event_type(&events[0]), "file_modified");
    assert_eq!(path_of(&events[0]), song);
    assert_eq!(
        events[0]["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &song)
    );
}

/// A scan leaves out temporary names and does not enter temporary directories, unless
/// `EXCLUDE_DEFAULTS=false`; a directory an EXCLUDE glob covers is not entered either.
#[test]
fn temporary_files_and_excluded_directories_are_left_out_of_a_scan() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("song.flac"), b"music").unwrap();
    std::fs::write(data.join("setup.iso.crdownload"), b"half").unwrap();
    std::fs::write(data.join("notes.txt~"), b"backup").unwrap();
    std::fs::create_dir_all(data.join("x.download")).unwrap();
    std::fs::write(data.join("x.download/x.mkv"), b"safari").unwrap();
    std::fs::create_dir_all(data.join("in/.partial")).unwrap();
    std::fs::write(data.join("in/.partial/a.flac"), b"partial").unwrap();

    let reported = |events: &[serde_json::Value]| {
        let mut v: Vec<_> = events
            .iter()
            .map(|e| path_of(e).strip_prefix(&data).unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let (events, _, status) = once(&data, state.path(), &["--exclude", "**/.partial/**"]);
    assert!(status.success());
    assert_eq!(
        reported(&events),
        vec![std::path::PathBuf::from("song.flac")]
    );

    let (events, _, status) = once(
        &data,
        state.path(),
        &["--exclude", "**/.partial/**", "--exclude-defaults", "false"],
    );
    assert!(status.success());
    let names: Vec<_> = reported(&events);
    assert_eq!(
        names,
        ["notes.txt~", "setup.iso.crdownload", "x.download/x.mkv"]
            .map(std::path::PathBuf::from)
            .to_vec(),
        "with the defaults off they are discovered; .partial stays excluded"
    );
}
