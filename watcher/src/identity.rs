//! Who this instance is, where its state lives, and the lock that keeps it alone there.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// The resolved identity and the held state-directory lock (released when dropped).
#[derive(Debug)]
pub struct Identity {
    /// INSTANCE_ID, from the environment or generated once and kept in STATE_DIR.
    pub instance_id: String,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Something to log once logging is set up (a state directory moved to its new name).
    pub notice: Option<String>,
    _lock: File,
}

/// The words of the error for a STATE_DIR locked by a live process; see [`is_busy`].
const BUSY: &str = "is in use by another file-watcher process";

/// Whether `err` says that another live process holds STATE_DIR's lock: a standby (two
/// replicas sharing one state volume, as `docker compose up --scale` does) waits for it
/// instead of exiting.
pub fn is_busy(err: &ConfigError) -> bool {
    err.setting == "STATE_DIR" && err.problem.contains(BUSY)
}

fn default_state_root() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("file-watcher");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/file-watcher"),
        None => PathBuf::from("/var/lib/file-watcher"),
    }
}

/// Resolves STATE_DIR (creating it), takes its lock, and settles INSTANCE_ID.
///
/// # Errors
/// A [`ConfigError`] naming STATE_DIR or INSTANCE_ID with what to do about it.
pub fn establish(
    data_dir: &Path,
    state_dir: Option<&Path>,
    instance_id: Option<&str>,
) -> Result<Identity, ConfigError> {
    let bad = |problem: String| ConfigError {
        setting: "STATE_DIR",
        problem,
    };
    let mut notice = None;
    let state_dir = match state_dir {
        Some(s) => s.to_path_buf(),
        None => {
            let root = default_state_root();
            let (name, legacy) = (default_name(data_dir), legacy_name(data_dir));
            let (new, old) = (root.join(name), root.join(legacy));
            // Before 0.1.1 the name had no hash, so /d/a-b and /d/a_b shared one store. A store
            // under the old name moves to the new one, once.
            if !new.exists() && old.is_dir() {
                match std::fs::rename(&old, &new) {
                    Ok(()) => {
                        notice = Some(format!(
                            "moved the state directory {} to {} (the default name now carries a \
                             hash of DATA_DIR)",
                            old.display(),
                            new.display()
                        ));
                    }
                    Err(e) => {
                        return Err(bad(format!(
                            "cannot move the state directory {} to {}: {e}; move it by hand or set \
                             STATE_DIR",
                            old.display(),
                            new.display()
                        )))
                    }
                }
            }
            new
        }
    };
    // Refuse a STATE_DIR inside DATA_DIR before creating anything there: the watcher never
    // writes inside DATA_DIR.
    let inside = |dir: &Path| {
        bad(format!(
            "{} is inside DATA_DIR {}; the watcher never writes there, choose a directory outside it",
            dir.display(),
            data_dir.display()
        ))
    };
    if resolved(&state_dir).is_some_and(|p| p.starts_with(data_dir)) {
        return Err(inside(&state_dir));
    }
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| bad(format!("{}: cannot create it: {e}", state_dir.display())))?;
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| bad(format!("{}: {e}", state_dir.display())))?;
    if state_dir.starts_with(data_dir) {
        // Reached through a symbolic link or `..` that `resolved` could not see through.
        return Err(inside(&state_dir));
    }
    let lock_path = state_dir.join("lock");
    let mut lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            bad(format!(
                "{}: cannot open the lock file: {e}",
                lock_path.display()
            ))
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            return Err(bad(format!(
                "{} {BUSY} (pid {}); give each instance its own STATE_DIR",
                state_dir.display(),
                holder.trim()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(bad(format!("{}: cannot lock: {e}", lock_path.display())));
        }
    }
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());

    let id_path = state_dir.join("instance_id");
    let instance_id = match instance_id {
        Some(id) => id.to_owned(),
        None => match std::fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                let id = format!(
                    "watcher-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                std::fs::write(&id_path, &id).map_err(|e| ConfigError {
                    setting: "INSTANCE_ID",
                    problem: format!(
                        "not set, and cannot keep a generated one in {}: {e}",
                        id_path.display()
                    ),
                })?;
                id
            }
        },
    };
    Ok(Identity {
        instance_id,
        state_dir,
        notice,
        _lock: lock,
    })
}

/// The default state directory's name for `data_dir`: readable, plus 8 hex digits of the
/// SHA-256 of the exact path bytes, so that paths that read alike (`/d/a-b`, `/d/a_b`) never
/// share a store.
fn default_name(data_dir: &Path) -> String {
    use sha2::Digest as _;
    use std::os::unix::ffi::OsStrExt as _;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hash}", legacy_name(data_dir))
}

/// The name used before the hash was added.
fn legacy_name(data_dir: &Path) -> String {
    data_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Where `path` will be once created: its deepest existing ancestor, canonical, with the rest
/// appended. `None` when that cannot be known without creating it (a `..` below a missing
/// directory).
fn resolved(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut missing = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return Some(
                missing
                    .iter()
                    .rev()
                    .fold(real, |p: PathBuf, part| p.join(part)),
            );
        }
        missing.push(at.file_name()?.to_owned());
        at = at.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_id_survives_restarts_and_a_second_process_is_refused() {
        let data = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let first = establish(data.path(), Some(state.path()), None).unwrap();
        assert!(first.instance_id.starts_with("watcher-"));
        let err = establish(data.path(), Some(state.path()), None).unwrap_err();
        assert!(is_busy(&err), "{err}");
        assert!(
            err.to_string().contains("in use by another file-watcher"),
            "{err}"
        );
        let id = first.instance_id.clone();
        drop(first);
        let again = establish(data.path(), Some(state.path()), None).unwrap();
        assert_eq!(again.instance_id, id);
    }

    #[test]
    fn state_dir_inside_data_dir_is_refused_before_anything_is_created() {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().canonicalize().unwrap();
        for inside in [data_dir.join(".state"), data_dir.join("a/b/.state")] {
            let err = establish(&data_dir, Some(&inside), Some("x")).unwrap_err();
            assert!(err.to_string().contains("inside DATA_DIR"), "{err}");
        }
        assert_eq!(
            std::fs::read_dir(&data_dir).unwrap().count(),
            0,
            "created in DATA_DIR"
        );
    }

    #[test]
    fn default_names_differ_for_paths_that_read_alike_and_are_stable() {
        let (a, b) = (Path::new("/d/a-b"), Path::new("/d/a_b"));
        assert_eq!(legacy_name(a), legacy_name(b));
        assert_ne!(default_name(a), default_name(b));
        // Stable across builds and platforms: a store must be found again after an upgrade.
        assert_eq!(default_name(a).len(), "_d_a_b-".len() + 8);
        assert_eq!(
            default_name(Path::new("/data/music")),
            "_data_music-d64ac59c"
        );
    }

    #[test]
    fn resolution_sees_through_missing_parts() {
        let top = tempfile::tempdir().unwrap();
        let real = top.path().canonicalize().unwrap();
        assert_eq!(
            resolved(&top.path().join("x/y")).unwrap(),
            real.join("x").join("y")
        );
        assert_eq!(resolved(&real).unwrap(), real);
    }
}
