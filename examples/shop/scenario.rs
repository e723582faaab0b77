//! The demo's scenarios, shared by `main.rs` and `tests/example_shop.rs`: the shop's wiring
//! (store, projections, saga runner, dispatcher) and the four orders it checks out.

use std::time::Duration;

use eventcore::prelude::*;
use eventcore::projection::Projections;
use eventcore::runner::{Backoff, RetryPolicy, Running};
use eventcore::saga::{ManualClock, SagaInstance, Sagas};
use tokio::time::Instant;

use crate::checkout::{Checkout, ShopCommand, Stage};
use crate::dispatcher::{Dispatch, Dispatcher};
use crate::inventory::{Inventory, Restock};
use crate::order::{Order, OrderPlaced, PlaceOrder};
use crate::payment::{CONFIRMATION_CARD, DECLINED_CARD, GOOD_CARD};
use crate::projections::{projections, CustomerOrders, OrderSummary, OrderSummaryTable};

/// Any error of the demo, with its causes.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The one product of the shop.
pub const LAMP: &str = "lamp";
/// Lamps on the shelf when the shop opens.
pub const LAMPS_IN_STOCK: u32 = 10;
/// How long a checkout may take (beyond its payment window, on real time) before the demo
/// gives up on it.
const PATIENCE: Duration = Duration::from_secs(20);

/// The time the saga runner's deadlines fall due by.
#[derive(Clone)]
#[allow(dead_code)] // the example runs on `Real`, tests/example_shop.rs on `Manual`
pub enum Time {
    /// The system clock: a payment window takes as long as it says.
    Real,
    /// A clock moved by hand: once a checkout only waits for its payment window, the window
    /// passes at once.
    Manual(ManualClock),
}

/// An order of the demo and what it shows.
pub struct Scenario {
    /// What it shows.
    pub title: &'static str,
    /// The order placed.
    pub order: OrderPlaced,
}

/// The four orders: a happy one, a declined card, an address no carrier serves, and a payment
/// that is never confirmed within `payment_window`.
pub fn scenarios(payment_window: Duration) -> Vec<Scenario> {
    let window = u64::try_from(payment_window.as_millis()).unwrap_or(u64::MAX);
    let order = |order_id: &str, customer_id: &str, quantity: u32, card: &str, country: &str| OrderPlaced {
        order_id: order_id.into(),
        customer_id: customer_id.into(),
        sku: LAMP.into(),
        quantity,
        amount: i64::from(quantity) * 4_900,
        card: card.into(),
        country: country.into(),
        payment_window_ms: window,
    };
    vec![
        Scenario {
            title: "a happy order (its first charge reply is lost, and the charge re-sent)",
            order: order("A-1001", "ada", 2, GOOD_CARD, "DE"),
        },
        Scenario {
            title: "a declined card: stock released, order cancelled",
            order: order("A-1002", "bob", 1, DECLINED_CARD, "FR"),
        },
        Scenario {
            title: "no carrier ships there: refund, stock released, order cancelled",
            order: order("A-1003", "cy", 3, GOOD_CARD, "AQ"),
        },
        Scenario {
            title: "a payment never confirmed: the deadline voids it, releases stock, cancels",
            order: order("A-1004", "ada", 1, CONFIRMATION_CARD, "NL"),
        },
    ]
}

/// What the demo ends with.
#[derive(Debug)]
pub struct Report {
    /// Every checkout saga instance, by order id.
    pub checkouts: Vec<SagaInstance<Checkout>>,
    /// The rows of the `order_summary` table.
    pub summaries: Vec<OrderSummary>,
    /// The per-customer documents, by customer id.
    pub customers: Vec<(String, CustomerOrders)>,
    /// Every command dispatched, in order.
    pub dispatches: Vec<Dispatch>,
    /// The lamps' stock.
    pub lamps: Inventory,
}

/// The running shop: store, projections, checkout saga and its dispatcher.
pub struct Shop {
    store: SqliteStore,
    time: Time,
    dispatcher: Dispatcher,
    projections: Projections<SqliteStore>,
    sagas: Sagas<SqliteStore>,
    running_projections: Running<SqliteStore>,
    running_sagas: Running<SqliteStore>,
}

impl Shop {
    /// Starts the projections and the checkout saga over `store`.
    pub fn open(store: SqliteStore, time: Time) -> Self {
        let dispatcher = Dispatcher::new(&store);
        let projections = projections(store.clone());
        let mut sagas = Sagas::new(store.clone()).dispatch_retry(RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1)),
        });
        if let Time::Manual(clock) = &time {
            sagas = sagas.clock(clock.clone());
        }
        let routes = dispatcher.clone();
        let sagas = sagas.with::<Checkout, _>(move |command: ShopCommand, context: CommandContext| {
            let routes = routes.clone();
            async move { routes.dispatch(command, context).await }
        });
        Self {
            running_projections: projections.start(),
            running_sagas: sagas.start(),
            store,
            time,
            dispatcher,
            projections,
            sagas,
        }
    }

    /// The dispatcher, to simulate a flaky network.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Puts `quantity` lamps on the shelf.
    pub async fn restock(&self, quantity: u32) -> Result<(), Error> {
        Repository::<Inventory, _>::new(self.store.clone())
            .execute(
                LAMP,
                Restock {
                    sku: LAMP.into(),
                    quantity,
                },
            )
            .await?;
        Ok(())
    }

    /// Places `order` and waits until its checkout ended and every command it sent went out.
    pub async fn checkout(&self, order: OrderPlaced) -> Result<SagaInstance<Checkout>, Error> {
        let order_id = order.order_id.clone();
        let window = Duration::from_millis(order.payment_window_ms);
        Repository::<Order, _>::new(self.store.clone())
            .execute(&order_id, PlaceOrder(order))
            .await?;
        let give_up = Instant::now()
            + match self.time {
                Time::Real => PATIENCE + window,
                Time::Manual(_) => PATIENCE,
            };
        let mut clock_moved = false;
        loop {
            if let Some(dead) = self.sagas.dead_letters::<Checkout>().await?.first() {
                return Err(format!(
                    "a command of checkout {} failed: {}",
                    dead.command.instance, dead.error
                )
                .into());
            }
            if let Some(checkout) = self.sagas.instance::<Checkout>(&order_id).await? {
                let sending = self
                    .sagas
                    .pending_commands::<Checkout>()
                    .await?
                    .iter()
                    .any(|c| c.instance == order_id);
                if checkout.ended && !sending {
                    return Ok(checkout);
                }
                if let (Time::Manual(clock), Stage::AwaitingConfirmation) =
                    (&self.time, &checkout.state.stage)
                {
                    if !clock_moved {
                        clock.advance(window);
                        clock_moved = true;
                    }
                }
            }
            if Instant::now() > give_up {
                return Err(format!("the checkout of {order_id} did not finish in time").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The saga instances, read models and stock once the projections caught up.
    pub async fn report(&self) -> Result<Report, Error> {
        self.running_projections.wait_caught_up(PATIENCE).await?;
        let mut customers = Vec::new();
        for customer in ["ada", "bob", "cy"] {
            if let Some(document) = self.projections.get::<CustomerOrders>(customer).await? {
                customers.push((customer.to_owned(), document));
            }
        }
        Ok(Report {
            checkouts: self.sagas.instances::<Checkout>().await?,
            summaries: OrderSummaryTable::rows(&self.store).await?,
            customers,
            dispatches: self.dispatcher.log(),
            lamps: Repository::<Inventory, _>::new(self.store.clone())
                .load(LAMP)
                .await?
                .state()
                .clone(),
        })
    }

    /// Stops the runners.
    pub async fn close(self) -> Result<(), Error> {
        self.running_sagas.stop().await?;
        self.running_projections.stop().await?;
        Ok(())
    }
}

/// Runs the demo on `store`: opens the shop, stocks it, checks out every scenario (calling
/// `finished` after each), and reports.
pub async fn run(
    store: SqliteStore,
    time: Time,
    payment_window: Duration,
    mut finished: impl FnMut(&Scenario, &SagaInstance<Checkout>),
) -> Result<Report, Error> {
    let shop = Shop::open(store, time);
    let outcome = async {
        shop.restock(LAMPS_IN_STOCK).await?;
        let all = scenarios(payment_window);
        if let Some(first) = all.first() {
            shop.dispatcher().lose_first_charge_reply(&first.order.order_id);
        }
        for scenario in &all {
            let checkout = shop.checkout(scenario.order.clone()).await?;
            finished(scenario, &checkout);
        }
        shop.report().await
    }
    .await;
    let closed = shop.close().await;
    let report = outcome?;
    closed?;
    Ok(report)
}
