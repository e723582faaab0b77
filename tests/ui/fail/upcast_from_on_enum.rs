use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account.opened")]
pub struct Opened {}

#[derive(DomainEvent)]
#[event(upcast_from = Opened)]
pub enum AccountEvent {
    Opened(Opened),
}

fn main() {}
