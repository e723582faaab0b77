//! `#[event_handler]` with both parameter forms, `crate = "..."`, and hygiene against user names.

mod rt {
    pub use eventcore::*;
}

use rt::bus::{EventHandler, HandleError, Handled};
use rt::{event_handler, DomainEvent, Envelope, NewEvent};

// Names a careless expansion would pick up instead of the runtime's.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Vec;
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

type Outcome = std::result::Result<(), Broken>;

#[derive(Default)]
pub struct Porter {
    rings: std::sync::atomic::AtomicU32,
}

#[event_handler(crate = "crate::rt", name = "front_porter")]
impl Porter {
    #[on]
    async fn rung(&self, e: &BellRung) -> std::result::Result<(), Broken> {
        if e.room == 0 {
            return std::result::Result::Err(Broken);
        }
        self.rings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::result::Result::Ok(())
    }

    #[on]
    async fn silenced(&self, _: &Envelope<BellSilenced>) -> Outcome {
        std::result::Result::Ok(())
    }

    fn rings(&self) -> u32 {
        self.rings.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    assert_eq!(<Porter as EventHandler>::NAME, "front_porter");
    assert_eq!(<Porter as EventHandler>::HANDLED_EVENT_TYPES, ["bell.rung", "bell.silenced"]);
    let porter = Porter::default();
    let record = NewEvent::encode(&BellRung { room: 0 }, "bell", "b-1")
        .map(|new| new.into_recorded("bell-b-1", 1, 0));
    if let std::result::Result::Ok(record) = record {
        let future = porter.handle(&record);
        assert_send(&future);
        drop(future);
    }
    let _: Option<Handled> = None;
    let _: Option<HandleError> = None;
    assert_eq!(porter.rings(), 0);
}
