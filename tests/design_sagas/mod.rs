//! The Sagas block of DESIGN.md, verbatim, and a small shop (order, payment and shipment
//! aggregates) that its commands are routed to in the end-to-end tests.
#![allow(dead_code)] // each test binary uses a different part

use eventcore::prelude::*;
use eventcore::saga::{SagaContext, Sagas};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "order")]
pub struct OrderPlaced {
    pub order_id: String,
    pub amount: i64,
}
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "payment")]
pub struct PaymentCharged {
    pub order_id: String,
}
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "payment")]
pub struct PaymentFailed {
    pub order_id: String,
}
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "shipment")]
pub struct OrderShipped {
    pub order_id: String,
}

/// What the saga asks other aggregates to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShopCommand {
    Charge { order_id: String, amount: i64 },
    Ship { order_id: String },
    Cancel { order_id: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentTimedOut;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    pub amount: i64,
    pub paid: bool,
}

#[saga(commands = ShopCommand)] // name "checkout"; one instance per key value
impl Checkout {
    #[start(key = order_id)]
    fn placed(&mut self, e: &OrderPlaced, cx: &mut SagaContext<Self>) {
        self.amount = e.amount;
        cx.send(ShopCommand::Charge {
            order_id: e.order_id.clone(),
            amount: e.amount,
        });
        cx.schedule(Duration::from_secs(600), PaymentTimedOut);
    }
    #[handle(key = order_id)]
    fn charged(&mut self, e: &PaymentCharged, cx: &mut SagaContext<Self>) {
        self.paid = true;
        cx.cancel::<PaymentTimedOut>();
        cx.send(ShopCommand::Ship {
            order_id: e.order_id.clone(),
        });
    }
    #[end(key = order_id)]
    fn shipped(&mut self, _: &OrderShipped, _: &mut SagaContext<Self>) {}
    #[end(key = order_id)]
    fn failed(&mut self, e: &PaymentFailed, cx: &mut SagaContext<Self>) {
        cx.send(ShopCommand::Cancel {
            order_id: e.order_id.clone(),
            reason: "payment failed".into(),
        });
    }
    #[deadline]
    fn timed_out(&mut self, _: &PaymentTimedOut, cx: &mut SagaContext<Self>) {
        let order_id = cx.id().to_owned();
        cx.send(ShopCommand::Cancel {
            order_id,
            reason: "payment timed out".into(),
        });
        cx.end();
    }
}

/// The Sagas block of DESIGN.md, verbatim but for where the store comes from and the checks
/// after it.
pub async fn sagas_block<S: eventcore::runner::RunnerStore>(
    store: S,
) -> Result<(), Box<dyn std::error::Error>> {
    let sagas = Sagas::new(store.clone()).with::<Checkout, _>(
        |command: ShopCommand, context: CommandContext| async move {
            // route each command to its aggregate, e.g. payments.execute_with(&order_id, Charge { .. }, context)
            let _ = (command, context);
            Ok::<(), std::io::Error>(())
        },
    );
    let running = sagas.start(); // fed from the store's log, like projections

    let orders = Repository::<Order, _>::new(store.clone());
    orders
        .execute(
            "o-1",
            PlaceOrder {
                order_id: "o-1".into(),
                amount: 30,
            },
        )
        .await?;
    running.wait_caught_up(Duration::from_secs(5)).await?;
    let instance = sagas.instance::<Checkout>("o-1").await?.expect("started");
    assert_eq!(
        instance.state,
        Checkout {
            amount: 30,
            paid: false
        }
    );
    assert_eq!(instance.deadlines.len(), 1);
    assert_eq!(running.status()[0].name, "checkout");
    running.stop().await?;
    Ok(())
}

// The shop behind the dispatcher in end-to-end tests.

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "order")]
pub struct OrderCancelled {
    pub order_id: String,
    pub reason: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum OrderEvent {
    Placed(OrderPlaced),
    Cancelled(OrderCancelled),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub placed: bool,
    pub cancelled: Option<String>,
}

pub struct PlaceOrder {
    pub order_id: String,
    pub amount: i64,
}
pub struct CancelOrder {
    pub order_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShopError {
    #[error("already done")]
    AlreadyDone,
}

#[aggregate(events = OrderEvent, error = ShopError)]
impl Order {
    #[command]
    fn place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, ShopError> {
        if self.placed {
            return Err(ShopError::AlreadyDone);
        }
        Ok(vec![OrderPlaced {
            order_id: cmd.order_id,
            amount: cmd.amount,
        }
        .into()])
    }
    #[command]
    fn cancel(&self, cmd: CancelOrder) -> Result<Vec<OrderEvent>, ShopError> {
        if self.cancelled.is_some() {
            return Err(ShopError::AlreadyDone);
        }
        Ok(vec![OrderCancelled {
            order_id: cmd.order_id,
            reason: cmd.reason,
        }
        .into()])
    }
    #[apply]
    fn placed(&mut self, _: &OrderPlaced) {
        self.placed = true;
    }
    #[apply]
    fn cancelled(&mut self, e: &OrderCancelled) {
        self.cancelled = Some(e.reason.clone());
    }
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    Charged(PaymentCharged),
    Failed(PaymentFailed),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Payment {
    pub settled: bool,
}

pub struct ChargePayment {
    pub order_id: String,
    pub amount: i64,
}

/// Payments above this amount fail.
pub const CARD_LIMIT: i64 = 100;

#[aggregate(events = PaymentEvent, error = ShopError)]
impl Payment {
    #[command]
    fn charge(&self, cmd: ChargePayment) -> Result<Vec<PaymentEvent>, ShopError> {
        // Like a card provider, charges every time it is asked: only the idempotency key of a
        // re-sent command keeps it from charging twice.
        Ok(vec![if cmd.amount > CARD_LIMIT {
            PaymentFailed {
                order_id: cmd.order_id,
            }
            .into()
        } else {
            PaymentCharged {
                order_id: cmd.order_id,
            }
            .into()
        }])
    }
    #[apply]
    fn charged(&mut self, _: &PaymentCharged) {
        self.settled = true;
    }
    #[apply]
    fn failed(&mut self, _: &PaymentFailed) {
        self.settled = true;
    }
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum ShipmentEvent {
    Shipped(OrderShipped),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Shipment {
    pub shipped: bool,
}

pub struct ShipOrder {
    pub order_id: String,
}

#[aggregate(events = ShipmentEvent, error = ShopError)]
impl Shipment {
    #[command]
    fn ship(&self, cmd: ShipOrder) -> Result<Vec<ShipmentEvent>, ShopError> {
        if self.shipped {
            return Err(ShopError::AlreadyDone);
        }
        Ok(vec![OrderShipped {
            order_id: cmd.order_id,
        }
        .into()])
    }
    #[apply]
    fn shipped(&mut self, _: &OrderShipped) {
        self.shipped = true;
    }
}

/// A dispatch that failed (the store, a conflict): retried by the saga runner.
#[derive(Debug, thiserror::Error)]
#[error("dispatch failed: {0}")]
pub struct DispatchFailed(pub String);

/// Routes shop commands to the aggregates, with the saga's context; records what it saw.
#[derive(Clone)]
pub struct Shop<S> {
    pub store: S,
    /// Charges of these amounts are never sent (a payment provider that never answers).
    pub silent_amount: i64,
    /// Every dispatch: the command and its context.
    pub seen: Arc<Mutex<Vec<(ShopCommand, CommandContext)>>>,
    /// Dispatches to fail (after executing the command: a lost reply) before succeeding.
    pub lose_replies: Arc<AtomicUsize>,
}

impl<S: EventStore> Shop<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            silent_amount: 999,
            seen: Arc::default(),
            lose_replies: Arc::default(),
        }
    }

    pub async fn dispatch(
        &self,
        command: ShopCommand,
        context: CommandContext,
    ) -> Result<(), DispatchFailed> {
        self.seen.lock().unwrap().push((command.clone(), context.clone()));
        let outcome = match command {
            ShopCommand::Charge { order_id, amount } => {
                if amount == self.silent_amount {
                    return Ok(());
                }
                let payments = Repository::<Payment, _>::new(self.store.clone());
                payments
                    .execute_with(
                        &order_id,
                        ChargePayment {
                            order_id: order_id.clone(),
                            amount,
                        },
                        &context,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            ShopCommand::Ship { order_id } => {
                let shipments = Repository::<Shipment, _>::new(self.store.clone());
                shipments
                    .execute_with(
                        &order_id,
                        ShipOrder {
                            order_id: order_id.clone(),
                        },
                        &context,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            ShopCommand::Cancel { order_id, reason } => {
                let orders = Repository::<Order, _>::new(self.store.clone());
                orders
                    .execute_with(
                        &order_id,
                        CancelOrder {
                            order_id: order_id.clone(),
                            reason,
                        },
                        &context,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
        // A refused command is a business outcome (the aggregate already moved on), not a retry.
        if let Err(error) = outcome {
            if !error.contains("already done") {
                return Err(DispatchFailed(error));
            }
        }
        if self
            .lose_replies
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DispatchFailed("the reply was lost".into()));
        }
        Ok(())
    }

    /// The dispatcher for `Sagas::with`.
    pub fn dispatcher(
        &self,
    ) -> impl Fn(
        ShopCommand,
        CommandContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DispatchFailed>> + Send>>
           + Send
           + Sync
           + 'static
    where
        S: 'static,
    {
        let shop = self.clone();
        move |command, context| {
            let shop = shop.clone();
            Box::pin(async move { shop.dispatch(command, context).await })
        }
    }
}
