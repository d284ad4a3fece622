//! Is DATA_DIR still the directory we started on? A volume that was unmounted, a directory
//! renamed away or replaced, or one the service can no longer list makes everything under it look
//! deleted. Readiness, `/health` and `file_watcher_data_dir_healthy` report it, so operators see
//! it before downstream services do.
//!
//! [`assess`] decides from plain values; [`observe`] does the I/O and [`watch`] repeats it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// The latest verdict, shared with the HTTP handlers and the metrics.
#[derive(Debug)]
pub struct RootState {
    path: PathBuf,
    recorded: RootId,
    health: Mutex<RootHealth>,
}

impl RootState {
    /// Records DATA_DIR's identity as it is now.
    ///
    /// # Errors
    /// When DATA_DIR cannot be `stat`ed (start-up validation has normally caught that).
    pub fn record(path: &Path) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            recorded: RootId {
                dev: m.dev(),
                ino: m.ino(),
            },
            health: Mutex::new(RootHealth::Sound),
        })
    }

    /// The latest verdict.
    pub fn health(&self) -> RootHealth {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Looks again, stores the verdict and logs a change of verdict once.
    fn check(&self) {
        let now = assess(&self.path, self.recorded, &observe(&self.path));
        let mut guard = match self.health.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *guard == now {
            return;
        }
        match &now {
            RootHealth::Faulty(why) => tracing::error!(
                data_dir = %self.path.display(),
                "{why}; reporting not ready until it is back"
            ),
            RootHealth::Sound => {
                tracing::info!(data_dir = %self.path.display(), "DATA_DIR is sound again");
            }
        }
        *guard = now;
    }
}

/// Checks DATA_DIR every `every` until `cancel` fires, off the async workers.
pub fn watch(state: Arc<RootState>, every: Duration, cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let s = Arc::clone(&state);
            if tokio::task::spawn_blocking(move || s.check())
                .await
                .is_err()
            {
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
    fn a_directory_renamed_away_and_back_is_unsound_then_sound() {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("music");
        std::fs::create_dir(&data).unwrap();
        let state = RootState::record(&data).unwrap();
        state.check();
        assert!(state.health().is_sound());
        std::fs::rename(&data, top.path().join("elsewhere")).unwrap();
        state.check();
        assert!(!state.health().is_sound());
        // An empty directory in its place is not the same directory.
        std::fs::create_dir(&data).unwrap();
        state.check();
        assert!(matches!(state.health(), RootHealth::Faulty(w) if w.contains("another directory")));
        std::fs::remove_dir(&data).unwrap();
        std::fs::rename(top.path().join("elsewhere"), &data).unwrap();
        state.check();
        assert!(state.health().is_sound());
    }
}
