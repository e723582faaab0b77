use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(version = 2)]
#[event(aggregate = "account", version = 3)]
pub struct AccountOpened { pub owner: String }

fn main() {}
