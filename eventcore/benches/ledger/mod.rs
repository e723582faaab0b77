//! What the bus benches share: a ledger event, a handler that does nothing with it, and a store
//! filled with streams of them.
#![allow(dead_code)] // each bench uses a different part

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eventcore::bus::{EventHandler, HandleError, Handled};
use eventcore::prelude::*;
use eventcore::store::EventFilter;
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Money paid in.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
pub struct Credited {
    amount: i64,
}

/// Handles everything, doing nothing.
pub struct Noop;

impl EventHandler for Noop {
    const NAME: &'static str = "noop";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["ledger.credited"];

    async fn handle(&self, _: &RecordedEvent) -> Result<Handled, HandleError> {
        Ok(Handled::Done)
    }
}

/// Counts the events it handles, for a bench to wait on.
pub struct Counting(Arc<HandledCount>);

/// How many events a [`Counting`] handler has handled.
#[derive(Default)]
pub struct HandledCount {
    count: AtomicU64,
    changed: Notify,
}

impl Counting {
    /// A handler and the count it keeps.
    pub fn new() -> (Self, Arc<HandledCount>) {
        let count = Arc::new(HandledCount::default());
        (Self(Arc::clone(&count)), count)
    }
}

impl HandledCount {
    /// Waits until at least `n` events were handled.
    pub async fn wait_for(&self, n: u64) {
        loop {
            let changed = self.changed.notified();
            if self.count.load(Ordering::Acquire) >= n {
                return;
            }
            changed.await;
        }
    }
}

impl EventHandler for Counting {
    const NAME: &'static str = "counting";
    const HANDLED_EVENT_TYPES: &'static [&'static str] = &["ledger.credited"];

    async fn handle(&self, _: &RecordedEvent) -> Result<Handled, HandleError> {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
        Ok(Handled::Done)
    }
}

/// Appends `streams` streams of `per_stream` credits each, one batch per stream.
pub async fn fill<S: EventStore>(store: &S, streams: u64, per_stream: u64) {
    for stream in 0..streams {
        let id = format!("a-{stream}");
        let batch = (0..per_stream)
            .map(|n| NewEvent::encode(&Credited { amount: n as i64 }, "ledger", &id).unwrap())
            .collect();
        store
            .append(&format!("ledger-{id}"), ExpectedVersion::NoStream, batch)
            .await
            .unwrap();
    }
}

/// The benches' runtime: two workers, as the machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A `MemoryStore` of `streams` × `per_stream` credits, and its events as stored.
pub fn filled_memory(
    runtime: &tokio::runtime::Runtime,
    streams: u64,
    per_stream: u64,
) -> (MemoryStore, Vec<RecordedEvent>) {
    let store = MemoryStore::new();
    runtime.block_on(fill(&store, streams, per_stream));
    let events = runtime
        .block_on(store.read_batch(1, &EventFilter::all(), (streams * per_stream) as usize))
        .unwrap()
        .events;
    (store, events)
}
