//! The result of hashing: content digests, and the stat stamp they belong to.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The two content digests of one file.
///
/// SHA-256 is for integrity, XXH3-128 for cheap duplicate detection. Both always come from the
/// same single read of the same bytes, so they can never describe two different versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    sha256: [u8; 32],
    xxh128: u128,
}

impl Digest {
    /// Builds a digest from raw values, for example when loading it back from a state store.
    pub fn from_parts(sha256: [u8; 32], xxh128: u128) -> Self {
        Self { sha256, xxh128 }
    }

    /// The raw SHA-256 bytes.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The XXH3-128 value.
    pub fn xxh128(&self) -> u128 {
        self.xxh128
    }

    /// SHA-256 as 64 lowercase hex digits, as `sha256sum` prints it.
    pub fn sha256_hex(&self) -> String {
        lower_hex(&self.sha256)
    }

    /// XXH3-128 as 32 lowercase hex digits in canonical (big-endian) order, byte for byte what
    /// `xxhsum -H2` prints.
    pub fn xxh128_hex(&self) -> String {
        lower_hex(&self.xxh128.to_be_bytes())
    }
}

/// Lowercase hex of `bytes`, two digits a byte. Both digests are formatted for every event, and
/// this straight loop costs a fraction of `hex::encode`'s per-character iterator and of
/// `format!`'s padding machinery (together a twentieth of the pipeline thread's instructions).
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// What `stat` said about a file: enough to tell whether its content may have changed.
///
/// A file whose stamp is unchanged is not read again; a rename keeps the inode, size and mtime,
/// so a moved file keeps its digests without being hashed again. The ctime is part of it because
/// size and mtime can lie: a same-size rewrite whose mtime was put back (`touch -d`, `rsync -t`,
/// `cp -p`) changes only the ctime, which no process can set. A ctime change means "look again";
/// if the digest is the same (a `chmod`, a `touch`), nothing is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Device number of the filesystem holding the inode.
    pub dev: u64,
    /// Status-change time in nanoseconds since the Unix epoch, or [`Stamp::CTIME_UNKNOWN`] for
    /// a stamp recorded before the ctime was kept.
    pub ctime_ns: i64,
}

impl Stamp {
    /// Takes the stamp out of `stat` metadata.
    pub fn from_metadata(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }

    /// The ctime of a stamp recorded without one.
    pub const CTIME_UNKNOWN: i64 = i64::MIN;

    /// True when `self`, just observed, shows the same file as `recorded` with nothing changed:
    /// the same inode, size, mtime and ctime. A recorded stamp without a ctime matches any.
    pub fn unchanged_from(&self, recorded: &Stamp) -> bool {
        self.size == recorded.size
            && self.mtime_ns == recorded.mtime_ns
            && self.inode == recorded.inode
            && self.dev == recorded.dev
            && (recorded.ctime_ns == Self::CTIME_UNKNOWN || self.ctime_ns == recorded.ctime_ns)
    }

    /// True when size and mtime agree: the content is presumed the same on the same inode.
    pub fn same_content_as(&self, other: &Stamp) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_means_inode_size_mtime_and_ctime() {
        let seen = Stamp {
            size: 10,
            mtime_ns: 100,
            inode: 7,
            dev: 1,
            ctime_ns: 200,
        };
        let with = |f: fn(&mut Stamp)| {
            let mut s = seen;
            f(&mut s);
            s
        };
        let cases: [(Stamp, bool); 7] = [
            (seen, true),
            (with(|s| s.ctime_ns = Stamp::CTIME_UNKNOWN), true),
            (with(|s| s.ctime_ns = 199), false),
            (with(|s| s.mtime_ns = 99), false),
            (with(|s| s.size = 11), false),
            (with(|s| s.inode = 8), false),
            (with(|s| s.dev = 2), false),
        ];
        for (recorded, want) in cases {
            assert_eq!(seen.unchanged_from(&recorded), want, "{recorded:?}");
        }
    }

    #[test]
    fn xxh128_hex_is_big_endian_and_zero_padded() {
        let d = Digest::from_parts([0u8; 32], 0x0102);
        assert_eq!(d.xxh128_hex(), "00000000000000000000000000000102");
        assert_eq!(d.sha256_hex().len(), 64);
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte_in_order() {
        let mut sha = [0u8; 32];
        for (i, b) in sha.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        let xxh = 0xfedc_ba98_7654_3210_0f1e_2d3c_4b5a_6978_u128;
        let d = Digest::from_parts(sha, xxh);
        assert_eq!(d.sha256_hex(), hex::encode(sha));
        assert_eq!(d.xxh128_hex(), format!("{xxh:032x}"));
    }
}
