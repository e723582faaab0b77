//! Loading an aggregate whose stream is longer than one read page of the repository (1,024 events;
//! 8,192 on PostgreSQL).
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
pub struct Posted {
    pub n: u64,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum LedgerEvent {
    Posted(Posted),
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

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(events = LedgerEvent, error = Never)]
impl Ledger {
    #[command]
    fn post_many(&self, cmd: PostMany) -> Result<Vec<LedgerEvent>, Never> {
        Ok((1..=cmd.0).map(|i| Posted { n: self.count + i }.into()).collect())
    }
    #[apply]
    fn posted(&mut self, e: &Posted) {
        self.in_order = e.n == self.count + 1 && (self.in_order || self.count == 0);
        self.count += 1;
        self.sum += e.n;
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
