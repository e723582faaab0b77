//! What the demo prints.

use eventcore::saga::SagaInstance;

use crate::checkout::{Checkout, ShopCommand};
use crate::scenario::{Report, Scenario};

/// One line per finished checkout.
pub fn checkout_finished(scenario: &Scenario, checkout: &SagaInstance<Checkout>) {
    println!("{}: {}", scenario.order.order_id, scenario.title);
    println!("        -> {}", checkout.state.stage);
}

/// The commands, the saga instances, the read models and the stock.
pub fn report(report: &Report) {
    println!("\n== commands the checkout sent: idempotency key, command, what it appended");
    for dispatch in &report.dispatches {
        println!(
            "{:<26} {:<28} {}",
            dispatch.idempotency_key,
            command(&dispatch.command),
            dispatch.outcome
        );
    }

    println!("\n== checkout saga instances");
    println!(
        "{:<8} {:<7} {:>3}  {:<26} stage",
        "order", "status", "v", "steps done"
    );
    for checkout in &report.checkouts {
        let done: Vec<String> = checkout.state.done.iter().map(|s| format!("{s:?}")).collect();
        println!(
            "{:<8} {:<7} {:>3}  {:<26} {}",
            checkout.id,
            if checkout.ended { "ended" } else { "active" },
            checkout.version,
            done.join(", "),
            checkout.state.stage
        );
    }

    println!("\n== SELECT * FROM order_summary ORDER BY order_id");
    println!(
        "{:<8} {:<6} {:>7}  {:<9} {:<11} {:<22} {:<9} reason",
        "order", "buyer", "amount", "status", "stock", "payment", "shipment"
    );
    for row in &report.summaries {
        println!(
            "{:<8} {:<6} {:>7.2}  {:<9} {:<11} {:<22} {:<9} {}",
            row.order_id,
            row.customer_id,
            row.amount as f64 / 100.0,
            row.status,
            row.stock,
            row.payment,
            row.shipment,
            row.reason
        );
    }

    println!("\n== customer documents (projection `customer_orders`)");
    for (customer, orders) in &report.customers {
        println!(
            "{customer:<4} orders {:<18} cancelled {}  paid {:.2}",
            orders.orders.join(", "),
            orders.cancelled,
            orders.paid as f64 / 100.0
        );
    }

    println!(
        "\n== stock: {} lamps available, reserved {:?}",
        report.lamps.available, report.lamps.reserved
    );
}

/// A command in a few words.
fn command(command: &ShopCommand) -> String {
    match command {
        ShopCommand::ReserveStock {
            order_id,
            sku,
            quantity,
        } => format!("reserve {quantity} × {sku} for {order_id}"),
        ShopCommand::Charge { order_id, amount, .. } => {
            format!("charge {:.2} for {order_id}", *amount as f64 / 100.0)
        }
        ShopCommand::ScheduleShipment { order_id, country } => format!("ship {order_id} to {country}"),
        ShopCommand::Refund { order_id } => format!("refund {order_id}"),
        ShopCommand::ReleaseStock { order_id, sku } => format!("release {sku} of {order_id}"),
        ShopCommand::CancelOrder { order_id, .. } => format!("cancel {order_id}"),
    }
}
