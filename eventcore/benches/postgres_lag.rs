//! Subscription lag under sustained writes against `EVENTCORE_POSTGRES_URL` (issue 14): 8
//! writers append 20 000 events in batches of 1–4, about one transaction in ten held open
//! 10–100 ms before it commits, one in fifty rolled back; a subscriber of another handle (its
//! own pool and `LISTEN` connection, as in another process) follows the log. Lag is the time from
//! an append's return to the event's delivery.
//!
//! Run: `EVENTCORE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p eventcore
//! --features postgres --bench postgres_lag`. Prints p50 / p99 / max lag, skipped and duplicated
//! events first, then criterion's figure for stepping over a rolled-back gap.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use eventcore::envelope::Metadata;
use eventcore::store::postgres::PostgresStore;
use eventcore::{EventStore, ExpectedVersion, NewEvent, SubscribeAll};
use futures_util::StreamExt;
use tokio::runtime::Runtime;

const WRITERS: u64 = 8;
const EVENTS: i64 = 20_000;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "bench.happened".into(),
        event_version: 1,
        aggregate_type: "bench".into(),
        aggregate_id: format!("a-{n}"),
        occurred_at: Utc::now().trunc_subsecs(6),
        correlation_id: None,
        causation_id: None,
        metadata: Metadata::new(),
        payload: Bytes::from(format!(r#"{{"n":{n}}}"#)),
    }
}

/// A small deterministic generator (xorshift).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One writer: appends until the shared budget of events is spent; returns each committed
/// position with the moment its append returned.
async fn writer(store: PostgresStore, id: u64, budget: Arc<AtomicI64>) -> Vec<(u64, Instant)> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let stream = format!("writer-{id}");
    let mut committed = Vec::new();
    loop {
        let wanted = 1 + dice.below(4) as i64;
        let left = budget.fetch_sub(wanted, Ordering::Relaxed);
        if left <= 0 {
            // Give it back: a writer whose batch rolls back may still need it.
            budget.fetch_add(wanted, Ordering::Relaxed);
            return committed;
        }
        let size = wanted.min(left);
        budget.fetch_add(wanted - size, Ordering::Relaxed);
        let size = size as u64;
        let events: Vec<_> = (0..size).map(event).collect();
        let roll = dice.below(100);
        if roll < 10 {
            let mut client = store.pool().get().await.unwrap();
            let transaction = client.transaction().await.unwrap();
            let result = store
                .append_in_transaction(&transaction, &stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10 + dice.below(90))).await;
            if roll < 2 {
                transaction.rollback().await.unwrap();
                // Rolled-back events do not count.
                budget.fetch_add(size as i64, Ordering::Relaxed);
            } else {
                transaction.commit().await.unwrap();
                let now = Instant::now();
                committed.extend(result.positions.iter().map(|&p| (p, now)));
                store.notify_subscribers().await.unwrap();
            }
        } else {
            let result = store.append(&stream, ExpectedVersion::Any, events).await.unwrap();
            let now = Instant::now();
            committed.extend(result.positions.iter().map(|&p| (p, now)));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// The lag workload, once; prints its figures.
async fn lag_workload(url: &str) {
    let schema = format!("bench_lag_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let store = PostgresStore::builder()
        .schema(schema.clone())
        .pool_size(24)
        .connect(url)
        .await
        .unwrap();
    let reader = PostgresStore::builder()
        .schema(schema)
        .connect(url)
        .await
        .unwrap();
    let delivered = Arc::new(Mutex::new(Vec::<(u64, Instant)>::with_capacity(EVENTS as usize)));
    let subscriber = {
        let delivered = delivered.clone();
        let mut subscription = reader.subscribe_all(1);
        tokio::spawn(async move {
            while let Some(event) = subscription.next().await {
                let position = event.unwrap().global_position;
                delivered.lock().unwrap().push((position, Instant::now()));
            }
        })
    };
    let budget = Arc::new(AtomicI64::new(EVENTS));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(store.clone(), id, budget.clone())))
        .collect();
    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    let written_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.lock().unwrap().len() < committed.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    subscriber.abort();
    let delivered = delivered.lock().unwrap().clone();

    let commits: HashMap<u64, Instant> = committed.iter().copied().collect();
    let mut seen = HashMap::with_capacity(delivered.len());
    let mut lags = Vec::with_capacity(delivered.len());
    let mut out_of_order = 0;
    let mut previous = 0;
    for &(position, at) in &delivered {
        if position <= previous {
            out_of_order += 1;
        }
        previous = position;
        *seen.entry(position).or_insert(0u32) += 1;
        if let Some(commit) = commits.get(&position) {
            lags.push(at.saturating_duration_since(*commit));
        }
    }
    let skipped = commits.keys().filter(|p| !seen.contains_key(p)).count();
    let duplicated: u32 = seen.values().map(|n| n - 1).sum();
    let unknown = seen.keys().filter(|p| !commits.contains_key(p)).count();
    lags.sort_unstable();
    println!(
        "postgres_lag: {} events committed by {WRITERS} writers in {written_in:.2?} \
         ({:.0} events/s); lag p50 {:.3?}, p99 {:.3?}, max {:.3?}; skipped {skipped}, \
         duplicated {duplicated}, out of order {out_of_order}, not committed {unknown}",
        committed.len(),
        committed.len() as f64 / written_in.as_secs_f64(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default(),
    );
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
        .await
        .unwrap();
}

/// A rolled-back append, then one event: how long until a subscriber delivers the event.
fn step_over_a_rolled_back_gap(c: &mut Criterion, runtime: &Runtime, url: &str) {
    let schema = format!("bench_gap_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let store = runtime
        .block_on(PostgresStore::builder().schema(schema).connect(url))
        .unwrap();
    let subscription = Arc::new(tokio::sync::Mutex::new(store.subscribe_all(1)));
    c.bench_function("postgres: deliver an event after a rolled-back gap", |b| {
        b.to_async(runtime).iter(|| {
            let store = store.clone();
            let subscription = subscription.clone();
            async move {
                let mut client = store.pool().get().await.unwrap();
                let doomed = client.transaction().await.unwrap();
                store
                    .append_in_transaction(&doomed, "doomed", ExpectedVersion::Any, vec![event(0)])
                    .await
                    .unwrap();
                doomed.rollback().await.unwrap();
                drop(client);
                let kept = store
                    .append("kept", ExpectedVersion::Any, vec![event(1)])
                    .await
                    .unwrap();
                let delivered = subscription.lock().await.next().await.unwrap().unwrap();
                assert_eq!(delivered.global_position, kept.positions[0]);
            }
        });
    });
    runtime.block_on(async {
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .await
            .unwrap();
    });
}

fn postgres_lag(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTCORE_POSTGRES_URL") else {
        println!("skipped: EVENTCORE_POSTGRES_URL not set");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(lag_workload(&url));
    step_over_a_rolled_back_gap(c, &runtime, &url);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = postgres_lag
}
criterion_main!(benches);
