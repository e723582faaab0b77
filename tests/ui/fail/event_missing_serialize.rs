use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(DomainEvent, Deserialize, JsonSchema)]
#[event(aggregate = "account")]
pub struct AccountOpened { pub owner: String }

fn main() {}
