//! Commands under faults: replies dropped by a TCP proxy in front of PostgreSQL, and appends
//! that outlast the repository's append timeout on SQLite and PostgreSQL. Every command must be
//! applied exactly once: none twice, none lost.

mod design_domain;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;

/// Accounts the commands are spread over.
const ACCOUNTS: usize = 4;

fn account(i: usize) -> String {
    format!("faults-{}", i % ACCOUNTS)
}

/// What the caller saw while running commands.
#[derive(Debug, Default)]
struct Calls {
    /// Errors the caller retried because they were retryable.
    retried: AtomicU64,
    /// Errors whose outcome the repository could not resolve (the caller retried them too).
    ambiguous: AtomicU64,
}

/// Deposits `amount` into its account until it succeeds, as a caller that retries errors that
/// are retryable or ambiguous would.
async fn deposit<S: EventStore>(accounts: &Repository<Account, S>, amount: i64, calls: &Calls) {
    let id = account(usize::try_from(amount).unwrap());
    for _ in 0..50 {
        match accounts
            .execute_retrying(&id, 10, &CommandContext::new(), || Deposit { amount })
            .await
        {
            Ok(_) => return,
            Err(error) if error.is_ambiguous() => {
                calls.ambiguous.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) if error.is_retryable() => {
                calls.retried.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("deposit {amount} failed: {error}"),
        }
    }
    panic!("deposit {amount} did not succeed in 50 calls");
}

/// How many of the deposits `1..=count` are stored twice (or more), and how many are missing.
async fn audit<S: EventStore>(store: &S, count: i64) -> (usize, usize) {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..ACCOUNTS {
        let stream = Repository::<Account, S>::stream_id(&account(i));
        for event in store.read_stream(&stream, 1, usize::MAX).await.unwrap() {
            let payload = event.payload_json().unwrap();
            *seen.entry(payload["amount"].as_i64().unwrap()).or_default() += 1;
        }
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    let lost = (1..=count).filter(|amount| !seen.contains_key(amount)).count();
    assert_eq!(seen.keys().filter(|a| !(1..=count).contains(*a)).count(), 0);
    (twice, lost)
}

/// Runs deposits `1..=count` on `workers` tasks at once.
async fn run_concurrently<S: EventStore>(accounts: &Repository<Account, S>, count: i64, workers: i64) -> Arc<Calls> {
    let calls = Arc::new(Calls::default());
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (accounts, calls) = (accounts.clone(), Arc::clone(&calls));
            tokio::spawn(async move {
                for amount in (1..=count).filter(|a| a % workers == worker) {
                    deposit(&accounts, amount, &calls).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    calls
}

/// Holds SQLite's write lock from another connection for `hold`, then lets go for `pause`,
/// until `stop` is set.
fn hold_sqlite_lock(path: std::path::PathBuf, hold: Duration, pause: Duration, stop: Arc<AtomicBool>) -> u64 {
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut held = 0;
    while !stop.load(Ordering::SeqCst) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
        held += 1;
        std::thread::sleep(pause);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_appends_past_the_append_timeout_are_applied_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let accounts =
        Repository::<Account, _>::new(store.clone()).with_append_timeout(Duration::from_millis(40));
    let stop = Arc::new(AtomicBool::new(false));
    let blocker = {
        let (path, stop) = (path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            hold_sqlite_lock(path, Duration::from_millis(150), Duration::from_millis(100), stop)
        })
    };
    let calls = run_concurrently(&accounts, 200, 4).await;
    stop.store(true, Ordering::SeqCst);
    let held = blocker.join().unwrap();
    let (twice, lost) = audit(&store, 200).await;
    println!(
        "sqlite, append timeout 40 ms, write lock held {held} times: 200 commands, \
         {twice} applied twice, {lost} lost, {} retried, {} unresolved",
        calls.retried.load(Ordering::SeqCst),
        calls.ambiguous.load(Ordering::SeqCst)
    );
    assert!(held >= 3, "the store was slowed down");
    assert_eq!((twice, lost), (0, 0));
    assert_eq!(calls.ambiguous.load(Ordering::SeqCst), 0, "every outcome was resolved");
}
