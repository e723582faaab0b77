//! A four-step saga (inventory, payment, shipping, confirmation): a failure at step k
//! compensates steps k-1..1 in reverse order, and ends the instance.
#![allow(missing_docs)] // test types, not API

use eventcore::prelude::*;
use eventcore::saga::SagaContext;
use eventcore_testing::SagaFixture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! events {
    ($($aggregate:literal: $($name:ident),*;)*) => {$($(
        #[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
        #[event(aggregate = $aggregate)]
        pub struct $name { pub order_id: String }
    )*)*};
}

events! {
    "order": OrderSubmitted, OrderConfirmed, ConfirmationFailed;
    "inventory": InventoryReserved, InventoryUnavailable;
    "payment": PaymentTaken, PaymentDeclined;
    "shipping": ShipmentBooked, ShipmentRefused;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done {
    Reserved,
    Paid,
    Booked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fulfil {
    Reserve(String),
    TakePayment(String),
    BookShipment(String),
    Confirm(String),
    ReleaseInventory(String),
    Refund(String),
    CancelShipment(String),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub done: Vec<Done>,
}

impl Fulfilment {
    /// Undoes what was done, last first, and ends the instance.
    fn compensate(&mut self, cx: &mut SagaContext<Self>) {
        let id = cx.id().to_owned();
        while let Some(step) = self.done.pop() {
            cx.send(match step {
                Done::Booked => Fulfil::CancelShipment(id.clone()),
                Done::Paid => Fulfil::Refund(id.clone()),
                Done::Reserved => Fulfil::ReleaseInventory(id.clone()),
            });
        }
        cx.end();
    }
}

#[saga(commands = Fulfil)]
impl Fulfilment {
    #[start(key = order_id)]
    fn submitted(&mut self, e: &OrderSubmitted, cx: &mut SagaContext<Self>) {
        cx.send(Fulfil::Reserve(e.order_id.clone()));
    }
    #[handle(key = order_id)]
    fn reserved(&mut self, e: &InventoryReserved, cx: &mut SagaContext<Self>) {
        self.done.push(Done::Reserved);
        cx.send(Fulfil::TakePayment(e.order_id.clone()));
    }
    #[handle(key = order_id)]
    fn paid(&mut self, e: &PaymentTaken, cx: &mut SagaContext<Self>) {
        self.done.push(Done::Paid);
        cx.send(Fulfil::BookShipment(e.order_id.clone()));
    }
    #[handle(key = order_id)]
    fn booked(&mut self, e: &ShipmentBooked, cx: &mut SagaContext<Self>) {
        self.done.push(Done::Booked);
        cx.send(Fulfil::Confirm(e.order_id.clone()));
    }
    #[end(key = order_id)]
    fn confirmed(&mut self, _: &OrderConfirmed, _: &mut SagaContext<Self>) {}
    #[handle(key = order_id)]
    fn unavailable(&mut self, _: &InventoryUnavailable, cx: &mut SagaContext<Self>) {
        self.compensate(cx);
    }
    #[handle(key = order_id)]
    fn declined(&mut self, _: &PaymentDeclined, cx: &mut SagaContext<Self>) {
        self.compensate(cx);
    }
    #[handle(key = order_id)]
    fn refused(&mut self, _: &ShipmentRefused, cx: &mut SagaContext<Self>) {
        self.compensate(cx);
    }
    #[handle(key = order_id)]
    fn not_confirmed(&mut self, _: &ConfirmationFailed, cx: &mut SagaContext<Self>) {
        self.compensate(cx);
    }
}

fn id() -> String {
    "o-1".to_owned()
}

/// The fixture after steps 1..k-1 succeeded.
fn after_steps(succeeded: usize) -> SagaFixture<Fulfilment> {
    let fixture = SagaFixture::<Fulfilment>::new().given(OrderSubmitted { order_id: id() });
    match succeeded {
        0 => fixture,
        1 => fixture.given(InventoryReserved { order_id: id() }),
        2 => fixture
            .given(InventoryReserved { order_id: id() })
            .given(PaymentTaken { order_id: id() }),
        _ => fixture
            .given(InventoryReserved { order_id: id() })
            .given(PaymentTaken { order_id: id() })
            .given(ShipmentBooked { order_id: id() }),
    }
}

#[test]
fn a_failure_at_each_step_compensates_the_earlier_steps_in_reverse_order() {
    after_steps(0)
        .when(InventoryUnavailable { order_id: id() })
        .then_no_commands()
        .then_ended();
    after_steps(1)
        .when(PaymentDeclined { order_id: id() })
        .then_commands(vec![Fulfil::ReleaseInventory(id())])
        .then_ended();
    after_steps(2)
        .when(ShipmentRefused { order_id: id() })
        .then_commands(vec![Fulfil::Refund(id()), Fulfil::ReleaseInventory(id())])
        .then_ended();
    after_steps(3)
        .when(ConfirmationFailed { order_id: id() })
        .then_commands(vec![
            Fulfil::CancelShipment(id()),
            Fulfil::Refund(id()),
            Fulfil::ReleaseInventory(id()),
        ])
        .then_state(|s| s.done.is_empty())
        .then_ended();
}

#[test]
fn the_happy_path_runs_every_step_and_ends_on_confirmation() {
    after_steps(3)
        .when(OrderConfirmed { order_id: id() })
        .then_no_commands()
        .then_state(|s| s.done == [Done::Reserved, Done::Paid, Done::Booked])
        .then_ended();
    after_steps(2)
        .when(ShipmentBooked { order_id: id() })
        .then_commands(vec![Fulfil::Confirm(id())])
        .then_active();
}
