//! The checkout saga: reserve stock, charge the card, schedule shipping; when a step fails or
//! the payment window closes, undo what was done in reverse order (refund, release stock) and
//! cancel the order.

use std::fmt;
use std::time::Duration;

use eventcore::prelude::*;
use eventcore::saga::SagaContext;
use serde::{Deserialize, Serialize};

use crate::inventory::{StockReserved, StockUnavailable};
use crate::order::OrderPlaced;
use crate::payment::{PaymentAwaitingConfirmation, PaymentCharged, PaymentDeclined};
use crate::shipment::{ShipmentRefused, ShipmentScheduled};

/// What the checkout asks the other aggregates to do; the dispatcher routes each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShopCommand {
    /// Inventory: set units aside for the order.
    ReserveStock {
        /// The order.
        order_id: String,
        /// The SKU.
        sku: String,
        /// Units.
        quantity: u32,
    },
    /// Payment: charge the card.
    Charge {
        /// The order.
        order_id: String,
        /// Who pays.
        customer_id: String,
        /// Cents.
        amount: i64,
        /// The card.
        card: String,
    },
    /// Shipment: book a carrier.
    ScheduleShipment {
        /// The order.
        order_id: String,
        /// Destination.
        country: String,
    },
    /// Payment (compensation): refund the charge, or void a pending one.
    Refund {
        /// The order.
        order_id: String,
    },
    /// Inventory (compensation): put the reserved units back.
    ReleaseStock {
        /// The order.
        order_id: String,
        /// The SKU.
        sku: String,
    },
    /// Order (compensation): cancel it.
    CancelOrder {
        /// The order.
        order_id: String,
        /// Why.
        reason: String,
    },
}

/// A step of the checkout that can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Stock reserved.
    ReserveStock,
    /// Card charged.
    Charge,
}

/// Where a checkout stands.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Waiting for the inventory.
    #[default]
    ReservingStock,
    /// Waiting for the payment.
    Charging,
    /// Waiting for the customer to confirm the payment.
    AwaitingConfirmation,
    /// Waiting for a carrier.
    Shipping,
    /// Done: a carrier is booked.
    Shipped,
    /// Given up, with why; earlier steps were undone.
    Cancelled(String),
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::ReservingStock => f.write_str("reserving stock"),
            Stage::Charging => f.write_str("charging"),
            Stage::AwaitingConfirmation => f.write_str("awaiting payment confirmation"),
            Stage::Shipping => f.write_str("shipping"),
            Stage::Shipped => f.write_str("shipped"),
            Stage::Cancelled(reason) => write!(f, "cancelled ({reason})"),
        }
    }
}

/// The payment window closed before the card was charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentOverdue;

/// One checkout per order (the saga instance's id is the order id).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    /// The order as placed.
    pub order: OrderPlaced,
    /// Where it stands.
    pub stage: Stage,
    /// Steps done, in order (undone last first when the checkout gives up).
    pub done: Vec<Step>,
    /// The step asked for and not yet answered.
    pub waiting_for: Option<Step>,
}

#[saga(commands = ShopCommand)] // name "checkout"
impl Checkout {
    #[start(key = order_id)]
    fn placed(&mut self, e: &OrderPlaced, cx: &mut SagaContext<Self>) {
        self.order = e.clone();
        cx.schedule(Duration::from_millis(e.payment_window_ms), PaymentOverdue);
        self.ask(Step::ReserveStock, cx);
    }

    #[handle(key = order_id)]
    fn reserved(&mut self, _: &StockReserved, cx: &mut SagaContext<Self>) {
        self.succeeded(Step::ReserveStock);
        self.ask(Step::Charge, cx);
    }

    #[handle(key = order_id)]
    fn out_of_stock(&mut self, _: &StockUnavailable, cx: &mut SagaContext<Self>) {
        self.failed("out of stock", cx);
    }

    #[handle(key = order_id)]
    fn awaiting_confirmation(&mut self, _: &PaymentAwaitingConfirmation, _: &mut SagaContext<Self>) {
        self.stage = Stage::AwaitingConfirmation;
    }

    #[handle(key = order_id)]
    fn charged(&mut self, _: &PaymentCharged, cx: &mut SagaContext<Self>) {
        cx.cancel::<PaymentOverdue>();
        self.succeeded(Step::Charge);
        self.stage = Stage::Shipping;
        cx.send(ShopCommand::ScheduleShipment {
            order_id: self.order.order_id.clone(),
            country: self.order.country.clone(),
        });
    }

    #[handle(key = order_id)]
    fn declined(&mut self, e: &PaymentDeclined, cx: &mut SagaContext<Self>) {
        self.failed(&format!("payment failed: {}", e.reason), cx);
    }

    #[end(key = order_id)]
    fn shipped(&mut self, _: &ShipmentScheduled, _: &mut SagaContext<Self>) {
        self.stage = Stage::Shipped;
    }

    #[handle(key = order_id)]
    fn undeliverable(&mut self, e: &ShipmentRefused, cx: &mut SagaContext<Self>) {
        self.failed(&format!("shipping failed: {}", e.reason), cx);
    }

    #[deadline]
    fn payment_overdue(&mut self, _: &PaymentOverdue, cx: &mut SagaContext<Self>) {
        self.give_up("payment timed out", cx);
    }
}

impl Checkout {
    /// Sends the command of `step` and waits for its answer.
    fn ask(&mut self, step: Step, cx: &mut SagaContext<Self>) {
        let order = &self.order;
        let (stage, command) = match step {
            Step::ReserveStock => (
                Stage::ReservingStock,
                ShopCommand::ReserveStock {
                    order_id: order.order_id.clone(),
                    sku: order.sku.clone(),
                    quantity: order.quantity,
                },
            ),
            Step::Charge => (
                Stage::Charging,
                ShopCommand::Charge {
                    order_id: order.order_id.clone(),
                    customer_id: order.customer_id.clone(),
                    amount: order.amount,
                    card: order.card.clone(),
                },
            ),
        };
        self.stage = stage;
        self.waiting_for = Some(step);
        cx.send(command);
    }

    /// Records that `step` went through.
    fn succeeded(&mut self, step: Step) {
        self.waiting_for = None;
        self.done.push(step);
    }

    /// The step asked for failed: undoes the steps done before it.
    fn failed(&mut self, reason: &str, cx: &mut SagaContext<Self>) {
        self.waiting_for = None;
        self.give_up(reason, cx);
    }

    /// Undoes the unanswered step (it may still go through; undoing what did not happen does
    /// nothing), then the steps done, last first; cancels the order and ends the checkout.
    fn give_up(&mut self, reason: &str, cx: &mut SagaContext<Self>) {
        let order_id = self.order.order_id.clone();
        let unanswered = self.waiting_for.take();
        for step in unanswered.iter().chain(self.done.iter().rev()) {
            cx.send(match step {
                Step::Charge => ShopCommand::Refund {
                    order_id: order_id.clone(),
                },
                Step::ReserveStock => ShopCommand::ReleaseStock {
                    order_id: order_id.clone(),
                    sku: self.order.sku.clone(),
                },
            });
        }
        cx.send(ShopCommand::CancelOrder {
            order_id,
            reason: reason.to_owned(),
        });
        self.stage = Stage::Cancelled(reason.to_owned());
        cx.end();
    }
}
