//! The read side: an `order_summary` SQL table in the store's SQLite file, and one document per
//! customer.

use eventcore::prelude::*;
use eventcore::projection::{Projections, SqliteTableProjection, TableError};
use eventcore::rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};

use crate::inventory::{StockReleased, StockReserved, StockUnavailable};
use crate::order::{OrderCancelled, OrderPlaced};
use crate::payment::{
    PaymentAwaitingConfirmation, PaymentCharged, PaymentDeclined, PaymentRefunded, PaymentVoided,
};
use crate::shipment::{ShipmentRefused, ShipmentScheduled};

/// The events the order summary reads, from every aggregate.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum SummaryEvent {
    /// See [`OrderPlaced`].
    Placed(OrderPlaced),
    /// See [`OrderCancelled`].
    Cancelled(OrderCancelled),
    /// See [`StockReserved`].
    Reserved(StockReserved),
    /// See [`StockUnavailable`].
    Unavailable(StockUnavailable),
    /// See [`StockReleased`].
    Released(StockReleased),
    /// See [`PaymentCharged`].
    Charged(PaymentCharged),
    /// See [`PaymentDeclined`].
    Declined(PaymentDeclined),
    /// See [`PaymentAwaitingConfirmation`].
    AwaitingConfirmation(PaymentAwaitingConfirmation),
    /// See [`PaymentRefunded`].
    Refunded(PaymentRefunded),
    /// See [`PaymentVoided`].
    Voided(PaymentVoided),
    /// See [`ShipmentScheduled`].
    Scheduled(ShipmentScheduled),
    /// See [`ShipmentRefused`].
    Refused(ShipmentRefused),
}

/// One row per order in the table `order_summary`: its status and that of its stock, payment
/// and shipment, queried with SQL.
pub struct OrderSummaryTable;

/// A row of `order_summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Total in cents.
    pub amount: i64,
    /// `placed`, `shipped` or `cancelled`.
    pub status: String,
    /// `reserved`, `unavailable`, `released`, or empty.
    pub stock: String,
    /// `charged`, `declined`, `awaiting confirmation`, `refunded`, `voided`, or empty.
    pub payment: String,
    /// The carrier, `refused`, or empty.
    pub shipment: String,
    /// Why the order was cancelled, or empty.
    pub reason: String,
}

impl OrderSummaryTable {
    /// Every row, by order id.
    pub async fn rows(store: &SqliteStore) -> Result<Vec<OrderSummary>, StoreError> {
        store
            .transaction(|tx| {
                let mut query = tx
                    .prepare(
                        "SELECT order_id, customer_id, amount, status, stock, payment, shipment, reason \
                         FROM order_summary ORDER BY order_id",
                    )
                    .map_err(StoreError::backend)?;
                let rows = query
                    .query_map([], |r| {
                        Ok(OrderSummary {
                            order_id: r.get(0)?,
                            customer_id: r.get(1)?,
                            amount: r.get(2)?,
                            status: r.get(3)?,
                            stock: r.get(4)?,
                            payment: r.get(5)?,
                            shipment: r.get(6)?,
                            reason: r.get(7)?,
                        })
                    })
                    .and_then(Iterator::collect)
                    .map_err(StoreError::backend)?;
                Ok(rows)
            })
            .await
    }
}

/// Sets `column` of the order's row; the column names are this file's, never input.
fn set(tx: &Transaction<'_>, order_id: &str, column: &str, value: &str) -> Result<(), TableError> {
    tx.execute(
        &format!("UPDATE order_summary SET {column} = ?2 WHERE order_id = ?1"),
        params![order_id, value],
    )?;
    Ok(())
}

impl SqliteTableProjection for OrderSummaryTable {
    fn name(&self) -> &str {
        "order_summary"
    }

    fn event_types(&self) -> Vec<String> {
        SummaryEvent::EVENT_TYPES
            .iter()
            .map(|d| d.event_type.to_owned())
            .collect()
    }

    fn setup(&mut self, tx: &Transaction<'_>) -> Result<(), TableError> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS order_summary (
                order_id TEXT PRIMARY KEY,
                customer_id TEXT NOT NULL,
                amount INTEGER NOT NULL,
                status TEXT NOT NULL,
                stock TEXT NOT NULL DEFAULT '',
                payment TEXT NOT NULL DEFAULT '',
                shipment TEXT NOT NULL DEFAULT '',
                reason TEXT NOT NULL DEFAULT ''
            )",
        )?;
        Ok(())
    }

    fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), TableError> {
        match event.decode::<SummaryEvent>()?.payload {
            SummaryEvent::Placed(e) => {
                tx.execute(
                    "INSERT INTO order_summary (order_id, customer_id, amount, status) VALUES (?1, ?2, ?3, 'placed')",
                    params![e.order_id, e.customer_id, e.amount],
                )?;
            }
            SummaryEvent::Cancelled(e) => {
                set(tx, &e.order_id, "status", "cancelled")?;
                set(tx, &e.order_id, "reason", &e.reason)?;
            }
            SummaryEvent::Reserved(e) => set(tx, &e.order_id, "stock", "reserved")?,
            SummaryEvent::Unavailable(e) => set(tx, &e.order_id, "stock", "unavailable")?,
            SummaryEvent::Released(e) => set(tx, &e.order_id, "stock", "released")?,
            SummaryEvent::Charged(e) => set(tx, &e.order_id, "payment", "charged")?,
            SummaryEvent::Declined(e) => set(tx, &e.order_id, "payment", "declined")?,
            SummaryEvent::AwaitingConfirmation(e) => {
                set(tx, &e.order_id, "payment", "awaiting confirmation")?
            }
            SummaryEvent::Refunded(e) => set(tx, &e.order_id, "payment", "refunded")?,
            SummaryEvent::Voided(e) => set(tx, &e.order_id, "payment", "voided")?,
            SummaryEvent::Scheduled(e) => {
                set(tx, &e.order_id, "status", "shipped")?;
                set(tx, &e.order_id, "shipment", &e.carrier)?;
            }
            SummaryEvent::Refused(e) => set(tx, &e.order_id, "shipment", "refused")?,
        }
        Ok(())
    }
}

/// One document per customer: their orders, how many were cancelled, and what they paid.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerOrders {
    /// Orders placed, in order.
    pub orders: Vec<String>,
    /// Orders cancelled.
    pub cancelled: u32,
    /// Cents charged minus cents refunded.
    pub paid: i64,
}

#[projection] // name "customer_orders"; keyed by the events' customer_id
impl CustomerOrders {
    #[on(key = customer_id)]
    fn placed(&mut self, e: &OrderPlaced) {
        self.orders.push(e.order_id.clone());
    }

    #[on(key = customer_id)]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.cancelled += 1;
    }

    #[on(key = customer_id)]
    fn charged(&mut self, e: &PaymentCharged) {
        self.paid += e.amount;
    }

    #[on(key = customer_id)]
    fn refunded(&mut self, e: &PaymentRefunded) {
        self.paid -= e.amount;
    }
}

/// Both projections over `store`.
pub fn projections(store: SqliteStore) -> Projections<SqliteStore> {
    Projections::new(store)
        .with::<CustomerOrders>()
        .with_tables(OrderSummaryTable)
}
