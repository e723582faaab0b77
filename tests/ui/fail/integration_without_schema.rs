use eventcore::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize)]
#[integration(name = "billing.invoice_paid")]
pub struct InvoicePaid { pub amount: i64 }

fn main() {}
