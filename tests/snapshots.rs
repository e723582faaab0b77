//! Snapshots: taken every N events after an append, used on load, ignored when their version changes.
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*;
use eventcore::Snapshot;
use eventcore_testing::faulty_store::{Call, Fault, FaultyStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "tally")]
pub struct Added {
    pub n: i64,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum TallyEvent {
    Added(Added),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub sum: i64,
    pub applied: u64,
}

pub struct Add(pub i64);

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(events = TallyEvent, error = Never, snapshot_every = 3)]
impl Tally {
    #[command]
    fn add(&self, cmd: Add) -> Result<Vec<TallyEvent>, Never> {
        Ok(vec![Added { n: cmd.0 }.into()])
    }
    #[apply]
    fn added(&mut self, e: &Added) {
        self.sum += e.n;
        self.applied += 1;
    }
}

async fn snapshot_behaviour<S: EventStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    let tallies = Repository::<Tally, _>::new(store.clone());
    let stream = Repository::<Tally, S>::stream_id("t");
    for n in 1..=7 {
        tallies.execute("t", Add(n)).await?;
    }
    let snapshot = store
        .load_snapshot(&stream)
        .await?
        .ok_or("no snapshot after 7 events")?;
    assert_eq!(snapshot.stream_version, 6, "snapshots are taken every 3 events");
    assert_eq!(snapshot.snapshot_version, 1);
    let state: Tally = serde_json::from_slice(&snapshot.state)?;
    assert_eq!(state, Tally { sum: 21, applied: 6 });

    let loaded = tallies.load("t").await?;
    assert_eq!((loaded.state().sum, loaded.version()), (28, 7));
    assert_eq!(loaded.state().applied, 7);

    // A load starts from the snapshot: a doctored one shows through.
    let doctored = Tally {
        sum: 1000,
        applied: 0,
    };
    store
        .save_snapshot(Snapshot {
            state: serde_json::to_vec(&doctored)?.into(),
            ..snapshot.clone()
        })
        .await?;
    let loaded = tallies.load("t").await?;
    assert_eq!(
        (loaded.state().sum, loaded.state().applied),
        (1007, 1),
        "the snapshot was not used"
    );

    // A snapshot of another format version is ignored and the state rebuilt from the events.
    store
        .save_snapshot(Snapshot {
            snapshot_version: 2,
            ..snapshot.clone()
        })
        .await?;
    let loaded = tallies.load("t").await?;
    assert_eq!(
        (loaded.state().sum, loaded.state().applied, loaded.version()),
        (28, 7, 7)
    );

    // So is one that no longer decodes; the next due append writes a fresh one.
    store
        .save_snapshot(Snapshot {
            state: b"{\"sum\": \"x\"}".to_vec().into(),
            snapshot_version: 1,
            ..snapshot
        })
        .await?;
    assert_eq!(tallies.load("t").await?.state().sum, 28);
    tallies.execute("t", Add(8)).await?; // version 8
    tallies.execute("t", Add(9)).await?; // version 9: due
    let fresh = store.load_snapshot(&stream).await?.ok_or("no fresh snapshot")?;
    assert_eq!(fresh.stream_version, 9);
    assert_eq!(
        serde_json::from_slice::<Tally>(&fresh.state)?,
        Tally { sum: 45, applied: 9 }
    );
    Ok(())
}

#[tokio::test]
async fn snapshots_on_memory_store() -> Result<(), Box<dyn std::error::Error>> {
    snapshot_behaviour(MemoryStore::new()).await
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn snapshots_on_sqlite_store() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    snapshot_behaviour(SqliteStore::open(dir.path().join("snapshots.db")).await?).await
}

/// A store whose snapshot reads fail the way `fault` says; everything else goes to `inner`.
fn snapshot_fault(inner: MemoryStore, fault: fn(&str) -> StoreError) -> FaultyStore<MemoryStore> {
    FaultyStore::new(inner, move |call| match call {
        Call::LoadSnapshot { stream_id } => Fault::Fail(fault(stream_id)),
        _ => Fault::None,
    })
}

fn corrupt(stream_id: &str) -> StoreError {
    StoreError::Corrupt {
        stream_id: stream_id.to_owned(),
        stream_version: 6,
        reason: "snapshot: bad timestamp".into(),
    }
}

fn backend(_: &str) -> StoreError {
    StoreError::backend(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection lost",
    ))
}

#[tokio::test]
async fn a_snapshot_the_store_reads_as_corrupt_is_a_cache_miss() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let tallies = Repository::<Tally, _>::new(store.clone());
    for n in 1..=7 {
        tallies.execute("t", Add(n)).await?;
    }
    let faulty = Repository::<Tally, _>::new(snapshot_fault(store, corrupt));
    let loaded = faulty.load("t").await?;
    assert_eq!(
        (loaded.state().sum, loaded.state().applied, loaded.version()),
        (28, 7, 7),
        "rebuilt from the events"
    );
    faulty.execute("t", Add(8)).await?;
    Ok(())
}

#[tokio::test]
async fn a_backend_error_reading_a_snapshot_fails_the_load() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    Repository::<Tally, _>::new(store.clone())
        .execute("t", Add(1))
        .await?;
    let faulty = Repository::<Tally, _>::new(snapshot_fault(store, backend));
    let error = faulty.load("t").await.err().ok_or("the load passed")?;
    assert!(
        matches!(error, RepositoryError::Store(StoreError::Backend(_))),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn policy_is_due_when_a_multiple_is_reached_or_crossed() {
    let every3 = eventcore::SnapshotPolicy::Every(3);
    assert!(!every3.is_due(0, 2));
    assert!(every3.is_due(2, 3));
    assert!(every3.is_due(2, 7));
    assert!(!every3.is_due(3, 5));
    assert!(!eventcore::SnapshotPolicy::Never.is_due(0, 100));
    assert!(!eventcore::SnapshotPolicy::Every(0).is_due(0, 100));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn snapshots_on_postgres_store() -> Result<(), Box<dyn std::error::Error>> {
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let store = eventcore::PostgresStore::builder()
        .schema(unique_schema("snapshots"))
        .connect(&url)
        .await?;
    let outcome = snapshot_behaviour(store.clone()).await;
    drop_schema(&store).await;
    outcome
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "memo")]
pub struct Noted {
    pub text: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum MemoEvent {
    Noted(Noted),
}

/// A state whose snapshot loses `last`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memo {
    pub count: u32,
    #[serde(skip)]
    pub last: String,
}

pub struct Note(pub String);

#[aggregate(events = MemoEvent, error = Never, snapshot_every = 10)]
impl Memo {
    #[command]
    fn note(&self, cmd: Note) -> Result<Vec<MemoEvent>, Never> {
        Ok(vec![Noted { text: cmd.0 }.into()])
    }
    #[apply]
    fn noted(&mut self, e: &Noted) {
        self.count += 1;
        self.last.clone_from(&e.text);
    }
}

#[test]
#[should_panic(
    expected = "then_state: the state check passes, but fails on the state decoded from its snapshot"
)]
fn then_state_fails_when_the_snapshot_loses_what_the_check_reads() {
    eventcore_testing::AggregateFixture::<Memo>::new()
        .given_nothing()
        .when(Note("hi".into()))
        .then_state(|s| s.last == "hi");
}

#[test]
fn then_state_passes_when_the_snapshot_keeps_what_the_check_reads() {
    eventcore_testing::AggregateFixture::<Memo>::new()
        .given(vec![Noted { text: "a".into() }.into()])
        .when(Note("b".into()))
        .then_state(|s| assert_eq!(s.count, 2));
    eventcore_testing::AggregateFixture::<Tally>::new()
        .given_nothing()
        .when(Add(2))
        .then_state(|s| assert_eq!((s.sum, s.applied), (2, 1)));
}
