//! The filesystems under DATA_DIR, and whether inotify can vouch for them.
//!
//! inotify reports what this kernel does to a file. On a network filesystem (NFS, SMB/CIFS,
//! 9p, Ceph, AFS) and on FUSE (sshfs, rclone, virtiofs), a change made by another machine or by
//! the FUSE daemon goes through no local system call, so it raises no event: the watcher would
//! sit quiet while the files change. Such a tree must be polled. The type comes from `statfs`'s
//! magic number (`f_type`), for DATA_DIR and for every mount point below it.

use std::io;
use std::path::{Path, PathBuf};

/// A filesystem type, as far as watching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsType {
    /// Its usual name (`nfs`, `cifs`, `fuse`, `ext4`…), or `unknown`.
    pub name: &'static str,
    /// `statfs`'s `f_type`.
    pub magic: u64,
    /// Changes can happen without a local system call: inotify cannot see them.
    pub remote: bool,
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (statfs type {:#x})", self.name, self.magic)
    }
}

/// Magic numbers of `linux/magic.h` (and of the filesystems that keep theirs out of it): name,
/// and whether the filesystem is remote. What is not listed is taken as local.
const KNOWN: &[(u64, &str, bool)] = &[
    (0x6969, "nfs", true),
    (0x517B, "smb", true),
    (0xFF53_4D42, "cifs", true),
    (0xFE53_4D42, "smb3", true),
    (0x6573_5546, "fuse", true),
    (0x0102_1997, "9p", true),
    (0x00C3_6400, "ceph", true),
    (0x5346_414F, "afs", true),
    (0x6B41_4653, "kafs", true),
    (0x7375_7245, "coda", true),
    (0x564C, "ncpfs", true),
    (0x0116_1970, "gfs2", true),
    (0x7461_636F, "ocfs2", true),
    (0x0BD0_0BD0, "lustre", true),
    (0x2003_0528, "orangefs", true),
    (0xEF53, "ext4", false),
    (0x5846_5342, "xfs", false),
    (0x9123_683E, "btrfs", false),
    (0x2FC1_2FC1, "zfs", false),
    (0xF2F5_2010, "f2fs", false),
    (0x0102_1994, "tmpfs", false),
    (0x794C_7630, "overlay", false),
    (0x4D44, "vfat", false),
    (0x2011_BAB0, "exfat", false),
    (0x7366_746E, "ntfs3", false),
    (0x5346_544E, "ntfs", false),
    (0x7371_7368, "squashfs", false),
    (0x9FA0, "proc", false),
];

/// What a magic number says.
pub fn of_magic(magic: u64) -> FsType {
    let (name, remote) = KNOWN
        .iter()
        .find(|(m, _, _)| *m == magic)
        .map_or(("unknown", false), |(_, n, r)| (*n, *r));
    FsType {
        name,
        magic,
        remote,
    }
}

/// The filesystem `path` is on.
///
/// # Errors
/// `statfs` failed (the path is missing or unreadable).
pub fn of_path(path: &Path) -> io::Result<FsType> {
    let st = rustix::fs::statfs(path)?;
    // `f_type` is a signed word holding an unsigned 32-bit magic: reinterpret its low 32 bits.
    Ok(of_magic(u64::from(st.f_type as u32)))
}

/// The first remote filesystem at `root` or mounted below it, with its mount point: the reason
/// to poll. Mounts are read from `/proc/self/mountinfo`; one that cannot be `statfs`ed is
/// passed over (the scan will say what it cannot read).
pub fn remote_under(root: &Path) -> Option<(PathBuf, FsType)> {
    if let Ok(t) = of_path(root) {
        if t.remote {
            return Some((root.to_path_buf(), t));
        }
    }
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts(&table)
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m.starts_with(root) && m != root)
        .find_map(|m| of_path(&m).ok().filter(|t| t.remote).map(|t| (m, t)))
}

/// The mounts in a `/proc/self/mountinfo` text: each mount point (the fifth field, with the
/// kernel's octal escapes of space, tab, newline and backslash undone) and the filesystem type
/// named after the ` - ` separator.
fn mounts(mountinfo: &str) -> Vec<(PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let (_, after) = l.split_once(" - ")?;
            let fstype = after.split(' ').next()?;
            Some((PathBuf::from(unescape(point)), fstype.to_owned()))
        })
        .collect()
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn each_known_magic_number_is_named_and_judged() {
        // (magic, name, remote)
        let cases = [
            (0x6969, "nfs", true),
            (0xFF53_4D42, "cifs", true),
            (0xFE53_4D42, "smb3", true),
            (0x517B, "smb", true),
            (0x6573_5546, "fuse", true),
            (0x0102_1997, "9p", true),
            (0x00C3_6400, "ceph", true),
            (0x5346_414F, "afs", true),
            (0xEF53, "ext4", false),
            (0x5846_5342, "xfs", false),
            (0x9123_683E, "btrfs", false),
            (0x0102_1994, "tmpfs", false),
            (0x794C_7630, "overlay", false),
            (0x2FC1_2FC1, "zfs", false),
            (0x1234_5678, "unknown", false),
        ];
        for (magic, name, remote) in cases {
            let t = of_magic(magic);
            assert_eq!((t.name, t.remote), (name, remote), "{magic:#x}");
        }
        // Every entry of the table is judged by itself, not by a neighbour's entry.
        for (magic, name, remote) in KNOWN {
            assert_eq!(
                of_magic(*magic),
                FsType {
                    name,
                    magic: *magic,
                    remote: *remote
                }
            );
        }
        assert_eq!(of_magic(0x6969).to_string(), "nfs (statfs type 0x6969)");
    }

    #[test]
    fn real_mounts_are_typed_by_statfs() {
        assert_eq!(of_path(Path::new("/proc")).unwrap().name, "proc");
        let dir = tempfile::tempdir().unwrap();
        assert!(
            !of_path(dir.path()).unwrap().remote,
            "a temporary directory is local here"
        );
        assert_eq!(remote_under(dir.path()), None);
        assert!(of_path(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn mount_points_are_read_from_mountinfo_with_escapes_undone() {
        let table = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /data/music rw - nfs4 nas:/music rw
37 22 0:33 / /data/my\\040files rw - fuse.sshfs host:/x rw
";
        assert_eq!(
            mounts(table),
            vec![
                (PathBuf::from("/"), "ext4".to_owned()),
                (PathBuf::from("/data/music"), "nfs4".to_owned()),
                (PathBuf::from("/data/my files"), "fuse.sshfs".to_owned()),
            ]
        );
    }

    /// Every real mount of this machine whose type the kernel names in mountinfo is typed the
    /// same by its statfs magic: tmpfs (`/dev/shm`, `/run`) and proc on any Linux, and whatever
    /// else is mounted here.
    #[test]
    fn the_real_mounts_here_agree_with_mountinfo() {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut checked = Vec::new();
        for (point, fstype) in mounts(&table) {
            let Ok(t) = of_path(&point) else { continue };
            let want = match fstype.as_str() {
                "tmpfs" | "proc" | "xfs" | "btrfs" | "overlay" | "nfs" | "cifs" | "9p" => {
                    fstype.as_str()
                }
                "ext2" | "ext3" | "ext4" => "ext4",
                "nfs4" => "nfs",
                f if f == "fuse" || f.starts_with("fuse.") => "fuse",
                _ => continue,
            };
            assert_eq!(t.name, want, "{} ({fstype})", point.display());
            assert_eq!(
                t.remote,
                matches!(want, "nfs" | "cifs" | "9p" | "fuse"),
                "{}",
                point.display()
            );
            checked.push(fstype);
        }
        assert!(
            checked.iter().any(|f| f == "proc"),
            "proc is mounted: {checked:?}"
        );
    }
}
