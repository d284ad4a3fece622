//! Model-based churn: a seeded generator of filesystem operations runs at full speed against the
//! live binary; the published events, replayed over the state the instance started from, must
//! equal the disk once the tree is quiet (DESIGN.md, promise 6). Then the same across a SIGTERM
//! restart and a `kill -9`, with more operations while the instance is down.
//!
//! `CHURN_SEEDS` (how many seeds, default 3), `CHURN_SEED` (the first, default 1) and
//! `CHURN_OPS` (operations per phase, default 300) make it a soak: `benches/soak.sh` runs it
//! with thousands of operations over many seeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::replay::{self, Tree};
use common::{dirs, Watcher};

/// The settle delay the watcher runs with here (`common::command`).
const SETTLE: Duration = Duration::from_millis(400);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The generator's picture of the tree, so it only picks operations that make sense. The disk,
/// not this picture, is the truth the events are compared with.
struct Churn {
    rng: fastrand::Rng,
    root: PathBuf,
    /// Outside DATA_DIR, on the same filesystem: moves out of and into the tree.
    outside: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    next: u64,
    log: Vec<String>,
}

impl Churn {
    fn new(seed: u64, root: &Path, outside: &Path) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            root: root.to_path_buf(),
            outside: outside.to_path_buf(),
            files: Vec::new(),
            dirs: Vec::new(),
            next: 0,
            log: Vec::new(),
        }
    }

    /// Re-reads the tree from disk (after a phase, the picture must match what is there).
    fn rescan(&mut self) {
        self.files.clear();
        self.dirs.clear();
        let mut todo = vec![self.root.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    self.dirs.push(p.clone());
                    todo.push(p);
                } else {
                    self.files.push(p);
                }
            }
        }
        self.files.sort();
        self.dirs.sort();
    }

    fn outside(&mut self, prefix: &str) -> PathBuf {
        let name = self.name(prefix);
        self.outside.join(name)
    }

    fn name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn any_dir(&mut self) -> PathBuf {
        let n = self.dirs.len();
        match self.rng.usize(0..=n) {
            i if i == n => self.root.clone(),
            i => self.dirs[i].clone(),
        }
    }

    /// A directory below DATA_DIR (not DATA_DIR itself), if there is one.
    fn any_subdir(&mut self) -> Option<PathBuf> {
        if self.dirs.is_empty() {
            return None;
        }
        let i = self.rng.usize(0..self.dirs.len());
        Some(self.dirs[i].clone())
    }

    fn any_file(&mut self) -> Option<PathBuf> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.rng.usize(0..self.files.len());
        Some(self.files[i].clone())
    }

    fn content(&mut self) -> Vec<u8> {
        let len = match self.rng.u8(0..20) {
            0 => self.rng.usize(100_000..400_000),
            1 => 0,
            _ => self.rng.usize(1..4096),
        };
        let mut v = vec![0u8; len];
        self.rng.fill(&mut v);
        v
    }

    fn new_file_path(&mut self) -> PathBuf {
        let dir = self.any_dir();
        let name = self.name("f");
        dir.join(format!("{name}.dat"))
    }

    fn create(&mut self) {
        let p = self.new_file_path();
        let c = self.content();
        std::fs::write(&p, c).unwrap();
        self.log.push(format!("create {}", p.display()));
        self.files.push(p);
    }

    fn forget_file(&mut self, p: &Path) {
        self.files.retain(|f| f != p);
    }

    /// Files and directories under `dir` leave the picture (moved away or removed with it).
    fn forget_under(&mut self, dir: &Path) {
        self.files.retain(|f| !f.starts_with(dir));
        self.dirs.retain(|d| !d.starts_with(dir));
    }

    /// The picture follows a directory renamed from `from` to `to`.
    fn rename_under(&mut self, from: &Path, to: &Path) {
        for f in self.files.iter_mut().chain(self.dirs.iter_mut()) {
            if f == from {
                *f = to.to_path_buf();
            } else if let Ok(rel) = f.strip_prefix(from) {
                *f = to.join(rel);
            }
        }
    }

    /// A directory that is not `dir` and not below it, to move `dir` into.
    fn dir_outside_of(&mut self, dir: &Path) -> PathBuf {
        for _ in 0..8 {
            let d = self.any_dir();
            if !d.starts_with(dir) {
                return d;
            }
        }
        self.root.clone()
    }

    /// One random operation, applied to the disk at once.
    fn step(&mut self) {
        let roll = self.rng.u8(0..100);
        let Some(f) = self.any_file() else {
            self.create();
            return;
        };
        match roll {
            0..=19 => self.create(),
            20..=27 => {
                let mut file = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
                let c = self.content();
                std::io::Write::write_all(&mut file, &c).unwrap();
                self.log.push(format!("append {}", f.display()));
            }
            28..=31 => {
                let len = std::fs::metadata(&f).unwrap().len();
                let keep = if len == 0 { 0 } else { self.rng.u64(0..len) };
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_len(keep)
                    .unwrap();
                self.log.push(format!("truncate {}", f.display()));
            }
            32..=39 => {
                // Rename in place, or move to another directory.
                let to = self.new_file_path();
                std::fs::rename(&f, &to).unwrap();
                self.log
                    .push(format!("mv {} {}", f.display(), to.display()));
                self.forget_file(&f);
                self.files.push(to);
            }
            40..=45 => {
                // Rename over an existing file.
                let Some(target) = self.any_file().filter(|t| *t != f) else {
                    return;
                };
                std::fs::rename(&f, &target).unwrap();
                self.log
                    .push(format!("mv {} over {}", f.display(), target.display()));
                self.forget_file(&f);
            }
            46..=51 => {
                // Atomic replace: write a temporary file beside it, rename it over.
                let tmp = f.with_file_name(format!(".{}.tmp", self.name("t")));
                let c = self.content();
                std::fs::write(&tmp, c).unwrap();
                std::fs::rename(&tmp, &f).unwrap();
                self.log.push(format!("replace {}", f.display()));
            }
            52..=59 => {
                std::fs::remove_file(&f).unwrap();
                self.log.push(format!("rm {}", f.display()));
                self.forget_file(&f);
            }
            60..=63 => {
                // A rename chain within the settle delay.
                let a2 = self.new_file_path();
                let a3 = self.new_file_path();
                std::fs::rename(&f, &a2).unwrap();
                std::fs::rename(&a2, &a3).unwrap();
                self.log.push(format!(
                    "mv {} {} {}",
                    f.display(),
                    a2.display(),
                    a3.display()
                ));
                self.forget_file(&f);
                self.files.push(a3);
            }
            64..=66 => {
                // A rename, then the new name removed.
                let b = self.new_file_path();
                std::fs::rename(&f, &b).unwrap();
                std::fs::remove_file(&b).unwrap();
                self.log
                    .push(format!("mv {} {} then rm", f.display(), b.display()));
                self.forget_file(&f);
            }
            67..=71 => {
                // A new directory, usually with a file in it.
                let parent = self.any_dir();
                let d = parent.join(self.name("d"));
                std::fs::create_dir(&d).unwrap();
                self.dirs.push(d.clone());
                self.log.push(format!("mkdir {}", d.display()));
                if self.rng.bool() {
                    let p = d.join(format!("{}.dat", self.name("f")));
                    let c = self.content();
                    std::fs::write(&p, c).unwrap();
                    self.files.push(p);
                }
            }
            72..=77 => {
                // A directory renamed, moved, or renamed twice.
                let Some(d) = self.any_subdir() else {
                    return;
                };
                let mut from = d.clone();
                for _ in 0..self.rng.usize(1..=2) {
                    let parent = if self.rng.bool() {
                        from.parent().unwrap().to_path_buf()
                    } else {
                        self.dir_outside_of(&from)
                    };
                    let to = parent.join(self.name("d"));
                    std::fs::rename(&from, &to).unwrap();
                    self.log
                        .push(format!("mv dir {} {}", from.display(), to.display()));
                    self.rename_under(&from, &to);
                    from = to;
                }
            }
            78..=80 => {
                // A directory removed with everything in it.
                let Some(d) = self.any_subdir() else {
                    return;
                };
                std::fs::remove_dir_all(&d).unwrap();
                self.log.push(format!("rm -r {}", d.display()));
                self.forget_under(&d);
            }
            81..=83 => {
                // A file replaced by a directory of the same name.
                std::fs::remove_file(&f).unwrap();
                std::fs::create_dir(&f).unwrap();
                let h = f.join(format!("{}.dat", self.name("h")));
                let c = self.content();
                std::fs::write(&h, c).unwrap();
                self.log
                    .push(format!("file {} became a directory", f.display()));
                self.forget_file(&f);
                self.dirs.push(f.clone());
                self.files.push(h);
            }
            84..=85 => {
                // A directory replaced by a file of the same name.
                let Some(d) = self.any_subdir() else {
                    return;
                };
                std::fs::remove_dir_all(&d).unwrap();
                let c = self.content();
                std::fs::write(&d, c).unwrap();
                self.log
                    .push(format!("directory {} became a file", d.display()));
                self.forget_under(&d);
                self.files.push(d);
            }
            86..=89 => {
                // Out of the tree, and something else in.
                let away = self.outside("away");
                std::fs::rename(&f, &away).unwrap();
                self.forget_file(&f);
                let back = self.new_file_path();
                let c = self.content();
                let staged = self.outside("staged");
                std::fs::write(&staged, c).unwrap();
                std::fs::rename(&staged, &back).unwrap();
                self.log.push(format!(
                    "mv {} out; moved in {}",
                    f.display(),
                    back.display()
                ));
                self.files.push(back);
            }
            90..=92 => {
                // A whole directory moved out, or a prepared one moved in.
                if self.rng.bool() && !self.dirs.is_empty() {
                    let d = self.dirs[self.rng.usize(0..self.dirs.len())].clone();
                    let away = self.outside("awaydir");
                    std::fs::rename(&d, &away).unwrap();
                    self.log.push(format!("mv dir {} out", d.display()));
                    self.forget_under(&d);
                } else {
                    let staged = self.outside("stageddir");
                    std::fs::create_dir(&staged).unwrap();
                    for _ in 0..self.rng.usize(1..6) {
                        let c = self.content();
                        std::fs::write(staged.join(format!("{}.dat", self.name("f"))), c).unwrap();
                    }
                    let to = self.any_dir().join(self.name("d"));
                    std::fs::rename(&staged, &to).unwrap();
                    self.log.push(format!("mv dir in {}", to.display()));
                    self.rescan();
                }
            }
            _ => {
                // A rewrite of the same file in place, several times quickly.
                for _ in 0..3 {
                    let c = self.content();
                    std::fs::write(&f, c).unwrap();
                }
                self.log.push(format!("rewrite {}", f.display()));
            }
        }
    }

    fn run(&mut self, ops: u64) {
        for _ in 0..ops {
            self.step();
        }
    }

    fn last_ops(&self) -> String {
        let from = self.log.len().saturating_sub(60);
        self.log[from..].join("\n")
    }
}

/// Takes events until the replayed tree equals the disk (see `Watcher::converge`), and on
/// failure shows the last operations too.
fn converge(w: &Watcher, tree: &mut Tree, data: &Path, churn: &Churn, what: &str) {
    w.converge(tree, data, 5 * SETTLE, || {
        format!("{what}\n\nlast operations:\n{}", churn.last_ops())
    });
}

mod libc_signal {
    pub const TERM: &str = "-TERM";
    pub const KILL: &str = "-KILL";
}

/// Signals the instance, waits for it to exit, and replays everything it published before.
fn kill_and_drain(mut w: Watcher, tree: &mut Tree, signal: &str) -> std::process::ExitStatus {
    let pid = w.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = w.child.wait().unwrap();
    // The reader thread ends at EOF, which ends this iteration.
    for e in w.events.iter() {
        replay::apply(tree, &e);
    }
    status
}

fn churn_seed(seed: u64, ops: u64, extra: &[&str]) {
    let (_keep, data, state) = dirs();
    let outside = tempfile::tempdir_in(data.parent().unwrap()).unwrap();
    let mut churn = Churn::new(seed, &data, outside.path());
    // A starting tree, reported by the first scan.
    churn.run(40);
    let mut tree = Tree::new();

    // 1. Live churn at full speed.
    let w = Watcher::start(&data, state.path(), extra);
    w.wait_ready();
    churn.rescan();
    churn.run(ops);
    converge(&w, &mut tree, &data, &churn, &format!("seed {seed}, live"));

    // 2. A clean stop, changes while down, and live churn again after the restart.
    let status = kill_and_drain(w, &mut tree, libc_signal::TERM);
    assert!(status.success(), "seed {seed}: {status:?}");
    churn.rescan();
    churn.run(ops / 4);
    let w = Watcher::start(&data, state.path(), extra);
    w.wait_ready();
    churn.rescan();
    churn.run(ops / 2);
    converge(
        &w,
        &mut tree,
        &data,
        &churn,
        &format!("seed {seed}, after a restart"),
    );

    // 3. kill -9 in the middle of churn, more changes while down, then a restart.
    churn.rescan();
    churn.run(ops / 4);
    kill_and_drain(w, &mut tree, libc_signal::KILL);
    churn.rescan();
    churn.run(ops / 4);
    let w = Watcher::start(&data, state.path(), extra);
    w.wait_ready();
    converge(
        &w,
        &mut tree,
        &data,
        &churn,
        &format!("seed {seed}, after kill -9"),
    );
    let (status, log) = w.stop();
    assert!(status.success(), "seed {seed}: {log}");
}

#[test]
fn replayed_events_equal_the_disk_under_random_churn() {
    let first = env_u64("CHURN_SEED", 1);
    let seeds = env_u64("CHURN_SEEDS", 3);
    let ops = env_u64("CHURN_OPS", 300);
    for seed in first..first + seeds {
        churn_seed(seed, ops, &[]);
    }
}

/// The same with every file waiting the full settle delay: the fast path (on by default above)
/// must change when events come, never what they say.
#[test]
fn replayed_events_equal_the_disk_under_random_churn_with_the_fast_path_off() {
    let first = env_u64("CHURN_SEED", 1);
    let ops = env_u64("CHURN_OPS", 300);
    churn_seed(first + 100, ops, &["--settle-fast", "off"]);
}
