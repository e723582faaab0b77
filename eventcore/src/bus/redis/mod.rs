//! The Redis Streams transport (feature `redis`, Redis 7.0 or later).
//!
//! Keys, under a configurable prefix (default `eventcore`):
//! - `{prefix}:events:{p}`: the stream of partition `p`; each entry holds one CloudEvent in field
//!   `event`. Consumers are consumer groups named after the consumer.
//! - `{prefix}:dead:{consumer}`, `{prefix}:held:{consumer}`, `{prefix}:rejected:{consumer}`:
//!   hashes of dead letters (by event id), of streams held behind one (stream id → letter id),
//!   and of rejected messages (by entry id).
//! - `{prefix}:lease:{consumer}:{p}` and `{prefix}:members:{consumer}`: who handles partition
//!   `p`, and which processes are alive to share the partitions.

mod consumer;
mod letters;

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::streams::{StreamAddOptions, StreamTrimStrategy, StreamTrimmingMode};

pub(crate) use letters::RedisLetters;

use super::transport::{partition_of, BusError};
use crate::cloudevents::{self, Source};
use crate::envelope::RecordedEvent;

/// Messages per pipeline when publishing: a batch goes as several, each in flight while the
/// next is encoded.
const PUBLISH_CHUNK: usize = 125;

/// How long the broker keeps published events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep everything (trim by hand).
    Unbounded,
    /// About this many entries per partition (`MAXLEN ~ n`; trimmed once per batch of relayed
    /// events, on each `XADD` of integration messages).
    MaxLen(usize),
    /// About this long (`MINID ~ <now - age>`; trimmed as for [`MaxLen`](Self::MaxLen)).
    MaxAge(Duration),
}

/// Settings of a Redis bus; publishers and consumers of one bus must agree on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    prefix: String,
    partitions: u32,
    retention: Retention,
    block: Duration,
}

impl Default for RedisOptions {
    /// Prefix `eventcore`, 8 partitions, about a million entries kept per partition.
    fn default() -> Self {
        Self {
            prefix: "eventcore".to_owned(),
            partitions: 8,
            retention: Retention::MaxLen(1_000_000),
            block: Duration::from_millis(500),
        }
    }
}

impl RedisOptions {
    /// The prefix of every key the bus uses.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Streams the events are spread over, by stream id (at least 1): the unit of parallelism
    /// among competing consumers. Changing it reorders streams in flight: drain first.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// How long published events are kept. Events trimmed before a consumer handled them are
    /// recorded as lost in its rejected messages.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How long a consumer's `XREADGROUP` blocks waiting for new entries (default 500 ms).
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(1));
        self
    }
}

/// A connected Redis bus.
pub(crate) struct RedisTransport {
    client: ::redis::Client,
    connection: ConnectionManager,
    options: RedisOptions,
    /// The stream key of each partition.
    stream_keys: Vec<String>,
    /// The connection the relay publishes on: one of its own that does not reconnect by itself,
    /// so pipelines sent back to back reach Redis in order, and none after a broken one. Dropped
    /// after any error (the next publish connects again).
    publisher: tokio::sync::Mutex<Option<::redis::aio::MultiplexedConnection>>,
}

impl RedisTransport {
    /// Connects to `url`.
    pub(crate) async fn connect(url: &str, options: RedisOptions) -> Result<Self, BusError> {
        let client = ::redis::Client::open(url)?;
        let connection = Self::connection_to(&client).await?;
        let stream_keys = (0..options.partitions)
            .map(|partition| format!("{}:events:{partition}", options.prefix))
            .collect();
        Ok(Self {
            client,
            connection,
            options,
            stream_keys,
            publisher: tokio::sync::Mutex::new(None),
        })
    }

    async fn connection_to(client: &::redis::Client) -> Result<ConnectionManager, BusError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_number_of_retries(3);
        Ok(ConnectionManager::new_with_config(client.clone(), config).await?)
    }

    /// A connection of its own (for a consumer's blocking reads).
    pub(crate) async fn new_connection(&self) -> Result<ConnectionManager, BusError> {
        Self::connection_to(&self.client).await
    }

    /// The stream of partition `partition`.
    pub(crate) fn stream_key(&self, partition: u32) -> String {
        self.partition_key(partition).to_owned()
    }

    /// The stream of partition `partition`, borrowed.
    fn partition_key(&self, partition: u32) -> &str {
        &self.stream_keys[partition as usize % self.stream_keys.len()]
    }

    /// The key `{prefix}:{kind}:{consumer}`.
    pub(crate) fn key(&self, kind: &str, consumer: &str) -> String {
        format!("{}:{kind}:{consumer}", self.options.prefix)
    }

    pub(crate) fn letters(&self, consumer: &str) -> RedisLetters {
        RedisLetters::new(self.connection.clone(), self, consumer)
    }

    /// Adds every message to its partition's stream; returns once Redis has answered for all of
    /// them. The messages go in pipelines of [`PUBLISH_CHUNK`], each sent as soon as it is
    /// encoded, on the publishing connection: Redis appends them in the given order, as from one
    /// pipeline; after a failure the connection is dropped, so nothing sent later lands.
    pub(crate) async fn publish(&self, messages: &[RecordedEvent]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut publisher = self.publisher.lock().await;
        let connection = match &*publisher {
            Some(connection) => connection.clone(),
            None => {
                let config =
                    ::redis::AsyncConnectionConfig::new().set_connection_timeout(Duration::from_secs(5));
                let connection = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                publisher.insert(connection).clone()
            }
        };
        let published = self.publish_on(connection, messages).await;
        if published.is_err() {
            *publisher = None;
        }
        published
    }

    /// Sends `messages` on `connection` in pipelines queued back to back, then awaits them all.
    /// Retention is applied once per batch: the last pipeline ends with an `XTRIM` (approximate,
    /// as `XADD ... MAXLEN ~` would) of each partition the batch added to.
    async fn publish_on(
        &self,
        connection: ::redis::aio::MultiplexedConnection,
        messages: &[RecordedEvent],
    ) -> Result<(), BusError> {
        let trim = self.trim_strategy();
        let mut touched = vec![false; self.stream_keys.len()];
        // One buffer for every message's JSON: each is copied into its command from there.
        let mut body = String::with_capacity(1024);
        let mut sent = Vec::with_capacity(messages.len().div_ceil(PUBLISH_CHUNK) + 1);
        let mut rest = messages;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(PUBLISH_CHUNK.min(rest.len()));
            rest = tail;
            let last = rest.is_empty();
            let mut pipe =
                ::redis::Pipeline::with_capacity(chunk.len() + if last { touched.len() } else { 0 });
            for message in chunk {
                body.clear();
                cloudevents::write_json(message, &Source::AggregateType, &mut body).map_err(|e| {
                    BusError::Encode {
                        event_id: message.event_id,
                        reason: e.to_string(),
                    }
                })?;
                let partition = partition_of(&message.stream_id, self.options.partitions) as usize
                    % self.stream_keys.len();
                touched[partition] = true;
                let key = &self.stream_keys[partition];
                let mut command = ::redis::Cmd::with_capacity(5, 14 + key.len() + body.len());
                command
                    .arg("XADD")
                    .arg(key.as_str())
                    .arg("*")
                    .arg("event")
                    .arg(body.as_str());
                pipe.add_command(command);
            }
            if last {
                if let Some(trim) = &trim {
                    for (key, _) in self
                        .stream_keys
                        .iter()
                        .zip(&touched)
                        .filter(|(_, touched)| **touched)
                    {
                        pipe.cmd("XTRIM").arg(key.as_str()).arg(trim);
                    }
                }
            }
            let mut connection = connection.clone();
            let mut reply = Box::pin(async move { pipe.query_async::<()>(&mut connection).await });
            // The first poll queues the pipeline on the connection, behind the ones before it (its
            // queue is first come, first served), while the next one is encoded.
            match futures_util::future::poll_immediate(&mut reply).await {
                Some(result) => result?,
                None => sent.push(reply),
            }
        }
        for reply in sent {
            reply.await?;
        }
        Ok(())
    }

    /// The trimming of the bus's retention (`None`: unbounded).
    fn trim_strategy(&self) -> Option<StreamTrimStrategy> {
        match self.options.retention {
            Retention::Unbounded => None,
            Retention::MaxLen(entries) => {
                Some(StreamTrimStrategy::maxlen(StreamTrimmingMode::Approx, entries))
            }
            Retention::MaxAge(age) => {
                let now = chrono::Utc::now().timestamp_millis().max(0) as u128;
                let min = now.saturating_sub(age.as_millis());
                Some(StreamTrimStrategy::minid(
                    StreamTrimmingMode::Approx,
                    format!("{min}-0"),
                ))
            }
        }
    }

    /// The `XADD` options of the bus's retention.
    fn add_options(&self) -> StreamAddOptions {
        match self.trim_strategy() {
            None => StreamAddOptions::default(),
            Some(trim) => StreamAddOptions::default().trim(trim),
        }
    }

    /// Adds wire messages to their keys' partitions in one pipeline (retention as for
    /// [`publish`](Self::publish)); returns once Redis has answered for all of them.
    pub(crate) async fn publish_wire(
        &self,
        messages: &[crate::bus::transport::WireMessage],
    ) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let options = self.add_options();
        let mut pipe = ::redis::pipe();
        for message in messages {
            let key = self.partition_key(partition_of(&message.key, self.options.partitions));
            pipe.xadd_options(key, "*", &[("event", message.body.as_str())], &options);
        }
        let mut connection = self.connection.clone();
        let _: Vec<String> = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    /// The last entry id of each partition (`None` for an empty one).
    pub(crate) async fn mark(&self) -> Result<Vec<Option<String>>, BusError> {
        let mut pipe = ::redis::pipe();
        for partition in 0..self.options.partitions {
            pipe.cmd("XREVRANGE")
                .arg(self.stream_key(partition))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let mut connection = self.connection.clone();
        let ranges: Vec<::redis::streams::StreamRangeReply> = pipe.query_async(&mut connection).await?;
        Ok(ranges
            .into_iter()
            .map(|range| range.ids.into_iter().next().map(|entry| entry.id))
            .collect())
    }

    /// Every consumer group on the bus's partitions, with its lag (`XINFO GROUPS`: `pending`,
    /// and `lag`, which Redis 7.0 reports unless entries were deleted from the stream's middle).
    pub(crate) async fn consumer_lag(&self) -> Result<Vec<crate::bus::ConsumerLag>, BusError> {
        let mut connection = self.connection.clone();
        let keys: Vec<String> = (0..self.options.partitions).map(|p| self.stream_key(p)).collect();
        let mut exists = ::redis::pipe();
        for key in &keys {
            exists.exists(key);
        }
        let found: Vec<bool> = exists.query_async(&mut connection).await?;
        let mut counts = Vec::new();
        for (key, _) in keys.iter().zip(found).filter(|(_, found)| *found) {
            let groups: ::redis::streams::StreamInfoGroupsReply = ::redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(key)
                .query_async(&mut connection)
                .await?;
            counts.extend(
                groups
                    .groups
                    .into_iter()
                    .map(|g| (g.name, g.pending as u64, g.lag.map(|lag| lag as u64))),
            );
        }
        Ok(super::transport::sum_lags(counts))
    }

    /// Whether group `consumer` was handed every entry up to `mark` and acknowledged them all.
    pub(crate) async fn reached(&self, consumer: &str, mark: &[Option<String>]) -> Result<bool, BusError> {
        let mut connection = self.connection.clone();
        for (partition, last) in mark.iter().enumerate() {
            let Some(last) = last else { continue };
            let key = self.stream_key(partition as u32);
            let groups: ::redis::streams::StreamInfoGroupsReply = ::redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            let Some(group) = groups.groups.iter().find(|g| g.name == consumer) else {
                return Ok(false);
            };
            if consumer::entry_id(&group.last_delivered_id) < consumer::entry_id(last) {
                return Ok(false);
            }
            let pending: ::redis::streams::StreamPendingCountReply = ::redis::cmd("XPENDING")
                .arg(&key)
                .arg(consumer)
                .arg("-")
                .arg(last)
                .arg(1)
                .query_async(&mut connection)
                .await?;
            if !pending.ids.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
