//! `#[saga]`: parse, check, expand; on errors, the original impl (markers stripped) beside them,
//! with the command type still declared so `SagaContext<Self>` resolves.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use crate::ctxt::Ctxt;
use crate::handler;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match handler::parse_impl(input, "#[saga(commands = ShopCommand)] impl Checkout { ... }") {
        Ok(item) => item,
        Err(tokens) => return tokens,
    };

    let cx = Ctxt::new();
    let attrs = attr::saga_attrs(&cx, args);
    let markers = ast::strip_markers(&mut item);
    let ir = ast::SagaImpl::from_ast(&cx, &attrs, &item, &markers);
    if let Some(ir) = &ir {
        check::saga(&cx, ir);
    }
    match (cx.check(), ir) {
        (Ok(()), Some(ir)) => expand::expand(&ir),
        (Err(errors), _) => {
            let errors = errors.into_compile_error();
            let commands = if item.trait_.is_none() {
                let krate = attrs
                    .krate
                    .clone()
                    .unwrap_or_else(|| syn::parse_quote!(::eventcore));
                let commands = attrs.commands.clone().unwrap_or_else(|| syn::parse_quote!(()));
                expand::commands_impl_for(&krate, &item.self_ty, &commands)
            } else {
                TokenStream::new()
            };
            quote!(#errors #item #commands)
        }
        (Ok(()), None) => item.into_token_stream(),
    }
}
