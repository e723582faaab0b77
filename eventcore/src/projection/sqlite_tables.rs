//! Projections that write their own tables in the SQLite file, committed with their checkpoint.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::runner::{Entry, Options};
use super::TableError;
use crate::envelope::RecordedEvent;
use crate::runner::sqlite::write_checkpoint;
use crate::runner::{
    drive, new_owner, BatchError, BatchHandler, DriverConfig, Ended, Lease, RunnerState, StatusBoard,
};
use crate::store::sqlite::sqlite_error;
use crate::store::{EventFilter, LogBatch, SqliteStore, StoreError};

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

/// A table projection registered on [`Projections`](super::Projections).
pub(super) struct TableEntry<P> {
    name: String,
    version: u32,
    projection: Arc<Mutex<P>>,
}

impl<P: SqliteTableProjection> TableEntry<P> {
    pub(super) fn new(projection: P) -> Self {
        Self {
            name: projection.name().to_owned(),
            version: projection.version(),
            projection: Arc::new(Mutex::new(projection)),
        }
    }
}

impl<P: SqliteTableProjection> Entry<SqliteStore> for TableEntry<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn spawn(
        &self,
        store: SqliteStore,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>> {
        let projection = Arc::clone(&self.projection);
        let (name, version) = (self.name.clone(), self.version);
        tokio::spawn(async move {
            crate::runner::note_kind(&store, &name, crate::runner::RunnerKind::TableProjection).await;
            let types = projection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .event_types();
            let config = DriverConfig {
                name: name.clone(),
                filter: EventFilter::event_types(types),
                batch_size: options.batch_size,
                owner: new_owner(),
                lease_ttl: options.lease_ttl,
                retry: options.retry,
                busy_state: RunnerState::CatchingUp,
                stop_at_head: false,
            };
            let handler = TableHandler {
                projection,
                version,
                set_up: false,
            };
            match drive(store, handler, config, &board, cancel).await {
                Ended::Stopped(lease) => lease,
                Ended::Failed => None,
            }
        })
    }
}

struct TableHandler<P> {
    projection: Arc<Mutex<P>>,
    version: u32,
    set_up: bool,
}

/// Why a transaction of a table projection did not commit whole.
enum Outcome {
    Committed,
    /// The event at this index failed; nothing of the transaction was committed.
    Failed(usize, TableError),
}

impl<P: SqliteTableProjection> BatchHandler<SqliteStore> for TableHandler<P> {
    async fn handle(
        &mut self,
        store: &SqliteStore,
        lease: &Lease,
        batch: &LogBatch,
    ) -> Result<u64, BatchError> {
        let mut events = batch.events.clone();
        let mut position = batch.next_position;
        let mut failure = None;
        loop {
            let (projection, lease, version, set_up) = (
                Arc::clone(&self.projection),
                lease.clone(),
                self.version,
                self.set_up,
            );
            let work = events.clone();
            let outcome = store
                .write_with(move |conn| {
                    let tx = conn.transaction().map_err(sqlite_error)?;
                    write_checkpoint(&tx, &lease, position, version)?;
                    let mut projection = projection.lock().unwrap_or_else(PoisonError::into_inner);
                    if !set_up {
                        if let Err(error) = projection.setup(&tx) {
                            return Ok(Outcome::Failed(0, error));
                        }
                    }
                    for (index, event) in work.iter().enumerate() {
                        if let Err(error) = projection.apply(&tx, event) {
                            // Dropping the transaction rolls it back.
                            return Ok(Outcome::Failed(index, error));
                        }
                    }
                    tx.commit().map_err(sqlite_error)?;
                    Ok::<_, StoreError>(Outcome::Committed)
                })
                .await?;
            match outcome {
                Outcome::Committed => {
                    self.set_up = true;
                    return match failure {
                        None => Ok(position),
                        Some((position, error)) => Err(BatchError::Event { position, error }),
                    };
                }
                Outcome::Failed(index, error) => {
                    let Some(failed) = events.get(index) else {
                        // Nothing left to apply: `setup` (or the empty batch) itself failed.
                        return Err(BatchError::Event { position, error });
                    };
                    let at = failed.global_position;
                    // Commit what came before the failed event, with the checkpoint at it.
                    events.truncate(index);
                    position = at;
                    failure = Some((at, error));
                }
            }
        }
    }
}
