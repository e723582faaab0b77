//! Decoding stored events: a current-version event (no upcaster lookup) next to the same event
//! stored at version 1 and upcast through a typed and a raw step, and plain `serde_json`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventcore::codec::decode_record;
use eventcore::prelude::*;
use eventcore::schema::UpcastError;
use eventcore::{NewEvent, RecordedEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Version 1.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "bench.credited", version = 1)]
struct CreditedV1 {
    amount: i64,
}

/// Version 2, typed from version 1.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "bench.credited", version = 2, upcast_from = CreditedV1)]
struct CreditedV2 {
    amount: i64,
    currency: String,
}

impl From<CreditedV1> for CreditedV2 {
    fn from(old: CreditedV1) -> Self {
        Self {
            amount: old.amount,
            currency: "EUR".into(),
        }
    }
}

/// Version 3, current.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "bench.credited", version = 3)]
struct Credited {
    cents: i64,
    currency: String,
}

#[upcaster(event = "bench.credited", from = 2)]
fn to_cents(payload: Value) -> Result<Value, UpcastError> {
    Ok(
        json!({ "cents": payload["amount"].as_i64().unwrap_or_default() * 100, "currency": payload["currency"] }),
    )
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
enum BenchEvent {
    Credited(Credited),
}

fn record(version: u32, payload: Value) -> RecordedEvent {
    let mut event = NewEvent::encode(
        &Credited {
            cents: 1,
            currency: "EUR".into(),
        },
        "bench",
        "b",
    )
    .unwrap();
    event.event_version = version;
    event.payload = serde_json::to_vec(&payload).unwrap().into();
    event.into_recorded("bench-b", 1, 1)
}

fn decode(c: &mut Criterion) {
    let current = record(3, json!({ "cents": 100, "currency": "EUR" }));
    let old = record(1, json!({ "amount": 1 }));
    let mut group = c.benchmark_group("decode_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("current version", |b| {
        b.iter(|| decode_record::<BenchEvent>(black_box(&current)).unwrap().count())
    });
    group.bench_function("plain serde_json", |b| {
        b.iter(|| serde_json::from_slice::<Credited>(black_box(&current.payload)).unwrap())
    });
    group.bench_function("version 1, two upcasts", |b| {
        b.iter(|| decode_record::<BenchEvent>(black_box(&old)).unwrap().count())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
