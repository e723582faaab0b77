//! Procedural macros of eventcore: `#[derive(DomainEvent)]`, `#[aggregate]`, `#[upcaster]`,
//! `#[projection]`, `#[event_handler]` and `#[derive(IntegrationEvent)]`.
//!
//! Use them through the `eventcore` crate, which re-exports them and documents them; the
//! generated code refers to `eventcore` only through `::eventcore::__private`.

mod aggregate;
mod ast;
mod attr;
mod check;
mod ctxt;
mod event;
mod event_handler;
mod expand_aggregate;
mod expand_event;
mod expand_registration;
mod expand_upcaster;
mod handler;
mod integration;
mod naming;
mod projection;
mod respan;
mod saga;
mod upcaster;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `DomainEvent` for an event struct or an enum of event structs.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input).into()
}

/// Derives `IntegrationEvent` (a named, versioned message of the published language between services).
#[proc_macro_derive(IntegrationEvent, attributes(integration))]
pub fn derive_integration_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    integration::derive(&input).into()
}

/// Implements `Aggregate` and one `Handle` per `#[command]` from an inherent `impl` block.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    aggregate::expand(args.into(), input.into()).into()
}

/// Registers a function over a stored event's JSON payload as an upcaster.
#[proc_macro_attribute]
pub fn upcaster(args: TokenStream, input: TokenStream) -> TokenStream {
    upcaster::expand(args.into(), input.into()).into()
}

/// Implements `Projection` (a document folded from events) from an inherent `impl` block of `#[on]` handlers.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    projection::expand(args.into(), input.into()).into()
}

/// Implements `EventHandler` (a bus consumer) from an inherent `impl` block of `#[on]` async handlers.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    event_handler::expand(args.into(), input.into()).into()
}

/// Implements `eventcore::saga::Saga` for an `impl` block of `#[start]`, `#[handle]`, `#[end]`
/// and `#[deadline]` handlers; see `eventcore::saga` for the full documentation.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, input: TokenStream) -> TokenStream {
    saga::expand(args.into(), input.into()).into()
}
