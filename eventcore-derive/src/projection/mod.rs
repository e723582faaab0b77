//! `#[projection]`: parse, check, expand; on errors, the original impl (markers stripped) beside them.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use crate::ctxt::Ctxt;
use crate::handler;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match handler::parse_impl(input, "#[projection] impl AccountSummary { ... }") {
        Ok(item) => item,
        Err(tokens) => return tokens,
    };

    let cx = Ctxt::new();
    let attrs = attr::projection_attrs(&cx, args);
    let markers = ast::strip_markers(&mut item);
    let ir = ast::ProjectionImpl::from_ast(&cx, &attrs, &item, &markers);
    if let Some(ir) = &ir {
        check::projection(&cx, ir);
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
