//! The fast path to "settled": a file whose writer has closed it is reported after a short grace
//! window (SETTLE_FAST_DELAY) instead of the full settle delay, where the kernel can vouch that
//! no local writer had it open at either end of the hash.
//!
//! Three checks stand in for the settle delay's second look (the argument is in
//! `docs/fast-settle.md`):
//! - a **lease probe** ([`probe`]) before the hash and after it: a read lease (`F_SETLEASE`,
//!   `F_RDLCK`) is refused exactly while some process has the file open for writing, mmap
//!   writers included; it is released at once;
//! - the **stamp** (inode, size, mtime, ctime) equal before, during and after the hash;
//! - a **barrier** ([`Barrier`]): a cookie (a new name) made in a private directory watched
//!   by the same inotify instance; once its event arrives, every event queued before it
//!   has been seen, so a write that raced the hash has shown up as a hint for the path.
//!
//! Whatever fails a check falls back to the full settle delay, counted by [`Fallback`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hasher::Stamp;

/// SETTLE_FAST: whether the fast path may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Setting {
    /// On wherever the lease probe works, off elsewhere.
    Auto,
    /// On, with the lease probe if it works and without it otherwise.
    On,
    /// Every file waits the full settle delay.
    Off,
}

/// Why a live file waited the full settle delay instead of the fast path: the label of
/// `file_watcher_settle_fallback_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The lease probe was refused: the file belongs to another user and the process lacks
    /// `CAP_LEASE`.
    ProbeRefused,
    /// First seen by a scan, not by its writer's close.
    Scan,
    /// Unlinked or renamed away after its close: its history is not one writer's.
    Ambiguous,
    /// Empty: a placeholder that a download or copy is about to fill.
    Empty,
    /// More than one name (`nlink > 1`): a writer may hold another name open.
    HardLink,
    /// A writer still had it open at the probe: it is tried again at that writer's close.
    WriterOpen,
    /// Closed for writing twice within the settle delay (an append loop, a resumed download):
    /// demoted until its closes are a settle delay apart.
    RepeatedClose,
    /// Its stamp changed, or an event for it arrived, between the checks.
    ChangedDuringHash,
    /// The barrier's event did not come back in time (events were lost or delayed).
    BarrierTimeout,
}

impl Fallback {
    /// Every reason, for creating the metric series up front.
    pub const ALL: [Fallback; 9] = [
        Self::ProbeRefused,
        Self::Scan,
        Self::Ambiguous,
        Self::Empty,
        Self::HardLink,
        Self::WriterOpen,
        Self::RepeatedClose,
        Self::ChangedDuringHash,
        Self::BarrierTimeout,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProbeRefused => "probe_refused",
            Self::Scan => "scan",
            Self::Ambiguous => "ambiguous",
            Self::Empty => "empty",
            Self::HardLink => "hard_link",
            Self::WriterOpen => "writer_open",
            Self::RepeatedClose => "repeated_close",
            Self::ChangedDuringHash => "changed_during_hash",
            Self::BarrierTimeout => "barrier_timeout",
        }
    }
}

/// What the lease probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No process has the file open for writing; its stamp and link count, from `fstat` on the
    /// probe's descriptor.
    Free {
        /// The stamp at the probe.
        stamp: Stamp,
        /// Hard links.
        nlink: u64,
    },
    /// Some process has it open for writing (`EAGAIN`).
    Busy,
    /// The kernel refuses leases here (`EACCES`: another owner and no `CAP_LEASE`; `EINVAL`:
    /// a filesystem without leases; or leases turned off by `fs.leases-enable`).
    Refused,
    /// Not a regular file any more, or gone.
    Gone,
}

/// Takes a read lease on `path` and releases it at once: whether anyone has the file open for
/// writing right now. The descriptor is read-only, non-blocking and does not follow symlinks,
/// so a FIFO or a symlink swapped in since the last look is never waited on or followed.
///
/// SIGIO must be handled before the first probe (see [`catch_lease_breaks`]): if a writer opens
/// the file in the microseconds the lease is held, the kernel signals the holder, and SIGIO's
/// default action ends the process.
pub fn probe(path: &Path) -> Probe {
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(_) => return Probe::Gone,
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        _ => return Probe::Gone,
    };
    match set_lease(&file, libc::F_RDLCK) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Probe::Busy,
        Err(_) => return Probe::Refused,
    }
    // Released at once; closing the descriptor would release it too, so an error here costs
    // nothing but the log line.
    if let Err(e) = set_lease(&file, libc::F_UNLCK) {
        tracing::debug!(path = %path.display(), error = %e, "cannot release a read lease; it goes with the descriptor");
    }
    Probe::Free {
        stamp: Stamp::from_metadata(&meta),
        nlink: meta.nlink(),
    }
}

/// `fcntl(fd, F_SETLEASE, kind)`. Neither `rustix` nor `nix` wraps leases, so this is the one
/// call the crate makes through `libc` directly.
#[allow(unsafe_code)]
fn set_lease(file: &File, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: F_SETLEASE takes a plain int argument and touches no memory of ours; the
    // descriptor is open for the whole call because `file` is borrowed.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, kind) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Redirects SIGIO, which a lease break raises, to a handler that counts it: without one, a
/// writer that opens a file during a probe would end the process. The handler stays installed
/// for the life of the process; the task only logs what arrives.
///
/// # Errors
/// The signal handler could not be installed (then the fast path must not probe).
pub fn catch_lease_breaks() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut io_signal = signal(SignalKind::io())?;
    tokio::spawn(async move {
        while io_signal.recv().await.is_some() {
            tracing::debug!(
                "a writer opened a file during a lease probe; the lease was released already"
            );
        }
    });
    Ok(())
}

/// The checks a fast-settled file passes before it is hashed, on what the probe saw: a pure
/// function of the facts, so its table test covers every reason.
pub fn gate(probe: Probe, leases: bool, seen_size: u64) -> Result<Option<Stamp>, Fallback> {
    if seen_size == 0 {
        return Err(Fallback::Empty);
    }
    match probe {
        Probe::Free { nlink, .. } if nlink > 1 => Err(Fallback::HardLink),
        Probe::Free { stamp, .. } if stamp.size == 0 => Err(Fallback::Empty),
        Probe::Free { stamp, .. } => Ok(Some(stamp)),
        // SETTLE_FAST=on without working leases: the stamp checks and the barrier remain.
        Probe::Refused if !leases => Ok(None),
        Probe::Refused => Err(Fallback::ProbeRefused),
        Probe::Busy => Err(Fallback::WriterOpen),
        Probe::Gone => Err(Fallback::ChangedDuringHash),
    }
}

/// Whether the probe after a hash vouches for the digests read at `hashed`.
pub fn confirm(probe: Probe, leases: bool, hashed: &Stamp) -> Result<(), Fallback> {
    match probe {
        Probe::Free { stamp, nlink } => {
            if nlink > 1 {
                Err(Fallback::HardLink)
            } else if stamp == *hashed {
                Ok(())
            } else {
                Err(Fallback::ChangedDuringHash)
            }
        }
        Probe::Refused if !leases => Ok(()),
        Probe::Refused => Err(Fallback::ProbeRefused),
        Probe::Busy => Err(Fallback::WriterOpen),
        Probe::Gone => Err(Fallback::ChangedDuringHash),
    }
}

/// The fast path as the engine runs it.
#[derive(Debug, Clone)]
pub struct FastConfig {
    /// The grace window after a close (SETTLE_FAST_DELAY).
    pub delay: Duration,
    /// Whether the lease probe works here; without it (SETTLE_FAST=on) only the stamp checks
    /// and the barrier remain.
    pub leases: bool,
    /// The private directory of barrier cookies, watched by the same inotify instance as
    /// DATA_DIR.
    pub barrier_dir: PathBuf,
}

impl FastConfig {
    /// The lease probe of `path`, or, without working leases (SETTLE_FAST=on), `Refused`
    /// without taking one: SIGIO may not be caught then.
    pub fn probe(&self, path: &Path) -> Probe {
        if self.leases {
            probe(path)
        } else {
            Probe::Refused
        }
    }
}

/// Why the fast path is off, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Off(pub String);

/// Decides at start-up whether the fast path runs: SETTLE_FAST, whether changes come from
/// inotify, and whether leases work on a file of our own in `barrier_dir`. Creates that
/// directory, empty. SIGIO is redirected before the first probe.
///
/// # Errors
/// Why the fast path is off.
pub fn start(
    setting: Setting,
    native: bool,
    delay: Duration,
    settle_delay: Duration,
    barrier_dir: &Path,
) -> Result<FastConfig, Off> {
    if setting == Setting::Off {
        return Err(Off("SETTLE_FAST=off".into()));
    }
    if !native {
        return Err(Off(
            "changes are found by polling, which sees no writer's close".into(),
        ));
    }
    if delay >= settle_delay {
        return Err(Off(format!(
            "SETTLE_FAST_DELAY ({}) is not shorter than SETTLE_DELAY ({})",
            humantime::format_duration(delay),
            humantime::format_duration(settle_delay)
        )));
    }
    let _ = std::fs::remove_dir_all(barrier_dir);
    std::fs::create_dir_all(barrier_dir).map_err(|e| {
        Off(format!(
            "cannot create the barrier directory {}: {e}",
            barrier_dir.display()
        ))
    })?;
    let leases = leases_work(barrier_dir);
    match (&leases, setting) {
        (Ok(()), _) => {}
        (Err(why), Setting::Auto) => return Err(Off(why.clone())),
        (Err(why), _) => {
            tracing::warn!(
                "SETTLE_FAST=on without the lease probe ({why}): a file that a writer still \
                 holds open and leaves alone for SETTLE_FAST_DELAY may be reported before its \
                 last write"
            );
        }
    }
    Ok(FastConfig {
        delay,
        leases: leases.is_ok(),
        barrier_dir: barrier_dir.to_path_buf(),
    })
}

/// Whether a read lease can be taken on a file of our own: the kernel allows leases
/// (`fs.leases-enable`), the filesystem supports them, and SIGIO is caught.
fn leases_work(dir: &Path) -> Result<(), String> {
    catch_lease_breaks().map_err(|e| format!("cannot catch SIGIO for lease breaks: {e}"))?;
    let path = dir.join("lease-probe");
    std::fs::write(&path, b"probe").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let result = match probe(&path) {
        Probe::Free { .. } => Ok(()),
        other => Err(format!(
            "the kernel refuses a read lease on a file of our own ({other:?}); check the \
             sysctl fs.leases-enable"
        )),
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// Whether this process may take leases on files other users own: root's, or any holder of
/// `CAP_LEASE` (bit 28 of the effective set in /proc/self/status).
pub fn can_lease_others() -> bool {
    const CAP_LEASE: u32 = 28;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_LEASE) != 0)
}

/// Barriers through the event queue: hashed files wait here until the cookie written after
/// their hash comes back as an event.
#[derive(Debug)]
pub struct Barrier<T> {
    dir: PathBuf,
    next: u64,
    /// Waiting for the cookie of this number, raised at this instant.
    waiting: Vec<(u64, Instant, T)>,
    /// Files that came back since the last cookie: they get the next one.
    unraised: Vec<T>,
}

impl<T> Barrier<T> {
    /// Barriers through cookies in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            next: 0,
            waiting: Vec::new(),
            unraised: Vec::new(),
        }
    }

    /// Whether `path` is one of our cookies; its number if so.
    pub fn cookie(&self, path: &Path) -> Option<u64> {
        path.strip_prefix(&self.dir).ok()?.to_str()?.parse().ok()
    }

    /// Whether `path` is in the barrier directory at all.
    pub fn owns(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }

    /// `item` waits for the next cookie.
    pub fn wait(&mut self, item: T) {
        self.unraised.push(item);
    }

    /// Writes one cookie for everything that waits without one. Returns what cannot wait
    /// because the cookie could not be written.
    pub fn raise(&mut self, now: Instant) -> Vec<T> {
        if self.unraised.is_empty() {
            return Vec::new();
        }
        self.next += 1;
        let cookie = self.dir.join(self.next.to_string());
        // The new name is the event we wait for; its removal raises a second one for the same
        // number, which finds nothing waiting. Each name is new, so inotify never merges two
        // cookies' events into one.
        match self.make(&cookie) {
            Ok(()) => {
                let _ = std::fs::remove_file(&cookie);
                let n = self.next;
                self.waiting
                    .extend(self.unraised.drain(..).map(|t| (n, now, t)));
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(path = %cookie.display(), error = %e, "cannot write a barrier cookie; these files wait the full settle delay");
                std::mem::take(&mut self.unraised)
            }
        }
    }

    /// Makes a cookie: a hard link to one anchor file, so that it raises one event (a create;
    /// a new file would also raise an open and a close) and allocates no inode. ext4 searches
    /// its inode tables for each new inode, and a `mkdir` per cookie cost more CPU than the
    /// rest of the fast path together.
    fn make(&self, cookie: &Path) -> io::Result<()> {
        let anchor = self.dir.join("anchor");
        match std::fs::hard_link(&anchor, cookie) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                File::create(&anchor)?;
                std::fs::hard_link(&anchor, cookie)
            }
            done => done,
        }
    }

    /// Cookie `n` came back: everything that waited for it, or an earlier one, is released.
    pub fn seen(&mut self, n: u64) -> Vec<T> {
        let (done, rest): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|(m, ..)| *m <= n);
        self.waiting = rest;
        done.into_iter().map(|(.., t)| t).collect()
    }

    /// What has waited longer than `limit` for its cookie.
    pub fn expired(&mut self, now: Instant, limit: Duration) -> Vec<T> {
        if self
            .waiting
            .first()
            .is_none_or(|(_, at, _)| now.duration_since(*at) < limit)
        {
            return Vec::new();
        }
        let (late, rest): (Vec<_>, Vec<_>) = self
            .waiting
            .drain(..)
            .partition(|(_, at, _)| now.duration_since(*at) >= limit);
        self.waiting = rest;
        late.into_iter().map(|(.., t)| t).collect()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.unraised.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> Stamp {
        Stamp {
            size,
            mtime_ns: 1,
            inode: 7,
            dev: 1,
            ctime_ns: 1,
        }
    }

    #[test]
    fn the_gate_before_the_hash() {
        let free = |size, nlink| Probe::Free {
            stamp: stamp(size),
            nlink,
        };
        type Case = (Probe, bool, u64, Result<Option<Stamp>, Fallback>);
        let cases: &[Case] = &[
            (free(10, 1), true, 10, Ok(Some(stamp(10)))),
            (free(10, 2), true, 10, Err(Fallback::HardLink)),
            (free(10, 1), true, 0, Err(Fallback::Empty)),
            (free(0, 1), true, 10, Err(Fallback::Empty)),
            (Probe::Busy, true, 10, Err(Fallback::WriterOpen)),
            (Probe::Busy, false, 10, Err(Fallback::WriterOpen)),
            (Probe::Refused, true, 10, Err(Fallback::ProbeRefused)),
            (Probe::Refused, false, 10, Ok(None)),
            (Probe::Gone, true, 10, Err(Fallback::ChangedDuringHash)),
        ];
        for (i, (probe, leases, size, want)) in cases.iter().enumerate() {
            assert_eq!(gate(*probe, *leases, *size), *want, "case {i}");
        }
    }

    #[test]
    fn the_probe_after_the_hash() {
        let hashed = stamp(10);
        let moved = Stamp {
            mtime_ns: 2,
            ..hashed
        };
        let cases: &[(Probe, bool, Result<(), Fallback>)] = &[
            (
                Probe::Free {
                    stamp: hashed,
                    nlink: 1,
                },
                true,
                Ok(()),
            ),
            (
                Probe::Free {
                    stamp: moved,
                    nlink: 1,
                },
                true,
                Err(Fallback::ChangedDuringHash),
            ),
            (
                Probe::Free {
                    stamp: hashed,
                    nlink: 2,
                },
                true,
                Err(Fallback::HardLink),
            ),
            (Probe::Busy, true, Err(Fallback::WriterOpen)),
            (Probe::Refused, true, Err(Fallback::ProbeRefused)),
            (Probe::Refused, false, Ok(())),
            (Probe::Gone, false, Err(Fallback::ChangedDuringHash)),
        ];
        for (i, (probe, leases, want)) in cases.iter().enumerate() {
            assert_eq!(confirm(*probe, *leases, &hashed), *want, "case {i}");
        }
    }

    #[tokio::test]
    async fn the_lease_probe_sees_a_writer_until_it_closes() {
        catch_lease_breaks().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let Probe::Free { stamp, nlink } = probe(&path) else {
            panic!("a closed file must probe free: {:?}", probe(&path));
        };
        assert_eq!((stamp.size, nlink), (5, 1));

        let writer = File::options().append(true).open(&path).unwrap();
        assert_eq!(probe(&path), Probe::Busy, "a writer holds it open");
        // A reader does not count.
        let reader = File::open(&path).unwrap();
        assert_eq!(probe(&path), Probe::Busy);
        drop(writer);
        assert!(matches!(probe(&path), Probe::Free { .. }));
        drop(reader);

        std::fs::hard_link(&path, dir.path().join("g")).unwrap();
        assert!(matches!(probe(&path), Probe::Free { nlink: 2, .. }));

        assert_eq!(probe(&dir.path().join("missing")), Probe::Gone);
        assert_eq!(probe(dir.path()), Probe::Gone, "a directory is not probed");
        std::os::unix::fs::symlink(&path, dir.path().join("link")).unwrap();
        assert_eq!(
            probe(&dir.path().join("link")),
            Probe::Gone,
            "a symlink is not followed"
        );
    }

    #[tokio::test]
    async fn a_writer_opening_during_a_lease_does_not_kill_the_process() {
        // With SIGIO caught, a lease break is a counted signal, not the end of the process.
        catch_lease_breaks().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        set_lease(&file, libc::F_RDLCK).unwrap();
        let p = path.clone();
        let opener = std::thread::spawn(move || File::options().write(true).open(p).is_ok());
        // The opener blocks until the lease is released (or lease-break-time passes).
        std::thread::sleep(Duration::from_millis(50));
        set_lease(&file, libc::F_UNLCK).unwrap();
        assert!(
            opener.join().unwrap(),
            "the writer opened after the release"
        );
    }

    #[test]
    fn the_barrier_releases_what_waited_for_a_cookie_that_came_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Barrier::new(dir.path().to_path_buf());
        let t0 = Instant::now();
        assert!(b.raise(t0).is_empty(), "nothing waits, no cookie");
        b.wait("a");
        b.wait("b");
        assert!(b.raise(t0).is_empty());
        b.wait("c");
        assert!(b.raise(t0 + Duration::from_millis(10)).is_empty());
        assert_eq!(b.cookie(&dir.path().join("1")), Some(1));
        assert_eq!(b.cookie(&dir.path().join("x")), None);
        assert_eq!(b.cookie(Path::new("/elsewhere/1")), None);
        assert!(
            !dir.path().join("1").exists(),
            "the cookie is removed at once"
        );
        assert_eq!(b.seen(1), vec!["a", "b"]);
        assert_eq!(
            b.seen(1),
            Vec::<&str>::new(),
            "the unlink's event frees nothing"
        );
        assert!(!b.is_empty());
        assert!(b
            .expired(t0 + Duration::from_millis(500), Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            b.expired(t0 + Duration::from_millis(1010), Duration::from_secs(1)),
            vec!["c"]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn a_barrier_that_cannot_be_written_hands_its_waiters_back() {
        let mut b = Barrier::new(PathBuf::from("/nonexistent/barrier"));
        b.wait(1);
        assert_eq!(b.raise(Instant::now()), vec![1]);
        assert!(b.is_empty());
    }
}
