//! `#[event_handler]`: parse, check, expand; on errors, the original impl (markers stripped) beside them.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Attribute, ImplItem, ItemImpl};

use crate::ctxt::Ctxt;
use crate::handler::{self, On};

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match handler::parse_impl(input, "#[event_handler] impl Welcome { ... }") {
        Ok(item) => item,
        Err(tokens) => return tokens,
    };

    let cx = Ctxt::new();
    let attrs = attr::handler_attrs(&cx, args);
    let markers = handler::strip_on_markers(&mut item);
    allow_unused_async(&mut item, &markers);
    let ir = ast::HandlerImpl::from_ast(&cx, &attrs, &item, &markers);
    if let Some(ir) = &ir {
        check::event_handler(&cx, ir);
    }
    match (cx.check(), ir) {
        (Ok(()), Some(ir)) => expand::expand(&ir),
        (Err(errors), _) => {
            let errors = errors.into_compile_error();
            quote!(#errors #item)
        }
        (Ok(()), None) => item.into_token_stream(),
    }
}

/// Handlers are `async` for the bus, even when they await nothing: silence clippy's
/// `unused_async` on them.
fn allow_unused_async(item: &mut ItemImpl, markers: &[Vec<(On, Attribute)>]) {
    for (impl_item, markers) in item.items.iter_mut().zip(markers) {
        if let (ImplItem::Fn(method), false) = (impl_item, markers.is_empty()) {
            method
                .attrs
                .push(syn::parse_quote!(#[allow(clippy::unused_async)]));
        }
    }
}
