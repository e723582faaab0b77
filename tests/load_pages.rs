//! Loading an aggregate whose stream is longer than one read page (1,024 events) of the repository.
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

async fn load_across_pages<S: EventStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    let ledgers = Repository::<Ledger, _>::new(store);
    // 2,048 = two full pages (the last page read is empty), then 2,050 (a partial third page).
    for _ in 0..16 {
        ledgers.execute("l", PostMany(128)).await?;
    }
    for expected in [2_048u64, 2_050] {
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
    load_across_pages(MemoryStore::new()).await
}

#[tokio::test]
async fn an_aggregate_loads_across_read_pages_on_sqlite_store() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    load_across_pages(SqliteStore::open(dir.path().join("pages.db")).await?).await
}
