//! The DESIGN "Projections" block on every store, and the runner's guarantees: exactly-once
//! documents and checkpoints, a checkpoint that moves past unhandled events, failures that stop
//! at the event (never skipping it) and resume after a fix, rebuilds that swap atomically, and
//! fenced ownership.

#![allow(missing_docs)] // test types, not API

mod design_domain;

use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::{Backoff, RetryPolicy, RunnerState, RunnerStore};

#[tokio::test]
async fn design_block_on_memory() {
    projections_block(MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn design_block_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bank.db")).await.unwrap();
    projections_block(store).await.unwrap();
}

/// A document of deposits, whose handler fails on an unlucky amount until it is fixed.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deposits {
    pub amounts: Vec<i64>,
}

static FIXED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
#[error("unlucky amount {0}")]
pub struct Unlucky(i64);

#[projection]
impl Deposits {
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited) -> Result<(), Unlucky> {
        if e.amount == 13 && !FIXED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Unlucky(e.amount));
        }
        self.amounts.push(e.amount);
        Ok(())
    }
}

/// Counts withdrawals only: most events are not its business.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Withdrawals {
    pub count: u32,
}

#[projection]
impl Withdrawals {
    #[on]
    fn withdrawn(&mut self, _: &MoneyWithdrawn) {
        self.count += 1;
    }
}

/// Version 2 of the account summary: also counts the opening as a movement.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummaryV2 {
    pub owner: String,
    pub balance: i64,
    pub movements: u32,
}

#[projection(name = "account_summary", version = 2)]
impl SummaryV2 {
    #[on]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner = e.owner.clone();
        self.movements += 1;
    }
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance += e.amount;
        self.movements += 1;
    }
}

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).await.unwrap();
    (dir, store)
}

async fn wait_for_state<S>(running: &eventcore::projection::RunningProjections<S>, state: RunnerState) {
    let mut status = running.watch(running.status()[0].name.as_str()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.state == state))
        .await
        .unwrap_or_else(|_| panic!("never reached {state}: {:?}", running.status()))
        .unwrap();
}

#[tokio::test]
async fn a_failing_event_stops_the_projection_there_and_it_resumes_after_a_fix() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    for amount in [1, 13, 2] {
        accounts.execute("acc-1", Deposit { amount }).await.unwrap();
    }
    let unlucky_position = 3;
    let projections = Projections::new(store.clone())
        .with::<Deposits>()
        .retry(RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        });
    let running = projections.start();
    wait_for_state(&running, RunnerState::Failed).await;
    let status = running.status().remove(0);
    assert_eq!(status.position, unlucky_position, "stopped at the failing event");
    assert_eq!(status.retries, 3);
    let error = status.last_error.unwrap();
    assert!(
        error.contains("position 3") && error.contains("unlucky amount 13"),
        "{error}"
    );
    assert!(running.wait_caught_up(Duration::from_secs(1)).await.is_err());
    let partial = projections.get::<Deposits>("acc-1").await.unwrap().unwrap();
    assert_eq!(
        partial.amounts,
        [1],
        "the events before it are committed, nothing after"
    );
    assert_eq!(
        store.checkpoint("deposits").await.unwrap().unwrap().position,
        unlucky_position
    );
    running.stop().await.unwrap();

    FIXED.store(true, std::sync::atomic::Ordering::SeqCst);
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let fixed = projections.get::<Deposits>("acc-1").await.unwrap().unwrap();
    assert_eq!(
        fixed.amounts,
        [1, 13, 2],
        "resumed at the failed event, none skipped or repeated"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_checkpoint_moves_past_events_the_projection_does_not_handle() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    for i in 0..30 {
        accounts
            .execute(&format!("acc-{i}"), OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
    }
    let projections = Projections::new(store.clone())
        .with::<Withdrawals>()
        .batch_size(7);
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        store.checkpoint("withdrawals").await.unwrap().unwrap().position,
        31
    );
    let status = running.status().remove(0);
    assert_eq!(
        (status.position, status.head, status.lag, status.state),
        (31, 30, 0, RunnerState::Live)
    );
    assert!(projections.get::<Withdrawals>("acc-1").await.unwrap().is_none());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn one_owner_at_a_time_and_the_other_takes_over_when_it_stops() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let projections = Projections::new(store.clone())
        .with::<AccountSummary>()
        .lease_ttl(Duration::from_millis(300));
    let first = projections.start();
    first.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let second = projections.start();
    wait_for_state(&second, RunnerState::Standby).await;
    for _ in 0..20 {
        accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    }
    first.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(second.status()[0].state, RunnerState::Standby, "never two owners");
    first.stop().await.unwrap();
    for _ in 0..20 {
        accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    }
    second.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let summary = projections.get::<AccountSummary>("acc-1").await.unwrap().unwrap();
    assert_eq!(
        (summary.balance, summary.movements),
        (40, 40),
        "each event applied once"
    );
    second.stop().await.unwrap();
}

#[tokio::test]
async fn a_writer_fenced_out_by_a_new_owner_cannot_commit() {
    let store = MemoryStore::new();
    let old = store
        .acquire_lease("p", "old", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new = store
        .acquire_lease("p", "new", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(new.fence > old.fence);
    let commit = eventcore::runner::DocumentCommit {
        collection: "p".into(),
        upserts: vec![("k".into(), "{}".into())],
        position: 9,
        version: 1,
    };
    let refused = store.commit_documents(&old, commit.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert!(store
        .load_documents("p", vec!["k".into()])
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .acquire_lease("p", "old", Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    store.commit_documents(&new, commit).await.unwrap();
    assert_eq!(store.checkpoint("p").await.unwrap().unwrap().position, 9);
}

#[tokio::test]
async fn a_rebuild_under_writes_and_reads_swaps_in_a_complete_model() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    for i in 0..5 {
        accounts
            .execute(&format!("acc-{i}"), OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
    }
    let projections = Projections::new(store.clone())
        .with::<AccountSummary>()
        .batch_size(20);
    let running = projections.start();
    let writer = {
        let accounts = accounts.clone();
        tokio::spawn(async move {
            for n in 0..300 {
                accounts
                    .execute(&format!("acc-{}", n % 5), Deposit { amount: 1 })
                    .await
                    .unwrap();
            }
        })
    };
    let reader = {
        let projections = Projections::new(store.clone()).with::<AccountSummary>();
        tokio::spawn(async move {
            let mut seen = [0u32; 5];
            for _ in 0..400 {
                for (i, last) in seen.iter_mut().enumerate() {
                    let movements = projections
                        .get::<AccountSummary>(&format!("acc-{i}"))
                        .await
                        .unwrap()
                        .map_or(0, |s| s.movements);
                    assert!(
                        movements >= *last,
                        "a reader saw the model go back: {movements} < {last}"
                    );
                    *last = movements;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    projections.rebuild::<AccountSummary>().await.unwrap();
    writer.await.unwrap();
    reader.await.unwrap();
    running.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    for i in 0..5 {
        let summary = projections
            .get::<AccountSummary>(&format!("acc-{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((summary.balance, summary.movements), (60, 60), "acc-{i}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_version_rebuilds_on_start() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 5 }).await.unwrap();
    let v1 = Projections::new(store.clone()).with::<AccountSummary>();
    let running = v1.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    running.stop().await.unwrap();
    assert_eq!(
        v1.get::<AccountSummary>("acc-1")
            .await
            .unwrap()
            .unwrap()
            .movements,
        1
    );

    let v2 = Projections::new(store.clone()).with::<SummaryV2>();
    let running = v2.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    let summary = v2.get::<SummaryV2>("acc-1").await.unwrap().unwrap();
    assert_eq!(
        (summary.balance, summary.movements),
        (5, 2),
        "rebuilt with version 2's logic"
    );
    assert_eq!(
        store
            .checkpoint("account_summary")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // Caught up means the position passed the head; the state turns live at the next read.
    wait_for_state(&running, RunnerState::Live).await;
    running.stop().await.unwrap();
}

/// A read model in tables of its own: balances by account, queried with SQL.
struct BalanceTable;

impl eventcore::projection::SqliteTableProjection for BalanceTable {
    fn name(&self) -> &str {
        "balance_table"
    }
    fn event_types(&self) -> Vec<String> {
        vec!["account.opened".into(), "account.money_deposited".into()]
    }
    fn setup(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
    ) -> Result<(), eventcore::projection::TableError> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, owner TEXT, balance INTEGER)",
        )?;
        Ok(())
    }
    fn apply(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), eventcore::projection::TableError> {
        match event.decode::<AccountEvent>()?.payload {
            AccountEvent::Opened(e) => {
                tx.execute(
                    "INSERT INTO balances VALUES (?1, ?2, 0)",
                    [event.aggregate_id.as_str(), e.owner.as_str()],
                )?;
            }
            AccountEvent::Deposited(e) if e.amount == 666 => return Err("a cursed deposit".into()),
            AccountEvent::Deposited(e) => {
                tx.execute(
                    "UPDATE balances SET balance = balance + ?2 WHERE account = ?1",
                    eventcore::rusqlite::params![event.aggregate_id, e.amount],
                )?;
            }
            AccountEvent::Withdrawn(_) => {}
        }
        Ok(())
    }
}

async fn balances(store: &SqliteStore) -> Vec<(String, String, i64)> {
    store
        .transaction(|tx| {
            let mut statement = tx
                .prepare("SELECT account, owner, balance FROM balances ORDER BY balance DESC, account")
                .map_err(StoreError::backend)?;
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(Iterator::collect)
                .map_err(StoreError::backend)?;
            Ok::<_, StoreError>(rows)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_table_projection_commits_its_rows_with_its_checkpoint() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    for (id, owner) in [("acc-1", "ada"), ("acc-2", "bob")] {
        accounts
            .execute(id, OpenAccount { owner: owner.into() })
            .await
            .unwrap();
    }
    accounts.execute("acc-2", Deposit { amount: 50 }).await.unwrap();
    accounts.execute("acc-1", Deposit { amount: 20 }).await.unwrap();
    let projections = Projections::new(store.clone())
        .with_tables(BalanceTable)
        .retry(RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(2)),
        });
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        balances(&store).await,
        [
            ("acc-2".into(), "bob".into(), 50),
            ("acc-1".into(), "ada".into(), 20)
        ]
    );
    // A failing event: the rows of its batch before it commit, nothing of it or after it.
    accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    accounts.execute("acc-1", Deposit { amount: 666 }).await.unwrap();
    accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    wait_for_state(&running, RunnerState::Failed).await;
    assert_eq!(running.status()[0].position, 6, "stopped at the cursed deposit");
    assert_eq!(balances(&store).await[1], ("acc-1".into(), "ada".into(), 21));
    running.stop().await.unwrap();
}

/// Refuses a cursed amount: run inline, it vetoes the append.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Audited {
    pub deposits: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("cursed amount {0}")]
pub struct Cursed(i64);

#[projection]
impl Audited {
    #[on]
    fn deposited(&mut self, e: &MoneyDeposited) -> Result<(), Cursed> {
        if e.amount == 666 {
            return Err(Cursed(e.amount));
        }
        self.deposits += 1;
        Ok(())
    }
}

async fn inline_projections_commit_with_the_append<S>(store: S)
where
    S: RunnerStore + eventcore::projection::InlineStore,
{
    let accounts = Repository::<Account, _>::new(store.clone())
        .with_inline::<AccountSummary>()
        .with_inline::<Audited>();
    let projections = Projections::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 10 }).await.unwrap();
    // Readable at once: updated in the append's transaction, no runner involved.
    let summary = projections.get::<AccountSummary>("acc-1").await.unwrap().unwrap();
    assert_eq!(
        (summary.owner.as_str(), summary.balance, summary.movements),
        ("ada", 10, 1)
    );
    assert_eq!(
        projections
            .get::<Audited>("acc-1")
            .await
            .unwrap()
            .unwrap()
            .deposits,
        1
    );

    // A failing handler rolls the append back and reaches the caller.
    let refused = accounts
        .execute("acc-1", Deposit { amount: 666 })
        .await
        .unwrap_err();
    match &refused {
        RepositoryError::Store(StoreError::ProjectionFailed { projection, .. }) => {
            assert_eq!(projection, "audited")
        }
        other => panic!("expected the projection's failure, got {other:?}"),
    }
    assert!(eventcore::runner::error_chain(&refused).contains("cursed amount 666"));
    assert_eq!(
        accounts.load("acc-1").await.unwrap().version(),
        2,
        "nothing appended"
    );
    let summary = projections.get::<AccountSummary>("acc-1").await.unwrap().unwrap();
    assert_eq!(summary.balance, 10, "no document changed either");

    // A keyed command re-run appends nothing and projects nothing twice.
    let context = CommandContext::new().idempotency_key("once");
    accounts
        .execute_with("acc-1", Deposit { amount: 5 }, &context)
        .await
        .unwrap();
    accounts
        .execute_with("acc-1", Deposit { amount: 5 }, &context)
        .await
        .unwrap();
    let summary = projections.get::<AccountSummary>("acc-1").await.unwrap().unwrap();
    assert_eq!((summary.balance, summary.movements), (15, 2));
}

#[tokio::test]
async fn inline_projections_on_memory() {
    inline_projections_commit_with_the_append(MemoryStore::new()).await;
}

#[tokio::test]
async fn inline_projections_on_sqlite() {
    let (_dir, store) = sqlite().await;
    inline_projections_commit_with_the_append(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_dropped_rebuild_leaves_the_live_model_and_hands_the_lease_back() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    for i in 0..5 {
        accounts
            .execute(&format!("acc-{i}"), OpenAccount { owner: "ada".into() })
            .await
            .unwrap();
    }
    for n in 0..200 {
        accounts
            .execute(&format!("acc-{}", n % 5), Deposit { amount: 1 })
            .await
            .unwrap();
    }
    // One event per batch: the rebuild is still replaying when it is cancelled.
    let projections = Projections::new(store.clone())
        .with::<AccountSummary>()
        .batch_size(1)
        .lease_ttl(Duration::from_millis(500));
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(20)).await.unwrap();
    let movements = |projections: Projections<SqliteStore>| async move {
        let mut all = Vec::new();
        for i in 0..5 {
            let summary = projections
                .get::<AccountSummary>(&format!("acc-{i}"))
                .await
                .unwrap()
                .unwrap();
            all.push(summary.movements);
        }
        all
    };
    assert_eq!(movements(projections.clone()).await, [40; 5]);

    let cancel = eventcore::runner::CancellationToken::new();
    let rebuild = {
        let (projections, cancel) = (projections.clone(), cancel.clone());
        tokio::spawn(async move { projections.rebuild_cancellable::<AccountSummary>(cancel).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    cancel.cancel();
    let outcome = rebuild.await.unwrap();
    assert!(
        outcome.is_err(),
        "the rebuild ran to the end before it was cancelled"
    );
    assert_eq!(
        movements(projections.clone()).await,
        [40; 5],
        "the live model is untouched"
    );
    // The lease is back with the live runner: a new event is applied.
    accounts.execute("acc-0", Deposit { amount: 1 }).await.unwrap();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(movements(projections.clone()).await, [41, 40, 40, 40, 40]);

    // A rebuild whose future is dropped stops renewing its lease; the live runner resumes.
    let rebuild = {
        let projections = projections.clone();
        tokio::spawn(async move { projections.rebuild::<AccountSummary>().await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    rebuild.abort();
    let _ = rebuild.await;
    accounts.execute("acc-1", Deposit { amount: 1 }).await.unwrap();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(movements(projections.clone()).await, [41, 41, 40, 40, 40]);

    // A later rebuild starts its shadow afresh and swaps in a complete model.
    projections.rebuild::<AccountSummary>().await.unwrap();
    assert_eq!(movements(projections.clone()).await, [41, 41, 40, 40, 40]);
    running.stop().await.unwrap();
}

/// `BalanceTable` whose `setup` fails its first `failures` times (a locked database, say).
struct FlakySetup {
    failures: u32,
}

impl eventcore::projection::SqliteTableProjection for FlakySetup {
    fn name(&self) -> &str {
        "balance_table"
    }
    fn event_types(&self) -> Vec<String> {
        BalanceTable.event_types()
    }
    fn setup(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
    ) -> Result<(), eventcore::projection::TableError> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err("the database is busy".into());
        }
        BalanceTable.setup(tx)
    }
    fn apply(
        &mut self,
        tx: &eventcore::rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), eventcore::projection::TableError> {
        BalanceTable.apply(tx, event)
    }
}

#[tokio::test]
async fn a_failed_setup_is_run_again_on_the_retry_and_skips_no_event() {
    let (_dir, store) = sqlite().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    accounts.execute("acc-1", Deposit { amount: 7 }).await.unwrap();
    let projections = Projections::new(store.clone())
        .with_tables(FlakySetup { failures: 2 })
        .retry(RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(2)),
        });
    let running = projections.start();
    running.wait_caught_up(Duration::from_secs(5)).await.unwrap();
    assert_eq!(balances(&store).await, [("acc-1".into(), "ada".into(), 7)]);
    assert_eq!(running.status()[0].state, RunnerState::Live);
    running.stop().await.unwrap();
}
