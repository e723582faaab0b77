use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[integration(version = 2)]
pub struct InvoicePaid { pub amount: i64 }

fn main() {}
