use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[integration(name = "billing.invoice_paid", version = 0)]
pub struct InvoicePaid { pub amount: i64 }

fn main() {}
