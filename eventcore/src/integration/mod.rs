//! Integration events: the published language between services.
//!
//! Domain events stay inside a service; what other services may rely on is declared as
//! integration events, with `#[derive(IntegrationEvent)]` and `#[integration(name = "...",
//! version = N)]`: named, versioned, with a JSON Schema in the [registry](crate::schema) (entries
//! of kind [`EventKind::Integration`](crate::schema::EventKind)), and never stored in a stream.
//!
//! - An event-sourced service translates domain events on the way out with [`Translate`]
//!   (`From<&Envelope<D>>` written by you); the relay publishes what it returns.
//! - A service that is not event-sourced writes them into the [outbox](crate::outbox) in its own
//!   database transaction.
//! - On the wire a message is a CloudEvent ([`IntegrationMessage::to_cloudevent`]); a consumer
//!   reads it back with [`IntegrationMessage::from_cloudevent`] and decodes it with
//!   [`IntegrationMessage::decode`] (upcasting older versions with the registered
//!   `#[upcaster(event = "<name>", from = N)]` steps) or checks it against the registry with
//!   [`IntegrationMessage::check_registered`]. An unknown name, a newer version and a bad payload
//!   are distinct [`IntegrationDecodeError`]s.
//! - On a broker bus: `Relay::integration(translate)` publishes the translations of the store's
//!   log, `EventBus::publish_outbox` the outbox, `EventBus::publish_messages` any message (its id
//!   the broker's deduplication id); an [`IntegrationHandler`] subscribed as [`Integrated`]
//!   receives them, after the consumer checked each against the schema registry (what does not
//!   decode is dead-lettered with its reason).

mod consumer;
mod event;
mod message;
mod record;
mod translate;
mod wire;

pub use consumer::{Integrated, IntegrationHandler};
pub use event::{registered_integration_events, IntegrationEvent, IntegrationRegistration};
pub use message::{
    IntegrationDecodeError, IntegrationEncodeError, IntegrationMessage, MessageMeta, DEFAULT_SOURCE,
};
pub use translate::{Translate, TranslateError};
pub use wire::{decode_cloudevent, EVENT_KIND};
