//! Link-time registration of event types, filled in by `#[derive(DomainEvent)]`.

/// One event type and version, registered by `#[derive(DomainEvent)]` on a struct.
///
/// Collected with `inventory`: an event type is registered when the crate defining it is
/// linked into the binary, whether or not the code refers to it.
#[derive(Debug)]
pub struct EventRegistration {
    /// Event type name.
    pub event_type: &'static str,
    /// Schema version.
    pub version: u32,
    /// The declared aggregate, if any.
    pub aggregate: Option<&'static str>,
    /// The Rust type's path (`module::Type`).
    pub rust_type: &'static str,
    /// Builds the type's JSON Schema.
    pub schema: fn() -> schemars::Schema,
}

inventory::collect!(EventRegistration);

/// Every registered event type, in no particular order.
pub fn registered_events() -> impl Iterator<Item = &'static EventRegistration> {
    inventory::iter::<EventRegistration>.into_iter()
}

/// One aggregate, registered by `#[aggregate]`: its commands and the events it emits.
///
/// Used by the [event catalog](super::catalog) to draw aggregates, commands and events.
#[derive(Debug)]
pub struct AggregateRegistration {
    /// The aggregate type name.
    pub aggregate_type: &'static str,
    /// The Rust type's path.
    pub rust_type: &'static str,
    /// The Rust names of the commands it handles (`OpenAccount`), in declaration order.
    pub commands: &'static [&'static str],
    /// The Rust path of its event set (`AccountEvent`).
    pub event_set: &'static str,
    /// The events of its set, at their current versions.
    pub events: &'static [crate::event::EventDescriptor],
}

inventory::collect!(AggregateRegistration);

/// Every registered aggregate, in no particular order.
pub fn registered_aggregates() -> impl Iterator<Item = &'static AggregateRegistration> {
    inventory::iter::<AggregateRegistration>.into_iter()
}
