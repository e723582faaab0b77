//! Event stores: the [`EventStore`] trait and its backends.

use std::fmt;
use std::future::Future;

use crate::envelope::{NewEvent, RecordedEvent};

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
pub use sqlite::{Durability, SqliteOptions, SqliteStore};

/// Longest stream id accepted, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 512;

/// Default largest payload accepted, in bytes (1 MiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// What the writer believes about a stream's version; the append fails when it is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (0 means it must not exist).
    Exact(u64),
    /// The stream must exist, at any version.
    StreamExists,
}

impl ExpectedVersion {
    /// Whether a stream at `actual` (0 = no stream) meets the expectation.
    pub fn accepts(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => actual == v,
            Self::StreamExists => actual > 0,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
            Self::StreamExists => f.write_str("an existing stream"),
        }
    }
}

/// What a successful append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Stream version of the first appended event (the stream's old version + 1).
    pub first_version: u64,
    /// Stream version after the append.
    pub last_version: u64,
    /// Global position of each appended event, in order.
    pub positions: Vec<u64>,
}

/// Errors of an event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version; nothing was written.
    #[error("version conflict on stream `{stream_id}`: expected {expected}, found version {actual}")]
    VersionConflict {
        /// The stream appended to.
        stream_id: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version (0 = no stream).
        actual: u64,
    },
    /// The stream id is not acceptable.
    #[error("invalid stream id {stream_id:?}: {reason}")]
    InvalidStreamId {
        /// The rejected id (may be truncated).
        stream_id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A payload is larger than the store accepts; nothing was written.
    #[error("payload of event {index} (`{event_type}`) in the batch for stream `{stream_id}` is {size} bytes, over the limit of {limit}")]
    PayloadTooLarge {
        /// The stream appended to.
        stream_id: String,
        /// Index of the event in the batch.
        index: usize,
        /// Its type.
        event_type: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// An event with the same id is already stored.
    #[error("event id {event_id} is already stored")]
    DuplicateEventId {
        /// The duplicated id.
        event_id: uuid::Uuid,
    },
    /// A stored row cannot be read back as an event.
    #[error("corrupt event at version {stream_version} of stream `{stream_id}`: {reason}")]
    Corrupt {
        /// The stream holding the row.
        stream_id: String,
        /// The row's stream version.
        stream_version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed (I/O, connection, database error).
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

/// Storage of event streams, with optimistic concurrency.
///
/// Implementations are cheap to clone (shared handles) and usable from any task.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends `events` to `stream_id` if the stream is at `expected`, all or nothing.
    fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Reads up to `limit` events of `stream_id` with a stream version of at least `from_version`.
    fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads up to `limit` events of the whole store with a global position of at least `from_position`.
    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The current version of `stream_id` (0 if it does not exist).
    fn stream_version(&self, stream_id: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Stores `snapshot`, replacing an older one of its stream. Stores without snapshots ignore it.
    fn save_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = snapshot;
        async { Ok(()) }
    }

    /// The newest snapshot of `stream_id`, if any.
    fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        let _ = stream_id;
        async { Ok(None) }
    }
}

/// A stored aggregate state as of a stream version, so a load replays only later events.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream the state was folded from.
    pub stream_id: String,
    /// The last stream version folded into the state.
    pub stream_version: u64,
    /// The aggregate's snapshot format version when it was taken.
    pub snapshot_version: u32,
    /// The encoded state (JSON).
    pub state: bytes::Bytes,
    /// When it was taken.
    pub taken_at: chrono::DateTime<chrono::Utc>,
}

/// Checks a stream id: non-empty, at most [`MAX_STREAM_ID_BYTES`], no control characters.
///
/// Anything else (quotes, unicode, SQL metacharacters) is stored as is.
pub fn validate_stream_id(stream_id: &str) -> Result<(), StoreError> {
    let reason = if stream_id.is_empty() {
        "it is empty"
    } else if stream_id.len() > MAX_STREAM_ID_BYTES {
        "it is longer than 512 bytes"
    } else if stream_id.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidStreamId {
        stream_id: stream_id.chars().take(64).collect(),
        reason,
    })
}

/// Checks an append before any backend sees it: the stream id and every payload's size.
pub fn validate_append(
    stream_id: &str,
    events: &[NewEvent],
    max_payload_bytes: usize,
) -> Result<(), StoreError> {
    validate_stream_id(stream_id)?;
    for (index, event) in events.iter().enumerate() {
        if event.payload.len() > max_payload_bytes {
            return Err(StoreError::PayloadTooLarge {
                stream_id: stream_id.to_owned(),
                index,
                event_type: event.event_type.clone(),
                size: event.payload.len(),
                limit: max_payload_bytes,
            });
        }
    }
    Ok(())
}
