//! The repository: loads aggregates from their streams and runs commands against them.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::{Aggregate, Handle, SnapshotPolicy};
use crate::codec::RecordDecodeError;
use crate::envelope::RecordedEvent;
use crate::envelope::{CommandContext, Envelope, NewEvent};
use crate::event::EncodeError;
use crate::store::{
    page_is_last, AppendResult, EventStore, ExpectedVersion, Snapshot, StoreError, StreamRecord, UnitOfWork,
};

/// Events read per page when rehydrating an aggregate.
const READ_PAGE: usize = 1024;

/// Appends of a batch whose outcome stays unknown, in all, before giving up.
const RESOLVE_ATTEMPTS: u32 = 6;
/// First wait before re-sending a batch whose outcome is unknown; it doubles each time.
const RESOLVE_FIRST_DELAY: Duration = Duration::from_millis(20);
/// Longest wait between re-sends.
const RESOLVE_MAX_DELAY: Duration = Duration::from_millis(500);

/// An append that did not answer within the repository's [append timeout](Repository::with_append_timeout).
#[derive(Debug, thiserror::Error)]
#[error("the append did not answer within {0:?}")]
struct AppendTimedOut(Duration);

/// Applies every event of `page` to `state`; the version of the last one (or `version`).
fn fold<A: Aggregate>(
    state: &mut A,
    page: &[RecordedEvent],
    mut version: u64,
) -> Result<u64, RecordDecodeError> {
    for record in page {
        apply_record(state, &record.stream_id, StreamRecord::of(record))?;
        version = record.stream_version;
    }
    Ok(version)
}

/// Applies the events one stored event of `stream_id` decodes into.
fn apply_record<A: Aggregate>(
    state: &mut A,
    stream_id: &str,
    record: StreamRecord<'_>,
) -> Result<(), RecordDecodeError> {
    let events = crate::codec::decode_payload::<A::Event>(
        record.event_type,
        record.event_version,
        record.payload,
        false,
    )
    .map_err(|source| RecordDecodeError {
        stream_id: stream_id.to_owned(),
        stream_version: record.stream_version,
        event_id: record.event_id,
        source,
    })?;
    for event in events {
        state.apply(&event);
    }
    Ok(())
}

/// Encodes a command's events with the context's ids and causal data.
pub(crate) fn encode_batch<A: Aggregate>(
    events: &[A::Event],
    stream_id: &str,
    id: &str,
    context: &CommandContext,
) -> Result<Vec<NewEvent>, EncodeError> {
    events
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let mut new = NewEvent::encode(e, A::AGGREGATE_TYPE, id)?.with_context(context);
            new.event_id = context.event_id(stream_id, index);
            Ok(new)
        })
        .collect()
}

/// The envelopes of a written batch.
fn committed<E>(
    stream_id: &str,
    new_events: Vec<NewEvent>,
    events: Vec<E>,
    written: &AppendResult,
) -> Committed<E> {
    let events = new_events
        .into_iter()
        .zip(events)
        .zip(written.positions.iter().copied())
        .enumerate()
        .map(|(i, ((new, event), position))| {
            new.into_envelope(stream_id, written.first_version + i as u64, position, event)
        })
        .collect();
    Committed {
        version: written.last_version,
        events,
    }
}

/// The stream id of aggregate `id` of type `A`: `"{aggregate type}-{id}"`, whatever the store.
///
/// ```
/// # use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "counter")]
/// # pub struct Incremented { pub by: u32 }
/// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
/// # pub enum CounterEvent { Incremented(Incremented) }
/// # #[derive(Debug, Default)]
/// # pub struct Counter { pub value: u64 }
/// # pub struct Increment { pub by: u32 }
/// # #[derive(Debug, thiserror::Error)]
/// # #[error("full")]
/// # pub struct Full;
/// # #[aggregate(events = CounterEvent, error = Full)]
/// # impl Counter {
/// #     #[command]
/// #     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, Full> { Ok(vec![Incremented { by: cmd.by }.into()]) }
/// #     #[apply]
/// #     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(eventcore::stream_id::<Counter>("c-1"), "counter-c-1");
/// # Ok(()) }
/// ```
pub fn stream_id<A: Aggregate>(id: &str) -> String {
    format!("{}-{}", A::AGGREGATE_TYPE, id)
}

/// One event of an aggregate's history ([`Repository::events`]): as the code reads it now, and
/// the type and version it was stored with.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent<E> {
    /// The event, upcast to the current version (its envelope has the current type and version).
    pub event: Envelope<E>,
    /// The event type it was stored with (differs after a rename).
    pub stored_type: String,
    /// The version it was stored with.
    pub stored_version: u32,
}

/// Loads and saves aggregates of type `A` in the store `S`.
///
/// ```
/// # use eventcore::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # use schemars::JsonSchema;
/// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
/// # #[event(aggregate = "counter")]
/// # pub struct Incremented { pub by: u32 }
/// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
/// # pub enum CounterEvent { Incremented(Incremented) }
/// # #[derive(Debug, Default)]
/// # pub struct Counter { pub value: u64 }
/// # pub struct Increment { pub by: u32 }
/// # #[derive(Debug, thiserror::Error)]
/// # #[error("full")]
/// # pub struct Full;
/// # #[aggregate(events = CounterEvent, error = Full)]
/// # impl Counter {
/// #     #[command]
/// #     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, Full> { Ok(vec![Incremented { by: cmd.by }.into()]) }
/// #     #[apply]
/// #     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counters = Repository::<Counter, _>::new(MemoryStore::new());
/// counters.execute("c-1", Increment { by: 2 }).await?;
/// counters.execute("c-1", Increment { by: 3 }).await?;
/// let loaded = counters.load("c-1").await?;
/// assert_eq!((loaded.state().value, loaded.version()), (5, 2));
/// # Ok(()) }
/// ```
pub struct Repository<A, S> {
    store: S,
    append_timeout: Option<Duration>,
    /// Projections updated in each append's transaction.
    inline: Vec<Arc<dyn crate::projection::InlineProjector>>,
    /// Appends through the store's inline path, when there are inline projections.
    inline_append: Option<Arc<dyn crate::projection::InlineAppend>>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            append_timeout: self.append_timeout,
            inline: self.inline.clone(),
            inline_append: self.inline_append.clone(),
            aggregate: PhantomData,
        }
    }
}

impl<A, S: std::fmt::Debug> std::fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .field("append_timeout", &self.append_timeout)
            .finish()
    }
}

/// An aggregate's state as of a version of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    state: A,
    version: u64,
}

impl<A> Loaded<A> {
    /// The state.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The stream version the state reflects (0 for an aggregate with no events).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Takes the state.
    pub fn into_state(self) -> A {
        self.state
    }
}

/// What a successful command appended.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    /// The stream version after the append.
    pub version: u64,
    /// The appended events, as stored.
    pub events: Vec<Envelope<E>>,
}

/// Errors of [`Repository`]; `E` is the aggregate's business error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E> {
    /// The aggregate rejected the command; nothing was appended.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// Another writer appended to the stream since it was loaded; nothing was appended.
    #[error("concurrency conflict on stream `{stream_id}`: loaded at version {expected}, now at {actual}")]
    Conflict {
        /// The stream.
        stream_id: String,
        /// The version the command was decided on.
        expected: u64,
        /// The version found at append time.
        actual: u64,
    },
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] RecordDecodeError),
    /// A produced event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl<E> RepositoryError<E> {
    /// Whether the error is a concurrency conflict, which a retry on fresh state may resolve.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether running the command again may succeed: a conflict, or a store that was
    /// unavailable. An [ambiguous](Self::is_ambiguous) outcome is not retryable this way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } => true,
            Self::Store(error) => error.is_retryable() && !error.is_ambiguous(),
            _ => false,
        }
    }

    /// Whether the command's events may have been appended although this error was returned:
    /// the store stayed unreachable while the repository tried to learn the outcome. Running
    /// the command again could apply it twice; re-run it with the same idempotency key.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_ambiguous())
    }

    /// The business error, if the command was rejected.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> From<StoreError> for RepositoryError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::VersionConflict {
                stream_id,
                expected: ExpectedVersion::Exact(expected),
                actual,
            } => Self::Conflict {
                stream_id,
                expected,
                actual,
            },
            other => Self::Store(other),
        }
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            append_timeout: None,
            inline: Vec::new(),
            inline_append: None,
            aggregate: PhantomData,
        }
    }

    /// Bounds each append the repository sends by `timeout`, from inside, so that it can learn
    /// the outcome of one that runs late.
    ///
    /// An append that times out may still commit (SQLite's blocking write and PostgreSQL's
    /// statement go on), so it counts as an [ambiguous](StoreError::Ambiguous) outcome: the
    /// repository re-sends the very same batch, which the store never stores twice, until it
    /// learns whether the batch committed (see [`execute_with`](Self::execute_with)). A command
    /// therefore returns within about `timeout` per send plus the backoff between sends.
    ///
    /// Do not wrap `execute` in `tokio::time::timeout` instead: a command whose future is
    /// dropped may commit later, and nothing can then tell the caller; running it again could
    /// apply it twice. Use this timeout, or an [idempotency key](CommandContext::idempotency_key).
    pub fn with_append_timeout(mut self, timeout: Duration) -> Self {
        self.append_timeout = Some(timeout);
        self
    }

    /// Runs projection `P` inline: its documents are updated in the transaction of every append
    /// this repository makes, so readers never see the events without them, and a handler that
    /// fails rolls the append back ([`StoreError::ProjectionFailed`]). Events appended other
    /// ways do not reach it; run the projection with [`Projections`](crate::projection::Projections)
    /// for those. Read its documents with `Projections::get`.
    pub fn with_inline<P: crate::projection::Projection>(mut self) -> Self
    where
        S: crate::projection::InlineStore,
    {
        self.inline.push(crate::projection::projector::<P>());
        self.inline_append = Some(Arc::new(crate::projection::InlineAppender {
            store: self.store.clone(),
            projectors: self.inline.clone().into(),
        }));
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream id of aggregate `id`: `"{aggregate type}-{id}"` (also [`eventcore::stream_id`](crate::stream_id),
    /// which needs no store type).
    pub fn stream_id(id: &str) -> String {
        stream_id::<A>(id)
    }

    /// Up to `limit` ids of this aggregate type that have events, in id order, after `after`
    /// (the last id of the previous page; `None` for the first page).
    ///
    /// ```
    /// # use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use schemars::JsonSchema;
    /// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
    /// # #[event(aggregate = "counter")]
    /// # pub struct Incremented { pub by: u32 }
    /// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
    /// # pub enum CounterEvent { Incremented(Incremented) }
    /// # #[derive(Debug, Default)]
    /// # pub struct Counter { pub value: u64 }
    /// # pub struct Increment { pub by: u32 }
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("full")]
    /// # pub struct Full;
    /// # #[aggregate(events = CounterEvent, error = Full)]
    /// # impl Counter {
    /// #     #[command]
    /// #     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, Full> { Ok(vec![Incremented { by: cmd.by }.into()]) }
    /// #     #[apply]
    /// #     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let counters = Repository::<Counter, _>::new(store.clone());
    /// for id in ["c-3", "c-1", "c-2"] {
    ///     counters.execute(id, Increment { by: 1 }).await?;
    /// }
    /// assert_eq!(counters.ids(None, 2).await?, ["c-1", "c-2"]);
    /// assert_eq!(counters.ids(Some("c-2"), 2).await?, ["c-3"]);
    /// # Ok(()) }
    /// ```
    pub async fn ids(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, RepositoryError<A::Error>> {
        let prefix = Self::stream_id("");
        let after = after.map(Self::stream_id);
        let streams = self.store.list_streams(&prefix, after.as_deref(), limit).await?;
        Ok(streams
            .into_iter()
            .filter_map(|stream| stream.stream_id.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// The typed history of aggregate `id`: up to `limit` stored events from stream version
    /// `from_version` (1 for the start), each upcast to the current version with the type and
    /// version it was stored with. A stored event that upcasting splits gives several entries,
    /// one it retires none; the next page starts after the last entry's `event.stream_version`.
    ///
    /// ```
    /// # use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use schemars::JsonSchema;
    /// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
    /// # #[event(aggregate = "counter")]
    /// # pub struct Incremented { pub by: u32 }
    /// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
    /// # pub enum CounterEvent { Incremented(Incremented) }
    /// # #[derive(Debug, Default)]
    /// # pub struct Counter { pub value: u64 }
    /// # pub struct Increment { pub by: u32 }
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("full")]
    /// # pub struct Full;
    /// # #[aggregate(events = CounterEvent, error = Full)]
    /// # impl Counter {
    /// #     #[command]
    /// #     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, Full> { Ok(vec![Incremented { by: cmd.by }.into()]) }
    /// #     #[apply]
    /// #     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter, _>::new(MemoryStore::new());
    /// counters.execute("c-1", Increment { by: 2 }).await?;
    /// counters.execute("c-1", Increment { by: 3 }).await?;
    /// let page = counters.events("c-1", 1, 10).await?;
    /// assert_eq!(page.len(), 2);
    /// assert_eq!(page[1].event.stream_version, 2);
    /// assert_eq!((page[1].stored_type.as_str(), page[1].stored_version), ("counter.incremented", 1));
    /// let CounterEvent::Incremented(second) = &page[1].event.payload;
    /// assert_eq!(second.by, 3);
    /// # Ok(()) }
    /// ```
    pub async fn events(
        &self,
        id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEvent<A::Event>>, RepositoryError<A::Error>> {
        let records = self
            .store
            .read_stream(&Self::stream_id(id), from_version.max(1), limit)
            .await?;
        let mut history = Vec::with_capacity(records.len());
        for record in &records {
            for event in record.decode_all::<A::Event>()? {
                history.push(HistoryEvent {
                    event,
                    stored_type: record.event_type.clone(),
                    stored_version: record.event_version,
                });
            }
        }
        Ok(history)
    }

    /// Rebuilds aggregate `id` from its stream (the default state if it has no events).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        self.load_stream(&Self::stream_id(id)).await
    }

    /// [`load`](Self::load) for a caller with its own rejection type (a [`Decision`](crate::Decision)).
    pub(crate) async fn load_for<E>(&self, id: &str) -> Result<Loaded<A>, RepositoryError<E>> {
        self.load_stream(&Self::stream_id(id)).await
    }

    async fn load_stream<E>(&self, stream_id: &str) -> Result<Loaded<A>, RepositoryError<E>> {
        let Loaded {
            mut state,
            mut version,
        } = self.load_snapshot(stream_id).await?;
        let limit = S::STREAM_PAGE;
        loop {
            let page = self
                .store
                .visit_stream_records(stream_id, version + 1, limit, |record| {
                    apply_record(&mut state, stream_id, record).map(|()| version = record.stream_version)
                })
                .await??;
            if page.is_last(limit) {
                return Ok(Loaded { state, version });
            }
        }
    }

    /// The state from the newest usable snapshot, or the default state at version 0.
    ///
    /// A snapshot of another snapshot version, one the store reads as corrupt, or one that no
    /// longer decodes is ignored: the state is rebuilt from the events and a fresh snapshot
    /// replaces it at the next append. Backend errors still fail the load.
    async fn load_snapshot<E>(&self, stream_id: &str) -> Result<Loaded<A>, RepositoryError<E>> {
        let empty = Loaded {
            state: A::default(),
            version: 0,
        };
        if A::SNAPSHOT_POLICY == SnapshotPolicy::Never {
            return Ok(empty);
        }
        let snapshot = match self.store.load_snapshot(stream_id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Ok(empty),
            Err(error @ StoreError::Corrupt { .. }) => {
                tracing::warn!(stream_id, %error, "ignoring a snapshot the store reads as corrupt");
                return Ok(empty);
            }
            Err(error) => return Err(error.into()),
        };
        if snapshot.snapshot_version != A::SNAPSHOT_VERSION {
            tracing::debug!(
                stream_id,
                found = snapshot.snapshot_version,
                "ignoring a snapshot of another version"
            );
            return Ok(empty);
        }
        match A::decode_snapshot(&snapshot.state) {
            Some(Ok(state)) => Ok(Loaded {
                state,
                version: snapshot.stream_version,
            }),
            Some(Err(error)) => {
                tracing::warn!(stream_id, %error, "ignoring a snapshot that does not decode");
                Ok(empty)
            }
            None => Ok(empty),
        }
    }

    /// Stores a snapshot of `state` at `version`. A failure only costs a longer next load.
    async fn save_snapshot(&self, stream_id: &str, state: &A, version: u64) {
        let encoded = match state.encode_snapshot() {
            Some(Ok(bytes)) => bytes,
            Some(Err(error)) => {
                tracing::warn!(stream_id, %error, "cannot encode a snapshot");
                return;
            }
            None => return,
        };
        let snapshot = Snapshot {
            stream_id: stream_id.to_owned(),
            stream_version: version,
            snapshot_version: A::SNAPSHOT_VERSION,
            state: encoded.into(),
            taken_at: chrono::Utc::now(),
        };
        if let Err(error) = self.store.save_snapshot(snapshot).await {
            tracing::warn!(stream_id, %error, "cannot store a snapshot");
        }
    }

    /// Runs `command` on aggregate `id` and appends the events it produces.
    ///
    /// The append expects the version the command was decided on, so a concurrent writer
    /// makes it fail with [`RepositoryError::Conflict`] rather than overwrite.
    pub async fn execute<C>(
        &self,
        id: &str,
        command: C,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        self.execute_with(id, command, &CommandContext::default()).await
    }

    /// Like [`execute`](Self::execute), copying `context` onto every produced event.
    ///
    /// With an [idempotency key](CommandContext::idempotency_key), the events get ids derived
    /// from the key: when they are already stored (the command ran before with this key), the
    /// command is not decided again and the first run's outcome is returned.
    ///
    /// When the store cannot say whether the append committed (a reply lost to the network), the
    /// repository re-sends the very same batch, which a store recognises and never stores twice,
    /// until it learns the outcome; if the store stays unreachable the error
    /// [`is_ambiguous`](RepositoryError::is_ambiguous).
    pub async fn execute_with<C>(
        &self,
        id: &str,
        command: C,
        context: &CommandContext,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        self.run(id, command, context, RESOLVE_ATTEMPTS).await
    }

    /// Runs `command` on aggregate `id` only if the aggregate is at `version`, the version the
    /// caller saw (an HTTP `If-Match` with the ETag of a read): if it moved past it (or is not
    /// there yet), nothing is decided and the result is [`RepositoryError::Conflict`] with both
    /// versions (answer `412 Precondition Failed`). Otherwise as [`execute`](Self::execute): the
    /// append also expects `version`.
    ///
    /// ```
    /// # use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use schemars::JsonSchema;
    /// # #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
    /// # #[event(aggregate = "counter")]
    /// # pub struct Incremented { pub by: u32 }
    /// # #[derive(DomainEvent, Debug, Clone, PartialEq)]
    /// # pub enum CounterEvent { Incremented(Incremented) }
    /// # #[derive(Debug, Default)]
    /// # pub struct Counter { pub value: u64 }
    /// # pub struct Increment { pub by: u32 }
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("full")]
    /// # pub struct Full;
    /// # #[aggregate(events = CounterEvent, error = Full)]
    /// # impl Counter {
    /// #     #[command]
    /// #     fn increment(&self, cmd: Increment) -> Result<Vec<CounterEvent>, Full> { Ok(vec![Incremented { by: cmd.by }.into()]) }
    /// #     #[apply]
    /// #     fn incremented(&mut self, e: &Incremented) { self.value += u64::from(e.by); }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter, _>::new(MemoryStore::new());
    /// let seen = counters.execute("c-1", Increment { by: 2 }).await?.version; // the ETag: 1
    /// counters.execute_expecting("c-1", seen, Increment { by: 3 }).await?;
    /// // Another request based on version 1 is now stale.
    /// let stale = counters.execute_expecting("c-1", seen, Increment { by: 4 }).await;
    /// assert!(matches!(stale, Err(RepositoryError::Conflict { expected: 1, actual: 2, .. })));
    /// assert_eq!(counters.load("c-1").await?.state().value, 5);
    /// # Ok(()) }
    /// ```
    pub async fn execute_expecting<C>(
        &self,
        id: &str,
        version: u64,
        command: C,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        self.run_expecting(
            id,
            command,
            &CommandContext::default(),
            RESOLVE_ATTEMPTS,
            Some(version),
        )
        .await
    }

    /// [`execute_with`](Self::execute_with), sending an append whose outcome stays unknown up to
    /// `sends` times in all.
    async fn run<C>(
        &self,
        id: &str,
        command: C,
        context: &CommandContext,
        sends: u32,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        self.run_expecting(id, command, context, sends, None).await
    }

    /// [`run`](Self::run), deciding only on the aggregate at `expected` when given.
    async fn run_expecting<C>(
        &self,
        id: &str,
        command: C,
        context: &CommandContext,
        sends: u32,
        expected: Option<u64>,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        let stream_id = Self::stream_id(id);
        if context.idempotency_key.is_some() {
            if let Some(earlier) = self.earlier_run(&stream_id, context).await? {
                return Ok(earlier);
            }
        }
        let mut loaded = self.load_stream(&stream_id).await?;
        if let Some(expected) = expected.filter(|&v| v != loaded.version) {
            return Err(RepositoryError::Conflict {
                stream_id,
                expected,
                actual: loaded.version,
            });
        }
        let events = loaded.state.handle(command).map_err(RepositoryError::Rejected)?;
        if events.is_empty() {
            return Ok(Committed {
                version: loaded.version,
                events: Vec::new(),
            });
        }
        let new_events = encode_batch::<A>(&events, &stream_id, id, context)?;
        let written = match self
            .append_resolving(
                &stream_id,
                ExpectedVersion::Exact(loaded.version),
                &new_events,
                sends,
            )
            .await
        {
            Ok(written) => written,
            // A run with the same key may have committed between the check and the append.
            Err(error) if error.is_conflict() && context.idempotency_key.is_some() => {
                return match self.earlier_run(&stream_id, context).await? {
                    Some(earlier) => Ok(earlier),
                    None => Err(error),
                };
            }
            Err(error) => return Err(error),
        };
        if context.idempotency_key.is_some() && !self.is_own_batch(&new_events).await? {
            // A concurrent run with the same key stored its batch first, and the store returned
            // that batch's result for ours: report what is stored, as the first run decided it.
            if let Some(earlier) = self.earlier_run(&stream_id, context).await? {
                return Ok(earlier);
            }
        }
        if A::SNAPSHOT_POLICY.is_due(loaded.version, written.last_version) {
            for event in &events {
                loaded.state.apply(event);
            }
            self.save_snapshot(&stream_id, &loaded.state, written.last_version)
                .await;
        }
        Ok(committed(&stream_id, new_events, events, &written))
    }

    /// Appends a batch; while the outcome is unknown, re-sends the same batch (same event ids)
    /// with a short backoff until the store answers for it, `sends` times at most.
    async fn append_resolving(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        batch: &[NewEvent],
        sends: u32,
    ) -> Result<crate::store::AppendResult, RepositoryError<A::Error>> {
        let mut delay = RESOLVE_FIRST_DELAY;
        let mut outcome = self.send(stream_id, expected, batch).await;
        for _ in 1..sends.max(1) {
            match &outcome {
                Err(error) if error.is_ambiguous() => {}
                _ => break,
            }
            tracing::debug!(stream_id, "append outcome unknown; re-sending the same batch");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RESOLVE_MAX_DELAY);
            outcome = match self.send(stream_id, expected, batch).await {
                // Still unreachable: the first attempt's outcome is still unknown.
                Err(error) if error.is_retryable() && !error.is_ambiguous() => {
                    Err(StoreError::Ambiguous(Box::new(error)))
                }
                other => other,
            };
        }
        Ok(outcome?)
    }

    /// Sends one append, bounded by the append timeout: one that times out has an unknown outcome.
    async fn send(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        batch: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let append = async {
            match &self.inline_append {
                Some(inline) => inline.append(stream_id, expected, batch.to_vec()).await,
                None => self.store.append(stream_id, expected, batch.to_vec()).await,
            }
        };
        match self.append_timeout {
            None => append.await,
            Some(limit) => tokio::time::timeout(limit, append)
                .await
                .unwrap_or_else(|_| Err(StoreError::ambiguous(AppendTimedOut(limit)))),
        }
    }

    /// Whether the stored first event of `batch` is the one encoded here (and not the event
    /// with the same derived id from another run of the command).
    async fn is_own_batch(&self, batch: &[NewEvent]) -> Result<bool, RepositoryError<A::Error>> {
        let Some(first) = batch.first() else {
            return Ok(true);
        };
        Ok(self
            .store
            .find_event(first.event_id)
            .await?
            .is_some_and(|stored| stored.occurred_at == first.occurred_at && stored.payload == first.payload))
    }

    /// The outcome of an earlier run of a command with the context's idempotency key, if its
    /// events are stored.
    async fn earlier_run(
        &self,
        stream_id: &str,
        context: &CommandContext,
    ) -> Result<Option<Committed<A::Event>>, RepositoryError<A::Error>> {
        let Some(first) = self.store.find_event(context.event_id(stream_id, 0)).await? else {
            return Ok(None);
        };
        if first.stream_id != stream_id {
            return Err(StoreError::DuplicateEventId {
                event_id: first.event_id,
            }
            .into());
        }
        let mut events = Vec::new();
        let mut version = first.stream_version;
        'pages: loop {
            let page = self.store.read_stream(stream_id, version, READ_PAGE).await?;
            for record in &page {
                if record.event_id != context.event_id(stream_id, events.len()) {
                    break 'pages;
                }
                events.extend(record.decode_all::<A::Event>()?);
                version = record.stream_version + 1;
            }
            if page_is_last(&page, READ_PAGE) {
                break;
            }
        }
        Ok(Some(Committed {
            version: version - 1,
            events,
        }))
    }

    /// Runs `command` on aggregate `id` inside a store transaction (a [`UnitOfWork`]), so the
    /// events commit together with whatever else the transaction writes, or not at all.
    ///
    /// Snapshots are not taken here; the next [`execute`](Self::execute) takes one when due.
    pub fn execute_in<C, U: UnitOfWork>(
        &self,
        tx: &mut U,
        id: &str,
        command: C,
        context: &CommandContext,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
    {
        let stream_id = Self::stream_id(id);
        let mut state = A::default();
        let mut version = 0;
        loop {
            let page = tx.read_stream(&stream_id, version + 1, READ_PAGE)?;
            version = fold(&mut state, &page, version)?;
            if page_is_last(&page, READ_PAGE) {
                break;
            }
        }
        let events = state.handle(command).map_err(RepositoryError::Rejected)?;
        if events.is_empty() {
            return Ok(Committed {
                version,
                events: Vec::new(),
            });
        }
        let new_events = encode_batch::<A>(&events, &stream_id, id, context)?;
        let written = tx.append(&stream_id, ExpectedVersion::Exact(version), new_events.clone())?;
        Ok(committed(&stream_id, new_events, events, &written))
    }

    /// Runs a command, re-running it on fresh state up to `attempts` times while it conflicts.
    ///
    /// `make_command` builds the command for each attempt, so commands need not be `Clone`.
    ///
    /// A command is never decided again once its append was sent with an unknown outcome: the
    /// same batch is re-sent instead (up to `attempts` times as often as by
    /// [`execute_with`](Self::execute_with)) until the store answers for it. If it still cannot,
    /// the error [`is_ambiguous`](RepositoryError::is_ambiguous).
    pub async fn execute_retrying<C>(
        &self,
        id: &str,
        attempts: u32,
        context: &CommandContext,
        mut make_command: impl FnMut() -> C + Send,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
        C: Send,
    {
        let mut attempt = 1;
        loop {
            let sends = RESOLVE_ATTEMPTS.saturating_mul(attempts.max(1));
            match self.run(id, make_command(), context, sends).await {
                Err(e) if e.is_conflict() && attempt < attempts => {
                    tracing::debug!(
                        aggregate = A::AGGREGATE_TYPE,
                        id,
                        attempt,
                        "retrying after a conflict"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(feature = "postgres")]
impl<A: Aggregate> Repository<A, crate::store::PostgresStore> {
    /// Runs `command` on aggregate `id` inside the caller's PostgreSQL transaction, so the events
    /// commit together with whatever else it writes, or not at all.
    ///
    /// The stream's lock is taken first and held until the transaction ends, so the command is
    /// decided on the stream's latest version and no other writer of it can interleave. Use
    /// `READ COMMITTED`; after an error the transaction is aborted. Snapshots are not taken here,
    /// and subscriptions learn of the events at their next poll (or call
    /// [`PostgresStore::notify_subscribers`](crate::store::PostgresStore::notify_subscribers)
    /// after the commit).
    pub async fn execute_in_postgres<C>(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        id: &str,
        command: C,
        context: &CommandContext,
    ) -> Result<Committed<A::Event>, RepositoryError<A::Error>>
    where
        A: Handle<C>,
    {
        let stream_id = Self::stream_id(id);
        self.store.lock_stream_in(transaction, &stream_id).await?;
        let mut state = A::default();
        let mut version = 0;
        loop {
            let page = self
                .store
                .read_stream_in_transaction(
                    transaction,
                    &stream_id,
                    version + 1,
                    crate::store::PostgresStore::STREAM_PAGE,
                )
                .await?;
            version = fold(&mut state, &page, version)?;
            if page_is_last(&page, crate::store::PostgresStore::STREAM_PAGE) {
                break;
            }
        }
        let events = state.handle(command).map_err(RepositoryError::Rejected)?;
        if events.is_empty() {
            return Ok(Committed {
                version,
                events: Vec::new(),
            });
        }
        let new_events = encode_batch::<A>(&events, &stream_id, id, context)?;
        let written = self
            .store
            .append_in_transaction(
                transaction,
                &stream_id,
                ExpectedVersion::Exact(version),
                new_events.clone(),
            )
            .await?;
        Ok(committed(&stream_id, new_events, events, &written))
    }
}
