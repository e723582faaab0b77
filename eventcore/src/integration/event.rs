//! The integration event trait and its link-time registration.

use serde::{de::DeserializeOwned, Serialize};

/// A message of the published language between services: named, versioned, with a JSON Schema
/// in the [registry](crate::schema), and never stored in an event stream.
///
/// Derive it with `#[derive(IntegrationEvent)]` and `#[integration(name = "...", version = N)]`;
/// the name and version travel in the CloudEvent (`type`, `eventversion`), never in the payload.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an integration event",
    label = "expected a type that derives `IntegrationEvent`",
    note = "derive `IntegrationEvent`, `Serialize`, `Deserialize` and `JsonSchema` on `{Self}`, with `#[integration(name = \"...\")]`"
)]
pub trait IntegrationEvent:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The published name, for example `billing.invoice_paid`.
    const NAME: &'static str;
    /// The schema version, starting at 1.
    const VERSION: u32;
}

/// One integration event name and version, registered by `#[derive(IntegrationEvent)]`.
///
/// Collected with `inventory`, like [`EventRegistration`](crate::schema::EventRegistration); it
/// appears in the registry export as an entry of kind
/// [`Integration`](crate::schema::EventKind::Integration).
#[derive(Debug)]
pub struct IntegrationRegistration {
    /// The published name.
    pub name: &'static str,
    /// Schema version.
    pub version: u32,
    /// The Rust type's path (`module::Type`).
    pub rust_type: &'static str,
    /// Builds the type's JSON Schema.
    pub schema: fn() -> schemars::Schema,
}

inventory::collect!(IntegrationRegistration);

/// Every registered integration event, in no particular order.
pub fn registered_integration_events() -> impl Iterator<Item = &'static IntegrationRegistration> {
    inventory::iter::<IntegrationRegistration>.into_iter()
}
