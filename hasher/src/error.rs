//! Why a file could not be hashed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The kind of a filesystem entry that is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A symbolic link; the hasher never follows links.
    Symlink,
    /// A named pipe. Opening one for reading can block forever, so it is never opened.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// Anything else the platform reports.
    Other,
}

impl FileKind {
    /// Classifies `stat` metadata.
    pub fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            Self::Directory
        } else if t.is_symlink() {
            Self::Symlink
        } else if t.is_fifo() {
            Self::Fifo
        } else if t.is_socket() {
            Self::Socket
        } else if t.is_block_device() {
            Self::BlockDevice
        } else if t.is_char_device() {
            Self::CharDevice
        } else {
            Self::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Directory => "a directory",
            Self::Symlink => "a symbolic link",
            Self::Fifo => "a FIFO (named pipe)",
            Self::Socket => "a socket",
            Self::BlockDevice => "a block device",
            Self::CharDevice => "a character device",
            Self::Other => "not a regular file",
        })
    }
}

/// Why hashing one file failed. Every case names the path, so a log line is actionable on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The file does not exist (any more): it vanished between being scheduled and being read.
    #[error("{}: file not found (it vanished before it could be hashed)", path.display())]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The process may not read the file.
    #[error("{}: permission denied (check the file's mode and the user the watcher runs as)", path.display())]
    PermissionDenied {
        /// The unreadable path.
        path: PathBuf,
    },
    /// The entry is a directory, link, FIFO, socket or device; only regular files are hashed.
    #[error("{}: not a regular file: it is {kind}", path.display())]
    NotRegularFile {
        /// The offending path.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// Size or mtime differed before and after the read, or the path now names another inode:
    /// the content is not settled, and any digest would describe a half-written file.
    #[error("{}: changed while being read; its content has not settled", path.display())]
    Changed {
        /// The unsettled path.
        path: PathBuf,
    },
    /// The pool was stopped ([`crate::HashPool::stop`]) before the file was finished: it was
    /// not read to the end, and nothing is known about its content.
    #[error("{}: not hashed: the hashing pool is stopping", path.display())]
    Cancelled {
        /// The path that was being hashed.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl HashError {
    /// Maps an `io::Error` to the most precise case.
    pub(crate) fn from_io(path: &std::path::Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.kind() {
            io::ErrorKind::NotFound => Self::NotFound { path },
            io::ErrorKind::PermissionDenied => Self::PermissionDenied { path },
            _ => match err.raw_os_error() {
                // O_NOFOLLOW refusing a symbolic link.
                Some(libc::ELOOP) => Self::NotRegularFile {
                    path,
                    kind: FileKind::Symlink,
                },
                // open(2) on a socket.
                Some(libc::ENXIO) => Self::NotRegularFile {
                    path,
                    kind: FileKind::Socket,
                },
                _ => Self::Io { path, source: err },
            },
        }
    }

    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::NotFound { path }
            | Self::PermissionDenied { path }
            | Self::NotRegularFile { path, .. }
            | Self::Changed { path }
            | Self::Cancelled { path }
            | Self::Io { path, .. } => path,
        }
    }

    /// A short stable label for metrics and structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::NotRegularFile { .. } => "not_regular",
            Self::Changed { .. } => "changed",
            Self::Cancelled { .. } => "cancelled",
            Self::Io { .. } => "io",
        }
    }
}
