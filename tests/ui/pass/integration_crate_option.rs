//! `#[integration(crate = "...")]` points generated code at a re-exported runtime, and the
//! derive needs nothing imported: no prelude, no trait in scope.

mod rt {
    pub use eventcore::*;
}

#[derive(rt::IntegrationEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[integration(crate = "crate::rt", name = "billing.invoice_paid", version = 3)]
pub struct InvoicePaid {
    pub amount: i64,
}

#[derive(eventcore::IntegrationEvent, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[integration(name = "shipping.parcel_status")]
pub enum ParcelStatus {
    Sent,
    Delivered,
}

fn main() {
    assert_eq!(<InvoicePaid as rt::IntegrationEvent>::NAME, "billing.invoice_paid");
    assert_eq!(<InvoicePaid as rt::IntegrationEvent>::VERSION, 3);
    assert_eq!(<ParcelStatus as eventcore::IntegrationEvent>::VERSION, 1);
}
