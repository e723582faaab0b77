//! Registrations generated for upcasters: typed (`#[event(upcast_from = Old)]`) and raw
//! (`#[upcaster]` functions), from the validated IR only.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::Type;

use crate::ast::EventStruct;
use crate::respan::{call_at, private_path};
use crate::upcaster::RawUpcaster;

/// The typed step `Old -> New` of an event struct with `upcast_from = Old`.
pub fn typed(event: &EventStruct<'_>) -> TokenStream {
    let Some(old) = &event.upcast_from else {
        return TokenStream::new();
    };
    let new = event.ident;
    let name = format!(
        "From<{}> for {}",
        old.to_token_stream().to_string().replace(' ', ""),
        new
    );
    // Spanned on the old type: a missing `From` impl, or an old type that is not an older
    // version of an event, is reported at `upcast_from = ...`.
    let new_at_old = syn::Ident::new(&new.to_string(), old.span());
    let private = private_path(&event.krate, proc_macro2::Span::call_site());
    let old_private = private_path(&event.krate, old.span());
    let upcast = quote_spanned!(old.span()=> #old_private::typed_upcast::<#old, #new_at_old>);
    let assert_order = quote_spanned!(old.span()=> #old_private::assert_upcast_order::<#old, #new>());
    quote! {
        const _: () = #assert_order;

        #private::inventory::submit! {
            #private::UpcasterRegistration {
                event_type: <#old as #private::SingleEvent>::EVENT_TYPE,
                from_version: <#old as #private::SingleEvent>::EVENT_VERSION,
                produces: &[<#new as #private::SingleEvent>::DESCRIPTOR],
                kind: #private::UpcasterKind::Typed,
                name: #name,
                upcast: #upcast,
            }
        }
    }
}

/// The function unchanged, a wrapper with the registry's signature, and its registration.
pub fn raw(upcaster: &RawUpcaster<'_>) -> TokenStream {
    let function = upcaster.function;
    let ident = &function.sig.ident;
    let wrapper = format_ident!("__eventcore_upcaster_{}", ident);
    let private = private_path(&upcaster.krate, proc_macro2::Span::call_site());
    let (event_type, from) = (&upcaster.event_type, upcaster.from);
    let (target_type, target_version) = upcaster
        .produces
        .first()
        .map_or((event_type.as_str(), from), |(t, v)| (t.as_str(), *v));
    let produces = upcaster
        .produces
        .iter()
        .map(|(t, v)| quote!(#private::EventDescriptor { event_type: #t, version: #v }));
    let output = match &function.sig.output {
        syn::ReturnType::Type(_, ty) => ty.as_ref().clone(),
        syn::ReturnType::Default => Type::Verbatim(quote!(())),
    };
    // Spanned on the declared return type: a result the registry cannot take is reported there.
    // The result variable carries the return type's span, so an unsupported `Ok` type is
    // reported at the return type.
    let result = syn::Ident::new("__eventcore_result", output.span());
    let convert = call_at(
        output.span(),
        quote!(#private::into_upcasted),
        quote!(#result, #target_type, #target_version),
    );
    let name = ident.to_string();
    quote! {
        #function

        const _: () = {
            #[automatically_derived]
            fn #wrapper(
                payload: #private::serde_json::Value,
            ) -> ::core::result::Result<
                ::std::vec::Vec<#private::Upcasted>,
                #private::UpcastError,
            > {
                let #result = #ident(payload);
                #convert
            }

            #private::inventory::submit! {
                #private::UpcasterRegistration {
                    event_type: #event_type,
                    from_version: #from,
                    produces: &[#(#produces),*],
                    kind: #private::UpcasterKind::Raw,
                    name: ::core::concat!(::core::module_path!(), "::", #name),
                    upcast: #wrapper,
                }
            }
        };
    }
}
