//! The event catalog of a derived domain: a page per aggregate and a Mermaid diagram.

use eventcore::prelude::*;
use eventcore::schema::catalog::{catalog, AggregateInfo, Catalog};
use eventcore::schema::{registered_aggregates, registry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order was placed.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "order")]
pub struct OrderPlaced {
    /// Who ordered.
    pub customer: String,
    /// Line items.
    pub items: Vec<String>,
}

/// An order was shipped.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "order", version = 2)]
pub struct OrderShipped {
    /// Carrier, if known.
    pub carrier: Option<String>,
}

/// The order's events.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum OrderEvent {
    /// Placed.
    Placed(OrderPlaced),
    /// Shipped.
    Shipped(OrderShipped),
}

/// An order.
#[derive(Debug, Default)]
pub struct Order {
    placed: bool,
}

/// Place an order.
pub struct PlaceOrder {
    /// Who orders.
    pub customer: String,
}

/// Ship an order.
pub struct ShipOrder;

/// Order errors.
#[derive(Debug, thiserror::Error)]
#[error("not placed")]
pub struct NotPlaced;

#[aggregate(events = OrderEvent, error = NotPlaced)]
impl Order {
    #[command]
    fn place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, NotPlaced> {
        Ok(vec![OrderPlaced {
            customer: cmd.customer,
            items: vec![],
        }
        .into()])
    }
    #[command]
    fn ship(&self, _: ShipOrder) -> Result<Vec<OrderEvent>, NotPlaced> {
        if !self.placed {
            return Err(NotPlaced);
        }
        Ok(vec![OrderShipped { carrier: None }.into()])
    }
    #[apply]
    fn placed(&mut self, _: &OrderPlaced) {
        self.placed = true;
    }
    #[apply]
    fn shipped(&mut self, _: &OrderShipped) {}
}

#[test]
fn the_aggregate_macro_registers_commands_and_events() {
    let order = registered_aggregates()
        .find(|a| a.aggregate_type == "order")
        .unwrap();
    assert_eq!(order.commands, ["PlaceOrder", "ShipOrder"]);
    assert_eq!(order.rust_type, "catalog::Order");
    assert_eq!(order.event_set, "OrderEvent");
    let events: Vec<_> = order.events.iter().map(|d| (d.event_type, d.version)).collect();
    assert_eq!(events, [("order.placed", 1), ("order.shipped", 2)]);
}

#[test]
fn derived_events_are_in_the_registry_and_it_validates() {
    let registry = registry();
    assert_eq!(registry.event_types(), ["order.placed", "order.shipped"]);
    assert_eq!(
        registry.get("order.placed", 1).unwrap().rust_type,
        "catalog::OrderPlaced"
    );
    // order.shipped v2 with no v1 registered and no upcasters: nothing to reach, nothing missing.
    assert!(registry.validate().is_ok());
}

#[test]
fn a_page_per_aggregate_lists_events_versions_and_fields() {
    let pages = catalog().pages();
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    assert_eq!(page.file_name, "order.md");
    let md = &page.markdown;
    for needle in [
        "# Aggregate `order`",
        "Rust type: `catalog::Order`.",
        "Commands: `PlaceOrder`, `ShipOrder`.",
        "## `order.placed`",
        "### Version 1 (current)",
        "| `customer` | string | yes | Who ordered. |",
        "| `items` | array of string | yes | Line items. |",
        "## `order.shipped`",
        "### Version 2 (current)",
        "| `carrier` | string or null | no | Carrier, if known. |",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
    }
}

#[test]
fn the_diagram_links_commands_aggregates_and_events() {
    let diagram = catalog().mermaid();
    assert_eq!(
        diagram,
        "flowchart LR\n    agg_order{{\"order\"}}\n    cmd_order_PlaceOrder([\"PlaceOrder\"]) --> agg_order\n    \
         cmd_order_ShipOrder([\"ShipOrder\"]) --> agg_order\n    agg_order --> evt_order_placed[\"order.placed v1\"]\n    \
         agg_order --> evt_order_shipped[\"order.shipped v2\"]\n"
    );
    assert!(catalog().index().contains("```mermaid\nflowchart LR"));
}

#[test]
fn upcasters_and_events_without_aggregate_get_their_pages() {
    let mut registry = registry();
    registry.events.push(eventcore::schema::RegistryEntry {
        event_type: "heartbeat".into(),
        version: 1,
        aggregate: None,
        rust_type: "x::Heartbeat".into(),
        schema: serde_json::json!({ "type": "object" }),
        upcasters: vec![],
        kind: eventcore::schema::EventKind::Domain,
    });
    registry.upcasters.push(eventcore::schema::UpcasterEntry {
        event_type: "order.shipped".into(),
        from_version: 1,
        kind: eventcore::schema::UpcasterKind::Raw,
        name: "ship_v1".into(),
        produces: vec![eventcore::schema::EventRef {
            event_type: "order.shipped".into(),
            version: 2,
        }],
    });
    let catalog = Catalog::new(registry, registered_aggregates().map(AggregateInfo::from));
    let pages = catalog.pages();
    let names: Vec<_> = pages.iter().map(|p| p.file_name.as_str()).collect();
    assert_eq!(names, ["events.md", "order.md"]);
    assert!(pages[0].markdown.contains("## `heartbeat`") && pages[0].markdown.contains("No fields."));
    assert!(
        pages[1]
            .markdown
            .contains("## Upcasters\n\n- `order.shipped` v1 -> `order.shipped` v2: Raw upcaster `ship_v1`"),
        "{}",
        pages[1].markdown
    );
    let dir = tempfile::tempdir().unwrap();
    let written = catalog.write_to(dir.path()).unwrap();
    assert_eq!(written.len(), 3);
    assert!(std::fs::read_to_string(dir.path().join("README.md"))
        .unwrap()
        .contains("[`order`](order.md)"));
}
