//! NATS bus throughput, side by side in one run: the relay publishing 20,000 events from a
//! `MemoryStore` to JetStream (4 partitions), next to a raw `async-nats` loop publishing the same
//! CloudEvents asynchronously (`Nats-Msg-Id` set, acks pipelined: every publish sent, then the
//! acks awaited, 500 at a time as the relay's batches); and one consumer with a counting handler
//! (one message in flight per partition) draining them, next to a raw `async-nats` loop under the
//! same rule (a durable pull consumer per partition with `max_ack_pending = 1`, one-message pulls,
//! plain acks). Both stop the clock when the last event was handled. Every run uses its own stream
//! (a unique prefix) and deletes it afterwards.
//!
//! Run: `EVENTCORE_NATS_URL=nats://127.0.0.1:4222 cargo bench -p eventcore --features nats
//! --bench bus_nats` (skipped when the variable is unset).

mod ledger;

use ledger::Counting;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::bus::{Broker, EventBus, NatsOptions, Relay};
use eventcore::store::MemoryStore;
use futures_util::StreamExt;

const STREAMS: u64 = 1_000;
const EVENTS_PER_STREAM: u64 = 20;
const EVENTS: u64 = STREAMS * EVENTS_PER_STREAM;
const PARTITIONS: u32 = 4;
/// Events per relay batch, and per awaited round of acks in the raw loop.
const BATCH: usize = 500;

/// A prefix of its own for one run.
fn unique_prefix() -> String {
    format!("bench_{}", uuid::Uuid::now_v7().simple())
}

async fn bus(url: &str, prefix: &str) -> EventBus<Broker> {
    let options = NatsOptions::default()
        .prefix(prefix)
        .partitions(PARTITIONS)
        .fetch_wait(Duration::from_millis(50));
    EventBus::nats_with(url, options).await.unwrap()
}

/// Publishes the whole store to `bus`.
async fn relay_all(store: &MemoryStore, bus: &EventBus<Broker>, name: &str) {
    let relay = Relay::new(store.clone(), bus.clone()).name(name).start();
    relay.wait_caught_up(Duration::from_secs(120)).await.unwrap();
    relay.stop().await.unwrap();
}

/// Deletes the run's event stream and letters bucket.
async fn cleanup(jetstream: &jetstream::Context, prefix: &str) {
    let name = prefix.to_uppercase();
    for stream in [name.clone(), format!("KV_{name}_letters")] {
        let _ = jetstream.delete_stream(&stream).await;
    }
}

fn nats_bus(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENTCORE_NATS_URL") else {
        println!("skipped: EVENTCORE_NATS_URL is not set");
        return;
    };
    let runtime = ledger::runtime();
    let (store, events) = ledger::filled_memory(&runtime, STREAMS, EVENTS_PER_STREAM);
    let bodies: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(eventcore::cloudevents::to_json(e, &Default::default()).unwrap()))
        .collect();
    let jetstream = runtime.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        jetstream::new(client)
    });

    let mut group = c.benchmark_group("nats_bus");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("relay_publish", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let prefix = unique_prefix();
                    let bus = bus(&url, &prefix).await;
                    let started = Instant::now();
                    let relay = Relay::new(store.clone(), bus)
                        .name(format!("relay-{prefix}-{i}"))
                        .batch_size(BATCH)
                        .start();
                    relay.wait_caught_up(Duration::from_secs(120)).await.unwrap();
                    total += started.elapsed();
                    relay.stop().await.unwrap();
                    cleanup(&jetstream, &prefix).await;
                }
                total
            })
        })
    });
    group.bench_function("raw_async_publish", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let prefix = unique_prefix();
                    jetstream
                        .create_stream(stream::Config {
                            name: prefix.to_uppercase(),
                            subjects: vec![format!("{prefix}.events.*")],
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    let started = Instant::now();
                    for (chunk, events) in bodies.chunks(BATCH).zip(events.chunks(BATCH)) {
                        let mut acks = Vec::with_capacity(chunk.len());
                        for (body, event) in chunk.iter().zip(events) {
                            let partition = event.global_position % u64::from(PARTITIONS);
                            let publish = jetstream::message::PublishMessage::build()
                                .payload(body.clone())
                                .message_id(event.event_id.to_string());
                            let ack = jetstream
                                .send_publish(format!("{prefix}.events.{partition}"), publish)
                                .await
                                .unwrap();
                            acks.push(ack);
                        }
                        for ack in acks {
                            ack.await.unwrap();
                        }
                    }
                    total += started.elapsed();
                    cleanup(&jetstream, &prefix).await;
                }
                total
            })
        })
    });
    group.bench_function("consume_one_in_flight_per_partition", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let prefix = unique_prefix();
                    let bus = bus(&url, &prefix).await;
                    relay_all(&store, &bus, &format!("relay-{prefix}-{i}")).await;
                    let (handler, handled) = Counting::new();
                    let started = Instant::now();
                    let consumer = bus.subscribe(handler).batch_size(100).start();
                    handled.wait_for(EVENTS).await;
                    total += started.elapsed();
                    consumer.stop().await.unwrap();
                    cleanup(&jetstream, &prefix).await;
                }
                total
            })
        })
    });
    group.bench_function("raw_pull_one_in_flight_per_partition", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let prefix = unique_prefix();
                    let bus = bus(&url, &prefix).await;
                    relay_all(&store, &bus, &format!("relay-{prefix}-{i}")).await;
                    let stream = jetstream.get_stream(prefix.to_uppercase()).await.unwrap();
                    let mut consumers = Vec::new();
                    for partition in 0..PARTITIONS {
                        let subject = format!("{prefix}.events.{partition}");
                        let config = pull::Config {
                            durable_name: Some(format!("raw-{partition}")),
                            filter_subject: subject,
                            deliver_policy: DeliverPolicy::All,
                            ack_policy: AckPolicy::Explicit,
                            max_ack_pending: 1,
                            ..Default::default()
                        };
                        let mut consumer = stream.create_consumer(config).await.unwrap();
                        let pending = consumer.info().await.unwrap().num_pending;
                        consumers.push((consumer, pending));
                    }
                    let started = Instant::now();
                    let mut tasks = tokio::task::JoinSet::new();
                    for (consumer, pending) in consumers {
                        tasks.spawn(async move {
                            let mut handled = 0;
                            while handled < pending {
                                let mut messages = consumer
                                    .batch()
                                    .max_messages(1)
                                    .expires(Duration::from_millis(50))
                                    .messages()
                                    .await
                                    .unwrap();
                                while let Some(message) = messages.next().await {
                                    message.unwrap().ack().await.unwrap();
                                    handled += 1;
                                }
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                    total += started.elapsed();
                    cleanup(&jetstream, &prefix).await;
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, nats_bus);
criterion_main!(benches);
