//! A process running a projection is killed with SIGKILL mid-batch, many times, while this
//! process keeps appending; in the end the documents equal a fold computed directly from the
//! log: no event applied twice, none lost.
#![allow(missing_docs)] // test types, not API

mod crash_support;
mod design_domain;

use std::collections::BTreeMap;

use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::RunnerStore;
use eventcore::store::EventFilter;

const CHILD_ENV: &str = "EVENTCORE_PROJECTION_CRASH_DB";
const KILLS: u32 = 30;
const ACCOUNTS: u32 = 7;

fn projections(store: SqliteStore) -> Projections<SqliteStore> {
    // Small batches and a short lease, so kills land mid-catch-up and the next owner takes over fast.
    Projections::new(store)
        .with::<AccountSummary>()
        .batch_size(16)
        .lease_ttl(Duration::from_millis(200))
}

/// The child's side: runs the projection until it is killed.
///
/// A helper, not a test: `documents_survive_sigkill` runs it with `--ignored --exact`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of `documents_survive_sigkill`, not a test"]
async fn crash_child_projector() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).await.expect("child opens the store");
    let running = projections(store).start();
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(running);
}

async fn deposit_round(accounts: &Repository<Account, SqliteStore>, round: u32) {
    for n in 0..40 {
        let id = format!("acc-{}", (round * 40 + n) % ACCOUNTS);
        accounts
            .execute(
                &id,
                Deposit {
                    amount: i64::from(n % 5) + 1,
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projection-crash.db");
    let store = SqliteStore::open(&db).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    for i in 0..ACCOUNTS {
        accounts
            .execute(
                &format!("acc-{i}"),
                OpenAccount {
                    owner: format!("owner-{i}"),
                },
            )
            .await
            .unwrap();
    }
    let mut delays = crash_support::Delays::new(0x5eed);
    let mut progressed = 0;
    let mut last_checkpoint = 0;
    for round in 0..KILLS {
        let mut child = crash_support::spawn_child("crash_child_projector", &[(CHILD_ENV, &db)]);
        // Append while the child projects, then kill it at a random moment.
        deposit_round(&accounts, round).await;
        tokio::time::sleep(delays.millis(20, 150)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let checkpoint = store
            .checkpoint("account_summary")
            .await
            .unwrap()
            .map_or(0, |c| c.position);
        if checkpoint > last_checkpoint {
            progressed += 1;
            last_checkpoint = checkpoint;
        }
    }
    // The children did the work, killed at different points, not the last owner alone.
    assert!(
        progressed >= KILLS / 3,
        "only {progressed} of {KILLS} children made progress"
    );
    // A last owner takes over (after the dead child's lease expires) and catches up.
    let projections = projections(store.clone());
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    running.stop().await.unwrap();

    let expected = fold_from_log(&store).await;
    assert_eq!(expected.len(), ACCOUNTS as usize);
    for (id, (owner, balance, movements)) in expected {
        let summary = projections.get::<AccountSummary>(&id).await.unwrap().unwrap();
        assert_eq!(
            (summary.owner.as_str(), summary.balance, summary.movements),
            (owner.as_str(), balance, movements),
            "{id}: the document differs from the fold of the log"
        );
    }
}

/// Owner, balance and movements of each account, folded straight from the stored events.
async fn fold_from_log(store: &SqliteStore) -> BTreeMap<String, (String, i64, u32)> {
    let mut folded: BTreeMap<String, (String, i64, u32)> = BTreeMap::new();
    let mut next = 1;
    loop {
        let batch = store.read_batch(next, &EventFilter::all(), 500).await.unwrap();
        for record in &batch.events {
            let entry = folded.entry(record.aggregate_id.clone()).or_default();
            match record.decode::<AccountEvent>().unwrap().payload {
                AccountEvent::Opened(e) => entry.0 = e.owner,
                AccountEvent::Deposited(e) => {
                    entry.1 += e.amount;
                    entry.2 += 1;
                }
                AccountEvent::Withdrawn(e) => {
                    entry.1 -= e.amount;
                    entry.2 += 1;
                }
            }
        }
        next = batch.next_position;
        if batch.caught_up() {
            return folded;
        }
    }
}
