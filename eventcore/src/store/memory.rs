//! An in-memory event store, for tests and prototypes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    bound_page_bytes, resent_batch, validate_append, validate_append_all, AppendResult, EventFilter,
    EventStore, ExpectedVersion, LogBatch, Snapshot, StoreError, StreamAppend, StreamPage, UnitOfWork,
    DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::subscription::{ordered_subscription, EventStream, SubscribeAll};

/// An event store that keeps everything in memory; clones share the same events.
///
/// Besides events it keeps small tables of keyed values, written in a
/// [`transaction`](Self::transaction) together with appends: what read models, checkpoints and
/// other state of the runners live in when the events are in memory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<RwLock<Log>>,
    /// The last global position, sent after every append (wakes subscriptions).
    commits: Arc<watch::Sender<u64>>,
    max_payload_bytes: usize,
}

#[derive(Debug, Default)]
struct Log {
    /// Every event in global order; `global_position` is index + 1.
    events: Vec<RecordedEvent>,
    /// Indices into `events` of each stream's events, in stream order.
    streams: HashMap<String, Vec<usize>>,
    /// Index into `events` of each event id.
    event_ids: HashMap<Uuid, usize>,
    snapshots: HashMap<String, Snapshot>,
    /// Keyed values by table, written through transactions.
    tables: HashMap<String, BTreeMap<String, Bytes>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            commits: Arc::new(watch::Sender::new(0)),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// Sets the largest payload accepted, in bytes.
    pub fn with_max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// Runs `work` as one atomic unit: its appends and table writes all happen, or (when it
    /// returns `Err`) none of them does. Other readers and writers wait until it ends, so keep it
    /// short; subscriptions are woken after it commits.
    ///
    /// ```
    /// use eventcore::{ExpectedVersion, MemoryStore, StoreError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = MemoryStore::new();
    /// store.transaction(|tx| {
    ///     tx.put("totals", "acc-1", "100".into());
    ///     Ok::<_, StoreError>(())
    /// })?;
    /// assert_eq!(store.get("totals", "acc-1").as_deref(), Some(&b"100"[..]));
    /// # Ok(()) }
    /// ```
    pub fn transaction<T, E>(
        &self,
        work: impl FnOnce(&mut MemoryTransaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        // A poisoned lock only means another thread panicked; every change is undone on failure
        // (and a panic inside `work` rolls back through the transaction's drop), so the log is
        // never left half-written.
        let mut log = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut tx = MemoryTransaction {
            undo: Undo::mark(&log),
            log: &mut log,
            max_payload_bytes: self.max_payload_bytes,
            done: false,
        };
        let result = work(&mut tx);
        match result {
            Ok(value) => {
                tx.done = true;
                let head = tx.log.events.len() as u64;
                drop(tx);
                if head != *self.commits.borrow() {
                    // Sent under the write lock, so the signal follows the order of the commits.
                    self.commits.send_replace(head);
                }
                Ok(value)
            }
            Err(error) => {
                drop(tx);
                Err(error)
            }
        }
    }

    /// A receiver of the last committed position, changed after every commit.
    pub(crate) fn commit_receiver(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The value stored under `key` in `table`, outside any transaction.
    pub fn get(&self, table: &str, key: &str) -> Option<Bytes> {
        let log = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        log.tables.get(table).and_then(|t| t.get(key)).cloned()
    }

    fn read_stream_now(log: &Log, stream_id: &str, from_version: u64, limit: usize) -> Vec<RecordedEvent> {
        let Some(indices) = log.streams.get(stream_id) else {
            return Vec::new();
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut page: Vec<RecordedEvent> = indices
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&i| log.events[i].clone())
            .collect();
        bound_page_bytes(&mut page);
        page
    }

    /// Calls `visit` on up to `limit` events of `stream_id` from `from_version`, in order, under
    /// the read lock and without copying them; stops at the first error. The page is bounded as
    /// `read_stream`'s is.
    fn visit_now<E>(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
        mut visit: impl FnMut(&RecordedEvent) -> Result<(), E>,
    ) -> Result<StreamPage, E> {
        let log = self.log();
        let Some(indices) = log.streams.get(stream_id) else {
            return Ok(StreamPage::default());
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut read = StreamPage::default();
        for &i in indices.iter().skip(skip).take(limit) {
            if read.bytes >= super::MAX_PAGE_BYTES {
                break;
            }
            let event = &log.events[i];
            visit(event)?;
            read.events += 1;
            read.bytes = read.bytes.saturating_add(event.payload.len());
        }
        Ok(read)
    }

    fn log(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Appends `events` to the log, checking the expectation and ids; leaves the log unchanged on error.
fn append_to(
    log: &mut Log,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<AppendResult, StoreError> {
    let actual = log.streams.get(stream_id).map_or(0, |s| s.len() as u64);
    let resent = |log: &Log| {
        resent_batch(
            stream_id,
            events.iter().map(|e| {
                log.event_ids.get(&e.event_id).map(|&i| {
                    let stored = &log.events[i];
                    (
                        stored.stream_id.as_str(),
                        stored.stream_version,
                        stored.global_position,
                    )
                })
            }),
        )
    };
    if !expected.accepts(actual) {
        return match resent(log) {
            Some(original) => Ok(original),
            None => Err(StoreError::VersionConflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual,
            }),
        };
    }
    let mut batch_ids = HashSet::with_capacity(events.len());
    if let Some(dup) = events
        .iter()
        .find(|e| log.event_ids.contains_key(&e.event_id) || !batch_ids.insert(e.event_id))
    {
        return match resent(log) {
            Some(original) => Ok(original),
            None => Err(StoreError::DuplicateEventId {
                event_id: dup.event_id,
            }),
        };
    }
    let first_version = actual + 1;
    let mut positions = Vec::with_capacity(events.len());
    let mut indices = Vec::with_capacity(events.len());
    for (offset, event) in events.into_iter().enumerate() {
        let index = log.events.len();
        let position = index as u64 + 1;
        log.event_ids.insert(event.event_id, index);
        log.events
            .push(event.into_recorded(stream_id, first_version + offset as u64, position));
        positions.push(position);
        indices.push(index);
    }
    let last_version = actual + indices.len() as u64;
    if !indices.is_empty() {
        log.streams
            .entry(stream_id.to_owned())
            .or_default()
            .extend(indices);
    }
    Ok(AppendResult {
        first_version,
        last_version,
        positions,
    })
}

/// What a failed transaction must restore.
#[derive(Debug)]
struct Undo {
    /// Events before the transaction.
    events: usize,
    /// Previous values of table entries, in write order.
    tables: Vec<(String, String, Option<Bytes>)>,
}

impl Undo {
    fn mark(log: &Log) -> Self {
        Self {
            events: log.events.len(),
            tables: Vec::new(),
        }
    }

    fn rollback(self, log: &mut Log) {
        for event in log.events.drain(self.events..) {
            log.event_ids.remove(&event.event_id);
            if let Some(stream) = log.streams.get_mut(&event.stream_id) {
                stream.retain(|&i| i < self.events);
                if stream.is_empty() {
                    log.streams.remove(&event.stream_id);
                }
            }
        }
        for (table, key, previous) in self.tables.into_iter().rev() {
            let entries = log.tables.entry(table).or_default();
            match previous {
                Some(value) => entries.insert(key, value),
                None => entries.remove(&key),
            };
        }
    }
}

/// The inside of a [`MemoryStore::transaction`]: appends and table writes that commit together.
#[derive(Debug)]
pub struct MemoryTransaction<'a> {
    log: &'a mut Log,
    undo: Undo,
    max_payload_bytes: usize,
    done: bool,
}

impl Drop for MemoryTransaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let undo = std::mem::replace(
                &mut self.undo,
                Undo {
                    events: 0,
                    tables: Vec::new(),
                },
            );
            undo.rollback(self.log);
        }
    }
}

impl MemoryTransaction<'_> {
    /// The highest position written so far, this transaction's appends included.
    pub(crate) fn head(&self) -> u64 {
        self.log.events.len() as u64
    }

    /// The value under `key` in `table`, as this transaction sees it.
    pub fn get(&self, table: &str, key: &str) -> Option<&Bytes> {
        self.log.tables.get(table).and_then(|t| t.get(key))
    }

    /// Stores `value` under `key` in `table`.
    pub fn put(&mut self, table: &str, key: &str, value: Bytes) {
        let previous = self
            .log
            .tables
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
        self.undo
            .tables
            .push((table.to_owned(), key.to_owned(), previous));
    }

    /// Removes `key` from `table`.
    pub fn delete(&mut self, table: &str, key: &str) {
        let previous = self.log.tables.get_mut(table).and_then(|t| t.remove(key));
        if previous.is_some() {
            self.undo
                .tables
                .push((table.to_owned(), key.to_owned(), previous));
        }
    }

    /// Every entry of `table`, in key order.
    pub fn entries(&self, table: &str) -> impl Iterator<Item = (&str, &Bytes)> {
        self.log
            .tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Removes every entry of `table`.
    pub fn clear(&mut self, table: &str) {
        let keys: Vec<String> = self
            .log
            .tables
            .get(table)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.delete(table, &key);
        }
    }
}

impl UnitOfWork for MemoryTransaction<'_> {
    fn append(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.max_payload_bytes)?;
        append_to(self.log, stream_id, expected, events)
    }

    fn read_stream(
        &mut self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(MemoryStore::read_stream_now(
            self.log,
            stream_id,
            from_version,
            limit,
        ))
    }
}

impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.transaction(|tx| tx.append(stream_id, expected, events))
    }

    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        validate_append_all(&parts, self.max_payload_bytes)?;
        // Under the write lock; a failing part undoes the parts before it.
        self.transaction(|tx| {
            parts
                .into_iter()
                .map(|part| append_to(tx.log, &part.stream_id, part.expected, part.events))
                .collect()
        })
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(Self::read_stream_now(&self.log(), stream_id, from_version, limit))
    }

    /// Lends the stored events without copying them, under the read lock.
    async fn visit_stream<E: Send>(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
        visit: impl FnMut(&RecordedEvent) -> Result<(), E> + Send,
    ) -> Result<Result<StreamPage, E>, StoreError> {
        Ok(self.visit_now(stream_id, from_version, limit, visit))
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        let skip = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut page: Vec<RecordedEvent> = log.events.iter().skip(skip).take(limit).cloned().collect();
        bound_page_bytes(&mut page);
        Ok(page)
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        Ok(self.log().streams.get(stream_id).map_or(0, |s| s.len() as u64))
    }

    /// Appends commit one at a time in position order, so every position below the head is settled.
    async fn read_batch(
        &self,
        from_position: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        let log = self.log();
        let head = log.events.len() as u64;
        let from = from_position.max(1);
        let skip = usize::try_from(from - 1).unwrap_or(usize::MAX);
        let mut events: Vec<RecordedEvent> = log
            .events
            .iter()
            .skip(skip)
            .filter(|e| filter.matches(&e.event_type))
            .take(limit)
            .cloned()
            .collect();
        let full = events.len() == limit;
        let before = events.len();
        bound_page_bytes(&mut events);
        let next_position = match events.last() {
            Some(last) if full || events.len() < before => last.global_position + 1,
            _ => (head + 1).max(from),
        };
        Ok(LogBatch {
            events,
            next_position,
            head,
        })
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.log().events.len() as u64)
    }

    async fn find_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let log = self.log();
        Ok(log.event_ids.get(&event_id).map(|&i| log.events[i].clone()))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut log = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let newer = log
            .snapshots
            .get(&snapshot.stream_id)
            .is_none_or(|old| old.stream_version <= snapshot.stream_version);
        if newer {
            log.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        }
        Ok(())
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.log().snapshots.get(stream_id).cloned())
    }
}

/// Appends happen one at a time under the log's lock and assign positions in order, so a read
/// never sees a position before a lower one: [`ordered_subscription`] is gap-free here.
impl SubscribeAll for MemoryStore {
    fn subscribe_all(&self, from_position: u64) -> EventStream {
        ordered_subscription(self.clone(), from_position, self.commits.subscribe(), None)
    }
}
