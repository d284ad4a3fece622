//! Why a sink could not take a message.

/// A delivery failure. Transport trouble is retried inside the sinks; what reaches the caller is
/// what retrying cannot fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing to stdout failed (for example a closed pipe).
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    /// The envelope could not be serialised.
    #[error("cannot serialise envelope: {0}")]
    Encode(#[from] serde_json::Error),
    /// The sink is shutting down and took no more messages.
    #[error("sink is shutting down")]
    Closed,
}
