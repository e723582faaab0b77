//! Errors of starting, waiting for and stopping runners.

use std::time::Duration;

use crate::store::StoreError;

/// Errors of runners as a whole (an event that fails is reported in the runner's status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A runner did not reach the head in time.
    #[error("`{name}` did not catch up within {waited:?}: at position {position} of {head}")]
    Timeout {
        /// The runner.
        name: String,
        /// How long was waited.
        waited: Duration,
        /// Where it was.
        position: u64,
        /// The head it was to reach.
        head: u64,
    },
    /// A runner stopped or failed before reaching the head; the message says why.
    #[error("{0}")]
    NotRunning(String),
    /// A stored document does not decode as the projection's document type.
    #[error("document `{key}` of `{collection}` does not decode")]
    Document {
        /// The collection.
        collection: String,
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The message broker of an event bus failed (Redis, NATS).
    #[error("the message broker failed")]
    Broker(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A runner's task panicked.
    #[error("a runner task panicked or was aborted")]
    Task(#[source] tokio::task::JoinError),
}
