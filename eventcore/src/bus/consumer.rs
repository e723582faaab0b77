//! A consumer fed from the store's own log: handles each event at least once, retries with
//! backoff, counts deliveries across crashes, dead-letters what keeps failing, and keeps events
//! of one stream in order behind a dead letter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dead_letter::{collection, DeadLetter};
use super::handler::EventHandler;
use crate::envelope::RecordedEvent;
use crate::runner::{BatchError, BatchHandler, DocumentCommit, Lease, RetryPolicy, RunnerStore};
use crate::store::{LogBatch, StoreError};

/// How often a busy consumer looks for requested replays.
const BUSY_REPLAY_CHECK: Duration = Duration::from_secs(1);

/// The collection of consumers' delivery markers.
const DELIVERIES: &str = "eventcore.deliveries";

/// The names of the consumers that have started handling events on `store` (each keeps a
/// delivery marker), sorted.
pub(crate) async fn consumer_names<S: RunnerStore>(store: &S) -> Result<Vec<String>, StoreError> {
    Ok(store
        .list_documents(DELIVERIES)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// Written before a batch is handled: how often delivery from this position has started. A
/// marker found at the same position on the next run means the last one crashed mid-batch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    position: u64,
    deliveries: u32,
}

/// The [`BatchHandler`] of a consumer.
pub(crate) struct Consumer<H> {
    handler: Arc<H>,
    retry: RetryPolicy,
    letters: String,
    /// The last marker written (read from the store on the first batch).
    marker: Option<Marker>,
    /// Streams with a dead letter: later events of theirs wait behind it.
    blocked: Option<HashMap<String, Uuid>>,
    /// When requested replays were last looked for while busy (idle wake-ups always look).
    replays_checked: Option<Instant>,
}

impl<H: EventHandler> Consumer<H> {
    pub(crate) fn new(handler: Arc<H>, retry: RetryPolicy) -> Self {
        Self {
            handler,
            retry,
            letters: collection(H::NAME),
            marker: None,
            blocked: None,
            replays_checked: None,
        }
    }

    /// Handles `event` until it succeeds or the attempts run out, starting at attempt `first`;
    /// the dead letter when it gives up.
    async fn deliver(&self, event: &RecordedEvent, first: u32) -> Option<DeadLetter> {
        let max = self.retry.max_attempts.max(1);
        let first_failure = Utc::now();
        if first > max {
            let crashed = Crashed(first - 1);
            return Some(DeadLetter::new(
                H::NAME,
                event,
                first - 1,
                first_failure,
                &crashed,
            ));
        }
        let mut delays = self.retry.backoff.delays();
        let mut attempt = first;
        loop {
            match self.handler.handle(event).await {
                Ok(_) => return None,
                Err(error) if !error.is_retryable() || attempt >= max => {
                    tracing::warn!(consumer = H::NAME, position = event.global_position, attempt, %error, "dead-lettering an event");
                    metrics::counter!("eventcore_dead_letters_total", "runner" => H::NAME).increment(1);
                    return Some(DeadLetter::new(H::NAME, event, attempt, first_failure, &error));
                }
                Err(error) => {
                    tracing::debug!(consumer = H::NAME, position = event.global_position, attempt, %error, "retrying an event");
                    metrics::counter!("eventcore_runner_retries_total", "runner" => H::NAME).increment(1);
                    tokio::time::sleep(delays.next().unwrap_or_default()).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The streams blocked by dead letters, loaded on first use.
    async fn blocked<S: RunnerStore>(&mut self, store: &S) -> Result<&mut HashMap<String, Uuid>, StoreError> {
        if self.blocked.is_none() {
            let mut blocked = HashMap::new();
            for (key, body) in store.list_documents(&self.letters).await? {
                let letter = DeadLetter::decode(&key, &body)?;
                blocked.entry(letter.event.stream_id.clone()).or_insert(letter.id);
            }
            self.blocked = Some(blocked);
        }
        Ok(self.blocked.get_or_insert_with(HashMap::new))
    }

    /// Handles the letters whose replay was requested, in position order: a success removes the
    /// letter; a failure keeps it (and the letters behind it in its stream).
    async fn replay<S: RunnerStore>(&mut self, store: &S) -> Result<(), StoreError> {
        let mut requested: Vec<DeadLetter> = Vec::new();
        for (key, body) in store.list_documents(&self.letters).await? {
            let letter = DeadLetter::decode(&key, &body)?;
            if letter.replay_requested {
                requested.push(letter);
            }
        }
        if requested.is_empty() {
            return Ok(());
        }
        requested.sort_by_key(|letter| letter.event.global_position);
        let mut still_failing: Vec<String> = Vec::new();
        for mut letter in requested {
            let key = letter.id.to_string();
            if still_failing.contains(&letter.event.stream_id) {
                continue;
            }
            match self.deliver(&letter.event, 1).await {
                None => store.put_document(&self.letters, &key, None).await?,
                Some(failed) => {
                    still_failing.push(letter.event.stream_id.clone());
                    letter.attempts += failed.attempts;
                    letter.last_failure = failed.last_failure;
                    letter.error = failed.error;
                    letter.replay_requested = false;
                    store
                        .put_document(&self.letters, &key, Some(letter.encode()?))
                        .await?;
                }
            }
        }
        // Recompute which streams are blocked.
        self.blocked = None;
        Ok(())
    }
}

impl<S: RunnerStore, H: EventHandler> BatchHandler<S> for Consumer<H> {
    async fn idle(&mut self, store: &S) -> Result<(), BatchError> {
        Ok(self.replay(store).await?)
    }

    async fn handle(&mut self, store: &S, lease: &Lease, batch: &LogBatch) -> Result<u64, BatchError> {
        // Listing the dead letters costs a read: while busy, look for replays once a second.
        if self
            .replays_checked
            .is_none_or(|at| at.elapsed() >= BUSY_REPLAY_CHECK)
        {
            self.replay(store).await?;
            self.replays_checked = Some(Instant::now());
        }
        let mut events = &batch.events[..];
        let mut next_position = batch.next_position;
        let mut first_attempt = 1;
        if let Some(first) = events.first() {
            if self.marker.is_none() {
                let found = store.load_documents(DELIVERIES, vec![H::NAME.to_owned()]).await?;
                self.marker = found
                    .get(H::NAME)
                    .and_then(|body| serde_json::from_slice::<Marker>(body).ok());
            }
            let deliveries = match self.marker {
                Some(marker) if marker.position == first.global_position => marker.deliveries + 1,
                _ => 1,
            };
            if deliveries > 1 {
                // The last delivery from here crashed: go one event at a time, so the crashes
                // are counted against the event that causes them.
                events = &events[..1];
                next_position = first.global_position + 1;
                first_attempt = deliveries;
            }
            let marker = Marker {
                position: first.global_position,
                deliveries,
            };
            let body = serde_json::to_vec(&marker).map_err(StoreError::backend)?;
            store.put_document(DELIVERIES, H::NAME, Some(body.into())).await?;
            self.marker = Some(marker);
        }
        let mut letters = Vec::new();
        for event in events {
            let blocker = self.blocked(store).await?.get(&event.stream_id).copied();
            let letter = match blocker {
                Some(blocker) => Some(DeadLetter::new(H::NAME, event, 0, Utc::now(), &Parked(blocker))),
                None => self.deliver(event, first_attempt).await,
            };
            if let Some(letter) = letter {
                self.blocked(store)
                    .await?
                    .entry(event.stream_id.clone())
                    .or_insert(letter.id);
                letters.push((letter.id.to_string(), letter.encode()?));
            }
        }
        store
            .commit_documents(
                lease,
                DocumentCommit {
                    collection: self.letters.clone(),
                    upserts: letters,
                    position: next_position,
                    version: 1,
                },
            )
            .await?;
        Ok(next_position)
    }
}

/// The consumer crashed while handling the event, this many times.
#[derive(Debug, thiserror::Error)]
#[error("the consumer stopped (crashed or was killed) while handling this event {0} times")]
struct Crashed(u32);

/// The event waits behind an earlier dead letter of its stream.
#[derive(Debug, thiserror::Error)]
#[error("waiting behind dead letter {0} of the same stream (events of a stream are handled in order)")]
struct Parked(Uuid);
