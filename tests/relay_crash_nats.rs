//! The relay killed with SIGKILL mid-publish to NATS, many times, while events are committed:
//! every event reaches the stream, in order per stream, and the republished batches are dropped
//! as duplicates by their `Nats-Msg-Id` (the event id).
#![cfg(all(feature = "nats", feature = "sqlite"))]
#![allow(missing_docs)] // test types, not API

mod design_domain;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use design_domain::*;
use eventcore::bus::{Broker, EventBus, NatsOptions, Relay};
use eventcore::prelude::*;
use eventcore::runner::RunnerStore;
use eventcore::uuid::Uuid;

const DB_ENV: &str = "EVENTCORE_NATS_RELAY_CRASH_DB";
const PREFIX_ENV: &str = "EVENTCORE_NATS_RELAY_CRASH_PREFIX";
const KILLS: u32 = 30;
const BATCH: usize = 8;
const PARTITIONS: u32 = 3;

async fn bus(url: &str, prefix: &str) -> EventBus<Broker> {
    let options = NatsOptions::default().prefix(prefix).partitions(PARTITIONS);
    EventBus::nats_with(url, options).await.unwrap()
}

fn relay(store: SqliteStore, bus: EventBus<Broker>) -> eventcore::bus::Running<SqliteStore> {
    Relay::new(store, bus)
        .batch_size(BATCH)
        .lease_ttl(Duration::from_millis(100))
        .start()
}

/// The child's side: relays until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_nats_relay() {
    let (Ok(db), Ok(prefix), Ok(url)) = (
        std::env::var(DB_ENV),
        std::env::var(PREFIX_ENV),
        std::env::var("EVENTCORE_NATS_URL"),
    ) else {
        return;
    };
    let store = SqliteStore::open(&db).await.expect("child opens the store");
    let running = relay(store, bus(&url, &prefix).await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

fn spawn_child(db: &Path, prefix: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child_nats_relay", "--nocapture"])
        .env(DB_ENV, db)
        .env(PREFIX_ENV, prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A small deterministic generator (splitmix64) for kill delays.
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_bus_in_order_across_relay_kills() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_NATS_URL") else {
        return;
    };
    let prefix = format!("test-{}", Uuid::now_v7().simple());
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
    let mut seed = 0x5eed_u64;
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
        let mut child = spawn_child(&db, &prefix);
        tokio::time::sleep(Duration::from_millis(5 + next(&mut seed) % 100)).await;
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
    let bus = bus(&url, &prefix).await;
    let running = relay(store.clone(), bus);
    running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    running.stop().await.unwrap();

    // Read back everything in the stream.
    let jetstream = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = prefix.to_uppercase();
    let mut stream = jetstream.get_stream(&name).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let event =
            eventcore::cloudevents::from_json(std::str::from_utf8(&message.payload).unwrap()).unwrap();
        assert!(
            seen.insert(event.event_id),
            "a duplicate passed the deduplication"
        );
        per_stream
            .entry(event.stream_id.clone())
            .or_default()
            .push(event.stream_version);
    }
    let missing = committed.iter().filter(|id| !seen.contains(id)).count();
    assert_eq!(missing, 0, "{missing} committed events never reached the bus");
    assert_eq!(seen.len(), committed.len(), "only committed events are published");
    for (stream, versions) in &per_stream {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, &expected, "{stream} reached the bus in order");
    }
    jetstream.delete_stream(&name).await.unwrap();
    jetstream
        .delete_key_value(format!("{name}_letters"))
        .await
        .unwrap();
}
