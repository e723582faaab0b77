//! Redis bus throughput, side by side in one run: the relay publishing 20,000 events from a
//! `MemoryStore` to Redis Streams, next to a raw pipelined `XADD` loop of the same CloudEvents
//! (500 per round trip); and one consumer with a no-op handler (batch 100) draining them.
//! Needs `EVENTCORE_REDIS_URL` (skipped when unset).

mod ledger;

use ledger::Noop;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::bus::{Broker, EventBus, RedisOptions, Relay};
use redis::AsyncCommands;

const STREAMS: u64 = 1_000;
const EVENTS_PER_STREAM: u64 = 20;
const EVENTS: u64 = STREAMS * EVENTS_PER_STREAM;

async fn bus(url: &str, prefix: &str) -> EventBus<Broker> {
    let options = RedisOptions::default()
        .prefix(prefix)
        .partitions(4)
        .block(Duration::from_millis(20));
    EventBus::redis_with(url, options).await.unwrap()
}

async fn cleanup(connection: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = connection.del(keys).await.unwrap();
    }
}

fn redis_bus(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTCORE_REDIS_URL") else {
        println!("skipped: EVENTCORE_REDIS_URL is not set");
        return;
    };
    let runtime = ledger::runtime();
    let (store, events) = ledger::filled_memory(&runtime, STREAMS, EVENTS_PER_STREAM);
    let bodies: Vec<String> = events
        .iter()
        .map(|e| eventcore::cloudevents::to_json(e, &Default::default()).unwrap())
        .collect();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();

    let mut group = c.benchmark_group("redis_bus");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("relay_publish", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let prefix = format!("bench-{}", uuid::Uuid::now_v7().simple());
                    let bus = bus(&url, &prefix).await;
                    let started = Instant::now();
                    let relay = Relay::new(store.clone(), bus)
                        .name(format!("relay-{prefix}-{i}"))
                        .start();
                    relay.wait_caught_up(Duration::from_secs(120)).await.unwrap();
                    total += started.elapsed();
                    relay.stop().await.unwrap();
                    cleanup(&mut connection, &prefix).await;
                }
                total
            })
        })
    });
    group.bench_function("raw_pipelined_xadd", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let prefix = format!("bench-{}", uuid::Uuid::now_v7().simple());
                    let started = Instant::now();
                    for (chunk, events) in bodies.chunks(500).zip(events.chunks(500)) {
                        let mut pipe = redis::pipe();
                        for (body, event) in chunk.iter().zip(events) {
                            let partition = event.global_position % 4;
                            pipe.xadd(format!("{prefix}:events:{partition}"), "*", &[("event", body)]);
                        }
                        let _: Vec<String> = pipe.query_async(&mut connection).await.unwrap();
                    }
                    total += started.elapsed();
                    cleanup(&mut connection, &prefix).await;
                }
                total
            })
        })
    });
    group.bench_function("consume_noop_batch_100", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let prefix = format!("bench-{}", uuid::Uuid::now_v7().simple());
                    let bus = bus(&url, &prefix).await;
                    let relay = Relay::new(store.clone(), bus.clone())
                        .name(format!("relay-{prefix}-{i}"))
                        .start();
                    relay.wait_caught_up(Duration::from_secs(120)).await.unwrap();
                    relay.stop().await.unwrap();
                    let started = Instant::now();
                    let consumer = bus.subscribe(Noop).batch_size(100).start();
                    consumer.wait_caught_up(Duration::from_secs(120)).await.unwrap();
                    total += started.elapsed();
                    consumer.stop().await.unwrap();
                    cleanup(&mut connection, &prefix).await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, redis_bus);
criterion_main!(benches);
