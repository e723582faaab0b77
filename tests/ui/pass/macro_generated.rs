//! Events and aggregates written by a `macro_rules!` macro: the generated code's locals must
//! resolve although user tokens carry the other macro's hygiene.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! counter {
    ($event:ident, $set:ident, $state:ident, $command:ident, $error:ident) => {
        #[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
        #[event(aggregate = "counter")]
        pub struct $event;

        #[derive(DomainEvent)]
        pub enum $set {
            Stepped($event),
            Again(Again),
        }

        #[derive(Default)]
        pub struct $state {
            count: u32,
        }

        pub struct $command;

        #[derive(Debug, thiserror::Error)]
        #[error("never")]
        pub struct $error;

        #[aggregate(events = $set, error = $error)]
        impl $state {
            #[command]
            fn step(&self, command: $command) -> Result<Vec<$set>, $error> {
                let _ = command;
                Ok(vec![$event.into()])
            }

            #[apply]
            fn stepped(&mut self, event: &$event) {
                let _ = event;
                self.count += 1;
            }

            #[apply]
            fn again(&mut self, _: &Again) {}
        }
    };
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "counter")]
pub struct Again;

counter!(CounterStepped, CounterEvent, Counter, Step, Never);

fn main() {
    let mut counter = Counter::default();
    for event in counter.handle(Step).unwrap_or_default() {
        counter.apply(&event);
    }
    assert_eq!(counter.count, 1);
}
