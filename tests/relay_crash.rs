//! The relay killed with SIGKILL mid-publish, many times, while events are committed, on Redis
//! Streams and on NATS JetStream: every event reaches the bus at least once, in order per stream.
//! On Redis, duplicates come only from batches in flight at a kill; on NATS, the republished
//! batches are dropped as duplicates by their `Nats-Msg-Id` (the event id).
#![cfg(all(any(feature = "redis", feature = "nats"), feature = "sqlite"))]
#![allow(missing_docs)] // test types, not API

mod brokers;
mod crash_support;
mod design_domain;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use brokers::Transport;
use crash_support::{spawn_child, Delays};
use design_domain::*;
use eventcore::bus::{Broker, EventBus, Relay};
use eventcore::prelude::*;
use eventcore::runner::RunnerStore;

const DB_ENV: &str = "EVENTCORE_RELAY_CRASH_DB";
const PREFIX_ENV: &str = "EVENTCORE_RELAY_CRASH_PREFIX";
const KILLS: u32 = 30;
const BATCH: usize = 8;
const PARTITIONS: u32 = 3;

/// What the relay test needs of a broker beyond the shared [`Transport`].
trait RelayBroker {
    fn child_test(self) -> &'static str;
    async fn published(self, url: &str, prefix: &str) -> Vec<RecordedEvent>;
    fn duplicates_allowed(self) -> usize;
}

impl RelayBroker for Transport {
    /// The ignored test the child process runs.
    fn child_test(self) -> &'static str {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => "crash_child_relay_redis",
            #[cfg(feature = "nats")]
            Self::Nats => "crash_child_relay_nats",
        }
    }

    /// Every message on the bus, decoded, in each partition's order.
    async fn published(self, url: &str, prefix: &str) -> Vec<RecordedEvent> {
        let mut events = Vec::new();
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => {
                use redis::AsyncCommands;
                let client = redis::Client::open(url).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                for partition in 0..PARTITIONS {
                    let key = format!("{prefix}:events:{partition}");
                    let range: redis::streams::StreamRangeReply = connection.xrange_all(&key).await.unwrap();
                    for entry in range.ids {
                        let body: String = entry.get("event").unwrap();
                        events.push(eventcore::cloudevents::from_json(&body).unwrap());
                    }
                }
            }
            #[cfg(feature = "nats")]
            Self::Nats => {
                let jetstream = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
                let mut stream = jetstream.get_stream(prefix.to_uppercase()).await.unwrap();
                let last = stream.info().await.unwrap().state.last_sequence;
                for sequence in 1..=last {
                    let message = stream.get_raw_message(sequence).await.unwrap();
                    let body = std::str::from_utf8(&message.payload).unwrap();
                    events.push(eventcore::cloudevents::from_json(body).unwrap());
                }
            }
        }
        events
    }

    /// How many copies of the in-flight batches may reach the bus across `KILLS` kills.
    fn duplicates_allowed(self) -> usize {
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => KILLS as usize * BATCH,
            #[cfg(feature = "nats")]
            Self::Nats => 0, // deduplicated by the broker
        }
    }
}

fn relay(store: SqliteStore, bus: EventBus<Broker>) -> eventcore::bus::Running<SqliteStore> {
    Relay::new(store, bus)
        .batch_size(BATCH)
        .lease_ttl(Duration::from_millis(100))
        .start()
}

/// The child's side: relays until it is killed.
async fn child(transport: Transport) {
    let (Ok(db), Ok(prefix), Ok(url)) = (
        std::env::var(DB_ENV),
        std::env::var(PREFIX_ENV),
        std::env::var(transport.url_var()),
    ) else {
        return;
    };
    let store = SqliteStore::open(&db).await.expect("child opens the store");
    let running = relay(store, transport.bus(&url, &prefix, PARTITIONS).await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

/// Commits deposits while relay children are killed mid-publish, then relays the rest and checks
/// what reached the bus.
async fn relay_kills(transport: Transport) {
    let Some(url) = transport.url() else {
        return;
    };
    let prefix = Transport::fresh_prefix();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let store = SqliteStore::open(&db).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    let mut committed = Vec::new();
    for n in 0..4 {
        let opened = accounts
            .execute(&format!("acc-{n}"), OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
        committed.push(opened.events[0].event_id);
    }
    let mut delays = Delays::new(0x5eed);
    let mut behind = 0;
    for round in 0..KILLS {
        // A backlog for the child to work through when it is killed.
        for n in 0..60 {
            let done = accounts
                .execute(
                    &format!("acc-{}", n % 4),
                    Deposit {
                        amount: i64::from(round) + 1,
                    },
                )
                .await
                .unwrap();
            committed.push(done.events[0].event_id);
        }
        let mut child = spawn_child(
            transport.child_test(),
            &[(DB_ENV, db.as_os_str()), (PREFIX_ENV, prefix.as_ref())],
        );
        tokio::time::sleep(delays.millis(5, 100)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = store.checkpoint("relay").await.unwrap().map_or(0, |c| c.position);
        if at <= committed.len() as u64 {
            behind += 1; // killed with a backlog left: mid-work
        }
    }
    // The children did relay between the kills (the test is about killing a relay at work).
    let reached = store.checkpoint("relay").await.unwrap().map_or(0, |c| c.position);
    assert!(reached > 1, "the killed relays published nothing");
    println!(
        "killed relays reached position {reached} of {}; {behind} of {KILLS} kills left a backlog",
        committed.len()
    );
    assert!(behind > 0, "no kill landed while the relay had work");
    let running = relay(store.clone(), transport.bus(&url, &prefix, PARTITIONS).await);
    running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    running.stop().await.unwrap();

    // Everything on the bus, deduplicated by event id as a consumer would.
    let published = transport.published(&url, &prefix).await;
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for event in &published {
        if seen.insert(event.event_id) {
            per_stream
                .entry(event.stream_id.clone())
                .or_default()
                .push(event.stream_version);
        }
    }
    let missing = committed.iter().filter(|id| !seen.contains(id)).count();
    assert_eq!(missing, 0, "{missing} committed events never reached the bus");
    assert_eq!(seen.len(), committed.len(), "only committed events are published");
    for (stream, versions) in &per_stream {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, &expected, "{stream} reached the bus in order");
    }
    let duplicates = published.len() - seen.len();
    println!("{} messages, {duplicates} duplicates", published.len());
    assert!(
        duplicates <= transport.duplicates_allowed(),
        "{duplicates} duplicates for {KILLS} kills"
    );
    transport.cleanup(&url, &prefix).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_relay_redis() {
    child(Transport::Redis).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_redis_in_order_across_relay_kills() {
    relay_kills(Transport::Redis).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_relay_nats() {
    child(Transport::Nats).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_nats_once_in_order_across_relay_kills() {
    relay_kills(Transport::Nats).await;
}
