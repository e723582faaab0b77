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

/// One handled event of a consumer, for its registration.
pub struct Handled<'a> {
    /// The event struct.
    pub event: &'a syn::Type,
    /// The `HandlerRole` variant (`On`, `Start`, `Handle`, `End`).
    pub role: &'static str,
    /// The key field, if any.
    pub key: Option<&'a syn::Member>,
    /// The method.
    pub method: &'a syn::Ident,
}

/// What a consumer registers: everything but its handled events.
pub struct Consumer<'a> {
    pub krate: &'a syn::Path,
    pub item: &'a syn::ItemImpl,
    pub name: &'a str,
    pub version: Option<u32>,
    /// The `ConsumerKind` variant (`Projection`, `EventHandler`, `Saga`).
    pub kind: &'static str,
    pub commands: Option<&'a syn::Type>,
    pub deadlines: &'a [String],
}

/// Registers a projection, event handler or saga for the registry and catalog; nothing for a
/// generic one, whose registration would have no single type to name.
pub fn consumer_registration(consumer: &Consumer<'_>, handled: &[Handled<'_>]) -> TokenStream {
    if !consumer.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let private = crate::respan::private_path(consumer.krate, proc_macro2::Span::call_site());
    let rust_type = type_text(&consumer.item.self_ty);
    let (name, deadlines) = (consumer.name, consumer.deadlines);
    let kind = syn::Ident::new(consumer.kind, proc_macro2::Span::call_site());
    let version = match consumer.version {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let commands = match consumer.commands {
        Some(ty) => {
            let text = type_text(ty);
            quote!(::core::option::Option::Some(#text))
        }
        None => quote!(::core::option::Option::None),
    };
    let handles = handled.iter().map(|h| {
        let event = h.event;
        let role = syn::Ident::new(h.role, proc_macro2::Span::call_site());
        let method = h.method.to_string();
        let key = match h.key {
            Some(member) => {
                let text = member.to_token_stream().to_string();
                quote!(::core::option::Option::Some(#text))
            }
            None => quote!(::core::option::Option::None),
        };
        // Through a probe, not `SingleEvent` itself: a type that is no event struct is then
        // reported once, by the consumer's impl, and not again here.
        quote! {
            if let ::core::option::Option::Some(event) = (&&#private::EventProbe::<#event>::new()).descriptor() {
                handled.push(#private::HandledEvent {
                    event,
                    role: #private::HandlerRole::#role,
                    key: #key,
                    method: #method,
                });
            }
        }
    });
    quote! {
        const _: () = {
            fn handled() -> ::std::vec::Vec<#private::HandledEvent> {
                #[allow(unused_imports)]
                use #private::{ProbeAny as _, ProbeEvent as _};
                let mut handled = ::std::vec::Vec::new();
                #(#handles)*
                handled
            }
            #private::inventory::submit! {
                #private::ConsumerRegistration {
                    name: #name,
                    version: #version,
                    kind: #private::ConsumerKind::#kind,
                    rust_type: ::core::concat!(::core::module_path!(), "::", #rust_type),
                    handles: handled,
                    commands: #commands,
                    deadlines: &[#(#deadlines),*],
                }
            }
        };
    }
}
