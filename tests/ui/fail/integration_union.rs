use eventcore::prelude::*;

#[derive(IntegrationEvent)]
#[integration(name = "billing.invoice_paid")]
pub union InvoicePaid { pub amount: i64 }

fn main() {}
