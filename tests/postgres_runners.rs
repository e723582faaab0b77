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

/// The document commit is pipelined (`COMMIT` is sent before the checkpoint's row count is
/// known): a fenced-out owner's upserts must still write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_out_owner_commits_no_document() {
    use eventcore::runner::{DocumentCommit, RunnerStore};
    let Some(store) = store("ec_proj_fence").await else {
        return;
    };
    let outcome = async {
        let old = store
            .acquire_lease("p", "old", Duration::from_secs(30))
            .await?
            .ok_or("no lease")?;
        let new = store.take_over_lease("p", "new", Duration::from_secs(30)).await?;
        let commit = |key: &str, position| DocumentCommit {
            collection: "p".into(),
            upserts: vec![(key.into(), "{\"n\":1}".into())],
            position,
            version: 1,
        };
        let refused = store.commit_documents(&old, commit("stale", 9)).await;
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { .. })),
            "{refused:?}"
        );
        assert!(store.load_documents("p", vec!["stale".into()]).await?.is_empty());
        assert_eq!(store.checkpoint("p").await?.ok_or("no checkpoint")?.position, 1);
        store.commit_documents(&new, commit("fresh", 7)).await?;
        let found = store
            .load_documents("p", vec!["fresh".into(), "stale".into()])
            .await?;
        assert_eq!(found.keys().collect::<Vec<_>>(), ["fresh"]);
        assert_eq!(store.checkpoint("p").await?.ok_or("no checkpoint")?.position, 7);
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

/// Balances in a table of the test's schema; refuses a cursed deposit until `fixed`, and fails
/// its first `setup_failures` setups.
struct BalanceTable {
    table: String,
    fixed: bool,
    setup_failures: u32,
}

impl BalanceTable {
    fn new(store: &PostgresStore, fixed: bool) -> Self {
        Self {
            table: format!("\"{}\".balances", store.schema()),
            fixed,
            setup_failures: 0,
        }
    }
}

impl eventcore::projection::PostgresTableProjection for BalanceTable {
    fn name(&self) -> &str {
        "balance_table"
    }
    fn event_types(&self) -> Vec<String> {
        vec!["account.opened".into(), "account.money_deposited".into()]
    }
    async fn setup(
        &mut self,
        tx: &eventcore::tokio_postgres::Transaction<'_>,
    ) -> Result<(), eventcore::projection::TableError> {
        if self.setup_failures > 0 {
            self.setup_failures -= 1;
            return Err("the database is busy".into());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (account text PRIMARY KEY, owner text, balance bigint)",
            self.table
        );
        tx.batch_execute(&sql).await?;
        Ok(())
    }
    async fn apply(
        &mut self,
        tx: &eventcore::tokio_postgres::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), eventcore::projection::TableError> {
        match event.decode::<AccountEvent>()?.payload {
            AccountEvent::Opened(e) => {
                let sql = format!("INSERT INTO {} VALUES ($1, $2, 0)", self.table);
                tx.execute(&sql, &[&event.aggregate_id, &e.owner]).await?;
            }
            AccountEvent::Deposited(e) if e.amount == 666 && !self.fixed => {
                return Err("a cursed deposit".into())
            }
            AccountEvent::Deposited(e) => {
                let sql = format!(
                    "UPDATE {} SET balance = balance + $2 WHERE account = $1",
                    self.table
                );
                tx.execute(&sql, &[&event.aggregate_id, &e.amount]).await?;
            }
            AccountEvent::Withdrawn(_) => {}
        }
        Ok(())
    }
}

/// `max_attempts` attempts, a millisecond or two apart.
fn fast_retry(max_attempts: u32) -> eventcore::runner::RetryPolicy {
    eventcore::runner::RetryPolicy {
        max_attempts,
        backoff: eventcore::runner::Backoff::exponential(Duration::from_millis(1), Duration::from_millis(2)),
    }
}

async fn balances(store: &PostgresStore) -> Result<Vec<(String, String, i64)>, Box<dyn std::error::Error>> {
    let client = store.pool().get().await?;
    let sql = format!(
        "SELECT account, owner, balance FROM \"{}\".balances ORDER BY account",
        store.schema()
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_projection_commits_its_rows_with_its_checkpoint_and_resumes_after_a_fix() {
    let Some(store) = store("ec_proj_table").await else {
        return;
    };
    let outcome = async {
        let accounts = Repository::<Account, _>::new(store.clone());
        accounts
            .execute("acc-1", OpenAccount { owner: "ada".into() })
            .await?;
        accounts
            .execute("acc-2", OpenAccount { owner: "bob".into() })
            .await?;
        accounts.execute("acc-1", Deposit { amount: 20 }).await?;
        let retry = fast_retry(2);
        let running = Projections::new(store.clone())
            .with_tables(BalanceTable::new(&store, false))
            .retry(retry)
            .start();
        running.wait_caught_up(Duration::from_secs(10)).await?;
        assert_eq!(
            balances(&store).await?,
            [
                ("acc-1".into(), "ada".into(), 20),
                ("acc-2".into(), "bob".into(), 0)
            ]
        );
        // The rows of a batch before a failing event commit; nothing of it or after it does.
        accounts.execute("acc-2", Deposit { amount: 1 }).await?;
        accounts.execute("acc-2", Deposit { amount: 666 }).await?;
        accounts.execute("acc-2", Deposit { amount: 2 }).await?;
        let mut status = running.watch("balance_table").expect("registered");
        tokio::time::timeout(
            Duration::from_secs(10),
            status.wait_for(|s| s.state == RunnerState::Failed),
        )
        .await??;
        assert_eq!(running.status()[0].position, 5, "stopped at the cursed deposit");
        assert_eq!(balances(&store).await?[1], ("acc-2".into(), "bob".into(), 1));
        running.stop().await?;
        // Fixed and restarted, it resumes at the failed event and applies each event once.
        let running = Projections::new(store.clone())
            .with_tables(BalanceTable::new(&store, true))
            .start();
        running.wait_caught_up(Duration::from_secs(10)).await?;
        assert_eq!(balances(&store).await?[1], ("acc-2".into(), "bob".into(), 669));
        assert_eq!(balances(&store).await?[0], ("acc-1".into(), "ada".into(), 20));
        running.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_table_setup_is_run_again_on_the_retry_and_skips_no_event() {
    let Some(store) = store("ec_proj_table_setup").await else {
        return;
    };
    let outcome = async {
        let accounts = Repository::<Account, _>::new(store.clone());
        accounts
            .execute("acc-1", OpenAccount { owner: "ada".into() })
            .await?;
        accounts.execute("acc-1", Deposit { amount: 7 }).await?;
        let retry = fast_retry(5);
        let table = BalanceTable {
            setup_failures: 2,
            ..BalanceTable::new(&store, true)
        };
        let running = Projections::new(store.clone())
            .with_tables(table)
            .retry(retry)
            .start();
        running.wait_caught_up(Duration::from_secs(10)).await?;
        assert_eq!(balances(&store).await?, [("acc-1".into(), "ada".into(), 7)]);
        running.stop().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    drop_schema(&store).await;
    outcome.unwrap();
}
