//! The invariant of DESIGN.md's promise 6, as a test helper: replay published events over the
//! state an instance started from, and compare the result with the disk.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Path → SHA-256 (lowercase hex): what consumers rebuild from our events, or what is on disk.
pub type Tree = BTreeMap<PathBuf, String>;

/// The exact path an event names: `path_base64` when the name is not UTF-8.
pub fn exact_path(info: &serde_json::Value, key: &str) -> PathBuf {
    let b64 = format!("{key}_base64");
    if let Some(b) = info.get(&b64).and_then(|v| v.as_str()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("path_base64 is base64");
        return PathBuf::from(std::ffi::OsString::from_vec(bytes));
    }
    PathBuf::from(info[key].as_str().expect("a path"))
}

/// Applies one event to `tree`, as a consumer would.
pub fn apply(tree: &mut Tree, e: &serde_json::Value) {
    let info = &e["file_info"];
    let path = exact_path(info, "path");
    let sha = info["sha256_hash"].as_str().expect("sha256").to_owned();
    match e["event_type"].as_str().expect("event_type") {
        "file_deleted" => {
            tree.remove(&path);
        }
        "file_moved" | "file_renamed" => {
            tree.remove(&exact_path(info, "old_path"));
            tree.insert(path, sha);
        }
        "file_discovered" | "file_created" | "file_modified" => {
            tree.insert(path, sha);
        }
        other => panic!("unknown event type {other}: {e}"),
    }
}

/// Every regular file under `root` with the SHA-256 of its content. Symlinks are not followed.
pub fn disk(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in list.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                if let Some(sha) = sha256_of(&path) {
                    tree.insert(path, sha);
                }
            }
        }
    }
    tree
}

fn sha256_of(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What differs between the replayed tree and the disk, one line per path; empty when equal.
pub fn diff(replayed: &Tree, disk: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, sha) in replayed {
        match disk.get(p) {
            None => out.push(format!("ghost (reported, not on disk): {}", p.display())),
            Some(d) if d != sha => out.push(format!("stale digest: {}", p.display())),
            Some(_) => {}
        }
    }
    for p in disk.keys() {
        if !replayed.contains_key(p) {
            out.push(format!("missed (on disk, never reported): {}", p.display()));
        }
    }
    out
}
