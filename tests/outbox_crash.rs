//! Two outbox pumps on one database killed with SIGKILL mid-work, 30 times: every committed
//! message is published at least once and in commit order of first publication (one pump reads
//! at a time, and a killed one's lock goes with its process), a rolled-back one never, and
//! duplicates only for batches in flight at a kill.
#![allow(missing_docs)] // test types, not API

mod crash_support;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use eventcore::integration::{IntegrationMessage, MessageMeta};
use eventcore::outbox::{install_sqlite, Outbox, OutboxPump, SqliteOutbox};
use eventcore::prelude::*;
use eventcore::rusqlite;
use eventcore::uuid::Uuid;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const DB_ENV: &str = "EVENTCORE_OUTBOX_CRASH_DB";
const LOG_ENV: &str = "EVENTCORE_OUTBOX_CRASH_LOG";
const KILLS: u32 = 30;
const BATCH: usize = 8;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "shop.order_accepted", version = 1)]
pub struct OrderAccepted {
    pub order: u32,
}

/// The "broker": appends each message id to a file, fsynced, before acknowledging the batch.
fn publisher(
    log: PathBuf,
) -> impl Fn(Vec<IntegrationMessage>) -> std::future::Ready<Result<(), std::io::Error>> + Send + Sync + 'static
{
    move |batch: Vec<IntegrationMessage>| {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| {
                // One write per batch: appends of two pumps never interleave within a line.
                let lines: String = batch.iter().map(|message| format!("{}\n", message.id)).collect();
                file.write_all(lines.as_bytes())?;
                file.sync_data()
            });
        std::future::ready(written)
    }
}

async fn pump(db: &Path) -> OutboxPump<SqliteOutbox> {
    OutboxPump::new(SqliteOutbox::open(db).await.expect("opens the outbox"))
        .batch_size(BATCH)
        .poll_interval(Duration::from_millis(2))
        .backoff(eventcore::runner::Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
}

/// The child's side: pumps until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_pump() {
    let (Ok(db), Ok(log)) = (std::env::var(DB_ENV), std::env::var(LOG_ENV)) else {
        return;
    };
    let running = pump(Path::new(&db)).await.start(publisher(PathBuf::from(log)));
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

fn spawn_child(db: &Path, log: &Path) -> std::process::Child {
    crash_support::spawn_child("crash_child_pump", &[(DB_ENV, db), (LOG_ENV, log)])
}

/// The ids in the log, in first-publication order, with their counts.
fn published(log: &Path) -> (Vec<Uuid>, BTreeMap<Uuid, u32>) {
    let mut order = Vec::new();
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        // A kill mid-write leaves a partial last line: that batch was not acknowledged.
        if let Ok(id) = line.parse::<Uuid>() {
            let count = counts.entry(id).or_insert(0);
            if *count == 0 {
                order.push(id);
            }
            *count += 1;
        }
    }
    (order, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_message_is_published_at_least_once_in_order_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("service.db"), dir.path().join("published.log"));
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    install_sqlite(&conn).unwrap();

    let mut committed = Vec::new();
    let mut rolled_back = Vec::new();
    let mut delays = crash_support::Delays::new(0x0b7b);
    let mut order = 0;
    for _ in 0..KILLS {
        // Two pumps compete; the second reads only once the first is gone.
        let mut children = [spawn_child(&db, &log), spawn_child(&db, &log)];
        for n in 0..20 {
            let tx = conn.transaction().unwrap();
            order += 1;
            let id = Outbox::enqueue(&tx, &OrderAccepted { order }, &MessageMeta::new()).unwrap();
            if n % 7 == 3 {
                tx.rollback().unwrap();
                rolled_back.push(id);
            } else {
                tx.commit().unwrap();
                committed.push(id);
            }
            if n % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        tokio::time::sleep(delays.millis(5, 60)).await;
        for child in &mut children {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }
    // A last pump, not killed, drains what is left.
    let last = pump(&db).await;
    last.drain(publisher(log.clone())).await.unwrap();

    let (first_seen, counts) = published(&log);
    let missing = committed.iter().filter(|id| !counts.contains_key(id)).count();
    assert_eq!(missing, 0, "{missing} committed messages never published");
    assert!(
        rolled_back.iter().all(|id| !counts.contains_key(id)),
        "a rolled-back message was published"
    );
    assert_eq!(first_seen, committed, "first publications follow commit order");
    let duplicates: u32 = counts.values().map(|n| n - 1).sum();
    // Only the batch in flight at a kill is published again: at most one batch per kill.
    assert!(
        duplicates <= KILLS * BATCH as u32,
        "{duplicates} duplicate publications for {KILLS} kills"
    );
    eprintln!(
        "{} messages, {} kills, {duplicates} duplicate publications",
        committed.len(),
        KILLS
    );
}
