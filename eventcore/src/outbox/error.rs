//! What can go wrong writing to or reading from an outbox.

use crate::integration::IntegrationEncodeError;

/// An outbox operation failed; nothing is lost: a row leaves the outbox only once published.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The integration event does not encode.
    #[error(transparent)]
    Encode(#[from] IntegrationEncodeError),
    /// The message does not become a CloudEvent (its payload is not JSON).
    #[error("cannot write the outbox message: {0}")]
    Message(#[from] crate::cloudevents::CloudEventError),
    /// The database refused or failed.
    #[error("outbox database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A stored row cannot be read back; it stays in the outbox (and blocks those after it, to
    /// keep the order) until an operator repairs or deletes it.
    #[error("outbox row {seq} cannot be read: {reason}")]
    Corrupt {
        /// The row's sequence number.
        seq: i64,
        /// Why.
        reason: String,
    },
    /// The publisher failed; the batch stays in the outbox and is published again.
    #[error("publishing outbox messages failed: {0}")]
    Publish(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A blocking database task could not run to its end.
    #[error("outbox task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl OutboxError {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn database(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Database(Box::new(error))
    }
}
