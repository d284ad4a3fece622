//! The zero-infrastructure sink: one envelope per line on stdout.

use std::io::Write;

use crate::envelope::Message;
use crate::error::SinkError;

/// Writes each envelope as one JSON line to stdout and flushes before answering, so a line that
/// was acknowledged is in the pipe even if the process dies right after. Logs go to stderr, so
/// stdout stays pipeable into `jq` or a file.
#[derive(Debug, Default)]
pub struct StdoutSink {
    /// The line buffer, reused batch after batch (a fresh 64 KiB buffer per batch made glibc
    /// consolidate its free lists on every free); the lock also keeps lines whole.
    buf: std::sync::Mutex<Vec<u8>>,
}

impl StdoutSink {
    /// A sink on the process's stdout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes every message as a line, then flushes once: a batch costs one `write` burst and
    /// one flush instead of one per line. Nothing is acknowledged before the flush.
    ///
    /// # Errors
    /// [`SinkError::Stdout`] when stdout is closed.
    pub fn deliver_all<'a>(
        &self,
        msgs: impl IntoIterator<Item = &'a Message>,
    ) -> Result<(), SinkError> {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.clear();
        for msg in msgs {
            msg.write_json(&mut buf)?;
            buf.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&buf).map_err(SinkError::Stdout)?;
        out.flush().map_err(SinkError::Stdout)?;
        // Keep the buffer for the next batch, unless one huge batch grew it.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        Ok(())
    }

    /// Writes and flushes one line.
    ///
    /// # Errors
    /// [`SinkError::Stdout`] when stdout is closed or full of errors.
    pub fn deliver(&self, msg: &Message) -> Result<(), SinkError> {
        let mut line = msg.to_json()?;
        line.push(b'\n');
        // One line at a time, whole, even if several tasks deliver at once.
        let _guard = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        out.write_all(&line).map_err(SinkError::Stdout)?;
        out.flush().map_err(SinkError::Stdout)
    }
}
