//! Broker consumers killed with SIGKILL mid-work, many times, while events flow, on Redis Streams
//! and on NATS JetStream: every event is handled at least once, each stream in order, and
//! duplicates come only from messages in flight at a kill (on Redis, taken over from the dead
//! process's pending entries; on NATS, redelivered when their ack wait passes).
#![cfg(any(feature = "redis", feature = "nats"))]
#![allow(missing_docs)] // test types, not API

mod brokers;
mod crash_support;
mod design_domain;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use brokers::Transport;
use design_domain::*;
use eventcore::bus::{Backoff, Broker, EventBus, EventHandler, HandleError, Handled, Relay};
use eventcore::prelude::*;
use eventcore::uuid::Uuid;

const PREFIX_ENV: &str = "EVENTCORE_CONSUMER_CRASH_PREFIX";
const LOG_ENV: &str = "EVENTCORE_CONSUMER_CRASH_LOG";
const KILLS: u32 = 30;
const BATCH: usize = 8;
const PARTITIONS: u32 = 2;

/// Appends `event_id stream_id stream_version` of every deposit it handles to a file (fsynced).
struct Journal {
    log: PathBuf,
}

impl EventHandler for Journal {
    const NAME: &'static str = "journal";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["account.money_deposited"];

    async fn handle(&self, record: &RecordedEvent) -> Result<Handled, HandleError> {
        if record.event_type != "account.money_deposited" {
            return Ok(Handled::Skipped);
        }
        let failed = |e: std::io::Error| HandleError::Handler {
            handler: "deposited",
            source: Box::new(e),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(failed)?;
        // One write (a kill cannot split it), starting a line of its own (after any line a kill
        // cut short mid-write).
        let line = format!(
            "\n{} {} {}\n",
            record.event_id, record.stream_id, record.stream_version
        );
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(failed)?;
        Ok(Handled::Done)
    }
}

/// The ignored test the child process runs on `transport`.
fn child_test(transport: Transport) -> &'static str {
    match transport {
        #[cfg(feature = "redis")]
        Transport::Redis => "crash_child_consumer_redis",
        #[cfg(feature = "nats")]
        Transport::Nats => "crash_child_consumer_nats",
    }
}

/// How many events may be handled twice across `KILLS` kills: those in flight at a kill (a batch
/// per partition on Redis, one message per partition on NATS).
fn duplicates_allowed(transport: Transport) -> usize {
    let in_flight = match transport {
        #[cfg(feature = "redis")]
        Transport::Redis => BATCH,
        #[cfg(feature = "nats")]
        Transport::Nats => 1,
    };
    KILLS as usize * in_flight * PARTITIONS as usize
}

fn consumer(bus: &EventBus<Broker>, log: &Path) -> eventcore::bus::Running<Broker> {
    bus.subscribe(Journal { log: log.to_owned() })
        .batch_size(BATCH)
        // A kill is a delivery that crashed: allow more than the kills, so none dead-letters.
        .max_attempts(KILLS + 10)
        .backoff(Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(2),
        ))
        .lease_ttl(Duration::from_millis(150))
        .start()
}

/// The child's side: consumes until it is killed.
async fn child(transport: Transport) {
    let (Ok(prefix), Ok(log), Ok(url)) = (
        std::env::var(PREFIX_ENV),
        std::env::var(LOG_ENV),
        std::env::var(transport.url_var()),
    ) else {
        return;
    };
    let running = consumer(&transport.bus(&url, &prefix, PARTITIONS).await, Path::new(&log));
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

/// Each handled event id with how often, and each stream's versions in first-handled order.
fn handled(log: &Path) -> (HashMap<Uuid, u32>, BTreeMap<String, Vec<u64>>) {
    let mut counts = HashMap::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        // A kill mid-write leaves a partial last line: it is not a handled event.
        let parts: Vec<&str> = line.split(' ').collect();
        let [id, stream, version] = parts[..] else {
            continue;
        };
        let (Ok(id), Ok(version)) = (id.parse::<Uuid>(), version.parse::<u64>()) else {
            continue;
        };
        let count = counts.entry(id).or_insert(0);
        *count += 1;
        if *count == 1 {
            order.entry(stream.to_owned()).or_default().push(version);
        }
    }
    (counts, order)
}

/// Commits deposits while consumer children are killed mid-work, then consumes the rest and
/// checks what was handled.
async fn consumer_kills(transport: Transport) {
    let Some(url) = transport.url() else {
        return;
    };
    let prefix = Transport::fresh_prefix();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.log");
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let bus = transport.bus(&url, &prefix, PARTITIONS).await;
    let relay = Relay::new(store.clone(), bus.clone()).start();
    for n in 0..4 {
        accounts
            .execute(&format!("acc-{n}"), OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
    }
    let mut deposits = Vec::new();
    let mut delays = crash_support::Delays::new(0x5eed);
    for round in 0..KILLS {
        for n in 0..24 {
            let done = accounts
                .execute(
                    &format!("acc-{}", n % 4),
                    Deposit {
                        amount: i64::from(round) + 1,
                    },
                )
                .await
                .unwrap();
            deposits.push(done.events[0].event_id);
        }
        let mut child = crash_support::spawn_child(
            child_test(transport),
            &[(PREFIX_ENV, prefix.as_ref()), (LOG_ENV, log.as_os_str())],
        );
        tokio::time::sleep(delays.millis(30, 150)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let (during, _) = handled(&log);
    assert!(!during.is_empty(), "the killed consumers handled nothing");
    println!(
        "killed consumers handled {} of {} deposits",
        during.len(),
        deposits.len()
    );
    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let running = consumer(&bus, &log);
    running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    running.stop().await.unwrap();
    relay.stop().await.unwrap();

    let (counts, order) = handled(&log);
    let missing = deposits.iter().filter(|id| !counts.contains_key(id)).count();
    assert_eq!(missing, 0, "{missing} events never handled");
    assert_eq!(counts.len(), deposits.len(), "only published events are handled");
    for (stream, versions) in &order {
        let expected: Vec<u64> = (2..=versions.len() as u64 + 1).collect();
        assert_eq!(versions, &expected, "{stream} handled in order");
    }
    let twice = counts.values().filter(|&&n| n > 1).count();
    println!("{twice} events handled more than once");
    assert!(
        twice <= duplicates_allowed(transport),
        "{twice} events handled more than once"
    );
    assert_eq!(bus.dead_letters("journal").count().await.unwrap(), 0);

    transport.cleanup(&url, &prefix).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_consumer_redis() {
    child(Transport::Redis).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_consumers_handle_every_event_at_least_once_in_order_across_kills() {
    consumer_kills(Transport::Redis).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_consumer_nats() {
    child(Transport::Nats).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumers_handle_every_event_at_least_once_in_order_across_kills() {
    consumer_kills(Transport::Nats).await;
}
