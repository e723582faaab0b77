//! Rehydrating a 10,000-event aggregate through `Repository::load`, from `MemoryStore`,
//! `SqliteStore` and (feature `postgres`, with `EVENTCORE_POSTGRES_URL`) `PostgresStore`, each
//! from the events alone and from a snapshot, next to plain `serde_json::from_slice` of the same
//! payloads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::prelude::*;
use eventcore::{NewEvent, RecordedEvent, Snapshot};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const EVENTS: u64 = 10_000;

/// Money paid in.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "wallet")]
struct Credited {
    amount: i64,
    reference: String,
}

/// Money paid out.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "wallet")]
struct Debited {
    amount: i64,
    reference: String,
}

/// A wallet's events.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
enum WalletEvent {
    Credited(Credited),
    Debited(Debited),
}

/// A wallet's balance.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    balance: i64,
}

/// The same wallet, loaded from a snapshot (taken every 1,000 events).
#[derive(Debug, Default, Serialize, Deserialize)]
struct SnapshotWallet {
    balance: i64,
}

#[aggregate(events = WalletEvent, error = std::convert::Infallible, name = "wallet", snapshot_every = 1000)]
impl SnapshotWallet {
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }
}

#[aggregate(events = WalletEvent, error = std::convert::Infallible)]
impl Wallet {
    #[apply]
    fn credited(&mut self, e: &Credited) {
        self.balance += e.amount;
    }
    #[apply]
    fn debited(&mut self, e: &Debited) {
        self.balance -= e.amount;
    }
}

fn history() -> Vec<NewEvent> {
    (0..EVENTS as i64)
        .map(|i| {
            let reference = format!("ref-{i:06}");
            let event: WalletEvent = if i % 3 == 2 {
                Debited { amount: 1, reference }.into()
            } else {
                Credited { amount: 2, reference }.into()
            };
            NewEvent::encode(&event, "wallet", "w-1").expect("bench events encode")
        })
        .collect()
}

/// Appends the history, then stores a snapshot of its final state for `SnapshotWallet`.
async fn fill<S: EventStore>(store: &S) {
    let stream = Repository::<Wallet, S>::stream_id("w-1");
    let mut expected = ExpectedVersion::NoStream;
    for chunk in history().chunks(1000) {
        let done = store
            .append(&stream, expected, chunk.to_vec())
            .await
            .expect("bench append");
        expected = ExpectedVersion::Exact(done.last_version);
    }
    let loaded = Repository::<Wallet, S>::new(store.clone())
        .load("w-1")
        .await
        .expect("load");
    let snapshot = Snapshot {
        stream_id: stream,
        stream_version: loaded.version(),
        snapshot_version: <SnapshotWallet as Aggregate>::SNAPSHOT_VERSION,
        state: serde_json::to_vec(loaded.state()).expect("encode").into(),
        taken_at: chrono::Utc::now(),
    };
    store.save_snapshot(snapshot).await.expect("save snapshot");
}

/// Benchmarks loads from `store` with and without its snapshot.
fn bench_store<S: EventStore>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &S,
    expected_balance: i64,
) {
    let wallets = Repository::<Wallet, _>::new(store.clone());
    group.bench_function(format!("{name}_load"), |b| {
        b.to_async(rt).iter(|| async {
            let loaded = wallets.load("w-1").await.expect("load");
            assert_eq!(
                (loaded.state().balance, loaded.version()),
                (expected_balance, EVENTS)
            );
        })
    });
    let snapshot_wallets = Repository::<SnapshotWallet, _>::new(store.clone());
    group.bench_function(format!("{name}_load_from_snapshot"), |b| {
        b.to_async(rt).iter(|| async {
            let loaded = snapshot_wallets.load("w-1").await.expect("load");
            assert_eq!(
                (loaded.state().balance, loaded.version()),
                (expected_balance, EVENTS)
            );
        })
    });
}

fn rehydrate(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let memory = MemoryStore::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = rt.block_on(async {
        let sqlite = SqliteStore::open(dir.path().join("bench.db"))
            .await
            .expect("open sqlite");
        fill(&memory).await;
        fill(&sqlite).await;
        sqlite
    });
    let stored: Vec<RecordedEvent> = rt.block_on(memory.read_all(1, EVENTS as usize)).expect("read");
    let expected_balance = stored
        .iter()
        .filter(|e| e.event_type == "wallet.credited")
        .count() as i64
        * 2
        - stored.iter().filter(|e| e.event_type == "wallet.debited").count() as i64;

    let mut group = c.benchmark_group("rehydrate_10k_events");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);
    group.bench_function("serde_json_from_slice_baseline", |b| {
        b.iter(|| {
            let mut balance = 0;
            for e in &stored {
                if e.event_type == "wallet.credited" {
                    balance += serde_json::from_slice::<Credited>(&e.payload)
                        .expect("decode")
                        .amount;
                } else {
                    balance -= serde_json::from_slice::<Debited>(&e.payload)
                        .expect("decode")
                        .amount;
                }
            }
            assert_eq!(balance, expected_balance);
        })
    });
    bench_store(&mut group, &rt, "memory_store", &memory, expected_balance);
    bench_store(&mut group, &rt, "sqlite_store", &sqlite, expected_balance);
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") {
        let schema = format!("bench_rehydrate_{}", std::process::id());
        let postgres = rt.block_on(async {
            let store = eventcore::PostgresStore::builder()
                .schema(schema.clone())
                .connect(&url)
                .await
                .expect("connect to postgres");
            fill(&store).await;
            store
        });
        bench_store(&mut group, &rt, "postgres_store", &postgres, expected_balance);
        rt.block_on(async {
            let client = postgres.pool().get().await.expect("connection");
            client
                .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .expect("drop bench schema");
        });
    }
    group.finish();
}

criterion_group!(benches, rehydrate);
criterion_main!(benches);
