use eventcore::prelude::*;
use eventcore::saga::SagaContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "order")]
pub struct OrderPlaced { pub order_id: String }

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema)]
#[event(aggregate = "order")]
pub struct OrderPaid { pub order_id: String }

#[derive(Serialize, Deserialize)]
pub enum Command { Charge { order_id: String } }

#[derive(Serialize, Deserialize)]
pub struct Timeout;

#[derive(Default, Serialize, Deserialize)]
pub struct Checkout { pub paid: bool }

#[saga(commands = Command)]
impl Checkout {
    #[handle(key = order_id)]
    fn paid(&mut self, _: &OrderPaid, _: &mut SagaContext<Self>) { self.paid = true; }
}
fn main() {}
