//! Whether the files the store knows are still there, one directory listing at a time.
//!
//! The sweep of a restart asks this of every store entry. An `lstat` per entry was half the
//! syscalls of a restart over unchanged files: the walk that follows stats every file again.
//! Asked in the store's key order (path bytes), the entries of one directory come together:
//! every path under `D/` lies in one contiguous range of keys. So one listing per directory
//! (`getdents`, which also gives each name's type) answers for all its files, and a directory
//! is listed at most once per sweep. Memory: the names of the regular files of the directories
//! from DATA_DIR down to the one being asked about, and a directory with more than
//! [`MAX_NAMES`] files is asked file by file instead, so a flat directory of millions of files
//! costs what it did before, not their names in memory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::paths;

/// The most names kept for one directory (about 10 MB of them).
pub const MAX_NAMES: usize = 100_000;

/// Answers "is this path a regular file now?" for paths asked in key order.
#[derive(Debug, Default)]
pub struct Presence {
    /// The listings of the last directory asked about and of those of its ancestors that were
    /// asked about, outermost first.
    stack: Vec<Listing>,
    /// Directories listed so far (for the sweep's log line and the tests).
    listed: u64,
}

#[derive(Debug)]
struct Listing {
    dir: PathBuf,
    files: Files,
}

#[derive(Debug)]
enum Files {
    /// The names of the regular files in the directory.
    Listed(HashSet<OsString>),
    /// The directory is gone (or is no directory): nothing in it exists.
    Missing,
    /// The directory cannot be listed (no read permission, an I/O error) or holds more than
    /// [`MAX_NAMES`] files: each path is asked with `lstat`, as a search permission may still
    /// allow.
    Unlisted,
}

impl Presence {
    /// Whether `path` is a regular file (a symbolic link to one is not).
    ///
    /// Correct for any order of paths; one listing per directory when they come in key order.
    pub fn is_file(&mut self, path: &Path) -> bool {
        let Some((dir, name)) = paths::split_name(path) else {
            return lstat_is_file(path);
        };
        while self
            .stack
            .last()
            .is_some_and(|top| paths::below(&top.dir, dir).is_none())
        {
            self.stack.pop();
        }
        if self
            .stack
            .last()
            .is_none_or(|top| top.dir.as_os_str() != dir.as_os_str())
        {
            self.listed += 1;
            self.stack.push(Listing {
                dir: dir.to_path_buf(),
                files: list(dir),
            });
        }
        match self.stack.last().map(|top| &top.files) {
            Some(Files::Listed(names)) => names.contains(name),
            Some(Files::Missing) => false,
            Some(Files::Unlisted) | None => lstat_is_file(path),
        }
    }

    /// Directories listed so far.
    pub fn listed(&self) -> u64 {
        self.listed
    }
}

fn lstat_is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// The regular files of `dir`. The type comes from the directory entry (`d_type`); std asks
/// `lstat` itself where the filesystem does not fill it in.
fn list(dir: &Path) -> Files {
    list_at_most(dir, MAX_NAMES)
}

fn list_at_most(dir: &Path, max: usize) -> Files {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Files::Missing;
        }
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot list directory for the sweep; asking each file");
            return Files::Unlisted;
        }
    };
    let mut names = HashSet::new();
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_ok_and(|t| t.is_file()) => {
                if names.len() == max {
                    return Files::Unlisted;
                }
                names.insert(entry.file_name());
            }
            Ok(_) => {}
            // A listing cut short: the rest cannot be told from missing.
            Err(_) => return Files::Unlisted,
        }
    }
    Files::Listed(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Asks `presence` about each path in byte order, as the store yields them.
    fn ask(presence: &mut Presence, root: &Path, rels: &[&str]) -> Vec<(String, bool)> {
        let mut paths: Vec<PathBuf> = rels.iter().map(|r| root.join(r)).collect();
        paths.sort_by(|a, b| {
            a.as_os_str()
                .as_encoded_bytes()
                .cmp(b.as_os_str().as_encoded_bytes())
        });
        paths
            .iter()
            .map(|p| {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                (rel, presence.is_file(p))
            })
            .collect()
    }

    #[test]
    fn answers_match_lstat_with_one_listing_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "a/b", "a/b.d", "c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/x", "a/b.txt", "a/b/y", "a/b.d/z", "a/z", "c/w"] {
            std::fs::write(root.join(f), b"1").unwrap();
        }
        std::os::unix::fs::symlink(root.join("a/x"), root.join("a/link")).unwrap();
        let fifo = root.join("a/fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // (path, is a regular file now): files, gone files, a link, a FIFO, a directory, files
        // in a directory that is gone, and a path under a file.
        let cases = [
            ("a/x", true),
            ("a/b.txt", true),
            ("a/b/y", true),
            ("a/b/gone", false),
            ("a/b.d/z", true),
            ("a/z", true),
            ("a/gone", false),
            ("a/link", false),
            ("a/fifo", false),
            ("a/b", false),
            ("c/w", true),
            ("gone/1", false),
            ("gone/2", false),
            ("a/x/under", false),
        ];
        let rels: Vec<&str> = cases.iter().map(|(r, _)| *r).collect();
        let mut presence = Presence::default();
        let got = ask(&mut presence, root, &rels);
        for (rel, is) in &got {
            let want = cases.iter().find(|(r, _)| r == rel).unwrap().1;
            assert_eq!(*is, want, "{rel}");
            assert_eq!(*is, lstat_is_file(&root.join(rel)), "{rel} against lstat");
        }
        // a, a/b, a/b.d, a/x (not a directory), c, gone: each listed once.
        assert_eq!(presence.listed(), 6);
    }

    #[test]
    fn an_unlistable_directory_is_asked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("locked");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("f"), b"1").unwrap();
        // Search but no read permission: lstat works, listing does not.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o311)).unwrap();
        let listable = std::fs::read_dir(&sub).is_ok(); // root can list anything
        let mut presence = Presence::default();
        assert!(presence.is_file(&sub.join("f")));
        assert!(!presence.is_file(&sub.join("g")));
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        if !listable {
            assert!(matches!(presence.stack[0].files, Files::Unlisted));
        }
    }

    #[test]
    fn a_directory_with_too_many_files_is_asked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}")), b"1").unwrap();
        }
        assert!(matches!(list_at_most(dir.path(), 5), Files::Listed(n) if n.len() == 5));
        assert!(matches!(list_at_most(dir.path(), 4), Files::Unlisted));
    }

    #[test]
    fn paths_out_of_order_are_still_answered_right() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/1"), b"1").unwrap();
        std::fs::write(root.join("a/b/2"), b"1").unwrap();
        let mut presence = Presence::default();
        for (rel, want) in [
            ("a/b/2", true),
            ("a/1", true),
            ("a/b/3", false),
            ("a/1", true),
        ] {
            assert_eq!(presence.is_file(&root.join(rel)), want, "{rel}");
        }
    }
}
