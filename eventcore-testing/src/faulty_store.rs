//! A store wrapper that injects faults into appends and snapshot loads, for tests of what a
//! caller does when the store misbehaves (lost replies, slow commits, corrupt snapshots).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventcore::store::{EventFilter, LogBatch, StreamAppend, StreamPage};
use eventcore::{AppendResult, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot, StoreError};
use uuid::Uuid;

/// A call the wrapper is about to pass on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Call<'a> {
    /// The `n`-th append (from 0) to `stream_id`.
    Append {
        /// How many appends came before.
        n: u64,
        /// The stream.
        stream_id: &'a str,
    },
    /// A snapshot load of `stream_id`.
    LoadSnapshot {
        /// The stream.
        stream_id: &'a str,
    },
}

/// What to do with a call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Fault {
    /// Pass it on.
    None,
    /// Fail it without passing it on.
    Fail(StoreError),
    /// Pass it on, then fail anyway (a reply lost after the commit).
    CommitThenFail(StoreError),
    /// Wait, then pass it on, in a task of its own that finishes even if the caller gives up
    /// (a slow commit).
    Delay(Duration),
}

/// The plan that decides each call's fault.
type Plan = Arc<dyn Fn(Call<'_>) -> Fault + Send + Sync>;

/// Wraps store `S`, asking `plan` what to do with each append and snapshot load.
///
/// ```
/// use eventcore::{MemoryStore, StoreError};
/// use eventcore_testing::faulty_store::{Call, Fault, FaultyStore};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("connection reset")]
/// struct Reset;
///
/// // Every third append commits but loses its reply.
/// let store = FaultyStore::new(MemoryStore::new(), |call| match call {
///     Call::Append { n, .. } if n % 3 == 0 => Fault::CommitThenFail(StoreError::ambiguous(Reset)),
///     _ => Fault::None,
/// });
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct FaultyStore<S> {
    inner: S,
    plan: Plan,
    appends: Arc<AtomicU64>,
}

impl<S> std::fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("appends", &self.appends.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<S: EventStore> FaultyStore<S> {
    /// `inner`, with faults decided by `plan`.
    pub fn new(inner: S, plan: impl Fn(Call<'_>) -> Fault + Send + Sync + 'static) -> Self {
        Self {
            inner,
            plan: Arc::new(plan),
            appends: Arc::default(),
        }
    }

    /// Appends asked for so far (failed ones included).
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventStore> EventStore for FaultyStore<S> {
    const STREAM_PAGE: usize = S::STREAM_PAGE;

    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        match (self.plan)(Call::Append { n, stream_id }) {
            Fault::None => self.inner.append(stream_id, expected, events).await,
            Fault::Fail(error) => Err(error),
            Fault::CommitThenFail(error) => {
                self.inner.append(stream_id, expected, events).await?;
                Err(error)
            }
            Fault::Delay(delay) => {
                let (inner, stream_id) = (self.inner.clone(), stream_id.to_owned());
                let task = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.append(&stream_id, expected, events).await
                });
                task.await.map_err(StoreError::backend)?
            }
        }
    }

    /// Faults as [`append`](EventStore::append), planned on the first part's stream.
    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        let first = parts.first().map_or("", |p| p.stream_id.as_str());
        match (self.plan)(Call::Append { n, stream_id: first }) {
            Fault::None => self.inner.append_all(parts).await,
            Fault::Fail(error) => Err(error),
            Fault::CommitThenFail(error) => {
                self.inner.append_all(parts).await?;
                Err(error)
            }
            Fault::Delay(delay) => {
                let inner = self.inner.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.append_all(parts).await
                });
                task.await.map_err(StoreError::backend)?
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from, limit).await
    }

    async fn visit_stream<E: Send>(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
        visit: impl FnMut(&RecordedEvent) -> Result<(), E> + Send,
    ) -> Result<Result<StreamPage, E>, StoreError> {
        self.inner.visit_stream(stream_id, from, limit, visit).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_batch(
        &self,
        from: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        self.inner.read_batch(from, filter, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    async fn find_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.find_event(event_id).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        match (self.plan)(Call::LoadSnapshot { stream_id }) {
            Fault::Fail(error) | Fault::CommitThenFail(error) => Err(error),
            Fault::None | Fault::Delay(_) => self.inner.load_snapshot(stream_id).await,
        }
    }
}
