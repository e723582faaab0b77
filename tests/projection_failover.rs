//! Two processes run the same projection on PostgreSQL; the one holding its lease is killed with
//! SIGKILL, again and again, while this process appends. The lease moves to the survivor each
//! time, and in the end the documents equal a fold of the log: no event applied twice or lost.
#![cfg(feature = "postgres")]
#![allow(missing_docs)] // test types, not API

mod crash_support;
mod design_domain;

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::RunnerStore;
use eventcore::store::EventFilter;
use eventcore::PostgresStore;
use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};

const CHILD_ENV: &str = "EVENTCORE_FAILOVER_SCHEMA";
const KILLS: u32 = 8;
const ACCOUNTS: u32 = 5;
const LEASE: Duration = Duration::from_millis(300);

async fn connect(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::builder()
        .schema(schema)
        .poll_interval(Duration::from_millis(50))
        .connect(url)
        .await
        .expect("connects")
}

fn projections(store: PostgresStore) -> Projections<PostgresStore> {
    Projections::new(store)
        .with::<AccountSummary>()
        .batch_size(8)
        .lease_ttl(LEASE)
}

/// The child's side: runs the projection until it is killed.
///
/// A helper, not a test: `the_lease_moves_to_the_survivor_when_the_owner_is_killed` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of `the_lease_moves_to_the_survivor_when_the_owner_is_killed`, not a test"]
async fn failover_child_projector() {
    let (Ok(schema), Some(url)) = (std::env::var(CHILD_ENV), postgres_url()) else {
        return;
    };
    let running = projections(connect(&url, &schema).await).start();
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(running);
}

fn spawn_child(schema: &str) -> Child {
    crash_support::spawn_child("failover_child_projector", &[(CHILD_ENV, schema)])
}

/// The pid of the process that holds the projection's lease, once one of `children` holds it.
async fn owner_among(store: &PostgresStore, children: &[Child], not: Option<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let owner = store
            .checkpoint("account_summary")
            .await
            .expect("reads the checkpoint")
            .and_then(|c| c.owner)
            .and_then(|owner| owner.split('/').next().and_then(|pid| pid.parse::<u32>().ok()));
        if let Some(pid) = owner {
            if Some(pid) != not && children.iter().any(|c| c.id() == pid) {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no live child took the lease over (owner {owner:?}, killed {not:?})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn deposits(accounts: &Repository<Account, PostgresStore>, round: u32, range: std::ops::Range<u32>) {
    for n in range {
        let id = format!("acc-{}", (round * 30 + n) % ACCOUNTS);
        accounts
            .execute(
                &id,
                Deposit {
                    amount: i64::from(n % 4) + 1,
                },
            )
            .await
            .expect("deposits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_moves_to_the_survivor_when_the_owner_is_killed() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = unique_schema("ec_failover");
    let store = connect(&url, &schema).await;
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
            .expect("opens");
    }
    let mut children = vec![spawn_child(&schema), spawn_child(&schema)];
    let mut owner = owner_among(&store, &children, None).await;
    let mut handovers = 0;
    for round in 0..KILLS {
        deposits(&accounts, round, 0..15).await;
        // Kill the owner mid-work; the survivor must take the lease over.
        let index = children
            .iter()
            .position(|c| c.id() == owner)
            .expect("owner is a child");
        let mut killed = children.swap_remove(index);
        killed.kill().expect("SIGKILL"); // SIGKILL
        killed.wait().expect("reaped");
        let survivor = owner_among(&store, &children, Some(owner)).await;
        assert_ne!(survivor, owner);
        handovers += 1;
        owner = survivor;
        children.push(spawn_child(&schema));
        deposits(&accounts, round, 15..30).await;
    }
    assert_eq!(handovers, KILLS);
    // The survivor catches up; compare its documents with a fold of the log.
    let head = store.head_position().await.expect("head");
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .checkpoint("account_summary")
        .await
        .expect("checkpoint")
        .map_or(0, |c| c.position)
        <= head
    {
        assert!(Instant::now() < deadline, "the survivor never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mut child in children {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    let reader = projections(store.clone());
    let expected = fold_from_log(&store).await;
    assert_eq!(expected.len(), ACCOUNTS as usize);
    for (id, (owner, balance, movements)) in expected {
        let summary = reader
            .get::<AccountSummary>(&id)
            .await
            .expect("reads")
            .expect("projected");
        assert_eq!(
            (summary.owner.as_str(), summary.balance, summary.movements),
            (owner.as_str(), balance, movements),
            "{id}: the document differs from the fold of the log"
        );
    }
    drop_schema(&store).await;
}

/// Owner, balance and movements of each account, folded straight from the stored events.
async fn fold_from_log(store: &PostgresStore) -> BTreeMap<String, (String, i64, u32)> {
    let mut folded: BTreeMap<String, (String, i64, u32)> = BTreeMap::new();
    let mut next = 1;
    loop {
        let batch = store
            .read_batch(next, &EventFilter::all(), 500)
            .await
            .expect("reads");
        for record in &batch.events {
            let entry = folded.entry(record.aggregate_id.clone()).or_default();
            match record.decode::<AccountEvent>().expect("decodes").payload {
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
