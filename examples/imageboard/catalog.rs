//! The imageboard's part of the event catalog: its aggregates, events, read models and consumers,
//! as `cargo run --example imageboard -- catalog` prints the flow diagram for the README.

use eventcore::schema::catalog::{AggregateInfo, Catalog};
use eventcore::schema::{registered_aggregates, registry};

/// The imageboard's aggregates.
pub const AGGREGATES: [&str; 3] = ["moderation", "post", "thread"];
/// Its projections and consumer groups.
pub const CONSUMERS: [&str; 5] = [
    "board_page",
    "cache_invalidator",
    "moderation_scorer",
    "search_indexer",
    "thread_page",
];

/// Whether `event_type` is one of the imageboard's (domain or published).
fn ours(event_type: &str) -> bool {
    let prefix = event_type.split('.').next().unwrap_or_default();
    AGGREGATES.contains(&prefix) || prefix == "imageboard"
}

/// The catalog of the imageboard alone, whatever else is linked into the binary.
pub fn catalog() -> Catalog {
    let mut registry = registry();
    registry.events.retain(|e| ours(&e.event_type));
    registry.upcasters.retain(|u| ours(&u.event_type));
    registry.retired.retain(|r| ours(&r.event_type));
    registry
        .consumers
        .retain(|c| CONSUMERS.contains(&c.name.as_str()));
    let aggregates = registered_aggregates()
        .map(AggregateInfo::from)
        .filter(|a| AGGREGATES.contains(&a.aggregate_type.as_str()));
    Catalog::new(registry, aggregates).with_translations(&crate::published::translation())
}

/// The flow diagram as a Markdown block: aggregate → event → projection / handler.
pub fn mermaid_block() -> String {
    format!("```mermaid\n{}```", catalog().mermaid())
}
