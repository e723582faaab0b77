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
    validate_append, validate_append_all, validate_stream_id, AppendResult, EventFilter, EventStore,
    ExpectedVersion, LogBatch, Snapshot, StoreError, StreamAppend, StreamInfo, UnitOfWork,
    DEFAULT_MAX_PAYLOAD_BYTES, MAX_PAGE_BYTES,
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
    verify_on_open: bool,
    read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            max_readers: 4,
            verify_on_open: false,
            read_only: false,
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

    /// Runs `PRAGMA quick_check` when the store opens (off by default: it reads the whole file),
    /// so a damaged file is refused with [`StoreError::CorruptDatabase`] before anything is
    /// read from or appended to it.
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// Opens the file read-only, for tools and readers: nothing is migrated or written, and
    /// appends fail with [`StoreError::ReadOnly`]. The file must exist with the current schema.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
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
/// - Positions have no holes: a rowid is the highest + 1 (no `AUTOINCREMENT`), so an append
///   that rolls back takes none. Reads of the whole log (`read_all`, `read_batch`,
///   subscriptions) check it, and a missing position (a row lost to a damaged page, or deleted
///   by hand) stops them with [`StoreError::CorruptDatabase`] instead of stepping over it, as
///   does SQLite's own `SQLITE_CORRUPT` / `SQLITE_NOTADB`. [`SqliteOptions::verify_on_open`]
///   runs `PRAGMA quick_check` before the file is used.
/// - [`SqliteStore::open_read_only`] opens a file for tools and readers; writes to it, or to a
///   read-only file or directory, fail with [`StoreError::ReadOnly`].
/// - An `append` whose future is dropped may still commit; appending the same events again
///   then fails with [`StoreError::DuplicateEventId`] instead of storing them twice.
///
/// Clones share the connections; the file closes when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    max_payload_bytes: usize,
    read_only: bool,
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
const COUNT_RANGE: &str =
    "SELECT COUNT(*), MIN(global_position) FROM events WHERE global_position BETWEEN ?1 AND ?2";
const POSITIONS: &str =
    "SELECT global_position FROM events WHERE global_position BETWEEN ?1 AND ?2 ORDER BY global_position";
/// Streams by id from a prefix (`?1`) after an id (`?2`, or NULL), at most `?3`, with versions.
const LIST_STREAMS: &str = "SELECT s.stream_id, \
     (SELECT COALESCE(MAX(e.stream_version), 0) FROM events AS e WHERE e.stream_key = s.stream_key) AS version \
     FROM streams AS s WHERE substr(s.stream_id, 1, length(?1)) = ?1 AND (?2 IS NULL OR s.stream_id > ?2) \
     AND version > 0 ORDER BY s.stream_id LIMIT ?3";
const STORED_EVENT_ID: &str = "SELECT 1 FROM events WHERE event_id = ?1";
/// Where the event with an id is stored.
const STORED_AT: &str = "SELECT s.stream_id, e.stream_version, e.global_position \
     FROM events AS e JOIN streams AS s ON s.stream_key = e.stream_key WHERE e.event_id = ?1";

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
        let read_only = options.read_only;
        let opened = tokio::task::spawn_blocking(move || {
            let open = || {
                let flags = if read_only {
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
                } else {
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                };
                let mut writer = Connection::open_with_flags(&path, flags).map_err(sqlite_error)?;
                if read_only {
                    writer.busy_timeout(options.busy_timeout).map_err(sqlite_error)?;
                    writer
                        .pragma_update(None, "query_only", true)
                        .map_err(sqlite_error)?;
                    schema::check(&writer)?;
                } else {
                    configure_writer(&writer, &options, true)?;
                    if options.verify_on_open {
                        quick_check(&writer)?;
                    }
                    schema::migrate(&mut writer)?;
                }
                if read_only && options.verify_on_open {
                    quick_check(&writer)?;
                }
                Ok::<_, StoreError>(writer)
            };
            let writer = open().map_err(|error| in_file(error, Some(&path)))?;
            let readers = Readers::new(path.clone(), options.busy_timeout, options.max_readers);
            Ok::<_, StoreError>((path, writer, readers))
        })
        .await
        .map_err(StoreError::backend)?;
        let (path, writer, readers) = opened?;
        let mut store = Self::from_parts(Some(path), writer, Some(readers));
        store.read_only = read_only;
        Ok(store)
    }

    /// Opens the existing store in the file at `path` read-only, for tools and readers:
    /// appends fail with [`StoreError::ReadOnly`].
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default().read_only(true)).await
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Refuses a write to a store opened read-only.
    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly(Box::new(OpenedReadOnly)));
        }
        Ok(())
    }

    /// Opens a private store in memory: nothing is written to disk, and reads share the one
    /// connection with writes. For tests that want SQLite's behaviour without a file.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let writer = tokio::task::spawn_blocking(|| {
            let mut writer = Connection::open_in_memory().map_err(sqlite_error)?;
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
            read_only: false,
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

    /// Runs `work` inside one `BEGIN IMMEDIATE` transaction on the writer connection: the
    /// caller's own SQL (the transaction derefs to `rusqlite::Transaction`) and appends
    /// ([`UnitOfWork`](super::UnitOfWork)) commit together, or not at all when `work` returns
    /// `Err`. It runs on a blocking thread while other writers wait, so keep it short.
    /// Subscriptions are woken once it has committed.
    ///
    /// ```
    /// use eventcore::store::{ExpectedVersion, SqliteStore, StoreError, UnitOfWork};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = SqliteStore::open_in_memory().await?;
    /// let rows = store
    ///     .transaction(|tx| {
    ///         tx.execute_batch("CREATE TABLE IF NOT EXISTS notes (body TEXT)")
    ///             .and_then(|()| tx.execute("INSERT INTO notes VALUES ('kept')", []))
    ///             .map_err(StoreError::backend)
    ///     })
    ///     .await?;
    /// assert_eq!(rows, 1);
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, E>(
        &self,
        work: impl FnOnce(&mut SqliteTransaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writable()?;
        let max_payload_bytes = self.max_payload_bytes;
        let outcome = self
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sqlite_error)?;
                let mut tx = SqliteTransaction {
                    tx,
                    max_payload_bytes,
                    last_position: None,
                };
                match work(&mut tx) {
                    Ok(value) => {
                        let last = tx.last_position;
                        tx.tx.commit().map_err(sqlite_error)?;
                        Ok(Ok((value, last)))
                    }
                    // Dropping the transaction rolls it back.
                    Err(error) => Ok(Err(error)),
                }
            })
            .await
            .map_err(E::from)?;
        let (value, last) = outcome?;
        if let Some(last) = last {
            self.inner
                .commits
                .send_modify(|position| *position = last.max(*position));
        }
        Ok(value)
    }

    /// A receiver of the last position committed through this handle's process.
    pub(crate) fn commit_receiver(&self) -> watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// Runs `work` on a read connection (see [`read`](Self::read)), for other modules of the crate.
    pub(crate) async fn read_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read(work).await
    }

    /// Runs `work` on the writer connection (see [`write`](Self::write)), for other modules of the crate.
    pub(crate) async fn write_with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write(work).await
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
            .map_err(|error| in_file(error, self.path()))
    }

    /// Runs `work` on a read connection (the writer's, in memory), on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.connections()?.readers {
            Some(readers) => readers
                .run(work)
                .await
                .map_err(|error| in_file(error, self.path())),
            None => self.write(move |conn| work(conn)).await,
        }
    }
}

/// A write to a store opened with [`SqliteStore::open_read_only`].
#[derive(Debug, thiserror::Error)]
#[error("the SQLite store was opened read-only")]
struct OpenedReadOnly;

/// Runs `PRAGMA quick_check`: anything but `ok` is [`StoreError::CorruptDatabase`].
fn quick_check(conn: &Connection) -> Result<(), StoreError> {
    let mut statement = conn.prepare("PRAGMA quick_check(5)").map_err(sqlite_error)?;
    let findings = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(sqlite_error)?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::CorruptDatabase {
        reason: format!("PRAGMA quick_check found: {}", findings.join("; ")),
    })
}

/// The store was used after its connections were closed.
#[derive(Debug, thiserror::Error)]
#[error("the SQLite event store is closed")]
struct Closed;

fn configure_writer(conn: &Connection, options: &SqliteOptions, on_disk: bool) -> Result<(), StoreError> {
    conn.busy_timeout(options.busy_timeout).map_err(sqlite_error)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sqlite_error)?;
    // Appends touch the same index pages batch after batch: keep them cached (in KiB).
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(sqlite_error)?;
    if on_disk {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite refused WAL mode; reads will wait for writes");
        }
    }
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(sqlite_error)
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
        .map_err(sqlite_error)?;
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

/// Why a batch was not inserted, before the rollback lets it be explained.
enum Refused {
    /// The expectation failed at this version.
    Conflict(u64),
    /// A statement failed (a violated constraint, or the database).
    Sql(rusqlite::Error),
    /// Anything else, already explained.
    Store(StoreError),
}

impl From<rusqlite::Error> for Refused {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sql(error)
    }
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
    let tx = conn.transaction_with_behavior(behavior).map_err(sqlite_error)?;
    match insert_batch(&tx, stream_id, expected, events) {
        Ok(result) => {
            tx.commit().map_err(sqlite_error)?;
            Ok(result)
        }
        Err(refused) => {
            tx.rollback().map_err(sqlite_error)?;
            explain(refused, conn, stream_id, expected, events)
        }
    }
}

/// Checks the expectation and inserts the batch inside the caller's transaction.
fn insert_batch(
    tx: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult, Refused> {
    let known = stream(tx, stream_id).map_err(Refused::Store)?;
    let actual = known.map_or(0, |(_, version)| version);
    if !expected.accepts(actual) {
        return Err(Refused::Conflict(actual));
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
    let overflow = || Refused::Store(StoreError::backend(VersionsExhausted(stream_id.to_owned())));
    let count = i64::try_from(events.len()).map_err(|_| overflow())?;
    let first = i64::try_from(first_version).map_err(|_| overflow())?;
    first.checked_add(count - 1).ok_or_else(overflow)?;
    let stream_key = match known {
        Some((key, _)) => key,
        None => {
            tx.prepare_cached(NEW_STREAM)?.execute([stream_id])?;
            tx.last_insert_rowid()
        }
    };
    let before: i64 = tx
        .prepare_cached(LAST_POSITION)?
        .query_row([], |row| row.get(0))?;
    row::insert(tx, stream_key, first, events)?;
    let last = tx.last_insert_rowid();
    // SQLite gives each new row the highest rowid + 1, so the batch holds the positions after
    // `before`, in order; anything else (the rowid space exhausted) is refused, not misreported.
    if before.checked_add(count) != Some(last) {
        return Err(Refused::Store(StoreError::backend(PositionsExhausted)));
    }
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

/// A stream's versions would pass what SQLite's integers hold.
#[derive(Debug, thiserror::Error)]
#[error("the versions of stream `{0}` would overflow")]
struct VersionsExhausted(String);

/// Maps a refused batch, after the rollback, to its result: the original result of a re-sent
/// batch, or the store error that a violated constraint means.
fn explain(
    refused: Refused,
    conn: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendResult, StoreError> {
    let error = match refused {
        Refused::Store(error) => return Err(error),
        Refused::Conflict(actual) => StoreError::VersionConflict {
            stream_id: stream_id.to_owned(),
            expected,
            actual,
        },
        Refused::Sql(error) => match &error {
            rusqlite::Error::SqliteFailure(failure, Some(message))
                if failure.code == ErrorCode::ConstraintViolation =>
            {
                if message.contains("events.event_id") {
                    match first_duplicate(conn, events)? {
                        Some(event_id) => StoreError::DuplicateEventId { event_id },
                        None => sqlite_error(error),
                    }
                } else if message.contains("events.stream_version") {
                    StoreError::VersionConflict {
                        stream_id: stream_id.to_owned(),
                        expected,
                        actual: current_version(conn, stream_id)?,
                    }
                } else {
                    sqlite_error(error)
                }
            }
            _ => return Err(sqlite_error(error)),
        },
    };
    match resent(conn, stream_id, events)? {
        Some(original) => Ok(original),
        None => Err(error),
    }
}

/// The original result of `events` if the batch is already stored, whole, in `stream_id`.
fn resent(
    conn: &Connection,
    stream_id: &str,
    events: &[NewEvent],
) -> Result<Option<AppendResult>, StoreError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut statement = conn.prepare_cached(STORED_AT).map_err(sqlite_error)?;
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let found: Option<(String, i64, i64)> = statement
            .query_row([&event.event_id.as_bytes()[..]], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .map_err(sqlite_error)?;
        match found {
            Some((stream, version, position)) => {
                stored.push((stream, version.unsigned_abs(), position.unsigned_abs()));
            }
            None => return Ok(None),
        }
    }
    Ok(super::resent_batch(
        stream_id,
        stored.iter().map(|(s, v, p)| Some((s.as_str(), *v, *p))),
    ))
}

/// Maps a SQLite error: a busy or locked database is [`StoreError::Unavailable`] (retry later).
/// A damaged file (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) is [`StoreError::CorruptDatabase`].
pub(crate) fn sqlite_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::unavailable(error),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::CorruptDatabase {
            reason: error.to_string(),
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(Box::new(error)),
        _ => StoreError::backend(error),
    }
}

/// Names the file in a [`StoreError::CorruptDatabase`]; other errors pass unchanged.
fn in_file(error: StoreError, path: Option<&Path>) -> StoreError {
    match (error, path) {
        (StoreError::CorruptDatabase { reason }, Some(path)) => StoreError::CorruptDatabase {
            reason: format!("SQLite file {}: {reason}", path.display()),
        },
        (error, _) => error,
    }
}

/// Checks that `events`, read in position order from `from`, hold every position from `from`
/// on: SQLite gives each row the highest rowid + 1 and a rolled-back append takes none, so the
/// log has no holes, and a missing position means a damaged file.
fn check_contiguous(events: &[RecordedEvent], from: i64) -> Result<(), StoreError> {
    for (expected, event) in (from.max(1).unsigned_abs()..).zip(events) {
        if event.global_position != expected {
            return Err(missing_position(expected, event.global_position));
        }
    }
    Ok(())
}

fn missing_position(missing: u64, next: u64) -> StoreError {
    StoreError::CorruptDatabase {
        reason: format!("global position {missing} is missing; the next stored is {next}"),
    }
}

/// Checks that every position in `from..=to` is stored (for a filtered read, whose events
/// have holes of their own).
fn check_range(conn: &Connection, from: i64, to: i64) -> Result<(), StoreError> {
    let from = from.max(1);
    if to < from {
        return Ok(());
    }
    let (count, lowest): (i64, Option<i64>) = conn
        .prepare_cached(COUNT_RANGE)
        .and_then(|mut s| s.query_row([from, to], |row| Ok((row.get(0)?, row.get(1)?))))
        .map_err(sqlite_error)?;
    if count == to - from + 1 {
        return Ok(());
    }
    let missing = match lowest {
        Some(lowest) if lowest > from => from,
        _ => first_hole(conn, from, to)?,
    };
    Err(StoreError::CorruptDatabase {
        reason: format!(
            "global position {missing} is missing ({} of the {} positions {from}..={to} are stored)",
            count,
            to - from + 1
        ),
    })
}

/// The first position in `from..=to` that is not stored.
fn first_hole(conn: &Connection, from: i64, to: i64) -> Result<i64, StoreError> {
    let mut statement = conn.prepare_cached(POSITIONS).map_err(sqlite_error)?;
    let mut rows = statement.query([from, to]).map_err(sqlite_error)?;
    let mut expected = from;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let position: i64 = row.get(0).map_err(sqlite_error)?;
        if position != expected {
            break;
        }
        expected += 1;
    }
    Ok(expected)
}

/// The first event of the batch whose id repeats an earlier one of the batch or a stored one:
/// the row at which inserting one by one would have failed.
fn first_duplicate(conn: &Connection, events: &[NewEvent]) -> Result<Option<Uuid>, StoreError> {
    let mut stored = conn.prepare_cached(STORED_EVENT_ID).map_err(sqlite_error)?;
    let mut seen = HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id)
            || stored
                .exists([&event.event_id.as_bytes()[..]])
                .map_err(sqlite_error)?
        {
            return Ok(Some(event.event_id));
        }
    }
    Ok(None)
}

/// The inside of a [`SqliteStore::transaction`]: the caller's SQL (through `Deref` to the
/// `rusqlite::Transaction`) and appends, committed together.
pub struct SqliteTransaction<'c> {
    tx: rusqlite::Transaction<'c>,
    max_payload_bytes: usize,
    /// The highest position appended, to wake subscriptions after the commit.
    last_position: Option<u64>,
}

impl fmt::Debug for SqliteTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTransaction")
            .field("last_position", &self.last_position)
            .finish_non_exhaustive()
    }
}

impl<'c> std::ops::Deref for SqliteTransaction<'c> {
    type Target = rusqlite::Transaction<'c>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl super::UnitOfWork for SqliteTransaction<'_> {
    fn append(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.max_payload_bytes)?;
        // A savepoint, so that a refused batch leaves nothing of itself in the transaction.
        let savepoint = self.tx.savepoint().map_err(sqlite_error)?;
        let inserted = insert_batch(&savepoint, stream_id, expected, &events);
        let result = match inserted {
            Ok(result) => {
                savepoint.commit().map_err(sqlite_error)?;
                result
            }
            Err(refused) => {
                savepoint.finish().map_err(sqlite_error)?;
                explain(refused, &self.tx, stream_id, expected, &events)?
            }
        };
        if let Some(&last) = result.positions.last() {
            self.last_position = Some(self.last_position.map_or(last, |p| p.max(last)));
        }
        Ok(result)
    }

    fn read_stream(
        &mut self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match i64::try_from(from_version) {
            Ok(from_version) if limit > 0 => read_stream_now(&self.tx, stream_id, from_version, limit),
            _ => Ok(Vec::new()),
        }
    }
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

const SELECT_EVENTS: &str = select_events!("");
const READ_STREAM: &str = select_events!(
    "WHERE e.stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1) \
     AND e.stream_version >= ?2 ORDER BY e.stream_version LIMIT ?3"
);
const READ_ALL: &str = select_events!("WHERE e.global_position >= ?1 ORDER BY e.global_position LIMIT ?2");
const FIND_EVENT: &str = select_events!("WHERE e.event_id = ?1");

/// Runs a read query and decodes its rows, stopping once their payloads reach [`MAX_PAGE_BYTES`].
fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(sqlite_error)?;
    let mut rows = statement.query(params).map_err(sqlite_error)?;
    let mut events = Vec::new();
    let mut bytes = 0usize;
    while bytes < MAX_PAGE_BYTES {
        let Some(row) = rows.next().map_err(sqlite_error)? else {
            break;
        };
        let event = row::decode(row)?;
        bytes = bytes.saturating_add(event.payload.len());
        events.push(event);
    }
    Ok(events)
}

/// The `SELECT` of a settled batch with `types` filtered types (0: no filter).
fn read_batch_sql(types: usize) -> String {
    if types == 0 {
        return READ_ALL.to_owned();
    }
    let list = (0..types)
        .map(|i| format!("?{}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} WHERE e.global_position >= ?1 AND e.event_type IN ({list}) ORDER BY e.global_position LIMIT ?2",
        SELECT_EVENTS
    )
}

/// Reads a settled batch: the head and the events in one read transaction, so that no commit
/// falls between them (commits are in position order under the single writer).
fn read_batch_now(
    conn: &Connection,
    from: i64,
    filter: &EventFilter,
    limit: usize,
) -> Result<LogBatch, StoreError> {
    let tx = conn.unchecked_transaction().map_err(sqlite_error)?;
    let head: i64 = tx
        .prepare_cached(LAST_POSITION)
        .and_then(|mut s| s.query_row([], |row| row.get(0)))
        .map_err(sqlite_error)?;
    let types = filter.types().unwrap_or_default();
    let sql = read_batch_sql(types.len());
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(types.len() + 2);
    let limit_sql = sql_limit(limit);
    params.push(&from);
    params.push(&limit_sql);
    params.extend(types.iter().map(|t| t as &dyn rusqlite::ToSql));
    let events = query_events(&tx, &sql, params.as_slice())?;
    let cut =
        events.len() == limit || events.iter().map(|e| e.payload.len()).sum::<usize>() >= MAX_PAGE_BYTES;
    let next_position = match events.last() {
        Some(last) if cut => last.global_position + 1,
        _ => (head.unsigned_abs() + 1).max(from.unsigned_abs()),
    };
    // Every position the batch steps over must be stored: a hole is a damaged file.
    if types.is_empty() {
        check_contiguous(&events, from)?;
    } else {
        check_range(&tx, from, i64::try_from(next_position).unwrap_or(i64::MAX) - 1)?;
    }
    drop(tx);
    let head = head.unsigned_abs();
    Ok(LogBatch {
        events,
        next_position,
        head,
    })
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
        self.writable()?;
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

    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        validate_append_all(&parts, self.max_payload_bytes)?;
        // One transaction of the single writer: a failing part rolls back the parts before it.
        self.transaction(move |tx| {
            parts
                .into_iter()
                .map(|part| tx.append(&part.stream_id, part.expected, part.events))
                .collect()
        })
        .await
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
        self.read(move |conn| {
            let events = query_events(conn, READ_ALL, (from_position, sql_limit(limit)))?;
            check_contiguous(&events, from_position)?;
            Ok(events)
        })
        .await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let stream_id = stream_id.to_owned();
        self.read(move |conn| current_version(conn, &stream_id)).await
    }

    async fn read_batch(
        &self,
        from_position: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        let from = i64::try_from(from_position.max(1)).unwrap_or(i64::MAX);
        if limit == 0 || filter.types().is_some_and(<[String]>::is_empty) {
            // Nothing to return: only the head moves the reader on.
            let head = self.head_position().await?;
            return Ok(LogBatch {
                events: Vec::new(),
                next_position: if limit == 0 {
                    from.unsigned_abs()
                } else {
                    (head + 1).max(from.unsigned_abs())
                },
                head,
            });
        }
        let filter = filter.clone();
        self.read(move |conn| read_batch_now(conn, from, &filter, limit))
            .await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(LAST_POSITION)
                .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
                .map(i64::unsigned_abs)
                .map_err(sqlite_error)
        })
        .await
    }

    async fn find_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.read(move |conn| {
            let mut found = query_events(conn, FIND_EVENT, [&event_id.as_bytes()[..]])?;
            Ok(found.pop())
        })
        .await
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
        self.read(move |conn| {
            conn.prepare_cached(LIST_STREAMS)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![prefix, after, sql_limit(limit)], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(sqlite_error)
                .map(|rows| {
                    rows.into_iter()
                        .map(|(stream_id, version)| StreamInfo {
                            stream_id,
                            version: version.unsigned_abs(),
                        })
                        .collect()
                })
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.writable()?;
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
