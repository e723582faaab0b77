//! The event pipeline: the store's log relayed to Redis Streams, the consumer groups on it, and
//! the published language relayed to a second bus for other services.

use std::time::Duration;

use eventcore::bus::{Backoff, Broker, EventBus, RedisOptions, Relay, Retention, RunningConsumer};
use eventcore::integration::Integrated;
use eventcore::prelude::*;
use eventcore::runner::{RunnerStatus, Running};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamInfoGroupsReply;
use tokio::sync::watch;

use crate::cache::Cache;
use crate::invalidator::CacheInvalidator;
use crate::journal::Journal;
use crate::output::Output;
use crate::published::{translation, BoardFeed};
use crate::scenario::Error;
use crate::scorer::ModerationScorer;
use crate::search::{SearchIndex, SearchIndexer};

/// Entries kept per partition stream (`XTRIM ... MAXLEN ~` after each relayed batch).
pub const MAXLEN: usize = 10_000;
/// Partition streams of the board's bus.
pub const PARTITIONS: u32 = 4;
/// How long the demo waits for the pipeline to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// The consumer groups: their bus (key prefix suffix), its partitions, and their names.
const GROUPS: [(&str, u32, &[&str]); 2] = [
    (
        "bus",
        PARTITIONS,
        &["search_indexer", "cache_invalidator", "moderation_scorer"],
    ),
    ("public", 1, &["board_feed"]),
];

/// A consumer group as Redis counts it (`XINFO GROUPS`), summed over the partition streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group: the consumer's name.
    pub group: String,
    /// Entries delivered to the group.
    pub read: u64,
    /// Delivered but not acknowledged yet.
    pub pending: u64,
    /// Not delivered yet.
    pub lag: u64,
    /// Its dead letters.
    pub dead: usize,
}

/// Everything that runs after the commit.
pub struct Pipeline {
    /// The bus the store's log is relayed to.
    pub bus: EventBus<Broker>,
    public: EventBus<Broker>,
    prefix: String,
    relays: Vec<Running<SqliteStore>>,
    consumers: Vec<RunningConsumer<Broker>>,
    journal: Journal,
}

/// What the consumers need.
pub struct Parts {
    /// The cache the invalidator clears.
    pub cache: Cache,
    /// The status of the read models the cache renders from.
    pub read_models: Vec<watch::Receiver<RunnerStatus>>,
    /// The search index.
    pub index: SearchIndex,
    /// The scorer.
    pub scorer: ModerationScorer,
    /// Where the consumers tell what they did.
    pub journal: Journal,
}

/// The options of a bus under `prefix`.
fn options(prefix: String, partitions: u32) -> RedisOptions {
    RedisOptions::default()
        .prefix(prefix)
        .partitions(partitions)
        .retention(Retention::MaxLen(MAXLEN))
        .block(Duration::from_millis(50))
}

impl Pipeline {
    /// Connects the buses under `{prefix}:bus` and `{prefix}:public` and starts the relays and
    /// the consumer groups.
    pub async fn start(url: &str, prefix: &str, store: &SqliteStore, parts: Parts) -> Result<Self, Error> {
        let bus = EventBus::redis_with(url, options(format!("{prefix}:bus"), PARTITIONS)).await?;
        let public = EventBus::redis_with(url, options(format!("{prefix}:public"), 1)).await?;
        let backoff = Backoff::exponential(Duration::from_millis(20), Duration::from_millis(200));
        let relays = vec![
            Relay::new(store.clone(), bus.clone())
                .name("board_relay")
                .backoff(backoff)
                .start(),
            Relay::new(store.clone(), public.clone())
                .name("published_language")
                .integration(translation())
                .backoff(backoff)
                .start(),
        ];
        let Parts {
            cache,
            read_models,
            index,
            scorer,
            journal,
        } = parts;
        let consumers = vec![
            bus.subscribe(SearchIndexer::new(index, journal.clone()))
                .max_attempts(5)
                .backoff(backoff)
                .start(),
            bus.subscribe(CacheInvalidator::new(cache, read_models, journal.clone()))
                .max_attempts(5)
                .backoff(backoff)
                .start(),
            bus.subscribe(scorer).max_attempts(3).backoff(backoff).start(),
            public
                .subscribe(Integrated(BoardFeed::new(journal.clone())))
                .max_attempts(5)
                .backoff(backoff)
                .start(),
        ];
        Ok(Self {
            bus,
            public,
            prefix: prefix.to_owned(),
            relays,
            consumers,
            journal,
        })
    }

    /// Waits until everything committed so far is relayed and handled (or dead-lettered),
    /// then prints what the consumers did.
    pub async fn settle(&self, out: &mut Output) -> Result<(), Error> {
        for relay in &self.relays {
            relay.wait_caught_up(SETTLE).await?;
        }
        for consumer in &self.consumers {
            consumer.wait_caught_up(SETTLE).await?;
        }
        self.print_journal(out);
        Ok(())
    }

    /// Prints what the consumers did since the last time.
    pub fn print_journal(&self, out: &mut Output) {
        for line in self.journal.drain() {
            out.line(format!("  {line}"));
        }
    }

    /// The status of the relays: how far each is behind the store's log.
    pub fn relays(&self) -> Vec<RunnerStatus> {
        self.relays.iter().flat_map(|r| r.status()).collect()
    }

    /// How far each consumer group is behind, as Redis counts it, and its dead letters.
    pub async fn groups(&self, redis: &mut MultiplexedConnection) -> Result<Vec<GroupLag>, Error> {
        let mut lags = Vec::new();
        for (bus, partitions, groups) in GROUPS {
            for group in groups {
                let mut lag = GroupLag {
                    group: (*group).to_owned(),
                    read: 0,
                    pending: 0,
                    lag: 0,
                    dead: 0,
                };
                for partition in 0..partitions {
                    let key = format!("{}:{bus}:events:{partition}", self.prefix);
                    let info: StreamInfoGroupsReply = redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&key)
                        .query_async(redis)
                        .await?;
                    if let Some(found) = info.groups.iter().find(|g| g.name == *group) {
                        lag.read += found.entries_read.unwrap_or(0) as u64;
                        lag.pending += found.pending as u64;
                        lag.lag += found.lag.unwrap_or(0) as u64;
                    }
                }
                let bus = if bus == "bus" { &self.bus } else { &self.public };
                lag.dead = bus.dead_letters(group).count().await?;
                lags.push(lag);
            }
        }
        Ok(lags)
    }

    /// Stops the consumers, then the relays.
    pub async fn stop(self) -> Result<(), Error> {
        for consumer in self.consumers {
            consumer.stop().await?;
        }
        for relay in self.relays {
            relay.stop().await?;
        }
        Ok(())
    }
}
