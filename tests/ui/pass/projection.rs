//! `#[projection]` with every handler form, `crate = "..."`, and hygiene against user names.

mod rt {
    pub use eventcore::*;
}

use rt::{projection, DomainEvent, Envelope, Projection};

// Names a careless expansion would pick up instead of the runtime's.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
mod eventcore {}

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(crate = "crate::rt", aggregate = "bell")]
pub struct BellRung { pub room: u32 }

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[event(crate = "crate::rt", aggregate = "bell")]
pub struct BellSilenced;

#[derive(Debug)]
pub struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken")
    }
}

impl std::error::Error for Broken {}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Rings {
    count: u32,
    silenced: bool,
}

#[projection(crate = "crate::rt", name = "rings_by_room", version = 4)]
impl Rings {
    #[on(key = room)]
    fn rung(&mut self, _: &BellRung) {
        self.count += 1;
    }

    #[on]
    fn silenced(&mut self, e: &Envelope<BellSilenced>) -> std::result::Result<(), Broken> {
        if e.global_position == 0 {
            return std::result::Result::Err(Broken);
        }
        self.silenced = true;
        std::result::Result::Ok(())
    }

    fn helper(&self) -> u32 {
        self.count
    }
}

fn main() {
    assert_eq!(<Rings as Projection>::NAME, "rings_by_room");
    assert_eq!(<Rings as Projection>::VERSION, 4);
    assert_eq!(<Rings as Projection>::HANDLED_EVENT_TYPES, ["bell.rung", "bell.silenced"]);
    assert_eq!(Rings::default().helper(), 0);
}
