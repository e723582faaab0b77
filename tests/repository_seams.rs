//! The repository's seams for the runners: idempotency keys, commands inside a store
//! transaction, and appends whose outcome is unknown.

mod design_domain;

use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::store::MemoryTransaction;
#[cfg(feature = "sqlite")]
use eventcore::store::{SqliteTransaction, UnitOfWork};
use eventcore_testing::faulty_store::{Call, Fault, FaultyStore};

#[tokio::test]
async fn a_command_run_again_with_its_key_appends_nothing_and_returns_the_first_outcome() {
    let accounts = Repository::<Account, _>::new(MemoryStore::new());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let context = CommandContext::new().idempotency_key("deposit-42");
    let first = accounts
        .execute_with("acc-1", Deposit { amount: 100 }, &context)
        .await
        .unwrap();
    let again = accounts
        .execute_with("acc-1", Deposit { amount: 100 }, &context)
        .await
        .unwrap();
    assert_eq!(again, first, "the second run returns the first run's outcome");
    let loaded = accounts.load("acc-1").await.unwrap();
    assert_eq!((loaded.state().balance, loaded.version()), (100, 2));

    // Another key is another command; the same key on another aggregate is independent.
    let other = CommandContext::new().idempotency_key("deposit-43");
    accounts
        .execute_with("acc-1", Deposit { amount: 5 }, &other)
        .await
        .unwrap();
    accounts
        .execute("acc-2", OpenAccount { owner: "bob".into() })
        .await
        .unwrap();
    accounts
        .execute_with("acc-2", Deposit { amount: 7 }, &context)
        .await
        .unwrap();
    assert_eq!(accounts.load("acc-1").await.unwrap().state().balance, 105);
    assert_eq!(accounts.load("acc-2").await.unwrap().state().balance, 7);

    // A keyed command that was rejected appended nothing, so running it again decides again.
    let open_again = CommandContext::new().idempotency_key("open");
    assert!(accounts
        .execute_with("acc-1", OpenAccount { owner: "x".into() }, &open_again)
        .await
        .unwrap_err()
        .rejection()
        .is_some());
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn concurrent_runs_of_one_keyed_command_append_once() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let accounts = Repository::<Account, _>::new(store);
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let context = CommandContext::new().idempotency_key("once");
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let accounts = accounts.clone();
            let context = context.clone();
            tokio::spawn(async move {
                accounts
                    .execute_retrying("acc-1", 10, &context, || Deposit { amount: 10 })
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap().unwrap());
    }
    assert!(
        outcomes.windows(2).all(|w| w[0] == w[1]),
        "every run reports the one append"
    );
    assert_eq!(accounts.load("acc-1").await.unwrap().state().balance, 10);
}

#[tokio::test]
async fn a_command_inside_a_memory_transaction_commits_with_the_callers_writes() {
    let store = MemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    store
        .transaction(|tx: &mut MemoryTransaction<'_>| {
            accounts.execute_in(
                tx,
                "acc-1",
                OpenAccount { owner: "ada".into() },
                &CommandContext::new(),
            )?;
            accounts.execute_in(tx, "acc-1", Deposit { amount: 30 }, &CommandContext::new())?;
            tx.put("audit", "acc-1", "opened".into());
            Ok::<_, RepositoryError<AccountError>>(())
        })
        .unwrap();
    assert_eq!(accounts.load("acc-1").await.unwrap().state().balance, 30);
    assert_eq!(store.get("audit", "acc-1").as_deref(), Some(&b"opened"[..]));

    // A failure anywhere in the transaction undoes its appends and writes.
    let failed = store.transaction(|tx| {
        accounts.execute_in(tx, "acc-1", Deposit { amount: 1 }, &CommandContext::new())?;
        accounts.execute_in(
            tx,
            "acc-2",
            OpenAccount { owner: "bob".into() },
            &CommandContext::new(),
        )?;
        tx.put("audit", "acc-1", "changed".into());
        tx.delete("audit", "acc-1");
        accounts.execute_in(tx, "acc-1", Withdraw { amount: 1000 }, &CommandContext::new())
    });
    assert!(failed.unwrap_err().rejection().is_some());
    assert_eq!(accounts.load("acc-1").await.unwrap().version(), 2);
    assert_eq!(accounts.load("acc-2").await.unwrap().version(), 0);
    assert_eq!(store.get("audit", "acc-1").as_deref(), Some(&b"opened"[..]));
    assert_eq!(store.head_position().await.unwrap(), 2);
    // Positions are not reused wrongly: the next append follows the committed ones.
    let next = accounts
        .execute("acc-2", OpenAccount { owner: "bob".into() })
        .await
        .unwrap();
    assert_eq!(next.events[0].global_position, 3);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_command_inside_a_sqlite_transaction_commits_with_the_callers_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).await.unwrap();
    let accounts = Repository::<Account, _>::new(store.clone());
    let mut subscription = store.subscribe_all(1);
    let repo = accounts.clone();
    store
        .transaction(move |tx: &mut SqliteTransaction<'_>| {
            tx.execute_batch("CREATE TABLE audit (account TEXT PRIMARY KEY, note TEXT)")
                .map_err(StoreError::backend)?;
            repo.execute_in(
                tx,
                "acc-1",
                OpenAccount { owner: "ada".into() },
                &CommandContext::new(),
            )?;
            repo.execute_in(tx, "acc-1", Deposit { amount: 30 }, &CommandContext::new())?;
            tx.execute("INSERT INTO audit VALUES ('acc-1', 'opened')", [])
                .map_err(StoreError::backend)?;
            Ok::<_, RepositoryError<AccountError>>(())
        })
        .await
        .unwrap();
    assert_eq!(accounts.load("acc-1").await.unwrap().state().balance, 30);
    // Subscriptions are woken by the commit.
    use futures_util::StreamExt;
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event_type, "account.opened");

    let repo = accounts.clone();
    let failed = store
        .transaction(move |tx| {
            tx.execute("INSERT INTO audit VALUES ('acc-2', 'opened')", [])
                .map_err(StoreError::backend)?;
            repo.execute_in(
                tx,
                "acc-2",
                OpenAccount { owner: "bob".into() },
                &CommandContext::new(),
            )?;
            // A refused append leaves nothing of itself, and the transaction may go on.
            let stale = tx.append("account-acc-1", ExpectedVersion::Exact(0), Vec::new());
            assert!(matches!(
                stale,
                Err(StoreError::VersionConflict { actual: 2, .. })
            ));
            repo.execute_in(tx, "acc-2", Withdraw { amount: 1 }, &CommandContext::new())
        })
        .await;
    assert!(failed.unwrap_err().rejection().is_some());
    assert_eq!(accounts.load("acc-2").await.unwrap().version(), 0);
    let rows: i64 = store
        .transaction(|tx| {
            tx.query_row("SELECT count(*) FROM audit", [], |row| row.get(0))
                .map_err(StoreError::backend)
        })
        .await
        .unwrap();
    assert_eq!(rows, 1, "the rolled-back row is gone");
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset by peer")]
struct Reset;

/// A store whose appends lose their reply: every `every`-th commits and reports an unknown
/// outcome, the one after it fails before committing with an unknown outcome.
fn lost_replies(every: u64) -> FaultyStore<MemoryStore> {
    FaultyStore::new(MemoryStore::new(), move |call| match call {
        Call::Append { n, .. } if n % every == 0 => Fault::CommitThenFail(StoreError::ambiguous(Reset)),
        Call::Append { n, .. } if n % every == 1 => Fault::Fail(StoreError::ambiguous(Reset)),
        _ => Fault::None,
    })
}

// Paused time: the repository's waits before re-sending pass at once.
#[tokio::test(start_paused = true)]
async fn lost_replies_never_apply_a_command_twice_or_lose_it() {
    let store = lost_replies(3);
    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    for _ in 0..400 {
        let done = accounts
            .execute_retrying("acc-1", 5, &CommandContext::new(), || Deposit { amount: 1 })
            .await
            .unwrap();
        assert_eq!(done.events.len(), 1);
    }
    assert!(store.appends() > 400, "replies were lost");
    let loaded = accounts.load("acc-1").await.unwrap();
    assert_eq!(
        (loaded.state().balance, loaded.version()),
        (400, 401),
        "none twice, none lost"
    );
}

#[tokio::test(start_paused = true)]
async fn an_outcome_that_stays_unknown_is_reported_as_ambiguous() {
    let store = lost_replies(1);
    let accounts = Repository::<Account, _>::new(store);
    let error = accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap_err();
    assert!(error.is_ambiguous(), "{error:?}");
    assert!(!error.is_retryable(), "re-deciding could apply the command twice");
    assert_eq!(
        accounts.load("acc-1").await.unwrap().version(),
        1,
        "committed once"
    );
    // The cause is in the source chain, not repeated in the message.
    assert_eq!(error.to_string(), "the outcome of the append is unknown");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("connection reset by peer"));
}

/// A store whose first `slow` appends take a second to run, in a task of their own that goes on
/// when the caller gives up (as SQLite's blocking write and PostgreSQL's statement do); the
/// `unknown` appends after them are lost before they reach the store, with an unknown outcome.
fn faulty(slow: u64, unknown: u64) -> FaultyStore<MemoryStore> {
    FaultyStore::new(MemoryStore::new(), move |call| match call {
        Call::Append { n, .. } if n < slow => Fault::Delay(Duration::from_secs(1)),
        Call::Append { n, .. } if n < slow + unknown => Fault::Fail(StoreError::ambiguous(Reset)),
        _ => Fault::None,
    })
}

#[tokio::test(start_paused = true)]
async fn execute_retrying_re_sends_the_same_batch_instead_of_deciding_again() {
    // Ten lost sends: more than `execute_with` makes, fewer than `execute_retrying` with 3 attempts.
    let accounts = Repository::<Account, _>::new(faulty(0, 10));
    let error = accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap_err();
    assert!(error.is_ambiguous(), "{error:?}");
    let accounts = Repository::<Account, _>::new(faulty(0, 10));
    let done = accounts
        .execute_retrying("acc-1", 3, &CommandContext::new(), || OpenAccount {
            owner: "ada".into(),
        })
        .await
        .unwrap();
    assert_eq!(done.version, 1);
    assert_eq!(accounts.store().appends(), 11);
}

#[tokio::test(start_paused = true)]
async fn an_append_that_times_out_inside_the_repository_is_resolved_not_repeated() {
    // The first append takes 1 s and commits; the repository gives up on it after 100 ms and
    // re-sends the same batch, which the store recognises.
    let accounts = Repository::<Account, _>::new(faulty(1, 0))
        .with_append_timeout(std::time::Duration::from_millis(100));
    let store = accounts.store().inner().clone();
    accounts
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let done = accounts.execute("acc-1", Deposit { amount: 5 }).await.unwrap();
    assert_eq!(done.version, 2);
    // Let the slow first send finish: it is recognised as a re-send and stores nothing.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        store.stream_version("account-acc-1").await.unwrap(),
        2,
        "opened once"
    );
    assert!(accounts.store().appends() >= 3);

    // The same fault with a timeout around `execute` applies the command twice on a retry:
    // the outcome of a dropped future cannot be learnt.
    // The opening and the deposit are both slow.
    let outer = Repository::<Account, _>::new(faulty(2, 0));
    let store = outer.store().inner().clone();
    outer
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    let timed_out = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        outer.execute("acc-1", Deposit { amount: 5 }),
    )
    .await;
    assert!(timed_out.is_err());
    // A caller's retry after a pause decides again, on a state that already has the deposit.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    outer.execute("acc-1", Deposit { amount: 5 }).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let loaded = Repository::<Account, _>::new(store).load("acc-1").await.unwrap();
    assert_eq!(
        loaded.state().balance,
        10,
        "applied twice: why the timeout belongs inside"
    );
}
