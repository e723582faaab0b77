//! Runners on PostgreSQL: the DESIGN projections and bus blocks, a late commit of a lower position,
//! and two processes' worth of runners sharing one projection under a fenced lease.
#![cfg(feature = "postgres")]
#![allow(missing_docs)] // test types, not API

mod design_domain;

use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::RunnerState;
use eventcore::PostgresStore;
use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};

async fn store(prefix: &str) -> Option<PostgresStore> {
    let url = postgres_url()?;
    Some(
        PostgresStore::builder()
            .schema(unique_schema(prefix))
            .poll_interval(Duration::from_millis(50))
            .connect(&url)
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_block_on_postgres() {
    let Some(store) = store("ec_proj_design").await else {
        return;
    };
    let outcome = projections_block(store.clone()).await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_design_block_on_postgres() {
    let Some(store) = store("ec_bus_design").await else {
        return;
    };
    let outcome = bus_block(store.clone()).await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_of_a_lower_position_is_applied_in_order() {
    let Some(store) = store("ec_proj_late").await else {
        return;
    };
    let outcome = async {
        let accounts = Repository::<Account, _>::new(store.clone());
        accounts
            .execute("acc-1", OpenAccount { owner: "ada".into() })
            .await?;
        let projections = Projections::new(store.clone()).with::<AccountSummary>();
        let running = projections.start();
        running.wait_caught_up(Duration::from_secs(5)).await?;
        // A transaction draws a lower position and commits after a higher one.
        let mut client = store.pool().get().await?;
        let tx = client.transaction().await?;
        accounts
            .execute_in_postgres(&tx, "acc-1", Deposit { amount: 10 }, &CommandContext::new())
            .await?;
        accounts
            .execute("acc-2", OpenAccount { owner: "bob".into() })
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let early = projections.get::<AccountSummary>("acc-1").await?.expect("opened");
        assert_eq!(early.balance, 0, "the uncommitted deposit is not applied");
        tx.commit().await?;
        store.notify_subscribers().await?;
        running.wait_caught_up(Duration::from_secs(10)).await?;
        let summary = projections
            .get::<AccountSummary>("acc-1")
            .await?
            .expect("projected");
        assert_eq!(
            (summary.balance, summary.movements),
            (10, 1),
            "the late commit was not skipped"
        );
        assert!(projections.get::<AccountSummary>("acc-2").await?.is_some());
        running.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_share_a_projection_by_lease_and_hand_it_over() {
    let Some(store) = store("ec_proj_lease").await else {
        return;
    };
    let outcome = async {
        let accounts = Repository::<Account, _>::new(store.clone());
        accounts
            .execute("acc-1", OpenAccount { owner: "ada".into() })
            .await?;
        // Two handles on the same schema, as two processes would have.
        let other = PostgresStore::builder()
            .schema(store.schema())
            .poll_interval(Duration::from_millis(50))
            .connect(&postgres_url().unwrap_or_default())
            .await?;
        let first = Projections::new(store.clone())
            .with::<AccountSummary>()
            .lease_ttl(Duration::from_millis(500))
            .start();
        first.wait_caught_up(Duration::from_secs(5)).await?;
        let second_projections = Projections::new(other.clone())
            .with::<AccountSummary>()
            .lease_ttl(Duration::from_millis(500));
        let second = second_projections.start();
        let mut watch = second.watch("account_summary").expect("registered");
        for _ in 0..25 {
            accounts.execute("acc-1", Deposit { amount: 2 }).await?;
        }
        first.wait_caught_up(Duration::from_secs(5)).await?;
        assert_eq!(second.status()[0].state, RunnerState::Standby);
        // The owner goes away without releasing (as a killed process would): the lease expires.
        drop(first);
        for _ in 0..25 {
            accounts.execute("acc-1", Deposit { amount: 2 }).await?;
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            watch.wait_for(|s| s.state == RunnerState::Live),
        )
        .await??;
        second.wait_caught_up(Duration::from_secs(10)).await?;
        let summary = second_projections
            .get::<AccountSummary>("acc-1")
            .await?
            .expect("projected");
        assert_eq!(
            (summary.balance, summary.movements),
            (100, 50),
            "each event applied once"
        );
        second.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}
