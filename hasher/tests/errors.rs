//! Every error case is typed, names its path, and returns promptly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use hasher::{hash_file, FileKind, HashError};

/// Runs `hash_file` on another thread and fails the test if it does not return in time, so a
/// blocking open shows up as a failure instead of a hung test run.
fn hash_with_deadline(path: &Path) -> Result<hasher::Hashed, HashError> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(hash_file(&p));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("hash_file blocked for 10 s")
}

#[test]
fn fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let err = hash_with_deadline(&fifo).unwrap_err();
    assert!(
        matches!(
            err,
            HashError::NotRegularFile {
                kind: FileKind::Fifo,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), fifo);
    assert!(err.to_string().contains("FIFO"), "{err}");
}

#[test]
fn socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = hash_with_deadline(&sock).unwrap_err();
    assert!(
        matches!(
            err,
            HashError::NotRegularFile {
                kind: FileKind::Socket,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = hash_file(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            HashError::NotRegularFile {
                kind: FileKind::Directory,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"data").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = hash_file(&link).unwrap_err();
    assert!(
        matches!(
            err,
            HashError::NotRegularFile {
                kind: FileKind::Symlink,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn deleted_before_hashing_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.bin");
    std::fs::write(&path, b"soon gone").unwrap();
    // Scheduled (we hold the path), then deleted, then hashed.
    std::fs::remove_file(&path).unwrap();
    let err = hash_file(&path).unwrap_err();
    assert!(matches!(err, HashError::NotFound { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("gone.bin"));
}

const PERM_ENV: &str = "HASHER_TEST_UNREADABLE_PATH";

#[test]
fn unreadable_file_is_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("secret.bin");
    std::fs::write(&path, b"secret").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let running_as_root = std::fs::metadata(&path).unwrap().uid() == 0;
    if !running_as_root {
        let err = hash_file(&path).unwrap_err();
        assert!(matches!(err, HashError::PermissionDenied { .. }), "{err:?}");
        return;
    }
    // Root reads anything, so re-run the check below as `nobody`, in a child process.
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args(["--exact", "permission_denied_as_non_root", "--ignored"])
        .env(PERM_ENV, &path)
        .output()
        .expect("setpriv (util-linux) is needed to drop root for this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "child ran no test: {stdout}");
}

/// Runs only as the child of `unreadable_file_is_permission_denied`.
#[test]
#[ignore = "run by unreadable_file_is_permission_denied as a non-root user"]
fn permission_denied_as_non_root() {
    let path = std::env::var_os(PERM_ENV).expect("set by the parent test");
    let err = hash_file(Path::new(&path)).unwrap_err();
    assert!(matches!(err, HashError::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("permission denied"));
}
