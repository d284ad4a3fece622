//! Deterministic corpora: the same files, byte for byte, on every machine and every run, so that
//! two runs (or a run and a criterion bench) hash the same content.
//!
//! Content is a xorshift stream seeded per file, so no two files of a corpus share a digest, as in
//! a real library; a digest that two files shared would let the watcher pair a delete with a
//! create as a move, which is not what a scenario means to measure.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Fills `buf` with the content of file number `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut x = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Writes `count` files of `size` bytes of varied content into `dir`, returning their paths.
/// Content differs per file so no two digests are equal, as in a real library.
///
/// # Errors
/// Any error writing the files.
pub fn write_files(
    dir: &Path,
    prefix: &str,
    count: usize,
    size: usize,
) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(count);
    let mut buf = vec![0u8; size];
    for i in 0..count {
        fill(&mut buf, i as u64);
        let path = dir.join(format!("{prefix}{i:06}.bin"));
        std::fs::write(&path, &buf)?;
        paths.push(path);
    }
    Ok(paths)
}

/// A tree to generate: `count` files of `size` bytes, at most `per_dir` per subdirectory
/// (`d000/`, `d001/`, …), as a library is laid out, content seeded from `seed_base + i`.
#[derive(Debug, Clone, Copy)]
pub struct Tree {
    /// How many files.
    pub count: usize,
    /// Bytes per file.
    pub size: usize,
    /// Files per subdirectory.
    pub per_dir: usize,
    /// Added to each file's number to seed its content, so two corpora differ.
    pub seed_base: u64,
}

impl Tree {
    /// The path of file `i` under `root`.
    pub fn path(&self, root: &Path, i: usize) -> PathBuf {
        root.join(format!("d{:03}", i / self.per_dir.max(1)))
            .join(format!("f{i:06}.bin"))
    }

    /// Writes the tree under `root` and dates every file an hour back, so it is long settled
    /// (a library that was there before the watcher started). Returns the paths in order.
    ///
    /// # Errors
    /// Any error creating a directory or writing a file.
    pub fn write(&self, root: &Path) -> std::io::Result<Vec<PathBuf>> {
        let old = SystemTime::now() - Duration::from_secs(3600);
        let mut paths = Vec::with_capacity(self.count);
        // One chunk of at most 8 MiB is generated and written at a time, so a 256 MiB file does
        // not need a 256 MiB buffer.
        let mut buf = vec![0u8; self.size.min(8 << 20)];
        for i in 0..self.count {
            let path = self.path(root, i);
            if i % self.per_dir.max(1) == 0 {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            let mut file = File::create(&path)?;
            let mut left = self.size;
            let mut chunk_no = 0u64;
            while left > 0 {
                let n = left.min(buf.len());
                // Each chunk gets its own seed: a file made of one repeated chunk would still
                // hash fine, but would compress to nothing on a filesystem that compresses.
                fill(
                    &mut buf[..n],
                    (self.seed_base + i as u64) ^ (chunk_no << 40),
                );
                file.write_all(&buf[..n])?;
                left -= n;
                chunk_no += 1;
            }
            file.set_modified(old)?;
            paths.push(path);
        }
        Ok(paths)
    }
}
