//! Projections that write their own tables in the store's PostgreSQL database, committed with
//! their checkpoint.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::Transaction;
use tokio_util::sync::CancellationToken;

use super::runner::{Entry, Options};
use super::TableError;
use crate::envelope::RecordedEvent;
use crate::runner::postgres::write_checkpoint;
use crate::runner::{
    drive, new_owner, BatchError, BatchHandler, DriverConfig, Ended, Lease, RunnerState, StatusBoard,
};
use crate::store::postgres::backend;
use crate::store::{EventFilter, LogBatch, PostgresStore, StoreError};

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

/// A PostgreSQL table projection registered on [`Projections`](super::Projections).
pub(super) struct PostgresTableEntry<P> {
    name: String,
    version: u32,
    projection: Arc<Mutex<P>>,
}

impl<P: PostgresTableProjection> PostgresTableEntry<P> {
    pub(super) fn new(projection: P) -> Self {
        Self {
            name: projection.name().to_owned(),
            version: projection.version(),
            projection: Arc::new(Mutex::new(projection)),
        }
    }
}

impl<P: PostgresTableProjection> Entry<PostgresStore> for PostgresTableEntry<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn spawn(
        &self,
        store: PostgresStore,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>> {
        let projection = Arc::clone(&self.projection);
        let (name, version) = (self.name.clone(), self.version);
        tokio::spawn(async move {
            crate::runner::note_kind(&store, &name, crate::runner::RunnerKind::TableProjection).await;
            let types = projection.lock().await.event_types();
            let config = DriverConfig {
                name,
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

/// How one attempt at a batch's transaction ended.
enum Outcome {
    Committed,
    /// The event at this index (or `setup`, with an index past the events) failed; the
    /// transaction was rolled back.
    Failed(usize, TableError),
}

impl<P: PostgresTableProjection> TableHandler<P> {
    /// Applies `events` and moves the checkpoint to `position`, all in one transaction.
    async fn attempt(
        &mut self,
        store: &PostgresStore,
        lease: &Lease,
        events: &[RecordedEvent],
        position: u64,
    ) -> Result<Outcome, StoreError> {
        let mut client = store.pool().get().await.map_err(backend)?;
        let tx = client.transaction().await.map_err(backend)?;
        write_checkpoint(store, &tx, lease, position, self.version).await?;
        let mut projection = self.projection.lock().await;
        if !self.set_up {
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

impl<P: PostgresTableProjection> BatchHandler<PostgresStore> for TableHandler<P> {
    async fn handle(
        &mut self,
        store: &PostgresStore,
        lease: &Lease,
        batch: &LogBatch,
    ) -> Result<u64, BatchError> {
        let mut events = &batch.events[..];
        let mut position = batch.next_position;
        let mut failure = None;
        loop {
            match self.attempt(store, lease, events, position).await? {
                Outcome::Committed => {
                    self.set_up = true;
                    return match failure {
                        None => Ok(position),
                        Some((position, error)) => Err(BatchError::Event { position, error }),
                    };
                }
                Outcome::Failed(index, error) => {
                    let Some(failed) = events.get(index) else {
                        // `setup` itself failed: nothing was applied.
                        return Err(BatchError::Event { position, error });
                    };
                    // Commit what came before the failed event, with the checkpoint at it.
                    let at = failed.global_position;
                    events = &events[..index];
                    position = at;
                    failure = Some((at, error));
                }
            }
        }
    }
}
