//! Dead letters: events a consumer gave up on, kept whole (payload, envelope, error chain) where
//! an operator can list, replay or discard them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cloudevents::{self, Source};
use crate::envelope::RecordedEvent;
use crate::runner::{RunnerError, RunnerStore};
use crate::store::StoreError;

/// The collection of a consumer's dead letters.
pub(crate) fn collection(consumer: &str) -> String {
    format!("eventcore.dead_letters.{consumer}")
}

/// An event a consumer gave up on, with everything needed to understand and replay it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The letter's id: the event's id (one letter per event and consumer).
    pub id: Uuid,
    /// The consumer that gave up.
    pub consumer: String,
    /// The event, whole.
    pub event: RecordedEvent,
    /// Deliveries before giving up (0 for an event parked behind an earlier dead letter).
    pub attempts: u32,
    /// When it first failed.
    pub first_failure: DateTime<Utc>,
    /// When it last failed.
    pub last_failure: DateTime<Utc>,
    /// The error and its causes, outermost first.
    pub error: Vec<String>,
    /// Whether a replay was requested and not yet done.
    pub replay_requested: bool,
}

/// A dead letter as stored: the event as CloudEvents JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    consumer: String,
    event: serde_json::Value,
    attempts: u32,
    first_failure: DateTime<Utc>,
    last_failure: DateTime<Utc>,
    error: Vec<String>,
    #[serde(default)]
    replay_requested: bool,
}

impl DeadLetter {
    /// Where the letter's event stands in the order events were stored or published: its store
    /// position, then (for integration messages, which have none) its time, then when it failed.
    pub(crate) fn log_order(&self) -> (u64, DateTime<Utc>, DateTime<Utc>) {
        (
            self.event.global_position,
            self.event.occurred_at,
            self.first_failure,
        )
    }

    /// A letter for `event`, given up on after `attempts` deliveries with `error`.
    pub(crate) fn new(
        consumer: &str,
        event: &RecordedEvent,
        attempts: u32,
        first_failure: DateTime<Utc>,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        let mut chain = vec![error.to_string()];
        let mut cause = error.source();
        while let Some(inner) = cause {
            chain.push(inner.to_string());
            cause = inner.source();
        }
        Self {
            id: event.event_id,
            consumer: consumer.to_owned(),
            event: event.clone(),
            attempts,
            first_failure,
            last_failure: Utc::now(),
            error: chain,
            replay_requested: false,
        }
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Result<Bytes, StoreError> {
        let event = cloudevents::to_json(&self.event, &Source::AggregateType).map_err(StoreError::backend)?;
        let stored = Stored {
            consumer: self.consumer.clone(),
            event: serde_json::from_str(&event).map_err(StoreError::backend)?,
            attempts: self.attempts,
            first_failure: self.first_failure,
            last_failure: self.last_failure,
            error: self.error.clone(),
            replay_requested: self.replay_requested,
        };
        serde_json::to_vec(&stored)
            .map(Bytes::from)
            .map_err(StoreError::backend)
    }

    /// Reads a stored letter back.
    pub(crate) fn decode(key: &str, body: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            stream_id: String::new(),
            stream_version: 0,
            reason: format!("dead letter `{key}`: {reason}"),
        };
        let stored: Stored = serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
        let event = cloudevents::from_json(&stored.event.to_string()).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            id: event.event_id,
            consumer: stored.consumer,
            event,
            attempts: stored.attempts,
            first_failure: stored.first_failure,
            last_failure: stored.last_failure,
            error: stored.error,
            replay_requested: stored.replay_requested,
        })
    }
}

/// The dead letters of one consumer: list them, replay them (back to the consumer, with the
/// same event id) or discard them.
#[derive(Debug, Clone)]
pub struct DeadLetters<S> {
    pub(crate) store: S,
    pub(crate) consumer: String,
}

impl<S> DeadLetters<S> {
    pub(crate) fn new(store: S, consumer: &str) -> Self {
        Self {
            store,
            consumer: consumer.to_owned(),
        }
    }
}

impl<S: RunnerStore> DeadLetters<S> {
    /// Every dead letter of the consumer, in the order the events were stored.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, RunnerError> {
        let mut letters = self
            .store
            .list_documents(&collection(&self.consumer))
            .await?
            .iter()
            .map(|(key, body)| DeadLetter::decode(key, body))
            .collect::<Result<Vec<_>, _>>()?;
        letters.sort_by_key(DeadLetter::log_order);
        Ok(letters)
    }

    /// How many dead letters the consumer has.
    pub async fn count(&self) -> Result<usize, RunnerError> {
        Ok(self
            .store
            .list_documents(&collection(&self.consumer))
            .await?
            .len())
    }

    /// The dead letter `id`, if there is one.
    pub async fn get(&self, id: Uuid) -> Result<Option<DeadLetter>, RunnerError> {
        let key = id.to_string();
        let found = self
            .store
            .load_documents(&collection(&self.consumer), vec![key.clone()])
            .await?;
        Ok(found
            .get(&key)
            .map(|body| DeadLetter::decode(&key, body))
            .transpose()?)
    }

    /// Hands letter `id` back to the running consumer, which handles the event again (with the
    /// same event id) and removes the letter once it succeeds; `false` if there is no such letter.
    pub async fn replay(&self, id: Uuid) -> Result<bool, RunnerError> {
        let Some(mut letter) = self.get(id).await? else {
            return Ok(false);
        };
        letter.replay_requested = true;
        self.store
            .put_document(
                &collection(&self.consumer),
                &id.to_string(),
                Some(letter.encode()?),
            )
            .await?;
        Ok(true)
    }

    /// Replays every dead letter; how many.
    pub async fn replay_all(&self) -> Result<usize, RunnerError> {
        let letters = self.list().await?;
        for letter in &letters {
            self.replay(letter.id).await?;
        }
        Ok(letters.len())
    }

    /// Drops letter `id` for good; `false` if there is no such letter.
    pub async fn discard(&self, id: Uuid) -> Result<bool, RunnerError> {
        if self.get(id).await?.is_none() {
            return Ok(false);
        }
        self.store
            .put_document(&collection(&self.consumer), &id.to_string(), None)
            .await?;
        Ok(true)
    }
}
