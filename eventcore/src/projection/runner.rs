//! The document-projection runner: [`Projections`] and its running handle.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Projection, Routed};
use crate::envelope::RecordedEvent;
use crate::runner::{
    drive, new_owner, BatchError, BatchHandler, DocumentCommit, DriverConfig, Ended, Lease, RetryPolicy,
    Runner, RunnerError, RunnerState, RunnerStore, Running, StatusBoard,
};
use crate::store::{EventFilter, LogBatch, StoreError};

/// A set of started projections; dropping it stops them.
pub type RunningProjections<S> = Running<S>;

/// Default events per batch.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Default lease duration of a projection's owner.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Document projections over a store: register them with [`with`](Self::with), run them with
/// [`start`](Self::start), read their documents with [`get`](Self::get).
///
/// Documents live next to the events (in the SQLite file, or in memory for
/// [`MemoryStore`](crate::MemoryStore)). Each batch's documents commit together with the
/// projection's checkpoint, so a crash or a kill never applies an event twice or loses one.
pub struct Projections<S> {
    store: S,
    entries: Vec<Arc<dyn Entry<S>>>,
    options: Options,
}

impl<S: Clone> Clone for Projections<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            entries: self.entries.clone(),
            options: self.options.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Projections<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("store", &self.store)
            .field(
                "projections",
                &self.entries.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Settings shared by a set of projections.
#[derive(Debug, Clone)]
pub(super) struct Options {
    pub(super) batch_size: usize,
    pub(super) retry: RetryPolicy,
    pub(super) lease_ttl: Duration,
}

impl<S: RunnerStore> Projections<S> {
    /// No projections yet, over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            entries: Vec::new(),
            options: Options {
                batch_size: DEFAULT_BATCH_SIZE,
                retry: RetryPolicy::default(),
                lease_ttl: DEFAULT_LEASE_TTL,
            },
        }
    }

    /// Adds projection `P`.
    pub fn with<P: Projection>(mut self) -> Self {
        self.entries.push(Arc::new(Typed::<P>(PhantomData)));
        self
    }

    /// Events per batch (and per transaction); default [`DEFAULT_BATCH_SIZE`].
    pub fn batch_size(mut self, events: usize) -> Self {
        self.options.batch_size = events.max(1);
        self
    }

    /// How a failing event is retried before the projection stops at it.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// How long an owner's lease lasts without renewal (default [`DEFAULT_LEASE_TTL`]); another
    /// process takes over a projection whose owner stopped renewing.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Starts every projection: each catches up from its checkpoint, then follows live. A
    /// projection whose `VERSION` changed since its checkpoint was written is rebuilt first.
    pub fn start(&self) -> Running<S> {
        let cancel = CancellationToken::new();
        let runners = self
            .entries
            .iter()
            .map(|entry| {
                let board = Arc::new(StatusBoard::new(entry.name(), entry.version()));
                let task = entry.spawn(
                    self.store.clone(),
                    self.options.clone(),
                    Arc::clone(&board),
                    cancel.clone(),
                );
                Runner::new(board, task)
            })
            .collect();
        Running::new(self.store.clone(), runners, cancel)
    }

    /// The document of projection `P` under `key`, as last committed.
    pub async fn get<P: Projection>(&self, key: &str) -> Result<Option<P>, RunnerError> {
        let mut found = self.store.load_documents(P::NAME, vec![key.to_owned()]).await?;
        found
            .remove(key)
            .map(|body| decode_document::<P>(P::NAME, key, &body))
            .transpose()
    }

    /// Rebuilds projection `P` from the start of the log: replays into a shadow copy beside the
    /// live documents (which readers keep seeing) and swaps it in, with the checkpoint, when it
    /// reaches the head. A runner of `P` elsewhere is fenced out meanwhile and resumes after.
    pub async fn rebuild<P: Projection>(&self) -> Result<(), RunnerError> {
        self.rebuild_cancellable::<P>(CancellationToken::new()).await
    }

    /// [`rebuild`](Self::rebuild), stopped early when `cancel` fires (or when the future is
    /// dropped): the live documents stay as they were, the half-built shadow is discarded at the
    /// next rebuild, and the projection's lease is released so its live runner resumes.
    pub async fn rebuild_cancellable<P: Projection>(
        &self,
        cancel: CancellationToken,
    ) -> Result<(), RunnerError> {
        let board = StatusBoard::new(P::NAME, P::VERSION);
        rebuild::<S, P>(&self.store, &self.options, &board, &cancel).await
    }
}

#[cfg(feature = "sqlite")]
impl Projections<crate::SqliteStore> {
    /// Adds a projection that writes its own tables in the SQLite file (see
    /// [`SqliteTableProjection`](super::SqliteTableProjection)).
    pub fn with_tables<P: super::SqliteTableProjection>(mut self, projection: P) -> Self {
        self.entries
            .push(Arc::new(super::sqlite_tables::SqliteTables::entry(projection)));
        self
    }
}

#[cfg(feature = "postgres")]
impl Projections<crate::PostgresStore> {
    /// Adds a projection that writes its own tables in the PostgreSQL database (see
    /// [`PostgresTableProjection`](super::PostgresTableProjection)).
    pub fn with_tables<P: super::PostgresTableProjection>(mut self, projection: P) -> Self {
        self.entries
            .push(Arc::new(super::postgres_tables::PostgresTables::entry(
                projection,
            )));
        self
    }
}

/// One registered projection, with its type erased.
pub(super) trait Entry<S>: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> u32;
    fn spawn(
        &self,
        store: S,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>>;
}

struct Typed<P>(PhantomData<fn() -> P>);

impl<S: RunnerStore, P: Projection> Entry<S> for Typed<P> {
    fn name(&self) -> &str {
        P::NAME
    }

    fn version(&self) -> u32 {
        P::VERSION
    }

    fn spawn(
        &self,
        store: S,
        options: Options,
        board: Arc<StatusBoard>,
        cancel: CancellationToken,
    ) -> JoinHandle<Option<Lease>> {
        tokio::spawn(async move {
            let stale = match store.checkpoint(P::NAME).await {
                Ok(Some(checkpoint)) => checkpoint.position > 1 && checkpoint.version != P::VERSION,
                _ => false,
            };
            if stale {
                tracing::info!(
                    projection = P::NAME,
                    version = P::VERSION,
                    "version changed: rebuilding"
                );
                if let Err(error) = rebuild::<S, P>(&store, &options, &board, &cancel).await {
                    tracing::error!(projection = P::NAME, error = %crate::runner::error_chain(&error), "rebuild failed");
                    board.update(|s| {
                        s.state = if cancel.is_cancelled() {
                            RunnerState::Stopped
                        } else {
                            RunnerState::Failed
                        };
                        s.last_error = Some(crate::runner::error_chain(&error));
                    });
                    return None;
                }
            }
            let config = config::<P>(P::NAME, &options, RunnerState::CatchingUp, false);
            match drive(store, DocumentHandler::<P>::new(P::NAME), config, &board, cancel).await {
                Ended::Stopped(lease) => lease,
                Ended::Failed => None,
            }
        })
    }
}

fn config<P: Projection>(
    name: &str,
    options: &Options,
    busy_state: RunnerState,
    stop_at_head: bool,
) -> DriverConfig {
    DriverConfig {
        name: name.to_owned(),
        filter: EventFilter::event_types(super::support::stored_event_types(P::HANDLED_EVENT_TYPES)),
        batch_size: options.batch_size,
        owner: new_owner(),
        lease_ttl: options.lease_ttl,
        retry: options.retry,
        busy_state,
        stop_at_head,
    }
}

/// The shadow collection (and checkpoint name) a rebuild of `name` writes.
fn shadow_name(name: &str) -> String {
    format!("{name}.rebuild")
}

/// Replays `P` into its shadow collection and swaps it in at the head (see [`Projections::rebuild`]).
async fn rebuild<S: RunnerStore, P: Projection>(
    store: &S,
    options: &Options,
    board: &StatusBoard,
    cancel: &CancellationToken,
) -> Result<(), RunnerError> {
    let owner = new_owner();
    let shadow = shadow_name(P::NAME);
    // Fence out every live runner of `P`, and keep the lease while replaying.
    let live = store.take_over_lease(P::NAME, &owner, options.lease_ttl).await?;
    let renewing = CancellationToken::new();
    // Dropping the rebuild's future stops the renewals too, so the live runner gets its lease back.
    let _stop_renewing = renewing.clone().drop_guard();
    let renewer = {
        let (store, live, stop) = (store.clone(), live.clone(), renewing.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(live.ttl / 3) => {}
                }
                if let Err(error) = store.renew_lease(&live).await {
                    tracing::warn!(%error, "cannot renew the lease of a rebuilt projection");
                }
            }
        })
    };
    let result = async {
        // Start the shadow from scratch.
        let shadow_lease = store.take_over_lease(&shadow, &owner, options.lease_ttl).await?;
        store.clear_documents(&shadow).await?;
        store
            .commit_documents(
                &shadow_lease,
                DocumentCommit {
                    collection: shadow.clone(),
                    upserts: Vec::new(),
                    position: 1,
                    version: P::VERSION,
                },
            )
            .await?;
        store.release_lease(&shadow_lease).await?;
        let mut config = config::<P>(&shadow, options, RunnerState::Rebuilding, true);
        config.owner = owner.clone();
        let ended = drive(
            store.clone(),
            DocumentHandler::<P>::new(&shadow),
            config,
            board,
            cancel.clone(),
        )
        .await;
        let Ended::Stopped(Some(shadow_lease)) = ended else {
            let status = board.current();
            return Err(RunnerError::NotRunning(format!(
                "the rebuild of `{}` stopped at position {}{}",
                P::NAME,
                status.position,
                status.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            )));
        };
        if cancel.is_cancelled() {
            store.release_lease(&shadow_lease).await?;
            return Err(RunnerError::NotRunning(format!(
                "the rebuild of `{}` was cancelled",
                P::NAME
            )));
        }
        let position = board.current().position;
        store
            .swap_documents(&live, &shadow, P::NAME, position, P::VERSION)
            .await?;
        store.release_lease(&shadow_lease).await?;
        Ok(())
    }
    .await;
    renewing.cancel();
    let _ = renewer.await;
    store.release_lease(&live).await?;
    result
}

/// Folds batches of events into the documents of `P` in one collection.
struct DocumentHandler<P> {
    collection: String,
    projection: PhantomData<fn() -> P>,
}

impl<P> DocumentHandler<P> {
    fn new(collection: &str) -> Self {
        Self {
            collection: collection.to_owned(),
            projection: PhantomData,
        }
    }
}

/// Why a fold stopped: the record at this index failed.
struct FoldFailed {
    index: usize,
    position: u64,
    error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl<P: Projection> DocumentHandler<P> {
    /// Folds `records` into the documents they touch; the changed documents, encoded.
    async fn fold<S: RunnerStore>(
        &self,
        store: &S,
        records: &[RecordedEvent],
    ) -> Result<Result<Vec<(String, Bytes)>, FoldFailed>, StoreError> {
        let mut routes: Vec<(usize, Routed<P>)> = Vec::new();
        let mut scratch = Vec::new();
        for (index, record) in records.iter().enumerate() {
            if let Err(error) = P::route(record, &mut scratch) {
                return Ok(Err(FoldFailed {
                    index,
                    position: record.global_position,
                    error: Box::new(error),
                }));
            }
            routes.extend(scratch.drain(..).map(|route| (index, route)));
        }
        let mut keys: Vec<String> = routes.iter().map(|(_, r)| r.key().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        let stored = store.load_documents(&self.collection, keys).await?;
        let mut documents: HashMap<String, P> = HashMap::with_capacity(stored.len());
        for (index, route) in &routes {
            let document = match documents.get_mut(route.key()) {
                Some(document) => document,
                None => {
                    let loaded = match stored.get(route.key()) {
                        Some(body) => match decode_document::<P>(&self.collection, route.key(), body) {
                            Ok(document) => document,
                            Err(error) => {
                                return Ok(Err(FoldFailed {
                                    index: *index,
                                    position: route.global_position(),
                                    error: Box::new(error),
                                }))
                            }
                        },
                        None => P::default(),
                    };
                    documents.entry(route.key().to_owned()).or_insert(loaded)
                }
            };
            if let Err(error) = route.apply_to(document) {
                return Ok(Err(FoldFailed {
                    index: *index,
                    position: route.global_position(),
                    error: Box::new(error),
                }));
            }
        }
        let mut upserts = Vec::with_capacity(documents.len());
        for (key, document) in documents {
            match serde_json::to_vec(&document) {
                Ok(body) => upserts.push((key, Bytes::from(body))),
                Err(error) => {
                    let index = routes.iter().find(|(_, r)| r.key() == key).map_or(0, |(i, _)| *i);
                    return Ok(Err(FoldFailed {
                        index,
                        position: records.get(index).map_or(0, |r| r.global_position),
                        error: Box::new(error),
                    }));
                }
            }
        }
        Ok(Ok(upserts))
    }
}

impl<S: RunnerStore, P: Projection> BatchHandler<S> for DocumentHandler<P> {
    async fn handle(&mut self, store: &S, lease: &Lease, batch: &LogBatch) -> Result<u64, BatchError> {
        let mut records = &batch.events[..];
        let mut position = batch.next_position;
        let mut failure = None;
        // On a failure, commit the events before it with the checkpoint at it, then report it.
        loop {
            match self.fold(store, records).await? {
                Ok(upserts) => {
                    store
                        .commit_documents(
                            lease,
                            DocumentCommit {
                                collection: self.collection.clone(),
                                upserts,
                                position,
                                version: P::VERSION,
                            },
                        )
                        .await?;
                    return match failure {
                        None => Ok(position),
                        Some((position, error)) => Err(BatchError::Event { position, error }),
                    };
                }
                Err(failed) => {
                    records = &records[..failed.index];
                    position = failed.position;
                    failure = Some((failed.position, failed.error));
                }
            }
        }
    }
}

fn decode_document<P: Projection>(collection: &str, key: &str, body: &[u8]) -> Result<P, RunnerError> {
    serde_json::from_slice(body).map_err(|source| RunnerError::Document {
        collection: collection.to_owned(),
        key: key.to_owned(),
        source,
    })
}
