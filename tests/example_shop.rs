//! The shop example's scenarios (examples/shop), run on a manual clock, and their outcomes:
//! what shipped, what was compensated and in which order, the summary table, the customer
//! documents, and that every command was applied once. Also fixture tests of its saga and
//! aggregates.

#[path = "../examples/shop/checkout.rs"]
mod checkout;
#[path = "../examples/shop/dispatcher.rs"]
mod dispatcher;
#[path = "../examples/shop/inventory.rs"]
mod inventory;
#[path = "../examples/shop/order.rs"]
mod order;
#[path = "../examples/shop/payment.rs"]
mod payment;
#[path = "../examples/shop/projections.rs"]
mod projections;
#[path = "../examples/shop/scenario.rs"]
mod scenario;
#[path = "../examples/shop/shipment.rs"]
mod shipment;

use std::collections::BTreeMap;
use std::time::Duration;

use eventcore::saga::ManualClock;
use eventcore::{EventStore, SqliteStore};
use eventcore_testing::{AggregateFixture, SagaFixture};

use checkout::{Checkout, PaymentOverdue, ShopCommand, Stage, Step};
use inventory::{
    Inventory, Release, Reserve, StockReleased, StockReserved, StockRestocked, StockUnavailable,
};
use order::OrderPlaced;
use payment::{
    Charge, Payment, PaymentAwaitingConfirmation, PaymentCharged, PaymentRefunded, PaymentVoided, Refund,
    GOOD_CARD,
};
use projections::{CustomerOrders, OrderSummary};
use scenario::{Report, Time};
use shipment::{ShipmentRefused, ShipmentScheduled};

/// A realistic payment window: the manual clock makes it pass at once.
const WINDOW: Duration = Duration::from_secs(15 * 60);

async fn run_demo() -> (Report, SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("shop.db"))
        .await
        .expect("store");
    let mut finished = Vec::new();
    let report = scenario::run(
        store.clone(),
        Time::Manual(ManualClock::default()),
        WINDOW,
        |s, c| {
            finished.push(format!("{} ({}): {}", s.order.order_id, s.title, c.state.stage));
        },
    )
    .await
    .expect("the demo runs");
    assert_eq!(finished.len(), 4, "every scenario finished: {finished:?}");
    (report, store, dir)
}

/// A row of `order_summary`: order, customer, amount, then status, stock, payment, shipment
/// and reason.
fn row(order_id: &str, customer: &str, amount: i64, text: [&str; 5]) -> OrderSummary {
    let [status, stock, payment, shipment, reason] = text.map(str::to_owned);
    OrderSummary {
        order_id: order_id.into(),
        customer_id: customer.into(),
        amount,
        status,
        stock,
        payment,
        shipment,
        reason,
    }
}

/// The commands dispatched for `order_id`, first dispatch of each key only.
fn commands_of(report: &Report, order_id: &str) -> Vec<ShopCommand> {
    let mut seen = std::collections::HashSet::new();
    report
        .dispatches
        .iter()
        .filter(|d| d.idempotency_key.contains(&format!("/{order_id}/")))
        .filter(|d| seen.insert(d.idempotency_key.clone()))
        .map(|d| d.command.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_checkouts_end_as_designed() {
    let (report, store, _dir) = run_demo().await;

    let stages: BTreeMap<_, _> = report
        .checkouts
        .iter()
        .map(|c| (c.id.as_str(), (c.ended, c.state.stage.clone())))
        .collect();
    let cancelled = |reason: &str| (true, Stage::Cancelled(reason.into()));
    assert_eq!(
        stages,
        BTreeMap::from([
            ("A-1001", (true, Stage::Shipped)),
            ("A-1002", cancelled("payment failed: card declined")),
            ("A-1003", cancelled("shipping failed: no carrier ships to AQ")),
            ("A-1004", cancelled("payment timed out")),
        ])
    );

    // The order summary table, as queried with SQL.
    assert_eq!(
        report.summaries,
        vec![
            row(
                "A-1001",
                "ada",
                9_800,
                ["shipped", "reserved", "charged", "ParcelCo", ""]
            ),
            row(
                "A-1002",
                "bob",
                4_900,
                [
                    "cancelled",
                    "released",
                    "declined",
                    "",
                    "payment failed: card declined"
                ]
            ),
            row(
                "A-1003",
                "cy",
                14_700,
                [
                    "cancelled",
                    "released",
                    "refunded",
                    "refused",
                    "shipping failed: no carrier ships to AQ"
                ]
            ),
            row(
                "A-1004",
                "ada",
                4_900,
                ["cancelled", "released", "voided", "", "payment timed out"]
            ),
        ]
    );

    // Compensation runs in reverse order: refund, release stock, cancel.
    let id = |s: &str| s.to_owned();
    assert_eq!(
        commands_of(&report, "A-1003")[3..],
        [
            ShopCommand::Refund {
                order_id: id("A-1003")
            },
            ShopCommand::ReleaseStock {
                order_id: id("A-1003"),
                sku: id("lamp")
            },
            ShopCommand::CancelOrder {
                order_id: id("A-1003"),
                reason: id("shipping failed: no carrier ships to AQ")
            },
        ]
    );
    assert_eq!(
        commands_of(&report, "A-1002")[2..],
        [
            ShopCommand::ReleaseStock {
                order_id: id("A-1002"),
                sku: id("lamp")
            },
            ShopCommand::CancelOrder {
                order_id: id("A-1002"),
                reason: id("payment failed: card declined")
            },
        ]
    );
    // The overdue payment is voided (it was never charged), then the stock released.
    assert_eq!(
        commands_of(&report, "A-1004")[2..],
        [
            ShopCommand::Refund {
                order_id: id("A-1004")
            },
            ShopCommand::ReleaseStock {
                order_id: id("A-1004"),
                sku: id("lamp")
            },
            ShopCommand::CancelOrder {
                order_id: id("A-1004"),
                reason: id("payment timed out")
            },
        ]
    );

    // Only the shipped order still holds stock.
    assert_eq!(report.lamps.available, scenario::LAMPS_IN_STOCK - 2);
    assert_eq!(report.lamps.reserved, BTreeMap::from([(id("A-1001"), 2)]));

    // The per-customer documents.
    let customers: BTreeMap<_, _> = report.customers.iter().cloned().collect();
    assert_eq!(
        customers,
        BTreeMap::from([
            (
                id("ada"),
                CustomerOrders {
                    orders: vec![id("A-1001"), id("A-1004")],
                    cancelled: 1,
                    paid: 9_800
                }
            ),
            (
                id("bob"),
                CustomerOrders {
                    orders: vec![id("A-1002")],
                    cancelled: 1,
                    paid: 0
                }
            ),
            (
                id("cy"),
                CustomerOrders {
                    orders: vec![id("A-1003")],
                    cancelled: 1,
                    paid: 0
                }
            ),
        ])
    );

    // Each command was applied once: the lost charge reply made the runner send the charge
    // again with the same key, and the payment still holds one charge.
    let charges: Vec<_> = report
        .dispatches
        .iter()
        .filter(|d| matches!(&d.command, ShopCommand::Charge { order_id, .. } if order_id == "A-1001"))
        .collect();
    assert_eq!(charges.len(), 2, "the charge was re-sent: {charges:?}");
    assert_eq!(charges[0].idempotency_key, charges[1].idempotency_key);
    let mut types = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 256).await.expect("read the log");
        let Some(last) = page.last() else { break };
        from = last.global_position + 1;
        types.extend(page.iter().map(|e| (e.stream_id.clone(), e.event_type.clone())));
    }
    let a1001_payment: Vec<_> = types
        .iter()
        .filter(|(stream, _)| stream.contains("payment") && stream.contains("A-1001"))
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(a1001_payment, ["payment.charged"]);
    // 1 restock, then 4 + 5 + 7 + 6 events for the four orders: nothing appended twice.
    assert_eq!(types.len(), 23, "{types:#?}");
}

fn placed() -> OrderPlaced {
    OrderPlaced {
        order_id: "o-1".into(),
        customer_id: "ada".into(),
        sku: "lamp".into(),
        quantity: 1,
        amount: 4_900,
        card: GOOD_CARD.into(),
        country: "DE".into(),
        payment_window_ms: 60_000,
    }
}

fn reserved() -> StockReserved {
    StockReserved {
        sku: "lamp".into(),
        order_id: "o-1".into(),
        quantity: 1,
    }
}

#[test]
fn placing_an_order_reserves_stock_and_sets_the_payment_deadline() {
    SagaFixture::<Checkout>::new()
        .when(placed())
        .then_commands(vec![ShopCommand::ReserveStock {
            order_id: "o-1".into(),
            sku: "lamp".into(),
            quantity: 1,
        }])
        .then_scheduled(Duration::from_secs(60), PaymentOverdue)
        .then_active();
}

#[test]
fn a_charge_cancels_the_deadline_and_a_booked_carrier_ends_the_checkout() {
    SagaFixture::<Checkout>::new()
        .given(placed())
        .given(reserved())
        .when(PaymentCharged {
            order_id: "o-1".into(),
            customer_id: "ada".into(),
            amount: 4_900,
        })
        .then_commands(vec![ShopCommand::ScheduleShipment {
            order_id: "o-1".into(),
            country: "DE".into(),
        }])
        .then_state(|s| s.done == [Step::ReserveStock, Step::Charge]);
    SagaFixture::<Checkout>::new()
        .given(placed())
        .given(reserved())
        .given(PaymentCharged {
            order_id: "o-1".into(),
            customer_id: "ada".into(),
            amount: 4_900,
        })
        .when(ShipmentScheduled {
            order_id: "o-1".into(),
            carrier: "ParcelCo".into(),
        })
        .then_no_commands()
        .then_ended();
}

#[test]
fn failures_undo_the_steps_done_in_reverse_order() {
    let cancel = |reason: &str| ShopCommand::CancelOrder {
        order_id: "o-1".into(),
        reason: reason.into(),
    };
    let release = ShopCommand::ReleaseStock {
        order_id: "o-1".into(),
        sku: "lamp".into(),
    };
    let refund = ShopCommand::Refund {
        order_id: "o-1".into(),
    };
    SagaFixture::<Checkout>::new()
        .given(placed())
        .when(StockUnavailable {
            sku: "lamp".into(),
            order_id: "o-1".into(),
            requested: 1,
            available: 0,
        })
        .then_commands(vec![cancel("out of stock")])
        .then_ended();
    SagaFixture::<Checkout>::new()
        .given(placed())
        .given(reserved())
        .given(PaymentCharged {
            order_id: "o-1".into(),
            customer_id: "ada".into(),
            amount: 4_900,
        })
        .when(ShipmentRefused {
            order_id: "o-1".into(),
            reason: "no carrier".into(),
        })
        .then_commands(vec![
            refund.clone(),
            release.clone(),
            cancel("shipping failed: no carrier"),
        ])
        .then_ended();
    // The deadline also undoes the unanswered charge: voided, as it was never confirmed.
    SagaFixture::<Checkout>::new()
        .given(placed())
        .given(reserved())
        .given(PaymentAwaitingConfirmation {
            order_id: "o-1".into(),
        })
        .when_time_elapses(Duration::from_secs(61))
        .then_commands(vec![refund, release, cancel("payment timed out")])
        .then_state(|s| s.done == [Step::ReserveStock] && s.waiting_for.is_none())
        .then_ended();
}

#[test]
fn a_payment_gives_back_what_it_holds_and_nothing_else() {
    let charged = || PaymentCharged {
        order_id: "o-1".into(),
        customer_id: "ada".into(),
        amount: 4_900,
    };
    let refund = || Refund {
        order_id: "o-1".into(),
    };
    AggregateFixture::<Payment>::new()
        .given(vec![charged().into()])
        .when(refund())
        .then_events(vec![PaymentRefunded {
            order_id: "o-1".into(),
            customer_id: "ada".into(),
            amount: 4_900,
        }
        .into()]);
    AggregateFixture::<Payment>::new()
        .given(vec![PaymentAwaitingConfirmation {
            order_id: "o-1".into(),
        }
        .into()])
        .when(refund())
        .then_events(vec![PaymentVoided {
            order_id: "o-1".into(),
        }
        .into()]);
    AggregateFixture::<Payment>::new()
        .given_nothing()
        .when(refund())
        .then_no_events();
    // Like a card provider, a payment charges every request: only idempotency keys stop a
    // re-sent one.
    AggregateFixture::<Payment>::new()
        .given(vec![charged().into()])
        .when(Charge {
            order_id: "o-1".into(),
            customer_id: "ada".into(),
            amount: 4_900,
            card: GOOD_CARD.into(),
        })
        .then_events(vec![charged().into()]);
}

#[test]
fn stock_is_reserved_once_per_order_and_released_only_when_reserved() {
    let reserve = |quantity| Reserve {
        sku: "lamp".into(),
        order_id: "o-1".into(),
        quantity,
    };
    let restocked = || {
        StockRestocked {
            sku: "lamp".into(),
            quantity: 2,
        }
        .into()
    };
    AggregateFixture::<Inventory>::new()
        .given(vec![restocked()])
        .when(reserve(3))
        .then_events(vec![StockUnavailable {
            sku: "lamp".into(),
            order_id: "o-1".into(),
            requested: 3,
            available: 2,
        }
        .into()]);
    AggregateFixture::<Inventory>::new()
        .given(vec![restocked(), reserved().into()])
        .when(reserve(1))
        .then_no_events();
    AggregateFixture::<Inventory>::new()
        .given(vec![restocked(), reserved().into()])
        .when(Release {
            sku: "lamp".into(),
            order_id: "o-1".into(),
        })
        .then_events(vec![StockReleased {
            sku: "lamp".into(),
            order_id: "o-1".into(),
            quantity: 1,
        }
        .into()])
        .then_state(|s| s.available == 2 && s.reserved.is_empty());
    AggregateFixture::<Inventory>::new()
        .given(vec![restocked()])
        .when(Release {
            sku: "lamp".into(),
            order_id: "o-1".into(),
        })
        .then_no_events();
}

#[test]
fn the_catalog_draws_the_checkout_loop_from_aggregates_through_the_saga_back_to_aggregates() {
    let catalog = eventcore::schema::catalog::catalog().with_dispatch("checkout", dispatcher::TARGETS);
    let diagram = catalog.mermaid();
    for line in [
        // aggregate → event
        "agg_order --> evt_order_placed[",
        "agg_payment --> evt_payment_charged[",
        // event → saga, by role
        "evt_order_placed -->|start| saga_checkout",
        "evt_payment_charged -->|handle| saga_checkout",
        // event → projections
        "evt_order_placed --> projection_customer_orders",
        // saga → command → aggregate
        "saga_checkout --> sends_checkout_ShopCommand([\"ShopCommand\"])",
        "sends_checkout_ShopCommand -.-> agg_payment",
        "sends_checkout_ShopCommand -.-> agg_inventory",
        "sends_checkout_ShopCommand -.-> agg_shipment",
        "sends_checkout_ShopCommand -.-> agg_order",
    ] {
        assert!(diagram.contains(line), "{line} missing from\n{diagram}");
    }
}
