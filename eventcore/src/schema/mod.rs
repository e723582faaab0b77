//! The schema registry: every event type linked into the binary, with its JSON Schema and the
//! upcasters that bring its old versions up to date.
//!
//! - [`registry()`] lists every registered event type and version ([`Registry`]); its JSON,
//!   `serde_json::to_string_pretty(&registry())` or [`Registry::to_json`], is the export a
//!   project commits and checks in CI (see [`check`] and `eventcore_testing::assert_registry`).
//! - [`Registry::validate`] reports every old version without an upcaster path, and every step
//!   or version claimed twice.
//! - [`UpcasterRegistration`] registers one upcaster step; the chain runs whenever a stored event
//!   is decoded ([`crate::codec::decode_record`]).
//! - [`compat`] checks consecutive schemas against a compatibility mode; [`catalog`] renders the
//!   registry as Markdown and Mermaid.
//!
//! # Linking
//!
//! Registration uses [`inventory`]: an event or upcaster registers itself when the object code
//! defining it is linked into the binary. The linker drops a dependency crate nothing refers to,
//! and its events with it; a binary or test that exports or checks the registry must use at
//! least one item of every crate that defines events. A registry check names its event sets
//! ([`EventSets`], as in `assert_registry::<(BookEvent, MemberEvent)>(path)`), which does that.

pub mod catalog;
pub(crate) mod chain;
pub mod check;
pub mod compat;
mod linked;
mod registration;
mod registry;
mod upcast;
mod validate;

pub use chain::MAX_UPCAST_STEPS;
pub use linked::EventSets;
pub use registration::{
    registered_aggregates, registered_consumers, registered_events, AggregateRegistration, ConsumerKind,
    ConsumerRegistration, EventProbe, EventRegistration, HandledEvent, HandlerRole, ProbeAny, ProbeEvent,
};
pub use registry::{
    registry, ConsumerEntry, EventKind, EventRef, HandledEntry, Registry, RegistryEntry, RegistryFormatError,
    RetiredEntry, UpcasterEntry, UpcasterRef, INTEGRATION_SOURCE, REGISTRY_FORMAT_VERSION,
};
pub use upcast::{
    into_upcasted, one_step, registered_upcasters, typed_upcast, IntoUpcasted, UpcastError, UpcastFn,
    Upcasted, UpcasterKind, UpcasterRegistration,
};
pub use validate::{RegistryIssue, ValidationReport};
