//! Is DATA_DIR still the directory the state store describes? A volume that is not mounted, a
//! directory renamed away or replaced, or one the service can no longer list makes everything
//! under it look deleted. That is a fault, not a deletion: no deletion is published while DATA_DIR
//! is unsound, and readiness, `/health` and `file_watcher_data_dir_healthy` say why.
//!
//! The store records DATA_DIR's device and inode on the first run. At start, [`at_start`]
//! compares the directory with that record (and refuses an empty directory when the store knows
//! files); while running, [`assess`] compares it again every few seconds and before any
//! deletion. Only `--accept-new-data-dir` records a new identity. Both decide from plain values;
//! [`observe`] does the I/O and [`watch`] repeats it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Which directory DATA_DIR is: device and inode, as `stat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// What one look at DATA_DIR found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// `stat` failed (usually: not found).
    Missing(String),
    /// Something other than a directory is there.
    NotADirectory,
    /// A directory, with its identity, and whether it could be listed (the error if not).
    Directory {
        /// Its device and inode.
        id: RootId,
        /// `Err` with the reason when `read_dir` failed.
        listable: Result<(), String>,
    },
}

/// The verdict: sound, or what is wrong in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootHealth {
    /// The same directory as at start, and readable.
    Sound,
    /// Not sound; the text names DATA_DIR, what was found and the likely cause.
    Faulty(String),
}

impl RootHealth {
    /// Whether DATA_DIR is sound.
    pub fn is_sound(&self) -> bool {
        matches!(self, Self::Sound)
    }
}

/// Decides whether DATA_DIR at `path` is sound, given the identity it had at start.
pub fn assess(path: &Path, recorded: RootId, seen: &Observation) -> RootHealth {
    let dir = path.display();
    match seen {
        Observation::Missing(e) => RootHealth::Faulty(format!(
            "DATA_DIR {dir} is missing ({e}); is the volume mounted? It was renamed, removed or \
             unmounted while watching"
        )),
        Observation::NotADirectory => RootHealth::Faulty(format!(
            "DATA_DIR {dir} is no longer a directory; it was replaced while watching"
        )),
        Observation::Directory { id, .. } if *id != recorded => RootHealth::Faulty(format!(
            "DATA_DIR {dir} is another directory than at start (device {} inode {}, was device \
             {} inode {}); a volume was mounted or unmounted over it, or it was replaced",
            id.dev, id.ino, recorded.dev, recorded.ino
        )),
        Observation::Directory {
            listable: Err(e), ..
        } => RootHealth::Faulty(format!(
            "DATA_DIR {dir} cannot be listed ({e}); check its permissions for this user and the \
             volume mount"
        )),
        Observation::Directory {
            listable: Ok(()), ..
        } => RootHealth::Sound,
    }
}

/// Looks at `path` (a `stat` and an `opendir`; blocking).
pub fn observe(path: &Path) -> Observation {
    match std::fs::metadata(path) {
        Err(e) => Observation::Missing(e.to_string()),
        Ok(m) if !m.is_dir() => Observation::NotADirectory,
        Ok(m) => Observation::Directory {
            id: RootId {
                dev: m.dev(),
                ino: m.ino(),
            },
            listable: std::fs::read_dir(path).map(drop).map_err(|e| e.to_string()),
        },
    }
}

/// What to do at start-up, given the store's record of DATA_DIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartVerdict {
    /// The directory the store describes: go on.
    Proceed,
    /// Nothing recorded yet (a first run), or the operator accepted a new directory: record this
    /// one, then go on.
    Record(RootId),
    /// Do not scan: the text names DATA_DIR, what was found, the likely cause and the way out.
    Refuse(String),
}

/// Decides whether a scan may start on DATA_DIR. `empty` is whether the directory has no
/// entries; `known_files` how many the store holds.
pub fn at_start(
    path: &Path,
    recorded: Option<RootId>,
    seen: &Observation,
    empty: bool,
    known_files: u64,
    accept_new: bool,
) -> StartVerdict {
    let dir = path.display();
    let id = match seen {
        Observation::Directory {
            id,
            listable: Ok(()),
        } => *id,
        other => {
            let reference = recorded.unwrap_or(RootId { dev: 0, ino: 0 });
            return match assess(path, reference, other) {
                RootHealth::Faulty(why) => StartVerdict::Refuse(why),
                RootHealth::Sound => StartVerdict::Proceed,
            };
        }
    };
    if accept_new {
        return if recorded == Some(id) {
            StartVerdict::Proceed
        } else {
            StartVerdict::Record(id)
        };
    }
    let way_out = "if the library really moved or was emptied, start once with \
                   --accept-new-data-dir (ACCEPT_NEW_DATA_DIR=true)";
    if let Some(recorded) = recorded.filter(|r| *r != id) {
        return StartVerdict::Refuse(format!(
            "DATA_DIR {dir} is another directory than the one the state store describes (device \
             {} inode {}, recorded device {} inode {}): the volume is probably not mounted; \
             {way_out}",
            id.dev, id.ino, recorded.dev, recorded.ino
        ));
    }
    // Also without a recorded identity: a store written before identities were kept.
    if empty && known_files > 0 {
        return StartVerdict::Refuse(format!(
            "DATA_DIR {dir} is empty, but the state store knows {known_files} files: the volume \
             is probably not mounted; {way_out}"
        ));
    }
    if recorded.is_none() {
        return StartVerdict::Record(id);
    }
    StartVerdict::Proceed
}

/// Whether a directory has no entries (an unreadable one counts as not empty: `observe` reports
/// that itself).
pub fn is_empty(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// The latest verdict, shared with the HTTP handlers, the metrics and the pipeline.
#[derive(Debug)]
pub struct RootState {
    path: PathBuf,
    /// The identity DATA_DIR must have; `None` until start-up has settled it.
    reference: Mutex<Option<RootId>>,
    health: Mutex<RootHealth>,
    /// The last look of [`RootState::is_sound_at`], and when it was taken.
    looked: Mutex<Option<(Instant, bool)>>,
}

/// How long [`RootState::is_sound_at`] reuses a look: a directory of many deletions then costs
/// one `stat` of the root, not one per file, and an unmount is still seen within this.
const LOOK_REUSED: Duration = Duration::from_millis(100);

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl RootState {
    /// DATA_DIR, not yet checked: unsound ("being checked") until start-up settles it.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            reference: Mutex::new(None),
            health: Mutex::new(RootHealth::Faulty(format!(
                "DATA_DIR {} is being checked",
                path.display()
            ))),
            looked: Mutex::new(None),
        }
    }

    /// Start-up found DATA_DIR sound with this identity: compare against it from now on.
    pub fn settle(&self, reference: RootId) {
        *locked(&self.reference) = Some(reference);
        *locked(&self.health) = RootHealth::Sound;
    }

    /// Start-up refused DATA_DIR: say why until it is settled.
    pub fn refuse(&self, why: String) {
        *locked(&self.health) = RootHealth::Faulty(why);
    }

    /// The latest verdict.
    pub fn health(&self) -> RootHealth {
        locked(&self.health).clone()
    }

    /// Whether DATA_DIR is sound right now (a `stat` and an `opendir`), without storing the
    /// verdict: the pipeline asks this before a deletion, while [`watch`] alone records and
    /// acts on changes of verdict.
    pub fn is_sound_now(&self) -> bool {
        let Some(reference) = *locked(&self.reference) else {
            return false;
        };
        assess(&self.path, reference, &observe(&self.path)).is_sound()
    }

    /// [`RootState::is_sound_now`] as of `now`, a look reused for 100 ms (`LOOK_REUSED`).
    pub fn is_sound_at(&self, now: Instant) -> bool {
        let mut looked = locked(&self.looked);
        if let Some((at, sound)) = *looked {
            if now.saturating_duration_since(at) < LOOK_REUSED {
                return sound;
            }
        }
        let sound = self.is_sound_now();
        *looked = Some((now, sound));
        sound
    }

    /// Looks again now (a `stat` and an `opendir`), stores the verdict and logs a change of
    /// verdict once. Returns whether DATA_DIR is sound, and whether it just became sound again.
    pub fn check(&self) -> (bool, bool) {
        let Some(reference) = *locked(&self.reference) else {
            return (false, false);
        };
        let now = assess(&self.path, reference, &observe(&self.path));
        let mut guard = locked(&self.health);
        let sound = now.is_sound();
        if *guard == now {
            return (sound, false);
        }
        match &now {
            RootHealth::Faulty(why) => tracing::error!(
                data_dir = %self.path.display(),
                "{why}; publishing no deletions and reporting not ready until it is back"
            ),
            RootHealth::Sound => {
                tracing::info!(data_dir = %self.path.display(), "DATA_DIR is sound again; rescanning");
            }
        }
        *guard = now;
        (sound, sound)
    }
}

/// Checks DATA_DIR every `every` until `cancel` fires, off the async workers; calls `back` when
/// it has become sound again after a fault (to watch it anew and rescan).
pub fn watch(
    state: Arc<RootState>,
    every: Duration,
    cancel: CancellationToken,
    back: impl Fn() + Send + Sync + 'static,
) {
    let back = Arc::new(back);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (s, b) = (Arc::clone(&state), Arc::clone(&back));
            let checked = tokio::task::spawn_blocking(move || {
                if s.check().1 {
                    b();
                }
            });
            if checked.await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT_START: RootId = RootId { dev: 8, ino: 2 };

    #[test]
    fn verdicts() {
        let p = Path::new("/data/music");
        let dir = |id, listable: Result<(), &str>| Observation::Directory {
            id,
            listable: listable.map_err(str::to_owned),
        };
        let cases: Vec<(Observation, Option<&str>)> = vec![
            (dir(AT_START, Ok(())), None),
            (
                Observation::Missing("No such file or directory (os error 2)".into()),
                Some("is the volume mounted"),
            ),
            (Observation::NotADirectory, Some("no longer a directory")),
            (
                dir(RootId { dev: 9, ino: 2 }, Ok(())),
                Some("another directory than at start (device 9 inode 2, was device 8 inode 2)"),
            ),
            (
                dir(RootId { dev: 8, ino: 77 }, Ok(())),
                Some("another directory"),
            ),
            (
                dir(AT_START, Err("Permission denied (os error 13)")),
                Some("cannot be listed (Permission denied (os error 13)); check its permissions"),
            ),
        ];
        for (seen, want) in cases {
            let got = assess(p, AT_START, &seen);
            match (want, &got) {
                (None, RootHealth::Sound) => {}
                (Some(text), RootHealth::Faulty(why)) => {
                    assert!(why.contains(text), "{seen:?}: {why}");
                    assert!(why.contains("DATA_DIR /data/music"), "{why}");
                }
                _ => panic!("{seen:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn start_verdicts() {
        use StartVerdict::{Proceed, Record, Refuse};
        let p = Path::new("/data/music");
        let here = Observation::Directory {
            id: AT_START,
            listable: Ok(()),
        };
        let other = RootId { dev: 40, ino: 2 };
        let elsewhere = Observation::Directory {
            id: other,
            listable: Ok(()),
        };
        let missing = Observation::Missing("No such file or directory".into());
        // (recorded, seen, empty, known files, --accept-new-data-dir) -> verdict, or refusal text
        type Case<'a> = (
            Option<RootId>,
            &'a Observation,
            bool,
            u64,
            bool,
            Result<StartVerdict, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (None, &here, true, 0, false, Ok(Record(AT_START))),
            // A store from before identities were kept, on an empty mount point.
            (
                None,
                &here,
                true,
                10,
                false,
                Err("is empty, but the state store knows 10 files"),
            ),
            (None, &here, true, 10, true, Ok(Record(AT_START))),
            (None, &here, false, 0, false, Ok(Record(AT_START))),
            (Some(AT_START), &here, false, 10, false, Ok(Proceed)),
            (Some(AT_START), &here, true, 0, false, Ok(Proceed)),
            (
                Some(AT_START),
                &here,
                true,
                10,
                false,
                Err("is empty, but the state store knows 10 files"),
            ),
            (Some(AT_START), &here, true, 10, true, Ok(Proceed)),
            (
                Some(AT_START),
                &elsewhere,
                false,
                10,
                false,
                Err("another directory than the one the state store describes"),
            ),
            (
                Some(AT_START),
                &elsewhere,
                true,
                10,
                false,
                Err("--accept-new-data-dir"),
            ),
            (
                Some(AT_START),
                &elsewhere,
                true,
                10,
                true,
                Ok(Record(other)),
            ),
            (
                Some(AT_START),
                &missing,
                false,
                10,
                true,
                Err("is the volume mounted"),
            ),
            (
                None,
                &missing,
                false,
                0,
                false,
                Err("is the volume mounted"),
            ),
        ];
        for (recorded, seen, empty, known, accept, want) in cases {
            let got = at_start(p, recorded, seen, empty, known, accept);
            match (&want, &got) {
                (Ok(w), g) if w == g => {}
                (Err(text), Refuse(why)) => {
                    assert!(why.contains(text), "{seen:?}: {why}");
                    assert!(why.contains("DATA_DIR /data/music"), "{why}");
                }
                _ => panic!(
                    "{recorded:?} {seen:?} {empty} {known} {accept}: got {got:?}, want {want:?}"
                ),
            }
        }
    }

    #[test]
    fn a_directory_renamed_away_and_back_is_unsound_then_sound() {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("music");
        std::fs::create_dir(&data).unwrap();
        let state = RootState::new(&data);
        assert!(
            !state.health().is_sound(),
            "unsound until start-up settles it"
        );
        let Observation::Directory { id, .. } = observe(&data) else {
            panic!("not a directory")
        };
        state.settle(id);
        assert_eq!(state.check(), (true, false));
        std::fs::rename(&data, top.path().join("elsewhere")).unwrap();
        assert_eq!(state.check(), (false, false));
        // An empty directory in its place is not the same directory.
        std::fs::create_dir(&data).unwrap();
        state.check();
        assert!(matches!(state.health(), RootHealth::Faulty(w) if w.contains("another directory")));
        std::fs::remove_dir(&data).unwrap();
        std::fs::rename(top.path().join("elsewhere"), &data).unwrap();
        assert_eq!(state.check(), (true, true), "back: sound, and newly so");
        assert_eq!(state.check(), (true, false));
    }
}
