//! The schema registry: every event type linked into the binary, with its JSON Schema.

mod registration;

pub use registration::{registered_events, EventRegistration};
