//! How real tools write files, against a real watcher, with the fast path on and off: exactly one
//! event per change, with the final digests, whatever the writer does between open and close.
//!
//! Each scenario prepares what it needs (its events are not counted), then acts; the events of
//! the act are taken until the replayed events equal the disk and nothing more comes for longer
//! than the settle delay, and counted per path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::replay::{self, Tree};
use common::*;

/// The settle delay of these runs, and how long the watcher must stay quiet after the disk and
/// the replayed events agree.
const SETTLE: Duration = Duration::from_millis(1000);
const QUIET: Duration = Duration::from_millis(1600);

struct World {
    data: PathBuf,
    outside: PathBuf,
}

/// What a scenario expects: per path, the event types of its act, in order.
type Expect = Vec<(PathBuf, Vec<&'static str>)>;

struct Scenario {
    name: &'static str,
    /// With the fast path on: whether the act's file must take it (`Some(true)`), must not
    /// (`Some(false)`), or may either way.
    fast: Option<bool>,
    prepare: fn(&World),
    act: fn(&World) -> Expect,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python(script: &str, args: &[&Path]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    cmd
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn nothing(_: &World) {}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "cp of 64 MiB",
            fast: Some(true),
            prepare: |w| fs::write(w.outside.join("big.src"), bytes(1, 64 << 20)).unwrap(),
            act: |w| {
                let to = w.data.join("big.bin");
                run(Command::new("cp").arg(w.outside.join("big.src")).arg(&to));
                vec![(to, vec!["file_created"])]
            },
        },
        Scenario {
            name: "rsync (a temporary name renamed into place)",
            fast: Some(true),
            prepare: |w| fs::write(w.outside.join("r.src"), bytes(2, 3 << 20)).unwrap(),
            act: |w| {
                let to = w.data.join("r.bin");
                run(Command::new("rsync").arg(w.outside.join("r.src")).arg(&to));
                vec![(to, vec!["file_created"])]
            },
        },
        Scenario {
            name: "rsync --inplace over the same file",
            fast: Some(true),
            prepare: |w| fs::write(w.outside.join("r.src"), bytes(3, 3 << 20)).unwrap(),
            act: |w| {
                let to = w.data.join("r.bin");
                run(Command::new("rsync")
                    .args(["--inplace", "--no-whole-file", "-I"])
                    .arg(w.outside.join("r.src"))
                    .arg(&to));
                vec![(to, vec!["file_modified"])]
            },
        },
        Scenario {
            name: "mv into the tree",
            fast: Some(true),
            prepare: |w| fs::write(w.outside.join("m.src"), bytes(4, 1 << 20)).unwrap(),
            act: |w| {
                let to = w.data.join("moved-in.bin");
                run(Command::new("mv").arg(w.outside.join("m.src")).arg(&to));
                vec![(to, vec!["file_created"])]
            },
        },
        Scenario {
            name: "vim, backupcopy=yes",
            fast: Some(true),
            prepare: |w| fs::write(w.data.join("v.txt"), "one\ntwo\n").unwrap(),
            act: |w| vim(w, "yes"),
        },
        Scenario {
            name: "vim, backupcopy=no (the original renamed away, a new file written)",
            fast: Some(true),
            prepare: nothing,
            act: |w| vim(w, "no"),
        },
        Scenario {
            name: "a .part download renamed over an empty placeholder",
            fast: Some(true),
            prepare: |w| fs::write(w.data.join("d.iso"), b"").unwrap(),
            act: |w| {
                let part = w.data.join("d.iso.part");
                let mut f = fs::File::create(&part).unwrap();
                for i in 0..8 {
                    f.write_all(&bytes(i, 256 << 10)).unwrap();
                }
                drop(f);
                let to = w.data.join("d.iso");
                fs::rename(&part, &to).unwrap();
                vec![(to, vec!["file_modified"])]
            },
        },
        Scenario {
            name: "an append loop every 50 ms for 1 s",
            fast: Some(false),
            prepare: nothing,
            act: |w| {
                let p = w.data.join("append.log");
                for i in 0..20 {
                    let mut f = fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .unwrap();
                    writeln!(f, "line {i}").unwrap();
                    drop(f);
                    std::thread::sleep(Duration::from_millis(50));
                }
                vec![(p, vec!["file_created"])]
            },
        },
        Scenario {
            name: "an mmap writer that closes its descriptor first",
            fast: None,
            prepare: nothing,
            act: |w| {
                let p = w.data.join("mapped.bin");
                run(&mut python(
                    "import mmap, os, sys, time\n\
                     fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n\
                     os.ftruncate(fd, 1 << 20)\n\
                     m = mmap.mmap(fd, 1 << 20)\n\
                     os.close(fd)\n\
                     for i in range(8):\n    m[i << 17:(i + 1) << 17] = bytes([i + 1]) * (1 << 17)\n    time.sleep(0.1)\n\
                     m.flush()\n\
                     m.close()\n",
                    &[&p],
                ));
                vec![(p, vec!["file_created"])]
            },
        },
        Scenario {
            name: "O_TMPFILE, then linkat",
            fast: None,
            prepare: nothing,
            act: |w| {
                let p = w.data.join("tmpfile.bin");
                run(&mut python(
                    "import ctypes, os, sys\n\
                     fd = os.open(os.path.dirname(sys.argv[1]), os.O_TMPFILE | os.O_WRONLY, 0o644)\n\
                     os.write(fd, b'made without a name' * 1000)\n\
                     # linkat(fd, \"\", AT_FDCWD, path, AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH;\n\
                     # without it, the /proc/self/fd link is the documented way.\n\
                     libc = ctypes.CDLL(None, use_errno=True)\n\
                     if libc.linkat(fd, b'', -100, os.fsencode(sys.argv[1]), 0x1000) != 0:\n    os.link('/proc/self/fd/%d' % fd, sys.argv[1])\n\
                     os.close(fd)\n",
                    &[&p],
                ));
                vec![(p, vec!["file_created"])]
            },
        },
        Scenario {
            name: "a hard link",
            fast: Some(false),
            prepare: |w| fs::write(w.data.join("h1.bin"), bytes(5, 100_000)).unwrap(),
            act: |w| {
                let p = w.data.join("h2.bin");
                fs::hard_link(w.data.join("h1.bin"), &p).unwrap();
                vec![(p, vec!["file_created"]), (w.data.join("h1.bin"), vec![])]
            },
        },
        Scenario {
            name: "kill -9 mid-write, then a rewrite",
            fast: Some(false),
            prepare: nothing,
            act: |w| {
                let p = w.data.join("killed.bin");
                let mut child = python(
                    "import sys, time\n\
                     f = open(sys.argv[1], 'wb')\n\
                     while True:\n    f.write(b'x' * 65536); f.flush(); time.sleep(0.02)\n",
                    &[&p],
                )
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
                let start = Instant::now();
                while fs::metadata(&p).map_or(0, |m| m.len()) < 200_000 {
                    assert!(start.elapsed() < WAIT, "the writer wrote nothing");
                    std::thread::sleep(Duration::from_millis(10));
                }
                child.kill().unwrap();
                child.wait().unwrap();
                fs::write(&p, bytes(6, 500_000)).unwrap();
                vec![(p, vec!["file_created"])]
            },
        },
    ]
}

/// vim edits v.txt and writes it with `backupcopy`; a swap file comes and goes beside it.
fn vim(w: &World, backupcopy: &str) -> Expect {
    let p = w.data.join("v.txt");
    run(Command::new("vim")
        .args(["-N", "-u", "NONE", "-i", "NONE", "-Es"])
        .args(["-c", &format!("set backupcopy={backupcopy} writebackup")])
        .args([
            "-c",
            &format!("$put ='edited with backupcopy={backupcopy}'"),
        ])
        .args(["-c", "wq"])
        .arg(&p)
        .env("HOME", &w.outside));
    vec![(p, vec!["file_modified"])]
}

/// Takes events until the replayed tree equals the disk and nothing has come for `QUIET`.
fn settle(w: &Watcher, tree: &mut Tree, data: &Path, what: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut last = Instant::now();
    loop {
        while let Ok(e) = w.events.try_recv() {
            replay::apply(tree, &e);
            seen.push(e);
            last = Instant::now();
        }
        let diff = replay::diff(tree, &replay::disk(data));
        if diff.is_empty() && last.elapsed() >= QUIET {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the replayed events do not equal the disk:\n{}\nevents: {seen:#?}\nstderr:\n{}",
            diff.join("\n"),
            w.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_writers(fast: &str) {
    let (_keep, data, state) = dirs();
    let outside = tempfile::tempdir_in(data.parent().unwrap()).unwrap();
    let world = World {
        data: data.clone(),
        outside: outside.path().to_path_buf(),
    };
    let w = Watcher::start(
        &data,
        state.path(),
        &[
            "--settle-delay",
            &format!("{}ms", SETTLE.as_millis()),
            // Longer than the default: the append loop's pauses must stay inside it on a busy
            // machine, or its first lines are (rightly) published before the loop's second close.
            "--settle-fast-delay",
            "250ms",
            "--settle-fast",
            fast,
        ],
    );
    w.wait_ready();
    w.wait_log(if fast == "off" {
        "fast path off"
    } else {
        "fast path on"
    });
    let mut tree = Tree::new();
    let mut failures = Vec::new();
    for s in scenarios() {
        (s.prepare)(&world);
        settle(&w, &mut tree, &data, &format!("{}: prepare", s.name));
        let expect = (s.act)(&world);
        let log_before = w.stderr.lock().unwrap().len();
        let events = settle(&w, &mut tree, &data, s.name);
        if let (Some(want), "auto") = (s.fast, fast) {
            let path = expect[0].0.to_str().unwrap().to_owned();
            let got = w.stderr.lock().unwrap()[log_before..].iter().any(|l| {
                l.contains("settled on the fast path") && l.contains(&format!("\"{path}\""))
            });
            if got != want {
                failures.push(format!(
                    "{}: on the fast path: {got}, expected {want}",
                    s.name
                ));
            }
        }
        let mut by_path: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for e in &events {
            by_path
                .entry(path_of(e))
                .or_default()
                .push(event_type(e).to_owned());
        }
        for (path, want) in &expect {
            let got = by_path.remove(path).unwrap_or_default();
            if got != *want {
                failures.push(format!(
                    "{} (SETTLE_FAST={fast}): {}: {got:?}, expected {want:?}",
                    s.name,
                    path.display()
                ));
            }
        }
        if !by_path.is_empty() {
            failures.push(format!(
                "{} (SETTLE_FAST={fast}): events for other paths: {by_path:?}",
                s.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nstderr (end):\n{}",
        failures.join("\n"),
        w.stderr_text()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_writer_gives_one_event_with_the_final_digests_with_the_fast_path_on() {
    all_writers("auto");
}

#[test]
fn every_writer_gives_one_event_with_the_final_digests_with_the_fast_path_off() {
    all_writers("off");
}
