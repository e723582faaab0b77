//! Projections that write their own tables in the store's PostgreSQL database, committed with
//! their checkpoint.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::Transaction;

use super::tables::{Outcome, TableEntry, TableTransaction};
use super::TableError;
use crate::envelope::RecordedEvent;
use crate::runner::postgres::write_checkpoint;
use crate::runner::Lease;
use crate::store::postgres::backend;
use crate::store::{PostgresStore, StoreError};

/// A projection that keeps its read model in tables of its own, in the store's PostgreSQL
/// database: the read side users query with SQL.
///
/// The runner calls [`apply`](Self::apply) for every event of [`event_types`](Self::event_types)
/// inside the transaction in which it also moves the projection's fenced checkpoint, so rows and
/// checkpoint commit together: a crash never applies an event twice or loses one, and a process
/// that lost the projection's lease cannot commit. Register it with
/// [`Projections::with_tables`](super::Projections::with_tables).
///
/// ```
/// use eventcore::projection::{PostgresTableProjection, Projections, TableError};
/// use eventcore::tokio_postgres::Transaction;
/// use eventcore::RecordedEvent;
///
/// /// How many events of each type were stored.
/// struct TypeCounts;
///
/// impl PostgresTableProjection for TypeCounts {
///     fn name(&self) -> &str { "type_counts" }
///     fn event_types(&self) -> Vec<String> { vec!["lamp.switched".into()] }
///     async fn setup(&mut self, tx: &Transaction<'_>) -> Result<(), TableError> {
///         tx.batch_execute("CREATE TABLE IF NOT EXISTS type_counts (event_type text PRIMARY KEY, n bigint)").await?;
///         Ok(())
///     }
///     async fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), TableError> {
///         tx.execute(
///             "INSERT INTO type_counts VALUES ($1, 1) ON CONFLICT (event_type) DO UPDATE SET n = type_counts.n + 1",
///             &[&event.event_type],
///         ).await?;
///         Ok(())
///     }
/// }
/// # let _ = |store: eventcore::PostgresStore| Projections::new(store).with_tables(TypeCounts);
/// ```
pub trait PostgresTableProjection: Send + 'static {
    /// The projection's name, its checkpoint's.
    fn name(&self) -> &str;

    /// The version of its tables' shape and logic.
    fn version(&self) -> u32 {
        1
    }

    /// The event types it reads, as stored (older names included).
    fn event_types(&self) -> Vec<String>;

    /// Creates its tables if they do not exist; runs in the first batch's transaction.
    fn setup(&mut self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), TableError>> + Send {
        let _ = tx;
        async { Ok(()) }
    }

    /// Applies one event to its tables, inside the batch's transaction.
    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), TableError>> + Send;
}

/// The PostgreSQL transaction of a table projection.
pub(super) struct PostgresTables<P> {
    projection: Arc<Mutex<P>>,
    version: u32,
}

impl<P> Clone for PostgresTables<P> {
    fn clone(&self) -> Self {
        Self {
            projection: Arc::clone(&self.projection),
            version: self.version,
        }
    }
}

impl<P: PostgresTableProjection> PostgresTables<P> {
    /// `projection`'s registration on the runner.
    pub(super) fn entry(projection: P) -> TableEntry<Self> {
        let (name, version) = (projection.name().to_owned(), projection.version());
        let event_types = projection.event_types();
        let tables = Self {
            projection: Arc::new(Mutex::new(projection)),
            version,
        };
        TableEntry::new(&name, version, event_types, tables)
    }
}

impl<P: PostgresTableProjection> TableTransaction<PostgresStore> for PostgresTables<P> {
    async fn attempt(
        &self,
        store: &PostgresStore,
        lease: &Lease,
        events: &[RecordedEvent],
        position: u64,
        set_up: bool,
    ) -> Result<Outcome, StoreError> {
        let mut client = store.pool().get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        write_checkpoint(store, &tx, lease, position, self.version).await?;
        let mut projection = self.projection.lock().await;
        if !set_up {
            if let Err(error) = projection.setup(&tx).await {
                return Ok(Outcome::Failed(events.len(), error));
            }
        }
        for (index, event) in events.iter().enumerate() {
            if let Err(error) = projection.apply(&tx, event).await {
                // Dropping the transaction rolls it back.
                return Ok(Outcome::Failed(index, error));
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(Outcome::Committed)
    }
}
