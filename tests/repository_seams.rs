//! The repository's seams for the runners: idempotency keys, commands inside a store
//! transaction, and appends whose outcome is unknown.

mod design_domain;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use design_domain::*;
use eventcore::prelude::*;
use eventcore::store::{AppendResult, EventFilter, LogBatch, MemoryTransaction};
#[cfg(feature = "sqlite")]
use eventcore::store::{SqliteTransaction, UnitOfWork};
use eventcore::{NewEvent, RecordedEvent, Snapshot};

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

/// A store whose appends lose their reply: it commits (or not) and then reports the outcome as
/// unknown, as a dropped connection would.
#[derive(Clone)]
struct LostReplies<S> {
    inner: S,
    appends: Arc<AtomicU64>,
    /// Every n-th append commits and reports an ambiguous error; every (n+1)-th fails before
    /// committing with an ambiguous error.
    every: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset by peer")]
struct Reset;

impl<S: EventStore> EventStore for LostReplies<S> {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        if n % self.every == 0 {
            self.inner.append(stream_id, expected, events).await?;
            return Err(StoreError::ambiguous(Reset));
        }
        if n % self.every == 1 {
            return Err(StoreError::ambiguous(Reset));
        }
        self.inner.append(stream_id, expected, events).await
    }
    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_id).await
    }
    async fn read_batch(
        &self,
        from: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        self.inner.read_batch(from, filter, limit).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }
    async fn find_event(&self, event_id: eventcore::uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.find_event(event_id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
}

// Paused time: the repository's waits before re-sending pass at once.
#[tokio::test(start_paused = true)]
async fn lost_replies_never_apply_a_command_twice_or_lose_it() {
    let store = LostReplies {
        inner: MemoryStore::new(),
        appends: Arc::default(),
        every: 3,
    };
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
    assert!(store.appends.load(Ordering::SeqCst) > 400, "replies were lost");
    let loaded = accounts.load("acc-1").await.unwrap();
    assert_eq!(
        (loaded.state().balance, loaded.version()),
        (400, 401),
        "none twice, none lost"
    );
}

#[tokio::test(start_paused = true)]
async fn an_outcome_that_stays_unknown_is_reported_as_ambiguous() {
    let store = LostReplies {
        inner: MemoryStore::new(),
        appends: Arc::default(),
        every: 1,
    };
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

/// A store whose first `slow` appends take `delay` to run, in a task of their own that goes on
/// when the caller gives up (as SQLite's blocking write and PostgreSQL's statement do); the
/// `unknown` appends after them are lost before they reach the store, with an unknown outcome.
#[derive(Clone)]
struct Faulty<S> {
    inner: S,
    appends: Arc<AtomicU64>,
    slow: u64,
    unknown: u64,
    delay: std::time::Duration,
}

impl<S: EventStore> EventStore for Faulty<S> {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        if n < self.slow {
            let (inner, delay, stream_id) = (self.inner.clone(), self.delay, stream_id.to_owned());
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                inner.append(&stream_id, expected, events).await
            });
            return task.await.unwrap();
        }
        if n < self.slow + self.unknown {
            return Err(StoreError::ambiguous(Reset));
        }
        self.inner.append(stream_id, expected, events).await
    }
    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from, limit).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_id).await
    }
    async fn read_batch(
        &self,
        from: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        self.inner.read_batch(from, filter, limit).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }
    async fn find_event(&self, event_id: eventcore::uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.find_event(event_id).await
    }
}

fn faulty(slow: u64, unknown: u64) -> Faulty<MemoryStore> {
    Faulty {
        inner: MemoryStore::new(),
        appends: Arc::default(),
        slow,
        unknown,
        delay: std::time::Duration::from_secs(1),
    }
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
    assert_eq!(accounts.store().appends.load(Ordering::SeqCst), 11);
}

#[tokio::test(start_paused = true)]
async fn an_append_that_times_out_inside_the_repository_is_resolved_not_repeated() {
    // The first append takes 1 s and commits; the repository gives up on it after 100 ms and
    // re-sends the same batch, which the store recognises.
    let accounts = Repository::<Account, _>::new(faulty(1, 0))
        .with_append_timeout(std::time::Duration::from_millis(100));
    let store = accounts.store().inner.clone();
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
    assert!(accounts.store().appends.load(Ordering::SeqCst) >= 3);

    // The same fault with a timeout around `execute` applies the command twice on a retry:
    // the outcome of a dropped future cannot be learnt.
    let outer = Repository::<Account, _>::new(faulty(1, 0));
    let store = outer.store().inner.clone();
    outer
        .execute("acc-1", OpenAccount { owner: "ada".into() })
        .await
        .unwrap();
    outer.store().appends.store(0, Ordering::SeqCst);
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
