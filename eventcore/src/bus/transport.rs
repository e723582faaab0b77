//! Broker transports of the event bus: [`Broker`] is what an [`EventBus`] built with
//! `EventBus::redis` or `EventBus::nats` carries instead of a store. The transport is chosen when
//! the bus is built; subscribing, the running handle and the dead letters work the same on each.
//!
//! Events travel as CloudEvents 1.0 structured JSON. The relay publishes each event to one of the
//! bus's partitions, chosen by a hash of its stream id, so every event of a stream travels in
//! order through one partition. A partition is handled by one consumer process at a time (Redis:
//! a lease per partition, shared fairly among live processes; NATS: one message in flight per
//! partition), which is how competing consumers share the work and still keep each stream in
//! order.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::dead_letter::{DeadLetter, DeadLetters};
use super::handler::EventHandler;
use super::inbox::Inbox;
use super::letters::{LetterBox, RejectedMessage};
use crate::envelope::RecordedEvent;
use crate::runner::{RetryPolicy, RunnerError, RunnerState, RunnerStatus, Running, StatusBoard};
use crate::store::StoreError;

/// The transport of an event bus fed by a [`Relay`](super::Relay): a message broker.
///
/// Events travel as CloudEvents 1.0 structured JSON, each to one of the bus's partitions chosen
/// by a hash of its stream id, so every event of a stream travels in order through one
/// partition. A partition is handled by one process at a time: on Redis, by a lease per
/// partition, each live process taking its fair share (`ceil(partitions / processes)`, capped by
/// `concurrency`) and handing extras over when another process joins; on NATS, by a durable pull
/// consumer per partition with one message in flight, which any number of processes pull from.
/// So competing consumers share the work, and the events of a stream are handled in order:
/// within a partition, a failing event holds back only the later events of its own stream
/// (Redis) or of its partition (NATS) until it succeeds or is dead-lettered.
#[derive(Clone)]
pub struct Broker {
    pub(crate) transport: Arc<Transport>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("transport", &self.transport.name())
            .finish_non_exhaustive()
    }
}

/// The brokers a bus can run on.
pub(crate) enum Transport {
    /// Redis Streams.
    #[cfg(feature = "redis")]
    Redis(Arc<super::redis::RedisTransport>),
    /// NATS JetStream.
    #[cfg(feature = "nats")]
    Nats(Arc<super::nats::NatsTransport>),
}

/// Errors of a broker bus: connecting, publishing, consuming, dead letters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Redis failed.
    #[cfg(feature = "redis")]
    #[error("redis failed")]
    Redis(#[from] ::redis::RedisError),
    /// NATS failed.
    #[cfg(feature = "nats")]
    #[error("nats failed")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// An event could not be put on the wire.
    #[error("event {event_id} cannot be published: {reason}")]
    Encode {
        /// The event.
        event_id: uuid::Uuid,
        /// Why.
        reason: String,
    },
    /// A message is larger than the broker accepts (NATS `max_payload`); the messages before it
    /// were published and acknowledged, none after it was sent.
    #[error(
        "event {event_id} encodes to {size} bytes, over the broker's limit of {limit} bytes \
         (raise the server's max_payload, or translate the event to a smaller message)"
    )]
    TooLarge {
        /// The event, or the integration message's id.
        event_id: uuid::Uuid,
        /// Its encoded size.
        size: usize,
        /// The broker's limit.
        limit: usize,
    },
    /// A stored dead letter or record does not decode.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(feature = "nats")]
impl BusError {
    /// A NATS error.
    pub(crate) fn nats(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Nats(Box::new(error))
    }
}

impl From<BusError> for RunnerError {
    fn from(error: BusError) -> Self {
        match error {
            BusError::Store(store) => Self::Store(store),
            other => Self::Broker(Box::new(other)),
        }
    }
}

/// How a broker consumer runs: its retry policy, batch size and lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumerConfig {
    /// Attempts and waits between them.
    pub retry: RetryPolicy,
    /// Messages read per batch (Redis; a NATS partition takes one message at a time).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub batch_size: usize,
    /// Partitions this process handles at once, at most.
    pub concurrency: usize,
    /// How long a partition stays owned (Redis) or a message in flight (NATS) without a sign of life.
    pub lease_ttl: Duration,
}

impl Transport {
    /// The transport's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(_) => "redis",
            #[cfg(feature = "nats")]
            Self::Nats(_) => "nats",
        }
    }

    /// Publishes `messages` and returns once the broker has acknowledged every one; the events of
    /// one stream stay in the given order. The relay's (and the outbox's) way onto the wire.
    pub(crate) async fn publish(&self, messages: &[RecordedEvent]) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.publish(messages).await,
            #[cfg(feature = "nats")]
            Self::Nats(nats) => nats.publish(messages).await,
        }
    }

    /// Publishes integration messages, each with its message id as the broker's deduplication
    /// id and to the partition of its ordering key; returns once the broker acknowledged all.
    pub(crate) async fn publish_integration(
        &self,
        messages: &[crate::integration::IntegrationMessage],
    ) -> Result<(), BusError> {
        let wire = messages
            .iter()
            .map(WireMessage::integration)
            .collect::<Result<Vec<_>, _>>()?;
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.publish_wire(&wire).await,
            #[cfg(feature = "nats")]
            Self::Nats(nats) => nats.publish_wire(&wire).await,
        }
    }

    /// Where consumer `consumer` keeps its dead letters and rejected messages.
    pub(crate) fn letters(&self, consumer: &str) -> LetterBox {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => LetterBox::Redis(redis.letters(consumer)),
            #[cfg(feature = "nats")]
            Self::Nats(nats) => LetterBox::Nats(Box::new(nats.letters(consumer))),
        }
    }

    /// Whether consumer `consumer` has handled (or dead-lettered) every message published before
    /// `mark` was taken.
    async fn reached(&self, consumer: &str, mark: &Mark) -> Result<bool, BusError> {
        match (self, mark) {
            #[cfg(feature = "redis")]
            (Self::Redis(redis), Mark::Redis(ids)) => redis.reached(consumer, ids).await,
            #[cfg(feature = "nats")]
            (Self::Nats(nats), Mark::Nats(sequence)) => nats.reached(consumer, *sequence).await,
            #[allow(unreachable_patterns)]
            _ => Ok(false),
        }
    }

    /// Every consumer the broker knows on this bus, with its lag, by name.
    pub(crate) async fn consumer_lag(&self) -> Result<Vec<ConsumerLag>, BusError> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => redis.consumer_lag().await,
            #[cfg(feature = "nats")]
            Self::Nats(nats) => nats.consumer_lag().await,
        }
    }

    /// The end of what has been published so far.
    async fn mark(&self) -> Result<Mark, BusError> {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis(redis) => Ok(Mark::Redis(redis.mark().await?)),
            #[cfg(feature = "nats")]
            Self::Nats(nats) => Ok(Mark::Nats(nats.mark().await?)),
        }
    }
}

/// How far one consumer is behind on a broker bus, summed over the partitions it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerLag {
    /// The consumer's name (its Redis consumer groups, its NATS durable consumers).
    pub consumer: String,
    /// Partitions on which the broker knows the consumer.
    pub partitions: u32,
    /// Messages handed out to it and not yet acknowledged (being handled, or crashed with).
    pub pending: u64,
    /// Messages not yet handed out to it; `None` when the broker cannot tell (Redis, after
    /// entries were deleted or trimmed from a partition's middle).
    pub undelivered: Option<u64>,
}

impl ConsumerLag {
    /// Adds one partition's counts.
    fn add(&mut self, pending: u64, undelivered: Option<u64>) {
        self.partitions += 1;
        self.pending += pending;
        self.undelivered = self.undelivered.zip(undelivered).map(|(a, b)| a + b);
    }
}

/// Sums per-partition counts `(consumer, pending, undelivered)` into one lag per consumer, by name.
pub(crate) fn sum_lags(counts: impl IntoIterator<Item = (String, u64, Option<u64>)>) -> Vec<ConsumerLag> {
    let mut lags: std::collections::BTreeMap<String, ConsumerLag> = std::collections::BTreeMap::new();
    for (consumer, pending, undelivered) in counts {
        lags.entry(consumer.clone())
            .or_insert(ConsumerLag {
                consumer,
                partitions: 0,
                pending: 0,
                undelivered: Some(0),
            })
            .add(pending, undelivered);
    }
    lags.into_values().collect()
}

/// A message ready for the broker: CloudEvents JSON, the id brokers deduplicate on, and the key
/// whose messages keep their order (it picks the partition).
pub(crate) struct WireMessage {
    /// Deduplication id (JetStream `Nats-Msg-Id`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub id: uuid::Uuid,
    /// Ordering key: hashed to a partition.
    pub key: String,
    /// The CloudEvents structured JSON body.
    pub body: String,
}

impl WireMessage {
    /// An integration message on the wire.
    fn integration(message: &crate::integration::IntegrationMessage) -> Result<Self, BusError> {
        let body = message.to_cloudevent().map_err(|e| BusError::Encode {
            event_id: message.id,
            reason: e.to_string(),
        })?;
        Ok(Self {
            id: message.id,
            key: message.ordering_key(),
            body,
        })
    }
}

/// The end of what has been published: per-partition last entry ids (Redis) or the stream's
/// last sequence (NATS).
enum Mark {
    #[cfg(feature = "redis")]
    Redis(Vec<Option<String>>),
    #[cfg(feature = "nats")]
    Nats(u64),
}

/// Starts consumer `H` on `broker`: one task that runs the transport's consumer loop.
pub(crate) fn start_consumer<H: EventHandler>(
    broker: &Broker,
    handler: Arc<H>,
    config: ConsumerConfig,
) -> Running<Broker> {
    let cancel = CancellationToken::new();
    let board = Arc::new(StatusBoard::new(H::NAME, 1));
    let inbox = Inbox::new(handler, config.retry, broker.transport.letters(H::NAME));
    let task = {
        let (transport, board, cancel) = (Arc::clone(&broker.transport), Arc::clone(&board), cancel.clone());
        tokio::spawn(async move {
            board.update(|s| s.state = RunnerState::CatchingUp);
            match &*transport {
                #[cfg(feature = "redis")]
                Transport::Redis(redis) => redis.consume(inbox, config, &board, cancel).await,
                #[cfg(feature = "nats")]
                Transport::Nats(nats) => nats.consume(inbox, config, &board, cancel).await,
            }
            board.update(|s| s.state = RunnerState::Stopped);
            None
        })
    };
    Running::new(
        broker.clone(),
        vec![crate::runner::Runner::new(board, task)],
        cancel,
    )
}

impl Running<Broker> {
    /// Waits until every consumer has handled (or dead-lettered) every message published before
    /// this call; an error when one stops first, or when `timeout` passes.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), RunnerError> {
        let (broker, boards) = self.parts();
        let deadline = tokio::time::Instant::now() + timeout;
        let mark = broker.transport.mark().await?;
        for board in boards {
            let mut status = board.subscribe();
            loop {
                let current = status.borrow_and_update().clone();
                if matches!(current.state, RunnerState::Failed | RunnerState::Stopped) {
                    return Err(RunnerError::NotRunning(format!(
                        "`{}` is {}{}",
                        current.name,
                        current.state,
                        current.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    )));
                }
                if broker.transport.reached(&current.name, &mark).await? {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(RunnerError::Timeout {
                        name: current.name,
                        waited: timeout,
                        position: current.position,
                        head: current.head,
                    });
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), status.changed()).await;
            }
        }
        Ok(())
    }

    /// Stops every consumer after its current message.
    pub async fn stop(self) -> Result<(), RunnerError> {
        self.stop_tasks().await
    }
}

impl DeadLetters<Broker> {
    fn letter_box(&self) -> LetterBox {
        self.store.transport.letters(&self.consumer)
    }

    /// Every dead letter of the consumer, in the order the events were stored.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, RunnerError> {
        let mut letters = self.letter_box().list().await?;
        letters.sort_by_key(DeadLetter::log_order);
        Ok(letters)
    }

    /// How many dead letters the consumer has.
    pub async fn count(&self) -> Result<usize, RunnerError> {
        Ok(self.letter_box().list().await?.len())
    }

    /// The dead letter `id`, if there is one.
    pub async fn get(&self, id: uuid::Uuid) -> Result<Option<DeadLetter>, RunnerError> {
        Ok(self.letter_box().get(id).await?)
    }

    /// Hands letter `id` back to the running consumer, which handles the event again (with the
    /// same event id) and removes the letter once it succeeds; `false` if there is no such letter.
    pub async fn replay(&self, id: uuid::Uuid) -> Result<bool, RunnerError> {
        let letters = self.letter_box();
        let Some(mut letter) = letters.get(id).await? else {
            return Ok(false);
        };
        letter.replay_requested = true;
        letters.put(&letter).await?;
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

    /// Drops letter `id` for good (later events of its stream are no longer held behind it);
    /// `false` if there is no such letter.
    pub async fn discard(&self, id: uuid::Uuid) -> Result<bool, RunnerError> {
        Ok(self.letter_box().remove(id).await?)
    }

    /// Messages the consumer could not read as events (not CloudEvents JSON) or that were trimmed
    /// from the broker before it handled them; kept for an operator, never handled.
    pub async fn rejected(&self) -> Result<Vec<RejectedMessage>, RunnerError> {
        Ok(self.letter_box().rejected().await?)
    }

    /// Drops rejected message `id` (the broker's message id); `false` if there is none.
    pub async fn discard_rejected(&self, id: &str) -> Result<bool, RunnerError> {
        Ok(self.letter_box().remove_rejected(id).await?)
    }
}

/// The partition of `stream_id` among `partitions` (FNV-1a: stable across processes and builds).
pub(crate) fn partition_of(stream_id: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// Reports a consumer's progress as its broker counts it: `read` messages handed out to the
/// consumer so far, `pending` of them not yet acknowledged, `undelivered` not yet handed out.
/// The status's position is `read - pending + 1`, its head `read + undelivered`.
///
/// `oldest` is when the oldest message not yet acknowledged was published: the lag in time.
pub(crate) fn report_progress(
    board: &StatusBoard,
    read: u64,
    pending: u64,
    undelivered: u64,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
) {
    let lag_time = oldest
        .and_then(|at| (chrono::Utc::now() - at).to_std().ok())
        .unwrap_or_default();
    board.update(|s: &mut RunnerStatus| {
        s.position = read.saturating_sub(pending) + 1;
        s.head = read + undelivered;
        s.lag_time = if pending + undelivered == 0 {
            Duration::ZERO
        } else {
            lag_time
        };
        if matches!(s.state, RunnerState::CatchingUp | RunnerState::Live) {
            s.state = if pending + undelivered == 0 {
                RunnerState::Live
            } else {
                RunnerState::CatchingUp
            };
        }
    });
}

/// The wait before attempt `attempt` of an event (none before the first).
pub(crate) fn retry_wait(config: &ConsumerConfig, attempt: u32) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    config
        .retry
        .backoff
        .delays()
        .nth(attempt as usize - 2)
        .unwrap_or_default()
}
