//! The inventory aggregate (one per SKU): stock on hand, reserved per order and released again.

use std::collections::BTreeMap;

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Units arrived in the warehouse.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "inventory.restocked")]
pub struct StockRestocked {
    /// The SKU.
    pub sku: String,
    /// Units added.
    pub quantity: u32,
}

/// Units were set aside for an order.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "inventory.reserved")]
pub struct StockReserved {
    /// The SKU.
    pub sku: String,
    /// The order they are set aside for.
    pub order_id: String,
    /// Units.
    pub quantity: u32,
}

/// Not enough units were available for an order.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "inventory.unavailable")]
pub struct StockUnavailable {
    /// The SKU.
    pub sku: String,
    /// The order.
    pub order_id: String,
    /// Units asked for.
    pub requested: u32,
    /// Units available.
    pub available: u32,
}

/// An order's reservation was given back to the shelf.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "inventory.released")]
pub struct StockReleased {
    /// The SKU.
    pub sku: String,
    /// The order.
    pub order_id: String,
    /// Units.
    pub quantity: u32,
}

/// Every event of an inventory.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum InventoryEvent {
    /// See [`StockRestocked`].
    Restocked(StockRestocked),
    /// See [`StockReserved`].
    Reserved(StockReserved),
    /// See [`StockUnavailable`].
    Unavailable(StockUnavailable),
    /// See [`StockReleased`].
    Released(StockReleased),
}

/// A SKU's stock.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Inventory {
    /// Units free to reserve.
    pub available: u32,
    /// Units reserved, by order.
    pub reserved: BTreeMap<String, u32>,
}

/// Adds units.
pub struct Restock {
    /// The SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
}

/// Reserves units for an order.
pub struct Reserve {
    /// The SKU.
    pub sku: String,
    /// The order.
    pub order_id: String,
    /// Units.
    pub quantity: u32,
}

/// Releases an order's reservation, if it has one.
pub struct Release {
    /// The SKU.
    pub sku: String,
    /// The order.
    pub order_id: String,
}

/// Why an inventory refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    /// A restock of nothing.
    #[error("restock of zero units")]
    NothingToRestock,
}

#[aggregate(events = InventoryEvent, error = InventoryError)]
impl Inventory {
    #[command]
    fn restock(&self, cmd: Restock) -> Result<Vec<InventoryEvent>, InventoryError> {
        if cmd.quantity == 0 {
            return Err(InventoryError::NothingToRestock);
        }
        Ok(vec![StockRestocked {
            sku: cmd.sku,
            quantity: cmd.quantity,
        }
        .into()])
    }

    #[command]
    fn reserve(&self, cmd: Reserve) -> Result<Vec<InventoryEvent>, InventoryError> {
        if self.reserved.contains_key(&cmd.order_id) {
            return Ok(Vec::new()); // reserved already
        }
        Ok(vec![if cmd.quantity <= self.available {
            StockReserved {
                sku: cmd.sku,
                order_id: cmd.order_id,
                quantity: cmd.quantity,
            }
            .into()
        } else {
            StockUnavailable {
                sku: cmd.sku,
                order_id: cmd.order_id,
                requested: cmd.quantity,
                available: self.available,
            }
            .into()
        }])
    }

    #[command]
    fn release(&self, cmd: Release) -> Result<Vec<InventoryEvent>, InventoryError> {
        Ok(match self.reserved.get(&cmd.order_id) {
            Some(&quantity) => vec![StockReleased {
                sku: cmd.sku,
                order_id: cmd.order_id,
                quantity,
            }
            .into()],
            None => Vec::new(), // nothing reserved: nothing to give back
        })
    }

    #[apply]
    fn restocked(&mut self, e: &StockRestocked) {
        self.available += e.quantity;
    }

    #[apply]
    fn reserved(&mut self, e: &StockReserved) {
        self.available -= e.quantity;
        self.reserved.insert(e.order_id.clone(), e.quantity);
    }

    #[apply]
    fn unavailable(&mut self, _: &StockUnavailable) {}

    #[apply]
    fn released(&mut self, e: &StockReleased) {
        self.available += e.quantity;
        self.reserved.remove(&e.order_id);
    }
}
