//! The shipment aggregate (one per order): books a carrier, or refuses a destination.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The countries the shop ships to.
pub const SHIPS_TO: [&str; 4] = ["DE", "FR", "NL", "GB"];

/// A carrier will pick the order up.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "shipment.scheduled")]
pub struct ShipmentScheduled {
    /// The order.
    pub order_id: String,
    /// The carrier booked.
    pub carrier: String,
}

/// No carrier can take the order.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "shipment.refused")]
pub struct ShipmentRefused {
    /// The order.
    pub order_id: String,
    /// Why.
    pub reason: String,
}

/// Every event of a shipment.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum ShipmentEvent {
    /// See [`ShipmentScheduled`].
    Scheduled(ShipmentScheduled),
    /// See [`ShipmentRefused`].
    Refused(ShipmentRefused),
}

/// A shipment's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Shipment {
    /// The carrier, once booked.
    pub carrier: Option<String>,
}

/// Books a carrier for an order.
pub struct ScheduleShipment {
    /// The order.
    pub order_id: String,
    /// Destination (ISO country code).
    pub country: String,
}

/// Why a shipment refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShipmentError {
    /// A carrier is booked already.
    #[error("shipment already scheduled")]
    AlreadyScheduled,
}

#[aggregate(events = ShipmentEvent, error = ShipmentError)]
impl Shipment {
    #[command]
    fn schedule(&self, cmd: ScheduleShipment) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        if self.carrier.is_some() {
            return Err(ShipmentError::AlreadyScheduled);
        }
        Ok(vec![if SHIPS_TO.contains(&cmd.country.as_str()) {
            ShipmentScheduled {
                order_id: cmd.order_id,
                carrier: "ParcelCo".into(),
            }
            .into()
        } else {
            ShipmentRefused {
                order_id: cmd.order_id,
                reason: format!("no carrier ships to {}", cmd.country),
            }
            .into()
        }])
    }

    #[apply]
    fn scheduled(&mut self, e: &ShipmentScheduled) {
        self.carrier = Some(e.carrier.clone());
    }

    #[apply]
    fn refused(&mut self, _: &ShipmentRefused) {}
}
