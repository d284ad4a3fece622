//! Live changes on a real directory with real inotify, end to end through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn create_modify_rename_move_delete() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();

    let a = data.join("a.txt");
    fs::write(&a, b"first").unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_created", "{e}");
    assert_eq!(path_of(&e), a);
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &a)
    );
    assert_eq!(
        e["file_info"]["xxh128_hash"],
        tool_digest("xxhsum", &["-H2"], &a)
    );
    assert_eq!(e["file_info"]["size_bytes"], "5");
    assert_eq!(e["instance_id"], "test-watcher");

    fs::write(&a, b"second version").unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_modified", "{e}");
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &a)
    );

    let b = data.join("b.txt");
    fs::rename(&a, &b).unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_renamed", "{e}");
    assert_eq!(path_of(&e), b);
    assert_eq!(e["file_info"]["old_path"], a.to_str().unwrap());
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &b)
    );

    let sub = data.join("sub");
    fs::create_dir(&sub).unwrap();
    let moved = sub.join("b.txt");
    fs::rename(&b, &moved).unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_moved", "{e}");
    assert_eq!(path_of(&e), moved);
    assert_eq!(e["file_info"]["old_path"], b.to_str().unwrap());

    let sha = tool_digest("sha256sum", &[], &moved);
    fs::remove_file(&moved).unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_deleted", "{e}");
    assert_eq!(path_of(&e), moved);
    assert_eq!(
        e["file_info"]["sha256_hash"], sha,
        "deleted carries the last known digest"
    );
    assert_eq!(e["file_info"]["size_bytes"], "14");

    let quiet = w.barrier(&data, "barrier-1");
    assert!(quiet.is_empty(), "unexpected events: {quiet:?}");
}

#[test]
fn directories_moved_in_moved_out_and_removed() {
    let (_keep, data, state) = dirs();
    let outside = tempfile::tempdir_in(data.parent().unwrap()).unwrap();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();

    // Moved in whole, with files already inside: each is reported.
    let staged = outside.path().join("album");
    fs::create_dir_all(staged.join("cd1")).unwrap();
    fs::write(staged.join("cd1/one.flac"), b"one").unwrap();
    fs::write(staged.join("two.flac"), b"two").unwrap();
    let album = data.join("album");
    fs::rename(&staged, &album).unwrap();
    let mut got: Vec<_> = (0..2).map(|_| w.next()).collect();
    got.sort_by_key(path_of);
    assert_eq!(event_type(&got[0]), "file_created", "{:?}", got);
    assert_eq!(path_of(&got[0]), album.join("cd1/one.flac"));
    assert_eq!(path_of(&got[1]), album.join("two.flac"));

    // A new file inside the new directory is seen too: it is watched.
    fs::write(album.join("cd1/three.flac"), b"three").unwrap();
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", album.join("cd1/three.flac"))
    );

    // Moved out whole: every file in it is deleted.
    fs::rename(&album, outside.path().join("gone")).unwrap();
    let mut got: Vec<_> = (0..3).map(|_| w.next()).collect();
    got.sort_by_key(path_of);
    assert!(
        got.iter().all(|e| event_type(e) == "file_deleted"),
        "{got:?}"
    );
    assert_eq!(path_of(&got[0]), album.join("cd1/one.flac"));

    // Created, then removed with its files.
    let tmp = data.join("tmp");
    fs::create_dir(&tmp).unwrap();
    fs::write(tmp.join("x.bin"), b"x").unwrap();
    fs::write(tmp.join("y.bin"), b"y").unwrap();
    let got: Vec<_> = (0..2).map(|_| w.next()).collect();
    assert!(
        got.iter().all(|e| event_type(e) == "file_created"),
        "{got:?}"
    );
    fs::remove_dir_all(&tmp).unwrap();
    let mut got: Vec<_> = (0..2).map(|_| w.next()).collect();
    got.sort_by_key(path_of);
    assert_eq!(
        got.iter()
            .map(|e| (event_type(e), path_of(e)))
            .collect::<Vec<_>>(),
        vec![
            ("file_deleted", tmp.join("x.bin")),
            ("file_deleted", tmp.join("y.bin"))
        ]
    );

    // A directory renamed inside DATA_DIR: its files move, without rehashing.
    let d1 = data.join("d1");
    fs::create_dir(&d1).unwrap();
    fs::write(d1.join("f.ogg"), b"f").unwrap();
    assert_eq!(event_type(&w.next()), "file_created");
    fs::rename(&d1, data.join("d2")).unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_moved", "{e}");
    assert_eq!(path_of(&e), data.join("d2/f.ogg"));
    assert_eq!(
        e["file_info"]["old_path"],
        d1.join("f.ogg").to_str().unwrap()
    );

    let quiet = w.barrier(&data, "barrier");
    assert!(quiet.is_empty(), "unexpected events: {quiet:?}");
}

#[test]
fn touch_without_change_is_silent() {
    let (_keep, data, state) = dirs();
    let f = data.join("song.mp3");
    fs::write(&f, b"la la la").unwrap();
    let w = Watcher::start(&data, state.path(), &[]);
    assert_eq!(event_type(&w.next()), "file_discovered");
    w.wait_ready();
    let before = fs::metadata(&f).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let st = std::process::Command::new("touch")
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    assert_ne!(fs::metadata(&f).unwrap().modified().unwrap(), before);
    // The touch settles (400 ms) and is rehashed; the barrier comes after it.
    std::thread::sleep(Duration::from_millis(600));
    let quiet = w.barrier(&data, "barrier");
    assert!(quiet.is_empty(), "a touch produced events: {quiet:?}");
    w.wait_log("touched: content unchanged");
}

#[test]
fn slow_200_mib_write_yields_exactly_one_event() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(&data, state.path(), &["--settle-delay", "1s"]);
    w.wait_ready();
    let big = data.join("big.flac");
    let mut f = fs::File::create(&big).unwrap();
    let chunk: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 253) as u8).collect();
    for _ in 0..20 {
        f.write_all(&chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(f);
    let e = w.next();
    assert_eq!(event_type(&e), "file_created", "{e}");
    assert_eq!(path_of(&e), big);
    assert_eq!(e["file_info"]["size_bytes"], (200u64 << 20).to_string());
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &big)
    );
    assert_eq!(
        e["file_info"]["xxh128_hash"],
        tool_digest("xxhsum", &["-H2"], &big)
    );
    let quiet = w.barrier(&data, "barrier");
    assert!(
        quiet.is_empty(),
        "more than one event for the slow write: {quiet:?}"
    );
}

#[test]
fn a_file_still_being_written_at_start_up_is_reported_once_when_settled() {
    // The start-up scan queues files it has never seen without a stat and lets the hash's own
    // stamp say whether they had settled. This one is being appended to while the scan runs:
    // it must not be reported with half its content, only once, when the writer has stopped.
    let (_keep, data, state) = dirs();
    fs::write(data.join("old.mp3"), b"settled long ago").unwrap();
    let st = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(data.join("old.mp3"))
        .status()
        .unwrap();
    assert!(st.success());
    let growing = data.join("growing.flac");
    let mut f = fs::File::create(&growing).unwrap();
    f.write_all(&[1u8; 64 << 10]).unwrap();
    let w = Watcher::start(&data, state.path(), &["--settle-delay", "1s"]);
    for i in 0..8u8 {
        std::thread::sleep(Duration::from_millis(200));
        f.write_all(&[i; 64 << 10]).unwrap();
    }
    drop(f);
    let seen = w.until(|e| path_of(e) == growing);
    let e = seen.last().unwrap();
    assert_eq!(event_type(e), "file_discovered", "{e}");
    assert_eq!(
        e["file_info"]["size_bytes"],
        (9u64 * (64 << 10)).to_string()
    );
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &growing)
    );
    assert!(
        seen.iter().any(|e| path_of(e) == data.join("old.mp3")),
        "{seen:?}"
    );
    let quiet = w.barrier(&data, "barrier");
    assert!(
        quiet.is_empty(),
        "more events for the growing file: {quiet:?}"
    );
    w.wait_log("scan finished");
}

#[test]
fn sigterm_exits_zero() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();
    let (status, log) = w.stop();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("shutdown requested"), "{log}");
}

#[test]
fn poll_mode_reports_changes_without_inotify() {
    let (_keep, data, state) = dirs();
    fs::write(data.join("old.mp3"), b"old").unwrap();
    let w = Watcher::start(
        &data,
        state.path(),
        &[
            "--watch-mode",
            "poll",
            "--poll-interval",
            "300ms",
            "--settle-delay",
            "100ms",
        ],
    );
    assert_eq!(event_type(&w.next()), "file_discovered");
    w.wait_ready();
    w.wait_log("polling for changes");

    let new = data.join("new.mp3");
    fs::write(&new, b"new").unwrap();
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", new.clone()),
        "{e}"
    );

    let moved = data.join("moved.mp3");
    fs::rename(data.join("old.mp3"), &moved).unwrap();
    let e = w.next();
    assert_eq!(event_type(&e), "file_renamed", "{e}");
    assert_eq!(path_of(&e), moved);

    fs::remove_file(&new).unwrap();
    let e = w.next();
    assert_eq!((event_type(&e), path_of(&e)), ("file_deleted", new), "{e}");
}

#[test]
fn a_full_hint_queue_triggers_a_rescan_and_loses_nothing() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(
        &data,
        state.path(),
        &["--hint-queue", "1", "--settle-delay", "200ms"],
    );
    w.wait_ready();
    for i in 0..300 {
        fs::write(data.join(format!("burst{i:03}.bin")), format!("{i}")).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 300 {
        let e = w.next();
        assert!(
            ["file_created", "file_discovered"].contains(&event_type(&e)),
            "{e}"
        );
        assert!(seen.insert(path_of(&e)), "reported twice: {e}");
    }
    w.wait_log("\"reconcile\"");
    let quiet = w.barrier(&data, "barrier");
    assert!(quiet.is_empty(), "unexpected events: {quiet:?}");
}

#[test]
fn an_unreadable_directory_is_skipped_and_the_rest_is_watched() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("before.flac"), b"before").unwrap();
    // As at the top of every ext4 volume: root's, mode 0700.
    let lost = data.join("lost+found");
    std::fs::create_dir(&lost).unwrap();
    std::fs::write(lost.join("#1234"), b"fragment").unwrap();
    std::fs::set_permissions(&lost, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(data.join("album")).unwrap();
    let as_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&lost).unwrap()) == 0;
    assert!(
        as_root,
        "this test makes a root-owned directory and runs the watcher as nobody: run it as root \
         (scripts/test in CI does)"
    );
    for d in [&data, &state.path().to_path_buf(), &data.join("album")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let cmd = command(&data, state.path(), &[]);
    let mut wrapped = std::process::Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_remove("RABBITMQ_HOST")
        .env_remove("AMQP_URL")
        .env("HOME", state.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let w = Watcher::spawn(wrapped);
    assert_eq!(path_of(&w.next()), data.join("before.flac"));
    let warning = w.wait_log("cannot watch directory");
    assert!(warning.contains("lost+found"), "{warning}");
    assert!(warning.contains("permission denied"), "{warning}");
    w.wait_ready();
    // Live changes at the top, in an existing directory, in a new one, and in a renamed one.
    let created = w.barrier(&data, "top.flac");
    assert!(created.is_empty(), "{created:?}");
    let created = w.barrier(&data.join("album"), "track.flac");
    assert!(created.is_empty(), "{created:?}");
    std::fs::create_dir(data.join("new")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let created = w.barrier(&data.join("new"), "fresh.flac");
    assert!(created.is_empty(), "{created:?}");
    std::fs::rename(data.join("new"), data.join("renamed")).unwrap();
    let moved = w.next();
    assert_eq!(event_type(&moved), "file_moved", "{moved}");
    assert_eq!(path_of(&moved), data.join("renamed/fresh.flac"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let created = w.barrier(&data.join("renamed"), "later.flac");
    assert!(created.is_empty(), "{created:?}");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("#1234"), "read inside lost+found: {log}");
}

#[test]
fn a_same_size_rewrite_with_its_mtime_put_back_is_reported_live() {
    let (_keep, data, state) = dirs();
    let song = data.join("song.flac");
    std::fs::write(&song, b"first take").unwrap();
    let w = Watcher::start(&data, state.path(), &[]);
    assert_eq!(event_type(&w.next()), "file_discovered");
    w.wait_ready();
    rewrite_keeping_mtime(&song, b"final take");
    let e = w.next();
    assert_eq!(event_type(&e), "file_modified", "{e}");
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &song)
    );
    // A touch that changes nothing but times publishes nothing.
    let status = std::process::Command::new("touch")
        .arg(&song)
        .status()
        .unwrap();
    assert!(status.success());
    let rest = w.barrier(&data, "after.flac");
    assert!(rest.is_empty(), "{rest:?}");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn starting_on_an_idle_tree_of_twenty_thousand_directories_loses_no_events() {
    let (_keep, data, state) = dirs();
    // 20,000 directories under one, so that no top-level split alone would keep a recursive
    // watch small.
    let lib = data.join("lib");
    for a in 0..200 {
        for b in 0..100 {
            std::fs::create_dir_all(lib.join(format!("a{a:03}/b{b:02}"))).unwrap();
        }
    }
    std::fs::write(lib.join("a007/b07/old.flac"), b"old").unwrap();
    let w = Watcher::start(&data, state.path(), &[]);
    assert_eq!(path_of(&w.next()), lib.join("a007/b07/old.flac"));
    w.wait_ready();
    // Deep inside, and in a new directory beside the split ones.
    let rest = w.barrier(&lib.join("a123/b45"), "new.flac");
    assert!(rest.is_empty(), "{rest:?}");
    std::fs::create_dir(lib.join("new album")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let rest = w.barrier(&lib.join("new album"), "track.flac");
    assert!(rest.is_empty(), "{rest:?}");
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("kernel_overflow"), "{log}");
    assert!(!log.contains("rescan scheduled"), "{log}");
}

#[test]
fn a_file_renamed_while_it_is_hashed_leaves_no_ghost() {
    let (_keep, data, state) = dirs();
    std::fs::write(data.join("small.flac"), b"small").unwrap();
    let a = data.join("A.bin");
    // Sparse: no disk used, and long enough to hash in a debug build that the rename lands
    // mid-read (whether it does or not, the replayed events must equal the disk).
    std::fs::File::create(&a)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let status = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&a)
        .status()
        .unwrap();
    assert!(status.success());
    let w = Watcher::start(&data, state.path(), &[]);
    // small.flac is young, so it settles before it is reported; A.bin, an hour old, may be
    // reported first if its hash is quick.
    let mut events = w.until(|e| path_of(e) == data.join("small.flac"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = data.join("B.bin");
    std::fs::rename(&a, &b).unwrap();
    events.extend(w.until(|e| path_of(e) == b && event_type(e) != "file_deleted"));
    events.extend(w.barrier(&data, "after.flac"));
    let mut tree = common::replay::Tree::new();
    for e in &events {
        common::replay::apply(&mut tree, e);
    }
    tree.remove(&data.join("after.flac"));
    let mut disk = common::replay::disk(&data);
    disk.remove(&data.join("after.flac"));
    assert_eq!(tree, disk, "{events:#?}");
    assert!(tree.contains_key(&b));
    let (status, log) = w.stop();
    assert!(status.success(), "{log}");
}

/// A browser-style download: written under a temporary name next to an empty placeholder, then
/// renamed into place. One `file_created` for the finished file, nothing for the `.part`.
#[test]
fn a_download_renamed_into_place_is_reported_once_and_its_temporary_name_never() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(&data, state.path(), &[]);
    w.wait_ready();

    let part = data.join("film.mkv.part");
    let film = data.join("film.mkv");
    fs::write(&film, b"").unwrap();
    let mut f = fs::File::create(&part).unwrap();
    for _ in 0..4 {
        f.write_all(&[7u8; 64 * 1024]).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(f);
    fs::rename(&part, &film).unwrap();
    // Vim's write test and swap file, and an rsync temporary, beside it: none reported.
    fs::write(data.join("4913"), b"x").unwrap();
    fs::write(data.join(".film.mkv.swp"), b"swap").unwrap();
    fs::write(data.join(".song.flac.Q8xk2P"), b"rsync").unwrap();

    let events = w.until(|e| e["file_info"]["size_bytes"] == "262144");
    assert!(
        events.iter().all(|e| path_of(e) == film),
        "only the finished file (and its placeholder) is reported: {events:?}"
    );
    let last = events.last().expect("the finished file is reported");
    assert_eq!(
        last["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &film)
    );
    let rest = w.barrier(&data, "barrier-1");
    assert!(rest.is_empty(), "no temporary name is reported: {rest:?}");
}

/// The fast path: a file is reported SETTLE_FAST_DELAY after its writer's last close. What the
/// kernel cannot vouch for (a writer still open, a second name, an empty file) takes the long
/// way, and each file is still reported once, with its final digests.
#[test]
fn a_closed_file_takes_the_fast_path_and_what_the_kernel_cannot_vouch_for_waits() {
    let (_keep, data, state) = dirs();
    // Found by the first scan: its first close below is not a repeat of an earlier one.
    let c = data.join("c.bin");
    fs::write(&c, b"linked").unwrap();
    let w = Watcher::start(
        &data,
        state.path(),
        &["--settle-delay", "3s", "--settle-fast-delay", "100ms"],
    );
    w.wait_ready();
    w.wait_log("fast path on");
    assert_eq!(path_of(&w.next()), c);
    let fast_for = |p: &std::path::Path| {
        w.stderr_text()
            .lines()
            .any(|l| l.contains("settled on the fast path") && l.contains(p.to_str().unwrap()))
    };

    // One writer, one close: fast.
    let a = data.join("a.bin");
    fs::write(&a, vec![7u8; 1 << 20]).unwrap();
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", a.clone()),
        "{e}"
    );
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &a)
    );
    assert!(fast_for(&a), "{}", w.stderr_text());

    // A second writer closes while the first still holds the file open: the probe sees the
    // first, nothing is reported, and the first writer's close reports the final content.
    let b = data.join("b.bin");
    let mut first = fs::File::create(&b).unwrap();
    first.write_all(b"part one;").unwrap();
    drop(fs::OpenOptions::new().append(true).open(&b).unwrap());
    w.wait_log("\"reason\":\"writer_open\"");
    first.write_all(b" part two").unwrap();
    drop(first);
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", b.clone()),
        "{e}"
    );
    assert_eq!(e["file_info"]["size_bytes"], "18");
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &b)
    );
    assert!(
        fast_for(&b),
        "the writer's own close is fast:\n{}",
        w.stderr_text()
    );

    // A file with a second name: written through one, it waits the full delay.
    fs::hard_link(&c, state.path().join("c-link")).unwrap();
    fs::write(&c, b"linked, then rewritten").unwrap();
    w.wait_log("\"reason\":\"hard_link\"");
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_modified", c.clone()),
        "{e}"
    );
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &c)
    );

    // An empty placeholder waits the full delay too.
    let d = data.join("d.bin");
    fs::write(&d, b"").unwrap();
    w.wait_log("\"reason\":\"empty\"");
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", d.clone()),
        "{e}"
    );
    assert!(!fast_for(&d));

    let quiet = w.barrier(&data, "barrier-fast");
    assert!(quiet.is_empty(), "one event per file: {quiet:?}");
}

#[test]
fn with_the_fast_path_off_a_closed_file_waits_the_settle_delay() {
    let (_keep, data, state) = dirs();
    let w = Watcher::start(&data, state.path(), &["--settle-fast", "off"]);
    w.wait_ready();
    w.wait_log("fast path off");
    let a = data.join("a.bin");
    fs::write(&a, b"slow").unwrap();
    let e = w.next();
    assert_eq!((event_type(&e), path_of(&e)), ("file_created", a), "{e}");
    assert!(!w.stderr_text().contains("settled on the fast path"));
}

/// An append loop (a log, a resumed download) closes its file again and again: after its second
/// close within the settle delay it is demoted from the fast path, and reported once, finished.
#[test]
fn an_append_loop_leaves_the_fast_path_and_is_reported_once() {
    let (_keep, data, state) = dirs();
    // A grace window far longer than the loop's pauses, so that no pause of a busy machine
    // lets a half-written version through before the demotion.
    let w = Watcher::start(
        &data,
        state.path(),
        &["--settle-delay", "2s", "--settle-fast-delay", "1s"],
    );
    w.wait_ready();
    let f = data.join("f.log");
    for i in 0..20 {
        let mut h = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .unwrap();
        writeln!(h, "line {i}").unwrap();
        drop(h);
        // The loop's own pace, not a wait for the watcher.
        std::thread::sleep(Duration::from_millis(50));
    }
    w.wait_log("\"reason\":\"repeated_close\"");
    let e = w.next();
    assert_eq!(
        (event_type(&e), path_of(&e)),
        ("file_created", f.clone()),
        "{e}"
    );
    assert_eq!(
        e["file_info"]["sha256_hash"],
        tool_digest("sha256sum", &[], &f)
    );
    let quiet = w.barrier(&data, "barrier-append");
    assert!(quiet.is_empty(), "one event: {quiet:?}");
}
