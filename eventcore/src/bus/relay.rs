//! [`Relay`]: publishes the store's log to a broker bus, at least once, in order per stream.
//!
//! The store's log is the outbox: the relay reads it gap-free from its checkpoint (the runner
//! machinery: one active relay per store by a fenced lease, status and lag like any runner),
//! publishes each batch, and moves its checkpoint only once the broker acknowledged the whole
//! batch. A relay that crashes between the two publishes the batch again: consumers see the same
//! event ids (NATS drops the duplicates within its window; handlers are idempotent).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::event_bus::EventBus;
use super::transport::Broker;
use super::transport::BusError;
use crate::envelope::RecordedEvent;
use crate::projection::{DEFAULT_BATCH_SIZE, DEFAULT_LEASE_TTL};
use crate::runner::{
    drive, new_owner, Backoff, BatchError, BatchHandler, DocumentCommit, DriverConfig, Ended, Lease,
    RetryPolicy, Runner, RunnerState, RunnerStore, Running, StatusBoard,
};
use crate::store::{EventFilter, LogBatch, StoreError};

/// Turns a stored event into the message published for it (`None`: not published), such as a
/// domain event into an integration event.
pub type Translate = Arc<dyn Fn(&RecordedEvent) -> Option<RecordedEvent> + Send + Sync>;

/// Publishes the store's log to a broker bus; configure it, then [`start`](Relay::start) it.
pub struct Relay<S> {
    store: S,
    bus: EventBus<Broker>,
    name: String,
    batch_size: usize,
    lease_ttl: Duration,
    backoff: Backoff,
    translate: Option<Translate>,
    integration: Option<crate::integration::Translate>,
}

impl<S> std::fmt::Debug for Relay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("name", &self.name)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl<S: RunnerStore> Relay<S> {
    /// A relay from `store`'s log to `bus`, named `relay` (its checkpoint and lease).
    pub fn new(store: S, bus: EventBus<Broker>) -> Self {
        Self {
            store,
            bus,
            name: "relay".to_owned(),
            batch_size: DEFAULT_BATCH_SIZE,
            lease_ttl: DEFAULT_LEASE_TTL,
            backoff: Backoff::default(),
            translate: None,
            integration: None,
        }
    }

    /// Its name: its checkpoint and lease (another name relays the same log again, to another bus).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Events read and published per batch (default 500).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long the relay's lease lasts without renewal (default 30 s).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Waits between attempts when the broker or the store fails (it retries without end).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Translates each event on the way out (for example into an integration event, keeping
    /// its id, correlation and causation); `None` publishes nothing for it.
    pub fn translate(
        mut self,
        translate: impl Fn(&RecordedEvent) -> Option<RecordedEvent> + Send + Sync + 'static,
    ) -> Self {
        self.translate = Some(Arc::new(translate));
        self
    }

    /// Publishes integration events instead of the stored events: each event `translate`
    /// handles becomes its integration message (correlation and causation ids carried over, a
    /// message id stable across republishing), the others stay inside. A stored event that does
    /// not translate (it does not decode) stops the relay there, retried with backoff and shown
    /// in its status, rather than be skipped.
    pub fn integration(mut self, translate: crate::integration::Translate) -> Self {
        self.integration = Some(translate);
        self
    }

    /// Starts the relay: it takes its lease (standing by while another process relays), catches
    /// up from its checkpoint, then follows the log live.
    pub fn start(self) -> Running<S> {
        let cancel = CancellationToken::new();
        let board = Arc::new(StatusBoard::new(&self.name, 1));
        let config = DriverConfig {
            name: self.name.clone(),
            filter: EventFilter::all(),
            batch_size: self.batch_size,
            owner: new_owner(),
            lease_ttl: self.lease_ttl,
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                backoff: self.backoff,
            },
            busy_state: RunnerState::CatchingUp,
            stop_at_head: false,
        };
        let publisher = Publisher {
            bus: self.bus,
            translate: self.translate,
            integration: self.integration,
            collection: format!("eventcore.relay.{}", self.name),
        };
        let task = {
            let (store, board, cancel) = (self.store.clone(), Arc::clone(&board), cancel.clone());
            tokio::spawn(async move {
                crate::runner::note_kind(&store, &config.name, crate::runner::RunnerKind::Relay).await;
                match drive(store, publisher, config, &board, cancel).await {
                    Ended::Stopped(lease) => lease,
                    Ended::Failed => None,
                }
            })
        };
        Running::new(self.store, vec![Runner::new(board, task)], cancel)
    }
}

/// The relay's [`BatchHandler`]: publish the batch, then move the checkpoint.
struct Publisher {
    bus: EventBus<Broker>,
    translate: Option<Translate>,
    integration: Option<crate::integration::Translate>,
    collection: String,
}

impl<S: RunnerStore> BatchHandler<S> for Publisher {
    async fn handle(&mut self, store: &S, lease: &Lease, batch: &LogBatch) -> Result<u64, BatchError> {
        if let Some(translate) = &self.integration {
            let mut messages = Vec::new();
            let mut failed = None;
            for event in &batch.events {
                match translate.translate(event) {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => {}
                    Err(error) => {
                        failed = Some((event.global_position, error));
                        break;
                    }
                }
            }
            self.bus
                .publish_messages(&messages)
                .await
                .map_err(|e| BatchError::Unavailable(Box::new(e)))?;
            // An event that does not translate (its payload does not decode) stops the relay
            // there, after the ones before it are published: reported, retried, never skipped.
            let Some((position, error)) = failed else {
                return self.checkpoint(store, lease, batch).await;
            };
            self.checkpoint_at(store, lease, position).await?;
            return Err(BatchError::Event {
                position,
                error: Box::new(error),
            });
        }
        let translated: Vec<RecordedEvent>;
        let messages = match &self.translate {
            Some(translate) => {
                translated = batch.events.iter().filter_map(|event| translate(event)).collect();
                &translated
            }
            None => &batch.events,
        };
        match self.bus.publish(messages).await {
            Ok(()) => self.checkpoint(store, lease, batch).await,
            Err(BusError::TooLarge {
                event_id,
                size,
                limit,
            }) => {
                // Everything before it is on the broker: checkpoint at it, and report it at its
                // position (retried with backoff, so raising the broker's limit unblocks it;
                // never skipped).
                let error = BusError::TooLarge {
                    event_id,
                    size,
                    limit,
                };
                let Some(position) = self.position_of(batch, messages, event_id) else {
                    return Err(BatchError::Unavailable(Box::new(error)));
                };
                self.checkpoint_at(store, lease, position).await?;
                Err(BatchError::Event {
                    position,
                    error: Box::new(error),
                })
            }
            Err(error) => Err(BatchError::Unavailable(Box::new(error))),
        }
    }
}

impl Publisher {
    /// Moves the relay's checkpoint past `batch` (after the broker acknowledged it).
    async fn checkpoint<S: RunnerStore>(
        &self,
        store: &S,
        lease: &Lease,
        batch: &LogBatch,
    ) -> Result<u64, BatchError> {
        self.checkpoint_at(store, lease, batch.next_position).await?;
        Ok(batch.next_position)
    }

    /// Moves the relay's checkpoint to `position` (the next event to publish).
    async fn checkpoint_at<S: RunnerStore>(
        &self,
        store: &S,
        lease: &Lease,
        position: u64,
    ) -> Result<(), StoreError> {
        store
            .commit_documents(
                lease,
                DocumentCommit {
                    collection: self.collection.clone(),
                    upserts: Vec::new(),
                    position,
                    version: 1,
                },
            )
            .await
    }

    /// The log position of the stored event behind message `event_id` of `messages` (the batch's
    /// events, or their translations, in order).
    fn position_of(&self, batch: &LogBatch, messages: &[RecordedEvent], event_id: uuid::Uuid) -> Option<u64> {
        let message = messages.iter().find(|m| m.event_id == event_id)?;
        // A translation keeps its event's position; else match by id.
        batch
            .events
            .iter()
            .find(|e| e.event_id == event_id)
            .map(|e| e.global_position)
            .or(Some(message.global_position).filter(|p| *p > 0))
    }
}
