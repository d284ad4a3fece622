//! Why a sink could not take a message.

/// A delivery failure. Transport trouble is retried inside the sinks; what reaches the caller is
/// what retrying cannot fix. The AMQP variants are also what the publisher logs while it retries,
/// so that a broker `Nack` reads differently from a broken socket.
///
/// No variant ever carries the broker password: URLs in errors are redacted
/// ([`AmqpConfig::redacted`](crate::AmqpConfig::redacted)).
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
    /// An AMQP setting is invalid. The text names the setting and never contains the password.
    #[error("invalid AMQP setting: {0}")]
    InvalidConfig(String),
    /// The broker refused the login (`ACCESS_REFUSED`): wrong user name or password, or a user
    /// without access to the virtual host. Retried at the slowest backoff pace.
    #[error(
        "RabbitMQ at {url} refused the login (ACCESS_REFUSED): check the user name and password \
         (broker said: {reason})"
    )]
    AccessRefused {
        /// The redacted broker URL.
        url: String,
        /// The broker's own explanation.
        reason: String,
    },
    /// The broker negatively acknowledged a message (`basic.nack`): it took the bytes but could
    /// not store them. Not a transport error; the message is published again.
    #[error("RabbitMQ nacked message {message_id}")]
    Nacked {
        /// The message's deterministic id.
        message_id: String,
    },
    /// The connection or channel failed: socket, TLS, handshake or a broker-side close. The
    /// publisher reconnects and publishes unconfirmed messages again.
    #[error("AMQP connection to {url} failed: {source}")]
    Transport {
        /// The redacted broker URL.
        url: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// Another live connection holds this instance's claim (`ON_DUPLICATE=exit`): a second
    /// process runs with the same `INSTANCE_ID`.
    #[error(
        "INSTANCE_ID {instance_id} is already in use: another live file-watcher holds its claim \
         (queue {queue}) on RabbitMQ at {url}; give each instance its own INSTANCE_ID, stop the \
         other one, or set ON_DUPLICATE=standby to wait as its standby"
    )]
    Duplicate {
        /// The contested id.
        instance_id: String,
        /// The claim queue.
        queue: String,
        /// The redacted URL of the node that answered.
        url: String,
    },
    /// The broker refused to declare the claim queue for another reason than a live holder,
    /// typically a user without `configure` permission on `file_watcher.claim.*`. Not retried:
    /// running unclaimed would silently allow duplicates.
    #[error(
        "cannot claim INSTANCE_ID on RabbitMQ at {url}: declaring the exclusive queue {queue} was \
         refused ({reason}); grant the user configure permission on it (rabbitmqctl \
         set_permissions), or use --sink stdout"
    )]
    ClaimRefused {
        /// The claim queue.
        queue: String,
        /// The redacted URL of the node that refused.
        url: String,
        /// The broker's own explanation.
        reason: String,
    },
    /// The queue to declare (`QUEUE`) exists with other arguments (`PRECONDITION_FAILED`).
    /// Not retried: every declaration would be refused the same way.
    #[error(
        "the queue {queue} exists on RabbitMQ at {url} with other arguments than this instance \
         declares ({ours}); the broker said: {reason}. Make them agree: set QUEUE_TYPE to the \
         queue's type, or delete the queue (rabbitmqctl delete_queue {queue}) so it is declared \
         anew, or set QUEUE= (empty) to manage the topology yourself"
    )]
    QueueMismatch {
        /// The queue.
        queue: String,
        /// The arguments this instance declares.
        ours: String,
        /// The redacted URL of the node that refused.
        url: String,
        /// The broker's own explanation, which names the existing argument.
        reason: String,
    },
    /// The broker refused to declare or bind the queue (`QUEUE`) for another reason, typically
    /// a user without `configure` permission on it or `write` on the exchange. Not retried.
    #[error(
        "cannot declare the queue {queue} on RabbitMQ at {url} ({reason}); grant the user \
         configure permission on it and read permission on the exchange (rabbitmqctl \
         set_permissions), or set QUEUE= (empty) and declare and bind a queue yourself"
    )]
    QueueRefused {
        /// The queue.
        queue: String,
        /// The redacted URL of the node that refused.
        url: String,
        /// The broker's own explanation.
        reason: String,
    },
}
