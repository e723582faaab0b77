//! The dispatcher: routes each command of the checkout to its aggregate's repository, with the
//! saga's `CommandContext`, whose idempotency key makes a re-sent command append nothing new.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use eventcore::prelude::*;

use crate::checkout::ShopCommand;
use crate::inventory::{Inventory, Release, Reserve};
use crate::order::{CancelOrder, Order};
use crate::payment::{Charge, Payment, Refund};
use crate::shipment::{ScheduleShipment, Shipment};

/// One dispatch as the shop saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The command.
    pub command: ShopCommand,
    /// The idempotency key the saga gave it.
    pub idempotency_key: String,
    /// What came of it: the events appended, "nothing to do", a refusal, or the error.
    pub outcome: String,
}

/// Why a dispatch failed; the saga runner retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The store failed.
    #[error("{0}")]
    Store(String),
    /// The command ran, but its reply never arrived (a flaky network, simulated).
    #[error("the reply was lost on the way back")]
    ReplyLost,
}

/// The aggregates [`Dispatcher`] sends the checkout's commands to (for the event catalog).
pub const TARGETS: [&str; 4] = ["inventory", "order", "payment", "shipment"];

/// Routes [`ShopCommand`]s to the order, payment, inventory and shipment repositories.
#[derive(Clone)]
pub struct Dispatcher {
    orders: Repository<Order, SqliteStore>,
    payments: Repository<Payment, SqliteStore>,
    inventory: Repository<Inventory, SqliteStore>,
    shipments: Repository<Shipment, SqliteStore>,
    /// Orders whose first charge reply gets lost.
    lose_charge_reply: Arc<Mutex<HashSet<String>>>,
    log: Arc<Mutex<Vec<Dispatch>>>,
}

impl Dispatcher {
    /// A dispatcher to the aggregates in `store`.
    pub fn new(store: &SqliteStore) -> Self {
        Self {
            orders: Repository::new(store.clone()),
            payments: Repository::new(store.clone()),
            inventory: Repository::new(store.clone()),
            shipments: Repository::new(store.clone()),
            lose_charge_reply: Arc::default(),
            log: Arc::default(),
        }
    }

    /// Loses the reply to the first charge of `order_id`, so the saga runner sends it again.
    pub fn lose_first_charge_reply(&self, order_id: &str) {
        lock(&self.lose_charge_reply).insert(order_id.to_owned());
    }

    /// Every dispatch so far, in order.
    pub fn log(&self) -> Vec<Dispatch> {
        lock(&self.log).clone()
    }

    /// Runs `command` on its aggregate with the saga's `context`.
    pub async fn dispatch(&self, command: ShopCommand, context: CommandContext) -> Result<(), DispatchError> {
        // Each aggregate instance is addressed by its id: the SKU for inventory, the order id
        // for the others.
        let outcome = match &command {
            ShopCommand::ReserveStock {
                order_id,
                sku,
                quantity,
            } => {
                let reserve = Reserve {
                    sku: sku.clone(),
                    order_id: order_id.clone(),
                    quantity: *quantity,
                };
                describe(self.inventory.execute_with(sku, reserve, &context).await)
            }
            ShopCommand::Charge {
                order_id,
                customer_id,
                amount,
                card,
            } => {
                let charge = Charge {
                    order_id: order_id.clone(),
                    customer_id: customer_id.clone(),
                    amount: *amount,
                    card: card.clone(),
                };
                describe(self.payments.execute_with(order_id, charge, &context).await)
            }
            ShopCommand::ScheduleShipment { order_id, country } => {
                let schedule = ScheduleShipment {
                    order_id: order_id.clone(),
                    country: country.clone(),
                };
                describe(self.shipments.execute_with(order_id, schedule, &context).await)
            }
            ShopCommand::Refund { order_id } => {
                let refund = Refund {
                    order_id: order_id.clone(),
                };
                describe(self.payments.execute_with(order_id, refund, &context).await)
            }
            ShopCommand::ReleaseStock { order_id, sku } => {
                let release = Release {
                    sku: sku.clone(),
                    order_id: order_id.clone(),
                };
                describe(self.inventory.execute_with(sku, release, &context).await)
            }
            ShopCommand::CancelOrder { order_id, reason } => {
                let cancel = CancelOrder {
                    order_id: order_id.clone(),
                    reason: reason.clone(),
                };
                describe(self.orders.execute_with(order_id, cancel, &context).await)
            }
        };
        let lost = matches!(&command, ShopCommand::Charge { order_id, .. }
            if outcome.is_ok() && lock(&self.lose_charge_reply).remove(order_id));
        let (result, text) = match outcome {
            Ok(text) if lost => (Err(DispatchError::ReplyLost), format!("{text}; reply lost")),
            Ok(text) => (Ok(()), text),
            Err(error) => (
                Err(DispatchError::Store(error.clone())),
                format!("failed: {error}"),
            ),
        };
        lock(&self.log).push(Dispatch {
            command,
            idempotency_key: context.idempotency_key.unwrap_or_default(),
            outcome: text,
        });
        result
    }
}

/// What an `execute_with` did, in words; `Err` only for what is worth retrying.
///
/// A refused command is a business outcome (the aggregate moved on), not a reason to retry.
fn describe<E, X: std::fmt::Display>(
    result: Result<eventcore::Committed<E>, RepositoryError<X>>,
) -> Result<String, String> {
    match result {
        Ok(done) if done.events.is_empty() => Ok("nothing to do".into()),
        Ok(done) => Ok(done
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>()
            .join(", ")),
        Err(RepositoryError::Rejected(reason)) => Ok(format!("refused: {reason}")),
        Err(error) => Err(error.to_string()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
