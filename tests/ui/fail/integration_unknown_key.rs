use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[integration(name = "billing.invoice_paid", aggregate = "invoice")]
pub struct InvoicePaid { pub amount: i64 }

fn main() {}
