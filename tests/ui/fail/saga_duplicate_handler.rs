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
    #[start(key = order_id)]
    fn placed(&mut self, _: &OrderPlaced, _: &mut SagaContext<Self>) {}
    #[handle(key = order_id)]
    fn placed_again(&mut self, _: &OrderPlaced, _: &mut SagaContext<Self>) {}
    #[deadline]
    fn timed_out(&mut self, _: &Timeout, _: &mut SagaContext<Self>) {}
    #[deadline]
    fn timed_out_again(&mut self, _: &Timeout, _: &mut SagaContext<Self>) {}
}
fn main() {}
