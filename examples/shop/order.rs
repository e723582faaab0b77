//! The order aggregate: placed by a customer, cancelled when the checkout gives up on it.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A customer placed an order; the checkout saga starts here.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Default, Clone, PartialEq)]
#[event(name = "order.placed")]
pub struct OrderPlaced {
    /// The order, also the id of its payment and shipment.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// What was ordered.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Total in cents.
    pub amount: i64,
    /// The card to charge.
    pub card: String,
    /// Where to ship (ISO country code).
    pub country: String,
    /// How long the payment may take before the order is given up, in milliseconds.
    pub payment_window_ms: u64,
}

/// The order was cancelled, with why.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "order.cancelled")]
pub struct OrderCancelled {
    /// The order.
    pub order_id: String,
    /// Who ordered (the per-customer projection's key).
    pub customer_id: String,
    /// Why it was cancelled.
    pub reason: String,
}

/// Every event of an order.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum OrderEvent {
    /// See [`OrderPlaced`].
    Placed(OrderPlaced),
    /// See [`OrderCancelled`].
    Cancelled(OrderCancelled),
}

/// An order's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Who ordered; empty until placed.
    pub customer_id: String,
    /// Whether it was placed.
    pub placed: bool,
    /// Why it was cancelled, once it is.
    pub cancelled: Option<String>,
}

/// Places an order (the fields of [`OrderPlaced`]).
pub struct PlaceOrder(pub OrderPlaced);

/// Cancels an order.
pub struct CancelOrder {
    /// The order.
    pub order_id: String,
    /// Why.
    pub reason: String,
}

/// Why an order refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    /// The order was placed already.
    #[error("order already placed")]
    AlreadyPlaced,
    /// There is no such order.
    #[error("no such order")]
    NotPlaced,
    /// The order was cancelled already.
    #[error("order already cancelled")]
    AlreadyCancelled,
}

#[aggregate(events = OrderEvent, error = OrderError)]
impl Order {
    #[command]
    fn place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if self.placed {
            return Err(OrderError::AlreadyPlaced);
        }
        Ok(vec![cmd.0.into()])
    }

    #[command]
    fn cancel(&self, cmd: CancelOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if !self.placed {
            return Err(OrderError::NotPlaced);
        }
        if self.cancelled.is_some() {
            return Err(OrderError::AlreadyCancelled);
        }
        Ok(vec![OrderCancelled {
            order_id: cmd.order_id,
            customer_id: self.customer_id.clone(),
            reason: cmd.reason,
        }
        .into()])
    }

    #[apply]
    fn placed(&mut self, e: &OrderPlaced) {
        self.placed = true;
        self.customer_id = e.customer_id.clone();
    }

    #[apply]
    fn cancelled(&mut self, e: &OrderCancelled) {
        self.cancelled = Some(e.reason.clone());
    }
}
