use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[integration(name = "billing.invoice_paid")]
pub struct InvoicePaid<T> { pub amount: T }

fn main() {}
