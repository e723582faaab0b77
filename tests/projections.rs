//! The DESIGN "Projections" block on every store, and the runner's guarantees: exactly-once
//! documents and checkpoints, a checkpoint that moves past unhandled events, failures that stop
//! at the event (never skipping it) and resume after a fix, rebuilds that swap atomically, and
//! fenced ownership.

mod design_domain;

use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::RunnerStore;

/// The DESIGN block, verbatim but for where the store comes from.
async fn design_block<S: RunnerStore + SubscribeAll>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    let accounts = Repository::<Account, _>::new(store.clone());
    let projections = Projections::new(store.clone()).with::<AccountSummary>();
    let running = projections.start(); // catches up from its checkpoint, then follows live
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await?;
    accounts.execute("acc-1", Deposit { amount: 100 }).await?;
    running.wait_caught_up(Duration::from_secs(5)).await?;
    let summary = projections
        .get::<AccountSummary>("acc-1")
        .await?
        .expect("projected");
    assert_eq!(
        (summary.owner.as_str(), summary.balance, summary.movements),
        ("ada", 100, 1)
    );
    let status = &running.status()[0]; // one entry per projection
    assert_eq!((status.name.as_str(), status.lag), ("account_summary", 0));
    running.stop().await?;
    projections.rebuild::<AccountSummary>().await?; // documents and checkpoint replaced by a replay from the start
    let rebuilt = projections
        .get::<AccountSummary>("acc-1")
        .await?
        .expect("rebuilt");
    assert_eq!(rebuilt, summary);
    Ok(())
}

#[tokio::test]
async fn design_block_on_memory() {
    design_block(MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn design_block_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bank.db")).await.unwrap();
    design_block(store).await.unwrap();
}
