//! What SQLite and PostgreSQL table projections share: their registration on the runner, and a
//! batch applied in one transaction that, when an event fails, commits the events before it with
//! the checkpoint at the failed one.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::runner::{Entry, Options};
use super::TableError;
use crate::envelope::RecordedEvent;
use crate::runner::{
    drive, new_owner, BatchError, BatchHandler, DriverConfig, Ended, Lease, RunnerState, RunnerStore,
    StatusBoard,
};
use crate::store::{EventFilter, LogBatch, StoreError};

/// How one attempt at a batch's transaction ended.
pub(super) enum Outcome {
    /// Everything applied and the checkpoint moved, in one commit.
    Committed,
    /// The event at this index (or `setup`, with an index past the events) failed; the
    /// transaction was rolled back.
    Failed(usize, TableError),
}

/// A store's side of a table projection: one transaction that runs `setup` unless it already
/// succeeded, applies `events` and moves the fenced checkpoint to `position`, and commits only
/// if all of it succeeded.
pub(super) trait TableTransaction<S>: Clone + Send + Sync + 'static {
    fn attempt(
        &self,
        store: &S,
        lease: &Lease,
        events: &[RecordedEvent],
        position: u64,
        set_up: bool,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;
}

/// A table projection registered on [`Projections`](super::Projections).
pub(super) struct TableEntry<T> {
    name: String,
    version: u32,
    event_types: Vec<String>,
    tables: T,
}

impl<T> TableEntry<T> {
    pub(super) fn new(name: &str, version: u32, event_types: Vec<String>, tables: T) -> Self {
        Self {
            name: name.to_owned(),
            version,
            event_types,
            tables,
        }
    }
}

impl<S: RunnerStore, T: TableTransaction<S>> Entry<S> for TableEntry<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn spawn(
        &self,
        store: S,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>> {
        let config = DriverConfig {
            name: self.name.clone(),
            filter: EventFilter::event_types(self.event_types.clone()),
            batch_size: options.batch_size,
            owner: new_owner(),
            lease_ttl: options.lease_ttl,
            retry: options.retry,
            busy_state: RunnerState::CatchingUp,
            stop_at_head: false,
        };
        let handler = TableHandler {
            tables: self.tables.clone(),
            set_up: false,
        };
        tokio::spawn(async move {
            crate::runner::note_kind(&store, &config.name, crate::runner::RunnerKind::TableProjection).await;
            match drive(store, handler, config, &board, cancel).await {
                Ended::Stopped(lease) => lease,
                Ended::Failed => None,
            }
        })
    }
}

struct TableHandler<T> {
    tables: T,
    /// Whether `setup` has committed once in this run.
    set_up: bool,
}

impl<S: RunnerStore, T: TableTransaction<S>> BatchHandler<S> for TableHandler<T> {
    async fn handle(&mut self, store: &S, lease: &Lease, batch: &LogBatch) -> Result<u64, BatchError> {
        let mut events = &batch.events[..];
        let mut position = batch.next_position;
        let mut failure = None;
        loop {
            match self
                .tables
                .attempt(store, lease, events, position, self.set_up)
                .await?
            {
                Outcome::Committed => {
                    self.set_up = true;
                    return match failure {
                        None => Ok(position),
                        Some((position, error)) => Err(BatchError::Event { position, error }),
                    };
                }
                Outcome::Failed(index, error) => {
                    let Some(failed) = events.get(index) else {
                        // `setup` itself failed and nothing was committed: the batch is read
                        // again from its first event, after a backoff.
                        let first = events.first().map_or(position, |e| e.global_position);
                        return Err(BatchError::Event {
                            position: first,
                            error,
                        });
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
