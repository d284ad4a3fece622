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
    _lock: File,
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
    let state_dir = match state_dir {
        Some(s) => s.to_path_buf(),
        None => {
            // One default directory per watched directory, so two instances on one host
            // never share a store by accident.
            let key: String = data_dir
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            default_state_root().join(key)
        }
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| bad(format!("{}: cannot create it: {e}", state_dir.display())))?;
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| bad(format!("{}: {e}", state_dir.display())))?;
    if state_dir.starts_with(data_dir) {
        return Err(bad(format!(
            "{} is inside DATA_DIR {}; the watcher never writes there, choose a directory outside it",
            state_dir.display(),
            data_dir.display()
        )));
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
                "{} is in use by another file-watcher process (pid {}); give each instance its own STATE_DIR",
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
        _lock: lock,
    })
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
    fn state_dir_inside_data_dir_is_refused() {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().canonicalize().unwrap();
        let inside = data_dir.join(".state");
        let err = establish(&data_dir, Some(&inside), Some("x")).unwrap_err();
        assert!(err.to_string().contains("inside DATA_DIR"), "{err}");
    }
}
