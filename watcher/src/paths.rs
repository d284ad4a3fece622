//! Maps and sets keyed by path, hashed over the path's raw bytes.
//!
//! Why not `HashMap<PathBuf, _>`: std hashes a `Path` component by component (so that `a//b`
//! and `a/b` hash alike), one byte at a time, and SipHash then runs over every piece. The engine
//! touches these maps about ten times per file, and on a fresh scan of small files that hashing
//! was a fifth of the engine's time. Our paths are always built the same way (DATA_DIR joined
//! with names from readdir or inotify, never typed in), and the store already keys them by their
//! bytes, so byte equality is the equality we want. foldhash is seeded per process, which keeps
//! crafted file names from forcing collisions.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

type State = foldhash::fast::RandomState;

/// A map from paths to `V`.
#[derive(Debug, Clone)]
pub struct PathMap<V> {
    inner: HashMap<OsString, V, State>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self {
            inner: HashMap::with_hasher(State::default()),
        }
    }
}

impl<V> PathMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` paths, for a map that is filled and cleared over and over:
    /// up to `n` it does not grow (and rehash, touching fresh pages) while it fills.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            inner: HashMap::with_capacity_and_hasher(n, State::default()),
        }
    }

    /// The value for `path`.
    pub fn get(&self, path: &Path) -> Option<&V> {
        self.inner.get(path.as_os_str())
    }

    /// The value for `path`, mutably.
    pub fn get_mut(&mut self, path: &Path) -> Option<&mut V> {
        self.inner.get_mut(path.as_os_str())
    }

    /// Whether `path` has a value.
    pub fn contains(&self, path: &Path) -> bool {
        self.inner.contains_key(path.as_os_str())
    }

    /// Sets the value for `path`, returning the one it replaces.
    pub fn insert(&mut self, path: PathBuf, value: V) -> Option<V> {
        self.inner.insert(path.into_os_string(), value)
    }

    /// Takes the value for `path` out.
    pub fn remove(&mut self, path: &Path) -> Option<V> {
        self.inner.remove(path.as_os_str())
    }

    /// Takes the key and value for `path` out, so the owned path can be reused.
    #[cfg(test)]
    pub fn remove_entry(&mut self, path: &Path) -> Option<(PathBuf, V)> {
        self.inner
            .remove_entry(path.as_os_str())
            .map(|(k, v)| (PathBuf::from(k), v))
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// Every key, copied (for tests and small maps).
    #[cfg(test)]
    pub fn inner_paths(&self) -> Vec<PathBuf> {
        self.inner.keys().map(PathBuf::from).collect()
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path, &mut V) -> bool) {
        self.inner.retain(|k, v| keep(Path::new(k), v));
    }
}

/// A set of paths.
#[derive(Debug, Clone, Default)]
pub struct PathSet {
    inner: PathMap<()>,
}

impl PathSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `path` is in the set.
    pub fn contains(&self, path: &Path) -> bool {
        self.inner.contains(path)
    }

    /// Adds `path`; true if it was not there.
    pub fn insert(&mut self, path: PathBuf) -> bool {
        self.inner.insert(path, ()).is_none()
    }

    /// Removes `path`; true if it was there.
    pub fn remove(&mut self, path: &Path) -> bool {
        self.inner.remove(path).is_some()
    }

    /// Paths in the set.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Keeps the paths for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.inner.retain(|p, ()| keep(p));
    }

    /// The paths in the set strictly below `dir`. A walk over the whole set: for sets that the
    /// pipeline bounds (the paths in flight), not for the tree.
    pub fn under(&self, dir: &Path) -> Vec<PathBuf> {
        self.inner
            .inner
            .keys()
            .map(Path::new)
            .filter(|p| p.starts_with(dir) && *p != dir)
            .map(Path::to_path_buf)
            .collect()
    }
}

/// `path` relative to `dir` when it is `dir` itself (then empty) or below it; `None` otherwise.
///
/// `Path::strip_prefix` and `Path::starts_with` parse both paths into components, one at a
/// time: on a restart of 200,000 files that parsing was a seventh of the process's CPU. Our
/// paths are built one way (a canonical `DATA_DIR` joined with names from readdir, inotify or
/// the store), so comparing bytes at a `/` boundary gives the same answer.
pub fn below<'a>(dir: &Path, path: &'a Path) -> Option<&'a Path> {
    let (d, p) = (dir.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    let rest = p.strip_prefix(d)?;
    let rest = if rest.is_empty() || d.ends_with(b"/") {
        rest
    } else {
        rest.strip_prefix(b"/")?
    };
    Some(Path::new(OsStr::from_bytes(rest)))
}

/// The directory and the name of `path`, split at its last `/`, without parsing components
/// (see [`below`]). `None` for a path with no `/` or that ends in one.
pub fn split_name(path: &Path) -> Option<(&Path, &OsStr)> {
    let bytes = path.as_os_str().as_bytes();
    let slash = bytes.iter().rposition(|&b| b == b'/')?;
    let name = &bytes[slash + 1..];
    if name.is_empty() {
        return None;
    }
    let dir = if slash == 0 {
        &bytes[..1]
    } else {
        &bytes[..slash]
    };
    Some((Path::new(OsStr::from_bytes(dir)), OsStr::from_bytes(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_agrees_with_strip_prefix_on_our_paths() {
        let cases: [(&str, &str, Option<&str>); 8] = [
            ("/data", "/data/a/b.mp3", Some("a/b.mp3")),
            ("/data", "/data", Some("")),
            ("/data", "/database/a", None),
            ("/data", "/dat", None),
            ("/data/a", "/data/a/b", Some("b")),
            ("/", "/data/a", Some("data/a")),
            ("/", "/", Some("")),
            ("/data", "/other/data/a", None),
        ];
        for (dir, path, want) in cases {
            let (dir, path) = (Path::new(dir), Path::new(path));
            assert_eq!(below(dir, path), want.map(Path::new), "{dir:?} {path:?}");
            assert_eq!(
                below(dir, path),
                path.strip_prefix(dir).ok(),
                "{dir:?} {path:?}"
            );
        }
        let raw = Path::new(OsStr::from_bytes(b"/data/caf\xe9/x"));
        assert_eq!(
            below(Path::new("/data"), raw),
            Some(Path::new(OsStr::from_bytes(b"caf\xe9/x")))
        );
    }

    #[test]
    fn split_name_agrees_with_parent_and_file_name() {
        for path in ["/data/a/b.mp3", "/data/b", "/b", "rel/x", "/data/.hidden"] {
            let path = Path::new(path);
            assert_eq!(
                split_name(path),
                path.parent().zip(path.file_name()),
                "{path:?}"
            );
        }
        assert_eq!(split_name(Path::new("plain")), None);
        assert_eq!(split_name(Path::new("/data/")), None);
        assert_eq!(split_name(Path::new("/")), None);
    }

    #[test]
    fn keys_are_the_exact_bytes() {
        let mut m = PathMap::new();
        m.insert(PathBuf::from("/data/a/b.mp3"), 1);
        assert_eq!(m.get(Path::new("/data/a/b.mp3")), Some(&1));
        // std would call these equal to the key; the store (and so the engine) does not.
        assert_eq!(m.get(Path::new("/data/a//b.mp3")), None);
        assert_eq!(m.get(Path::new("/data/a/./b.mp3")), None);
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"/data/caf\xe9.mp3"));
        m.insert(raw.to_path_buf(), 2);
        assert_eq!(m.remove_entry(raw), Some((raw.to_path_buf(), 2)));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn set_insert_remove_retain() {
        let mut s = PathSet::new();
        assert!(s.insert(PathBuf::from("/d/x")));
        assert!(!s.insert(PathBuf::from("/d/x")));
        assert!(s.insert(PathBuf::from("/d/y")));
        s.retain(|p| p.ends_with("y"));
        assert!(!s.contains(Path::new("/d/x")));
        s.insert(PathBuf::from("/d/sub/z"));
        s.insert(PathBuf::from("/d/subway"));
        assert_eq!(
            s.under(Path::new("/d/sub")),
            vec![PathBuf::from("/d/sub/z")]
        );
        assert!(s.remove(Path::new("/d/y")));
        assert!(s.remove(Path::new("/d/sub/z")));
        assert!(s.remove(Path::new("/d/subway")));
        assert!(s.is_empty());
    }
}
