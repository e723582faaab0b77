//! Apply dispatch: the `match` that `#[aggregate]` generates, against a hand-written `match`
//! and a `HashMap<TypeId, Box<dyn Fn>>` dispatcher, over the same mixed stream of 16 event types.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const EVENTS: usize = 4096;

/// Declares 16 event structs, their enum, and the three dispatchers over them.
macro_rules! bench_domain {
    ($($event:ident => $method:ident, $slot:literal;)*) => {
        $(
            #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
            #[event(aggregate = "bench")]
            struct $event { n: i64 }
        )*

        #[derive(DomainEvent, Debug, Clone, PartialEq)]
        enum BenchEvent { $($event($event)),* }

        #[aggregate(name = "bench", events = BenchEvent, error = std::convert::Infallible)]
        impl Tally {
            $(
                #[apply]
                fn $method(&mut self, e: &$event) { self.add($slot, e.n); }
            )*
        }

        fn hand_written(tally: &mut Tally, event: &BenchEvent) {
            match event {
                $(BenchEvent::$event(e) => tally.add($slot, e.n),)*
            }
        }

        fn event_of_slot(slot: usize, n: i64) -> BenchEvent {
            let mut i = 0;
            $(
                if slot == i { return $event { n }.into(); }
                i += 1;
            )*
            unreachable!("slot {slot} of {i}")
        }

        fn boxed(event: &BenchEvent) -> Box<dyn Any> {
            match event { $(BenchEvent::$event(e) => Box::new(e.clone()),)* }
        }

        fn type_map() -> HashMap<TypeId, Box<dyn Fn(&mut Tally, &dyn Any)>> {
            let mut map: HashMap<TypeId, Box<dyn Fn(&mut Tally, &dyn Any)>> = HashMap::new();
            $(
                map.insert(TypeId::of::<$event>(), Box::new(|t: &mut Tally, e: &dyn Any| {
                    if let Some(e) = e.downcast_ref::<$event>() { t.add($slot, e.n); }
                }));
            )*
            map
        }
    };
}

/// The state every dispatcher folds into.
#[derive(Debug, Default)]
struct Tally {
    sums: [i64; 16],
}

impl Tally {
    #[inline]
    fn add(&mut self, slot: usize, n: i64) {
        self.sums[slot] = self.sums[slot].wrapping_add(n ^ slot as i64);
    }
}

bench_domain! {
    E00 => a00, 0; E01 => a01, 1; E02 => a02, 2; E03 => a03, 3;
    E04 => a04, 4; E05 => a05, 5; E06 => a06, 6; E07 => a07, 7;
    E08 => a08, 8; E09 => a09, 9; E10 => a10, 10; E11 => a11, 11;
    E12 => a12, 12; E13 => a13, 13; E14 => a14, 14; E15 => a15, 15;
}

/// A reproducible mix of the 16 types (a linear congruential sequence, so no branch pattern repeats soon).
fn mixed_events() -> Vec<BenchEvent> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..EVENTS)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            event_of_slot((x >> 60) as usize, i as i64)
        })
        .collect()
}

fn dispatch(c: &mut Criterion) {
    let events = mixed_events();
    let dynamic: Vec<Box<dyn Any>> = events.iter().map(boxed).collect();
    let map = type_map();

    let mut group = c.benchmark_group("apply_dispatch_16_types");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("generated_match", |b| {
        b.iter_batched_ref(
            Tally::default,
            |t| {
                for e in black_box(&events) {
                    t.apply(e);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("hand_written_match", |b| {
        b.iter_batched_ref(
            Tally::default,
            |t| {
                for e in black_box(&events) {
                    hand_written(t, e);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("hashmap_typeid_dyn_fn", |b| {
        b.iter_batched_ref(
            Tally::default,
            |t| {
                for e in black_box(&dynamic) {
                    if let Some(f) = map.get(&(**e).type_id()) {
                        f(t, e.as_ref());
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The three must agree, or the comparison means nothing.
    let (mut a, mut b, mut d) = (Tally::default(), Tally::default(), Tally::default());
    for e in &events {
        a.apply(e);
        hand_written(&mut b, e);
    }
    for e in &dynamic {
        if let Some(f) = map.get(&(**e).type_id()) {
            f(&mut d, e.as_ref());
        }
    }
    assert!(a.sums == b.sums && b.sums == d.sums, "dispatchers disagree");
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
