//! Local bus throughput from SQLite, side by side in one run: one consumer with a no-op handler
//! draining 100,000 events (10,000 streams × 10) from a `SqliteStore`'s log (default options:
//! full durability; batch 500), next to the raw baseline of reading the same events with the
//! store's gap-safe batched read, 500 at a time, and nothing else. Each run starts the consumer from the beginning (its checkpoint and
//! delivery marker are deleted first).
//!
//! Run: `cargo bench -p eventcore --bench bus_local`.

mod ledger;

use ledger::{fill, Noop};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::bus::EventBus;
use eventcore::prelude::*;
use eventcore::store::EventFilter;

const STREAMS: u64 = 10_000;
const EVENTS_PER_STREAM: u64 = 10;
const EVENTS: u64 = STREAMS * EVENTS_PER_STREAM;

/// Forgets the consumer's checkpoint, lease, delivery marker and letters.
fn reset(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DELETE FROM runners; DELETE FROM documents;")
        .unwrap();
}

fn local_bus(c: &mut Criterion) {
    let runtime = ledger::runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.db");
    let store = runtime.block_on(async {
        let store = SqliteStore::open(&path).await.unwrap();
        fill(&store, STREAMS, EVENTS_PER_STREAM).await;
        store
    });

    let mut group = c.benchmark_group("local_bus");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("sqlite/consume_noop", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                reset(&path);
                total += runtime.block_on(async {
                    let bus = EventBus::local(store.clone());
                    let started = Instant::now();
                    let consumer = bus.subscribe(Noop).start();
                    consumer.wait_caught_up(Duration::from_secs(300)).await.unwrap();
                    let elapsed = started.elapsed();
                    consumer.stop().await.unwrap();
                    elapsed
                });
            }
            total
        });
    });
    group.bench_function("sqlite/raw_read_batch", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let mut position = 1;
                    let mut read = 0;
                    loop {
                        let batch = store
                            .read_batch(position, &EventFilter::all(), 500)
                            .await
                            .unwrap();
                        read += batch.events.len() as u64;
                        if batch.events.is_empty() {
                            break;
                        }
                        position = batch.next_position;
                    }
                    assert_eq!(read, EVENTS);
                    total += started.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(benches, local_bus);
criterion_main!(benches);
