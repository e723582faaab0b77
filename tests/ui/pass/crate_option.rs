//! `crate = "..."` points generated code at a re-exported (or renamed) runtime.

mod rt {
    pub use eventcore::*;
}

use rt::{aggregate, Aggregate, DomainEvent};

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(crate = "crate::rt", aggregate = "bell")]
pub struct BellRung;

#[derive(DomainEvent)]
#[event(crate = "crate::rt")]
pub enum BellEvent {
    Rung(BellRung),
}

#[derive(Default)]
pub struct Bell {
    rings: u32,
}

pub struct Ring;

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[aggregate(crate = "crate::rt", events = BellEvent, error = Never)]
impl Bell {
    #[command]
    fn ring(&self, _: Ring) -> Result<Vec<BellEvent>, Never> {
        Ok(vec![BellRung.into()])
    }

    #[apply]
    fn rung(&mut self, _: &BellRung) {
        self.rings += 1;
    }
}

fn main() {
    let mut bell = Bell::default();
    bell.apply(&BellEvent::Rung(BellRung));
    assert_eq!(bell.rings, 1);
    assert_eq!(<Bell as Aggregate>::AGGREGATE_TYPE, "bell");
}
