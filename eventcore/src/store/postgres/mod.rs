//! The PostgreSQL event store (feature `postgres`).
//!
//! [`PostgresStore`] keeps events in one schema of a PostgreSQL database (default `eventcore`;
//! choose another with [`PostgresStoreBuilder::schema`] so several stores or test runs share one
//! database). The schema is created and upgraded by embedded, versioned migrations the first
//! time a store connects; concurrent starters queue on an advisory lock.
//!
//! - **Append** is one round trip: one autocommitted call of an append function of the schema,
//!   which takes the stream's advisory lock (writers of one stream queue, writers of different
//!   streams never meet), then runs one `INSERT ... SELECT` that reads the stream's version,
//!   checks the expectation and that no event id is taken, and inserts the whole batch from
//!   arrays. Positions are drawn only once the checks
//!   pass, so a writer that loses a race or re-sends a batch leaves no gap; `UNIQUE (stream_id,
//!   stream_version)` is the database's last word on versions. A mismatch is
//!   [`StoreError::VersionConflict`] with both versions; nothing is written. The `append`
//!   module has the details.
//! - **Event ids** are unique (a database constraint). Re-sending a batch already stored (same
//!   ids, same stream, consecutive versions) stores nothing and returns the original result,
//!   whatever the expectation; an id stored anywhere else is [`StoreError::DuplicateEventId`].
//! - **Errors** are [`StoreError::Unavailable`] when the same call may succeed later (pool wait
//!   or connect failure, serialization failure, deadlock, lock or statement timeout),
//!   [`StoreError::Ambiguous`] when the connection failed after an append was sent, and
//!   [`StoreError::Backend`] otherwise; the server's message is shown once ([`PostgresError`]).
//! - **Payloads** are stored as `bytea`, byte for byte; metadata as `jsonb`; `occurred_at` as
//!   `timestamptz`, which keeps microseconds (finer digits are truncated; `NewEvent::encode`
//!   already truncates to microseconds, so envelopes round-trip exactly).
//! - **Reads** by stream and by global position are paged by their `limit` and by
//!   [`MAX_PAGE_BYTES`](crate::store::MAX_PAGE_BYTES). `read_all` shows what has committed, which
//!   may leave a lower position still to come: to follow the log, use `read_batch` (settled
//!   batches, filtered by type in SQL; see the `batch` module) or `subscribe_all`.
//! - **Subscriptions** to the whole store never skip an event that commits late with a lower
//!   position; see [`SubscribeAll`](crate::subscription::SubscribeAll) and the notes below.
//!
//! # Why the subscription never skips an event
//!
//! Global positions come from a sequence, so a writer can draw position 7 and commit after a
//! writer that drew 8. A reader that advanced past 8 would never see 7. The subscription (and
//! `read_batch`) delivers only a gap-free run of positions, and steps over a missing position
//! only once it is *final*: committed, or never to appear.
//!
//! **Writers announce themselves.** Every append (also
//! [`append_in_transaction`](PostgresStore::append_in_transaction) and the repository's
//! commands in a caller's transaction) first runs a statement of its own (in the append
//! function, or before it) that takes the schema's *writer lock* in shared mode
//! (`pg_advisory_xact_lock_shared`, held until the transaction ends; shared holders never wait
//! for each other) with the stream's lock; only the next statement takes the transaction id
//! (`pg_current_xact_id()`) and then draws positions. So a writer holding a
//! position holds the writer lock and has a transaction id.
//!
//! **A horizon settles the gaps below it.** At a gap (position `n` missing while the page's
//! snapshot `S` shows rows up to `top`), the reader opens a horizon: in a statement after `S` it
//! reads from `pg_locks` the transaction ids `W` of the holders of the writer lock in this
//! database. Once none of `W` is running, every position below `top` is final:
//!
//! 1. A position `p < top` missing from `S` was drawn before `top` was (the sequence hands
//!    positions out in time order, `CACHE 1`), and `top` committed before `S` was taken. Its
//!    writer took the writer lock and its transaction id before drawing `p`, so before the
//!    horizon was opened: if it was still running then, its id is in `W`.
//! 2. A transaction holds its locks until it has ended, and a later snapshot sees what it
//!    committed. Once no id of `W` is running, every writer of a missing `p < top` has ended; a
//!    snapshot taken after that shows `p` if it committed, and it never will otherwise.
//! 3. Writers that announce themselves later, or take their id later, draw positions above
//!    `top`: they are not waited for. Nor is anything that does not hold the writer lock: a
//!    transaction left open in another database of the cluster, or one in this database that
//!    never appends, delays no delivery.
//!
//! So a slow writer that drew a position is always waited for, however long it takes; a
//! rolled-back (or failed) append's positions are stepped over as soon as it has ended. One
//! horizon settles every gap below its `top` (the head of the snapshot, not only the first
//! gap), so under sustained writes a reader waits once for the writers running when it looked,
//! not again for each later gap. The store shares its horizons among its readers; a reader
//! reads which positions are settled *before* taking the snapshot it applies that to (see the
//! `horizon` module).
//!
//! While a gap is open, the reader probes cheaply (which ids of `W` still hold their own
//! transaction-id lock, and the lowest position, no payloads) with a backoff from 5 ms up to
//! the poll interval (at most 1 s), and reads a page only once the gap may have moved.
//!
//! The subscription is woken by `LISTEN`/`NOTIFY`, with a fallback poll
//! ([`PostgresStoreBuilder::poll_interval`]) for what sends no notification: a rolled-back
//! append, an append inside the caller's transaction (see
//! [`PostgresStore::notify_subscribers`]), or a store built from a pool without a
//! [`listen_config`](PostgresStoreBuilder::listen_config). A background task of the
//! store sends the `NOTIFY` after a commit: an append never waits for it, and commits that come
//! while one is on its way, or within 2 ms of it, share the next one, so writers do not queue on
//! PostgreSQL's notification lock. Subscriptions in the same process are woken directly.
//!
//! Everything written to the events table must go through [`EventStore::append`] or
//! [`PostgresStore::append_in_transaction`], which announce the writer and take the stream lock;
//! a writer of an older eventcore (schema version 4 or less) does not announce itself, so the
//! schema's version (5) keeps it out. Readers look at `pg_locks` of the server they read from,
//! so subscriptions read from the primary: on a hot standby an open gap is an error, never a skip.
//!
//! All subscriptions of a store share one `LISTEN` connection, opened with the store's
//! connector (the TLS setup of [`PostgresStoreBuilder::connect_with_tls`] or
//! [`listen_config_with_tls`](PostgresStoreBuilder::listen_config_with_tls)); when it fails they
//! poll while the store reconnects with backoff (up to 10 s between attempts, without end). Its
//! state is [`PostgresStore::listener_health`], and every change is logged.
//!
//! Connections come from a `deadpool-postgres` pool that recycles them without a test query:
//! after the server drops connections (a restart), the next call on each stale one fails (an
//! append with [`StoreError::Ambiguous`], which a re-send resolves) and the pool replaces it.
//! [`connect`](PostgresStoreBuilder::connect) sets a connect timeout, a pool wait timeout and TCP
//! keepalives, and optionally `lock_timeout` and `statement_timeout`.
//!
//! The schema records its version; a store refuses a schema migrated by a newer eventcore, and
//! with [`migrate(false)`](PostgresStoreBuilder::migrate) only checks the version.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::watch;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Socket};

use super::{
    validate_append, AppendResult, EventFilter, EventStore, ExpectedVersion, LogBatch, Snapshot, StoreError,
    StreamInfo, DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};

mod append;
mod batch;
mod error;
mod horizon;
mod listener;
mod notifier;
mod row;
mod schema;
mod snapshots;
mod subscription;

pub use deadpool_postgres;
pub(crate) use error::backend;
pub use error::PostgresError;
pub use listener::{ListenerHealth, ListenerState, APPLICATION_NAME as LISTENER_APPLICATION_NAME};
pub(crate) use schema::quote_ident;
pub use schema::{SchemaVersionError, SCHEMA_VERSION};
pub use tokio_postgres;

/// Default schema name.
pub const DEFAULT_SCHEMA: &str = "eventcore";

/// Default fallback poll interval of subscriptions.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Default limit on opening a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default limit on waiting for a pooled connection.
pub const DEFAULT_POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default idle time before TCP keepalive probes start on the store's connections.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

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
    /// The runner tables' statements, built once.
    runner_sql: crate::runner::postgres::Sql,
    channel: String,
    /// Opens the shared `LISTEN` connection; `None`: subscriptions poll.
    listen: Option<listener::Connect>,
    /// The shared listener's wake count, once a subscription started it.
    listening: OnceLock<watch::Receiver<u64>>,
    /// The shared listener's health.
    listener_health: listener::Health,
    /// Gap horizons of the subscriptions and `read_batch`.
    horizons: horizon::Horizons,
    /// The positions `read_batch` last saw settled.
    settled_run: horizon::SettledRun,
    /// Which type filters `read_batch` reads along the primary key.
    type_density: batch::TypeDensity,
    max_payload_bytes: usize,
    poll_interval: Duration,
    connect_timeout: Duration,
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
    #[error("invalid PostgreSQL connection string")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// The connection pool cannot be built.
    #[error("cannot build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// Options of a [`PostgresStore`]; finish with [`connect`](Self::connect),
/// [`connect_with_tls`](Self::connect_with_tls) or [`from_pool`](Self::from_pool).
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    schema: String,
    max_payload_bytes: usize,
    poll_interval: Duration,
    pool_size: usize,
    listen: Option<listener::Connect>,
    migrate: bool,
    connect_timeout: Duration,
    pool_wait_timeout: Duration,
    keepalive_idle: Option<Duration>,
    lock_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("schema", &self.schema)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("pool_size", &self.pool_size)
            .field("listen", &self.listen.is_some())
            .field("migrate", &self.migrate)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("keepalive_idle", &self.keepalive_idle)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            poll_interval: DEFAULT_POLL_INTERVAL,
            pool_size: 16,
            listen: None,
            migrate: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_wait_timeout: DEFAULT_POOL_WAIT_TIMEOUT,
            keepalive_idle: Some(DEFAULT_KEEPALIVE_IDLE),
            lock_timeout: None,
            statement_timeout: None,
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

    /// Where subscriptions open their `LISTEN` connection, without TLS (set by
    /// [`connect`](Self::connect)); without it, a store from [`from_pool`](Self::from_pool) has
    /// polling subscriptions.
    pub fn listen_config(self, config: tokio_postgres::Config) -> Self {
        self.listen_config_with_tls(config, NoTls)
    }

    /// Where subscriptions open their `LISTEN` connection, with `tls` (the pool's connector, so
    /// notifications travel as securely as queries).
    pub fn listen_config_with_tls<T>(mut self, config: tokio_postgres::Config, tls: T) -> Self
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + Sync + 'static,
        T::TlsConnect: Send + Sync,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        self.listen = Some(listener::connector(config, tls));
        self
    }

    /// Whether to create and upgrade the schema on start (default `true`). With `false` (a role
    /// that may not create schemas), the store only checks that the schema is at
    /// [`SCHEMA_VERSION`] and fails with [`SchemaVersionError`] otherwise.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Limit on opening a connection (default 5 s) for [`connect`](Self::connect).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limit on waiting for a pooled connection (default 10 s), after which a call fails with
    /// [`StoreError::Unavailable`]; for pools that [`connect`](Self::connect) creates.
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// Idle time before TCP keepalive probes start (default 30 s; `None` turns keepalives
    /// off), so a connection to a vanished server fails instead of hanging.
    pub fn keepalive_idle(mut self, idle: Option<Duration>) -> Self {
        self.keepalive_idle = idle;
        self
    }

    /// PostgreSQL's `lock_timeout` for the store's connections (default: the server's): an
    /// append that waits longer for its stream's lock fails with [`StoreError::Unavailable`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// PostgreSQL's `statement_timeout` for the store's connections (default: the server's);
    /// a statement cancelled by it fails with [`StoreError::Unavailable`].
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Connects to `url` without TLS and migrates the schema.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        self.connect_with_tls(url, NoTls).await
    }

    /// Connects to `url` with `tls` for the pool and the `LISTEN` connection alike, and
    /// migrates the schema.
    pub async fn connect_with_tls<T>(mut self, url: &str, tls: T) -> Result<PostgresStore, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send + Sync + 'static,
        T::TlsConnect: Send + Sync,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend(PostgresConfigError::InvalidUrl(e)))?;
        self.configure(&mut config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.pool_wait_timeout))
            .create_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| StoreError::backend(PostgresConfigError::Pool(e)))?;
        if self.listen.is_none() {
            self.listen = Some(listener::connector(config, tls));
        }
        self.from_pool(pool).await
    }

    /// Applies the timeouts and keepalives to a connection configuration.
    fn configure(&self, config: &mut tokio_postgres::Config) {
        config.connect_timeout(self.connect_timeout);
        if let Some(idle) = self.keepalive_idle {
            config.keepalives(true).keepalives_idle(idle);
        }
        let mut options = config.get_options().unwrap_or_default().to_owned();
        for (name, value) in [
            ("lock_timeout", self.lock_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if let Some(value) = value {
                if !options.is_empty() {
                    options.push(' ');
                }
                options.push_str(&format!("-c {name}={}", value.as_millis().max(1)));
            }
        }
        if !options.is_empty() {
            config.options(&options);
        }
    }

    /// Uses an existing pool (with any TLS setup; its own timeouts apply) and migrates the
    /// schema (or checks it, see [`migrate`](Self::migrate)).
    pub async fn from_pool(self, pool: Pool) -> Result<PostgresStore, StoreError> {
        schema::validate_schema_name(&self.schema).map_err(backend)?;
        if self.migrate {
            schema::migrate(&pool, &self.schema).await?;
        } else {
            schema::check_version(&pool, &self.schema).await?;
        }
        let sql = schema::Statements::new(&self.schema);
        let channel = schema::channel(&self.schema);
        let commits = watch::Sender::new(0);
        notifier::spawn(pool.clone(), sql.notify.clone(), commits.subscribe());
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                listen: self.listen.clone(),
                pool,
                sql,
                runner_sql: crate::runner::postgres::Sql::new(&self.schema),
                channel,
                commits,
                schema: self.schema,
                listening: OnceLock::new(),
                listener_health: Arc::new(watch::Sender::new(listener::ListenerHealth::initial(
                    self.listen.is_some(),
                ))),
                horizons: horizon::Horizons::default(),
                settled_run: horizon::SettledRun::default(),
                type_density: batch::TypeDensity::default(),
                max_payload_bytes: self.max_payload_bytes,
                poll_interval: self.poll_interval,
                connect_timeout: self.connect_timeout,
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

    /// Reads up to `limit` events of `stream_id` from `from_version` inside the caller's
    /// transaction, seeing its own appends; pages are bounded as by [`EventStore::read_stream`].
    pub async fn read_stream_in_transaction(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (from, limit) = (sql_position(from_version), sql_limit(limit));
        let rows = transaction
            .query(self.inner.sql.read_stream.as_str(), &[&stream_id, &from, &limit])
            .await
            .map_err(backend)?;
        row::decode_events(&rows)
    }

    /// The health of the store's shared `LISTEN` connection (started by the first subscription):
    /// whether it listens, since when, and its last error.
    pub fn listener_health(&self) -> ListenerHealth {
        self.inner.listener_health.borrow().clone()
    }

    /// Follows the health of the store's shared `LISTEN` connection as it changes.
    pub fn watch_listener_health(&self) -> watch::Receiver<ListenerHealth> {
        self.inner.listener_health.subscribe()
    }

    /// Wakes the live subscriptions of this schema (in every process) to look for new events.
    pub async fn notify_subscribers(&self) -> Result<(), StoreError> {
        notifier::notify(&self.inner.pool, &self.inner.sql.notify).await
    }

    /// A receiver of the last position this process appended.
    pub(crate) fn commit_receiver(&self) -> watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// How often idle readers look for commits no notification reported.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// The runner tables' statements of the store's schema.
    pub(crate) fn runner_sql(&self) -> &crate::runner::postgres::Sql {
        &self.inner.runner_sql
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
        row::decode_events(&rows)
    }
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn sql_position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl EventStore for PostgresStore {
    /// Rehydration reads large pages: a round trip costs more than the rows.
    const STREAM_PAGE: usize = 8192;

    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.inner.max_payload_bytes)?;
        self.append_batch(stream_id, expected, &events).await
    }

    async fn append_all(&self, parts: Vec<super::StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        super::validate_append_all(&parts, self.inner.max_payload_bytes)?;
        self.append_parts(&parts).await
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

    /// Reads only the columns rehydration uses, and lends each row as it arrives: no page of
    /// events is collected (so no byte bound: the page ends at `limit`), and the stream's
    /// repeated columns are neither sent nor copied.
    async fn visit_stream_records<E: Send>(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
        mut visit: impl FnMut(super::StreamRecord<'_>) -> Result<(), E> + Send,
    ) -> Result<Result<super::StreamPage, E>, StoreError> {
        let mut page = super::StreamPage::default();
        if limit == 0 {
            return Ok(Ok(page));
        }
        let (from, limit) = (sql_position(from_version), sql_limit(limit));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.read_stream_records)
            .await
            .map_err(backend)?;
        let params: [&(dyn ToSql + Sync); 3] = [&stream_id, &from, &limit];
        let rows = client.query_raw(&statement, params).await.map_err(backend)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows)
            .await
            .map_err(backend)?
        {
            let record = row::stream_record(&row, stream_id, page.events == 0)?;
            page.events += 1;
            page.bytes = page.bytes.saturating_add(record.payload.len());
            if let Err(error) = visit(record) {
                return Ok(Err(error));
            }
        }
        Ok(Ok(page))
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

    async fn read_batch(
        &self,
        from_position: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        self.read_log_batch(from_position, filter, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.head)
            .await
            .map_err(backend)?;
        let head: i64 = client
            .query_one(&statement, &[])
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        Ok(head.unsigned_abs())
    }

    async fn find_event(&self, event_id: uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.find_event)
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&statement, &[&event_id])
            .await
            .map_err(backend)?;
        row.as_ref().map(row::decode_event).transpose()
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.inner.sql.list_streams)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&statement, &[&prefix, &after, &sql_limit(limit)])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(StreamInfo {
                    stream_id: row.try_get(0).map_err(backend)?,
                    version: row.try_get::<_, i64>(1).map_err(backend)?.unsigned_abs(),
                })
            })
            .collect()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.save_snapshot_row(&snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.load_snapshot_row(stream_id).await
    }
}
