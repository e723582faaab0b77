//! Live latency of a document projection: the time from an append's commit (its return) to the
//! document being readable (the projection's checkpoint, committed with the document, past the
//! event). On SQLite always; on PostgreSQL when `EVENTCORE_POSTGRES_URL` is set.
//!
//! Run: `EVENTCORE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p eventcore
//! --features postgres --bench projection_latency`. Prints p50 / p99 / max over 500 sequential
//! appends per store, then criterion's figure for one append-to-readable round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use eventcore::prelude::*;
use eventcore::projection::{Projections, RunningProjections};
use eventcore::runner::RunnerStore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const SAMPLES: usize = 500;

/// A reading taken.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "meter")]
struct Read {
    value: i64,
}

/// The latest reading of each meter.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Latest {
    value: i64,
    readings: u64,
}

#[projection]
impl Latest {
    #[on]
    fn read(&mut self, e: &Read) {
        self.value = e.value;
        self.readings += 1;
    }
}

/// Appends one reading and waits until the projection has committed past it.
async fn round_trip<S: RunnerStore>(store: &S, running: &RunningProjections<S>, n: i64) -> Duration {
    let mut status = running.watch("latest").expect("registered");
    let event = eventcore::NewEvent::encode(&Read { value: n }, "meter", "m-1").unwrap();
    let result = store.append("meter-m-1", ExpectedVersion::Any, vec![event]).await.unwrap();
    let committed = Instant::now();
    let position = result.positions[0];
    status.wait_for(|s| s.position > position).await.unwrap();
    committed.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

async fn report<S: RunnerStore>(label: &str, store: &S, running: &RunningProjections<S>) {
    let mut latencies = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        latencies.push(round_trip(store, running, n as i64).await);
    }
    latencies.sort();
    println!(
        "{label}: append commit -> document readable over {SAMPLES} appends: p50 {:.3?}, p99 {:.3?}, max {:.3?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );
}

fn bench_store<S: RunnerStore>(c: &mut Criterion, runtime: &Runtime, label: &str, store: S) {
    let running = runtime.block_on(async {
        let running = Projections::new(store.clone()).with::<Latest>().start();
        running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
        report(label, &store, &running).await;
        running
    });
    let mut n = 0;
    c.bench_function(&format!("projection_latency/{label}"), |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    n += 1;
                    total += round_trip(&store, &running, n).await;
                }
                total
            })
        });
    });
    runtime.block_on(running.stop()).unwrap();
}

fn latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(SqliteStore::open(dir.path().join("latency.db")))
        .unwrap();
    bench_store(c, &runtime, "sqlite", sqlite);

    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") {
        let schema = format!("ec_bench_latency_{}", std::process::id());
        let store = runtime
            .block_on(
                eventcore::PostgresStore::builder()
                    .schema(schema.clone())
                    .connect(&url),
            )
            .unwrap();
        bench_store(c, &runtime, "postgres", store.clone());
        runtime.block_on(async {
            let client = store.pool().get().await.unwrap();
            client
                .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = latency
}
criterion_main!(benches);
