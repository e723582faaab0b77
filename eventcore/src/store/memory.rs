//! An in-memory event store, for tests and prototypes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;
use uuid::Uuid;

use super::{
    validate_append, AppendResult, EventStore, ExpectedVersion, Snapshot, StoreError,
    DEFAULT_MAX_PAYLOAD_BYTES,
};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::subscription::{ordered_subscription, EventStream, SubscribeAll};

/// An event store that keeps everything in memory; clones share the same events.
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
    event_ids: HashSet<Uuid>,
    snapshots: HashMap<String, Snapshot>,
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

    fn append_now(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events, self.max_payload_bytes)?;
        // A poisoned lock only means another thread panicked mid-read; appends are applied
        // after all checks, so the log itself is never half-written.
        let mut log = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let actual = log.streams.get(stream_id).map_or(0, |s| s.len() as u64);
        if !expected.accepts(actual) {
            return Err(StoreError::VersionConflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual,
            });
        }
        let mut batch_ids = HashSet::with_capacity(events.len());
        if let Some(dup) = events
            .iter()
            .find(|e| log.event_ids.contains(&e.event_id) || !batch_ids.insert(e.event_id))
        {
            return Err(StoreError::DuplicateEventId {
                event_id: dup.event_id,
            });
        }
        let first_version = actual + 1;
        let mut positions = Vec::with_capacity(events.len());
        let mut indices = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let index = log.events.len();
            let position = index as u64 + 1;
            log.event_ids.insert(event.event_id);
            log.events
                .push(event.into_recorded(stream_id, first_version + offset as u64, position));
            positions.push(position);
            indices.push(index);
        }
        let last_version = actual + indices.len() as u64;
        log.streams
            .entry(stream_id.to_owned())
            .or_default()
            .extend(indices);
        // Sent under the write lock, so the signal follows the order of the commits.
        self.commits.send_replace(log.events.len() as u64);
        Ok(AppendResult {
            first_version,
            last_version,
            positions,
        })
    }

    fn read_stream_now(&self, stream_id: &str, from_version: u64, limit: usize) -> Vec<RecordedEvent> {
        let log = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let Some(indices) = log.streams.get(stream_id) else {
            return Vec::new();
        };
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        indices
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&i| log.events[i].clone())
            .collect()
    }

    fn read_all_now(&self, from_position: u64, limit: usize) -> Vec<RecordedEvent> {
        let log = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let skip = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        log.events.iter().skip(skip).take(limit).cloned().collect()
    }
}

impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_now(stream_id, expected, events)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_stream_now(stream_id, from_version, limit))
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_all_now(from_position, limit))
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let log = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        Ok(log.streams.get(stream_id).map_or(0, |s| s.len() as u64))
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
        let log = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        Ok(log.snapshots.get(stream_id).cloned())
    }
}

/// Appends happen one at a time under the log's lock and assign positions in order, so a read
/// never sees a position before a lower one: [`ordered_subscription`] is gap-free here.
impl SubscribeAll for MemoryStore {
    fn subscribe_all(&self, from_position: u64) -> EventStream {
        ordered_subscription(self.clone(), from_position, self.commits.subscribe(), None)
    }
}
