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

/// What kind of consumer a [`ConsumerRegistration`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A `#[projection]`: builds read-model documents.
    Projection,
    /// An `#[event_handler]`: reacts to events with side effects.
    EventHandler,
    /// A `#[saga]`: a long-running process that sends commands.
    Saga,
}

/// How a consumer's method handles an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerRole {
    /// `#[on]` of a projection or event handler.
    On,
    /// `#[start]` of a saga: creates an instance.
    Start,
    /// `#[handle]` of a saga: a step of a live instance.
    Handle,
    /// `#[end]` of a saga: ends its instance.
    End,
}

/// One event a consumer handles, and how.
#[derive(Debug)]
pub struct HandledEvent {
    /// The event type and version the method takes.
    pub event: crate::event::EventDescriptor,
    /// How it handles it.
    pub role: HandlerRole,
    /// The payload field keying the document or instance (`None`: the aggregate id).
    pub key: Option<&'static str>,
    /// The method's name.
    pub method: &'static str,
}

/// One projection, event handler or saga, registered by its macro: what it handles and sends.
///
/// Used by the registry (its `consumers` section), the registry check (a handled event type that
/// nothing emits) and the [event catalog](super::catalog)'s flow diagram.
#[derive(Debug)]
pub struct ConsumerRegistration {
    /// Its name (`account_summary`, `welcome`, `checkout`).
    pub name: &'static str,
    /// Its version; event handlers have none.
    pub version: Option<u32>,
    /// What it is.
    pub kind: ConsumerKind,
    /// The Rust type's path.
    pub rust_type: &'static str,
    /// The events it handles, in declaration order.
    pub handles: fn() -> Vec<HandledEvent>,
    /// A saga's command type, as written (`ShopCommand`).
    pub commands: Option<&'static str>,
    /// A saga's deadline types, by stored name.
    pub deadlines: &'static [&'static str],
}

inventory::collect!(ConsumerRegistration);

/// Every registered projection, event handler and saga, in no particular order.
pub fn registered_consumers() -> impl Iterator<Item = &'static ConsumerRegistration> {
    inventory::iter::<ConsumerRegistration>.into_iter()
}

/// Finds a handled type's event descriptor without requiring `SingleEvent` of it (autoref
/// specialization), so a type that is no event struct is reported once, by the consumer's impl.
pub struct EventProbe<E: ?Sized>(std::marker::PhantomData<E>);

impl<E: ?Sized> Default for EventProbe<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: ?Sized> EventProbe<E> {
    /// A probe of `E`.
    pub const fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// The probe of an event struct: its descriptor.
pub trait ProbeEvent {
    /// The descriptor.
    fn descriptor(&self) -> Option<crate::event::EventDescriptor>;
}

impl<E: crate::event::SingleEvent> ProbeEvent for &EventProbe<E> {
    fn descriptor(&self) -> Option<crate::event::EventDescriptor> {
        Some(E::DESCRIPTOR)
    }
}

/// The probe of any other type: nothing.
pub trait ProbeAny {
    /// Nothing.
    fn descriptor(&self) -> Option<crate::event::EventDescriptor>;
}

impl<E: ?Sized> ProbeAny for EventProbe<E> {
    fn descriptor(&self) -> Option<crate::event::EventDescriptor> {
        None
    }
}
