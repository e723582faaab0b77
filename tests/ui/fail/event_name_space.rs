use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "account opened")]
pub struct AccountOpened { pub owner: String }

fn main() {}
