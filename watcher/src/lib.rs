//! The file-watcher service.
