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
/// live in the store's database, and no broker is needed. `EventBus::redis` (feature `redis`)
/// and `EventBus::nats` (feature `nats`) run on a message broker fed by a
/// [`Relay`](super::Relay); the `S` of such a bus is [`Broker`](super::Broker). Subscribing,
/// the running handle and the dead letters work the same on every transport.
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
            concurrency: usize::MAX,
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
    concurrency: usize,
    lease_ttl: Duration,
}

impl<S, H: EventHandler> Subscription<S, H> {
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

    /// Events read per batch (default 500); a NATS consumer takes one message at a time per
    /// partition, whatever this says, to keep each stream in order.
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long the owner's lease lasts without renewal (default 30 s): how soon another
    /// process takes over from one that crashed. On NATS, how long a message stays in flight
    /// without a sign of life before it is redelivered (the consumer's ack wait).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Partitions of a broker bus this process handles at once, at most (default: its fair
    /// share of them among the processes running the consumer). The local bus reads the store's
    /// log in one place, in order, and does not use it.
    pub fn concurrency(mut self, partitions: usize) -> Self {
        self.concurrency = partitions.max(1);
        self
    }
}

impl<S: RunnerStore, H: EventHandler> Subscription<S, H> {
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

#[cfg(any(feature = "redis", feature = "nats"))]
mod broker {
    use std::sync::Arc;

    use super::{EventBus, Subscription};
    use crate::bus::dead_letter::DeadLetters;
    use crate::bus::handler::EventHandler;
    use crate::bus::transport::{start_consumer, Broker, BusError, ConsumerConfig, Transport};
    use crate::projection::{DEFAULT_BATCH_SIZE, DEFAULT_LEASE_TTL};
    use crate::runner::{RetryPolicy, Running};

    impl EventBus<Broker> {
        /// A bus on Redis Streams at `url` with the default [`RedisOptions`](crate::bus::RedisOptions).
        #[cfg(feature = "redis")]
        pub async fn redis(url: &str) -> Result<Self, BusError> {
            Self::redis_with(url, crate::bus::RedisOptions::default()).await
        }

        /// A bus on Redis Streams at `url` with `options`.
        #[cfg(feature = "redis")]
        pub async fn redis_with(url: &str, options: crate::bus::RedisOptions) -> Result<Self, BusError> {
            let transport = crate::bus::redis::RedisTransport::connect(url, options).await?;
            Ok(Self::on(Transport::Redis(Arc::new(transport))))
        }

        /// A bus on NATS JetStream at `url` with the default [`NatsOptions`](crate::bus::NatsOptions).
        #[cfg(feature = "nats")]
        pub async fn nats(url: &str) -> Result<Self, BusError> {
            Self::nats_with(url, crate::bus::NatsOptions::default()).await
        }

        /// A bus on NATS JetStream at `url` with `options`.
        #[cfg(feature = "nats")]
        pub async fn nats_with(url: &str, options: crate::bus::NatsOptions) -> Result<Self, BusError> {
            let transport = crate::bus::nats::NatsTransport::connect(url, options).await?;
            Ok(Self::on(Transport::Nats(Arc::new(transport))))
        }

        fn on(transport: Transport) -> Self {
            Self {
                store: Broker {
                    transport: Arc::new(transport),
                },
            }
        }

        /// Prepares a consumer running `handler`; configure it, then [`start`](Subscription::start) it.
        pub fn subscribe<H: EventHandler>(&self, handler: H) -> Subscription<Broker, H> {
            Subscription {
                store: self.store.clone(),
                handler: Arc::new(handler),
                retry: RetryPolicy::default(),
                batch_size: DEFAULT_BATCH_SIZE.min(100),
                concurrency: usize::MAX,
                lease_ttl: DEFAULT_LEASE_TTL,
            }
        }

        /// The dead letters of consumer `consumer`, kept in the broker. A running consumer picks
        /// up replays within a second.
        pub fn dead_letters(&self, consumer: &str) -> DeadLetters<Broker> {
            DeadLetters::new(self.store.clone(), consumer)
        }

        /// Every consumer the broker knows on this bus, with how far it is behind (handed out
        /// and unacknowledged, not yet handed out), summed over the partitions, by name.
        pub async fn consumer_lag(&self) -> Result<Vec<crate::bus::ConsumerLag>, BusError> {
            self.store.transport.consumer_lag().await
        }

        /// Which broker the bus runs on: `redis` or `nats`.
        pub fn transport_name(&self) -> &'static str {
            self.store.transport.name()
        }

        /// Publishes integration messages (CloudEvents of kind `integration`) and returns once
        /// the broker acknowledged them all: each message's id is the broker's deduplication id
        /// (NATS), and messages with one [ordering key](crate::integration::IntegrationMessage::ordering_key)
        /// keep their order. Consumers handle them with an
        /// [`IntegrationHandler`](crate::integration::IntegrationHandler).
        pub async fn publish_messages(
            &self,
            messages: &[crate::integration::IntegrationMessage],
        ) -> Result<(), BusError> {
            self.store.transport.publish_integration(messages).await
        }

        /// Starts `pump` publishing its outbox to this bus: rows committed in the service's own
        /// transactions are published after the commit, at least once, in commit order, and
        /// removed once the broker acknowledged them (a republished row keeps its message id).
        pub fn publish_outbox<O: crate::outbox::OutboxSource>(
            &self,
            pump: crate::outbox::OutboxPump<O>,
        ) -> crate::outbox::RunningPump {
            let bus = self.clone();
            pump.start(move |batch: Vec<crate::integration::IntegrationMessage>| {
                let bus = bus.clone();
                async move { bus.publish_messages(&batch).await }
            })
        }

        /// Publishes `messages` (events as stored, or translated for the outside) and returns
        /// once the broker acknowledged them all; events of one stream keep their order.
        pub(crate) async fn publish(&self, messages: &[crate::RecordedEvent]) -> Result<(), BusError> {
            self.store.transport.publish(messages).await
        }
    }

    impl<H: EventHandler> Subscription<Broker, H> {
        /// Starts the consumer: it joins the other processes running it, takes its share of
        /// the partitions and handles what they hold, from the oldest unhandled message on.
        pub fn start(self) -> Running<Broker> {
            let config = ConsumerConfig {
                retry: self.retry,
                batch_size: self.batch_size,
                concurrency: self.concurrency,
                lease_ttl: self.lease_ttl,
            };
            start_consumer(&self.store, self.handler, config)
        }
    }
}
