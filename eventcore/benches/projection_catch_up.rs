//! Catch-up of a document projection over 100,000 events (10,000 accounts × 10 events) on
//! SQLite, and on PostgreSQL when `EVENTCORE_POSTGRES_URL` is set (feature `postgres`), each next
//! to a raw baseline on the same store: the same documents folded in plain Rust from a `SELECT`
//! of the events and written with one batched upsert per 500 events.
//!
//! Run: `EVENTCORE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p eventcore
//! --features postgres --bench projection_catch_up`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::NewEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const ACCOUNTS: u64 = 10_000;
const EVENTS_PER_ACCOUNT: u64 = 10;
const EVENTS: u64 = ACCOUNTS * EVENTS_PER_ACCOUNT;

/// An account opened.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
struct Opened {
    owner: String,
}

/// Money paid in.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ledger")]
struct Credited {
    amount: i64,
}

/// One document per account.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Summary {
    owner: String,
    balance: i64,
    movements: u32,
}

#[projection]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        self.owner = e.owner.clone();
    }
    #[on]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
        self.movements += 1;
    }
}

async fn fill<S: EventStore>(store: &S) {
    for account in 0..ACCOUNTS {
        let id = format!("a-{account}");
        let mut batch = vec![NewEvent::encode(&Opened { owner: id.clone() }, "ledger", &id).unwrap()];
        for n in 1..EVENTS_PER_ACCOUNT {
            batch.push(NewEvent::encode(&Credited { amount: n as i64 }, "ledger", &id).unwrap());
        }
        store
            .append(&format!("ledger-{id}"), ExpectedVersion::NoStream, batch)
            .await
            .unwrap();
    }
}

/// Forgets every projection's documents and checkpoint, so the next run catches up from the start.
fn reset(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DELETE FROM runners; DELETE FROM documents; DROP TABLE IF EXISTS raw_summaries;")
        .unwrap();
}

/// The baseline: fold the same documents by hand and upsert them every 500 events.
fn raw_catch_up(path: &Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE raw_summaries (key TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID")
        .unwrap();
    let mut documents: HashMap<String, Summary> = HashMap::new();
    let mut next = 1i64;
    loop {
        let rows: Vec<(i64, String, String, Vec<u8>)> = {
            let mut statement = conn
                .prepare_cached(
                    "SELECT global_position, event_type, aggregate_id, payload FROM events \
                     WHERE global_position >= ?1 ORDER BY global_position LIMIT 500",
                )
                .unwrap();
            statement
                .query_map([next], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let Some(last) = rows.last().map(|r| r.0) else {
            return;
        };
        let mut touched = Vec::new();
        for (_, event_type, key, payload) in rows {
            let document = documents.entry(key.clone()).or_default();
            match event_type.as_str() {
                "ledger.opened" => document.owner = serde_json::from_slice::<Opened>(&payload).unwrap().owner,
                "ledger.credited" => {
                    document.balance += serde_json::from_slice::<Credited>(&payload).unwrap().amount;
                    document.movements += 1;
                }
                _ => {}
            }
            touched.push(key);
        }
        touched.sort_unstable();
        touched.dedup();
        let tx = conn.transaction().unwrap();
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO raw_summaries (key, body) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                )
                .unwrap();
            for key in touched {
                upsert
                    .execute(rusqlite::params![
                        key,
                        serde_json::to_vec(&documents[&key]).unwrap()
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        next = last + 1;
    }
}

fn catch_up(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catch-up.db");
    let store = runtime.block_on(async {
        let options = eventcore::store::SqliteOptions::new().durability(eventcore::store::Durability::Normal);
        let store = SqliteStore::open_with(&path, options).await.unwrap();
        fill(&store).await;
        store
    });

    let mut group = c.benchmark_group("projection_catch_up");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("sqlite/projection", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                reset(&path);
                total += runtime.block_on(async {
                    let projections = Projections::new(store.clone()).with::<Summary>();
                    let started = Instant::now();
                    let running = projections.start();
                    running.wait_caught_up(Duration::from_secs(300)).await.unwrap();
                    let elapsed = started.elapsed();
                    running.stop().await.unwrap();
                    elapsed
                });
            }
            total
        });
    });
    group.bench_function("sqlite/raw_baseline", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                reset(&path);
                let started = Instant::now();
                raw_catch_up(&path);
                total += started.elapsed();
            }
            total
        });
    });
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") {
        postgres::catch_up(&mut group, &runtime, &url);
    }
    group.finish();
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use criterion::measurement::WallTime;
    use criterion::BenchmarkGroup;
    use eventcore::PostgresStore;

    /// Forgets every projection's documents and checkpoint, and the raw baseline's table.
    async fn reset(store: &PostgresStore) {
        let client = store.pool().get().await.unwrap();
        let s = store.schema();
        client
            .batch_execute(&format!(
                "DELETE FROM \"{s}\".runners; DELETE FROM \"{s}\".documents; \
                 DROP TABLE IF EXISTS \"{s}\".raw_summaries;"
            ))
            .await
            .unwrap();
    }

    /// The baseline: fold the same documents by hand and upsert them every 500 events.
    async fn raw_catch_up(store: &PostgresStore) {
        let s = store.schema();
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{s}\".raw_summaries (key text PRIMARY KEY, body jsonb NOT NULL)"
            ))
            .await
            .unwrap();
        let select = client
            .prepare(&format!(
                "SELECT global_position, event_type, aggregate_id, payload FROM \"{s}\".events \
                 WHERE global_position >= $1 ORDER BY global_position LIMIT 500"
            ))
            .await
            .unwrap();
        let upsert = format!(
            "INSERT INTO \"{s}\".raw_summaries (key, body) \
             SELECT k, b::jsonb FROM unnest($1::text[], $2::text[]) AS u(k, b) \
             ON CONFLICT (key) DO UPDATE SET body = excluded.body"
        );
        let mut documents: HashMap<String, Summary> = HashMap::new();
        let mut next = 1i64;
        let mut client = client;
        loop {
            let rows = client.query(&select, &[&next]).await.unwrap();
            let Some(last) = rows.last().map(|r| r.get::<_, i64>(0)) else {
                return;
            };
            let mut touched = Vec::new();
            for row in &rows {
                let event_type: &str = row.get(1);
                let key: String = row.get(2);
                let payload: &[u8] = row.get(3);
                let document = documents.entry(key.clone()).or_default();
                match event_type {
                    "ledger.opened" => {
                        document.owner = serde_json::from_slice::<Opened>(payload).unwrap().owner
                    }
                    "ledger.credited" => {
                        document.balance += serde_json::from_slice::<Credited>(payload).unwrap().amount;
                        document.movements += 1;
                    }
                    _ => {}
                }
                touched.push(key);
            }
            touched.sort_unstable();
            touched.dedup();
            let bodies: Vec<String> = touched
                .iter()
                .map(|k| serde_json::to_string(&documents[k]).unwrap())
                .collect();
            let tx = client.transaction().await.unwrap();
            tx.execute(&upsert, &[&touched, &bodies]).await.unwrap();
            tx.commit().await.unwrap();
            next = last + 1;
        }
    }

    pub(super) fn catch_up(
        group: &mut BenchmarkGroup<'_, WallTime>,
        runtime: &tokio::runtime::Runtime,
        url: &str,
    ) {
        let schema = format!("ec_bench_catch_up_{}", std::process::id());
        let store = runtime.block_on(async {
            let store = PostgresStore::builder()
                .schema(schema.clone())
                .connect(url)
                .await
                .unwrap();
            fill(&store).await;
            store
        });
        group.bench_function("postgres/projection", |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += runtime.block_on(async {
                        reset(&store).await;
                        let projections = Projections::new(store.clone()).with::<Summary>();
                        let started = Instant::now();
                        let running = projections.start();
                        running.wait_caught_up(Duration::from_secs(300)).await.unwrap();
                        let elapsed = started.elapsed();
                        running.stop().await.unwrap();
                        elapsed
                    });
                }
                total
            });
        });
        group.bench_function("postgres/raw_baseline", |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += runtime.block_on(async {
                        reset(&store).await;
                        let started = Instant::now();
                        raw_catch_up(&store).await;
                        started.elapsed()
                    });
                }
                total
            });
        });
        runtime.block_on(async {
            let client = store.pool().get().await.unwrap();
            client
                .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        });
    }
}

criterion_group!(benches, catch_up);
criterion_main!(benches);
