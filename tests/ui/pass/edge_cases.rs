//! Shapes the macros accept beyond the DESIGN.md examples.

use eventcore::prelude::*;
use eventcore::SingleEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// Unit and tuple structs, raw identifiers, and an event type without aggregate.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
pub struct Ping;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "counter", version = 7)]
pub struct CounterIncremented(pub u64);

// An enum of no events (an aggregate that never changes).
#[derive(DomainEvent)]
pub enum NoEvent {}

// Generic aggregate state; other methods, consts and attributes are left alone.
#[derive(Default)]
pub struct Counter<T> {
    value: u64,
    tag: T,
}

pub struct Increment;

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(events = CounterIncremented, error = Never)]
impl<T: Default + Send + Sync + 'static> Counter<T> {
    const STEP: u64 = 1;

    /// Documented, inlined and still there.
    #[inline]
    pub fn tag(&self) -> &T {
        &self.tag
    }

    #[command]
    fn increment(&self, _: Increment) -> Result<Vec<CounterIncremented>, Never> {
        Ok(vec![CounterIncremented(self.value + Self::STEP)])
    }

    #[apply]
    fn incremented(&mut self, e: &CounterIncremented) {
        self.value = e.0;
    }
}

fn main() {
    assert_eq!(Ping::EVENT_TYPE, "ping");
    assert_eq!(CounterIncremented::EVENT_TYPE, "counter.incremented");
    assert!(NoEvent::EVENT_TYPES.is_empty());
    assert_eq!(<Counter<()> as Aggregate>::AGGREGATE_TYPE, "counter");
    let mut counter = Counter::<u8>::default();
    for event in counter.handle(Increment).unwrap_or_default() {
        counter.apply(&event);
    }
    assert_eq!(counter.value, 1);
    let _ = counter.tag();
}
