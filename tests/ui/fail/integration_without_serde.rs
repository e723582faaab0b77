use eventcore::prelude::*;
use schemars::JsonSchema;

#[derive(IntegrationEvent, JsonSchema)]
#[integration(name = "billing.invoice_paid")]
pub struct InvoicePaid { pub amount: i64 }

fn main() {}
