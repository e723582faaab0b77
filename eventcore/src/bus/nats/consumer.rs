//! A consumer on JetStream: one worker per partition pulling from the partition's durable
//! consumer. With one message in flight per partition, any number of processes can pull and each
//! stream is still handled in order. The attempt number is JetStream's delivery count (so a
//! process that dies on a message counts as an attempt once the ack wait passes); a failure is
//! `Nak`ed **with** the backoff's delay; giving up writes the dead letter, then `Term`s.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{AckKind, Message};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::NatsTransport;
use crate::bus::handler::EventHandler;
use crate::bus::inbox::{Inbox, Verdict};
use crate::bus::letters::{RejectedMessage, Rejection};
use crate::bus::transport::{report_progress, retry_wait, BusError, ConsumerConfig};
use crate::runner::{error_chain, StatusBoard};

/// What the workers of one consumer share.
struct Context<H> {
    transport: Arc<NatsTransport>,
    inbox: Inbox<H>,
    config: ConsumerConfig,
    board: Arc<StatusBoard>,
    cancel: CancellationToken,
}

impl NatsTransport {
    /// Runs consumer `H` until cancelled.
    pub(crate) async fn consume<H: EventHandler>(
        self: &Arc<Self>,
        inbox: Inbox<H>,
        config: ConsumerConfig,
        board: &Arc<StatusBoard>,
        cancel: CancellationToken,
    ) {
        let context = Arc::new(Context {
            transport: Arc::clone(self),
            inbox,
            config,
            board: Arc::clone(board),
            cancel,
        });
        let partitions = self.options.partitions;
        let count = config.concurrency.min(partitions as usize) as u32;
        // Processes limited to fewer partitions start at different ones.
        let offset = uuid::Uuid::now_v7().as_u128() as u32 % partitions;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let context = Arc::clone(&context);
            tasks.spawn(async move { context.work((offset + i) % partitions).await });
        }
        {
            let context = Arc::clone(&context);
            tasks.spawn(async move { context.replays().await });
        }
        context.report().await;
        while tasks.join_next().await.is_some() {}
    }
}

impl<H: EventHandler> Context<H> {
    fn tick(&self) -> Duration {
        (self.config.lease_ttl / 3).min(Duration::from_secs(1))
    }

    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }

    /// Until cancelled: reports progress from the partition consumers' info.
    async fn report(&self) {
        loop {
            let (mut read, mut pending, mut undelivered) = (0u64, 0u64, 0u64);
            let mut oldest: Option<chrono::DateTime<chrono::Utc>> = None;
            for partition in 0..self.transport.options.partitions {
                let durable = NatsTransport::durable(H::NAME, partition);
                let found: Result<PullConsumer, _> = self.transport.stream.get_consumer(&durable).await;
                if let Ok(mut consumer) = found {
                    if let Ok(info) = consumer.info().await {
                        read += info.delivered.consumer_sequence;
                        pending += info.num_ack_pending as u64;
                        undelivered += info.num_pending;
                        if info.num_ack_pending > 0 || info.num_pending > 0 {
                            let first = self.oldest_after(partition, info.ack_floor.stream_sequence).await;
                            oldest = match (oldest, first) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                        }
                    }
                }
            }
            report_progress(&self.board, read, pending, undelivered, oldest);
            if self.pause(self.tick()).await {
                return;
            }
        }
    }

    /// When the first message of `partition` after stream sequence `floor` (its consumer's ack
    /// floor) was published: the oldest one the consumer has not acknowledged.
    async fn oldest_after(&self, partition: u32, floor: u64) -> Option<chrono::DateTime<chrono::Utc>> {
        let subject = self.transport.subject(partition);
        let message = self
            .transport
            .stream
            .get_first_raw_message_by_subject(subject, floor + 1)
            .await
            .ok()?;
        let nanos = message.time.unix_timestamp_nanos();
        Some(chrono::DateTime::from_timestamp_nanos(i64::try_from(nanos).ok()?))
    }

    /// Until cancelled: handles the dead letters an operator asked to replay.
    async fn replays(&self) {
        loop {
            if let Err(error) = self.inbox.replay().await {
                tracing::warn!(consumer = H::NAME, %error, "replaying dead letters failed");
            }
            if self.pause(self.tick()).await {
                return;
            }
        }
    }

    /// The durable consumer of `partition`, created if missing.
    async fn consumer(&self, partition: u32) -> Result<PullConsumer, BusError> {
        let durable = NatsTransport::durable(H::NAME, partition);
        self.transport
            .stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: self.transport.subject(partition),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.config.lease_ttl,
                    max_deliver: -1,
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::nats)
    }

    /// Until cancelled: pulls partition `partition`'s messages and handles them.
    async fn work(&self, partition: u32) {
        let mut delays = self.config.retry.backoff.delays();
        let mut consumer = None;
        while !self.cancel.is_cancelled() {
            let step = async {
                let pull = match &consumer {
                    Some(pull) => pull,
                    None => consumer.insert(self.consumer(partition).await?),
                };
                // One message per pull request, as one may be in flight: a request for more
                // would wait (with `max_ack_pending` reached the server ends it only at its
                // expiry, and the client waits five seconds past that), and a `no_wait` fetch on
                // an empty partition would spin. This one returns with the next message as soon
                // as the last one is acknowledged, or at `fetch_wait` when there is none.
                let mut messages = pull
                    .batch()
                    .max_messages(1)
                    .expires(self.transport.options.fetch_wait)
                    .messages()
                    .await
                    .map_err(BusError::nats)?;
                while let Some(message) = messages.next().await {
                    let message = message.map_err(BusError::Nats)?;
                    self.handle(message).await?;
                    if self.cancel.is_cancelled() {
                        break;
                    }
                }
                Ok::<(), BusError>(())
            };
            let result = tokio::select! {
                () = self.cancel.cancelled() => break,
                result = step => result,
            };
            match result {
                Ok(()) => delays = self.config.retry.backoff.delays(),
                Err(error) => {
                    tracing::warn!(consumer = H::NAME, partition, %error, "a consumer step failed");
                    self.board.update(|s| s.last_error = Some(error_chain(&error)));
                    consumer = None;
                    let wait = delays.next().unwrap_or_default().max(Duration::from_millis(10));
                    if self.pause(wait).await {
                        break;
                    }
                }
            }
        }
    }

    /// Handles one message: rejects what is not an event, parks what waits behind a dead letter
    /// of its stream, runs the handler (telling JetStream it is in progress while it runs), then
    /// acks, naks with the backoff's delay, or writes the dead letter and terminates it.
    async fn handle(&self, message: Message) -> Result<(), BusError> {
        let (attempt, sequence) = match message.info() {
            Ok(info) => (info.delivered.max(1) as u32, info.stream_sequence),
            Err(error) => {
                tracing::warn!(consumer = H::NAME, %error, "a message without JetStream info");
                return Ok(());
            }
        };
        let letters = &self.inbox.letters;
        let event = match Inbox::<H>::decode(&message.payload) {
            Ok(event) => event,
            Err(reason) => {
                let rejected = RejectedMessage::new(
                    H::NAME,
                    sequence.to_string(),
                    Rejection::Malformed,
                    reason,
                    Some(message.payload.clone()),
                );
                letters.reject(&rejected).await?;
                return ack(&message, AckKind::Term).await;
            }
        };
        if let Some(blocker) = letters
            .held(&[event.stream_id.as_str()])
            .await?
            .get(&event.stream_id)
        {
            letters.put(&self.inbox.parked(&event, *blocker)).await?;
            return ack(&message, AckKind::Term).await;
        }
        let handling = self.inbox.attempt(&event, attempt);
        tokio::pin!(handling);
        // First tick one period from now: awaiting an interval's immediate first tick still waits
        // for the timer wheel (about a millisecond), which was most of a message's handling time.
        let period = self.config.lease_ttl / 2;
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let verdict = loop {
            tokio::select! {
                verdict = &mut handling => break verdict,
                _ = progress.tick() => {
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(consumer = H::NAME, error = %error, "cannot report progress");
                    }
                }
            }
        };
        match verdict {
            Verdict::Done => {
                metrics::counter!("eventcore_runner_events_total", "runner" => H::NAME).increment(1);
                // A plain ack: one that is lost redelivers the message after the ack wait (at
                // least once), and nothing later of the partition is delivered before it.
                message.ack().await.map_err(BusError::Nats)
            }
            Verdict::Dead(letter) => {
                letters.put(&letter).await?;
                ack(&message, AckKind::Term).await
            }
            Verdict::Retry(chain) => {
                self.board.update(|s| {
                    s.retries += 1;
                    s.last_error = Some(format!("event {}: {chain}", event.event_id));
                });
                let delay = retry_wait(&self.config, attempt + 1);
                ack(&message, AckKind::Nak(Some(delay.max(Duration::from_millis(1))))).await
            }
        }
    }
}

/// Acknowledges `message` with `kind`, waiting for the server's confirmation.
async fn ack(message: &Message, kind: AckKind) -> Result<(), BusError> {
    message.double_ack_with(kind).await.map_err(BusError::Nats)
}
