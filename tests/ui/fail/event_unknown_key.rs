use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "account", versoin = 2)]
pub struct AccountOpened { pub owner: String }

fn main() {}
