//! The `inventory` registration of an aggregate, for the event catalog.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use crate::ast::AggregateImpl;

/// Registers the aggregate's type, commands and event set; nothing for a generic aggregate,
/// whose registration would have no single type to name.
pub fn aggregate_registration(input: &AggregateImpl<'_>) -> TokenStream {
    if !input.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let aggregate_type = &input.aggregate_type;
    let events = input.events;
    let rust_type = type_text(&input.item.self_ty);
    let event_set = type_text(events);
    let commands = input.commands.iter().map(|c| type_text(c.command));
    let private = crate::respan::private_path(&input.krate, proc_macro2::Span::call_site());
    quote! {
        #private::inventory::submit! {
            #private::AggregateRegistration {
                aggregate_type: #aggregate_type,
                rust_type: ::core::concat!(::core::module_path!(), "::", #rust_type),
                commands: &[#(#commands),*],
                event_set: #event_set,
                events: <#events as #private::DomainEvent>::EVENT_TYPES,
            }
        }
    }
}

/// A type as written, without the spaces token printing adds (`bank::Deposit`, `Vec<u8>`).
fn type_text(ty: &syn::Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}
