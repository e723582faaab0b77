//! Append and read throughput of `SqliteStore` in WAL mode, in events per second.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eventcore::store::{Durability, SqliteOptions};
use eventcore::{EventStore, ExpectedVersion, Metadata, NewEvent, SqliteStore};
use uuid::Uuid;

/// `n` events shaped like real ones: a ~120-byte JSON payload, correlation id, one metadata entry.
fn batch(n: usize) -> Vec<NewEvent> {
    let correlation = Uuid::now_v7().to_string();
    (0..n)
        .map(|i| {
            let mut metadata = Metadata::new();
            metadata.insert("user".to_owned(), "ada".to_owned());
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "account.money_deposited".to_owned(),
                event_version: 1,
                aggregate_type: "account".to_owned(),
                aggregate_id: "acc-1".to_owned(),
                occurred_at: Utc::now(),
                correlation_id: Some(correlation.clone()),
                causation_id: None,
                metadata,
                payload: format!(
                    r#"{{"amount":{i},"currency":"EUR","reference":"invoice-{i:08}","note":"monthly deposit"}}"#
                )
                .into_bytes()
                .into(),
            }
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn open(runtime: &tokio::runtime::Runtime, dir: &tempfile::TempDir, durability: Durability) -> SqliteStore {
    let path = dir.path().join(format!("{durability:?}.db"));
    runtime
        .block_on(SqliteStore::open_with(
            path,
            SqliteOptions::new().durability(durability),
        ))
        .unwrap()
}

fn append(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sqlite_append");
    for durability in [Durability::Full, Durability::Normal] {
        let store = open(&runtime, &dir, durability);
        for size in [1000_usize, 1] {
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(format!("{durability:?}/batch_{size}"), |b| {
                b.to_async(&runtime).iter_batched(
                    || batch(size),
                    |events| {
                        let store = store.clone();
                        async move {
                            black_box(store.append("acc-1", ExpectedVersion::Any, events).await.unwrap())
                        }
                    },
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

/// `INSERT` of `rows` events, as the store writes them.
fn insert_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let values = vec![row; rows].join(", ");
    format!(
        "INSERT OR FAIL INTO events (event_id, stream_key, stream_version, event_type, event_version, \
         aggregate_type, aggregate_id, occurred_at_secs, occurred_at_nanos, correlation_id, \
         causation_id, metadata, payload) VALUES {values}"
    )
}

/// Rows per insert statement, as in the store.
const CHUNK: usize = 16;

/// The same rows inserted with plain rusqlite into the store's tables, the way the store does
/// (a stream key, 16 rows per statement, the rest one by one), one transaction per batch: the
/// ceiling the store's own overhead (async hand-off, checks, version lookup) is measured against.
fn raw_baseline(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    drop(open(&runtime, &dir, Durability::Normal));
    let mut conn = rusqlite::Connection::open(dir.path().join("Normal.db")).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute("INSERT INTO streams (stream_id) VALUES ('acc-1')", [])
        .unwrap();
    let stream_key = conn.last_insert_rowid();
    let (one, chunk) = (insert_sql(1), insert_sql(CHUNK));
    let mut version = 0_i64;
    let mut group = c.benchmark_group("rusqlite_baseline");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("Normal/batch_1000", |b| {
        b.iter_batched(
            || batch(1000),
            |events| {
                let tx = conn.transaction().unwrap();
                {
                    let mut chunks = events.chunks_exact(CHUNK);
                    let mut insert = tx.prepare_cached(&chunk).unwrap();
                    for rows in &mut chunks {
                        for (row, event) in rows.iter().enumerate() {
                            version += 1;
                            bind(&mut insert, row * 13, stream_key, version, event);
                        }
                        insert.raw_execute().unwrap();
                    }
                    let mut insert = tx.prepare_cached(&one).unwrap();
                    for event in chunks.remainder() {
                        version += 1;
                        bind(&mut insert, 0, stream_key, version, event);
                        insert.raw_execute().unwrap();
                    }
                }
                tx.commit().unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bind(insert: &mut rusqlite::Statement<'_>, at: usize, stream_key: i64, version: i64, event: &NewEvent) {
    insert
        .raw_bind_parameter(at + 1, &event.event_id.as_bytes()[..])
        .unwrap();
    insert.raw_bind_parameter(at + 2, stream_key).unwrap();
    insert.raw_bind_parameter(at + 3, version).unwrap();
    insert
        .raw_bind_parameter(at + 4, event.event_type.as_str())
        .unwrap();
    insert
        .raw_bind_parameter(at + 5, i64::from(event.event_version))
        .unwrap();
    insert
        .raw_bind_parameter(at + 6, event.aggregate_type.as_str())
        .unwrap();
    insert
        .raw_bind_parameter(at + 7, event.aggregate_id.as_str())
        .unwrap();
    insert
        .raw_bind_parameter(at + 8, event.occurred_at.timestamp())
        .unwrap();
    insert
        .raw_bind_parameter(at + 9, i64::from(event.occurred_at.timestamp_subsec_nanos()))
        .unwrap();
    insert
        .raw_bind_parameter(at + 10, event.correlation_id.as_deref())
        .unwrap();
    insert
        .raw_bind_parameter(at + 11, event.causation_id.as_deref())
        .unwrap();
    insert.raw_bind_parameter(at + 12, r#"{"user":"ada"}"#).unwrap();
    insert.raw_bind_parameter(at + 13, &event.payload[..]).unwrap();
}

fn read(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&runtime, &dir, Durability::Normal);
    runtime.block_on(async {
        for _ in 0..10 {
            store
                .append("acc-1", ExpectedVersion::Any, batch(1000))
                .await
                .unwrap();
        }
    });
    let mut group = c.benchmark_group("sqlite_read");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("read_stream_1000", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(store.read_stream("acc-1", 4001, 1000).await.unwrap()) });
    });
    group.bench_function("read_all_1000", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(store.read_all(7001, 1000).await.unwrap()) });
    });
    group.finish();
}

criterion_group!(benches, append, raw_baseline, read);
criterion_main!(benches);
