//! The embedded SQLite event store: one file, nothing to install, durable by default.

mod readers;
mod row;
mod schema;
mod snapshots;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use self::readers::Readers;
use super::{
    validate_append, validate_stream_id, AppendResult, EventStore, ExpectedVersion, Snapshot, StoreError,
    DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::subscription::{ordered_subscription, EventStream, SubscribeAll};

/// How long a commit waits for the disk, traded against append throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// `PRAGMA synchronous = FULL`: every commit is synced to disk before `append` returns, so
    /// an acknowledged event survives a power loss or an OS crash. The default: other
    /// components act on committed events, so losing one after the fact is not acceptable.
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL`: commits survive a crash of the process, but the last
    /// few may be lost (never corrupted) on a power loss or an OS crash. Faster for small
    /// batches, where the sync per commit dominates.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Settings of a [`SqliteStore`] beyond its path; `SqliteOptions::default()` suits most uses.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    durability: Durability,
    busy_timeout: Duration,
    max_readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            max_readers: 4,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Durability::Full`], a 5 s busy timeout, 4 read connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long a commit waits for the disk.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets how long a connection waits for a lock held by another process before failing.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets how many reads run at once, each on its own connection (at least 1).
    pub fn max_readers(mut self, readers: usize) -> Self {
        self.max_readers = readers.max(1);
        self
    }
}

/// The embedded durable event store: bundled SQLite, one file, nothing to install.
///
/// ```
/// use eventcore::store::{EventStore, ExpectedVersion, SqliteStore};
/// use eventcore::NewEvent;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("events.db")).await?;
///
/// let event = NewEvent {
///     event_id: uuid::Uuid::now_v7(),
///     event_type: "lamp.switched".into(),
///     event_version: 1,
///     aggregate_type: "lamp".into(),
///     aggregate_id: "hall".into(),
///     occurred_at: chrono::Utc::now(),
///     correlation_id: None,
///     causation_id: None,
///     metadata: Default::default(),
///     payload: br#"{"on":true}"#.to_vec().into(),
/// };
/// let written = store.append("lamp-hall", ExpectedVersion::NoStream, vec![event]).await?;
/// assert_eq!((written.first_version, written.last_version), (1, 1));
///
/// // A writer that read an older version is refused, with both versions in the error.
/// let stale = store.append("lamp-hall", ExpectedVersion::Exact(0), vec![]).await;
/// assert!(stale.is_err());
///
/// drop(store);
/// let reopened = SqliteStore::open(dir.path().join("events.db")).await?;
/// let events = reopened.read_stream("lamp-hall", 1, 100).await?;
/// assert_eq!(events[0].payload_json()?, serde_json::json!({ "on": true }));
/// # Ok(()) }
/// ```
///
/// # How it works
///
/// - The database runs in WAL mode: one writer connection, behind an async mutex, appends one
///   batch per `BEGIN IMMEDIATE` transaction; up to `max_readers` read connections (see
///   [`SqliteOptions`]) read committed snapshots at the same time without waiting for it.
/// - Every call runs its SQLite work on `tokio::task::spawn_blocking`, never on the async
///   executor, so it needs a tokio runtime.
/// - Global positions (the rowid: the highest so far + 1, checked for every batch) are assigned
///   inside the write transaction under the single writer, so they grow in commit order: a
///   reader following `read_all` never misses an event that commits later with a lower position.
/// - Stream ids live once, in a `streams` table that maps each id (text, kept verbatim) to
///   an integer `stream_key`; events carry the key, so the `UNIQUE (stream_key, stream_version)`
///   index holds two integers. A stream's current version is the highest version in that
///   index, not a second copy that could disagree.
/// - `UNIQUE (stream_key, stream_version)`, `UNIQUE (event_id)` and `UNIQUE (stream_id)` are
///   enforced by the database.
/// - A batch is inserted 16 rows per `INSERT` statement (the rest one by one), which keeps the
///   index cursors open from row to row; a violated constraint rolls the whole batch back and
///   is then traced to the first offending event.
/// - Every value read is checked; a malformed row, or an event whose key names no stream, is
///   [`StoreError::Corrupt`] naming the stream and version.
/// - Snapshots live in their own table, one per stream; an older snapshot never replaces a newer one.
/// - Durability is [`Durability::Full`] unless chosen otherwise.
/// - The schema version lives in `PRAGMA user_version` and is migrated on open; a file with a
///   newer schema is refused rather than misread.
/// - An `append` whose future is dropped may still commit; appending the same events again
///   then fails with [`StoreError::DuplicateEventId`] instead of storing them twice.
///
/// Clones share the connections; the file closes when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    max_payload_bytes: usize,
}

struct Inner {
    path: Option<PathBuf>,
    /// The last global position, sent after every commit (wakes subscriptions).
    commits: watch::Sender<u64>,
    /// `Some` until `Drop`, which hands the connections to a blocking thread to close.
    connections: Option<Connections>,
}

struct Connections {
    writer: Arc<Mutex<Connection>>,
    /// `None` for an in-memory database, which only the writer connection can see.
    readers: Option<Arc<Readers>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing may checkpoint the WAL (disk I/O): keep it off the async executor.
        if let (Some(connections), Ok(runtime)) =
            (self.connections.take(), tokio::runtime::Handle::try_current())
        {
            drop(runtime.spawn_blocking(move || drop(connections)));
        }
    }
}

/// Page cache of the writer connection, in KiB.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// A stream's key and current version (the highest version of its events, read off the index).
const STREAM: &str = "SELECT s.stream_key, \
     COALESCE((SELECT MAX(e.stream_version) FROM events AS e WHERE e.stream_key = s.stream_key), 0) \
     FROM streams AS s WHERE s.stream_id = ?1";
const NEW_STREAM: &str = "INSERT INTO streams (stream_id) VALUES (?1)";
const LAST_POSITION: &str = "SELECT COALESCE(MAX(global_position), 0) FROM events";
const STORED_EVENT_ID: &str = "SELECT 1 FROM events WHERE event_id = ?1";

impl SqliteStore {
    /// Opens (creating it if needed) the store in the file at `path`, with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (creating it if needed) the store in the file at `path`.
    ///
    /// The path is taken literally (no `file:` URIs); `":memory:"` is the same as
    /// [`open_in_memory`](Self::open_in_memory).
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str() == ":memory:" {
            return Self::open_in_memory().await;
        }
        let opened = tokio::task::spawn_blocking(move || {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let mut writer = Connection::open_with_flags(&path, flags).map_err(StoreError::backend)?;
            configure_writer(&writer, &options, true)?;
            schema::migrate(&mut writer)?;
            let readers = Readers::new(path.clone(), options.busy_timeout, options.max_readers);
            Ok::<_, StoreError>((path, writer, readers))
        })
        .await
        .map_err(StoreError::backend)?;
        let (path, writer, readers) = opened?;
        Ok(Self::from_parts(Some(path), writer, Some(readers)))
    }

    /// Opens a private store in memory: nothing is written to disk, and reads share the one
    /// connection with writes. For tests that want SQLite's behaviour without a file.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let writer = tokio::task::spawn_blocking(|| {
            let mut writer = Connection::open_in_memory().map_err(StoreError::backend)?;
            configure_writer(&writer, &SqliteOptions::default(), false)?;
            schema::migrate(&mut writer)?;
            Ok::<_, StoreError>(writer)
        })
        .await
        .map_err(StoreError::backend)??;
        Ok(Self::from_parts(None, writer, None))
    }

    fn from_parts(path: Option<PathBuf>, writer: Connection, readers: Option<Readers>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                commits: watch::Sender::new(0),
                connections: Some(Connections {
                    writer: Arc::new(Mutex::new(writer)),
                    readers: readers.map(Arc::new),
                }),
            }),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// Sets the largest payload accepted, in bytes (default [`DEFAULT_MAX_PAYLOAD_BYTES`]).
    pub fn with_max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn connections(&self) -> Result<&Connections, StoreError> {
        // Only `Drop` takes the connections, and it runs once no handle is left.
        self.inner
            .connections
            .as_ref()
            .ok_or_else(|| StoreError::backend(Closed))
    }

    /// Runs `work` on the writer connection, on a blocking thread.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut writer = Arc::clone(&self.connections()?.writer).lock_owned().await;
        tokio::task::spawn_blocking(move || work(&mut writer))
            .await
            .map_err(StoreError::backend)?
    }

    /// Runs `work` on a read connection (the writer's, in memory), on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.connections()?.readers {
            Some(readers) => readers.run(work).await,
            None => self.write(move |conn| work(conn)).await,
        }
    }
}

/// The store was used after its connections were closed.
#[derive(Debug, thiserror::Error)]
#[error("the SQLite event store is closed")]
struct Closed;

fn configure_writer(conn: &Connection, options: &SqliteOptions, on_disk: bool) -> Result<(), StoreError> {
    conn.busy_timeout(options.busy_timeout)
        .map_err(StoreError::backend)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(StoreError::backend)?;
    // Appends touch the same index pages batch after batch: keep them cached (in KiB).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(StoreError::backend)?;
    if on_disk {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(StoreError::backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode; reads will wait for writes");
        }
    }
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(StoreError::backend)
}

/// The key and current version of `stream_id` as seen by `conn`; `None` when it was never written.
fn stream(conn: &Connection, stream_id: &str) -> Result<Option<(i64, u64)>, StoreError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached(STREAM)
        .and_then(|mut statement| {
            statement
                .query_row([stream_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::backend)?;
    let Some((key, version)) = row else {
        return Ok(None);
    };
    let version = u64::try_from(version).map_err(|_| StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version: 0,
        reason: format!("the highest stream_version is {version}"),
    })?;
    Ok(Some((key, version)))
}

/// The current version of `stream_id` as seen by `conn` (0 when it has no events).
fn current_version(conn: &Connection, stream_id: &str) -> Result<u64, StoreError> {
    Ok(stream(conn, stream_id)?.map_or(0, |(_, version)| version))
}

fn append_now(
    conn: &mut Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    // An empty batch only checks the expectation, so it needs no write lock.
    let behavior = if events.is_empty() {
        TransactionBehavior::Deferred
    } else {
        TransactionBehavior::Immediate
    };
    let tx = conn
        .transaction_with_behavior(behavior)
        .map_err(StoreError::backend)?;
    let known = stream(&tx, stream_id)?;
    let actual = known.map_or(0, |(_, version)| version);
    if !expected.accepts(actual) {
        return Err(StoreError::VersionConflict {
            stream_id: stream_id.to_owned(),
            expected,
            actual,
        });
    }
    let first_version = actual + 1;
    let result = |positions| AppendResult {
        first_version,
        last_version: actual + events.len() as u64,
        positions,
    };
    if events.is_empty() {
        return Ok(result(Vec::new()));
    }
    let overflow = || StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version: actual,
        reason: "the stream version would overflow".to_owned(),
    };
    let count = i64::try_from(events.len()).map_err(|_| overflow())?;
    let first = i64::try_from(first_version).map_err(|_| overflow())?;
    first.checked_add(count - 1).ok_or_else(overflow)?;
    let written = (|| {
        let stream_key = match known {
            Some((key, _)) => key,
            None => {
                tx.prepare_cached(NEW_STREAM)?.execute([stream_id])?;
                tx.last_insert_rowid()
            }
        };
        let last: i64 = tx
            .prepare_cached(LAST_POSITION)?
            .query_row([], |row| row.get(0))?;
        row::insert(&tx, stream_key, first, events)?;
        Ok((last, tx.last_insert_rowid()))
    })();
    let (before, last) = match written {
        Ok(positions) => positions,
        Err(error) => {
            tx.rollback().map_err(StoreError::backend)?;
            return Err(insert_error(error, conn, stream_id, expected, events));
        }
    };
    // SQLite gives each new row the highest rowid + 1, so the batch holds the positions after
    // `before`, in order; anything else (the rowid space exhausted) is refused, not misreported.
    if before.checked_add(count) != Some(last) {
        return Err(StoreError::backend(PositionsExhausted));
    }
    tx.commit().map_err(StoreError::backend)?;
    Ok(result(
        (1..=count)
            .map(|offset| (before + offset).unsigned_abs())
            .collect(),
    ))
}

/// The rowids after the last global position do not hold the batch.
#[derive(Debug, thiserror::Error)]
#[error("the SQLite event store has no consecutive global positions left for the batch")]
struct PositionsExhausted;

/// Maps a failed insert, after the rollback, to the store error a violated constraint means.
fn insert_error(
    error: rusqlite::Error,
    conn: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, Some(message)) = &error {
        if failure.code == ErrorCode::ConstraintViolation {
            if message.contains("events.event_id") {
                return match first_duplicate(conn, events) {
                    Ok(Some(event_id)) => StoreError::DuplicateEventId { event_id },
                    Ok(None) => StoreError::backend(error),
                    Err(other) => other,
                };
            }
            if message.contains("events.stream_version") {
                return match current_version(conn, stream_id) {
                    Ok(actual) => StoreError::VersionConflict {
                        stream_id: stream_id.to_owned(),
                        expected,
                        actual,
                    },
                    Err(other) => other,
                };
            }
        }
    }
    StoreError::backend(error)
}

/// The first event of the batch whose id repeats an earlier one of the batch or a stored one:
/// the row at which inserting one by one would have failed.
fn first_duplicate(conn: &Connection, events: &[NewEvent]) -> Result<Option<Uuid>, StoreError> {
    let mut stored = conn
        .prepare_cached(STORED_EVENT_ID)
        .map_err(StoreError::backend)?;
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id)
            || stored
                .exists([&event.event_id.as_bytes()[..]])
                .map_err(StoreError::backend)?
        {
            return Ok(Some(event.event_id));
        }
    }
    Ok(None)
}

/// A `SELECT` of every column, in the order [`row::decode`] reads them, followed by `$tail`.
macro_rules! select_events {
    ($tail:literal) => {
        concat!(
            "SELECT e.global_position, e.event_id, s.stream_id, e.stream_version, e.event_type, \
             e.event_version, e.aggregate_type, e.aggregate_id, e.occurred_at_secs, e.occurred_at_nanos, \
             e.correlation_id, e.causation_id, e.metadata, e.payload, e.stream_key \
             FROM events AS e LEFT JOIN streams AS s ON s.stream_key = e.stream_key ",
            $tail
        )
    };
}

const READ_STREAM: &str = select_events!(
    "WHERE e.stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1) \
     AND e.stream_version >= ?2 ORDER BY e.stream_version LIMIT ?3"
);
const READ_ALL: &str = select_events!("WHERE e.global_position >= ?1 ORDER BY e.global_position LIMIT ?2");

/// Runs a read query and decodes every row.
fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(StoreError::backend)?;
    let mut rows = statement.query(params).map_err(StoreError::backend)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::backend)? {
        events.push(row::decode(row)?);
    }
    Ok(events)
}

/// Reads a page of a stream, checking that its versions are consecutive: a missing row is
/// corruption, and rebuilding an aggregate without it would be silently wrong.
fn read_stream_now(
    conn: &Connection,
    stream_id: &str,
    from_version: i64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let events = query_events(conn, READ_STREAM, (stream_id, from_version, sql_limit(limit)))?;
    for (expected, event) in (from_version.max(1).unsigned_abs()..).zip(&events) {
        if event.stream_version != expected {
            return Err(StoreError::Corrupt {
                stream_id: stream_id.to_owned(),
                stream_version: expected,
                reason: format!(
                    "the version is missing; the next stored is {}",
                    event.stream_version
                ),
            });
        }
    }
    Ok(events)
}

/// A row limit in SQL terms (SQLite integers are signed).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.max_payload_bytes)?;
        let stream_id = stream_id.to_owned();
        let result = self
            .write(move |conn| append_now(conn, &stream_id, expected, &events))
            .await?;
        if let Some(&last) = result.positions.last() {
            self.inner
                .commits
                .send_modify(|position| *position = last.max(*position));
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let Ok(from_version) = i64::try_from(from_version) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stream_id = stream_id.to_owned();
        self.read(move |conn| read_stream_now(conn, &stream_id, from_version, limit))
            .await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let Ok(from_position) = i64::try_from(from_position) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read(move |conn| query_events(conn, READ_ALL, (from_position, sql_limit(limit))))
            .await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let stream_id = stream_id.to_owned();
        self.read(move |conn| current_version(conn, &stream_id)).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        validate_stream_id(&snapshot.stream_id)?;
        self.write(move |conn| snapshots::save(conn, &snapshot)).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.read(move |conn| snapshots::load(conn, &stream_id)).await
    }
}

/// The single writer assigns positions inside its transaction, so commits become visible in
/// position order and [`ordered_subscription`] is gap-free. Appends through this store wake
/// subscriptions at once; those of another process sharing the file are found by a poll.
impl SubscribeAll for SqliteStore {
    fn subscribe_all(&self, from_position: u64) -> EventStream {
        ordered_subscription(
            self.clone(),
            from_position,
            self.inner.commits.subscribe(),
            Some(OTHER_PROCESS_POLL),
        )
    }
}

/// How often a subscription looks for appends made by another process.
const OTHER_PROCESS_POLL: Duration = Duration::from_secs(1);
