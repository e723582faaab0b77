//! `PostgresStore` appends against `EVENTCORE_POSTGRES_URL`, next to a raw baseline: plain
//! multi-row `INSERT`s of the same rows, through the same driver, into a table with the same
//! columns and indexes.
//!
//! Run: `EVENTCORE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p eventcore
//! --features postgres --bench postgres_append`. Prints the p50 / p99 latency of single appends
//! first, then criterion's figures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::envelope::Metadata;
use eventcore::store::postgres::tokio_postgres::types::{Json, ToSql};
use eventcore::store::postgres::PostgresStore;
use eventcore::{EventStore, ExpectedVersion, NewEvent};
use tokio::runtime::Runtime;

const BATCH: usize = 100;
const LATENCY_SAMPLES: usize = 4000;
const LATENCY_BLOCK: usize = 100;

fn event(n: u64) -> NewEvent {
    let mut metadata = Metadata::new();
    metadata.insert("tenant".into(), "bench".into());
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "bench.happened".into(),
        event_version: 1,
        aggregate_type: "bench".into(),
        aggregate_id: format!("a-{n}"),
        occurred_at: Utc::now().trunc_subsecs(6),
        correlation_id: Some("corr".into()),
        causation_id: None,
        metadata,
        payload: Bytes::from(format!(r#"{{"n":{n},"reference":"payment-{n}","amount":1250}}"#)),
    }
}

fn batch(n: usize) -> Vec<NewEvent> {
    (0..n as u64).map(event).collect()
}

/// A baseline table like the store's, and `INSERT ... VALUES` statements of 1 and 100 rows.
struct Raw {
    store: PostgresStore,
    one: String,
    hundred: String,
    positions: AtomicU64,
}

impl Raw {
    async fn new(store: &PostgresStore) -> Self {
        let schema = store.schema();
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".raw_events (LIKE \"{schema}\".events INCLUDING ALL)"
            ))
            .await
            .unwrap();
        let insert = |rows: usize| {
            let values: Vec<String> = (0..rows)
                .map(|r| {
                    let p: Vec<String> = (1..=13).map(|c| format!("${}", r * 13 + c)).collect();
                    format!("({})", p.join(", "))
                })
                .collect();
            format!(
                "INSERT INTO \"{schema}\".raw_events (global_position, stream_id, stream_version, event_id, \
                 event_type, event_version, aggregate_type, aggregate_id, occurred_at, correlation_id, \
                 causation_id, metadata, payload) VALUES {}",
                values.join(", ")
            )
        };
        Self {
            store: store.clone(),
            one: insert(1),
            hundred: insert(BATCH),
            positions: AtomicU64::new(0),
        }
    }

    async fn insert(&self, stream: &str, events: &[NewEvent]) {
        let sql = if events.len() == 1 {
            &self.one
        } else {
            &self.hundred
        };
        let first = self.positions.fetch_add(events.len() as u64, Ordering::Relaxed) as i64;
        let positions: Vec<i64> = (1..=events.len() as i64).map(|i| first + i).collect();
        let versions = positions.clone();
        let event_versions: Vec<i32> = events.iter().map(|e| e.event_version as i32).collect();
        let metadata: Vec<Json<&Metadata>> = events.iter().map(|e| Json(&e.metadata)).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_ref()).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(events.len() * 13);
        for (i, e) in events.iter().enumerate() {
            params.push(&positions[i]);
            params.push(&stream);
            params.push(&versions[i]);
            params.push(&e.event_id);
            params.push(&e.event_type);
            params.push(&event_versions[i]);
            params.push(&e.aggregate_type);
            params.push(&e.aggregate_id);
            params.push(&e.occurred_at);
            params.push(&e.correlation_id);
            params.push(&e.causation_id);
            params.push(&metadata[i]);
            params.push(&payloads[i]);
        }
        let client = self.store.pool().get().await.unwrap();
        let statement = client.prepare_cached(sql).await.unwrap();
        client.execute(&statement, &params).await.unwrap();
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn postgres_append(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") else {
        println!("skipped: EVENTCORE_POSTGRES_URL not set");
        return;
    };
    let rt = Runtime::new().unwrap();
    let schema = format!("ec_bench_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let store = rt.block_on(async {
        PostgresStore::builder()
            .schema(schema)
            .pool_size(16)
            .connect(&url)
            .await
            .unwrap()
    });
    let raw = Arc::new(rt.block_on(Raw::new(&store)));
    let streams = Arc::new(AtomicU64::new(0));
    let next_stream = {
        let streams = Arc::clone(&streams);
        move || format!("s-{}", streams.fetch_add(1, Ordering::Relaxed))
    };

    // Latency percentiles of single-event appends (each its own commit) and raw inserts, taken
    // in alternating blocks so that both see the same load on the machine, while the
    // notifications the store sends after its appends stay within its own blocks.
    rt.block_on(async {
        let mut store_samples = Vec::with_capacity(LATENCY_SAMPLES);
        let mut raw_samples = Vec::with_capacity(LATENCY_SAMPLES);
        for _ in 0..LATENCY_SAMPLES / LATENCY_BLOCK {
            for _ in 0..LATENCY_BLOCK {
                let (stream, events) = (next_stream(), batch(1));
                let start = Instant::now();
                store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await
                    .unwrap();
                store_samples.push(start.elapsed());
            }
            for _ in 0..LATENCY_BLOCK {
                let (stream, events) = (next_stream(), batch(1));
                let start = Instant::now();
                raw.insert(&stream, &events).await;
                raw_samples.push(start.elapsed());
            }
        }
        let (store_p50, store_p99) = percentiles(store_samples);
        let (raw_p50, raw_p99) = percentiles(raw_samples);
        println!(
            "single-event store append: p50 {store_p50:?}, p99 {store_p99:?} ({LATENCY_SAMPLES} samples)"
        );
        println!("single-event raw INSERT:    p50 {raw_p50:?}, p99 {raw_p99:?} ({LATENCY_SAMPLES} samples)");
        println!(
            "single-event p50 ratio store / raw: {:.2}",
            store_p50.as_secs_f64() / raw_p50.as_secs_f64()
        );
    });

    let mut group = c.benchmark_group("postgres_append");
    group.sample_size(20).measurement_time(Duration::from_secs(5));

    for (size, store_name, raw_name) in [
        (1, "single_event", "raw_insert_single_row"),
        (BATCH, "batch_100", "raw_insert_100_rows"),
    ] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(store_name, |b| {
            b.to_async(&rt).iter_batched(
                || (next_stream(), batch(size)),
                |(stream, events)| {
                    let store = store.clone();
                    async move {
                        store
                            .append(&stream, ExpectedVersion::NoStream, events)
                            .await
                            .unwrap()
                    }
                },
                criterion::BatchSize::SmallInput,
            );
        });
        group.bench_function(raw_name, |b| {
            b.to_async(&rt).iter_batched(
                || (next_stream(), batch(size)),
                |(stream, events)| {
                    let raw = Arc::clone(&raw);
                    async move { raw.insert(&stream, &events).await }
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }

    // `writers` tasks, each appending single events to its own stream; one iteration is one
    // append by every writer, so throughput counts `writers` events per iteration.
    for writers in [1u64, 2, 4, 8] {
        group.throughput(Throughput::Elements(writers));
        group.bench_function(format!("concurrent_writers_{writers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = store.clone();
                let first_stream = streams.fetch_add(writers, Ordering::Relaxed);
                async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..writers)
                        .map(|w| {
                            let store = store.clone();
                            tokio::spawn(async move {
                                let stream = format!("w-{}", first_stream + w);
                                for _ in 0..iters {
                                    store
                                        .append(&stream, ExpectedVersion::Any, batch(1))
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();

    rt.block_on(async {
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .await
            .unwrap();
    });
}

criterion_group!(benches, postgres_append);
criterion_main!(benches);
