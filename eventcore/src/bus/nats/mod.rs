//! The NATS JetStream transport (feature `nats`, nats-server 2.9 or later).
//!
//! One stream (named after the prefix, upper-cased) holds subjects `{prefix}.events.{p}`, one per
//! partition. Each consumer has one durable pull consumer per partition (`{consumer}-{p}`, a
//! single filter subject, as 2.9 requires) with explicit acks and one message in flight
//! (`max_ack_pending = 1`), so any number of processes can pull from it and each stream is still
//! handled in order. Publishing sets `Nats-Msg-Id` to the event id: the stream drops duplicates
//! within its window. Dead letters, held streams and rejected messages live in the key-value
//! bucket `{STREAM}_letters`.

mod consumer;
mod letters;

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

pub(crate) use letters::NatsLetters;

use super::transport::{partition_of, BusError};
use crate::cloudevents::{self, Source};
use crate::envelope::RecordedEvent;

/// Settings of a NATS bus; publishers and consumers of one bus must agree on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    prefix: String,
    partitions: u32,
    max_age: Duration,
    duplicate_window: Duration,
    fetch_wait: Duration,
}

impl Default for NatsOptions {
    /// Prefix `eventcore`, 8 partitions, events kept 7 days, duplicates dropped within 2 minutes.
    fn default() -> Self {
        Self {
            prefix: "eventcore".to_owned(),
            partitions: 8,
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            fetch_wait: Duration::from_millis(500),
        }
    }
}

impl NatsOptions {
    /// The subject prefix (letters, digits, `-` and `_`); the stream is named after it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Subjects the events are spread over, by stream id (at least 1): the unit of parallelism.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// How long the stream keeps events.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long JetStream remembers event ids to drop republished duplicates (default 2 minutes).
    ///
    /// A relay or outbox republishes what it sent but never saw acknowledged: after a broker
    /// outage or its own restart. A republish later than the window is stored again, and
    /// consumers handle it twice (at least once still holds). Set it to cover the longest outage
    /// you expect to ride out; JetStream keeps every id of the window in memory.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long a consumer's pull waits for a message (default 500 ms).
    pub fn fetch_wait(mut self, wait: Duration) -> Self {
        self.fetch_wait = wait.max(Duration::from_millis(10));
        self
    }

    fn stream_name(&self) -> String {
        self.prefix.to_uppercase().replace(['.', '*', '>', ' '], "_")
    }
}

/// A connected NATS bus.
pub(crate) struct NatsTransport {
    jetstream: jetstream::Context,
    stream: stream::Stream,
    letters: kv::Store,
    options: NatsOptions,
    /// The subject of each partition.
    subjects: Vec<String>,
}

impl NatsTransport {
    /// Connects to `url` and creates the stream and the letters bucket if missing.
    pub(crate) async fn connect(url: &str, options: NatsOptions) -> Result<Self, BusError> {
        let client = async_nats::connect(url).await.map_err(BusError::nats)?;
        let jetstream = jetstream::new(client);
        let name = options.stream_name();
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.events.*", options.prefix)],
                max_age: options.max_age,
                duplicate_window: options.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(BusError::nats)?;
        let bucket = format!("{name}_letters");
        let letters = match jetstream.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The bucket's stream by the key-value conventions, created directly: the
                // client's `create_key_value` reads account info that nats-server 2.9 words differently.
                jetstream
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{bucket}"),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        discard: stream::DiscardPolicy::New,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .map_err(BusError::nats)?;
                jetstream.get_key_value(&bucket).await.map_err(BusError::nats)?
            }
        };
        let subjects = (0..options.partitions)
            .map(|partition| format!("{}.events.{partition}", options.prefix))
            .collect();
        Ok(Self {
            jetstream,
            stream,
            letters,
            options,
            subjects,
        })
    }

    /// The subject of partition `partition`.
    fn subject(&self, partition: u32) -> String {
        self.subjects[partition as usize % self.subjects.len()].clone()
    }

    /// The durable consumer of `consumer` on partition `partition`.
    fn durable(consumer: &str, partition: u32) -> String {
        format!("{consumer}-{partition}")
    }

    pub(crate) fn letters(&self, consumer: &str) -> NatsLetters {
        NatsLetters::new(self.letters.clone(), consumer)
    }

    /// Publishes every message (asynchronously, all acks awaited), each with `Nats-Msg-Id` = its
    /// event id.
    pub(crate) async fn publish(&self, messages: &[RecordedEvent]) -> Result<(), BusError> {
        let outgoing = messages.iter().map(|message| {
            let json =
                cloudevents::to_json(message, &Source::AggregateType).map_err(|e| BusError::Encode {
                    event_id: message.event_id,
                    reason: e.to_string(),
                })?;
            let partition = partition_of(&message.stream_id, self.options.partitions);
            Ok((partition, message.event_id, Bytes::from(json)))
        });
        self.send_all(outgoing).await
    }

    /// Publishes wire messages (asynchronously, all acks awaited), each with `Nats-Msg-Id` = its
    /// id and to its key's partition.
    pub(crate) async fn publish_wire(
        &self,
        messages: &[crate::bus::transport::WireMessage],
    ) -> Result<(), BusError> {
        let outgoing = messages.iter().map(|message| {
            let partition = partition_of(&message.key, self.options.partitions);
            Ok((partition, message.id, Bytes::from(message.body.clone())))
        });
        self.send_all(outgoing).await
    }

    /// Sends each `(partition, id, body)` in order with `Nats-Msg-Id` = `id`, then awaits every
    /// ack. A body over the server's `max_payload` stops it with [`BusError::TooLarge`] once the
    /// ones before it are acknowledged.
    async fn send_all(
        &self,
        outgoing: impl Iterator<Item = Result<(u32, uuid::Uuid, Bytes), BusError>>,
    ) -> Result<(), BusError> {
        let limit = self.jetstream.client().server_info().max_payload;
        let mut acks: Vec<jetstream::context::PublishAckFuture> = Vec::with_capacity(outgoing.size_hint().0);
        for item in outgoing {
            let (partition, id, body) = item?;
            if limit > 0 && body.len() > limit {
                // The ones before it are published; the caller learns which one is stuck.
                for ack in acks {
                    ack.await.map_err(BusError::nats)?;
                }
                return Err(BusError::TooLarge {
                    event_id: id,
                    size: body.len(),
                    limit,
                });
            }
            let publish = jetstream::message::PublishMessage::build()
                .payload(body)
                .message_id(id.to_string());
            let ack = self
                .jetstream
                .send_publish(self.subject(partition), publish)
                .await
                .map_err(BusError::nats)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(BusError::nats)?;
        }
        Ok(())
    }

    /// The stream's last sequence.
    pub(crate) async fn mark(&self) -> Result<u64, BusError> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(BusError::nats)?;
        Ok(info.state.last_sequence)
    }

    /// Every consumer with a durable consumer on the bus's stream, with its lag
    /// (`num_ack_pending`, `num_pending`), by name.
    pub(crate) async fn consumer_lag(&self) -> Result<Vec<crate::bus::ConsumerLag>, BusError> {
        use futures_util::TryStreamExt as _;

        let infos: Vec<jetstream::consumer::Info> = self
            .stream
            .consumers()
            .try_collect()
            .await
            .map_err(BusError::nats)?;
        let counts = infos.into_iter().filter_map(|info| {
            // Durable names are `{consumer}-{partition}`.
            let (consumer, partition) = info.name.rsplit_once('-')?;
            partition.parse::<u32>().ok()?;
            Some((
                consumer.to_owned(),
                info.num_ack_pending as u64,
                Some(info.num_pending),
            ))
        });
        Ok(super::transport::sum_lags(counts))
    }

    /// Whether every partition consumer of `consumer` has acknowledged everything up to `mark`.
    pub(crate) async fn reached(&self, consumer: &str, mark: u64) -> Result<bool, BusError> {
        for partition in 0..self.options.partitions {
            let found: Result<jetstream::consumer::PullConsumer, _> = self
                .stream
                .get_consumer(&Self::durable(consumer, partition))
                .await;
            let Ok(mut found) = found else { return Ok(false) };
            let info = found.info().await.map_err(BusError::nats)?;
            let drained = info.num_pending == 0 && info.num_ack_pending == 0;
            if !drained && info.ack_floor.stream_sequence < mark {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
