//! [`EventBus`]: subscribe handlers, read their dead letters.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::consumer::Consumer;
use super::dead_letter::DeadLetters;
use super::handler::EventHandler;
use crate::projection::{DEFAULT_BATCH_SIZE, DEFAULT_LEASE_TTL};
use crate::runner::{
    drive, new_owner, Backoff, DriverConfig, Ended, RetryPolicy, Runner, RunnerError, RunnerState,
    RunnerStore, Running, StatusBoard,
};
use crate::store::EventFilter;

/// Delivers committed events to handlers, at least once, with retries and dead letters.
///
/// [`EventBus::local`] feeds handlers from the store's own log: checkpoints and dead letters
/// live in the store's database, and no broker is needed.
#[derive(Debug, Clone)]
pub struct EventBus<S> {
    store: S,
}

impl<S: RunnerStore> EventBus<S> {
    /// A bus fed from `store`'s own log.
    pub fn local(store: S) -> Self {
        Self { store }
    }

    /// Prepares a consumer running `handler`; configure it, then [`start`](Subscription::start) it.
    pub fn subscribe<H: EventHandler>(&self, handler: H) -> Subscription<S, H> {
        Subscription {
            store: self.store.clone(),
            handler: Arc::new(handler),
            retry: RetryPolicy::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// The names of the consumers that have handled (or dead-lettered) events on this bus's
    /// store, sorted: how tools tell consumers' checkpoints from other runners'. A consumer
    /// that has not yet been delivered an event is not listed.
    pub async fn consumers(&self) -> Result<Vec<String>, RunnerError> {
        Ok(super::consumer::consumer_names(&self.store).await?)
    }

    /// The dead letters of consumer `consumer`. A running consumer picks up replays when it next
    /// wakes (a commit, or its poll interval).
    pub fn dead_letters(&self, consumer: &str) -> DeadLetters<S> {
        DeadLetters::new(self.store.clone(), consumer)
    }
}

/// A consumer being configured.
#[derive(Debug)]
pub struct Subscription<S, H> {
    store: S,
    handler: Arc<H>,
    retry: RetryPolicy,
    batch_size: usize,
    lease_ttl: Duration,
}

impl<S: RunnerStore, H: EventHandler> Subscription<S, H> {
    /// Deliveries of an event (crashes included) before it is dead-lettered (default 5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    /// Waits between attempts (default: 100 ms doubling to 30 s, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.retry.backoff = backoff;
        self
    }

    /// Events read per batch (default 500).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long the owner's lease lasts without renewal (default 30 s).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Starts the consumer: it catches up from its checkpoint, then follows live.
    pub fn start(self) -> Running<S> {
        let cancel = CancellationToken::new();
        let board = Arc::new(StatusBoard::new(H::NAME, 1));
        let config = DriverConfig {
            name: H::NAME.to_owned(),
            filter: EventFilter::event_types(crate::projection::support::stored_event_types(
                H::HANDLED_EVENT_TYPES,
            )),
            batch_size: self.batch_size,
            owner: new_owner(),
            lease_ttl: self.lease_ttl,
            retry: self.retry,
            busy_state: RunnerState::CatchingUp,
            stop_at_head: false,
        };
        let consumer = Consumer::new(self.handler, self.retry);
        let task = {
            let (store, board, cancel) = (self.store.clone(), Arc::clone(&board), cancel.clone());
            tokio::spawn(async move {
                match drive(store, consumer, config, &board, cancel).await {
                    Ended::Stopped(lease) => lease,
                    Ended::Failed => None,
                }
            })
        };
        Running::new(self.store, vec![Runner::new(board, task)], cancel)
    }
}
