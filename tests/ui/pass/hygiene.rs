//! The generated code names nothing through the user's scope: shadowed prelude names do not matter.
#![no_implicit_prelude]

extern crate core as std_core;
extern crate eventcore;
extern crate schemars;
extern crate serde;
extern crate thiserror;

use eventcore::{aggregate, DomainEvent};
use std_core::convert::From;
use std_core::default::Default;
use std_core::fmt::Debug;

// Shadow the names generated code must not rely on.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Some;
#[allow(non_camel_case_types, dead_code)]
struct u32;
#[allow(dead_code)]
mod __private {}

#[derive(DomainEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Debug)]
#[event(aggregate = "door")]
pub struct DoorOpened;

#[derive(DomainEvent, Debug)]
pub enum DoorEvent {
    Opened(DoorOpened),
}

#[derive(Default)]
pub struct Door {
    open: bool,
}

pub struct OpenDoor;

#[derive(Debug, thiserror::Error)]
#[error("the door is open")]
pub struct AlreadyOpen;

#[aggregate(events = DoorEvent, error = AlreadyOpen)]
impl Door {
    #[command]
    fn open(
        &self,
        _: OpenDoor,
    ) -> std_core::result::Result<::std::vec::Vec<DoorEvent>, AlreadyOpen> {
        if self.open {
            return std_core::result::Result::Err(AlreadyOpen);
        }
        let mut events = ::std::vec::Vec::new();
        events.push(DoorEvent::from(DoorOpened));
        std_core::result::Result::Ok(events)
    }

    #[apply]
    fn opened(&mut self, _: &DoorOpened) {
        self.open = true;
    }
}

fn main() {}
