use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "order-line")]
pub struct LineAdded { pub owner: String }

fn main() {}
