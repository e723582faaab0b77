//! Event stores: the [`EventStore`] trait and its backends.

use std::fmt;
use std::future::Future;

use crate::envelope::{NewEvent, RecordedEvent};

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

pub use memory::{MemoryStore, MemoryTransaction};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteOptions, SqliteStore, SqliteTransaction};

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

/// One stream's part of a multi-stream append ([`EventStore::append_all`]): its events (maybe
/// none) and the version it must be at.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    /// The stream.
    pub stream_id: String,
    /// The version it must be at, or the whole append fails.
    pub expected: ExpectedVersion,
    /// The events to append to it; none only checks its version.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// Appends `events` to `stream_id` if it is at `expected`.
    pub fn new(stream_id: impl Into<String>, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream_id: stream_id.into(),
            expected,
            events,
        }
    }

    /// Appends nothing, but requires `stream_id` to be still at `version` (0: no stream): a
    /// decision taken on its state stands only if it did not move.
    pub fn unchanged(stream_id: impl Into<String>, version: u64) -> Self {
        Self::new(stream_id, ExpectedVersion::Exact(version), Vec::new())
    }
}

/// Checks a multi-stream append before any backend sees it: each part as [`validate_append`],
/// and no stream twice.
pub fn validate_append_all(parts: &[StreamAppend], max_payload_bytes: usize) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(parts.len());
    for part in parts {
        validate_append(&part.stream_id, &part.events, max_payload_bytes)?;
        if !seen.insert(part.stream_id.as_str()) {
            return Err(StoreError::InvalidStreamId {
                stream_id: part.stream_id.chars().take(64).collect(),
                reason: "it appears twice in one multi-stream append",
            });
        }
    }
    Ok(())
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
///
/// Each error keeps its cause in [`source()`](std::error::Error::source) only, never also in its
/// message: print the chain (`{:#}` with anyhow, or walk `source()`) to see everything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// An event of the batch is not acceptable (its type, version or text); nothing was written.
    #[error("invalid event {index} in the batch for stream `{stream_id}`: {reason}")]
    InvalidEvent {
        /// The stream appended to.
        stream_id: String,
        /// Index of the event in the batch.
        index: usize,
        /// Why it was rejected.
        reason: String,
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
    /// The batch's payloads and metadata together pass [`DEFAULT_MAX_BATCH_BYTES`]; nothing was
    /// written. Split it into several appends.
    #[error("the batch of {events} events for stream `{stream_id}` is over the limit of {limit} bytes")]
    BatchTooLarge {
        /// The stream appended to.
        stream_id: String,
        /// Events in the batch.
        events: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// An event with the same id is already stored, and not as a re-send of this very batch.
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
    /// A projection run inline, in the append's transaction, failed: the append was rolled back.
    #[error("inline projection `{projection}` failed; nothing was appended")]
    ProjectionFailed {
        /// The projection.
        projection: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A runner's lease was taken over by another owner (or a rebuild): its write was refused
    /// by the fencing token, and nothing of it was committed.
    #[error("the lease of `{name}` is held by another owner")]
    LeaseLost {
        /// The runner (projection, consumer, relay, saga) whose lease was lost.
        name: String,
    },
    /// The database itself is damaged: the backend reports a malformed file (`SQLITE_CORRUPT`,
    /// `SQLITE_NOTADB`), an integrity check failed, or a position of the log is missing. Reads
    /// stop here rather than skip an event.
    #[error("the event store's database is corrupt: {reason}")]
    CorruptDatabase {
        /// What is known: the file, and what was found.
        reason: String,
    },
    /// The store cannot be written: it was opened read-only, or its file, directory or file
    /// system is read-only. Nothing was written.
    #[error("the event store is read-only")]
    ReadOnly(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The store could not be reached or was busy (connection refused or lost before anything
    /// was sent, pool or lock timeout, serialization failure, deadlock, `SQLITE_BUSY`): nothing
    /// was written, and the same call may succeed later.
    #[error("event store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The connection failed after an append was sent: it may or may not have committed.
    ///
    /// Re-sending the same batch (same event ids) is safe: a batch already stored is not stored
    /// again and returns its original result. [`Repository`](crate::Repository) does this itself.
    #[error("the outcome of the append is unknown")]
    Ambiguous(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The backend failed (I/O, database error) in a way a retry is not expected to fix.
    #[error("event store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    /// Wraps an error after which the same call may succeed later.
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }

    /// Wraps an error that leaves the outcome of an append unknown.
    pub fn ambiguous(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Ambiguous(Box::new(error))
    }

    /// Whether retrying the same call may succeed: the store was unavailable or busy, or the
    /// outcome is unknown (retry the same batch: a re-send is recognised and not stored twice).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Ambiguous(_))
    }

    /// Whether an append may have committed although it returned this error.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Self::Ambiguous(_))
    }
}

/// Storage of event streams, with optimistic concurrency.
///
/// Implementations are cheap to clone (shared handles) and usable from any task.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Events per page that suit this store when a whole stream is read (rehydration): larger
    /// where a round trip costs more.
    const STREAM_PAGE: usize = 1024;

    /// Appends `events` to `stream_id` if the stream is at `expected`, all or nothing.
    fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> + Send;

    /// Appends to several streams at once, all or nothing: every part's stream must be at its
    /// expected version, or nothing is written and the first failing part's error (a
    /// [`StoreError::VersionConflict`] naming its stream) is returned. The results are in the
    /// order of `parts`. A part without events only checks its stream's version
    /// ([`StreamAppend::unchanged`]), so a decision on several streams' states commits only if
    /// none of them moved. A stream may appear once.
    ///
    /// [`MemoryStore`] appends under its lock, [`SqliteStore`] in one transaction of its single
    /// writer, `PostgresStore` in one transaction that takes the streams' locks in sorted order
    /// (so two multi-stream appends never deadlock). A re-sent part (every event id already
    /// stored, in order, in its stream) returns its original result, as [`append`](Self::append).
    ///
    /// ```
    /// use eventcore::store::StreamAppend;
    /// use eventcore::{EventStore, ExpectedVersion, MemoryStore, NewEvent, StoreError};
    /// # use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(DomainEvent, Serialize, Deserialize, schemars::JsonSchema)]
    /// # #[event(aggregate = "book")]
    /// # struct BookLent { member: String }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let lend = |book: &str| NewEvent::encode(&BookLent { member: "ada".into() }, "book", book);
    /// store.append("member-ada", ExpectedVersion::Any, vec![lend("b0")?]).await?;
    /// // Lend only if the member's stream is still at version 1.
    /// let results = store
    ///     .append_all(vec![
    ///         StreamAppend::new("book-b1", ExpectedVersion::NoStream, vec![lend("b1")?]),
    ///         StreamAppend::unchanged("member-ada", 1),
    ///     ])
    ///     .await?;
    /// assert_eq!(results[0].last_version, 1);
    /// // The member moved on: nothing of the next one is written.
    /// let stale = store
    ///     .append_all(vec![
    ///         StreamAppend::new("book-b2", ExpectedVersion::NoStream, vec![lend("b2")?]),
    ///         StreamAppend::unchanged("member-ada", 0),
    ///     ])
    ///     .await;
    /// assert!(matches!(stale, Err(StoreError::VersionConflict { .. })));
    /// assert_eq!(store.stream_version("book-b2").await?, 0);
    /// # Ok(()) }
    /// ```
    fn append_all(
        &self,
        parts: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Vec<AppendResult>, StoreError>> + Send;

    /// Reads up to `limit` events of `stream_id` with a stream version of at least `from_version`.
    fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Calls `visit` on each event of the page [`read_stream`](Self::read_stream) would return,
    /// in order, stopping at its first error; what the page held, to know whether to go on.
    ///
    /// Stores that can lend their events without copying them override it: the repository
    /// rehydrates aggregates through it.
    fn visit_stream<E: Send>(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
        mut visit: impl FnMut(&RecordedEvent) -> Result<(), E> + Send,
    ) -> impl Future<Output = Result<Result<StreamPage, E>, StoreError>> + Send {
        async move {
            let page = self.read_stream(stream_id, from_version, limit).await?;
            for event in &page {
                if let Err(error) = visit(event) {
                    return Ok(Err(error));
                }
            }
            Ok(Ok(StreamPage {
                events: page.len(),
                bytes: page_bytes(&page),
            }))
        }
    }

    /// Calls `visit` on each event of the page [`visit_stream`](Self::visit_stream) would visit,
    /// lending only what rehydrating an aggregate reads of it ([`StreamRecord`]).
    ///
    /// The repository rehydrates through it. Stores that can read fewer columns than a whole
    /// [`RecordedEvent`] override it; the provided method lends the fields of `visit_stream`'s
    /// events. An override that collects nothing (it lends each row as it arrives) may leave out the
    /// [`MAX_PAGE_BYTES`] bound: its page then ends only at `limit` (and [`StreamPage::is_last`]
    /// stays right, at worst asking for one more, empty, page).
    fn visit_stream_records<E: Send>(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
        mut visit: impl FnMut(StreamRecord<'_>) -> Result<(), E> + Send,
    ) -> impl Future<Output = Result<Result<StreamPage, E>, StoreError>> + Send {
        async move {
            self.visit_stream(stream_id, from_version, limit, |event| {
                visit(StreamRecord::of(event))
            })
            .await
        }
    }

    /// Reads up to `limit` events of the whole store with a global position of at least `from_position`.
    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The current version of `stream_id` (0 if it does not exist).
    fn stream_version(&self, stream_id: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Reads the next batch of the whole log from `from_position`, for checkpointed readers.
    ///
    /// Unlike [`read_all`](Self::read_all), the batch is *settled*: it never returns a position
    /// while a transaction that could still commit a lower one is running, so a reader that
    /// resumes at [`LogBatch::next_position`] never skips an event that commits late. Only events
    /// that `filter` matches are returned (the store skips the others without reading their
    /// payloads), at most `limit` of them and, past the first, at most [`MAX_PAGE_BYTES`] of
    /// payload.
    fn read_batch(
        &self,
        from_position: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> impl Future<Output = Result<LogBatch, StoreError>> + Send;

    /// The highest global position committed so far (0 for an empty store): the head that
    /// readers measure their lag against.
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The stored event with id `event_id`, if any: how a writer whose append had an unknown
    /// outcome learns whether it committed.
    fn find_event(
        &self,
        event_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` streams whose id starts with `prefix` (`""` for all) and sorts after
    /// `after` (to page on from the last one seen), in id order, each with its version: for
    /// tools and operators.
    ///
    /// The provided method reads the whole log; SQLite and PostgreSQL answer from an index.
    fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send {
        async move {
            let mut streams = std::collections::BTreeMap::<String, u64>::new();
            let mut from = 1;
            loop {
                let page = self.read_all(from, 1024).await?;
                let Some(last) = page.last() else { break };
                from = last.global_position + 1;
                for event in &page {
                    if event.stream_id.starts_with(prefix)
                        && after.is_none_or(|after| event.stream_id.as_str() > after)
                    {
                        let version = streams.entry(event.stream_id.clone()).or_default();
                        *version = (*version).max(event.stream_version);
                    }
                }
            }
            Ok(streams
                .into_iter()
                .take(limit)
                .map(|(stream_id, version)| StreamInfo { stream_id, version })
                .collect())
        }
    }

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

/// What rehydration reads of one stored event of a stream, lent by
/// [`EventStore::visit_stream_records`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRecord<'a> {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Its version in the stream (from 1).
    pub stream_version: u64,
    /// Its stored type name.
    pub event_type: &'a str,
    /// The schema version of its payload.
    pub event_version: u32,
    /// Its encoded payload.
    pub payload: &'a [u8],
}

impl<'a> StreamRecord<'a> {
    /// The fields of `event` that rehydration reads.
    pub fn of(event: &'a RecordedEvent) -> Self {
        Self {
            event_id: event.event_id,
            stream_version: event.stream_version,
            event_type: &event.event_type,
            event_version: event.event_version,
            payload: &event.payload,
        }
    }
}

/// A stream as [`EventStore::list_streams`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's id.
    pub stream_id: String,
    /// Its version: the stream version of its last event.
    pub version: u64,
}

/// Most payload bytes a read returns in one page beyond its first event (8 MiB).
///
/// Reads stop a page early once its payloads reach this size, so a page of large events stays
/// bounded in memory. A page shorter than its `limit` whose payloads are below this size is the
/// last one: see [`page_is_last`].
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Whether `page`, read with `limit`, is known to be the end of what there is to read.
pub fn page_is_last(page: &[RecordedEvent], limit: usize) -> bool {
    page.len() < limit && page_bytes(page) < MAX_PAGE_BYTES
}

/// What one page of a stream held: as many events, with as many payload bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamPage {
    /// Events in the page.
    pub events: usize,
    /// Their payload bytes.
    pub bytes: usize,
}

impl StreamPage {
    /// Whether the page, read with `limit`, is the end of the stream (as [`page_is_last`]).
    pub fn is_last(&self, limit: usize) -> bool {
        self.events < limit && self.bytes < MAX_PAGE_BYTES
    }
}

/// Total payload bytes of `page`.
fn page_bytes(page: &[RecordedEvent]) -> usize {
    page.iter().map(|e| e.payload.len()).sum()
}

/// Keeps the prefix of `events` that a page bounded by [`MAX_PAGE_BYTES`] holds: every event
/// until the payloads reach the bound (at least one).
pub(crate) fn bound_page_bytes(events: &mut Vec<RecordedEvent>) {
    let mut bytes = 0usize;
    let keep = events
        .iter()
        .position(|e| {
            let full = bytes >= MAX_PAGE_BYTES;
            bytes = bytes.saturating_add(e.payload.len());
            full
        })
        .unwrap_or(events.len());
    events.truncate(keep);
}

/// Which events a [`read_batch`](EventStore::read_batch) returns: all, or those of some types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Sorted, deduplicated types; `None` for every type.
    event_types: Option<std::sync::Arc<[String]>>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only events of these types (as stored: list every type name a handler reads, old ones
    /// included).
    pub fn event_types<I, T>(types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut types: Vec<String> = types.into_iter().map(Into::into).collect();
        types.sort_unstable();
        types.dedup();
        Self {
            event_types: Some(types.into()),
        }
    }

    /// The types this filter keeps, sorted; `None` when it keeps everything.
    pub fn types(&self) -> Option<&[String]> {
        self.event_types.as_deref()
    }

    /// Whether an event of `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        self.event_types
            .as_deref()
            .is_none_or(|types| types.binary_search_by(|t| t.as_str().cmp(event_type)).is_ok())
    }
}

/// One settled batch of the whole log, read by [`EventStore::read_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogBatch {
    /// The events the filter kept, in position order.
    pub events: Vec<RecordedEvent>,
    /// Where the next batch starts: every position below it has been delivered, filtered out or
    /// is known never to appear (a rolled-back append). A checkpoint stores this value.
    pub next_position: u64,
    /// The highest position committed when the batch was read.
    pub head: u64,
}

impl LogBatch {
    /// Whether the reader has reached the head: nothing committed was left unread.
    pub fn caught_up(&self) -> bool {
        self.next_position > self.head
    }

    /// Events between `next_position` and the head still to read.
    pub fn lag(&self) -> u64 {
        (self.head + 1).saturating_sub(self.next_position)
    }
}

/// The result of the batch `events` if it is already stored whole, in order, in `stream_id`
/// (a re-send after a lost reply): `stored` gives, for each event of the batch, where the event
/// with its id is stored (`None` when it is not).
pub(crate) fn resent_batch<'a>(
    stream_id: &str,
    stored: impl IntoIterator<Item = Option<(&'a str, u64, u64)>>,
) -> Option<AppendResult> {
    let mut result: Option<AppendResult> = None;
    for found in stored {
        let (stream, version, position) = found?;
        if stream != stream_id {
            return None;
        }
        match &mut result {
            None => {
                result = Some(AppendResult {
                    first_version: version,
                    last_version: version,
                    positions: vec![position],
                });
            }
            Some(result) => {
                if version != result.last_version + 1 {
                    return None;
                }
                result.last_version = version;
                result.positions.push(position);
            }
        }
    }
    result
}

/// Appends and reads inside a store transaction, so a caller can write its own rows (or
/// documents) and events in one commit: [`MemoryStore::transaction`], [`SqliteStore::transaction`].
///
/// An append that fails inside a unit of work leaves nothing of itself behind, and the caller
/// may go on with the transaction or give it up. [`Repository::execute_in`](crate::Repository::execute_in)
/// runs a command inside one.
pub trait UnitOfWork {
    /// Appends `events` to `stream_id` if the stream is at `expected`, as [`EventStore::append`].
    fn append(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Reads up to `limit` events of `stream_id` from `from_version`, seeing this transaction's appends.
    fn read_stream(
        &mut self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
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

/// Checks a stream id: non-empty, not only whitespace, at most [`MAX_STREAM_ID_BYTES`], no
/// control characters, and nothing that spoofs or breaks a display: bidirectional overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069), zero-width characters (U+200B–U+200D, U+2060), a
/// byte-order mark (U+FEFF), line and paragraph separators (U+2028, U+2029).
///
/// Anything else (quotes, unicode, SQL metacharacters) is stored as is.
pub fn validate_stream_id(stream_id: &str) -> Result<(), StoreError> {
    let reason = if stream_id.is_empty() {
        "it is empty"
    } else if stream_id.len() > MAX_STREAM_ID_BYTES {
        "it is longer than 512 bytes"
    } else if stream_id.chars().any(char::is_control) {
        "it contains a control character"
    } else if stream_id.chars().all(char::is_whitespace) {
        "it is only whitespace"
    } else if stream_id.chars().any(is_deceptive) {
        "it contains a bidirectional, zero-width, byte-order-mark or separator character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidStreamId {
        stream_id: stream_id.chars().take(64).collect(),
        reason,
    })
}

/// Characters that reorder, hide or break the text around them when an id is displayed.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Largest metadata of one event, in bytes of its keys and values (64 KiB).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Largest batch accepted, in bytes of its payloads and metadata (64 MiB): a bigger one fails
/// before anything is sent, rather than as a lost connection.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Largest event version a store accepts (stores keep it as a 32-bit signed integer).
pub const MAX_EVENT_VERSION: u32 = i32::MAX as u32;

/// Checks an append before any backend sees it: the stream id, and every event's type, version,
/// text fields, metadata size ([`MAX_METADATA_BYTES`]) and payload size, and the batch's size
/// ([`DEFAULT_MAX_BATCH_BYTES`]).
pub fn validate_append(
    stream_id: &str,
    events: &[NewEvent],
    max_payload_bytes: usize,
) -> Result<(), StoreError> {
    validate_stream_id(stream_id)?;
    let mut batch_bytes = 0usize;
    for (index, event) in events.iter().enumerate() {
        let invalid = |reason: String| StoreError::InvalidEvent {
            stream_id: stream_id.to_owned(),
            index,
            reason,
        };
        if event.event_type.is_empty() {
            return Err(invalid("the event type is empty".to_owned()));
        }
        if !(1..=MAX_EVENT_VERSION).contains(&event.event_version) {
            return Err(invalid(format!(
                "event version {} is outside 1..={MAX_EVENT_VERSION}",
                event.event_version
            )));
        }
        let texts = [
            ("event type", Some(event.event_type.as_str())),
            ("aggregate type", Some(event.aggregate_type.as_str())),
            ("aggregate id", Some(event.aggregate_id.as_str())),
            ("correlation id", event.correlation_id.as_deref()),
            ("causation id", event.causation_id.as_deref()),
        ];
        let metadata = event.metadata.iter().flat_map(|(k, v)| {
            [
                ("metadata key", Some(k.as_str())),
                ("metadata value", Some(v.as_str())),
            ]
        });
        if let Some((field, _)) = texts
            .into_iter()
            .chain(metadata)
            .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        {
            return Err(invalid(format!("the {field} contains a NUL character")));
        }
        let metadata_bytes: usize = event.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "its metadata is {metadata_bytes} bytes, over the limit of {MAX_METADATA_BYTES}"
            )));
        }
        batch_bytes = batch_bytes
            .saturating_add(event.payload.len())
            .saturating_add(metadata_bytes);
        if batch_bytes > DEFAULT_MAX_BATCH_BYTES {
            return Err(StoreError::BatchTooLarge {
                stream_id: stream_id.to_owned(),
                events: events.len(),
                limit: DEFAULT_MAX_BATCH_BYTES,
            });
        }
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
