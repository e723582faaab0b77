//! What a pump or relay reads an outbox through.

use std::future::Future;

use uuid::Uuid;

use super::OutboxError;
use crate::integration::IntegrationMessage;

/// An outbox table as the publisher sees it: the oldest unpublished messages, and their removal
/// once published.
///
/// One reader per outbox reads at a time (one [`OutboxPump`](super::OutboxPump) or relay): two
/// would both publish the same rows, out of order. [`PostgresOutbox`](super::PostgresOutbox)
/// enforces it with an advisory lock and [`SqliteOutbox`](super::SqliteOutbox) with a file lock;
/// a second reader reads nothing until the first is gone, then takes over.
pub trait OutboxSource: Send + Sync + 'static {
    /// The oldest unpublished messages, at most `limit`, in commit order.
    fn claim(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IntegrationMessage>, OutboxError>> + Send;

    /// Removes the messages `ids`, once the broker has acknowledged them.
    fn mark_published(&self, ids: &[Uuid]) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// How many messages wait to be published.
    fn pending(&self) -> impl Future<Output = Result<u64, OutboxError>> + Send;
}

/// A stored row's message, or why it cannot be read.
pub(crate) fn read_row(seq: i64, json: &str) -> Result<IntegrationMessage, OutboxError> {
    IntegrationMessage::from_cloudevent(json).map_err(|e| OutboxError::Corrupt {
        seq,
        reason: e.to_string(),
    })
}
