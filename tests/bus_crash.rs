//! Consumers killed with SIGKILL: every event is handled at least once and none is lost; and a
//! handler that crashes the process on an event is counted by deliveries, so the event is
//! dead-lettered instead of crashing the consumer forever.
#![allow(missing_docs)] // test types, not API

mod crash_support;
mod design_domain;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use design_domain::*;
use eventcore::bus::{Backoff, EventBus, EventHandler, HandleError, Handled};
use eventcore::prelude::*;
use eventcore::uuid::Uuid;

const DB_ENV: &str = "EVENTCORE_BUS_CRASH_DB";
const LOG_ENV: &str = "EVENTCORE_BUS_CRASH_LOG";
const ATTEMPTS_ENV: &str = "EVENTCORE_BUS_CRASH_ATTEMPTS";
const KILLS: u32 = 30;

/// Appends the id of every deposit it handles to a file (fsynced), and aborts the process on a
/// deposit of 666, as a handler that crashes would.
struct Journal {
    log: PathBuf,
}

impl EventHandler for Journal {
    const NAME: &'static str = "journal";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["account.money_deposited"];

    async fn handle(&self, record: &RecordedEvent) -> Result<Handled, HandleError> {
        if record.payload_json().is_ok_and(|p| p["amount"] == 666) {
            std::process::abort();
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| HandleError::Handler {
                handler: "deposited",
                source: Box::new(e),
            })?;
        writeln!(file, "{}", record.event_id)
            .and_then(|()| file.sync_data())
            .map_err(|e| HandleError::Handler {
                handler: "deposited",
                source: Box::new(e),
            })?;
        Ok(Handled::Done)
    }
}

fn consumer(
    store: SqliteStore,
    log: &Path,
    max_attempts: u32,
) -> eventcore::bus::RunningConsumer<SqliteStore> {
    EventBus::local(store)
        .subscribe(Journal { log: log.to_owned() })
        .batch_size(8)
        .max_attempts(max_attempts)
        .backoff(Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(2),
        ))
        .lease_ttl(Duration::from_millis(200))
        .start()
}

/// The child's side: runs the consumer until it is killed (or aborts itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash tests, not a test"]
async fn crash_child_consumer() {
    let (Ok(db), Ok(log)) = (std::env::var(DB_ENV), std::env::var(LOG_ENV)) else {
        return;
    };
    let store = SqliteStore::open(&db).await.expect("child opens the store");
    let attempts = std::env::var(ATTEMPTS_ENV)
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let running = consumer(store, Path::new(&log), attempts);
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

fn spawn_child(db: &Path, log: &Path, max_attempts: u32) -> std::process::Child {
    let attempts = max_attempts.to_string();
    crash_support::spawn_child(
        "crash_child_consumer",
        &[
            (DB_ENV, db.as_os_str()),
            (LOG_ENV, log.as_os_str()),
            (ATTEMPTS_ENV, attempts.as_ref()),
        ],
    )
}

fn handled(log: &Path) -> BTreeMap<Uuid, u32> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        // A kill mid-write leaves a partial last line: it is not a handled event.
        if let Ok(id) = line.parse::<Uuid>() {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_handled_at_least_once_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("bus.db"), dir.path().join("handled.log"));
    let store = SqliteStore::open(&db).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let mut deposits = Vec::new();
    let mut delays = crash_support::Delays::new(0x5eed);
    for round in 0..KILLS {
        // A kill is a delivery that crashed: allow more than the kills, so none dead-letters.
        let mut child = spawn_child(&db, &log, KILLS + 5);
        for n in 0..20 {
            let done = accounts
                .execute(
                    &format!("acc-{}", n % 3),
                    Deposit {
                        amount: i64::from(round) + 1,
                    },
                )
                .await
                .unwrap();
            deposits.push(done.events[0].event_id);
        }
        tokio::time::sleep(delays.millis(10, 100)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let running = consumer(store.clone(), &log, KILLS + 5);
    running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    running.stop().await.unwrap();
    let counts = handled(&log);
    let missing: Vec<_> = deposits.iter().filter(|id| !counts.contains_key(id)).collect();
    assert!(missing.is_empty(), "{} events never handled", missing.len());
    let twice = counts.values().filter(|&&n| n > 1).count();
    // Duplicates only for events in flight at a kill: at most one batch per kill.
    assert!(
        twice <= (KILLS as usize) * 8,
        "{twice} events handled more than once"
    );
    assert_eq!(counts.len(), deposits.len(), "only committed events are handled");
    let dead = EventBus::local(store).dead_letters("journal");
    assert_eq!(dead.count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_crashes_the_consumer_is_dead_lettered_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("bus.db"), dir.path().join("handled.log"));
    let store = SqliteStore::open(&db).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    let poison = accounts.execute("acc-1", Deposit { amount: 666 }).await.unwrap();
    accounts.execute("acc-2", Deposit { amount: 2 }).await.unwrap();
    // Each child aborts on the poison event; the deliveries are counted across the crashes.
    let mut crashes = 0;
    for _ in 0..10 {
        let mut child = spawn_child(&db, &log, 3);
        let status = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(status);
                }
                if started.elapsed() > Duration::from_secs(3) {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .unwrap();
        match status {
            Some(status) => {
                assert!(!status.success(), "the child only ends by crashing");
                crashes += 1;
            }
            None => break, // it kept running: it got past the poison event
        }
    }
    // The first crash is counted against the batch's first event (handled again alone, fine);
    // then the poison event crashes once per allowed delivery and is dead-lettered.
    assert_eq!(
        crashes,
        1 + 3,
        "crashed once per allowed delivery, then dead-lettered the event"
    );
    let dead = EventBus::local(store.clone()).dead_letters("journal");
    let letter = dead
        .get(poison.events[0].event_id)
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(letter.attempts, 3);
    assert!(
        letter.error[0].contains("crashed or was killed"),
        "{:?}",
        letter.error
    );
    let counts = handled(&log);
    assert_eq!(
        counts.len(),
        2,
        "the events around the poison were handled: {counts:?}"
    );
}
