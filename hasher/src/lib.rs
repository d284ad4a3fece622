//! One-pass SHA-256 + XXH3-128 file hashing for file-watcher.
//!
//! Every settled file is read exactly once: each buffer that comes off the disk feeds both the
//! SHA-256 state (integrity; `sha2` picks SHA-NI at run time) and the XXH3-128 state (duplicate
//! detection). Nothing here knows about tokio or AMQP; the crate is plain synchronous code so
//! the CPU work can stay off an async runtime.
//!
//! * [`hash_file`] hashes one path and refuses to lie: a file that is not regular, vanished,
//!   unreadable, or changed while it was read is a typed [`HashError`], never a made-up digest.
//! * [`HashPool`] hashes many paths on a `rayon::ThreadPool` of its own with a bounded intake, so
//!   a caller can stream millions of paths through it with flat memory: never more than
//!   `capacity + threads` files open, whoever submits. Large files are hashed in slices and go
//!   back to the end of the pool's FIFO queue after each one, so one 4 GiB file never starves a
//!   queue of small ones.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("abc.txt");
//! std::fs::write(&path, b"abc")?;
//!
//! let hashed = hasher::hash_file(&path)?;
//! assert_eq!(
//!     hashed.digest.sha256_hex(),
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! assert_eq!(hashed.digest.xxh128_hex(), "06b05ab6733a618578af5f94892f3950");
//! assert_eq!(hashed.stamp.size, 3);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod digest;
mod error;
mod file;
mod pool;

pub use digest::{Digest, Stamp};
pub use error::{FileKind, HashError};
pub use file::{hash_file, hash_file_with_buffer, Hashed, BUFFER_SIZE};
pub use pool::{HashPool, Job, PoolConfig, PoolStats, SubmitError};
