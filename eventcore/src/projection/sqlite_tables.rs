//! Projections that write their own tables in the SQLite file, committed with their checkpoint.

use std::sync::{Arc, Mutex, PoisonError};

use super::tables::{Outcome, TableEntry, TableTransaction};
use super::TableError;
use crate::envelope::RecordedEvent;
use crate::runner::sqlite::write_checkpoint;
use crate::runner::Lease;
use crate::store::sqlite::sqlite_error;
use crate::store::{SqliteStore, StoreError};

/// A projection that keeps its read model in tables of its own, in the store's SQLite file:
/// the read side users query with SQL.
///
/// The runner calls [`apply`](Self::apply) for every event of [`event_types`](Self::event_types)
/// inside the transaction in which it also moves the projection's checkpoint, so the rows and
/// the checkpoint commit together: a crash never applies an event twice or loses one. Register
/// it with [`Projections::with_tables`](super::Projections::with_tables).
///
/// ```
/// use eventcore::projection::{Projections, SqliteTableProjection, TableError};
/// use eventcore::rusqlite::Transaction;
/// use eventcore::RecordedEvent;
///
/// /// How many events of each type were stored.
/// struct TypeCounts;
///
/// impl SqliteTableProjection for TypeCounts {
///     fn name(&self) -> &str { "type_counts" }
///     fn event_types(&self) -> Vec<String> { vec!["lamp.switched".into()] }
///     fn setup(&mut self, tx: &Transaction<'_>) -> Result<(), TableError> {
///         tx.execute_batch("CREATE TABLE IF NOT EXISTS type_counts (event_type TEXT PRIMARY KEY, n INTEGER)")?;
///         Ok(())
///     }
///     fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), TableError> {
///         tx.execute(
///             "INSERT INTO type_counts VALUES (?1, 1) ON CONFLICT (event_type) DO UPDATE SET n = n + 1",
///             [&event.event_type],
///         )?;
///         Ok(())
///     }
/// }
/// # let _ = |store: eventcore::SqliteStore| Projections::new(store).with_tables(TypeCounts);
/// ```
pub trait SqliteTableProjection: Send + 'static {
    /// The projection's name, its checkpoint's.
    fn name(&self) -> &str;

    /// The version of its tables' shape and logic.
    fn version(&self) -> u32 {
        1
    }

    /// The event types it reads, as stored (older names included).
    fn event_types(&self) -> Vec<String>;

    /// Creates its tables if they do not exist; runs in a transaction before the first batch.
    fn setup(&mut self, tx: &rusqlite::Transaction<'_>) -> Result<(), TableError> {
        let _ = tx;
        Ok(())
    }

    /// Applies one event to its tables, inside the batch's transaction.
    fn apply(&mut self, tx: &rusqlite::Transaction<'_>, event: &RecordedEvent) -> Result<(), TableError>;
}

/// The SQLite transaction of a table projection: runs on the store's writer thread.
pub(super) struct SqliteTables<P> {
    projection: Arc<Mutex<P>>,
    version: u32,
}

impl<P> Clone for SqliteTables<P> {
    fn clone(&self) -> Self {
        Self {
            projection: Arc::clone(&self.projection),
            version: self.version,
        }
    }
}

impl<P: SqliteTableProjection> SqliteTables<P> {
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

impl<P: SqliteTableProjection> TableTransaction<SqliteStore> for SqliteTables<P> {
    async fn attempt(
        &self,
        store: &SqliteStore,
        lease: &Lease,
        events: &[RecordedEvent],
        position: u64,
        set_up: bool,
    ) -> Result<Outcome, StoreError> {
        let (projection, lease, version) = (Arc::clone(&self.projection), lease.clone(), self.version);
        let events = events.to_vec();
        store
            .write_with(move |conn| {
                let tx = conn.transaction().map_err(sqlite_error)?;
                write_checkpoint(&tx, &lease, position, version)?;
                let mut projection = projection.lock().unwrap_or_else(PoisonError::into_inner);
                if !set_up {
                    if let Err(error) = projection.setup(&tx) {
                        return Ok(Outcome::Failed(events.len(), error));
                    }
                }
                for (index, event) in events.iter().enumerate() {
                    if let Err(error) = projection.apply(&tx, event) {
                        // Dropping the transaction rolls it back.
                        return Ok(Outcome::Failed(index, error));
                    }
                }
                tx.commit().map_err(sqlite_error)?;
                Ok(Outcome::Committed)
            })
            .await
    }
}
