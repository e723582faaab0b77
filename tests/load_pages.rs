//! Loading an aggregate whose stream is longer than one read page of the repository (1,024 events;
//! 8,192 on PostgreSQL), or whose payloads weigh more than one page's byte bound.
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
pub struct Posted {
    pub n: u64,
}

/// A posting with an attachment, to weigh on the byte bound.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
pub struct Attached {
    pub n: u64,
    pub scan: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum LedgerEvent {
    Posted(Posted),
    Attached(Attached),
}

/// Counts the events and checks they arrive in order, each exactly once.
#[derive(Debug, Default)]
pub struct Ledger {
    pub count: u64,
    pub sum: u64,
    pub in_order: bool,
}

/// Posts this many more events.
pub struct PostMany(pub u64);

/// Posts one event with an attachment of this many bytes.
pub struct Attach(pub usize);

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(events = LedgerEvent, error = Never)]
impl Ledger {
    #[command]
    fn post_many(&self, cmd: PostMany) -> Result<Vec<LedgerEvent>, Never> {
        Ok((1..=cmd.0).map(|i| Posted { n: self.count + i }.into()).collect())
    }
    #[command]
    fn attach(&self, cmd: Attach) -> Result<Vec<LedgerEvent>, Never> {
        let scan = "x".repeat(cmd.0);
        Ok(vec![Attached {
            n: self.count + 1,
            scan,
        }
        .into()])
    }
    #[apply]
    fn posted(&mut self, e: &Posted) {
        self.post(e.n);
    }
    #[apply]
    fn attached(&mut self, e: &Attached) {
        self.post(e.n);
    }
}

impl Ledger {
    fn post(&mut self, n: u64) {
        self.in_order = n == self.count + 1 && (self.in_order || self.count == 0);
        self.count += 1;
        self.sum += n;
    }
}

/// Loads an aggregate of two full read pages of `page` events (the last page read is empty),
/// then of two pages and 2 events (a partial third page).
async fn load_across_pages<S: EventStore>(store: S, page: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ledgers = Repository::<Ledger, _>::new(store);
    for _ in 0..16 {
        ledgers.execute("l", PostMany(page / 8)).await?;
    }
    for expected in [2 * page, 2 * page + 2] {
        let loaded = ledgers.load("l").await?;
        let state = loaded.state();
        assert_eq!(
            (state.count, state.sum, loaded.version()),
            (expected, expected * (expected + 1) / 2, expected)
        );
        assert!(state.in_order, "events were skipped, repeated or reordered");
        ledgers.execute("l", PostMany(2)).await?;
    }
    Ok(())
}

/// Loads an aggregate whose payloads (12 × 900 KB) pass the 8 MiB byte bound of a page, with
/// small events after them.
async fn load_heavy_stream<S: EventStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    let ledgers = Repository::<Ledger, _>::new(store);
    for _ in 0..12 {
        ledgers.execute("heavy", Attach(900_000)).await?;
    }
    ledgers.execute("heavy", PostMany(3)).await?;
    let loaded = ledgers.load("heavy").await?;
    let state = loaded.state();
    assert_eq!((state.count, state.sum, loaded.version()), (15, 120, 15));
    assert!(state.in_order, "events were skipped, repeated or reordered");
    Ok(())
}

#[tokio::test]
async fn an_aggregate_heavier_than_a_page_loads_on_memory_store() -> Result<(), Box<dyn std::error::Error>> {
    load_heavy_stream(MemoryStore::new()).await
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn an_aggregate_heavier_than_a_page_loads_on_sqlite_store() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    load_heavy_stream(SqliteStore::open(dir.path().join("heavy.db")).await?).await
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_aggregate_heavier_than_a_page_loads_on_postgres_store() -> Result<(), Box<dyn std::error::Error>>
{
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let store = eventcore::PostgresStore::builder()
        .schema(unique_schema("ec_heavy"))
        .connect(&url)
        .await?;
    let outcome = load_heavy_stream(store.clone()).await;
    drop_schema(&store).await;
    outcome
}

#[tokio::test]
async fn an_aggregate_loads_across_read_pages_on_memory_store() -> Result<(), Box<dyn std::error::Error>> {
    load_across_pages(MemoryStore::new(), 1024).await
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn an_aggregate_loads_across_read_pages_on_sqlite_store() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    load_across_pages(SqliteStore::open(dir.path().join("pages.db")).await?, 1024).await
}

/// PostgreSQL reads pages of 8,192 events.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_aggregate_loads_across_read_pages_on_postgres_store() -> Result<(), Box<dyn std::error::Error>> {
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let store = eventcore::PostgresStore::builder()
        .schema(unique_schema("ec_pages"))
        .connect(&url)
        .await?;
    let outcome = load_across_pages(store.clone(), 8192).await;
    drop_schema(&store).await;
    outcome
}
