//! The file-watcher wire envelope and the sinks that deliver it.
#![deny(missing_docs)]
