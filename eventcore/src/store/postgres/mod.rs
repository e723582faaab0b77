//! The PostgreSQL event store (feature `postgres`).
//!
//! [`PostgresStore`] keeps events in one schema of a PostgreSQL database (default `eventcore`;
//! choose another with [`PostgresStoreBuilder::schema`] so several stores or test runs share one
//! database). The schema is created and upgraded by embedded, versioned migrations the first
//! time a store connects; concurrent starters queue on an advisory lock.
//!
//! - **Append** is one round trip: one `INSERT ... SELECT` that takes the stream's advisory lock
//!   (writers of one stream queue, writers of different streams never meet), reads the stream's
//!   version, checks the expectation and inserts the whole batch from arrays. It is one
//!   statement, so a lost connection leaves the whole batch or nothing; `UNIQUE (stream_id,
//!   stream_version)` is the database's last word on versions. A mismatch is
//!   [`StoreError::VersionConflict`] with both versions; nothing is written. A writer that
//!   queued behind another writer of its stream tries once more in a locked transaction (still
//!   one round trip); the `append` module explains why that attempt cannot lose again.
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
//! 1. An append takes its transaction id before drawing any position, and the sequence
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
//! The subscription is woken by `LISTEN`/`NOTIFY`, with a fallback poll
//! ([`PostgresStoreBuilder::poll_interval`]) for what sends no notification: a rolled-back
//! append, an append inside the caller's transaction (see
//! [`PostgresStore::notify_subscribers`]), or a store built from a pool without a
//! [`listen_config`](PostgresStoreBuilder::listen_config). A gap therefore waits at most until
//! the transactions running when it was seen have ended; a long-running writing transaction
//! anywhere in the cluster delays (never breaks) delivery past a gap. A background task of the
//! store sends the `NOTIFY` after a commit: an append never waits for it, and commits that come
//! while one is on its way, or within 2 ms of it, share the next one, so writers do not queue on
//! PostgreSQL's notification lock. Subscriptions in the same process are woken directly.
//!
//! Everything written to the events table must go through [`EventStore::append`] or
//! [`PostgresStore::append_in_transaction`], which keep rule 1 and take the stream lock.
//! Subscriptions take transaction ids, so they read from the primary, not from a hot standby.
//!
//! Connections come from a `deadpool-postgres` pool that recycles them without a test query:
//! after the server drops connections (a restart), the next call on each stale one fails with
//! [`StoreError::Backend`] and the pool replaces it; an append that failed so is safe to retry,
//! since its event ids are unique.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::{
    validate_append, AppendResult, EventStore, ExpectedVersion, Snapshot, StoreError,
    DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};

mod append;
mod notifier;
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
    /// The last position this process appended, sent after every commit: wakes this process's
    /// subscriptions and the task that notifies the others.
    commits: watch::Sender<u64>,
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
        let sql = schema::Statements::new(&self.schema);
        let channel = schema::channel(&self.schema);
        let commits = watch::Sender::new(0);
        notifier::spawn(pool.clone(), sql.notify.clone(), commits.subscribe());
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                sql,
                channel,
                commits,
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
    /// The stream stays locked until the transaction ends, so other writers of it wait. Use
    /// `READ COMMITTED` (PostgreSQL's default): under a stricter isolation level the snapshot
    /// predates the lock, and an append that queued fails with [`StoreError::Backend`].
    /// Errors are otherwise the same as [`EventStore::append`]; after an error the transaction
    /// is aborted and must be rolled back. Subscriptions find these events at their next poll; call
    /// [`notify_subscribers`](Self::notify_subscribers) after the commit to wake them at once.
    pub async fn append_in_transaction(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.inner.max_payload_bytes)?;
        self.append_batch_in(transaction, stream_id, expected, &events)
            .await
    }

    /// Wakes the live subscriptions of this schema (in every process) to look for new events.
    pub async fn notify_subscribers(&self) -> Result<(), StoreError> {
        notifier::notify(&self.inner.pool, &self.inner.sql.notify).await
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
        self.append_batch(stream_id, expected, &events).await
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
        self.current_version(stream_id).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.save_snapshot_row(&snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.load_snapshot_row(stream_id).await
    }
}
