//! The PostgreSQL event store (feature `postgres`).
//!
//! [`PostgresStore`] keeps events in one schema of a PostgreSQL database (default `eventcore`;
//! choose another with [`PostgresStoreBuilder::schema`] so several stores or test runs share one
//! database). The schema is created and upgraded by embedded, versioned migrations the first
//! time a store connects; concurrent starters queue on an advisory lock.
//!
//! - **Append** is one round trip: a call of the schema's `append_events` function, which locks
//!   the stream's row (writers of one stream queue, writers of different streams never meet),
//!   checks the expected version and inserts the whole batch from arrays. It runs in a
//!   transaction, so a lost connection leaves the whole batch or nothing. A mismatch is
//!   [`StoreError::VersionConflict`] with both versions; nothing is written.
//! - **Event ids** are unique (a database constraint). Re-sending a batch whose ids are already
//!   stored fails with [`StoreError::DuplicateEventId`] and writes nothing: a retry after an
//!   unknown outcome learns that its first attempt committed, and no event is stored twice.
//! - **Payloads** are stored as `bytea`, byte for byte; metadata as `jsonb`; `occurred_at` as
//!   `timestamptz`, which keeps microseconds (finer digits are truncated; `NewEvent::encode`
//!   already truncates to microseconds, so envelopes round-trip exactly).
//! - **Reads** by stream and by global position are paged by their `limit`. `read_all` shows what
//!   has committed, which may leave a lower position still to come: to follow the log, use
//!   `subscribe_all`.
//! - **Subscriptions** to the whole store never skip an event that commits late with a lower
//!   position; see [`SubscribeAll`](crate::subscription::SubscribeAll) and the notes below.
//!
//! # Why the subscription never skips an event
//!
//! Global positions come from a sequence, so a writer can draw position 7 and commit after a
//! writer that drew 8. A reader that advanced past 8 would never see 7. The subscription reads
//! pages of events together with its snapshot's `xmin` (`pg_current_snapshot()`: every
//! transaction id below it has ended) and delivers only a gap-free run of positions. At a gap
//! (position `n` missing while a later row `r` is visible) it takes a transaction id `X`
//! (`pg_current_xact_id()`, in a statement after the page's) and waits:
//!
//! 1. `append_events` takes its transaction id before drawing any position, and the sequence
//!    hands positions out in time order (`CACHE 1`).
//! 2. Every missing position below `r` was drawn before `r` was, and `r` had committed before
//!    the page's snapshot; so each writer owning one had its transaction id before `X` was
//!    assigned, and ids are assigned in increasing order: each is below `X`.
//! 3. Once a later snapshot has `xmin > X`, every such writer has ended. A position still
//!    missing then belongs to a rolled-back (or failed) append and never appears: the
//!    subscription steps over it. If it appears first, it is delivered in order.
//!
//! (A snapshot's `xmax` would not do as the bound: it is one past the newest *completed*
//! transaction, and a writer still running may hold an id above it.)
//!
//! The subscription is woken by `LISTEN`/`NOTIFY` (`append` sends a notification right after
//! its commit, pipelined on the same connection, so it costs no extra round trip and writers do
//! not queue on PostgreSQL's notification lock), with a fallback poll
//! ([`PostgresStoreBuilder::poll_interval`]) for what sends no notification: a rolled-back
//! append, an append inside the caller's transaction (see
//! [`PostgresStore::notify_subscribers`]), or a store built from a pool without a
//! [`listen_config`](PostgresStoreBuilder::listen_config). A gap therefore waits at most until
//! the transactions running when it was seen have ended; a long-running writing transaction
//! anywhere in the cluster delays (never breaks) delivery past a gap.
//!
//! Everything written to the events table must go through `append_events` (or
//! [`PostgresStore::append_in_transaction`]), which keeps rule 1. Subscriptions take
//! transaction ids, so they read from the primary, not from a hot standby.
//!
//! Connections come from a `deadpool-postgres` pool that recycles them without a test query:
//! after the server drops connections (a restart), the next call on each stale one fails with
//! [`StoreError::Backend`] and the pool replaces it; an append that failed so is safe to retry,
//! since its event ids are unique.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::{
    validate_append, AppendResult, EventStore, ExpectedVersion, Snapshot, StoreError,
    DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};

mod row;
mod schema;
mod snapshots;
mod subscription;

pub use deadpool_postgres;
pub use tokio_postgres;

/// Default schema name.
pub const DEFAULT_SCHEMA: &str = "eventcore";

/// Default fallback poll interval of subscriptions.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A PostgreSQL error, shown with the server's message (the driver's own text is only "db error").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PostgresError {
    message: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl PostgresError {
    /// The underlying driver or pool error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

/// Wraps a driver or pool error as [`StoreError::Backend`], keeping the server's message.
pub(crate) fn backend<E>(error: E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut message = error.to_string();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    if let Some(db) = (&error as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
        if let Some(db) = db.as_db_error() {
            message = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            cause = None;
        }
    }
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    StoreError::Backend(Box::new(PostgresError {
        message,
        source: Box::new(error),
    }))
}

/// An event store in a PostgreSQL schema; clones share one connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), eventcore::StoreError> {
/// use eventcore::store::postgres::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
/// let tenant = PostgresStore::builder()
///     .schema("tenant_42")
///     .connect("postgres://postgres@127.0.0.1:5432/app")
///     .await?;
/// # let _ = (store, tenant); Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    sql: schema::Statements,
    channel: String,
    listen_config: Option<tokio_postgres::Config>,
    max_payload_bytes: usize,
    poll_interval: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("max_payload_bytes", &self.inner.max_payload_bytes)
            .finish_non_exhaustive()
    }
}

/// A configuration the store cannot use.
#[derive(Debug, thiserror::Error)]
pub enum PostgresConfigError {
    /// The schema name is not a plain lower-case identifier of at most 48 bytes.
    #[error("invalid schema name {0:?}: use [a-z_][a-z0-9_]*, at most 48 bytes, not starting with `pg_`")]
    InvalidSchemaName(String),
    /// The connection URL cannot be parsed.
    #[error("invalid PostgreSQL connection string: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The connection pool cannot be built.
    #[error("cannot build the connection pool: {0}")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// Options of a [`PostgresStore`]; finish with [`connect`](Self::connect) or
/// [`from_pool`](Self::from_pool).
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    schema: String,
    max_payload_bytes: usize,
    poll_interval: Duration,
    pool_size: usize,
    listen_config: Option<tokio_postgres::Config>,
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            poll_interval: DEFAULT_POLL_INTERVAL,
            pool_size: 16,
            listen_config: None,
        }
    }
}

impl PostgresStoreBuilder {
    /// The schema holding the store's tables (default `eventcore`): `[a-z_][a-z0-9_]*`.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// The largest payload accepted, in bytes (default 1 MiB).
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// How often an idle subscription looks for events when no notification arrives.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Size of the pool that [`connect`](Self::connect) creates (default 16).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Where subscriptions open their `LISTEN` connection (set by [`connect`](Self::connect));
    /// without it, a store from [`from_pool`](Self::from_pool) has polling subscriptions.
    pub fn listen_config(mut self, config: tokio_postgres::Config) -> Self {
        self.listen_config = Some(config);
        self
    }

    /// Connects to `url` (without TLS) and migrates the schema.
    pub async fn connect(mut self, url: &str) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend(PostgresConfigError::InvalidUrl(e)))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .build()
            .map_err(|e| StoreError::backend(PostgresConfigError::Pool(e)))?;
        self.listen_config.get_or_insert(config);
        self.from_pool(pool).await
    }

    /// Uses an existing pool (with any TLS setup) and migrates the schema.
    pub async fn from_pool(self, pool: Pool) -> Result<PostgresStore, StoreError> {
        schema::validate_schema_name(&self.schema).map_err(backend)?;
        schema::migrate(&pool, &self.schema).await?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql: schema::Statements::new(&self.schema),
                channel: schema::channel(&self.schema),
                schema: self.schema,
                listen_config: self.listen_config,
                max_payload_bytes: self.max_payload_bytes,
                poll_interval: self.poll_interval,
            }),
        })
    }
}

impl PostgresStore {
    /// Options for a store.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::default()
    }

    /// Connects to `url` with the default options (schema `eventcore`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// Uses an existing pool with the default options.
    pub async fn from_pool(pool: Pool) -> Result<Self, StoreError> {
        Self::builder().from_pool(pool).await
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Appends inside the caller's transaction, which decides whether it commits: the way to
    /// write events and other rows (an outbox, a read model) atomically.
    ///
    /// Errors are the same as [`EventStore::append`]; after an error the transaction is
    /// aborted and must be rolled back. Subscriptions find these events at their next poll; call
    /// [`notify_subscribers`](Self::notify_subscribers) after the commit to wake them at once.
    pub async fn append_in_transaction(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.inner.max_payload_bytes)?;
        let batch = AppendBatch::new(stream_id, expected, &events);
        let result = transaction
            .query_one(self.inner.sql.append.as_str(), &batch.params())
            .await;
        self.finish_append(stream_id, expected, &events, result, false)
            .await
    }

    /// Wakes the live subscriptions of this schema (in every process) to look for new events.
    pub async fn notify_subscribers(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(self.inner.sql.notify, &[&self.inner.channel])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn finish_append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        result: Result<tokio_postgres::Row, tokio_postgres::Error>,
        can_query: bool,
    ) -> Result<AppendResult, StoreError> {
        let row = match result {
            Ok(row) => row,
            Err(error) => return Err(self.append_error(error, events, can_query).await),
        };
        let conflict: bool = row.try_get(0).map_err(backend)?;
        let actual: i64 = row.try_get(1).map_err(backend)?;
        let actual = u64::try_from(actual).map_err(|_| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            stream_version: 0,
            reason: format!("stream version {actual} is negative"),
        })?;
        if conflict {
            return Err(StoreError::VersionConflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual,
            });
        }
        let positions: Vec<i64> = row.try_get(2).map_err(backend)?;
        Ok(AppendResult {
            first_version: actual + 1,
            last_version: actual + events.len() as u64,
            positions: positions.into_iter().map(|p| p.unsigned_abs()).collect(),
        })
    }

    async fn append_error(
        &self,
        error: tokio_postgres::Error,
        events: &[NewEvent],
        can_query: bool,
    ) -> StoreError {
        let is_duplicate_id = error.as_db_error().is_some_and(|db| {
            *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                && db.constraint() == Some("events_event_id_key")
        });
        if !is_duplicate_id {
            return backend(error);
        }
        // The detail reads `Key (event_id)=(<uuid>) already exists.`
        let from_detail = error
            .as_db_error()
            .and_then(|db| db.detail())
            .and_then(|detail| {
                detail
                    .split_once("=(")?
                    .1
                    .split_once(')')
                    .map(|(id, _)| id.to_owned())
            })
            .and_then(|id| Uuid::parse_str(&id).ok());
        if let Some(event_id) = from_detail {
            return StoreError::DuplicateEventId { event_id };
        }
        let mut seen = HashSet::new();
        if let Some(repeated) = events.iter().find(|e| !seen.insert(e.event_id)) {
            return StoreError::DuplicateEventId {
                event_id: repeated.event_id,
            };
        }
        if can_query {
            let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
            if let Ok(client) = self.inner.pool.get().await {
                if let Ok(Some(row)) = client
                    .query_opt(self.inner.sql.existing_event_id.as_str(), &[&ids])
                    .await
                {
                    if let Ok(event_id) = row.try_get(0) {
                        return StoreError::DuplicateEventId { event_id };
                    }
                }
            }
        }
        backend(error)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(backend)
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        let rows = client.query(&statement, params).await.map_err(backend)?;
        rows.iter().map(row::decode_event).collect()
    }
}

/// The columns of a batch as arrays, borrowed from the events.
struct AppendBatch<'a> {
    stream_id: &'a str,
    kind: i16,
    expected: i64,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    occurred_at: Vec<chrono::DateTime<chrono::Utc>>,
    correlation_ids: Vec<Option<&'a str>>,
    causation_ids: Vec<Option<&'a str>>,
    metadata: Vec<Json<&'a crate::envelope::Metadata>>,
    payloads: Vec<&'a [u8]>,
}

impl<'a> AppendBatch<'a> {
    fn new(stream_id: &'a str, expected: ExpectedVersion, events: &'a [NewEvent]) -> Self {
        let (kind, expected) = match expected {
            ExpectedVersion::Any => (0, 0),
            ExpectedVersion::NoStream => (1, 0),
            ExpectedVersion::Exact(v) => (2, i64::try_from(v).unwrap_or(i64::MAX)),
            ExpectedVersion::StreamExists => (3, 0),
        };
        Self {
            stream_id,
            kind,
            expected,
            ids: events.iter().map(|e| e.event_id).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            // Versions past i32::MAX cannot be stored; they saturate (and read back as corrupt).
            versions: events
                .iter()
                .map(|e| i32::try_from(e.event_version).unwrap_or(i32::MAX))
                .collect(),
            aggregate_types: events.iter().map(|e| e.aggregate_type.as_str()).collect(),
            aggregate_ids: events.iter().map(|e| e.aggregate_id.as_str()).collect(),
            occurred_at: events.iter().map(|e| e.occurred_at).collect(),
            correlation_ids: events.iter().map(|e| e.correlation_id.as_deref()).collect(),
            causation_ids: events.iter().map(|e| e.causation_id.as_deref()).collect(),
            metadata: events.iter().map(|e| Json(&e.metadata)).collect(),
            payloads: events.iter().map(|e| e.payload.as_ref()).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.stream_id,
            &self.kind,
            &self.expected,
            &self.ids,
            &self.types,
            &self.versions,
            &self.aggregate_types,
            &self.aggregate_ids,
            &self.occurred_at,
            &self.correlation_ids,
            &self.causation_ids,
            &self.metadata,
            &self.payloads,
        ]
    }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn sql_position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.inner.max_payload_bytes)?;
        let result = {
            let client = self.client().await?;
            let append = client
                .prepare_cached(&self.inner.sql.append)
                .await
                .map_err(backend)?;
            let notify = client
                .prepare_cached(self.inner.sql.notify)
                .await
                .map_err(backend)?;
            let batch = AppendBatch::new(stream_id, expected, &events);
            let params = batch.params();
            // Pipelined: the notification goes out with the append and runs, in its own
            // transaction, right after the append commits. Inside the append, NOTIFY would take
            // PostgreSQL's notification lock across the commit and serialize every writer.
            let (result, _notified) = futures_util::future::join(
                client.query_one(&append, &params),
                client.execute(&notify, &[&self.inner.channel]),
            )
            .await;
            result
        };
        self.finish_append(stream_id, expected, &events, result, true)
            .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (from, limit) = (sql_position(from_version), sql_limit(limit));
        self.query_events(&self.inner.sql.read_stream, &[&stream_id, &from, &limit])
            .await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (from, limit) = (sql_position(from_position), sql_limit(limit));
        self.query_events(&self.inner.sql.read_all, &[&from, &limit])
            .await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.stream_version)
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&statement, &[&stream_id])
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(0) };
        let version: i64 = row.try_get(0).map_err(backend)?;
        u64::try_from(version).map_err(|_| StoreError::Corrupt {
            stream_id: stream_id.to_owned(),
            stream_version: 0,
            reason: format!("stream version {version} is negative"),
        })
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.save_snapshot_row(&snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.load_snapshot_row(stream_id).await
    }
}
