//! The state store: what the instance last reported for each path, kept in redb in `STATE_DIR`.
//!
//! It is the memory that makes restarts safe: a file whose stamp matches its entry is not read
//! again, a path in the store but gone from disk is a deletion, and a deleted file's event carries
//! the digests kept here. An entry is written only after the sink accepted the event about it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hasher::{Digest, Stamp};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Path bytes → encoded [`Entry`].
const FILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("files_v1");
/// Facts about the store itself, such as which directory it describes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");
/// A scan's vanished entries, keyed by size (8 bytes, big-endian), XXH128 (16 bytes, big-endian)
/// and path, so the candidates for one content are one key range. It lives only for the scan
/// that fills it (each sweep starts it empty): it is a store table rather than a map in memory
/// because a volume of a million files renamed away while we were stopped makes it as large as
/// the library. See [`Store::vanished_take`].
const VANISHED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("scan_vanished_v1");
/// The META key of DATA_DIR's device and inode (16 bytes, little-endian).
const ROOT_KEY: &str = "data_dir_root";

/// Record layout version, first byte of every value, so the format can change later.
/// The record before the ctime was kept: version, size, mtime, inode, dev, SHA-256, XXH128.
const RECORD_V1: u8 = 1;
const RECORD_V1_LEN: usize = 1 + 8 + 8 + 8 + 8 + 32 + 16;
/// The current record: V1's fields, then the ctime.
const RECORD_V2: u8 = 2;
const RECORD_LEN: usize = RECORD_V1_LEN + 8;

/// What is known about one reported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `stat` of the version that was reported.
    pub stamp: Stamp,
    /// Its digests.
    pub digest: Digest,
}

impl Entry {
    /// The size and digests as the envelope carries them.
    pub fn facts(&self) -> publisher::FileFacts {
        publisher::FileFacts {
            size: self.stamp.size,
            sha256_hex: self.digest.sha256_hex(),
            xxh128_hex: self.digest.xxh128_hex(),
        }
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0] = RECORD_V2;
        out[1..9].copy_from_slice(&self.stamp.size.to_le_bytes());
        out[9..17].copy_from_slice(&self.stamp.mtime_ns.to_le_bytes());
        out[17..25].copy_from_slice(&self.stamp.inode.to_le_bytes());
        out[25..33].copy_from_slice(&self.stamp.dev.to_le_bytes());
        out[33..65].copy_from_slice(self.digest.sha256());
        out[65..81].copy_from_slice(&self.digest.xxh128().to_le_bytes());
        out[81..89].copy_from_slice(&self.stamp.ctime_ns.to_le_bytes());
        out
    }

    fn decode(raw: &[u8]) -> Option<Self> {
        // A V1 record (written before the ctime was kept) reads with an unknown ctime, which
        // matches any: an upgrade does not re-hash the whole library.
        let ctime_at = match (raw.first(), raw.len()) {
            (Some(&RECORD_V2), RECORD_LEN) => Some(81),
            (Some(&RECORD_V1), RECORD_V1_LEN) => None,
            _ => return None,
        };
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i..i + 8]);
            b
        };
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&raw[33..65]);
        let mut xxh = [0u8; 16];
        xxh.copy_from_slice(&raw[65..81]);
        Some(Self {
            stamp: Stamp {
                size: u64::from_le_bytes(u64_at(1)),
                mtime_ns: i64::from_le_bytes(u64_at(9)),
                inode: u64::from_le_bytes(u64_at(17)),
                dev: u64::from_le_bytes(u64_at(25)),
                ctime_ns: ctime_at.map_or(Stamp::CTIME_UNKNOWN, |i| i64::from_le_bytes(u64_at(i))),
            },
            digest: Digest::from_parts(sha, u128::from_le_bytes(xxh)),
        })
    }
}

/// One change to apply to the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Record (or replace) the entry for a path.
    Put(PathBuf, Entry),
    /// Forget a path.
    Delete(PathBuf),
}

impl Op {
    /// The path the change is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Put(p, _) | Self::Delete(p) => p,
        }
    }
}

/// Why the store failed. Store failures are infrastructure failures: the instance cannot keep
/// its promises without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb reported an error (I/O, a full disk, a lock held by another process).
    #[error("state store {}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: redb::Error,
    },
    /// The file is not a database redb wrote: altered, truncated or zeroed outside redb (a
    /// failing disk, a bad restore, a copy made while it was written). Nothing in it can be
    /// trusted, and the instance cannot tell which changes it reported, so it stops and says
    /// how to start over rather than guessing.
    #[error(
        "state store {p} is damaged ({detail}); stop the instance, move the file aside \
         (mv {p} {p}.damaged) and start it again: it then reports every file under DATA_DIR \
         as file_discovered",
        p = path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What redb found (or where it gave up).
        detail: String,
    },
}

impl StoreError {
    /// [`StoreError::Damaged`] for what says the file is damaged, [`StoreError::Db`] otherwise.
    fn classify(path: PathBuf, source: redb::Error) -> Self {
        if is_corruption(&source) {
            Self::Damaged {
                path,
                detail: source.to_string(),
            }
        } else {
            Self::Db { path, source }
        }
    }

    /// Whether the store file itself is damaged (not a passing I/O failure).
    pub fn is_damaged(&self) -> bool {
        matches!(self, Self::Damaged { .. })
    }
}

/// Whether a redb error means the file is damaged rather than unreadable or full.
fn is_corruption(e: &redb::Error) -> bool {
    match e {
        redb::Error::Corrupted(_) => true,
        // A file that ends before the structures its header points at reads short; one whose
        // header is not redb's ("not a database") is InvalidData.
        redb::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
        ),
        _ => false,
    }
}

/// A read snapshot of the store; see [`Store::reader`]. It owns its transaction, so it can be
/// kept between calls; while it lives, redb keeps the pages it sees.
pub struct Reader {
    path: PathBuf,
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("store", &self.path).finish()
    }
}

impl Reader {
    /// The entry for `path` in this snapshot.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn get(&self, path: &Path) -> Result<Option<Entry>, StoreError> {
        let value = self
            .table
            .get(key(path))
            .map_err(|e| StoreError::classify(self.path.clone(), e.into()))?;
        Ok(value.and_then(|v| Entry::decode(v.value())))
    }

    /// The entries of the files directly in `dir` (not in its subdirectories), read in key order
    /// in one pass over the directory's keys: a directory's leaf pages are read once, instead of
    /// one descent of the tree per file. A subdirectory's keys are skipped with one seek past
    /// them. `None` when there are more than `max` (the caller then asks file by file, so a flat
    /// directory of millions of files does not put their entries in memory).
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn files_in(&self, dir: &Path, max: usize) -> Result<Option<DirFiles>, StoreError> {
        let err = |e: redb::StorageError| StoreError::classify(self.path.clone(), e.into());
        let mut prefix = key(dir).to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        // Every key below `dir/` sorts before `dir0` ('0' follows '/').
        let above = |k: &[u8]| {
            let mut k = k.to_vec();
            if let Some(last) = k.last_mut() {
                *last = b'0';
            }
            k
        };
        let end = above(&prefix);
        let mut from = prefix.clone();
        let mut out = Vec::new();
        'seek: loop {
            let range = self
                .table
                .range::<&[u8]>(from.as_slice()..end.as_slice())
                .map_err(err)?;
            for item in range {
                let (k, v) = item.map_err(err)?;
                let k = k.value();
                let name = &k[prefix.len()..];
                if let Some(slash) = name.iter().position(|&b| b == b'/') {
                    from = above(&k[..=prefix.len() + slash]);
                    continue 'seek;
                }
                if out.len() == max {
                    return Ok(None);
                }
                if let Some(entry) = Entry::decode(v.value()) {
                    out.push((Box::from(name), entry));
                }
            }
            return Ok(Some(out));
        }
    }
}

/// The store's entries for the files directly in one directory, in key order (so sorted by
/// name bytes); see [`Reader::files_in`].
pub type DirFiles = Vec<(Box<[u8]>, Entry)>;

/// The redb database of reported files.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// redb's page cache. With its default of 1 GiB the cache, and so the process, grows with the
/// store: a library of millions of files would keep most of its state in memory, though a scan
/// looks each path up only once. Measured on 1,000,000 files with `--once`: a fresh scan took
/// 29.4 s at 302 MiB with the default and 10.6 s at 175 MiB with this cap (the rest of that was
/// the scan's path set, since bounded too); the unchanged restart 186 MiB and 42 MiB.
const CACHE_BYTES: usize = 32 << 20;

fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// The first bytes of a [`VANISHED`] key: the content it pairs on.
fn content_key(size: u64, xxh128: u128) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&size.to_be_bytes());
    k[8..].copy_from_slice(&xxh128.to_be_bytes());
    k
}

fn vanished_key(path: &Path, entry: &Entry) -> Vec<u8> {
    let mut k = content_key(entry.stamp.size, entry.digest.xxh128()).to_vec();
    k.extend_from_slice(key(path));
    k
}

fn path_of(key: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(key))
}

impl Store {
    /// Opens (or creates) `state.redb` in `state_dir`, checking every page of it first.
    ///
    /// The check (redb's integrity check on open) is what turns a file damaged outside redb
    /// into [`StoreError::Damaged`] at start-up, rather than a panic or a wrong answer
    /// somewhere in the first scan. It reads the whole file once: 39 ms against 0.6 ms without
    /// it, on a store of 100,000 entries (17.7 MiB), medians of 7 (`cargo test -p watcher
    /// --release --lib opening_checks -- --ignored --nocapture`).
    /// redb may still panic on some damage instead of returning an error; that is caught here
    /// and reported the same way.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] when the file is not a sound redb database; [`StoreError::Db`]
    /// when it cannot be opened (permissions, a full disk, another process holds it).
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("state.redb");
        let damaged = |path: &Path, detail: String| StoreError::Damaged {
            path: path.to_owned(),
            detail,
        };
        let opened = crate::failure::catch_panic(|| {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(true)
                .create(&path)
        })
        .map_err(|panic| damaged(&path, format!("redb gave up reading it: {panic}")))?;
        let db = opened.map_err(|e| StoreError::classify(path.clone(), e.into()))?;
        let store = Self { db, path };
        // Create the tables up front, in one transaction, so read transactions never see them
        // missing.
        crate::failure::catch_panic(|| {
            let txn = store.db.begin_write().map_err(|e| store.err(e))?;
            txn.open_table(FILES).map_err(|e| store.err(e))?;
            txn.open_table(META).map_err(|e| store.err(e))?;
            txn.open_table(VANISHED).map_err(|e| store.err(e))?;
            txn.commit().map_err(|e| store.err(e))
        })
        .map_err(|panic| damaged(&store.path, format!("redb gave up reading it: {panic}")))??;
        Ok(store)
    }

    /// The device and inode of the DATA_DIR this store describes, once recorded.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn root_id(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let value = table.get(ROOT_KEY).map_err(|e| self.err(e))?;
        Ok(value.and_then(|v| {
            let b = v.value();
            let dev = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
            let ino = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
            Some((dev, ino))
        }))
    }

    /// Records the device and inode of DATA_DIR (durably).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the transaction fails.
    pub fn set_root_id(&self, dev: u64, ino: u64) -> Result<(), StoreError> {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&dev.to_le_bytes());
        bytes[8..].copy_from_slice(&ino.to_le_bytes());
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(META).map_err(|e| self.err(e))?;
            table
                .insert(ROOT_KEY, &bytes[..])
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::classify(self.path.clone(), e.into())
    }

    /// The entry for `path`, if one was recorded.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn get(&self, path: &Path) -> Result<Option<Entry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(FILES).map_err(|e| self.err(e))?;
        let value = table.get(key(path)).map_err(|e| self.err(e))?;
        Ok(value.and_then(|v| Entry::decode(v.value())))
    }

    /// A read snapshot for many lookups in a row (a scan): one transaction instead of one per
    /// lookup. It does not see later commits, so take a fresh one now and then.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(FILES).map_err(|e| self.err(e))?;
        Ok(Reader {
            path: self.path.clone(),
            table,
        })
    }

    /// Applies a batch of changes in one durable transaction: 100,000 puts commit in one fsync.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the transaction fails; then none of the batch is applied.
    pub fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.apply_with(ops, true)
    }

    /// Applies a batch in one transaction. When `durable` is false there is no fsync: the batch
    /// is visible at once but reaches the disk with the next durable commit. Losing it in a crash
    /// only means its events are sent again (with the same `message_id`), never that one is
    /// lost, because entries are written only after the sink accepted their events.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the transaction fails; then none of the batch is applied.
    pub fn apply_with(&self, ops: &[Op], durable: bool) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.err(e))?;
        }
        {
            let mut table = txn.open_table(FILES).map_err(|e| self.err(e))?;
            for op in ops {
                match op {
                    Op::Put(p, entry) => {
                        table
                            .insert(key(p), &entry.encode()[..])
                            .map_err(|e| self.err(e))?;
                    }
                    Op::Delete(p) => {
                        table.remove(key(p)).map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Up to `limit` entries strictly below directory `dir`, in key order, starting after the
    /// key `after` (the last path of the previous page). A directory that was moved or removed
    /// is worked through page by page, so its size does not decide the memory it takes.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn page_under(
        &self,
        dir: &Path,
        after: Option<&Path>,
        limit: usize,
    ) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
        let mut prefix = key(dir).to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        let start = after.map_or_else(|| prefix.clone(), |a| key(a).to_vec());
        let mut out = Vec::new();
        self.visit_from(&start, |k, e| {
            if !k.starts_with(&prefix) || out.len() >= limit {
                return false;
            }
            if k != start.as_slice() || after.is_none() {
                out.push((path_of(k), e));
            }
            true
        })?;
        Ok(out)
    }

    /// Calls `f` with the key (path bytes, so nothing is allocated per entry) and entry of
    /// every entry from `start` (inclusive) to `end` (exclusive, or the last key when `None`),
    /// in key order, in batches of short read transactions so a long sweep never pins an old
    /// snapshot. `f` returns `false` to stop. The sweep gives each of its threads a range of
    /// its own.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn visit_range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        mut f: impl FnMut(&[u8], Entry) -> bool,
    ) -> Result<(), StoreError> {
        self.visit_from(start, |k, e| end.is_none_or(|end| k < end) && f(k, e))
    }

    fn visit_from(
        &self,
        start: &[u8],
        mut f: impl FnMut(&[u8], Entry) -> bool,
    ) -> Result<(), StoreError> {
        const BATCH: usize = 10_000;
        let mut cursor = start.to_vec();
        let mut inclusive = true;
        loop {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = txn.open_table(FILES).map_err(|e| self.err(e))?;
            let range = table
                .range::<&[u8]>(cursor.as_slice()..)
                .map_err(|e| self.err(e))?;
            let mut seen = 0;
            let mut last: Option<Vec<u8>> = None;
            for item in range {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let k = k.value();
                if !inclusive && k == cursor.as_slice() {
                    continue;
                }
                if let Some(entry) = Entry::decode(v.value()) {
                    if !f(k, entry) {
                        return Ok(());
                    }
                }
                seen += 1;
                last = Some(k.to_vec());
                if seen >= BATCH {
                    break;
                }
            }
            match last {
                Some(k) if seen >= BATCH => {
                    cursor = k;
                    inclusive = false;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Starts a scan's vanished set empty (what an earlier scan, or one cut short by a crash,
    /// left there is found again by this scan's sweep if it is still gone).
    ///
    /// # Errors
    /// [`StoreError::Db`] if the transaction fails.
    pub fn vanished_clear(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| self.err(e))?;
        txn.delete_table(VANISHED).map_err(|e| self.err(e))?;
        txn.open_table(VANISHED).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Adds entries a scan's sweep found gone. No fsync: the set is rebuilt by every scan.
    ///
    /// # Errors
    /// [`StoreError::Db`] if the transaction fails.
    pub fn vanished_add(&self, list: &[(PathBuf, Entry)]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(VANISHED).map_err(|e| self.err(e))?;
            for (p, e) in list {
                table
                    .insert(vanished_key(p, e).as_slice(), &e.encode()[..])
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Takes the vanished path that a new file with `entry`'s size and XXH128 is, choosing the
    /// first (in path order) for which `really_gone` holds; the others stay for the deletion
    /// pass. This is how a file moved while we were not watching becomes one move.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read or write failure.
    pub fn vanished_take(
        &self,
        entry: &Entry,
        really_gone: impl Fn(&Path) -> bool,
    ) -> Result<Option<PathBuf>, StoreError> {
        let prefix = content_key(entry.stamp.size, entry.digest.xxh128());
        let found = {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            let table = txn.open_table(VANISHED).map_err(|e| self.err(e))?;
            let range = table
                .range::<&[u8]>(&prefix[..]..)
                .map_err(|e| self.err(e))?;
            let mut found = None;
            for item in range {
                let (k, _) = item.map_err(|e| self.err(e))?;
                let k = k.value();
                if !k.starts_with(&prefix) {
                    break;
                }
                let path = path_of(&k[prefix.len()..]);
                if really_gone(&path) {
                    found = Some((k.to_vec(), path));
                    break;
                }
            }
            found
        };
        let Some((k, path)) = found else {
            return Ok(None);
        };
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| self.err(e))?;
        txn.open_table(VANISHED)
            .map_err(|e| self.err(e))?
            .remove(k.as_slice())
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        Ok(Some(path))
    }

    /// Takes up to `limit` of the vanished entries nobody claimed: the scan's deletions, worked
    /// through a page at a time.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read or write failure.
    pub fn vanished_drain(&self, limit: usize) -> Result<Vec<(PathBuf, Entry)>, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        {
            let mut table = txn.open_table(VANISHED).map_err(|e| self.err(e))?;
            let mut keys = Vec::new();
            for item in table.iter().map_err(|e| self.err(e))?.take(limit) {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let k = k.value();
                if let (Some(path), Some(entry)) = (k.get(24..), Entry::decode(v.value())) {
                    out.push((path_of(path), entry));
                }
                keys.push(k.to_vec());
            }
            for k in keys {
                table.remove(k.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Number of entries.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(FILES).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// True when nothing has been recorded yet.
    ///
    /// # Errors
    /// [`StoreError::Db`] on a read failure.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_identity_is_kept_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.root_id().unwrap(), None);
        store.set_root_id(2049, 12).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.root_id().unwrap(), Some((2049, 12)));
    }

    fn entry(n: u64) -> Entry {
        Entry {
            stamp: Stamp {
                size: n,
                mtime_ns: -5 + n as i64,
                inode: 77 + n,
                dev: 3,
                ctime_ns: 1_000 + n as i64,
            },
            digest: Digest::from_parts([n as u8; 32], u128::MAX - n as u128),
        }
    }

    /// What the integrity check at open costs, on a store of 100,000 files (a measurement,
    /// not a check: `cargo test -p watcher --release --lib opening_checks -- --ignored
    /// --nocapture`). Prints the median of 7 opens with and without the check.
    #[test]
    #[ignore = "a measurement"]
    fn opening_checks_every_page_at_a_small_cost() {
        const N: u64 = 100_000;
        let dir = tempfile::tempdir().unwrap();
        let ops: Vec<Op> = (0..N)
            .map(|n| {
                let p = PathBuf::from(format!(
                    "/data/music/artist{:03}/album{:02}/{n:06}.flac",
                    n % 997,
                    n % 13
                ));
                Op::Put(p, entry(n))
            })
            .collect();
        Store::open(dir.path()).unwrap().apply(&ops).unwrap();
        let path = dir.path().join("state.redb");
        let size = std::fs::metadata(&path).unwrap().len();
        let median = |check: bool| {
            let mut times: Vec<_> = (0..7)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let db = Database::builder()
                        .set_cache_size(CACHE_BYTES)
                        .set_check_integrity_on_open(check)
                        .create(&path)
                        .unwrap();
                    let took = t.elapsed();
                    let txn = db.begin_read().unwrap();
                    assert_eq!(txn.open_table(FILES).unwrap().len().unwrap(), N);
                    took
                })
                .collect();
            times.sort();
            times[3]
        };
        let (plain, checked) = (median(false), median(true));
        println!(
            "store of {N} entries, {:.1} MiB: open {plain:?}, open with the integrity check {checked:?} (medians of 7)",
            size as f64 / f64::from(1 << 20)
        );
    }

    #[test]
    fn the_vanished_set_pairs_by_size_and_xxh128_with_a_path_that_is_really_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, c) = (entry(10), entry(20));
        let b = Entry {
            stamp: Stamp {
                inode: 999,
                ..a.stamp
            },
            ..a
        };
        store
            .vanished_add(&[("/d/a".into(), a), ("/d/b".into(), b), ("/d/c".into(), c)])
            .unwrap();
        // Other content: no pair.
        assert_eq!(store.vanished_take(&entry(11), |_| true).unwrap(), None);
        // /d/a is back on disk: /d/b is the one that moved, and is taken once only.
        let gone = |p: &Path| p != Path::new("/d/a");
        assert_eq!(
            store.vanished_take(&a, gone).unwrap(),
            Some(PathBuf::from("/d/b"))
        );
        assert_eq!(store.vanished_take(&a, gone).unwrap(), None);
        // What nobody claimed comes out in pages, each page once, with its entry.
        let first = store.vanished_drain(1).unwrap();
        let second = store.vanished_drain(5).unwrap();
        assert_eq!(first, vec![(PathBuf::from("/d/a"), a)]);
        assert_eq!(second, vec![(PathBuf::from("/d/c"), c)]);
        assert!(store.vanished_drain(5).unwrap().is_empty());
        // A new sweep starts from nothing.
        store.vanished_add(&[("/d/x".into(), c)]).unwrap();
        store.vanished_clear().unwrap();
        assert!(store.vanished_drain(5).unwrap().is_empty());
    }

    #[test]
    fn a_record_from_before_the_ctime_reads_with_an_unknown_ctime() {
        let e = entry(5);
        let mut v1 = e.encode()[..RECORD_V1_LEN].to_vec();
        v1[0] = RECORD_V1;
        let old = Entry::decode(&v1).unwrap();
        assert_eq!(old.stamp.ctime_ns, Stamp::CTIME_UNKNOWN);
        assert_eq!(
            (old.stamp.size, old.stamp.inode),
            (e.stamp.size, e.stamp.inode)
        );
        assert_eq!(old.digest, e.digest);
        assert!(
            e.stamp.unchanged_from(&old.stamp),
            "an upgrade must not re-hash"
        );
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(&v1[..40]), None);
    }

    #[test]
    fn round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .apply(&[
                    Op::Put("/d/a".into(), entry(1)),
                    Op::Put("/d/b".into(), entry(2)),
                ])
                .unwrap();
            store.apply(&[Op::Delete("/d/a".into())]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get(Path::new("/d/a")).unwrap(), None);
        assert_eq!(store.get(Path::new("/d/b")).unwrap(), Some(entry(2)));
        assert_eq!(store.len().unwrap(), 1);
    }

    #[test]
    fn non_durable_batches_are_visible_at_once_and_kept_by_the_next_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .apply_with(&[Op::Put("/d/fast".into(), entry(7))], false)
                .unwrap();
            assert_eq!(store.get(Path::new("/d/fast")).unwrap(), Some(entry(7)));
            // An empty durable commit takes the earlier non-durable one to disk.
            store.apply_with(&[], true).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get(Path::new("/d/fast")).unwrap(), Some(entry(7)));
    }

    #[test]
    fn page_under_is_a_directory_prefix_not_a_string_prefix_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .apply(&[
                Op::Put("/d/album/1".into(), entry(1)),
                Op::Put("/d/album/sub/2".into(), entry(2)),
                Op::Put("/d/album/sub/3".into(), entry(3)),
                Op::Put("/d/album2/3".into(), entry(3)),
                Op::Put("/d/albu".into(), entry(4)),
            ])
            .unwrap();
        let album = Path::new("/d/album");
        let paths = |page: Vec<(PathBuf, Entry)>| -> Vec<PathBuf> {
            page.into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(
            paths(store.page_under(album, None, 100).unwrap()),
            vec![
                PathBuf::from("/d/album/1"),
                PathBuf::from("/d/album/sub/2"),
                PathBuf::from("/d/album/sub/3")
            ]
        );
        // Two at a time: the second page starts after the last path of the first.
        let first = paths(store.page_under(album, None, 2).unwrap());
        assert_eq!(first.len(), 2);
        let second = paths(
            store
                .page_under(album, first.last().map(PathBuf::as_path), 2)
                .unwrap(),
        );
        assert_eq!(second, vec![PathBuf::from("/d/album/sub/3")]);
        let third = paths(
            store
                .page_under(album, second.last().map(PathBuf::as_path), 2)
                .unwrap(),
        );
        assert!(third.is_empty());
    }

    #[test]
    fn visit_range_crosses_batch_boundaries_once_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ops: Vec<_> = (0..25_000u64)
            .map(|i| Op::Put(format!("/d/{i:06}").into(), entry(i)))
            .collect();
        store.apply(&ops).unwrap();
        let visit = |start: &[u8], end: Option<&[u8]>| {
            let mut n = 0u64;
            let mut prev = Vec::new();
            store
                .visit_range(start, end, |k, _| {
                    assert!(k > prev.as_slice());
                    prev = k.to_vec();
                    n += 1;
                    true
                })
                .unwrap();
            n
        };
        assert_eq!(visit(&[], None), 25_000);
        // From a key to another: the start counts, the end does not.
        assert_eq!(visit(b"/d/004000", Some(b"/d/021000")), 17_000);
    }
}
