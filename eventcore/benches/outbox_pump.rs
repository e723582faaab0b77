//! The outbox on SQLite: writing 10,000 integration events in transactions of 100, and draining
//! them with a no-op publisher, batches of 100 and 500.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::integration::{IntegrationMessage, MessageMeta};
use eventcore::outbox::{install_sqlite, Outbox, OutboxPump, SqliteOutbox};
use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const MESSAGES: u64 = 10_000;
const PER_TRANSACTION: u64 = 100;

/// What the bench publishes.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[integration(name = "bench.order_accepted")]
struct OrderAccepted {
    order: u64,
    customer: String,
}

fn fill(conn: &mut rusqlite::Connection) {
    for chunk in 0..MESSAGES / PER_TRANSACTION {
        let tx = conn.transaction().expect("begin");
        for n in 0..PER_TRANSACTION {
            let event = OrderAccepted {
                order: chunk * PER_TRANSACTION + n,
                customer: "ada".into(),
            };
            Outbox::enqueue(&tx, &event, &MessageMeta::new().correlation_id("bench")).expect("enqueue");
        }
        tx.commit().expect("commit");
    }
}

fn open(dir: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("outbox.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("sync");
    install_sqlite(&conn).expect("install");
    conn
}

fn outbox(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("outbox_sqlite");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("enqueue_100_per_transaction", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut conn = open(dir.path());
                let started = Instant::now();
                fill(&mut conn);
                total += started.elapsed();
            }
            total
        });
    });

    for batch in [100, 500] {
        group.bench_function(format!("drain_batch_{batch}"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let mut conn = open(dir.path());
                    fill(&mut conn);
                    total += runtime.block_on(async {
                        let pump = OutboxPump::new(
                            SqliteOutbox::open(dir.path().join("outbox.db"))
                                .await
                                .expect("outbox"),
                        )
                        .batch_size(batch);
                        let started = Instant::now();
                        let published = pump
                            .drain(|messages: Vec<IntegrationMessage>| {
                                std::hint::black_box(messages);
                                std::future::ready(Ok::<_, std::io::Error>(()))
                            })
                            .await
                            .expect("drain");
                        assert_eq!(published as u64, MESSAGES);
                        started.elapsed()
                    });
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, outbox);
criterion_main!(benches);
