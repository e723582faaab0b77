//! A consumer on Redis Streams: one worker per partition, each owning its partition by a lease
//! while it handles it, so a stream's events are handled in order by one process at a time.
//!
//! The delivery count of an entry in the group's pending-entries list (PEL) is the number of the
//! next attempt: a failed attempt re-claims the entry to bump it (`XCLAIM`), and a worker that
//! takes over a partition claims the previous owner's entries (`XAUTOCLAIM`), bumping them too, so
//! a consumer that crashes on an event eventually dead-letters it. A failed entry is tried again
//! once it has been idle for `backoff(attempt)` (`XPENDING ... IDLE` times), while later entries of
//! its stream wait in the PEL behind it and other streams go on. Entries trimmed away while
//! pending are recorded as lost, never acknowledged silently.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::streams::{
    StreamAutoClaimReply, StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadOptions,
    StreamReadReply,
};
use ::redis::{AsyncCommands, Script, Value};
use tokio_util::sync::CancellationToken;

use super::RedisTransport;
use crate::bus::handler::EventHandler;
use crate::bus::inbox::{Inbox, Verdict};
use crate::bus::letters::{RejectedMessage, Rejection};
use crate::bus::transport::{report_progress, retry_wait, BusError, ConsumerConfig};
use crate::envelope::RecordedEvent;
use crate::runner::{error_chain, new_owner, StatusBoard};

/// A stream entry id as numbers, for ordering (`0-0` for one that does not parse).
pub(crate) fn entry_id(id: &str) -> (u64, u64) {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seq = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, seq)
}

const RENEW: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2]) return 1 else return 0 end";
/// Gives a lease up and notes who handed the partition over in good order (KEYS[2]), so the
/// next owner takes its pending entries without counting them as a crashed attempt.
const RELEASE: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1]) redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2]) return 1 else return 0 end";

/// How many partitions this process holds and may hold.
#[derive(Debug)]
struct Shares {
    owned: AtomicUsize,
    share: AtomicUsize,
}

/// What the workers of one consumer share.
struct Context<H> {
    transport: Arc<RedisTransport>,
    inbox: Arc<Inbox<H>>,
    config: ConsumerConfig,
    board: Arc<StatusBoard>,
    owner: String,
    shares: Arc<Shares>,
    cancel: CancellationToken,
}

impl RedisTransport {
    /// Runs consumer `H` until cancelled.
    pub(crate) async fn consume<H: EventHandler>(
        self: &Arc<Self>,
        inbox: Inbox<H>,
        config: ConsumerConfig,
        board: &Arc<StatusBoard>,
        cancel: CancellationToken,
    ) {
        let partitions = self.options.partitions;
        let context = Arc::new(Context {
            transport: Arc::clone(self),
            inbox: Arc::new(inbox),
            config,
            board: Arc::clone(board),
            owner: new_owner(),
            shares: Arc::new(Shares {
                owned: AtomicUsize::new(0),
                share: AtomicUsize::new(config.concurrency.min(partitions as usize).max(1)),
            }),
            cancel: cancel.clone(),
        });
        let mut delays = config.retry.backoff.delays();
        while let Err(error) = self.create_groups(H::NAME).await {
            tracing::warn!(consumer = H::NAME, %error, "cannot create the consumer groups");
            board.update(|s| s.last_error = Some(error_chain(&error)));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delays.next().unwrap_or_default()) => {}
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..partitions {
            let context = Arc::clone(&context);
            tasks.spawn(async move { context.work(partition).await });
        }
        {
            let context = Arc::clone(&context);
            tasks.spawn(async move { context.replays().await });
        }
        context.heartbeats().await;
        while tasks.join_next().await.is_some() {}
    }

    /// Creates consumer group `group` on every partition, reading from the start.
    async fn create_groups(&self, group: &str) -> Result<(), BusError> {
        let mut connection = self.connection.clone();
        for partition in 0..self.options.partitions {
            let created: Result<(), _> = connection
                .xgroup_create_mkstream(self.stream_key(partition), group, "0")
                .await;
            match created {
                Ok(()) => {}
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

impl<H: EventHandler> Context<H> {
    fn tick(&self) -> Duration {
        (self.config.lease_ttl / 3).min(Duration::from_secs(1))
    }

    /// Until cancelled: announces this process among the consumer's members, recomputes its fair
    /// share of partitions, and reports progress.
    async fn heartbeats(&self) {
        let members = self.transport.key("members", H::NAME);
        let mut connection = self.transport.connection.clone();
        loop {
            if let Err(error) = self.heartbeat(&mut connection, &members).await {
                tracing::warn!(consumer = H::NAME, %error, "heartbeat failed");
                self.board.update(|s| s.last_error = Some(error_chain(&error)));
            }
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep(self.tick()) => {}
            }
        }
        let _: Result<(), _> = connection.zrem(&members, &self.owner).await;
    }

    async fn heartbeat(&self, connection: &mut ConnectionManager, members: &str) -> Result<(), BusError> {
        let now = chrono::Utc::now().timestamp_millis();
        let ttl = self.config.lease_ttl.as_millis() as i64;
        let (count,): (usize,) = ::redis::pipe()
            .zadd(members, &self.owner, now + ttl)
            .ignore()
            .zrembyscore(members, "-inf", now)
            .ignore()
            .zcard(members)
            .query_async(connection)
            .await?;
        let partitions = self.transport.options.partitions as usize;
        let share = partitions.div_ceil(count.max(1));
        self.shares
            .share
            .store(share.min(self.config.concurrency).max(1), Ordering::SeqCst);
        let (mut read, mut pending, mut undelivered) = (0u64, 0u64, 0u64);
        let mut oldest: Option<i64> = None;
        for partition in 0..self.transport.options.partitions {
            let key = self.transport.stream_key(partition);
            let groups: ::redis::streams::StreamInfoGroupsReply = ::redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&key)
                .query_async(connection)
                .await?;
            let Some(group) = groups.groups.iter().find(|g| g.name == H::NAME) else {
                continue;
            };
            read += group.entries_read.unwrap_or(0) as u64;
            pending += group.pending as u64;
            undelivered += group.lag.unwrap_or(0) as u64;
            // The oldest entry not yet acknowledged: the first pending one, else the first one
            // not yet handed out. An entry id starts with its publication time in milliseconds.
            let first = if group.pending > 0 {
                let summary: ::redis::streams::StreamPendingReply =
                    connection.xpending(&key, H::NAME).await?;
                match summary {
                    ::redis::streams::StreamPendingReply::Data(data) => Some(data.start_id),
                    ::redis::streams::StreamPendingReply::Empty => None,
                }
            } else if group.lag.unwrap_or(0) > 0 {
                let next: ::redis::streams::StreamRangeReply = connection
                    .xrange_count(&key, format!("({}", group.last_delivered_id), "+", 1)
                    .await?;
                next.ids.into_iter().next().map(|entry| entry.id)
            } else {
                None
            };
            if let Some(ms) = first.and_then(|id| id.split('-').next()?.parse::<i64>().ok()) {
                oldest = Some(oldest.map_or(ms, |o| o.min(ms)));
            }
        }
        let oldest = oldest.and_then(chrono::DateTime::from_timestamp_millis);
        report_progress(&self.board, read, pending, undelivered, oldest);
        Ok(())
    }

    /// Until cancelled: handles the dead letters an operator asked to replay.
    async fn replays(&self) {
        loop {
            if let Err(error) = self.inbox.replay().await {
                tracing::warn!(consumer = H::NAME, %error, "replaying dead letters failed");
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(self.tick()) => {}
            }
        }
    }

    /// Until cancelled: owns partition `partition` whenever this process's share allows, and
    /// handles its entries.
    async fn work(&self, partition: u32) {
        let mut worker = Worker {
            key: self.transport.stream_key(partition),
            lease: format!("{}:{partition}", self.transport.key("lease", H::NAME)),
            connection: None,
            owned: None,
            buffer: VecDeque::new(),
            acks: Vec::new(),
        };
        let mut delays = self.config.retry.backoff.delays();
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            match worker.step(self).await {
                Ok(()) => delays = self.config.retry.backoff.delays(),
                Err(error) => {
                    tracing::warn!(consumer = H::NAME, partition, %error, "a consumer step failed");
                    self.board.update(|s| s.last_error = Some(error_chain(&error)));
                    tokio::select! {
                        () = self.cancel.cancelled() => break,
                        () = tokio::time::sleep(delays.next().unwrap_or_default().max(Duration::from_millis(10))) => {}
                    }
                }
            }
        }
        if let Err(error) = worker.release(self).await {
            tracing::warn!(consumer = H::NAME, partition, %error, "cannot release a partition");
        }
    }
}

/// The state of one partition's worker.
struct Worker {
    key: String,
    lease: String,
    connection: Option<ConnectionManager>,
    /// When the lease was last renewed, while owned.
    owned: Option<Instant>,
    /// Entries read and not yet acknowledged, in stream order: waiting for a retry, or behind
    /// one of their stream. (Reading them back from the PEL would bump their delivery counts.)
    buffer: VecDeque<Held>,
    /// Entries done with and not yet acknowledged: sent with the next read, in the same round
    /// trip (Redis applies the `XACK` before the read blocks), or on their own before the
    /// partition is given up.
    acks: Vec<String>,
}

/// An entry in a worker's hands.
struct Held {
    id: String,
    event: RecordedEvent,
    /// The number of its next attempt: its delivery count in the PEL.
    attempt: u32,
    /// Not to be tried before.
    ready: Instant,
}

impl Worker {
    async fn connection(&mut self, transport: &RedisTransport) -> Result<ConnectionManager, BusError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = transport.new_connection().await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Gives the partition up (its unacknowledged entries go to the next owner).
    async fn release<H: EventHandler>(&mut self, context: &Context<H>) -> Result<(), BusError> {
        if self.owned.take().is_none() {
            return Ok(());
        }
        self.buffer.clear();
        context.shares.owned.fetch_sub(1, Ordering::SeqCst);
        let mut connection = self.connection(&context.transport).await?;
        self.flush_acks::<H>(&mut connection).await?;
        let _: i64 = Script::new(RELEASE)
            .key(&self.lease)
            .key(self.handover())
            .arg(&context.owner)
            .arg(context.config.lease_ttl.as_millis() as u64 * 10)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// One round: take, keep or give up the partition; read new entries; handle what is ready.
    async fn step<H: EventHandler>(&mut self, context: &Context<H>) -> Result<(), BusError> {
        let mut connection = self.connection(&context.transport).await?;
        let ttl = context.config.lease_ttl;
        let Some(renewed) = self.owned else {
            if context.shares.owned.load(Ordering::SeqCst) >= context.shares.share.load(Ordering::SeqCst) {
                pause(context, context.tick()).await;
                return Ok(());
            }
            let taken: Option<String> = ::redis::cmd("SET")
                .arg(&self.lease)
                .arg(&context.owner)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            if taken.is_none() {
                pause(context, context.tick()).await;
                return Ok(());
            }
            self.owned = Some(Instant::now());
            context.shares.owned.fetch_add(1, Ordering::SeqCst);
            self.buffer.clear();
            return self.take_over(context, &mut connection).await;
        };
        if renewed.elapsed() >= ttl / 3 {
            let kept: i64 = Script::new(RENEW)
                .key(&self.lease)
                .arg(&context.owner)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut connection)
                .await?;
            if kept == 0 {
                tracing::warn!(consumer = H::NAME, key = self.key, "partition lease lost");
                // What was handled is done: acknowledge it rather than have it handled again.
                self.flush_acks::<H>(&mut connection).await?;
                self.owned = None;
                self.buffer.clear();
                context.shares.owned.fetch_sub(1, Ordering::SeqCst);
                return Ok(());
            }
            self.owned = Some(Instant::now());
        }
        if context.shares.owned.load(Ordering::SeqCst) > context.shares.share.load(Ordering::SeqCst) {
            // More than a fair share: hand this partition to another process.
            self.release(context).await?;
            pause(context, ttl).await;
            return Ok(());
        }
        if self.buffer.len() >= context.config.batch_size * 10 {
            self.flush_acks::<H>(&mut connection).await?;
            return self.handle(context, &mut connection, None).await;
        }
        let now = Instant::now();
        let block = match self.buffer.iter().map(|h| h.ready).min() {
            Some(ready) => ready
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), context.transport.options.block),
            None => context.transport.options.block,
        };
        // One round trip: acknowledge what was handled, read what is new, and count the streams
        // held behind dead letters as the read returns (none, mostly: then no lookup is needed).
        let mut pipe = ::redis::pipe();
        if !self.acks.is_empty() {
            pipe.xack(&self.key, H::NAME, &self.acks).ignore();
        }
        pipe.xread_options(
            &[&self.key],
            &[">"],
            &StreamReadOptions::default()
                .group(H::NAME, &context.owner)
                .count(context.config.batch_size)
                .block(block.as_millis() as usize),
        )
        .hlen(context.transport.key("held", H::NAME));
        let (fresh, held): (StreamReadReply, usize) = pipe.query_async(&mut connection).await?;
        self.acks.clear();
        let entries = fresh.keys.into_iter().flat_map(|k| k.ids);
        self.accept(context, entries, &HashMap::new()).await?;
        self.handle(context, &mut connection, Some(held)).await
    }

    /// Acknowledges the entries done with, if any.
    async fn flush_acks<H: EventHandler>(
        &mut self,
        connection: &mut ConnectionManager,
    ) -> Result<(), BusError> {
        if !self.acks.is_empty() {
            let _: u64 = connection.xack(&self.key, H::NAME, &self.acks).await?;
            self.acks.clear();
        }
        Ok(())
    }

    /// The key naming the last owner that handed the partition over in good order.
    fn handover(&self) -> String {
        format!("{}:handover", self.lease)
    }

    /// Claims the entries a previous owner of the partition left pending. Those of an owner that
    /// handed the partition over in good order (a rebalance, a stop) keep their delivery counts;
    /// all others are claimed with `XAUTOCLAIM`, bumping their counts (a crash counts as an
    /// attempt); entries already trimmed away are recorded as lost.
    async fn take_over<H: EventHandler>(
        &mut self,
        context: &Context<H>,
        connection: &mut ConnectionManager,
    ) -> Result<(), BusError> {
        let mut claimed = Vec::new();
        // The delivery counts of the entries of an owner that handed over in good order.
        let mut handed_counts: HashMap<String, u32> = HashMap::new();
        let handed: Option<String> = connection.get_del(self.handover()).await?;
        if let Some(previous) = handed.filter(|previous| *previous != context.owner) {
            let pending: StreamPendingCountReply = ::redis::cmd("XPENDING")
                .arg(&self.key)
                .arg(H::NAME)
                .arg("-")
                .arg("+")
                .arg(context.config.batch_size * 10 + 100)
                .arg(&previous)
                .query_async(connection)
                .await?;
            handed_counts.extend(pending.ids.into_iter().map(|p| (p.id, p.times_delivered as u32)));
        }
        let mut start = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = ::redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(H::NAME)
                .arg(&context.owner)
                .arg(0)
                .arg(&start)
                .arg("COUNT")
                .arg(100)
                .query_async(connection)
                .await?;
            claimed.extend(reply.claimed);
            for id in reply.deleted_ids {
                let reason = "trimmed from the stream (retention) while waiting to be handled".to_owned();
                let message = RejectedMessage::new(H::NAME, id, Rejection::Lost, reason, None);
                context.inbox.letters.reject(&message).await?;
            }
            if reply.next_stream_id == "0-0" || reply.next_stream_id.is_empty() {
                break;
            }
            start = reply.next_stream_id;
        }
        if claimed.is_empty() {
            return Ok(());
        }
        // A handover is no attempt: put the counts `XAUTOCLAIM` bumped back.
        let mut by_count: HashMap<u32, Vec<&str>> = HashMap::new();
        for entry in &claimed {
            if let Some(count) = handed_counts.get(&entry.id) {
                by_count.entry(*count).or_default().push(entry.id.as_str());
            }
        }
        for (count, ids) in by_count {
            let _: Vec<String> = ::redis::cmd("XCLAIM")
                .arg(&self.key)
                .arg(H::NAME)
                .arg(&context.owner)
                .arg(0)
                .arg(&ids)
                .arg("RETRYCOUNT")
                .arg(count)
                .arg("JUSTID")
                .query_async(connection)
                .await?;
        }
        let pending: StreamPendingCountReply = ::redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(H::NAME)
            .arg("-")
            .arg("+")
            .arg(claimed.len())
            .arg(&context.owner)
            .query_async(connection)
            .await?;
        let counts: HashMap<String, u32> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u32))
            .collect();
        self.accept(context, claimed.into_iter(), &counts).await?;
        self.handle(context, connection, None).await
    }

    /// Reads `entries` into the buffer; what is not an event is rejected (and acknowledged).
    async fn accept<H: EventHandler>(
        &mut self,
        context: &Context<H>,
        entries: impl Iterator<Item = StreamId>,
        counts: &HashMap<String, u32>,
    ) -> Result<(), BusError> {
        for entry in entries {
            let body = match entry.map.get("event") {
                Some(Value::BulkString(body)) => Ok(body.as_slice()),
                Some(Value::SimpleString(body)) => Ok(body.as_bytes()),
                _ => Err("the entry has no `event` field".to_owned()),
            };
            let event = body.clone().and_then(Inbox::<H>::decode);
            match event {
                Ok(event) => {
                    let attempt = counts.get(&entry.id).copied().unwrap_or(1).max(1);
                    let ready = Instant::now() + retry_wait(&context.config, attempt);
                    self.buffer.push_back(Held {
                        id: entry.id,
                        event,
                        attempt,
                        ready,
                    });
                }
                Err(reason) => {
                    let message = RejectedMessage::new(
                        H::NAME,
                        entry.id.clone(),
                        Rejection::Malformed,
                        reason,
                        body.ok().map(bytes::Bytes::copy_from_slice),
                    );
                    context.inbox.letters.reject(&message).await?;
                    self.acks.push(entry.id);
                }
            }
        }
        Ok(())
    }

    /// Handles the buffered entries that are ready, in order, keeping each stream in order: an
    /// entry waits behind an earlier entry of its stream that waits for a retry, and is
    /// dead-lettered (parked) behind a dead letter of its stream. The entries done with join the
    /// acknowledgements to send. `held_streams`: how many streams are held behind dead letters,
    /// if just counted (none: nothing to look up).
    async fn handle<H: EventHandler>(
        &mut self,
        context: &Context<H>,
        connection: &mut ConnectionManager,
        held_streams: Option<usize>,
    ) -> Result<(), BusError> {
        let letters = &context.inbox.letters;
        let mut held = if held_streams == Some(0) || self.buffer.is_empty() {
            HashMap::new()
        } else {
            let mut seen = HashSet::new();
            let streams: Vec<&str> = self
                .buffer
                .iter()
                .map(|h| h.event.stream_id.as_str())
                .filter(|s| seen.insert(*s))
                .collect();
            letters.held(&streams).await?
        };
        let acks = &mut self.acks;
        let mut waiting: HashSet<String> = HashSet::new();
        let mut keep = VecDeque::with_capacity(self.buffer.len());
        let mut handled = 0u64;
        while let Some(mut entry) = self.buffer.pop_front() {
            let stream = &entry.event.stream_id;
            if waiting.contains(stream) {
                keep.push_back(entry);
                continue;
            }
            if let Some(blocker) = held.get(stream) {
                letters.put(&context.inbox.parked(&entry.event, *blocker)).await?;
                acks.push(entry.id);
                continue;
            }
            if entry.ready > Instant::now() {
                waiting.insert(stream.clone());
                keep.push_back(entry);
                continue;
            }
            match context.inbox.attempt(&entry.event, entry.attempt).await {
                Verdict::Done => {
                    handled += 1;
                    acks.push(entry.id);
                }
                Verdict::Dead(letter) => {
                    letters.put(&letter).await?;
                    held.insert(stream.clone(), letter.id);
                    acks.push(entry.id);
                }
                Verdict::Retry(chain) => {
                    // Bump the delivery count to the next attempt's number.
                    let claimed: StreamClaimReply = connection
                        .xclaim(&self.key, H::NAME, &context.owner, 0, &[&entry.id])
                        .await?;
                    context.board.update(|s| {
                        s.retries += 1;
                        s.last_error = Some(format!("event {}: {chain}", entry.event.event_id));
                    });
                    if claimed.ids.is_empty() {
                        // Trimmed away since it was read: keep the event as a dead letter.
                        let lost = context.inbox.trimmed(&entry.event, entry.attempt);
                        letters.put(&lost).await?;
                        held.insert(stream.clone(), lost.id);
                        acks.push(entry.id);
                    } else {
                        entry.attempt += 1;
                        entry.ready = Instant::now() + retry_wait(&context.config, entry.attempt);
                        waiting.insert(stream.clone());
                        keep.push_back(entry);
                    }
                }
            }
        }
        self.buffer = keep;
        if handled > 0 {
            metrics::counter!("eventcore_runner_events_total", "runner" => H::NAME).increment(handled);
        }
        Ok(())
    }
}

/// Sleeps for `wait` unless the consumer is cancelled first.
async fn pause<H>(context: &Context<H>, wait: Duration) {
    tokio::select! {
        () = context.cancel.cancelled() => {}
        () = tokio::time::sleep(wait) => {}
    }
}
