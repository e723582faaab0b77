//! `upcast_from` and `#[upcaster]` through a re-exported runtime (`crate = "..."`), with a
//! shadowing `eventcore` module in scope.

mod rt {
    pub use eventcore::*;
}

#[allow(dead_code)]
mod eventcore {}

use rt::schema::{UpcastError, Upcasted};
use rt::DomainEvent;
use serde_json::Value;

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(crate = "crate::rt", name = "bell.rung", version = 1)]
pub struct BellRungV1;

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(crate = "crate::rt", name = "bell.rung", version = 2, upcast_from = BellRungV1)]
pub struct BellRung {
    pub times: u32,
}

impl From<BellRungV1> for BellRung {
    fn from(_: BellRungV1) -> Self {
        Self { times: 1 }
    }
}

#[rt::upcaster(crate = "crate::rt", event = "bell.rung", from = 2)]
fn twice(payload: Value) -> Result<Vec<Value>, UpcastError> {
    Ok(vec![payload.clone(), payload])
}

#[rt::upcaster(crate = "crate::rt", event = "bell.chimed", from = 1, produces = ["bell.rung@3"])]
fn chimed(payload: Value) -> Result<Option<Upcasted>, UpcastError> {
    Ok(Some(Upcasted::new("bell.rung", 3, payload)))
}

fn main() {
    let registry = rt::schema::registry();
    assert_eq!(registry.steps_from("bell.rung", 1).len(), 1);
    assert_eq!(registry.steps_from("bell.rung", 2).len(), 1);
    assert_eq!(registry.steps_from("bell.chimed", 1).len(), 1);
}
